"""What of a file is in the OS page cache, asked without reading it.

``resident(fd, offset, length)`` maps the range and asks ``mincore(2)`` which of its pages
are in memory: nothing is read, so the answer does not change the cache. (A probe read
with ``RWF_NOWAIT`` would: on a miss it starts the readahead of the very pages it
found missing.) Linux only; elsewhere, and for empty ranges, the answer is ``None``.

``drop(fd)`` (or ``drop_path``) and ``drop_read(fd, ...)`` push a file's (clean) pages out
of the cache: whole, or the part a batched read has just read, widened to whole folios.

Must not import network or gateway code.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import mmap
import os

__all__ = ["FOLIO_MAX", "drop", "drop_path", "drop_read", "resident"]

_PAGE = mmap.PAGESIZE
FOLIO_MAX = 2 * 1024 * 1024  # page-cache folios are at most this big (PMD size)
_MAP_FAILED = ctypes.c_void_p(-1).value


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None or not hasattr(os, "posix_fadvise"):
        return None
    lib = ctypes.CDLL(name, use_errno=True)
    lib.mmap.argtypes = (
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long,
    )  # fmt: skip
    lib.mmap.restype = ctypes.c_void_p
    lib.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    lib.munmap.restype = ctypes.c_int
    lib.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    lib.mincore.restype = ctypes.c_int
    return lib


_LIBC = _libc()


def resident(fd: int, offset: int = 0, length: int = _PAGE) -> bool | None:
    """Whether every page of ``[offset, offset + length)`` of ``fd`` is in the page cache
    (the range is clipped to the file; ``None`` if it is empty or this cannot be told)."""
    if _LIBC is None:
        return None
    size = os.fstat(fd).st_size
    start = offset - offset % _PAGE
    end = min(offset + length, size)
    if end <= start:
        return None
    span = end - start
    addr = _LIBC.mmap(None, span, mmap.PROT_READ, mmap.MAP_SHARED, fd, start)
    if addr is None or addr == _MAP_FAILED:
        return None
    try:
        pages = (span + _PAGE - 1) // _PAGE
        vec = ctypes.create_string_buffer(pages)
        if _LIBC.mincore(addr, span, vec) != 0:
            return None
        return all(b & 1 for b in vec.raw[:pages])
    finally:
        _LIBC.munmap(addr, span)


def drop(fd: int) -> None:
    """Drop the whole file's clean pages from the page cache (dirty ones stay)."""
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def drop_path(path: str) -> None:
    """``drop`` by file name, best effort: a file gone or unreadable is left alone."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            drop(fd)
        finally:
            os.close(fd)


def drop_read(fd: int, offset: int, length: int, file_bytes: int) -> None:
    """Drop file bytes ``[offset, offset + length)``, just read, from the page cache.

    ``POSIX_FADV_DONTNEED`` leaves a folio the range covers only in part, and the page
    cache holds files in folios of up to ``FOLIO_MAX`` (measured: a 1 MiB shard read
    from offset 64 kept its first 512 KiB). So the range is widened down to a folio
    boundary (bytes read before, by this read's previous batch or another reader) and
    cut at the last one below its end; the cut-off part goes with the next batch, or
    to the end of the file with the last.
    """
    start = offset - offset % FOLIO_MAX
    end = offset + length
    if end < file_bytes:
        end -= end % FOLIO_MAX
        if end <= start:
            return
        os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)
    else:
        os.posix_fadvise(fd, start, 0, os.POSIX_FADV_DONTNEED)  # 0: to the end of the file
