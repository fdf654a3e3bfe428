"""The maintenance driver's asyncio shell over a real catalog, a fake Raft node and a fake
chunkserver transport: it marks silent servers down, repairs through UpdatePlacement,
drains, treats superseded repairs as no-ops, and stops on leadership loss."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from blobstore.clock import SystemClock
from blobstore.errors import Unavailable
from blobstore.testing.poll import eventually
from blobstore.types import Address
from chunkserver.repair import RepairShardRequest, RepairShardResponse
from metadata.fsm import keyspace as ks
from metadata.fsm.commands import (
    ChunkserverHeartbeat,
    ClearBadShards,
    ClientCommand,
    CommitObject,
    CreateBucket,
    DeleteObject,
    RegisterChunkserver,
    ReportBadShards,
    SetChunkserverState,
    UpdatePlacement,
)
from metadata.fsm.machine import decode_entry
from metadata.fsm.records import Chunk, ShardPlacement, ShardRef
from metadata.fsm.state import Catalog
from metadata.maintenance.driver import MaintenanceDriver, MaintenanceOptions

K, M = 4, 2


class FakeNode:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.is_leader = True
        self.term = 1
        self.proposed: list[object] = []

    def current_term(self) -> int:
        return self.term

    async def propose(self, data: bytes, timeout_s: float) -> object:
        if not self.is_leader:
            raise Unavailable("not leader")
        entry = decode_entry(data)
        self.proposed.append(entry.command)
        return self.catalog.apply(entry)


class FakeChunkservers:
    """Answers RepairShardRequest like a chunkserver whose rebuild succeeded."""

    def __init__(self) -> None:
        self.requests: list[tuple[Address, RepairShardRequest]] = []
        self.fail = False

    async def call(
        self,
        addr: Address,
        request: object,
        *,
        timeout_s: float,
        body: AsyncIterable[Any] | None = None,
    ) -> object:
        assert isinstance(request, RepairShardRequest)
        self.requests.append((addr, request))
        if self.fail:
            raise Unavailable("target unreachable")
        checksum = request.expected_checksum or 0xBEEF
        return RepairShardResponse(request.chunk_id, request.shard_index, checksum, 10, 4106)

    async def call_stream(
        self, addr: Address, request: object, *, timeout_s: float
    ) -> tuple[object, AsyncIterator[memoryview]]:
        raise NotImplementedError

    async def send(self, addr: Address, message: object) -> None:
        return None

    async def close(self) -> None:
        return None


def _apply(cat: Catalog, cmd: object, now_ms: int) -> object:
    return cat.apply(ClientCommand("", 0, now_ms, cmd))  # type: ignore[arg-type]


def _world(now_ms: int, n_servers: int = 8, n_chunks: int = 5) -> tuple[Catalog, list[str]]:
    cat = Catalog()
    for sid in range(1, n_servers + 1):
        _apply(
            cat,
            RegisterChunkserver(sid, Address("127.0.0.1", 9000 + sid), "", 1 << 30, 1 << 29),
            now_ms,
        )
    _apply(cat, CreateBucket("bkt", "t"), now_ms)
    ids = []
    for i in range(n_chunks):
        cid = str(uuid.UUID(int=i + 1))
        shards = tuple(ShardPlacement(1 + (i + j) % 6, j, f"{j + 1:x}") for j in range(K + M))
        c = Chunk(cid, "zfec", K, M, 1 << 16, 100_000, shards)
        _apply(cat, CommitObject("bkt", f"k{i}", "", "t", c.data_length, "e", chunks=(c,)), now_ms)
        ids.append(cid)
    return cat, ids


def _opts(**kw: Any) -> MaintenanceOptions:
    base: dict[str, Any] = dict(
        interval_s=0.01, suspect_after_s=1.0, down_after_s=2.0, repair_concurrency=3,
        scan_chunks_per_round=2, drain_clean_passes=2,
    )  # fmt: skip
    base.update(kw)
    return MaintenanceOptions(**base)


def _placed_on(cat: Catalog, ids: list[str], server_id: int) -> int:
    n = 0
    for cid in ids:
        rec = cat.get_chunk(cid)
        assert rec is not None
        n += sum(1 for s in rec.chunk.shards if s.server_id == server_id)
    return n


async def test_silent_server_goes_down_and_its_shards_are_rebuilt() -> None:
    clock = SystemClock()
    now = int(clock.time() * 1000)
    cat, ids = _world(now - 10_000)  # registered (last heartbeat) 10 s ago
    for sid in range(2, 9):  # everyone but server 1 keeps beating
        _apply(cat, ChunkserverHeartbeat(sid, 1 << 30, 1 << 29), now)
    node, cs = FakeNode(cat), FakeChunkservers()
    driver = MaintenanceDriver(node, cat, cs, _opts(), rng=random.Random(3))
    await driver.run_round(leader_since_ms=now - 60_000)
    assert SetChunkserverState(1, "down") in node.proposed
    for _ in range(50):
        if _placed_on(cat, ids, 1) == 0 and driver.status().in_flight == 0:
            break
        await driver.run_round(leader_since_ms=now - 60_000)
        await eventually(lambda: driver.status().in_flight == 0, timeout_s=5)
    assert _placed_on(cat, ids, 1) == 0
    st = driver.status()
    assert st.repairs_done == len(ids) and st.bytes_repaired == 4106 * len(ids)
    for addr, req in cs.requests:
        assert addr.port != 9001 and len(req.sources) >= K
        assert all(s.server_id != 1 for s in req.sources)
    moves = [c for c in node.proposed if isinstance(c, UpdatePlacement)]
    assert all(m.moves[0].checksum == f"{m.moves[0].shard_index + 1:x}" for m in moves)
    # each carries the catalog time read before its rebuild (GC shard fences, fences.py)
    assert all(0 < m.started_ms <= cat.now_ms for m in moves)
    for cid in ids:
        rec = cat.get_chunk(cid)
        assert rec is not None and len({s.server_id for s in rec.chunk.shards}) == K + M


async def test_drain_moves_everything_then_marks_drained_and_bad_reports_repair() -> None:
    now = int(SystemClock().time() * 1000)
    cat, ids = _world(now)
    _apply(cat, SetChunkserverState(2, "draining"), now)
    _apply(cat, ReportBadShards((ShardRef(ids[0], 4, 3),), "corrupt"), now)
    node, cs = FakeNode(cat), FakeChunkservers()
    driver = MaintenanceDriver(node, cat, cs, _opts(), rng=random.Random(5))
    for _ in range(100):
        await driver.run_round(leader_since_ms=now)
        await eventually(lambda: driver.status().in_flight == 0, timeout_s=5)
        if cat.list_chunkservers()[1].state == "drained":
            break
    assert cat.list_chunkservers()[1].state == "drained"
    assert _placed_on(cat, ids, 2) == 0
    rec = cat.get_chunk(ids[0])
    assert rec is not None and rec.chunk.shards[3].server_id != 4
    assert driver.status().passes_completed >= 2
    # a report about a chunk that is deleted afterwards is cleared as stale
    _apply(cat, ReportBadShards((ShardRef(ids[1], 3, 1),), "corrupt"), now)
    assert cat.count(ks.BAD_SHARD) == 1
    _apply(cat, DeleteObject("bkt", "k1"), now)
    await driver.run_round(leader_since_ms=now)
    assert any(isinstance(c, ClearBadShards) for c in node.proposed)
    assert cat.count(ks.BAD_SHARD) == 0


async def test_superseded_repair_is_a_noop_and_failures_back_off() -> None:
    now = int(SystemClock().time() * 1000)
    cat, ids = _world(now, n_chunks=1)
    _apply(cat, SetChunkserverState(1, "down"), now)
    node, cs = FakeNode(cat), FakeChunkservers()
    cs.fail = True
    driver = MaintenanceDriver(node, cat, cs, _opts(retry_backoff_s=60), rng=random.Random(1))
    await driver.run_round(leader_since_ms=now)
    await eventually(lambda: driver.status().in_flight == 0, timeout_s=5)
    assert driver.status().repairs_failed == 1
    await driver.run_round(leader_since_ms=now)
    assert len(cs.requests) == 1  # backing off: not retried at once
    # a repair racing a newer placement: the precondition turns it into a no-op
    cs.fail = False
    driver2 = MaintenanceDriver(node, cat, cs, _opts(), rng=random.Random(2))
    rec = cat.get_chunk(ids[0])
    assert rec is not None
    original = node.propose

    async def racing(data: bytes, timeout_s: float) -> object:
        cmd = decode_entry(data).command
        if isinstance(cmd, UpdatePlacement):  # someone else moved it first
            mv = cmd.moves[0]
            _apply(
                cat,
                UpdatePlacement(cmd.chunk_id, (type(mv)(mv.shard_index, mv.from_server, 8),)),
                now,
            )
        return await original(data, timeout_s)

    node.propose = racing  # type: ignore[method-assign]
    await driver2.run_round(leader_since_ms=now)
    await eventually(lambda: driver2.status().in_flight == 0, timeout_s=5)
    assert driver2.status().repairs_noop == 1 and driver2.status().repairs_done == 0


async def test_driver_acts_only_while_leading() -> None:
    now = int(SystemClock().time() * 1000)
    cat, _ = _world(now - 100_000, n_chunks=1)
    node, cs = FakeNode(cat), FakeChunkservers()
    node.is_leader = False
    driver = MaintenanceDriver(node, cat, cs, _opts(down_after_s=1.0))
    driver.start()
    try:
        await eventually(lambda: driver.status().passes_completed == 0, timeout_s=1)
        assert node.proposed == [] and not driver.status().is_leader
        node.is_leader = True
        await eventually(lambda: driver.status().is_leader, timeout_s=5)
        await eventually(lambda: any(isinstance(c, SetChunkserverState) for c in node.proposed), 5)
        node.is_leader = False
        await eventually(lambda: not driver.status().is_leader, timeout_s=5)
        count = len(node.proposed)
        await eventually(lambda: driver.status().in_flight == 0, timeout_s=5)
        assert len(node.proposed) == count
    finally:
        await driver.stop()


async def test_chunks_with_fewest_good_shards_are_repaired_first() -> None:
    now = int(SystemClock().time() * 1000)
    cat, ids = _world(now, n_servers=10, n_chunks=6)
    # every chunk loses one shard (server 1 down); chunk 3 also loses a second one
    _apply(cat, SetChunkserverState(1, "down"), now)
    rec = cat.get_chunk(ids[3])
    assert rec is not None
    other = next(s for s in rec.chunk.shards if s.server_id != 1)
    _apply(cat, ReportBadShards((ShardRef(ids[3], other.server_id, other.shard_index),)), now)
    node, cs = FakeNode(cat), FakeChunkservers()
    driver = MaintenanceDriver(
        node, cat, cs, _opts(repair_concurrency=1, scan_chunks_per_round=100)
    )
    await driver.run_round(leader_since_ms=now)
    await eventually(lambda: len(cs.requests) >= 2, timeout_s=5)
    first, second = (uuid.UUID(bytes=r.chunk_id) for _, r in cs.requests[:2])
    assert str(first) == ids[3] and str(second) == ids[3]  # at risk (4 good) before 5-good
    await eventually(lambda: driver.status().in_flight == 0 and not driver.status().backlog, 10)
    assert driver.status().repairs_done == len(ids) + 1


async def test_heartbeats_noted_on_the_leader_keep_a_server_up_without_commits() -> None:
    clock = SystemClock()
    now = int(clock.time() * 1000)
    cat, _ = _world(now - 5_000, n_servers=2)  # committed heartbeats 5 s old
    node = FakeNode(cat)
    driver = MaintenanceDriver(
        node,
        cat,
        FakeChunkservers(),
        _opts(suspect_after_s=3.0, down_after_s=60.0, heartbeat_commit_s=60.0),
    )
    before = cat.get_chunkserver(1)
    noted = driver.note_heartbeat(ChunkserverHeartbeat(1, 1 << 30, 1 << 29))
    assert noted is not None and noted.server == before  # answered, nothing replicated
    await driver.run_round(leader_since_ms=now - 60_000)
    # server 1 was heard a moment ago; server 2's committed beat is older than suspect_after
    assert node.proposed == [SetChunkserverState(2, "suspect")]
    # a heartbeat from a suspect server must be replicated: the FSM revives it
    assert driver.note_heartbeat(ChunkserverHeartbeat(2, 1 << 30, 1 << 29)) is None
    # so must one whose free space moved by more than 1% of the capacity
    assert driver.note_heartbeat(ChunkserverHeartbeat(1, 1 << 30, 1 << 28)) is None


class GatedChunkservers(FakeChunkservers):
    """Rebuilds succeed only once ``gate`` is set (in flight until then)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def call(
        self,
        addr: Address,
        request: object,
        *,
        timeout_s: float,
        body: AsyncIterable[Any] | None = None,
    ) -> object:
        await self.gate.wait()
        return await super().call(addr, request, timeout_s=timeout_s, body=body)


