"""``RpcServer``: accepts authenticated links and runs typed handlers.

Per link: the server sends an ``AuthChallenge`` first and processes nothing but the
handshake until the peer has proved the cluster secret (pre-auth frames are capped at 4 KiB
and the handshake must finish within ``handshake_timeout_s``); a peer that fails is sent
``AuthRefused``, logged, and disconnected. Malformed frames or messages drop that link
with a log line; the server keeps serving everyone else.

Each request runs in its own task, under the caller's trace id and cancelled at the
caller's deadline (answered with ``DeadlineExceeded``) or on the caller's CANCEL. A
``BlobstoreError`` from a handler goes back as itself; anything else is logged and sent as
``InternalError``. At most ``max_inflight`` requests per link run at once; past that the
server stops reading that link (TCP back-pressure to the caller).

Must not import: service packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import inspect
import math
import os
import ssl
from collections.abc import Awaitable
from typing import Any

from blobstore import errors
from blobstore.log import get_logger, trace_context
from blobstore.rpc import codec
from blobstore.rpc.frames import FLAG_HAS_BODY, MAX_FRAME_PAYLOAD, FrameType, Payload
from blobstore.rpc.link import InStream, Link, OutCredit, send_body
from blobstore.rpc.messages import (
    PROTOCOL_VERSION,
    AuthChallenge,
    AuthConfirm,
    AuthRefused,
    AuthResponse,
    CallHeader,
    Ping,
    Pong,
    client_mac,
    server_mac,
)
from blobstore.rpc.transport import (
    CallContext,
    Handler,
    MessageHandler,
    StreamResponse,
    empty_body,
)
from blobstore.types import Address

__all__ = ["RpcServer"]

log = get_logger(__name__)

_AUTH = int(FrameType.AUTH)
_REQUEST = int(FrameType.REQUEST)
_RESPONSE = int(FrameType.RESPONSE)
_END = int(FrameType.END)
_CANCEL = int(FrameType.CANCEL)
_MESSAGE = int(FrameType.MESSAGE)


async def _ping(request: Ping, ctx: CallContext) -> Pong:
    return Pong(request.seq, request.payload)


class RpcServer:
    """Serves registered handlers on one TCP listener."""

    def __init__(
        self,
        secret: bytes,
        *,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout_s: float = 10.0,
        max_inflight: int = 4096,
        max_message_tasks: int = 1024,
        stream_window: int | None = None,
    ) -> None:
        if not secret:
            raise errors.ConfigError("the cluster secret must not be empty")
        self._secret = secret
        self._ssl = ssl_context
        self.handshake_timeout_s = handshake_timeout_s
        self.max_inflight = max_inflight
        self.max_message_tasks = max_message_tasks
        self.stream_window = stream_window
        self._handlers: dict[type, Handler] = {Ping: _ping}
        self._message_handlers: dict[type, MessageHandler] = {}
        self._server: asyncio.Server | None = None
        self._links: set[_ServerLink] = set()
        self.refused = 0
        self.dropped_links = 0
        self.dropped_messages = 0

    def handle(self, request_cls: type, handler: Handler) -> None:
        """Route requests of ``request_cls`` to ``handler(request, ctx)``."""
        self._handlers[request_cls] = handler

    def on_message(self, message_cls: type, fn: MessageHandler) -> None:
        """Route one-way messages of ``message_cls`` to ``fn(message)`` (sync or async)."""
        self._message_handlers[message_cls] = fn

    @property
    def address(self) -> Address | None:
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return Address(host, port)

    async def start(self, addr: Address) -> Address:
        """Listen on ``addr`` (port 0 picks a free port); return the actual address."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerLink(loop, self),
            addr.host,
            addr.port,
            ssl=self._ssl,
            # the TLS handshake precedes connection_made (and so the RPC handshake's own
            # timer): bound it the same, not asyncio's 60 s
            ssl_handshake_timeout=self.handshake_timeout_s if self._ssl is not None else None,
        )
        actual = self.address
        assert actual is not None
        log.info("rpc server listening", addr=str(actual), tls=self._ssl is not None)
        return actual

    async def stop(self) -> None:
        """Stop listening, drop every link, cancel running handlers."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks: list[asyncio.Task[Any]] = []
        for link in list(self._links):
            tasks.extend(link.tasks.values())
            tasks.extend(link.message_tasks)
            link.close(abort=True)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if server is not None:
            await server.wait_closed()


class _ServerLink(Link):
    def __init__(self, loop: asyncio.AbstractEventLoop, server: RpcServer) -> None:
        super().__init__(loop, window=server.stream_window)
        self.server = server
        self.authenticated = False
        self._nonce = os.urandom(32)
        self._trace_prefix = self._nonce[:4].hex().upper()  # ids for calls sent without one
        self._timer: asyncio.TimerHandle | None = None
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.deadlines: dict[int, float] = {}
        self.expired: set[int] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf
        self.message_tasks: set[asyncio.Task[None]] = set()
        self._reading_paused = False

    def on_open(self) -> None:
        self.server._links.add(self)
        challenge = AuthChallenge(PROTOCOL_VERSION, self._nonce, self.window)
        self.write_frame(_AUTH, 0, 0, codec.encode(challenge))
        self._timer = self.loop.call_later(
            self.server.handshake_timeout_s, self._refuse, "handshake timed out"
        )

    def on_lost(self, exc: BaseException) -> None:
        self.server._links.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        if self._sweep is not None:
            self._sweep.cancel()
        for task in self.tasks.values():
            task.cancel()

    def fail(self, exc: BaseException) -> None:
        if self.lost is None:
            self.server.dropped_links += 1
            if not self.authenticated:  # garbage before the handshake is a refusal too
                self.server.refused += 1
                log.warning("rpc peer refused", peer=self.peer, reason=str(exc))
        super().fail(exc)

    def _refuse(self, reason: str) -> None:
        if self.lost is not None or self.transport is None:
            return
        self.server.refused += 1
        log.warning("rpc peer refused", peer=self.peer, reason=reason)
        self.write_frame(_AUTH, 0, 0, codec.encode(AuthRefused(reason)))
        self.lost = errors.AuthenticationFailed(reason, peer=self.peer)
        self.close()

    def _on_handshake(self, ftype: int, payload: Payload) -> None:
        if ftype != _AUTH:
            self._refuse(f"frame type {ftype} before the handshake")
            return
        try:
            msg = codec.decode(payload)
        except errors.ProtocolError as exc:
            self._refuse(f"undecodable handshake: {exc.message}")
            return
        if not isinstance(msg, AuthResponse) or len(msg.client_nonce) < 16:
            self._refuse(f"unexpected handshake message {type(msg).__name__}")
            return
        expected = client_mac(self.server._secret, self._nonce, msg.client_nonce)
        if not hmac.compare_digest(expected, msg.mac):
            self._refuse("client did not prove the cluster secret")
            return
        self.authenticated = True
        if msg.window > 0:
            self.peer_window = msg.window
        if self._timer is not None:
            self._timer.cancel()
        self.set_max_payload(MAX_FRAME_PAYLOAD)
        mac = server_mac(self.server._secret, self._nonce, msg.client_nonce)
        self.write_frame(_AUTH, 0, 0, codec.encode(AuthConfirm(mac)))

    def on_frame(self, ftype: int, flags: int, sid: int, payload: Payload) -> None:
        if not self.authenticated:
            self._on_handshake(ftype, payload)
        elif ftype == _REQUEST:
            self._on_request(flags, sid, payload)
        elif 4 <= ftype <= 6:  # DATA / END / WINDOW
            self.handle_stream_frame(ftype, sid, payload)
        elif ftype == _CANCEL:
            task = self.tasks.pop(sid, None)
            if task is not None:
                task.cancel()
            stream = self.in_streams.pop(sid, None)
            if stream is not None:
                stream.finish(errors.Unavailable("caller cancelled the call"))
            credit = self.out_streams.pop(sid, None)
            if credit is not None:
                credit.abort(errors.Unavailable("caller cancelled the stream"))
        elif ftype == _MESSAGE:
            self._on_message(payload)
        else:
            raise errors.ProtocolError(f"unexpected frame type {ftype} from client")

    def _on_request(self, flags: int, sid: int, payload: Payload) -> None:
        try:
            header = codec.decode(payload)
            if not isinstance(header, CallHeader):
                raise errors.ProtocolError(f"REQUEST carries {type(header).__name__}")
        except errors.ProtocolError as exc:
            # the framing is intact, so only this call fails (e.g. a newer peer's message
            # type we do not know); its body, if any, is ignored as it arrives
            log.warning("rpc undecodable request", peer=self.peer, error=exc.message)
            self.write_frame(_RESPONSE, 0, sid, codec.encode(exc))
            return
        if sid in self.tasks:
            raise errors.ProtocolError(f"call id {sid} reused while in flight")
        loop = self.loop
        deadline = loop.time() + max(0, header.timeout_ms) / 1000.0
        stream = None
        if flags & FLAG_HAS_BODY:
            stream = InStream(self, sid, deadline)
            self.in_streams[sid] = stream
        task = loop.create_task(self._run(sid, header, stream, deadline))
        self.tasks[sid] = task
        self.deadlines[sid] = deadline
        task.add_done_callback(functools.partial(self._task_done, sid))
        if deadline < self._sweep_at:
            self._schedule_sweep(deadline)
        if len(self.tasks) >= self.server.max_inflight and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True

    def _schedule_sweep(self, when: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep_at = when
        self._sweep = self.loop.call_at(when, self._sweep_deadlines)

    def _sweep_deadlines(self) -> None:
        """Cancel handlers past their deadline (one timer per link, not one per call)."""
        self._sweep, self._sweep_at = None, math.inf
        now = self.loop.time()
        earliest = math.inf
        for sid, deadline in list(self.deadlines.items()):
            if deadline <= now:
                del self.deadlines[sid]
                task = self.tasks.get(sid)
                if task is not None and not task.done():
                    self.expired.add(sid)
                    task.cancel()
            elif deadline < earliest:
                earliest = deadline
        if earliest < math.inf:
            self._schedule_sweep(max(earliest, now + 0.001))

    def _task_done(self, sid: int, task: asyncio.Task[None]) -> None:
        if self.tasks.get(sid) is task:
            del self.tasks[sid]
            self.deadlines.pop(sid, None)
            self.expired.discard(sid)
        if self._reading_paused and len(self.tasks) < self.server.max_inflight // 2:
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()

    async def _run(
        self, sid: int, header: CallHeader, stream: InStream | None, deadline: float
    ) -> None:
        request = header.request
        header_sent = False
        # a caller without a trace id gets one here: link-random prefix + call id (cheaper
        # than a urandom syscall per call, and still unique per link)
        with trace_context(header.trace_id or f"{self._trace_prefix}{sid:08X}") as tid:
            ctx = CallContext(self.peer, tid, deadline, stream if stream else empty_body())
            reply: object
            try:
                handler = self.server._handlers.get(type(request))
                if handler is None:
                    raise errors.ProtocolError(f"no handler for {type(request).__name__}")
                result = await handler(request, ctx)
                if isinstance(result, StreamResponse):
                    self.write_frame(_RESPONSE, FLAG_HAS_BODY, sid, codec.encode(result.header))
                    header_sent = True
                    await self._stream_out(sid, result)
                    return
                reply = result
            except asyncio.CancelledError:
                if sid not in self.expired:
                    raise  # the caller cancelled, or the server is stopping: no reply
                reply = errors.DeadlineExceeded(
                    f"{type(request).__name__} passed its deadline on the server"
                )
            except errors.BlobstoreError as exc:
                reply = exc
            except Exception as exc:
                log.exception("rpc handler failed", request=type(request).__name__)
                reply = errors.InternalError(f"{type(exc).__name__}: {exc}")
            finally:
                if stream is not None:
                    self.in_streams.pop(sid, None)
            if not self.is_open:
                return
            try:
                payload = codec.encode(reply)
            except TypeError as exc:
                log.error("rpc handler returned an unencodable reply", error=str(exc))
                payload = codec.encode(errors.InternalError(str(exc)))
            if not header_sent:
                self.write_frame(_RESPONSE, 0, sid, payload)
            elif isinstance(reply, errors.BlobstoreError):
                self.write_frame(_END, 0, sid, payload)
            if self._paused:  # hold this call's slot while the caller is not reading
                with contextlib.suppress(errors.BlobstoreError):
                    await self.drain()

    async def _stream_out(self, sid: int, result: StreamResponse) -> None:
        credit = OutCredit(self.loop, self.peer_window)
        self.out_streams[sid] = credit
        try:
            await send_body(self, sid, result.body, credit)
        finally:
            self.out_streams.pop(sid, None)

    def _on_message(self, payload: Payload) -> None:
        try:
            msg = codec.decode(payload)
        except errors.ProtocolError as exc:
            self.server.dropped_messages += 1
            log.warning("rpc undecodable one-way message", peer=self.peer, error=exc.message)
            return
        fn = self.server._message_handlers.get(type(msg))
        if fn is None:
            log.warning("rpc one-way message without handler", type=type(msg).__name__)
            return
        try:
            result = fn(msg)
        except Exception:
            log.exception("rpc message handler failed", type=type(msg).__name__)
            return
        if inspect.isawaitable(result):
            if len(self.message_tasks) >= self.server.max_message_tasks:
                self.server.dropped_messages += 1
                _close_awaitable(result)
                return
            task = self.loop.create_task(_guard(result, type(msg).__name__))
            self.message_tasks.add(task)
            task.add_done_callback(self.message_tasks.discard)


async def _guard(aw: Awaitable[None], name: str) -> None:
    try:
        await aw
    except Exception:
        log.exception("rpc message handler failed", type=name)


def _close_awaitable(aw: Awaitable[None]) -> None:
    close = getattr(aw, "close", None)
    if close is not None:
        close()
