"""One framed TCP link (either side): buffered reads, coalesced writes, bulk-stream flow control.

``Link`` is an ``asyncio.BufferedProtocol``: received bytes land in a ``FrameDecoder``
buffer (large DATA payloads straight in their own buffer); frames go to ``on_frame``.
Writes of small frames are gathered and flushed once per loop iteration (one syscall for
many concurrent calls); a large payload is written as its own buffer (``writelines`` on
loops that do vectored writes, two ``write`` calls on the stdlib loop, whose
``writelines`` would join them into a copy).

Back-pressure: ``drain()`` waits while the transport's write buffer is above its high
water mark; bulk bodies use a per-stream credit window: a receiver (``InStream``) grants
credit only as its consumer takes chunks, and a sender (``OutCredit``) never has more than
the window's worth of un-granted bytes in flight. A peer that overruns a window, sends a
malformed frame, or an EOF in the middle of a frame, loses the link (logged).

Must not import: service packages (RPC internals only).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterable
from typing import Any, cast

from blobstore import errors
from blobstore.log import get_logger
from blobstore.rpc import codec
from blobstore.rpc.frames import HEADER, FrameDecoder, FrameType, Payload

__all__ = ["DATA_FRAME_SIZE", "STREAM_WINDOW", "InStream", "Link", "OutCredit", "send_body"]

log = get_logger(__name__)

STREAM_WINDOW = 8 * 1024 * 1024  # bytes a receiver buffers per stream (bench: 8 MiB + 1 MiB)
DATA_FRAME_SIZE = 1024 * 1024
PRE_AUTH_MAX_PAYLOAD = 4096
_COALESCE_MAX = 16 * 1024
_FLUSH_AT = 256 * 1024
_WRITE_HIGH = 1024 * 1024

_DATA = int(FrameType.DATA)
_END = int(FrameType.END)
_WINDOW = int(FrameType.WINDOW)
_CANCEL = int(FrameType.CANCEL)


class Link(asyncio.BufferedProtocol):
    """Framing, write coalescing, drain and stream bookkeeping shared by both sides."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, window: int | None = None) -> None:
        self.loop = loop
        self.window = window or STREAM_WINDOW  # what we accept per stream
        self.peer_window = STREAM_WINDOW  # what the peer accepts (announced in the handshake)
        self.peer = "?"
        self.transport: asyncio.Transport | None = None
        self.in_streams: dict[int, InStream] = {}
        self.out_streams: dict[int, OutCredit] = {}
        self.lost: BaseException | None = None
        self._decoder = FrameDecoder(PRE_AUTH_MAX_PAYLOAD)
        self._wbuf: list[Any] = []
        self._wbuf_bytes = 0
        self._flush_scheduled = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._vectored = False

    # -- subclass hooks ----------------------------------------------------------------
    def on_open(self) -> None:
        """The transport is up (before any frame)."""

    def on_frame(self, ftype: int, flags: int, sid: int, payload: Payload) -> None:
        """One complete frame; raise ProtocolError to drop the link."""

    def on_lost(self, exc: BaseException) -> None:
        """The link is gone; fail whatever waits on it."""

    # -- asyncio.BufferedProtocol --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_WRITE_HIGH)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._vectored = type(transport).__module__.startswith("uvloop")
        self.on_open()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._decoder.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        try:
            frames = self._decoder.buffer_updated(nbytes)
            for ftype, flags, sid, payload in frames:
                if self.lost is not None or self.transport is None:
                    return
                self.on_frame(ftype, flags, sid, payload)
        except errors.ProtocolError as exc:
            self.fail(exc)

    def eof_received(self) -> bool | None:
        if self._decoder.buffered:
            log.warning("rpc truncated frame at EOF", peer=self.peer, bytes=self._decoder.buffered)
        return None  # close the transport

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.lost is None:
            self.lost = errors.Unavailable(f"connection to {self.peer} lost")
        self.transport = None
        lost = self.lost
        for fut in self._drain_waiters:
            if not fut.done():
                fut.set_exception(lost)
        self._drain_waiters.clear()
        for st in self.in_streams.values():
            st.finish(lost)
        self.in_streams.clear()
        for credit in self.out_streams.values():
            credit.abort(lost)
        self.out_streams.clear()
        self.on_lost(lost)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # -- helpers -------------------------------------------------------------------------
    def set_max_payload(self, n: int) -> None:
        self._decoder.max_payload = n

    @property
    def is_open(self) -> bool:
        return self.transport is not None and self.lost is None

    def fail(self, exc: BaseException) -> None:
        """Log and drop the link (malformed input, auth failure, protocol violation)."""
        if self.lost is None:
            log.warning("rpc link dropped", peer=self.peer, reason=str(exc))
            self.lost = (
                exc if isinstance(exc, errors.BlobstoreError) else errors.Unavailable(str(exc))
            )
        self.close(abort=True)

    def close(self, *, abort: bool = False) -> None:
        """Close gracefully (flush queued frames first), or at once with ``abort``."""
        transport = self.transport
        if transport is None:
            return
        if abort:
            self._wbuf, self._wbuf_bytes = [], 0
            transport.abort()
            return
        self._flush()
        transport.close()
        # a peer that never reads would keep a gracefully closing socket open forever
        self.loop.call_later(5.0, transport.abort)

    def write_buffer_size(self) -> int:
        t = self.transport
        return self._wbuf_bytes + (t.get_write_buffer_size() if t is not None else 0)

    def write_frame(self, ftype: int, flags: int, sid: int, payload: Payload = b"") -> None:
        """Queue one frame (raise Unavailable if the link is gone)."""
        transport = self.transport
        if transport is None or self.lost is not None:
            raise self.lost or errors.Unavailable(f"connection to {self.peer} is closed")
        n = len(payload)
        hdr = HEADER.pack(n, ftype, flags, 0, sid)
        if n <= _COALESCE_MAX:
            self._wbuf.append(hdr)
            if n:
                # small views are copied now: they sit in _wbuf until the next flush
                self._wbuf.append(payload if type(payload) is bytes else bytes(payload))
            self._wbuf_bytes += n + 12
            if self._wbuf_bytes >= _FLUSH_AT:
                self._flush()
            elif not self._flush_scheduled:
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)
            return
        if self._vectored:  # queued small frames go out in the same writev as this one
            bufs, self._wbuf, self._wbuf_bytes = self._wbuf, [], 0
            bufs += (hdr, payload)
            transport.writelines(bufs)
        else:
            self._flush()
            transport.write(hdr)
            transport.write(payload)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._wbuf:
            return
        buf, self._wbuf, self._wbuf_bytes = self._wbuf, [], 0
        if self.transport is None:
            return
        self.transport.write(buf[0] if len(buf) == 1 else b"".join(buf))

    async def drain(self) -> None:
        """Wait while the peer is not keeping up with what we write."""
        if self.lost is not None:
            raise self.lost
        if not self._paused:
            return
        fut: asyncio.Future[None] = self.loop.create_future()
        self._drain_waiters.append(fut)
        await fut

    def grant(self, sid: int, n: int) -> None:
        if self.is_open:
            self.write_frame(_WINDOW, 0, sid, n.to_bytes(4, "big"))

    def handle_stream_frame(self, ftype: int, sid: int, payload: Payload) -> None:
        """DATA / END / WINDOW for either direction."""
        if ftype == _DATA:
            st = self.in_streams.get(sid)
            if st is not None:
                st.feed(payload)
        elif ftype == _END:
            st = self.in_streams.pop(sid, None)
            if st is not None:
                err = _decode_error(payload) if payload else None
                st.finish(err)
        elif ftype == _WINDOW:
            if len(payload) != 4:
                raise errors.ProtocolError("WINDOW frame payload is not 4 bytes")
            credit = self.out_streams.get(sid)
            if credit is not None:
                credit.grant(int.from_bytes(payload, "big"))


