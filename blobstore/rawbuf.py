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

Must not import: asyncio, service packages.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

__all__ = ["uninitialized"]


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
