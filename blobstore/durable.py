"""Making a file's bytes or a directory's entries durable (fsync by path)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_path"]


def fsync_path(path: Path) -> None:
    """fsync ``path``: a file's data, or a directory's entries (a rename or create in it)."""
    fd = os.open(path, os.O_RDONLY)  # a directory opens read-only too
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
