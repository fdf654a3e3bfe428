"""Page-cache probes for tests of code that keeps or drops files' pages."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from chunkserver.store.pagecache import drop as drop_pages
from chunkserver.store.pagecache import resident


def cached(path: Path) -> bool:
    """Whether the file's first page is in the page cache (asked without reading it)."""
    return resident_at(path, 0, 1)


def resident_at(path: Path, offset: int, length: int) -> bool:
    """Whether every page of the range is in the page cache (asked without reading)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        answer = resident(fd, offset, length)
    finally:
        os.close(fd)
    if answer is None:
        pytest.skip("page-cache residency cannot be told here")
    return answer


def none_resident_past_first_page(path: Path) -> bool:
    """Whether no page of the file but its first is in the page cache."""
    size = path.stat().st_size
    return not any(resident_at(path, off, 1) for off in range(mmap.PAGESIZE, size, mmap.PAGESIZE))


def drop(path: Path) -> None:
    """Push the (clean, synced) file out of the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        drop_pages(fd)
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
