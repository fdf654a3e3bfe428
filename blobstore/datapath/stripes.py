"""Cutting a write's input stream into stripes, and encoding one stripe.

``StripeSource`` turns an async stream of arbitrary-sized buffers into stripes of
``layout.stripe_bytes`` (the last one of a chunk shorter), zero-copy when an input buffer
holds whole stripes. With a known size it never reads ahead; with an unknown size it
reads a chunk ahead, because a chunk's length goes into its shards' headers before the
first piece is sent, and such chunks are cut at ``unknown_size_chunk_bytes`` (whole
stripes, default 8 MiB) so that the read-ahead stays small whatever the object size.
A body shorter or longer than its declared size raises ``InvalidArgument`` (reason
``incomplete_body`` / ``body_too_long``).

``encode_stripe`` pads a stripe to k equal pieces and computes the m parity pieces and
every piece's xxh3-64 checksum: CPU work for a worker thread, unless the pieces are short
enough to code on the event loop; ``coded`` makes that choice for every coding call of the
data path (writes, degraded reads, repair).

Must not import: gateway or metadata packages.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterable, Callable
from typing import Any, TypeVar

import xxhash

from blobstore import errors
from blobstore.codec.ec import Buffer, ErasureCoder, codes_inline
from blobstore.codec.ranges import Layout, ceil_div

__all__ = ["StripeSource", "coded", "encode_stripe"]

T = TypeVar("T")


def coded(
    coder: ErasureCoder, piece_bytes: int, fn: Callable[..., T], *args: Any
) -> asyncio.Future[T]:
    """``fn(*args)``, coding work of ``coder`` on pieces of ``piece_bytes``: done at once on
    the calling thread (the loop) when the coder codes such pieces faster than a thread
    hop (``codes_inline``), else in a worker thread; a future either way."""
    if not codes_inline(coder, piece_bytes):
        return asyncio.ensure_future(asyncio.to_thread(fn, *args))
    fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    fut.set_result(fn(*args))
    return fut


def encode_stripe(coder: ErasureCoder, stripe: Buffer) -> tuple[list[Buffer], list[int]]:
    """One stripe's k+m pieces (data pieces are views, padded as needed) and checksums.

    CPU work: run it in a worker thread for big stripes.
    """
    k = coder.k
    length = len(stripe)
    plen = ceil_div(length, k)
    if plen * k != length:
        padded = bytearray(plen * k)
        padded[:length] = stripe
        stripe = padded
    view = memoryview(stripe)
    data: list[Buffer] = [view[i * plen : (i + 1) * plen] for i in range(k)]
    pieces = data + list(coder.encode(data))
    return pieces, [xxhash.xxh3_64_intdigest(p) for p in pieces]


class StripeSource:
    """Cuts the input stream into stripes; reads ahead one chunk when the size is unknown,
    and then cuts chunks at ``unknown_size_chunk_bytes`` (rounded down to whole stripes, at
    least one) instead of ``layout.chunk_bytes``."""

    def __init__(
        self,
        data: AsyncIterable[Buffer],
        layout: Layout,
        size: int | None,
        unknown_size_chunk_bytes: int = 8 << 20,
    ) -> None:
        self._it = aiter(data)
        self._layout = layout
        self._size = size
        sb = layout.stripe_bytes
        self._ahead_limit = min(layout.chunk_bytes, max(sb, unknown_size_chunk_bytes // sb * sb))
        self._ahead: collections.deque[Buffer] = collections.deque()
        self._ahead_bytes = 0
        self._rest: memoryview = memoryview(b"")
        self._eof = False
        self.consumed = 0  # bytes handed out as stripes

    async def _read_stripe(self) -> Buffer | None:
        sb = self._layout.stripe_bytes
        if len(self._rest) >= sb:  # zero-copy slice of a big input buffer
            out, self._rest = self._rest[:sb], self._rest[sb:]
            return out
        buf = bytearray(self._rest)
        self._rest = memoryview(b"")
        while len(buf) < sb and not self._eof:
            try:
                chunk = await anext(self._it)
            except StopAsyncIteration:
                self._eof = True
                break
            view = memoryview(chunk).cast("B") if len(chunk) else memoryview(b"")
            if not buf and len(view) >= sb:
                self._rest = view[sb:]
                return view[:sb]
            take = sb - len(buf)
            buf += view[:take]
            if len(view) > take:
                self._rest = view[take:]
        return buf if buf else None

    async def chunk_length(self) -> int:
        """Length of the next chunk (0 at the end of the input)."""
        if self._size is not None:
            return min(self._layout.chunk_bytes, self._size - self.consumed)
        cb = self._ahead_limit
        while self._ahead_bytes < cb:
            stripe = await self._read_stripe()
            if stripe is None:
                break
            self._ahead.append(stripe)
            self._ahead_bytes += len(stripe)
        return min(cb, self._ahead_bytes)

    async def next_stripe(self, want: int) -> Buffer:
        """The next stripe (``want`` bytes; ``InvalidArgument`` if the input ends early)."""
        if self._ahead:
            stripe = self._ahead.popleft()
            self._ahead_bytes -= len(stripe)
        else:
            got = await self._read_stripe()
            stripe = got if got is not None else b""
        if len(stripe) != want:
            raise errors.InvalidArgument(
                f"request body ended after {self.consumed + len(stripe)} of {self._size} bytes",
                reason="incomplete_body",
            )
        self.consumed += want
        return stripe

    async def check_end(self) -> None:
        """``InvalidArgument`` if the input holds more bytes than the declared size."""
        if self._ahead or len(self._rest):
            extra = True
        else:
            extra = False
            while not self._eof:
                try:
                    chunk = await anext(self._it)
                except StopAsyncIteration:
                    self._eof = True
                    break
                if len(chunk):
                    extra = True
                    break
        if extra:
            raise errors.InvalidArgument(
                f"request body is longer than the declared {self._size} bytes",
                reason="body_too_long",
            )
