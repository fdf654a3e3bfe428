"""A simulated network for deterministic tests, and a ``Transport`` adapter on top of it.

``SimNetwork`` is a synchronous, pure core: no asyncio, sockets or wall clock. Every
``send`` draws, in a fixed order, from the injected ``random.Random`` (loss, duplication,
one delay per copy) and schedules delivery on the injected ``SimClock``; reordering comes
from the random delays. Same seed + same calls => same ``trace``.

Reachability of a link (src -> dst), checked at send time and again at delivery:
* a crashed node neither sends nor receives; messages in flight to it when it crashes
  are dropped, even if it restarts before they would arrive;
* ``partition(*groups)`` blocks both directions between nodes named in different groups
  (nodes named in no group are unaffected); a new call replaces the previous partition;
* ``block(src, dst)`` blocks one direction (``unblock`` opens it again); ``isolate(node)``
  blocks all of a node's links (``rejoin`` opens them again);
* ``slow(node, extra_s)`` delays every message to or from ``node`` by ``extra_s`` more;
* ``pause(node)`` is a stopped process (SIGSTOP): what arrives for it waits, what it sends
  is held, until ``resume(node)`` delivers the one (in order per sender, senders
  interleaved at random) and sends the other, in order (a crash loses both);
* ``heal()`` removes partitions, blocks, isolations and slowness (not crashes or pauses).

Trace entries: ``(time, event, src, dst, type_name)`` with events ``send``, ``deliver``,
``duplicate``, ``hold`` and ``drop-<reason>`` (reason: loss, partition, crashed, unknown).

``SimTransport`` implements ``Transport`` for async whole-cluster simulations: one per node,
addresses map to node ids, requests and replies travel as SimNetwork messages (round-tripped
through the codec so unencodable messages fail in tests too). It is deliberately simple:
bulk bodies travel whole inside one simulated message (no flow control), and someone must
advance the SimClock (see ``SimTransport.pump``).

Must not import: sockets; asyncio only in ``SimTransport``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from blobstore import errors
from blobstore.clock import SimClock
from blobstore.log import current_trace_id, trace_context
from blobstore.rpc import codec
from blobstore.rpc.transport import (
    BodyChunk,
    CallContext,
    Handler,
    MessageHandler,
    StreamResponse,
    empty_body,
)
from blobstore.types import Address, NodeId

__all__ = ["SimNetwork", "SimStats", "SimTransport", "TraceEntry"]

TraceEntry = tuple[float, str, int, int, str]
Deliver = Callable[[int, object], None]


@dataclass(frozen=True, slots=True)
class SimStats:
    """Per message type counters."""

    type_name: str
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0


@dataclass(slots=True)
class _Counts:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0


class SimNetwork:
    """Deterministic lossy network between registered node ids."""

    def __init__(self, rng: random.Random, clock: SimClock) -> None:
        self.rng = rng
        self.clock = clock
        self.drop_prob = 0.0
        self.duplicate_prob = 0.0
        self.min_delay_s = 0.001
        self.max_delay_s = 0.010
        self.trace: list[TraceEntry] = []
        self.record_trace = True
        self._nodes: dict[int, Deliver] = {}
        self._crashed: set[int] = set()
        self._incarnation: dict[int, int] = {}
        self._groups: dict[int, int] = {}
        self._blocked: set[tuple[int, int]] = set()
        self._isolated: set[int] = set()
        self._lag: dict[int, float] = {}  # node -> extra delay of its messages, both ways
        # paused node -> what it held, in order: (src, dst, msg), inbound and outbound
        self._paused: dict[int, list[tuple[int, int, object]]] = {}
        self._counts: dict[str, _Counts] = {}

    # -- configuration -------------------------------------------------------------------
    def configure(
        self,
        *,
        drop_prob: float | None = None,
        duplicate_prob: float | None = None,
        min_delay_s: float | None = None,
        max_delay_s: float | None = None,
    ) -> None:
        """Set the fault knobs (None leaves a knob unchanged)."""
        if drop_prob is not None:
            self.drop_prob = drop_prob
        if duplicate_prob is not None:
            self.duplicate_prob = duplicate_prob
        if min_delay_s is not None:
            self.min_delay_s = min_delay_s
        if max_delay_s is not None:
            self.max_delay_s = max_delay_s
        if not 0 <= self.min_delay_s <= self.max_delay_s:
            raise ValueError("need 0 <= min_delay_s <= max_delay_s")

    def register(self, node_id: int, deliver: Deliver) -> None:
        """Attach a node; ``deliver(src, msg)`` is called when a message arrives."""
        self._nodes[node_id] = deliver
        self._incarnation.setdefault(node_id, 0)

    def partition(self, *groups: set[int] | frozenset[int]) -> None:
        """Cut every link between nodes of different groups (both directions)."""
        self._groups = {}
        for i, group in enumerate(groups):
            for node in group:
                if node in self._groups:
                    raise ValueError(f"node {node} is in two partition groups")
                self._groups[node] = i

    def block(self, src: int, dst: int) -> None:
        """Cut the one-way link src -> dst."""
        self._blocked.add((src, dst))

    def unblock(self, src: int, dst: int) -> None:
        """Open the one-way link src -> dst cut by ``block`` (a no-op if it was open)."""
        self._blocked.discard((src, dst))

    def isolate(self, node: int) -> None:
        """Cut every link to and from ``node``."""
        self._isolated.add(node)

    def rejoin(self, node: int) -> None:
        """Undo ``isolate(node)`` (a no-op if it was not isolated)."""
        self._isolated.discard(node)

    def slow(self, node: int, extra_s: float) -> None:
        """Delay every message to or from ``node`` by ``extra_s`` more (0 undoes it): a
        server alive but lagging, the case read hedging is for."""
        if extra_s < 0:
            raise ValueError("extra delay must be >= 0")
        if extra_s:
            self._lag[node] = extra_s
        else:
            self._lag.pop(node, None)

    def pause(self, node: int) -> None:
        """Stop ``node``'s process: its traffic waits until ``resume`` (no-op if paused)."""
        self._paused.setdefault(node, [])

    def resume(self, node: int) -> None:
        """Continue a paused node: deliver what arrived for it, then send what it held.

        Arrivals keep their order per sender (one connection each) but senders interleave
        at random, as a process that wakes up reads its ready sockets in no set order."""
        held = self._paused.pop(node, None)
        if held is None:
            return
        per_sender: dict[int, deque[tuple[int, int, object]]] = {}
        for item in held:
            if item[1] == node:
                per_sender.setdefault(item[0], deque()).append(item)
        while per_sender:
            src = self.rng.choice(sorted(per_sender))
            self._hand_over(*per_sender[src].popleft())
            if not per_sender[src]:
                del per_sender[src]
        for src, dst, msg in held:
            if src == node and dst != node:
                self._transmit(src, dst, msg)

    def heal(self) -> None:
        """Remove partitions, one-way blocks, isolations and slowness."""
        self._groups = {}
        self._blocked.clear()
        self._isolated.clear()
        self._lag.clear()

    def crash(self, node: int) -> None:
        """The node stops sending and receiving; its in-flight inbound messages are lost."""
        self._crashed.add(node)
        self._incarnation[node] = self._incarnation.get(node, 0) + 1
        self._paused.pop(node, None)  # its socket buffers die with it

    def restart(self, node: int, deliver: Deliver | None = None) -> None:
        """Bring a crashed node back (optionally with a new delivery callback)."""
        self._crashed.discard(node)
        if deliver is not None:
            self._nodes[node] = deliver

    def can_reach(self, src: int, dst: int) -> bool:
        """Whether a message src -> dst would currently get through (ignoring loss)."""
        if src in self._crashed or dst in self._crashed:
            return False
        return self._link_open(src, dst)

    def _link_open(self, src: int, dst: int) -> bool:
        """Topology only: partitions, one-way blocks, isolation (not crashes)."""
        if src in self._isolated or dst in self._isolated:
            return src == dst
        if (src, dst) in self._blocked:
            return False
        gs, gd = self._groups.get(src), self._groups.get(dst)
        return gs is None or gd is None or gs == gd

    # -- traffic ---------------------------------------------------------------------------
    def send(self, src: int, dst: int, msg: object) -> None:
        """Queue ``msg`` for delivery (or drop it), by the current knobs and topology."""
        name = type(msg).__name__
        self._count(name).sent += 1
        self._trace("send", src, dst, name)
        held = self._paused.get(src)
        if held is not None:  # a stopped process sends nothing until it runs again
            self._trace("hold", src, dst, name)
            held.append((src, dst, msg))
            return
        self._transmit(src, dst, msg)

    def _transmit(self, src: int, dst: int, msg: object) -> None:
        name = type(msg).__name__
        counts = self._count(name)
        lost = self.rng.random() < self.drop_prob
        dup = self.rng.random() < self.duplicate_prob
        if dst not in self._nodes:
            return self._drop("unknown", src, dst, name)
        if not self.can_reach(src, dst):
            return self._drop("crashed" if self._is_down(src, dst) else "partition", src, dst, name)
        if lost:
            return self._drop("loss", src, dst, name)
        incarnation = self._incarnation[dst]
        for copy in range(2 if dup else 1):
            delay = self.rng.uniform(self.min_delay_s, self.max_delay_s)
            delay += self._lag.get(src, 0.0) + self._lag.get(dst, 0.0)
            if copy:
                counts.duplicated += 1
                self._trace("duplicate", src, dst, name)
            self.clock.call_later(delay, partial(self._arrive, src, dst, msg, incarnation))
        return None

    def _is_down(self, src: int, dst: int) -> bool:
        return src in self._crashed or dst in self._crashed

    def _arrive(self, src: int, dst: int, msg: object, incarnation: int) -> None:
        name = type(msg).__name__
        if self._incarnation.get(dst) != incarnation or dst in self._crashed:
            return self._drop("crashed", src, dst, name)
        if not self._link_open(src, dst):  # cut while in flight (a crashed sender's last
            return self._drop("partition", src, dst, name)  # messages still arrive)
        held = self._paused.get(dst)
        if held is not None:
            self._trace("hold", src, dst, name)
            held.append((src, dst, msg))
            return None
        self._hand_over(src, dst, msg)
        return None

    def _hand_over(self, src: int, dst: int, msg: object) -> None:
        name = type(msg).__name__
        self._count(name).delivered += 1
        self._trace("deliver", src, dst, name)
        self._nodes[dst](src, msg)

    def _drop(self, reason: str, src: int, dst: int, name: str) -> None:
        self._count(name).dropped += 1
        self._trace(f"drop-{reason}", src, dst, name)

    def _trace(self, event: str, src: int, dst: int, name: str) -> None:
        if self.record_trace:
            self.trace.append((self.clock.now, event, src, dst, name))

    def _count(self, name: str) -> _Counts:
        counts = self._counts.get(name)
        if counts is None:
            counts = self._counts[name] = _Counts()
        return counts

    # -- counters ------------------------------------------------------------------------
    def stats(self, msg_type: type | str) -> SimStats:
        """Counters of one message type (by class or class name)."""
        name = msg_type if isinstance(msg_type, str) else msg_type.__name__
        c = self._counts.get(name, _Counts())
        return SimStats(name, c.sent, c.delivered, c.dropped, c.duplicated)

    def all_stats(self) -> tuple[SimStats, ...]:
        """Counters of every message type seen, sorted by name."""
        return tuple(self.stats(name) for name in sorted(self._counts))