async def test_rebuilds_in_flight_keep_their_targets_busy_for_the_chunk() -> None:
    """Two shards of one chunk rebuilt in turn (one slot, then two): the second never
    goes to the server already receiving the first (the FSM would refuse that placement
    and the rebuild would be wasted)."""
    for seed in range(8):
        now = int(SystemClock().time() * 1000)
        cat, _ = _world(now, n_chunks=1)  # chunk on servers 1..6; 7 and 8 are free
        _apply(cat, SetChunkserverState(1, "down"), now)
        _apply(cat, SetChunkserverState(2, "down"), now)
        node, cs = FakeNode(cat), GatedChunkservers()
        opts = _opts(repair_concurrency=1, scan_chunks_per_round=100)
        driver = MaintenanceDriver(node, cat, cs, opts, rng=random.Random(seed))
        await driver.run_round(leader_since_ms=now)
        assert driver.status().in_flight == 1
        driver.options = dataclasses.replace(opts, repair_concurrency=2)
        await driver.run_round(leader_since_ms=now)
        assert driver.status().in_flight == 2
        cs.gate.set()
        await eventually(lambda: driver.status().in_flight == 0, timeout_s=5)  # noqa: B023
        ports = [addr.port for addr, _ in cs.requests]
        assert sorted(ports) == [9007, 9008], f"seed {seed}: targets {ports}"
        assert driver.status().repairs_done == 2


