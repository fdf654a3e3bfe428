"""Uninitialised byte buffers for bulk I/O.

``bytearray(n)`` zero-fills its memory: for a buffer that a ``recv``/``preadv`` will
overwrite at once that is one extra pass over every byte (about 7-9% of a chunkserver's
and a reader's CPU in the read benchmark). ``uninitialized(n)`` returns a ``bytearray``
whose contents are whatever the allocator handed out.

Invariant for callers: never let a byte of such a buffer escape before it was written
(deliver it only once fully filled, or slice off the part that was). Stale process memory
must not leak to a peer.

CPython only (``PyByteArray_FromStringAndSize(NULL, n)``, a documented C API); other
interpreters fall back to ``bytearray(n)``.

``tune_allocator()`` (called once by every blobstore process) keeps such buffers out of
glibc's per-allocation ``mmap``: by default glibc serves big allocations with a fresh
mapping (first 128 KiB, then a threshold it moves by heuristics) and trims the heap top
back to the kernel, so a buffer of the wrong size is faulted in page by page and zeroed by
the kernel on every use. Measured (read bench, 1 GiB through 4 chunkservers): with read
batches of 1.8 MiB instead of 3.9 MiB, 236k page faults per GB and +65% chunkserver CPU
per GB (0.50 -> 0.83 s); in a later run as many at 3.9 MiB too (healthy reads 1.4 instead
of 2.4 GB/s): glibc's choice depends on what the process allocated before. With the fixed
thresholds below: no faults at either size, and chunkserver faults per GB written 105k ->
11k. The cost: up to the trim threshold of freed heap stays resident after a burst (a
gateway's RSS after the S3 bench's 64 MiB GETs: 143 MiB left to glibc, 200 MiB with these
settings).

That allowance is per malloc arena, and glibc gives each thread an arena of its own (up
to 8 per core): a buffer allocated in a worker thread (file I/O, hashing, coding pools)
comes from, and is freed back to, that thread's arena. Six threads each freeing 48 MiB
left 288 MiB resident, so ``tune_allocator()`` also caps the arenas at ``ARENA_MAX``
(60-204 MiB resident then, depending on how the threads shared them). Little is lost:
Python allocates under the GIL, so the arenas' locks are rarely contended (repair bench,
8 runs: 175 vs 184 MB/s, within its noise). Gateway peak RSS in the S3 bench's 1 GiB PUT
after its 1 MiB cells: 198 MiB with glibc's arena count, 154 MiB with two.

Must not import: asyncio, service packages.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

__all__ = [
    "ARENA_MAX",
    "MMAP_THRESHOLD_BYTES",
    "TRIM_THRESHOLD_BYTES",
    "tune_allocator",
    "uninitialized",
]

MMAP_THRESHOLD_BYTES = 64 * 1024 * 1024  # allocations below this come from the heap
# free heap top kept before returning it: about one large read's buffering (2 runs x k
# streams x an 8 MiB window); 256 MiB kept a gateway at 324 MiB RSS after GETs of 64 MiB
# objects (target 256), 32 MiB made a reader fault its receive buffers in again
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
ARENA_MAX = 2  # malloc arenas, each keeping up to TRIM_THRESHOLD_BYTES of freed heap
_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX")


def _capi_factory() -> Callable[[int], bytearray] | None:
    if sys.implementation.name != "cpython":
        return None
    fn = ctypes.pythonapi.PyByteArray_FromStringAndSize
    fn.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    fn.restype = ctypes.py_object

    def make(n: int) -> bytearray:
        out = fn(None, n)
        assert type(out) is bytearray
        return out

    return make


_make = _capi_factory()
_SMALL = 4096  # below this the call overhead outweighs the memset


def uninitialized(n: int) -> bytearray:
    """A ``bytearray`` of ``n`` bytes with unspecified contents (see the invariant above)."""
    if n < 0:
        raise ValueError(f"negative size {n}")
    if _make is None or n < _SMALL:
        return bytearray(n)
    return _make(n)


def tune_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds for bulk buffers and cap its arenas (see the
    module docstring). Call it before starting threads: a thread keeps the arena it got.

    True if applied. Does nothing off glibc (no ``mallopt``, or one that refuses) or when
    the environment already sets malloc thresholds or ``glibc.malloc.*`` tunables: the
    operator's choice wins.
    """
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # glibc takes any trim threshold but refuses an mmap threshold above its limit: that
    # one goes first, so a refusal leaves both as they were
    if not mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and bool(
        mallopt(_M_ARENA_MAX, ARENA_MAX)
    )
