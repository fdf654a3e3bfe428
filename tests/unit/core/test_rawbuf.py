"""blobstore.rawbuf: uninitialised bytearrays for buffers that I/O fills at once."""

from __future__ import annotations

import pytest

from blobstore.rawbuf import uninitialized


@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 256 * 1024, 4 * 1024 * 1024 + 3])
def test_size_and_type(n: int) -> None:
    buf = uninitialized(n)
    assert type(buf) is bytearray
    assert len(buf) == n
    buf[:] = b"\x5a" * n  # writable, resizable like any bytearray
    assert buf.count(0x5A) == n
    buf.extend(b"xy")
    assert len(buf) == n + 2


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        uninitialized(-1)


def test_small_buffers_are_zeroed() -> None:
    # below the threshold it is a plain bytearray(n): zero-filled
    assert uninitialized(100) == bytearray(100)