async def test_a_rebuild_whose_target_goes_silent_is_cancelled_and_planned_again() -> None:
    """The target stops heartbeating mid-rebuild (a hung machine: no connection error):
    once it is suspect the rebuild gives its slot back and goes to another server,
    instead of waiting for ``repair_timeout_s``."""
    now = int(SystemClock().time() * 1000)
    cat, ids = _world(now, n_chunks=1)
    _apply(cat, SetChunkserverState(1, "down"), now)
    node, cs = FakeNode(cat), GatedChunkservers()
    driver = MaintenanceDriver(node, cat, cs, _opts(repair_concurrency=1), rng=random.Random(5))
    await driver.run_round(leader_since_ms=now)
    assert len(cs.requests) == 0 and driver.status().in_flight == 1
    await eventually(lambda: driver.status().in_flight == 1, timeout_s=1)
    ((task, _),) = driver._inflight.values()
    lost = task.to_server
    _apply(cat, SetChunkserverState(lost, "suspect"), now)
    await driver.run_round(leader_since_ms=now)
    await eventually(lambda: driver.status().repairs_failed == 1, timeout_s=5)
    cs.gate.set()
    for _ in range(5):
        await driver.run_round(leader_since_ms=now)
        await eventually(lambda: driver.status().in_flight == 0, timeout_s=5)
        if driver.status().repairs_done:
            break
    assert driver.status().repairs_done == 1
    assert [addr.port for addr, _ in cs.requests] == [9000 + ({7, 8} - {lost}).pop()]
    rec = cat.get_chunk(ids[0])
    assert rec is not None and lost not in {s.server_id for s in rec.chunk.shards}
