"""FSM commands of repair: bad-shard reports, their clearing, drained state, scrub progress."""

from __future__ import annotations

import msgpack

from blobstore.errors import InvalidArgument
from blobstore.types import Address
from metadata.fsm import keyspace as ks
from metadata.fsm.codec import decode_value, encode_value
from metadata.fsm.commands import (
    ChunkserverHeartbeat,
    ClearBadShards,
    CommitObject,
    CreateBucket,
    DeleteObject,
    RegisterChunkserver,
    ReportBadShards,
    SetChunkserverState,
    ShardMove,
    UpdatePlacement,
)
from metadata.fsm.kv import prefix_end
from metadata.fsm.records import BadShardRecord, ScrubProgressRecord, ShardRef
from metadata.fsm.results import (
    BadShardsCleared,
    BadShardsReported,
    ChunkserverUpdated,
    PlacementUpdated,
    RedundancySummary,
    RepairStatus,
)
from tests.unit.fsm.helpers import Driver, chunk


def _setup(n: int = 8) -> tuple[Driver, str]:
    d = Driver()
    for i in range(1, n + 1):
        d(RegisterChunkserver(i, Address("10.0.0.1", 7000 + i), "", 1000, 900))
    d(CreateBucket("bkt", "alice"))
    c = chunk(10)
    d(CommitObject("bkt", "k", "v", "alice", 10, "e", chunks=(c,)))
    return d, c.chunk_id


def _bad(d: Driver) -> list[BadShardRecord]:
    return [v for _, v in d.cat.kv.scan(ks.BAD_SHARD, prefix_end(ks.BAD_SHARD))]  # type: ignore[misc]


def test_report_is_idempotent_and_ignores_stale_copies() -> None:
    d, cid = _setup()
    ref = ShardRef(cid, 3, 2)  # shard 2 lives on server 3
    assert d(ReportBadShards((ref,), "piece_checksum"), now_ms=5_000) == BadShardsReported(1)
    assert d(ReportBadShards((ref,), "again"), now_ms=6_000) == BadShardsReported(0)
    (rec,) = _bad(d)
    assert rec == BadShardRecord(ref, "piece_checksum", 5_000)
    stale = (ShardRef(cid, 4, 2), ShardRef("no-such-chunk", 1, 0), ShardRef(cid, 1, 9))
    assert d(ReportBadShards(stale)) == BadShardsReported(0)
    assert len(_bad(d)) == 1


def test_placement_update_clears_the_report() -> None:
    d, cid = _setup()
    d(ReportBadShards((ShardRef(cid, 3, 2),), "corrupt"))
    d(ReportBadShards((ShardRef(cid, 1, 0),), "missing"))
    r = d(UpdatePlacement(cid, (ShardMove(2, 3, 7, "abc"),)))
    assert isinstance(r, PlacementUpdated)
    assert [b.shard for b in _bad(d)] == [ShardRef(cid, 1, 0)]
    # a report naming the old copy is now stale
    assert d(ReportBadShards((ShardRef(cid, 3, 2),))) == BadShardsReported(0)


def test_clear_only_matching_records() -> None:
    d, cid = _setup()
    d(ReportBadShards((ShardRef(cid, 3, 2),)))
    assert d(ClearBadShards((ShardRef(cid, 4, 2),))) == BadShardsCleared(0)
    assert d(ClearBadShards((ShardRef(cid, 3, 2),))) == BadShardsCleared(1)
    assert _bad(d) == []
    assert isinstance(d(ClearBadShards(("junk",))), InvalidArgument)  # type: ignore[arg-type]
    assert isinstance(d(ReportBadShards((ShardRef(cid, 3, -1),))), InvalidArgument)


def test_deleted_chunk_makes_report_stale() -> None:
    d, cid = _setup()
    d(ReportBadShards((ShardRef(cid, 3, 2),)))
    d(DeleteObject("bkt", "k"))
    assert d.cat.get_chunk(cid) is None
    assert len(_bad(d)) == 1  # cleared by the leader's maintenance (ClearBadShards)


def test_drained_state_survives_heartbeat_and_reregistration() -> None:
    d, _ = _setup()
    r = d(SetChunkserverState(2, "drained"))
    assert isinstance(r, ChunkserverUpdated) and r.server.state == "drained"
    r = d(ChunkserverHeartbeat(2, 1000, 800))
    assert isinstance(r, ChunkserverUpdated) and r.server.state == "drained"
    r = d(RegisterChunkserver(2, Address("10.0.0.1", 9999), "", 1000, 800))
    assert isinstance(r, ChunkserverUpdated) and r.server.state == "drained"
    d(SetChunkserverState(3, "draining"))
    r = d(RegisterChunkserver(3, Address("10.0.0.1", 7003), "", 1000, 800))
    assert isinstance(r, ChunkserverUpdated) and r.server.state == "draining"
    d(SetChunkserverState(4, "down"))
    r = d(RegisterChunkserver(4, Address("10.0.0.1", 7004), "", 1000, 800))
    assert isinstance(r, ChunkserverUpdated) and r.server.state == "up"


def test_heartbeat_records_scrub_progress() -> None:
    d, _ = _setup()
    p = ScrubProgressRecord(99, 3, 2, 40, 4096, 1)
    d(ChunkserverHeartbeat(5, 1000, 800, p), now_ms=12_345)
    got = d.cat.kv.get(ks.SCRUB + ks.u64(5))
    assert got == ScrubProgressRecord(5, 3, 2, 40, 4096, 1, 12_345)
    assert isinstance(d(ChunkserverHeartbeat(5, 1, 1, "x")), InvalidArgument)  # type: ignore[arg-type]


def test_new_values_roundtrip_through_the_codec() -> None:
    values = [
        ReportBadShards((ShardRef("c", 1, 2),), "r"),
        ClearBadShards((ShardRef("c", 1, 2),)),
        BadShardRecord(ShardRef("c", 1, 2), "r", 5),
        ScrubProgressRecord(1, 2, 3, 4, 5, 6, 7),
        ChunkserverHeartbeat(1, 2, 3, ScrubProgressRecord(1, 2, 3, 4, 5, 6)),
        BadShardsReported(3),
        BadShardsCleared(2),
        RedundancySummary(
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, (ScrubProgressRecord(1, 1, 1, 1, 1, 1),)
        ),
        RepairStatus(True, 1, 2, 3, 4, 5, 6, 7.5, 8, 9),
    ]
    for v in values:
        assert decode_value(encode_value(v)) == v
    # an old heartbeat (three fields) still decodes
    old = msgpack.packb({61: [1, 2, 3]})
    assert decode_value(old) == ChunkserverHeartbeat(1, 2, 3, None)
