"""Making a file's bytes or a directory's entries durable (fsync by path), and replacing a
small file all or nothing (``write_atomic``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_path", "write_atomic"]


def fsync_path(path: Path) -> None:
    """fsync ``path``: a file's data, or a directory's entries (a rename or create in it)."""
    fd = os.open(path, os.O_RDONLY)  # a directory opens read-only too
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``, durably and all or nothing: a temp file beside it
    (the same directory, so the rename is one entry block even on ext4 without a
    journal), written and fsynced, renamed over ``path``, then the directory fsynced.
    A crash leaves the old file or the new one (and maybe a stray ``.NAME.tmp``)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
