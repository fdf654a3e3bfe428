"""``RpcClient``: the TCP ``Transport``; one authenticated, multiplexed link per address.

A link is dialled lazily by the first call to an address, authenticated (mutual HMAC,
see ``messages``) before any request is written, and reused by every later call.
When it drops, pending calls fail with ``Unavailable`` and the next call redials; failed
dials back off exponentially (``backoff_base_s`` doubling up to ``backoff_max_s``), shared
by all callers of that address, and never past a call's deadline.

Every call carries its remaining deadline (ms) and the caller's trace id in a
``CallHeader``. Past the deadline the call raises ``DeadlineExceeded``, a CANCEL frame
tells the server to stop, and a late answer is dropped (its call id is no longer pending).

Must not import: service packages.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import os
import ssl
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from blobstore import errors
from blobstore.clock import Clock, SystemClock
from blobstore.log import current_trace_id, get_logger
from blobstore.rpc import codec
from blobstore.rpc.frames import FLAG_HAS_BODY, MAX_FRAME_PAYLOAD, FrameType, Payload
from blobstore.rpc.link import InStream, Link, OutCredit, StreamBudget, send_body
from blobstore.rpc.messages import (
    PROTOCOL_VERSION,
    AuthChallenge,
    AuthConfirm,
    AuthRefused,
    AuthResponse,
    CallHeader,
    client_mac,
    server_mac,
)
from blobstore.rpc.transport import BodyChunk, empty_body
from blobstore.types import Address

__all__ = ["RpcClient"]

log = get_logger(__name__)

_REQUEST = int(FrameType.REQUEST)
_RESPONSE = int(FrameType.RESPONSE)
_CANCEL = int(FrameType.CANCEL)
_AUTH = int(FrameType.AUTH)
_MESSAGE = int(FrameType.MESSAGE)


class _ClientLink(Link):
    """Client half: handshake, pending calls by id, response streams."""

    def __init__(self, loop: asyncio.AbstractEventLoop, secret: bytes, owner: RpcClient) -> None:
        super().__init__(loop, window=owner.stream_window, budget=owner.stream_budget)
        self._secret = secret
        self._owner = owner
        self._client_nonce = os.urandom(32)
        self._server_nonce = b""
        self.ready: asyncio.Future[None] = loop.create_future()
        self.pending: dict[int, tuple[asyncio.Future[Any], float]] = {}
        self._next_id = 1
        self.addr: Address | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf

    def track(self, sid: int, fut: asyncio.Future[Any], deadline: float) -> None:
        """Register a pending call; one timer per link fires at the earliest deadline."""
        self.pending[sid] = (fut, deadline)
        if deadline < self._sweep_at:
            self._schedule_sweep(deadline)

    def _schedule_sweep(self, when: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep_at = when
        self._sweep = self.loop.call_at(when, self._sweep_deadlines)

    def _sweep_deadlines(self) -> None:
        self._sweep, self._sweep_at = None, math.inf
        now = self.loop.time() + 1e-6  # a timer may fire a hair early
        earliest = math.inf
        for sid, (_, deadline) in list(self.pending.items()):
            if deadline <= now:
                self.expire(sid)
            elif deadline < earliest:
                earliest = deadline
        if earliest < math.inf:
            self._schedule_sweep(earliest)

    def expire(self, sid: int) -> None:
        """Fail a pending call with DeadlineExceeded and tell the server to stop it."""
        entry = self.pending.pop(sid, None)
        if entry is None or entry[0].done():
            return
        exc = errors.DeadlineExceeded(f"call to {self.addr} timed out", addr=str(self.addr))
        entry[0].set_exception(exc)
        credit = self.out_streams.pop(sid, None)
        if credit is not None:
            credit.abort(exc)
        if self.is_open:
            self.write_frame(_CANCEL, 0, sid)

    def new_id(self) -> int:
        sid = self._next_id
        self._next_id = sid + 1 if sid < 0xFFFFFFFF else 1
        return sid

    def on_frame(self, ftype: int, flags: int, sid: int, payload: Payload) -> None:
        if ftype == _RESPONSE:
            entry = self.pending.pop(sid, None)
            if entry is None or entry[0].done():
                return  # late answer to an expired or cancelled call: dropped
            fut, deadline = entry
            try:
                reply = codec.decode(payload)
            except errors.ProtocolError as exc:
                fut.set_exception(exc)  # only this call fails; the framing is intact
                return
            stream = None
            if flags & FLAG_HAS_BODY:
                stream = InStream(self, sid, deadline)
                self.in_streams[sid] = stream
            credit = self.out_streams.pop(sid, None)
            if credit is not None:  # answered before the request body was fully sent
                credit.abort(_BodyNotNeeded())
            fut.set_result((reply, stream))
        elif ftype >= 4 and ftype <= 6:  # DATA / END / WINDOW
            self.handle_stream_frame(ftype, sid, payload)
        elif ftype == _AUTH:
            self._on_auth(payload)
        else:
            raise errors.ProtocolError(f"unexpected frame type {ftype} from server")

    def _on_auth(self, payload: Payload) -> None:
        msg = codec.decode(payload)
        if self.ready.done():
            raise errors.ProtocolError("handshake frame after the handshake")
        if isinstance(msg, AuthChallenge) and not self._server_nonce:
            if msg.version != PROTOCOL_VERSION or len(msg.server_nonce) < 16:
                raise errors.ProtocolError(f"unsupported handshake version {msg.version}")
            self._server_nonce = msg.server_nonce
            if msg.window > 0:
                self.peer_window = msg.window
            mac = client_mac(self._secret, msg.server_nonce, self._client_nonce)
            reply = AuthResponse(self._client_nonce, mac, self.window)
            self.write_frame(_AUTH, 0, 0, codec.encode(reply))
        elif isinstance(msg, AuthConfirm) and self._server_nonce:
            expected = server_mac(self._secret, self._server_nonce, self._client_nonce)
            if not _consteq(expected, msg.mac):
                exc = errors.AuthenticationFailed(
                    "server did not prove the cluster secret", peer=self.peer
                )
                self.ready.set_exception(exc)
                self.fail(exc)
                return
            self.set_max_payload(MAX_FRAME_PAYLOAD)
            self.ready.set_result(None)
        elif isinstance(msg, AuthRefused):
            exc = errors.AuthenticationFailed(f"refused by server: {msg.reason}", peer=self.peer)
            self.ready.set_exception(exc)
            self.fail(exc)
        else:
            raise errors.ProtocolError(f"unexpected handshake message {type(msg).__name__}")

    def on_lost(self, exc: BaseException) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if not self.ready.done():
            self.ready.set_exception(exc)
        pending, self.pending = self.pending, {}
        for fut, _ in pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._owner._forget(self)


class _BodyNotNeeded(Exception):
    """Internal: the server answered before reading the whole request body."""


def _consteq(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


@dataclass(slots=True)
class _DialState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    backoff_s: float = 0.0
    next_attempt: float = 0.0
    failures: int = 0
    awaiting_handshake: bool = False  # connected; the peer has not answered the handshake


class RpcClient:
    """TCP implementation of ``Transport``."""

    def __init__(
        self,
        secret: bytes,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 2.0,
        send_timeout_s: float = 0.5,
        max_send_buffer: int = 8 * 1024 * 1024,
        stream_window: int | None = None,
        stream_budget: StreamBudget | None = None,
        fail_fast: bool = False,
    ) -> None:
        if not secret:
            raise errors.ConfigError("the cluster secret must not be empty")
        self._secret = secret
        self._ssl = ssl_context
        self._clock = clock or SystemClock()
        self._backoff_base = backoff_base_s
        self._backoff_max = backoff_max_s
        self._send_timeout = send_timeout_s
        self._max_send_buffer = max_send_buffer
        self.stream_window = stream_window
        # response bodies' windows shared by all calls (see link.StreamBudget); when set,
        # each stream starts with the budget's base window instead of ``stream_window``
        self.stream_budget = stream_budget
        # fail_fast: a peer that refuses connections (or is in its redial backoff) fails
        # the call with Unavailable at once, so callers with alternatives (other metadata
        # nodes, parity shards) move on instead of waiting out their deadline.
        self._fail_fast = fail_fast
        self._links: dict[Address, _ClientLink] = {}
        self._dials: dict[Address, _DialState] = {}
        self._closed = False
        self.dial_attempts = 0
        self.dial_failures = 0
        self.dropped_sends = 0

    # -- connections ---------------------------------------------------------------------
    def _forget(self, link: _ClientLink) -> None:
        if link.addr is not None and self._links.get(link.addr) is link:
            del self._links[link.addr]

    async def _link(self, addr: Address, deadline: float) -> _ClientLink:
        link = self._links.get(addr)
        if link is not None and link.is_open and link.ready.done():
            return link
        if self._closed:
            raise errors.Unavailable("client is closed")
        loop = asyncio.get_running_loop()
        state = self._dials.setdefault(addr, _DialState())
        try:
            async with asyncio.timeout_at(deadline):
                async with state.lock:
                    return await self._dial_locked(addr, state, loop)
        except TimeoutError:
            why = ""
            if state.awaiting_handshake:  # e.g. TLS on one side only: neither end answers
                why = f" (no answer to the handshake; {self._tls_hint()})"
            raise errors.DeadlineExceeded(
                f"could not reach {addr} before the deadline{why}", addr=str(addr)
            ) from None

    async def _dial_locked(
        self, addr: Address, state: _DialState, loop: asyncio.AbstractEventLoop
    ) -> _ClientLink:
        while True:
            link = self._links.get(addr)
            if link is not None and link.is_open and link.ready.done():
                return link
            wait = state.next_attempt - self._clock.monotonic()
            if wait > 0:
                if self._fail_fast:
                    raise errors.Unavailable(
                        f"{addr} is unreachable (redial backoff)", addr=str(addr)
                    )
                await self._clock.sleep(wait)
            self.dial_attempts += 1
            try:
                link = await self._dial_once(addr, loop, state)
            except errors.AuthenticationFailed:
                self._note_failure(state)
                raise
            except (OSError, errors.Unavailable, errors.ProtocolError) as exc:
                self._note_failure(state)
                log.info("rpc dial failed", addr=str(addr), error=str(exc), retry_s=state.backoff_s)
                if self._fail_fast:
                    raise errors.Unavailable(
                        f"{addr} is unreachable: {exc}", addr=str(addr)
                    ) from None
                continue
            state.backoff_s = 0.0
            state.failures = 0
            state.next_attempt = 0.0
            self._links[addr] = link
            return link

    def _note_failure(self, state: _DialState) -> None:
        self.dial_failures += 1
        state.failures += 1
        state.backoff_s = min(self._backoff_max, max(self._backoff_base, state.backoff_s * 2))
        state.next_attempt = self._clock.monotonic() + state.backoff_s

    async def _dial_once(
        self, addr: Address, loop: asyncio.AbstractEventLoop, state: _DialState
    ) -> _ClientLink:
        link = _ClientLink(loop, self._secret, self)
        link.addr = addr
        state.awaiting_handshake = False
        await loop.create_connection(
            lambda: link,
            addr.host,
            addr.port,
            ssl=self._ssl,
            server_hostname=addr.host if self._ssl is not None else None,
        )
        state.awaiting_handshake = True  # left set if the deadline cancels the wait
        try:
            await link.ready
        except asyncio.CancelledError:
            link.close()
            raise
        except errors.Unavailable as exc:  # closed before the handshake: name the likely cause
            link.close()
            state.awaiting_handshake = False
            raise errors.Unavailable(
                f"{exc.message} during the handshake ({self._tls_hint()})", addr=str(addr)
            ) from None
        except BaseException:
            link.close()
            state.awaiting_handshake = False
            raise
        state.awaiting_handshake = False
        return link

    def _tls_hint(self) -> str:
        tls = "with" if self._ssl is not None else "without"
        return f"connected {tls} TLS; do both ends use TLS?"

    # -- Transport -----------------------------------------------------------------------
    async def call(
        self,
        addr: Address,
        request: object,
        *,
        timeout_s: float,
        body: AsyncIterable[BodyChunk] | None = None,
    ) -> object:
        """Unary call (optionally streaming a request body); see ``Transport.call``."""
        reply, stream = await self._call(addr, request, timeout_s, body)
        if stream is not None:
            await stream.aclose()
        return reply

    async def call_stream(
        self, addr: Address, request: object, *, timeout_s: float
    ) -> tuple[object, AsyncIterator[memoryview]]:
        """Call whose reply carries a bulk body; see ``Transport.call_stream``."""
        reply, stream = await self._call(addr, request, timeout_s, None)
        if stream is None:
            return reply, empty_body()
        return reply, stream

    async def _call(
        self,
        addr: Address,
        request: object,
        timeout_s: float,
        body: AsyncIterable[BodyChunk] | None,
    ) -> tuple[object, InStream | None]:
        link = self._links.get(addr)
        if link is not None and link.is_open and link.ready.done():
            loop = link.loop
            deadline = loop.time() + timeout_s
        else:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            link = await self._link(addr, deadline)
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise errors.DeadlineExceeded(f"call to {addr} timed out", addr=str(addr))
        header = CallHeader(int(remaining * 1000) + 1, current_trace_id(), request)
        payload = codec.encode(header)
        sid = link.new_id()
        fut: asyncio.Future[Any] = loop.create_future()
        link.track(sid, fut, deadline)
        try:
            link.write_frame(_REQUEST, FLAG_HAS_BODY if body is not None else 0, sid, payload)
            if body is not None:
                credit = OutCredit(loop, link.peer_window)
                link.out_streams[sid] = credit
                body_task = loop.create_task(send_body(link, sid, body, credit))
                try:
                    await asyncio.wait((fut, body_task), return_when=asyncio.FIRST_COMPLETED)
                    if body_task.done() and not fut.done():
                        exc = body_task.exception()
                        if exc is not None and not isinstance(exc, _BodyNotNeeded):
                            raise exc
                finally:
                    link.out_streams.pop(sid, None)
                    if not body_task.done():
                        credit.abort(_BodyNotNeeded())
                        body_task.cancel()
                        await asyncio.wait((body_task,))
                    if not body_task.cancelled():
                        body_task.exception()  # mark retrieved: raised above or moot now
            elif link._paused:
                await link.drain()
            reply, stream = await fut
        except BaseException:
            if link.pending.pop(sid, None) is not None and link.is_open:
                link.write_frame(_CANCEL, 0, sid)
            raise
        if isinstance(reply, errors.BlobstoreError):
            if stream is not None:
                await stream.aclose()
            raise reply
        return reply, stream

    async def send(self, addr: Address, message: object) -> None:
        """One-way, best effort: dropped if the peer is unreachable or backed up."""
        try:
            loop = asyncio.get_running_loop()
            link = self._links.get(addr)
            if link is None or not link.is_open or not link.ready.done():
                state = self._dials.get(addr)
                if state is not None and state.next_attempt > self._clock.monotonic():
                    self.dropped_sends += 1
                    return
                link = await self._link(addr, loop.time() + self._send_timeout)
            if link.write_buffer_size() > self._max_send_buffer:
                self.dropped_sends += 1
                return
            link.write_frame(_MESSAGE, 0, 0, codec.encode(message))
        except errors.BlobstoreError as exc:
            self.dropped_sends += 1
            log.debug("rpc one-way message dropped", addr=str(addr), error=str(exc))

    async def close(self) -> None:
        """Close every link; pending calls fail with Unavailable."""
        self._closed = True
        for link in list(self._links.values()):
            link.close()
        self._links.clear()
