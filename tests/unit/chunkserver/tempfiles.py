"""Writes in progress in a ``DiskShardStore`` directory, as files (test helper)."""

from __future__ import annotations

from pathlib import Path

from chunkserver.store.disk import TEMP_SUFFIX

__all__ = ["temp_files"]


def temp_files(root: Path) -> list[str]:
    """Names of the temp files under ``root`` (a store's root): each write in progress
    has one beside its target in the fan-out tree; earlier versions used ``tmp/``."""
    return sorted(p.name for p in root.rglob(f"*{TEMP_SUFFIX}") if p.is_file())
