"""The leader's maintenance loop: failure detection, repair and drain, on the event loop.

``MaintenanceDriver`` runs in every metadata node but acts only while that node is the
Raft leader: each ``interval_s`` it (1) proposes chunkserver state changes from the pure
``detector``, which also counts the heartbeats noted here and not replicated
(``note_heartbeat``, ``liveness``); (2) clears stale bad-shard reports and queues chunks
with current ones; (3) scans one bounded page of the chunk table (``planner.scan_page``),
so every chunk is visited once per pass whatever the catalog's size; (4) marks a draining
server ``drained`` once ``drain_clean_passes`` consecutive full passes found none of its
shards; (5) starts rebuilds (``planner.plan_chunk``) for the queued chunks, fewest good
shards first, up to ``repair_concurrency`` in flight (a finished rebuild starts the next
one at once) and ``repair_mb_s`` on average. A rebuild asks the target chunkserver
(``RepairShardRequest``, ``chunkserver.repair``) and then proposes ``UpdatePlacement``
stamped with the catalog time read before the rebuild; the FSM's preconditions turn a
duplicate or raced repair, or one whose target copy GC fenced since (``fences.py``), into
a no-op.

Nothing here is the source of truth: the queue is re-derived from the catalog by every new
leader, and the loop stops (cancelling its rebuilds) as soon as leadership or the term
changes. Proposals use an empty client id (no exactly-once session): every command it
proposes is idempotent or guarded by a precondition.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import random
import uuid
from dataclasses import dataclass
from typing import Protocol

from blobstore.clock import Clock, SystemClock
from blobstore.errors import BlobstoreError, PreconditionFailed
from blobstore.log import get_logger
from blobstore.rpc.transport import Transport
from chunkserver.repair import RepairShardRequest, RepairShardResponse, RepairSource
from metadata.fsm.commands import (
    ChunkserverHeartbeat,
    ClearBadShards,
    ClientCommand,
    Command,
    SetChunkserverState,
    ShardMove,
    UpdatePlacement,
)
from metadata.fsm.machine import encode_entry
from metadata.fsm.records import ChunkserverRecord
from metadata.fsm.results import ChunkserverUpdated, RepairStatus
from metadata.fsm.state import Catalog
from metadata.maintenance.detector import DetectorConfig, detect
from metadata.maintenance.liveness import DEFAULT_COMMIT_EVERY_MS, needs_commit
from metadata.maintenance.planner import RepairTask, bad_reports, plan_chunk, scan_page
from metadata.node import RaftNode

__all__ = ["LeaderNode", "MaintenanceDriver", "MaintenanceOptions", "RaftLeader"]

log = get_logger(__name__)

MB = 1_000_000
_RATE_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class MaintenanceOptions:
    interval_s: float = 1.0
    suspect_after_s: float = 10.0
    down_after_s: float = 60.0
    repair_concurrency: int = 4
    repair_mb_s: float = 0.0  # 0 = unlimited
    scan_chunks_per_round: int = 2000
    bad_reports_per_round: int = 1000
    repair_timeout_s: float = 600.0
    propose_timeout_s: float = 10.0
    retry_backoff_s: float = 5.0  # a failed rebuild of a shard waits this long
    drain_clean_passes: int = 2
    heartbeat_commit_s: float = DEFAULT_COMMIT_EVERY_MS / 1000  # see ``liveness``


class LeaderNode(Protocol):
    """What the driver needs of ``metadata.node.RaftNode``."""

    @property
    def is_leader(self) -> bool: ...

    def current_term(self) -> int: ...

    async def propose(self, data: bytes, timeout_s: float) -> object: ...


class RaftLeader:
    """Adapts ``RaftNode`` (term from its status) to ``LeaderNode``."""

    def __init__(self, node: RaftNode) -> None:
        self._node = node

    @property
    def is_leader(self) -> bool:
        return self._node.is_leader

    def current_term(self) -> int:
        return self._node.status().term

    async def propose(self, data: bytes, timeout_s: float) -> object:
        return await self._node.propose(data, timeout_s)


class MaintenanceDriver:
    """Runs the maintenance rounds while ``node`` leads; ``status()`` for the admin API."""

    def __init__(
        self,
        node: LeaderNode,
        catalog: Catalog,
        transport: Transport,
        options: MaintenanceOptions | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._node = node
        self._catalog = catalog
        self._transport = transport
        self.options = options or MaintenanceOptions()
        down_ms = max(1, int(self.options.down_after_s * 1000))
        suspect_ms = max(1, min(down_ms, int(self.options.suspect_after_s * 1000)))
        self._detector = DetectorConfig(suspect_ms, down_ms)
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[tuple[str, int], tuple[RepairTask, asyncio.Task[None]]] = {}
        self._backlog: dict[str, int] = {}  # chunk id -> good shards when last assessed
        self._retry_at: dict[tuple[str, int], float] = {}
        self._cursor: str | None = None
        self._pass_draining: set[int] = set()
        self._clean_passes: dict[int, int] = {}
        self._next_allowed = 0.0
        self._done_log: collections.deque[tuple[float, int]] = collections.deque()
        self._leading = False
        self._servers: dict[int, ChunkserverRecord] = {}  # as of the last round
        # server id -> catalog ms of the last heartbeat noted here (``note_heartbeat``);
        # never cleared: an entry from an earlier term is older than that term's end, so
        # the detector's ``leader_since_ms`` outweighs it
        self._heard: dict[int, int] = {}
        self.repairs_done = 0
        self.repairs_failed = 0
        self.repairs_noop = 0
        self.bytes_repaired = 0
        self.passes_completed = 0
        self.servers_marked = 0

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="maintenance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._cancel_inflight()

    def status(self) -> RepairStatus:
        now = self._clock.monotonic()
        while self._done_log and self._done_log[0][0] < now - _RATE_WINDOW_S:
            self._done_log.popleft()
        span = now - self._done_log[0][0] if self._done_log else 0.0
        rate = sum(b for _, b in self._done_log) / max(span, 1.0) if self._done_log else 0.0
        return RepairStatus(
            is_leader=self._leading,
            backlog=len(self._backlog),
            in_flight=len(self._inflight),
            repairs_done=self.repairs_done,
            repairs_failed=self.repairs_failed,
            repairs_noop=self.repairs_noop,
            bytes_repaired=self.bytes_repaired,
            repair_bytes_s=rate,
            passes_completed=self.passes_completed,
            servers_marked=self.servers_marked,
        )

    async def _run(self) -> None:
        while True:
            if self._node.is_leader:
                try:
                    await self._lead()
                except asyncio.CancelledError:
                    raise
                except Exception:  # never let one bad round kill the loop
                    log.exception("maintenance session failed")
            await self._clock.sleep(self.options.interval_s)

    async def _lead(self) -> None:
        term = self._node.current_term()
        leader_since_ms = self._now_ms()
        self._reset()
        self._leading = True
        log.info("maintenance started on the leader", term=term)
        try:
            while self._node.is_leader and self._node.current_term() == term:
                await self.run_round(leader_since_ms)
                await self._clock.sleep(self.options.interval_s)
        finally:
            self._leading = False
            await self._cancel_inflight()
            log.info("maintenance stopped (leadership lost)", term=term)

    def _reset(self) -> None:
        self._backlog.clear()
        self._retry_at.clear()
        self._cursor = None
        self._pass_draining.clear()
        self._clean_passes.clear()

    async def _cancel_inflight(self) -> None:
        tasks = [t for _, t in self._inflight.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()

    def note_heartbeat(self, heartbeat: ChunkserverHeartbeat) -> ChunkserverUpdated | None:
        """Note a heartbeat that reached this node as the leader: the answer to give
        without replicating it, or None when it must be replicated (``liveness``)."""
        now_ms = self._now_ms()
        sid = heartbeat.server_id
        self._heard[sid] = max(now_ms, self._heard.get(sid, 0))
        record = self._catalog.get_chunkserver(sid)
        scrub = self._catalog.get_scrub_progress(sid)
        every_ms = int(self.options.heartbeat_commit_s * 1000)
        if record is None or needs_commit(record, scrub, heartbeat, now_ms, every_ms):
            return None
        return ChunkserverUpdated(record)

    # -- one round ------------------------------------------------------------------------
    async def run_round(self, leader_since_ms: int) -> None:
        """Detect, scan one page, start rebuilds (public for tests)."""
        opts = self.options
        now_ms = self._now_ms()
        kv = self._catalog.kv
        servers = {s.server_id: s for s in self._catalog.list_chunkservers()}
        changes = detect(servers.values(), now_ms, leader_since_ms, self._detector, self._heard)
        for ch in changes:
            log.warning(
                "chunkserver state change", server_id=ch.server_id, old=ch.old, new=ch.new,
                silence_ms=ch.silence_ms,
            )  # fmt: skip
            if await self._propose_ok(SetChunkserverState(ch.server_id, ch.new)):
                self.servers_marked += 1
        servers = {s.server_id: s for s in self._catalog.list_chunkservers()}

        reports = bad_reports(kv, opts.bad_reports_per_round)
        if reports.stale:
            await self._propose_ok(ClearBadShards(reports.stale))
        for cid in reports.chunk_ids:
            self._backlog.setdefault(cid, 0)

        page = scan_page(kv, servers, self._cursor, opts.scan_chunks_per_round)
        for h in page.needy:
            self._backlog[h.chunk.chunk_id] = h.good
        self._pass_draining |= page.draining_seen
        self._cursor = page.next_after
        if page.next_after is None:
            await self._end_pass(servers)

        self._servers = servers
        self._drop_lost_targets(servers)
        self._dispatch(servers)

    def _drop_lost_targets(self, servers: dict[int, ChunkserverRecord]) -> None:
        """Cancel the rebuilds whose target stopped heartbeating (suspect, down, gone).

        A killed target process breaks its connections and fails its rebuild at once, but
        a target machine that hangs or loses power answers nothing: its rebuilds would hold
        their slots for ``repair_timeout_s``. Cancelled ones are planned again, elsewhere.
        """
        for task, t in list(self._inflight.values()):
            if t.done() or t.cancelling():  # already ending
                continue
            target = servers.get(task.to_server)
            if target is None or target.state in ("suspect", "down"):
                log.warning(
                    "repair target lost; rebuild cancelled", chunk_id=task.key[0],
                    shard=task.shard_index, to_server=task.to_server,
                    state=target.state if target is not None else "unknown",
                )  # fmt: skip
                self.repairs_failed += 1
                t.cancel()

    async def _end_pass(self, servers: dict[int, ChunkserverRecord]) -> None:
        self.passes_completed += 1
        moving = {task.from_server for task, _ in self._inflight.values()}
        for sid, s in servers.items():
            if s.state != "draining":
                self._clean_passes.pop(sid, None)
                continue
            if sid in self._pass_draining or sid in moving:
                self._clean_passes[sid] = 0
                continue
            self._clean_passes[sid] = self._clean_passes.get(sid, 0) + 1
            if self._clean_passes[sid] >= self.options.drain_clean_passes:
                log.info("drain complete", server_id=sid)
                if await self._propose_ok(SetChunkserverState(sid, "drained")):
                    self.servers_marked += 1
                    self._clean_passes.pop(sid, None)
        self._pass_draining.clear()

    def _dispatch(self, servers: dict[int, ChunkserverRecord]) -> None:
        opts = self.options
        now = self._clock.monotonic()
        self._retry_at = {k: t for k, t in self._retry_at.items() if t > now}
        busy = set(self._inflight) | set(self._retry_at)
        examined = 0
        for cid, _good in sorted(self._backlog.items(), key=lambda kv: (kv[1], kv[0])):
            slots = opts.repair_concurrency - len(self._inflight)
            if slots <= 0 or examined >= 20 * opts.repair_concurrency + 100:
                break
            if opts.repair_mb_s > 0 and now < self._next_allowed:
                break
            examined += 1
            targets = {task.to_server for task, _ in self._inflight.values() if task.key[0] == cid}
            health, tasks = plan_chunk(
                self._catalog.kv,
                cid,
                servers,
                busy=busy,
                busy_targets=targets,
                rng=self._rng,
                max_tasks=slots,
            )
            if health is None or not health.needs_work:
                self._backlog.pop(cid, None)
                continue
            self._backlog[cid] = health.good
            for task in tasks:
                t = asyncio.create_task(self._repair(task), name=f"repair-{cid}-{task.shard_index}")
                t.add_done_callback(functools.partial(self._forget, task.key))
                self._inflight[task.key] = (task, t)
                busy.add(task.key)

    # -- one rebuild ------------------------------------------------------------------------
    async def _repair(self, task: RepairTask) -> None:
        try:
            await self._rebuild(task)
        finally:
            self._forget(task.key, asyncio.current_task())
        if self._node.is_leader:  # a slot is free: start the next rebuild now
            self._dispatch(self._servers)

    def _forget(self, key: tuple[str, int], task: asyncio.Future[None] | None) -> None:
        """Free the slot of ``task`` (if it still holds ``key``'s): when it ends, and from
        its done callback too, for a task cancelled before it ever ran."""
        entry = self._inflight.get(key)
        if entry is not None and entry[1] is task:
            del self._inflight[key]

    async def _rebuild(self, task: RepairTask) -> None:
        c = task.chunk
        # read before the target writes anything: a copy GC fences from now on cannot be
        # placed by this repair (fences.py), so GC may delete it whatever this repair does
        started_ms = max(1, self._catalog.now_ms)
        try:
            req = RepairShardRequest(
                uuid.UUID(c.chunk_id).bytes,
                task.shard_index,
                c.k,
                c.m,
                c.coder,
                c.stripe_size,
                c.data_length,
                tuple(
                    RepairSource(
                        s.server_id, s.shard_index, int(s.checksum or "0", 16), str(s.addr)
                    )
                    for s in task.sources
                ),
                int(task.expected_checksum or "0", 16),
            )
            reply = await self._transport.call(
                task.to_addr, req, timeout_s=self.options.repair_timeout_s
            )
            if not isinstance(reply, RepairShardResponse):
                raise BlobstoreError(f"RepairShard answered {type(reply).__name__}")
            move = ShardMove(
                task.shard_index, task.from_server, task.to_server, f"{reply.checksum:x}"
            )
            result = await self._propose(UpdatePlacement(c.chunk_id, (move,), started_ms))
            if isinstance(result, PreconditionFailed):
                self.repairs_noop += 1
                log.info("repair superseded", chunk_id=c.chunk_id, shard=task.shard_index)
            elif isinstance(result, BlobstoreError):
                raise result
            else:
                self.repairs_done += 1
                self.bytes_repaired += reply.file_bytes
                self._done_log.append((self._clock.monotonic(), reply.file_bytes))
                if self.options.repair_mb_s > 0:
                    start = max(self._clock.monotonic(), self._next_allowed)
                    self._next_allowed = start + reply.file_bytes / (self.options.repair_mb_s * MB)
                log.info(
                    "shard repaired", chunk_id=c.chunk_id, shard=task.shard_index,
                    reason=task.reason, good=task.good, to_server=task.to_server,
                    from_server=task.from_server, bytes=reply.file_bytes,
                )  # fmt: skip
        except asyncio.CancelledError:
            raise
        except (BlobstoreError, ValueError, OSError) as e:
            self.repairs_failed += 1
            self._retry_at[task.key] = self._clock.monotonic() + self.options.retry_backoff_s
            log.warning(
                "repair failed", chunk_id=c.chunk_id, shard=task.shard_index,
                to_server=task.to_server, error=str(e),
            )  # fmt: skip

    def _now_ms(self) -> int:
        """Heartbeats are stamped with the catalog clock (the max of every proposer's
        clock), so silence is measured against it when a proposer's clock ran ahead."""
        return max(int(self._clock.time() * 1000), self._catalog.now_ms)

    # -- proposals ------------------------------------------------------------------------
    async def _propose(self, cmd: Command) -> object:
        entry = ClientCommand("", 0, int(self._clock.time() * 1000), cmd)
        return await self._node.propose(encode_entry(entry), self.options.propose_timeout_s)

    async def _propose_ok(self, cmd: Command) -> bool:
        try:
            result = await self._propose(cmd)
        except BlobstoreError as e:
            log.warning("maintenance proposal failed", command=type(cmd).__name__, error=str(e))
            return False
        if isinstance(result, BlobstoreError):
            log.warning(
                "maintenance command refused", command=type(cmd).__name__, error=str(result)
            )
            return False
        return True
