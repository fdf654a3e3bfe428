"""Health assessment, repair planning and catalog scans (pure; hypothesis vs oracles).

The strongest property: starting from any mix of down/draining servers and bad-shard
reports, planning and committing (through the real FSM) converges to every chunk at k+m
good shards on distinct up servers, whenever enough up servers exist.
"""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.types import Address
from metadata.fsm import keyspace as ks
from metadata.fsm.commands import (
    AckShardDeletes,
    CommitObject,
    CreateBucket,
    RegisterChunkserver,
    ReportBadShards,
    SetChunkserverState,
    ShardMove,
    UpdatePlacement,
)
from metadata.fsm.records import Chunk, ChunkserverRecord, ShardPlacement, ShardRef
from metadata.fsm.results import PlacementUpdated
from metadata.maintenance.health import assess, bad_shards_of, redundancy_summary
from metadata.maintenance.planner import (
    bad_reports,
    choose_target,
    plan_chunk,
    scan_page,
)
from tests.unit.fsm.helpers import Driver

K, M = 4, 2


@st.composite
def clusters(draw: st.DrawFn) -> tuple[Driver, list[str]]:
    """A catalog with 6..12 servers (some down/draining), chunks, and bad reports."""
    d = Driver()
    n_servers = draw(st.integers(K + M, 12))
    zones = draw(st.sampled_from([0, 2, 3]))
    for sid in range(1, n_servers + 1):
        zone = f"z{sid % zones}" if zones else ""
        free = draw(st.integers(10 << 20, 1 << 30))
        d(RegisterChunkserver(sid, Address("10.0.0.1", 7000 + sid), zone, 1 << 30, free))
    d(CreateBucket("bkt", "alice"))
    ids: list[str] = []
    for i in range(draw(st.integers(1, 6))):
        servers = draw(st.permutations(range(1, n_servers + 1)))[: K + M]
        placed = draw(st.integers(K, K + M))  # some chunks were written below k+m
        shards = tuple(ShardPlacement(s, j, f"{j:x}") for j, s in enumerate(servers[:placed]))
        cid = f"chunk-{i:03d}"
        c = Chunk(cid, "zfec", K, M, 1 << 20, 3 << 20, shards)
        d(CommitObject("bkt", f"k{i}", "v", "alice", c.data_length, "e", chunks=(c,)))
        ids.append(cid)
    for sid in range(1, n_servers + 1):
        state = draw(st.sampled_from(["up", "up", "up", "down", "draining", "suspect"]))
        if state != "up":
            d(SetChunkserverState(sid, state))  # type: ignore[arg-type]
    for cid in ids:
        rec = d.cat.get_chunk(cid)
        assert rec is not None
        for s in rec.chunk.shards:
            if draw(st.integers(0, 9)) == 0:
                d(ReportBadShards((ShardRef(cid, s.server_id, s.shard_index),), "corrupt"))
    return d, ids


def _servers(d: Driver) -> dict[int, ChunkserverRecord]:
    return {s.server_id: s for s in d.cat.list_chunkservers()}


@settings(deadline=None, max_examples=60)
@given(clusters(), st.integers(0, 2**32))
def test_plans_are_valid_and_repair_converges(world: tuple[Driver, list[str]], seed: int) -> None:
    d, ids = world
    rng = random.Random(seed)
    servers = _servers(d)
    up = [s for s in servers.values() if s.state == "up"]
    for _round in range(3 * (K + M)):
        progress = False
        for cid in ids:
            before = d.cat.get_chunk(cid)
            assert before is not None
            health, tasks = plan_chunk(
                d.cat.kv, cid, servers, busy=(), busy_targets=(), rng=rng, max_tasks=K + M
            )
            assert health is not None
            placed = {s.server_id for s in before.chunk.shards}
            targets = [t.to_server for t in tasks]
            assert len(set(targets)) == len(targets)
            for t in tasks:
                assert servers[t.to_server].state == "up"
                assert t.to_server not in placed or (t.reason, t.to_server) == (
                    "bad",
                    t.from_server,
                )
                assert len(t.sources) >= K
                assert t.shard_index not in {s.shard_index for s in t.sources} or (
                    t.reason == "draining"
                )
                assert d.cat.kv.get(ks.delete_key(t.to_server, cid, t.shard_index)) is None
            reasons = [t.reason for t in tasks]
            assert reasons == sorted(reasons, key=lambda r: r == "draining")
            if not health.repairable:
                assert tasks == ()
            for t in tasks:
                r = d(
                    UpdatePlacement(
                        cid, (ShardMove(t.shard_index, t.from_server, t.to_server, "x"),)
                    )
                )
                assert isinstance(r, PlacementUpdated), r
                progress = True
        queued = d.cat.delete_queue_page(limit=10_000).entries
        d(AckShardDeletes(tuple(e.shard for e in queued)))  # chunkservers drain the queue
        if not progress:
            break
    for cid in ids:
        rec = d.cat.get_chunk(cid)
        assert rec is not None
        h = assess(rec.chunk, servers, bad_shards_of(d.cat.kv, cid))
        if h.repairable and len(up) >= K + M:
            assert h.good == K + M and not h.needed, h
            assert all(servers[s.server_id].state in ("up", "suspect") for s in rec.chunk.shards)


