"""The asyncio driver of one Raft node: persist -> send -> apply -> advance.

Owns the event-loop side of consensus; the protocol itself lives in ``metadata/raft``
(pure) and the replicated state machine behind ``StateMachine``. One task processes Ready
after Ready in the order ``metadata/raft/ready.py`` prescribes:

1. install a received snapshot (save it durably, compact the log to it, restore the FSM);
2. append entries and hard state to the log store, then ``fsync`` in a worker thread when
   the Ready says ``must_sync`` -- an entry counts toward commit on this node only after
   this returns, and votes/acks are sent only after it (they travel in ``messages``);
   a leader's own messages (appends, heartbeats) go out *before* its fsync, so the
   followers' disks work in parallel with the leader's (Raft thesis 10.2.1);
3. hand messages to per-peer outboxes (bounded; a full outbox drops and tells Raft the
   peer is unreachable, so one slow peer never stalls the others);
4. apply committed entries, resolve the proposals and linearizable reads waiting on them;
5. ``advance``.

Group commit falls out of this loop: proposals that arrive while an ``fsync`` runs are
appended to the core's unstable log and persisted together by the next Ready.
Only the loop thread touches the core and the in-memory log; worker threads only fsync
and serialize snapshots (from a copy-on-write view the FSM hands out).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from blobstore.clock import Clock, SystemClock
from blobstore.errors import DeadlineExceeded, NotLeader, Unavailable
from blobstore.log import get_logger
from blobstore.rpc.transport import Transport
from blobstore.types import Address, NodeId, parse_address
from metadata.raft.core import Config, ProposalDropped
from metadata.raft.messages import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    Message,
    Snapshot,
)
from metadata.raft.rawnode import RawNode, Status
from metadata.raft.ready import Ready, StateType
from metadata.storage.base import LogStore, SnapshotStore

__all__ = ["NodeOptions", "RaftNode", "StateMachine"]

log = get_logger(__name__)


class StateMachine(Protocol):
    """What the node replicates: deterministic apply, snapshot and restore."""

    def apply(self, index: int, data: bytes) -> object:
        """Apply one committed command; return its result (never raise for bad input)."""
        ...

    def snapshot(self) -> Callable[[], bytes]:
        """Freeze the current state (cheap) and return a serializer safe to run in a thread."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's."""
        ...


@dataclass(frozen=True, slots=True)
class NodeOptions:
    tick_s: float = 0.05
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    snapshot_entries: int = 10_000  # take a snapshot after this many applied entries
    outbox_messages: int = 4096  # per peer
    max_size_per_msg_bytes: int = 1 << 20
    max_inflight_msgs: int = 256
    max_snapshot_chunk_bytes: int = 1 << 20
    check_quorum: bool = True
    pre_vote: bool = True
    join: bool = False  # joining an existing cluster: learn membership from the leader


@dataclass(slots=True)
class _Proposal:
    term: int
    future: asyncio.Future[object]