def _decode_error(payload: Payload) -> BaseException:
    obj = codec.decode(payload)
    if isinstance(obj, errors.BlobstoreError):
        return obj
    return errors.ProtocolError(f"END frame carries {type(obj).__name__}, not an error")


class InStream:
    """A received bulk body: bounded buffer; credit returns as the consumer takes chunks."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_deadline",
        "_done",
        "_error",
        "_link",
        "_sid",
        "_unacked",
        "_waiter",
        "_window",
    )

    def __init__(self, link: Link, sid: int, deadline: float | None) -> None:
        self._link = link
        self._sid = sid
        self._window = link.window
        self._deadline = deadline
        self._chunks: collections.deque[Payload] = collections.deque()
        self._buffered = 0
        self._unacked = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, payload: Payload) -> None:
        if self._done:
            return
        self._buffered += len(payload)
        if self._buffered > self._window:
            raise errors.ProtocolError(f"peer overran the stream window on stream {self._sid}")
        self._chunks.append(payload)
        self._wake()

    def finish(self, error: BaseException | None) -> None:
        if not self._done:
            self._done = True
            self._error = error
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> InStream:
        return self

    async def __anext__(self) -> memoryview:
        while not self._chunks:
            if self._done:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            await self._wait()
        chunk = self._chunks.popleft()
        n = len(chunk)
        self._buffered -= n
        self._unacked += n
        if self._unacked >= self._window // 4:
            self._link.grant(self._sid, self._unacked)
            self._unacked = 0
        return memoryview(chunk)

    async def _wait(self) -> None:
        loop = self._link.loop
        self._waiter = waiter = loop.create_future()
        handle = None
        if self._deadline is not None:
            remaining = self._deadline - loop.time()
            if remaining <= 0:
                await self._expire()
            handle = loop.call_later(remaining, self._wake)
        try:
            await waiter
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()
        expired = self._deadline is not None and loop.time() >= self._deadline
        if expired and not self._chunks and not self._done:
            await self._expire()

    async def _expire(self) -> None:
        await self.aclose()
        raise errors.DeadlineExceeded(f"stream {self._sid} from {self._link.peer} timed out")

    async def aclose(self) -> None:
        """Abandon the rest of the body (tells the sender to stop)."""
        if self._done:
            return
        self.finish(None)
        self._chunks.clear()
        self._link.in_streams.pop(self._sid, None)
        if self._link.is_open:
            self._link.write_frame(_CANCEL, 0, self._sid)


class OutCredit:
    """Send-side credit of one stream."""

    __slots__ = ("_credit", "_error", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, window: int) -> None:
        self._loop = loop
        self._credit = window
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def grant(self, n: int) -> None:
        self._credit += n
        self._wake()

    def abort(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def take(self, want: int) -> int:
        while self._credit <= 0 and self._error is None:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._error is not None:
            raise self._error
        n = min(want, self._credit)
        self._credit -= n
        return n


async def send_body(link: Link, sid: int, body: AsyncIterable[Any], credit: OutCredit) -> None:
    """Stream ``body`` as DATA frames then END, honouring credit and drain."""
    it = aiter(body)
    while True:
        try:
            chunk = await anext(it)
        except StopAsyncIteration:
            break
        except Exception as exc:
            err = exc if isinstance(exc, errors.BlobstoreError) else errors.InternalError(str(exc))
            if link.is_open:
                link.write_frame(_END, 0, sid, codec.encode(err))
            raise
        mv = chunk if isinstance(chunk, memoryview) else memoryview(chunk)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        while len(mv):
            n = await credit.take(min(len(mv), DATA_FRAME_SIZE))
            link.write_frame(_DATA, 0, sid, mv[:n] if n < len(mv) else mv)
            mv = mv[n:]
            await link.drain()
    link.write_frame(_END, 0, sid)