@settings(deadline=None, max_examples=60)
@given(clusters(), st.integers(1, 4))
def test_scan_pages_cover_every_chunk_once(world: tuple[Driver, list[str]], limit: int) -> None:
    d, ids = world
    servers = _servers(d)
    seen: list[str] = []
    after = None
    needy: list[str] = []
    for _ in range(100):
        page = scan_page(d.cat.kv, servers, after, limit)
        needy += [h.chunk.chunk_id for h in page.needy]
        seen += [f"{page.scanned}"]
        after = page.next_after
        if after is None:
            break
    oracle = []
    draining = set()
    for cid in ids:
        rec = d.cat.get_chunk(cid)
        assert rec is not None
        if assess(rec.chunk, servers, bad_shards_of(d.cat.kv, cid)).needs_work:
            oracle.append(cid)
        draining |= {
            s.server_id for s in rec.chunk.shards if servers[s.server_id].state == "draining"
        }
    assert needy == sorted(oracle)
    assert sum(int(x) for x in seen) == len(ids)
    summary = redundancy_summary(d.cat.kv)
    assert summary.chunks_total == len(ids) == summary.objects_total
    assert summary.repair_backlog == len(oracle)
    assert (
        summary.chunks_full + summary.chunks_degraded + summary.chunks_at_risk + summary.chunks_lost
        == len(ids)
    )


def test_levels_and_bad_report_staleness() -> None:
    d = Driver()
    for sid in range(1, 8):
        d(RegisterChunkserver(sid, Address("h", sid), "", 1 << 30, 1 << 30))
    d(CreateBucket("bkt", "a"))
    shards = tuple(ShardPlacement(s, s - 1, "") for s in range(1, 7))
    c = Chunk("c1", "zfec", K, M, 1 << 20, 100, shards)
    d(CommitObject("bkt", "k", "v", "a", 100, "e", chunks=(c,)))
    servers = _servers(d)
    assert assess(c, servers, {}).level == "full"
    d(SetChunkserverState(1, "down"))
    assert assess(c, _servers(d), {}).level == "degraded"
    d(ReportBadShards((ShardRef("c1", 2, 1),)))
    h = assess(c, _servers(d), bad_shards_of(d.cat.kv, "c1"))
    assert (h.level, h.good) == ("at_risk", 4)
    d(SetChunkserverState(3, "down"))
    assert assess(c, _servers(d), bad_shards_of(d.cat.kv, "c1")).level == "lost"
    assert bad_reports(d.cat.kv, 10).chunk_ids == ("c1",)
    d(UpdatePlacement("c1", (ShardMove(1, 2, 7),)))
    d(ReportBadShards((ShardRef("c1", 7, 1),)))
    assert bad_reports(d.cat.kv, 10).stale == ()
    s = redundancy_summary(d.cat.kv)
    assert (s.chunks_lost, s.objects_lost, s.bad_shards) == (1, 1, 1)


def test_choose_target_prefers_fresh_zones_and_weights_by_free_space() -> None:
    def srv(sid: int, zone: str, free: int, state: str = "up") -> ChunkserverRecord:
        return ChunkserverRecord(sid, Address("h", sid), zone, 1 << 40, free, state, 0, 0)  # type: ignore[arg-type]

    fleet = [srv(1, "a", 100), srv(2, "b", 100), srv(3, "c", 1000), srv(4, "c", 10**9),
             srv(5, "d", 10**9, "draining")]  # fmt: skip
    rng = random.Random(1)
    picks = [
        choose_target(fleet, exclude={1}, zones_used={"a", "b"}, need_bytes=50, rng=rng)
        for _ in range(200)
    ]
    ids = [p.server_id for p in picks if p is not None]
    assert set(ids) <= {3, 4} and ids.count(4) > 150  # zone c only; weighted to the big disk
    assert choose_target(fleet, exclude={1, 2, 3, 4}, zones_used=(), need_bytes=1, rng=rng) is None
    assert choose_target(fleet, exclude=(), zones_used=(), need_bytes=10**10, rng=rng) is None
    fallback = choose_target(
        fleet, exclude={3, 4}, zones_used={"a", "b", "c"}, need_bytes=1, rng=rng
    )
    assert fallback is not None and fallback.server_id in (1, 2)
    no_zones = [replace(s, zone="") for s in fleet]
    assert choose_target(no_zones, exclude=(), zones_used={""}, need_bytes=1, rng=rng) is not None