# -- async adapter -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SimRequest:
    call_id: int
    request: object
    body: bytes | None
    timeout_s: float
    trace_id: str


@dataclass(frozen=True, slots=True)
class _SimReply:
    call_id: int
    reply: object
    body: tuple[bytes, ...] | None


@dataclass(frozen=True, slots=True)
class _SimOneWay:
    message: object


@dataclass(slots=True)
class _PendingCall:
    fut: asyncio.Future[tuple[object, tuple[bytes, ...] | None]]
    timer: Any = field(default=None)


class SimTransport:
    """``Transport`` for one node on a SimNetwork; also serves that node's handlers."""

    def __init__(
        self,
        network: SimNetwork,
        node_id: NodeId,
        addresses: Mapping[Address, NodeId],
        *,
        roundtrip_codec: bool = True,
    ) -> None:
        self.network = network
        self.node_id = node_id
        self._addresses = dict(addresses)
        self._roundtrip = roundtrip_codec
        self._handlers: dict[type, Handler] = {}
        self._message_handlers: dict[type, MessageHandler] = {}
        self._pending: dict[int, _PendingCall] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        network.register(node_id, self._deliver)

    def handle(self, request_cls: type, handler: Handler) -> None:
        self._handlers[request_cls] = handler

    def on_message(self, message_cls: type, fn: MessageHandler) -> None:
        self._message_handlers[message_cls] = fn

    def _wire(self, obj: object) -> object:
        return codec.decode(codec.encode(obj)) if self._roundtrip else obj

    def _node(self, addr: Address) -> NodeId:
        node = self._addresses.get(addr)
        if node is None:
            raise errors.Unavailable(f"no simulated node at {addr}", addr=str(addr))
        return node

    async def call(
        self,
        addr: Address,
        request: object,
        *,
        timeout_s: float,
        body: AsyncIterable[BodyChunk] | None = None,
    ) -> object:
        data = None
        if body is not None:
            data = b"".join([bytes(chunk) async for chunk in body])
        reply, _ = await self._call(addr, request, timeout_s, data)
        return reply

    async def call_stream(
        self, addr: Address, request: object, *, timeout_s: float
    ) -> tuple[object, AsyncIterator[memoryview]]:
        reply, chunks = await self._call(addr, request, timeout_s, None)
        return reply, _iter_chunks(chunks or ())

    async def _call(
        self, addr: Address, request: object, timeout_s: float, body: bytes | None
    ) -> tuple[object, tuple[bytes, ...] | None]:
        if self._closed:
            raise errors.Unavailable("transport is closed")
        dst = self._node(addr)
        call_id = next(self._ids)
        fut: asyncio.Future[tuple[object, tuple[bytes, ...] | None]] = (
            asyncio.get_running_loop().create_future()
        )
        pending = _PendingCall(fut)
        pending.timer = self.network.clock.call_later(
            timeout_s, partial(self._expire, call_id, addr)
        )
        self._pending[call_id] = pending
        msg = _SimRequest(call_id, self._wire(request), body, timeout_s, current_trace_id())
        self.network.send(self.node_id, dst, msg)
        try:
            reply, chunks = await fut
        finally:
            self._pending.pop(call_id, None)
            self.network.clock.cancel(pending.timer)
        if isinstance(reply, errors.BlobstoreError):
            raise reply
        return reply, chunks

    def _expire(self, call_id: int, addr: Address) -> None:
        pending = self._pending.pop(call_id, None)
        if pending is not None and not pending.fut.done():
            pending.fut.set_exception(errors.DeadlineExceeded(f"call to {addr} timed out"))

    async def send(self, addr: Address, message: object) -> None:
        try:
            dst = self._node(addr)
        except errors.Unavailable:
            return
        if not self._closed:
            self.network.send(self.node_id, dst, _SimOneWay(self._wire(message)))

    async def close(self) -> None:
        self._closed = True
        for pending in list(self._pending.values()):
            if not pending.fut.done():
                pending.fut.set_exception(errors.Unavailable("transport closed"))
        for task in list(self._tasks):
            task.cancel()

    # -- receiving (called synchronously from SimClock callbacks) --------------------------
    def _deliver(self, src: int, msg: object) -> None:
        if self._closed:
            return
        if isinstance(msg, _SimReply):
            pending = self._pending.pop(msg.call_id, None)
            if pending is not None and not pending.fut.done():  # else: late, dropped
                pending.fut.set_result((msg.reply, msg.body))
        elif isinstance(msg, _SimRequest):
            self._spawn(self._serve(src, msg))
        elif isinstance(msg, _SimOneWay):
            fn = self._message_handlers.get(type(msg.message))
            if fn is not None:
                result = fn(msg.message)
                if result is not None:
                    self._spawn(result)

    def _spawn(self, aw: Any) -> None:
        task = asyncio.get_running_loop().create_task(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, src: int, msg: _SimRequest) -> None:
        handler = self._handlers.get(type(msg.request))
        reply: object
        chunks: tuple[bytes, ...] | None = None
        with trace_context(msg.trace_id or None) as tid:
            ctx = CallContext(
                f"sim:{src}",
                tid,
                self.network.clock.monotonic() + msg.timeout_s,
                _iter_chunks((msg.body,)) if msg.body else empty_body(),
            )
            try:
                if handler is None:
                    raise errors.ProtocolError(f"no handler for {type(msg.request).__name__}")
                result = await handler(msg.request, ctx)
                if isinstance(result, StreamResponse):
                    chunks = tuple([bytes(c) async for c in result.body if len(c)])
                    result = result.header
                reply = self._wire(result)
            except errors.BlobstoreError as exc:
                reply = exc
            except Exception as exc:
                reply = errors.InternalError(f"{type(exc).__name__}: {exc}")
        self.network.send(self.node_id, src, _SimReply(msg.call_id, reply, chunks))

    @staticmethod
    async def pump(clock: SimClock, seconds: float, *, step_s: float = 0.001) -> None:
        """Advance virtual time in steps, letting asyncio tasks run between steps."""
        end = clock.now + seconds
        while clock.now < end:
            clock.advance(min(step_s, end - clock.now))
            for _ in range(5):
                await asyncio.sleep(0)


async def _iter_chunks(chunks: tuple[bytes, ...]) -> AsyncIterator[memoryview]:
    for chunk in chunks:
        yield memoryview(chunk)
