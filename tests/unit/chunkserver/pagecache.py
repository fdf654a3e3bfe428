"""Page-cache probes for tests of code that keeps or drops files' pages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chunkserver.store.pagecache import resident


def cached(path: Path) -> bool:
    """Whether the file's first page is in the page cache (asked without reading it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        answer = resident(fd)
    finally:
        os.close(fd)
    if answer is None:
        pytest.skip("page-cache residency cannot be told here")
    return answer


def drop(path: Path) -> None:
    """Push the (clean, synced) file out of the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def require_droppable(directory: Path) -> None:
    """Skip the test where POSIX_FADV_DONTNEED keeps pages (tmpfs keeps its only copy)."""
    probe = directory / "pagecache-probe"
    probe.write_bytes(os.urandom(1 << 16))
    drop(probe)
    still = cached(probe)
    probe.unlink()
    if still:
        pytest.skip("this file system keeps pages after POSIX_FADV_DONTNEED (tmpfs?)")
