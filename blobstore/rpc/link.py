"""One framed TCP link (either side): buffered reads, coalesced writes, bulk-stream flow control.

``Link`` is an ``asyncio.BufferedProtocol``: received bytes land in a ``FrameDecoder``
buffer (large DATA payloads straight in their own buffer); frames go to ``on_frame``.
Writes of small frames are gathered and flushed once per loop iteration (one syscall for
many concurrent calls); a large payload is written as its own buffer (``writelines`` on
loops that do vectored writes, two ``write`` calls on the stdlib loop, whose
``writelines`` would join them into a copy).

Back-pressure: ``drain()`` waits while the transport's write buffer is above its high
water mark; bulk bodies use a per-stream credit window: a receiver (``InStream``) grants
credit only as its consumer takes chunks, and a sender (``OutCredit``) never sends more
than the credit it was granted (the window announced in the handshake, then each grant).
A receiver may size its streams' windows from a ``StreamBudget`` shared by all of them:
each stream starts with the announced (small) window and is granted more, up to its share
of the budget, so one busy stream gets a large window and many share a bounded total (a
gateway serving many slow downloads at once). A peer that sends past its credit, sends a
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

__all__ = [
    "DATA_FRAME_SIZE",
    "STREAM_WINDOW",
    "InStream",
    "Link",
    "OutCredit",
    "StreamBudget",
    "send_body",
]

log = get_logger(__name__)

STREAM_WINDOW = 8 * 1024 * 1024  # bytes a receiver buffers per stream (bench: 8 MiB + 1 MiB)
DATA_FRAME_SIZE = 1024 * 1024
# what a budgeted stream starts with: a whole DATA frame and some more, so a body of one
# 1 MiB piece and its few checksum bytes needs no grant round trip
BUDGET_BASE_WINDOW = DATA_FRAME_SIZE + 64 * 1024
PRE_AUTH_MAX_PAYLOAD = 4096
_COALESCE_MAX = 16 * 1024
_FLUSH_AT = 256 * 1024
_WRITE_HIGH = 1024 * 1024

_DATA = int(FrameType.DATA)
_END = int(FrameType.END)
_WINDOW = int(FrameType.WINDOW)
_CANCEL = int(FrameType.CANCEL)


class StreamBudget:
    """Receive windows shared by the streams of one process (or one client).

    Each open stream's window is an equal share of ``total_bytes``, at least ``base_bytes``
    (the window announced in the handshake, which every stream starts with) and at most
    ``max_bytes``. Shares shrink as streams open: a stream above its share is granted
    nothing more until its consumer took it below, so the bytes buffered or in flight
    stay near ``max(total_bytes, streams x base_bytes)``.
    """

    __slots__ = ("active", "base_bytes", "max_bytes", "total_bytes")

    def __init__(
        self,
        total_bytes: int,
        *,
        base_bytes: int = BUDGET_BASE_WINDOW,
        max_bytes: int = STREAM_WINDOW,
    ) -> None:
        if not 0 < base_bytes <= max_bytes:
            raise ValueError(f"need 0 < base ({base_bytes}) <= max ({max_bytes})")
        self.total_bytes = total_bytes
        self.base_bytes = base_bytes
        self.max_bytes = max_bytes
        self.active = 0  # open streams

    def share(self) -> int:
        """The window each open stream may have now."""
        return max(self.base_bytes, min(self.max_bytes, self.total_bytes // max(1, self.active)))


class Link(asyncio.BufferedProtocol):
    """Framing, write coalescing, drain and stream bookkeeping shared by both sides."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        window: int | None = None,
        budget: StreamBudget | None = None,
    ) -> None:
        self.loop = loop
        self.budget = budget
        # what we accept per stream before any further grant (announced in the handshake)
        self.window = budget.base_bytes if budget is not None else window or STREAM_WINDOW
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
    """A received bulk body: bounded buffer; credit returns as the consumer takes chunks.

    The stream's window is the link's (fixed) or its share of the link's budget. Whenever
    the window has room for at least a quarter of it beyond what is buffered here or still
    in the sender's credit, the room is granted: as the consumer takes chunks, and as data
    arrives (so a budgeted stream grows to its share before its consumer starts).
    """

    __slots__ = (
        "_budget",
        "_buffered",
        "_chunks",
        "_credit",
        "_deadline",
        "_done",
        "_error",
        "_link",
        "_sid",
        "_waiter",
        "_window",
    )

    def __init__(self, link: Link, sid: int, deadline: float | None) -> None:
        self._link = link
        self._sid = sid
        self._window = link.window
        self._credit = link.window  # what the sender may still send without a new grant
        self._budget = link.budget
        if self._budget is not None:
            self._budget.active += 1
        self._deadline = deadline
        self._chunks: collections.deque[Payload] = collections.deque()
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, payload: Payload) -> None:
        if self._done:
            return
        n = len(payload)
        self._credit -= n
        if self._credit < 0:
            raise errors.ProtocolError(f"peer overran the stream window on stream {self._sid}")
        self._buffered += n
        self._chunks.append(payload)
        if self._budget is not None:
            self._maybe_grant()
        self._wake()

    def _maybe_grant(self) -> None:
        window = self._budget.share() if self._budget is not None else self._window
        room = window - self._buffered - self._credit
        if room >= window // 4 and room > 0:
            self._credit += room
            self._link.grant(self._sid, room)

    def finish(self, error: BaseException | None) -> None:
        if not self._done:
            self._done = True
            self._error = error
            if self._budget is not None:
                self._budget.active -= 1
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
        self._buffered -= len(chunk)
        if not self._done:
            self._maybe_grant()
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