class RaftNode:
    """One metadata node's consensus engine on the event loop."""

    def __init__(
        self,
        node_id: NodeId,
        peers: Mapping[NodeId, Address],
        log_store: LogStore,
        snapshots: SnapshotStore,
        fsm: StateMachine,
        transport: Transport,
        *,
        options: NodeOptions | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.id = node_id
        self.options = options or NodeOptions()
        self._peers: dict[NodeId, Address] = dict(peers)
        self._log_store = log_store
        self._snapshots = snapshots
        self._fsm = fsm
        self._transport = transport
        self._rng = rng or random.Random()
        self._clock = clock or SystemClock()  # paces the ticks (simulations pause it)
        self._raw: RawNode | None = None
        self._applied = 0
        self._snap_index = 0
        self._snapshotting = False
        self._wake = asyncio.Event()
        # Log/snapshot stores are not thread-safe: every mutation (and the fsync that
        # runs in a worker thread) happens under this lock.
        self._storage_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._outboxes: dict[NodeId, asyncio.Queue[Message]] = {}
        self._senders: dict[NodeId, asyncio.Task[None]] = {}
        self._proposals: dict[int, _Proposal] = {}
        self._reads_unissued: list[asyncio.Future[None]] = []
        self._reads_by_ctx: dict[bytes, list[asyncio.Future[None]]] = {}
        self._reads_waiting_apply: list[tuple[int, asyncio.Future[None]]] = []
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._read_seq = itertools.count(1)
        self._leader = 0
        self._state = StateType.FOLLOWER
        self.leader_changes = 0
        # Metrics hooks (blobstore.obs.metadata): (seconds, ok) per proposal that waited
        # for its outcome; (kind "taken"/"installed", seconds, bytes) per snapshot.
        self.on_proposal: Callable[[float, bool], None] | None = None
        self.on_snapshot: Callable[[str, float, int], None] | None = None
        self.failed = False
        self.failure = asyncio.Event()  # set when the node stopped itself on a fatal error

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Recover from storage and start the tick and Ready loops."""
        snap = await asyncio.to_thread(self._snapshots.load)
        if snap is not None and snap.meta.index > 0:
            if snap.meta.index > self._log_store.first_index() - 1:
                # The crash hit between saving the snapshot and compacting the log.
                self._log_store.compact(snap)
                await asyncio.to_thread(self._log_store.sync)
            self._fsm.restore(snap.data)
            self._applied = self._snap_index = snap.meta.index
        o = self.options
        cfg = Config(
            id=self.id,
            election_ticks=o.election_ticks,
            heartbeat_ticks=o.heartbeat_ticks,
            voters=() if o.join else tuple(sorted(self._peers)),
            applied=self._applied,
            max_size_per_msg_bytes=o.max_size_per_msg_bytes,
            max_inflight_msgs=o.max_inflight_msgs,
            max_snapshot_chunk_bytes=o.max_snapshot_chunk_bytes,
            check_quorum=o.check_quorum,
            pre_vote=o.pre_vote,
        )
        self._raw = RawNode(cfg, self._log_store, self._snapshots, self._rng)
        for peer in self._peers:
            if peer != self.id:
                self._ensure_outbox(peer)
        self._tasks.append(asyncio.create_task(self._tick_loop(), name=f"raft-tick-{self.id}"))
        self._tasks.append(asyncio.create_task(self._ready_loop(), name=f"raft-ready-{self.id}"))
        log.info("raft node started", node=self.id, applied=self._applied, peers=len(self._peers))

    async def stop(self) -> None:
        self._tasks.extend(self._senders.values())
        self._senders.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._fail_all(Unavailable("node stopped"))

    # -- state ---------------------------------------------------------------------------
    @property
    def raw(self) -> RawNode:
        if self._raw is None:
            raise RuntimeError("node not started")
        return self._raw

    @property
    def leader_id(self) -> NodeId:
        return self._leader

    @property
    def is_leader(self) -> bool:
        return self._state == StateType.LEADER

    @property
    def applied_index(self) -> int:
        return self._applied

    def peer_address(self, node_id: NodeId) -> Address | None:
        return self._peers.get(node_id)

    def peers(self) -> dict[NodeId, Address]:
        return dict(self._peers)

    def status(self) -> Status:
        return self.raw.status()

    def _not_leader(self) -> NotLeader:
        addr = self._peers.get(self._leader)
        return NotLeader(
            "not the leader",
            leader_id=str(self._leader),
            leader=str(addr) if addr and self._leader else "",
        )

    # -- inputs --------------------------------------------------------------------------
    def step(self, msg: Message) -> None:
        """Feed a message from a peer (the RPC server's one-way handler)."""
        if self._raw is None or msg.to != self.id:
            return
        self._raw.step(msg)
        self._wake.set()

    async def propose(self, data: bytes, timeout_s: float) -> object:
        """Replicate ``data``; return the state machine's result once applied here."""
        return await self._propose(lambda raw: raw.propose(data), timeout_s)

    async def propose_conf_change(self, cc: ConfChange, timeout_s: float) -> object:
        return await self._propose(lambda raw: raw.propose_conf_change(cc), timeout_s)

    async def _propose(self, append: Callable[[RawNode], int], timeout_s: float) -> object:
        raw = self.raw
        if not self.is_leader:
            raise self._not_leader()
        try:
            index = append(raw)
        except ProposalDropped as e:
            raise NotLeader(f"proposal dropped: {e.reason}", leader_id=str(self._leader)) from None
        fut: asyncio.Future[object] = _future()
        self._proposals[index] = _Proposal(raw.raft.term, fut)
        self._wake.set()
        started = asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            raise DeadlineExceeded("proposal outcome unknown: deadline passed") from None
        finally:
            if self.on_proposal is not None:
                ok = fut.done() and not fut.cancelled() and fut.exception() is None
                self.on_proposal(asyncio.get_running_loop().time() - started, ok)

    async def read_barrier(self, timeout_s: float) -> None:
        """Wait until this node may serve a linearizable read (ReadIndex, Raft §6.4)."""
        self.raw  # noqa: B018 - raises if not started
        if self._leader == 0:
            raise Unavailable("no leader known")
        fut: asyncio.Future[None] = _future()
        self._reads_unissued.append(fut)
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            raise DeadlineExceeded("read barrier: no quorum confirmation in time") from None

    async def wait_applied(self, index: int, timeout_s: float) -> None:
        """Wait until the state machine applied ``index`` (tests and followers)."""
        if self._applied >= index:
            return
        fut: asyncio.Future[None] = _future()
        self._applied_waiters.append((index, fut))
        await asyncio.wait_for(fut, timeout_s)

    def transfer_leadership(self, target: NodeId) -> None:
        self.raw.transfer_leader(target)
        self._wake.set()

    # -- loops ---------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while True:
            await self._clock.sleep(self.options.tick_s)  # the Raft clock: one tick per period
            self.raw.tick()
            self._wake.set()

    async def _ready_loop(self) -> None:
        raw = self.raw
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._reads_unissued:
                ctx = next(self._read_seq).to_bytes(8, "big")
                self._reads_by_ctx[ctx] = self._reads_unissued
                self._reads_unissued = []
                raw.read_index(ctx)
            while raw.has_ready():
                rd = raw.ready()
                try:
                    await self._handle_ready(rd)
                except BaseException as e:
                    # Never advance past a Ready we could not persist: that would tell
                    # Raft unsynced entries are durable. Stop; a restart recovers.
                    if not isinstance(e, asyncio.CancelledError):
                        log.exception("raft node failed; stopping", node=self.id)
                        self.failed = True
                        self.failure.set()
                    self._fail_all(Unavailable("raft node stopped"))
                    raise
                raw.advance(rd)
            self._maybe_snapshot()

    async def _handle_ready(self, rd: Ready) -> None:
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.lead, rd.soft_state.state)
        if rd.snapshot is not None:
            await self._install_snapshot(rd.snapshot)
        # A leader replicates while it writes its own disk (Raft thesis 10.2.1, as etcd
        # does): its messages are appends/heartbeats whose entries it counts for itself
        # only after advance() confirms they are durable. Everyone else's messages (votes,
        # append acks) vouch for state on disk, so they wait for the fsync.
        early = self._state == StateType.LEADER
        if early:
            for msg in rd.messages:
                self._send(msg)
        if rd.entries or rd.hard_state is not None or rd.must_sync:
            async with self._storage_lock:
                self._log_store.append(rd.entries, rd.hard_state)
                if rd.must_sync:
                    await asyncio.to_thread(self._log_store.sync)
        if not early:
            for msg in rd.messages:
                self._send(msg)
        for entry in rd.committed_entries:
            self._apply(entry)
        for rs in rd.read_states:
            futs = self._reads_by_ctx.pop(rs.context, [])
            if rs.index <= self._applied:
                _resolve_all(futs)
            else:
                self._reads_waiting_apply.extend((rs.index, f) for f in futs)
        self._after_apply()

    def _on_soft_state(self, lead: NodeId, state: StateType) -> None:
        if lead != self._leader:
            self.leader_changes += 1
            log.info("leader changed", node=self.id, leader=lead, state=state.name)
        was_leader = self._state == StateType.LEADER
        self._leader, self._state = lead, state
        if was_leader and state != StateType.LEADER:
            # Reads issued as leader can no longer be confirmed; proposals may still
            # commit under the next leader, so they wait for apply (or their deadline).
            err = Unavailable("leadership lost")
            for futs in self._reads_by_ctx.values():
                _fail_all_futures(futs, err)
            self._reads_by_ctx.clear()

    async def _install_snapshot(self, snap: Snapshot) -> None:
        started = asyncio.get_running_loop().time()
        async with self._storage_lock:
            await asyncio.to_thread(self._snapshots.save, snap)
            self._log_store.compact(snap)
            await asyncio.to_thread(self._log_store.sync)
        self._fsm.restore(snap.data)
        self._applied = self._snap_index = snap.meta.index
        for index in [i for i in self._proposals if i <= snap.meta.index]:
            prop = self._proposals.pop(index)
            if not prop.future.done():
                prop.future.set_exception(Unavailable("outcome unknown: replaced by snapshot"))
        log.info("snapshot installed", node=self.id, index=snap.meta.index)
        if self.on_snapshot is not None:
            elapsed = asyncio.get_running_loop().time() - started
            self.on_snapshot("installed", elapsed, len(snap.data))

    def _apply(self, entry: Entry) -> None:
        result: object = None
        if entry.type == EntryType.CONF_CHANGE:
            result = self._apply_conf_change(entry)
        elif entry.data:
            result = self._fsm.apply(entry.index, entry.data)
        self._applied = entry.index
        prop = self._proposals.pop(entry.index, None)
        if prop is not None and not prop.future.done():
            if prop.term == entry.term:
                prop.future.set_result(result)
            else:
                prop.future.set_exception(NotLeader("proposal lost to a leader change"))

    def _apply_conf_change(self, entry: Entry) -> object:
        cc = ConfChange.decode(entry.data)
        conf = self.raw.apply_conf_change(cc)
        if cc.type == ConfChangeType.REMOVE_NODE:
            self._peers.pop(cc.node_id, None)
            self._outboxes.pop(cc.node_id, None)
            sender = self._senders.pop(cc.node_id, None)
            if sender is not None:
                sender.cancel()
        elif cc.context:
            try:
                self._peers[cc.node_id] = parse_address(cc.context.decode())
            except (UnicodeDecodeError, ValueError):
                log.error("conf change with a bad address", node=cc.node_id)
            if cc.node_id != self.id:
                self._ensure_outbox(cc.node_id)
        log.info("membership changed", node=self.id, voters=conf.voters, learners=conf.learners)
        return conf

    def _after_apply(self) -> None:
        applied = self._applied
        if self._reads_waiting_apply:
            still = []
            for index, fut in self._reads_waiting_apply:
                if index <= applied:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    still.append((index, fut))
            self._reads_waiting_apply = still
        if self._applied_waiters:
            keep = []
            for index, fut in self._applied_waiters:
                if index <= applied:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    keep.append((index, fut))
            self._applied_waiters = keep

    # -- snapshots -----------------------------------------------------------------------
    def _maybe_snapshot(self) -> None:
        if self._snapshotting or self._applied - self._snap_index < self.options.snapshot_entries:
            return
        self._snapshotting = True
        index = self._applied
        serialize = self._fsm.snapshot()  # frozen view; apply continues meanwhile
        task = asyncio.create_task(self._take_snapshot(index, serialize))
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _take_snapshot(self, index: int, serialize: Callable[[], bytes]) -> None:
        started = asyncio.get_running_loop().time()
        try:
            data = await asyncio.to_thread(serialize)
            snap = self.raw.create_snapshot(index, data)
            async with self._storage_lock:
                if snap.meta.index <= self._snap_index:
                    return  # a newer snapshot was installed meanwhile
                await asyncio.to_thread(self._snapshots.save, snap)
                self._log_store.compact(snap)
                await asyncio.to_thread(self._log_store.sync)
                self._snap_index = snap.meta.index
            log.info("snapshot taken", node=self.id, index=index, bytes=len(data))
            if self.on_snapshot is not None:
                elapsed = asyncio.get_running_loop().time() - started
                self.on_snapshot("taken", elapsed, len(data))
        except ValueError as e:  # the log moved under us (a newer snapshot was installed)
            log.warning("snapshot skipped", node=self.id, reason=str(e))
        finally:
            self._snapshotting = False

    # -- sending -------------------------------------------------------------------------
    def _ensure_outbox(self, peer: NodeId) -> None:
        if peer in self._outboxes:
            return
        box: asyncio.Queue[Message] = asyncio.Queue(self.options.outbox_messages)
        self._outboxes[peer] = box
        self._senders[peer] = asyncio.create_task(
            self._sender(peer, box), name=f"raft-send-{self.id}-{peer}"
        )

    def _send(self, msg: Message) -> None:
        box = self._outboxes.get(msg.to)
        if box is None:
            return
        try:
            box.put_nowait(msg)
        except asyncio.QueueFull:
            self.raw.report_unreachable(msg.to)

    async def _sender(self, peer: NodeId, box: asyncio.Queue[Message]) -> None:
        while True:
            msg = await box.get()
            addr = self._peers.get(peer)
            if addr is None:
                continue
            try:
                await self._transport.send(addr, msg)
            except Exception as e:  # the transport must not kill the sender
                log.warning("send failed", node=self.id, peer=peer, error=repr(e))

    def _fail_all(self, err: Exception) -> None:
        for prop in self._proposals.values():
            if not prop.future.done():
                prop.future.set_exception(err)
        self._proposals.clear()
        _fail_all_futures(self._reads_unissued, err)
        for futs in self._reads_by_ctx.values():
            _fail_all_futures(futs, err)
        _fail_all_futures([f for _, f in self._reads_waiting_apply], err)
        _fail_all_futures([f for _, f in self._applied_waiters], err)


def _future() -> asyncio.Future[Any]:
    """A future whose exception counts as observed (its waiter may have timed out)."""
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    return fut


def _resolve_all(futs: list[asyncio.Future[None]]) -> None:
    for fut in futs:
        if not fut.done():
            fut.set_result(None)


def _fail_all_futures(futs: list[asyncio.Future[None]], err: Exception) -> None:
    for fut in futs:
        if not fut.done():
            fut.set_exception(err)
