"""GC shard fences in the catalog FSM: FenceShards answers, UpdatePlacement against them.

See ``metadata/fsm/fences.py`` ("Shard fences"): a copy GC fenced cannot be placed by a
repair that began (``UpdatePlacement.started_ms``) at or before the fence.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.errors import InvalidArgument, PreconditionFailed
from blobstore.types import Address
from metadata.fsm import keyspace as ks
from metadata.fsm.codec import decode_value, encode_value
from metadata.fsm.commands import (
    CommitObject,
    CreateBucket,
    DeleteObject,
    FenceShards,
    RegisterChunkserver,
    ShardMove,
    UpdatePlacement,
)
from metadata.fsm.fences import FENCE_TTL_MS, MAX_FENCE_IDS, get_shard_fence
from metadata.fsm.records import ShardFence, ShardRef
from metadata.fsm.results import PlacementUpdated, ShardsFenced

from .helpers import Driver, chunk

DAY_MS = 24 * 3600 * 1000


def setup() -> tuple[Driver, str]:
    """One object whose chunk has shard i on server i + 1 (servers 1..8 registered)."""
    d = Driver()
    for i in range(1, 9):
        d(RegisterChunkserver(i, Address("10.0.0.1", 7000 + i), "", 1000, 900))
    d(CreateBucket("bkt", "alice"))
    c = chunk(10)
    d(CommitObject("bkt", "k", "v", "alice", 10, "e", chunks=(c,)))
    return d, c.chunk_id


def move_to_7(cid: str, started_ms: int) -> UpdatePlacement:
    """Repair of shard 2 (on server 3) onto server 7."""
    return UpdatePlacement(cid, (ShardMove(2, 3, 7, "abc"),), started_ms)


def test_copies_not_placed_are_fenced_and_placed_ones_answered_placed() -> None:
    d, cid = setup()
    stray, placed = ShardRef(cid, 7, 2), ShardRef(cid, 3, 2)
    dead = ShardRef("no-such-chunk", 7, 0)
    got = d(FenceShards((stray, placed, stray, dead)), now_ms=5_000)
    assert got == ShardsFenced((stray, dead), (placed,), 0)
    assert get_shard_fence(d.cat.kv, cid, 2, 7) == ShardFence(stray, 5_000)
    assert get_shard_fence(d.cat.kv, cid, 2, 3) is None
    assert d.cat.count(ks.SHARD_FENCE) == 2 and d.cat.count(ks.SHARD_FENCE_BY_TIME) == 2


def test_a_repair_that_began_before_the_fence_cannot_place_the_copy() -> None:
    d, cid = setup()
    d(FenceShards((ShardRef(cid, 7, 2),)), now_ms=5_000)
    for started in (4_000, 5_000):  # before, and at the fence's own time (ambiguous: refused)
        r = d(move_to_7(cid, started), now_ms=6_000)
        assert isinstance(r, PreconditionFailed) and r.details["code"] == "ShardFenced", r
    assert [s.server_id for s in d.cat.get_chunk(cid).chunk.shards] == [1, 2, 3, 4, 5, 6]  # type: ignore[union-attr]
    assert d.cat.count(ks.DELETE_QUEUE) == 0  # the refused move queued nothing


def test_a_repair_that_began_after_the_fence_places_the_copy() -> None:
    d, cid = setup()
    d(FenceShards((ShardRef(cid, 7, 2),)), now_ms=5_000)
    r = d(move_to_7(cid, 5_001), now_ms=6_000)
    assert isinstance(r, PlacementUpdated)
    assert r.chunk.shards[2].server_id == 7
    # once placed, GC's next fence of that copy answers "placed" and records nothing new
    got = d(FenceShards((ShardRef(cid, 7, 2),)), now_ms=7_000)
    assert got == ShardsFenced((), (ShardRef(cid, 7, 2),), 0)
    assert get_shard_fence(d.cat.kv, cid, 2, 7) == ShardFence(ShardRef(cid, 7, 2), 5_000)


def test_a_fence_only_guards_its_own_copy() -> None:
    d, cid = setup()
    d(FenceShards((ShardRef(cid, 8, 2), ShardRef(cid, 7, 1))), now_ms=5_000)
    assert isinstance(d(move_to_7(cid, 1_000), now_ms=6_000), PlacementUpdated)


def test_refencing_moves_the_stamp_forward() -> None:
    """GC's second round deletes a file it listed after the first fence: a repair planned
    between the two fences must be refused too."""
    d, cid = setup()
    ref = ShardRef(cid, 7, 2)
    d(FenceShards((ref,)), now_ms=5_000)
    d(FenceShards((ref,)), now_ms=9_000)
    assert get_shard_fence(d.cat.kv, cid, 2, 7) == ShardFence(ref, 9_000)
    assert d.cat.count(ks.SHARD_FENCE_BY_TIME) == 1  # the old index entry went
    r = d(move_to_7(cid, 7_000), now_ms=10_000)
    assert isinstance(r, PreconditionFailed) and r.details["code"] == "ShardFenced"


def test_commands_from_before_the_field_are_applied_as_before() -> None:
    """started_ms=0: log entries written before shard fences replay with their old result."""
    d, cid = setup()
    d(FenceShards((ShardRef(cid, 7, 2),)), now_ms=5_000)
    assert isinstance(d(move_to_7(cid, 0), now_ms=6_000), PlacementUpdated)


def test_a_repair_planned_longer_ago_than_a_fence_lives_is_refused() -> None:
    d, cid = setup()
    now = 10 * DAY_MS
    r = d(move_to_7(cid, now - FENCE_TTL_MS - 1), now_ms=now)
    assert isinstance(r, PreconditionFailed) and r.details["code"] == "ShardFenced"
    assert isinstance(d(move_to_7(cid, now - FENCE_TTL_MS), now_ms=now), PlacementUpdated)


def test_a_repair_stamped_in_the_future_is_refused() -> None:
    """started_ms comes from the catalog clock, which never goes back: a later stamp could
    only come from a buggy proposer, and would slip past every fence."""
    d, cid = setup()
    d(FenceShards((ShardRef(cid, 7, 2),)), now_ms=5_000)
    assert isinstance(d(move_to_7(cid, 6_001), now_ms=6_000), PreconditionFailed)
    assert isinstance(d(move_to_7(cid, 6_000), now_ms=6_000), PlacementUpdated)


def test_shard_fences_expire_and_are_purged_by_later_fences() -> None:
    d, cid = setup()
    d(FenceShards((ShardRef(cid, 7, 2),)), now_ms=1_000)
    got = d(FenceShards((ShardRef(cid, 8, 0),)), now_ms=1_000 + FENCE_TTL_MS + 1)
    assert isinstance(got, ShardsFenced) and got.purged == 1
    assert get_shard_fence(d.cat.kv, cid, 2, 7) is None
    assert d.cat.count(ks.SHARD_FENCE) == 1 and d.cat.count(ks.SHARD_FENCE_BY_TIME) == 1


def test_a_deleted_chunks_copies_are_fenced() -> None:
    d, cid = setup()
    d(DeleteObject("bkt", "k"))
    got = d(FenceShards((ShardRef(cid, 3, 2),)))
    assert got == ShardsFenced((ShardRef(cid, 3, 2),), (), 0)


def test_malformed_shard_fences_are_refused_without_effect() -> None:
    d, cid = setup()
    d(FenceShards((ShardRef(cid, 8, 0),)))
    skip = (ks.META, ks.SESSION, ks.SESSION_BY_TIME)  # the clock, exactly-once sessions
    before = [kv for kv in d.cat.kv.scan(b"") if not kv[0].startswith(skip)]
    bad: list[object] = [
        (),
        ("not-a-ref",),
        (ShardRef("", 7, 2),),
        (ShardRef("a\0b", 7, 2),),
        (ShardRef(cid, 0, 2),),
        (ShardRef(cid, 7, -1),),
        (ShardRef(cid, 7, 1 << 16),),
        tuple(ShardRef(cid, 7, i % 6) for i in range(MAX_FENCE_IDS + 1)),
    ]
    for shards in bad:
        assert isinstance(d(FenceShards(shards)), InvalidArgument), shards  # type: ignore[arg-type]
        assert [kv for kv in d.cat.kv.scan(b"") if not kv[0].startswith(skip)] == before


def test_shard_fence_values_roundtrip_through_the_catalog_codec() -> None:
    ref = ShardRef("c", 7, 2)
    for value in (
        FenceShards((ref,)),
        ShardsFenced((ref,), (ShardRef("c", 3, 1),), 4),
        ShardFence(ref, 5_000),
        UpdatePlacement("c", (ShardMove(2, 3, 7, "abc"),), 42),
    ):
        assert decode_value(encode_value(value)) == value
    # an UpdatePlacement encoded before started_ms existed decodes with the default 0
    old = encode_value(UpdatePlacement("c", (ShardMove(2, 3, 7, "abc"),)))
    assert decode_value(old) == UpdatePlacement("c", (ShardMove(2, 3, 7, "abc"),), 0)


@settings(deadline=None, max_examples=200)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["fence", "repair"]), st.integers(0, 50), st.integers(7, 8)),
        max_size=30,
    )
)
def test_no_placement_lands_on_a_copy_fenced_after_its_repair_began(
    ops: list[tuple[str, int, int]],
) -> None:
    """Interleave fences and repairs of shard 2 of one chunk (catalog time always moves
    on); every placement that succeeds was planned after the last fence of its target."""
    d, cid = setup()
    now = 1_000
    last_fence: dict[int, int] = {}
    for kind, back, server in ops:
        now += 10
        if kind == "fence":
            d(FenceShards((ShardRef(cid, server, 2),)), now_ms=now)
            if d.cat.get_chunk(cid).chunk.shards[2].server_id != server:  # type: ignore[union-attr]
                last_fence[server] = now
            continue
        current = d.cat.get_chunk(cid).chunk.shards[2].server_id  # type: ignore[union-attr]
        if current == server:
            continue
        started = now - back
        r = d(UpdatePlacement(cid, (ShardMove(2, current, server, "x"),), started), now_ms=now)
        if isinstance(r, PlacementUpdated):
            assert started > last_fence.get(server, 0)
        else:
            assert isinstance(r, PreconditionFailed)
            assert started <= last_fence.get(server, 0) or r.details["code"] == "ShardDeletePending"
