"""Users and access keys, chunkservers, placement repair, delete queue, EC profile, Noop."""

from __future__ import annotations

import pytest

from blobstore.errors import AccessDenied, InvalidArgument, PreconditionFailed
from blobstore.types import Address
from metadata.fsm.commands import (
    AckShardDeletes,
    ChunkserverHeartbeat,
    CommitObject,
    CreateBucket,
    DeleteAccessKey,
    DeleteObject,
    DeleteUser,
    Noop,
    PutAccessKey,
    PutUser,
    RegisterChunkserver,
    SetChunkserverState,
    SetErasureProfile,
    ShardMove,
    UpdatePlacement,
)
from metadata.fsm.records import ErasureProfile, ShardPlacement, ShardRef
from metadata.fsm.results import (
    AccessKeyDeleted,
    AccessKeyPut,
    ChunkserverUpdated,
    ErasureProfileSet,
    NoopApplied,
    PlacementUpdated,
    ShardDeletesAcked,
    UserDeleted,
    UserPut,
)

from .helpers import Driver, chunk


def test_users_and_keys() -> None:
    d = Driver()
    assert d(PutUser("alice", is_admin=True), now_ms=2_000) == UserPut("alice")
    assert isinstance(d(PutUser("bad name")), InvalidArgument)
    assert isinstance(d(PutAccessKey("AK1", "secret", "nobody")), InvalidArgument)
    assert isinstance(d(PutAccessKey("AK1", "", "alice")), InvalidArgument)
    assert d(PutAccessKey("AK1", "s1", "alice")) == AccessKeyPut("AK1")
    d(PutAccessKey("AK2", "s2", "alice"))
    key, user = d.cat.get_access_key("AK1")
    assert (key.secret, key.user_name, user.is_admin, user.created_ms) == (
        "s1",
        "alice",
        True,
        2_000,
    )
    d(PutUser("bob"))
    assert isinstance(d(PutAccessKey("AK1", "x", "bob")), InvalidArgument)
    d(PutUser("alice", is_admin=False), now_ms=3_000)
    assert d.cat.get_user("alice").created_ms == 2_000  # type: ignore[union-attr]
    assert [u.name for u in d.cat.list_users()] == ["alice", "bob"]
    assert d(DeleteAccessKey("AK2")) == AccessKeyDeleted("AK2")
    assert isinstance(d(DeleteAccessKey("AK2")), InvalidArgument)
    with pytest.raises(AccessDenied):
        d.cat.get_access_key("AK2")
    assert d(DeleteUser("alice")) == UserDeleted("alice", 1)
    with pytest.raises(AccessDenied):
        d.cat.get_access_key("AK1")
    assert isinstance(d(DeleteUser("alice")), InvalidArgument)


def _register(d: Driver, n: int = 8) -> None:
    for i in range(1, n + 1):
        r = d(RegisterChunkserver(i, Address("10.0.0.1", 7000 + i), f"z{i % 3}", 1000, 900))
        assert isinstance(r, ChunkserverUpdated)


def test_chunkserver_lifecycle() -> None:
    d = Driver()
    assert isinstance(d(RegisterChunkserver(0, Address("h", 1), "", 1, 1)), InvalidArgument)
    _register(d, 2)
    servers = d.cat.list_chunkservers()
    assert [s.server_id for s in servers] == [1, 2]
    assert servers[0].state == "up" and servers[0].addr == Address("10.0.0.1", 7001)
    r = d(SetChunkserverState(1, "down"))
    assert isinstance(r, ChunkserverUpdated) and r.server.state == "down"
    assert isinstance(d(SetChunkserverState(1, "gone")), InvalidArgument)  # type: ignore[arg-type]
    assert isinstance(d(SetChunkserverState(9, "up")), InvalidArgument)
    r = d(ChunkserverHeartbeat(1, 1000, 500), now_ms=77_000)
    assert isinstance(r, ChunkserverUpdated)
    assert (r.server.state, r.server.free_bytes, r.server.last_heartbeat_ms) == ("up", 500, 77_000)
    d(SetChunkserverState(2, "draining"))
    r = d(ChunkserverHeartbeat(2, 1000, 400))
    assert isinstance(r, ChunkserverUpdated) and r.server.state == "draining"
    assert isinstance(d(ChunkserverHeartbeat(42, 1, 1)), InvalidArgument)


def test_update_placement_and_delete_queue() -> None:
    d = Driver()
    _register(d)
    d(CreateBucket("bkt", "alice"))
    c = chunk(10)
    d(CommitObject("bkt", "k", "v", "alice", 10, "e", chunks=(c,)))
    stale = UpdatePlacement(c.chunk_id, (ShardMove(0, 5, 7, "new"),))
    assert isinstance(d(stale), PreconditionFailed)
    assert isinstance(d(UpdatePlacement(c.chunk_id, (ShardMove(0, 1, 2),))), InvalidArgument)
    assert isinstance(d(UpdatePlacement(c.chunk_id, (ShardMove(0, 1, 99),))), InvalidArgument)
    assert isinstance(d(UpdatePlacement("nope", (ShardMove(0, 1, 7),))), InvalidArgument)
    r = d(UpdatePlacement(c.chunk_id, (ShardMove(0, 1, 7, "new"),)))
    assert isinstance(r, PlacementUpdated) and r.queued_deletes == 1
    assert r.chunk.shards[0] == ShardPlacement(7, 0, "new")
    assert d.cat.head_object("bkt", "k").chunks[0].shards[0].server_id == 7
    page = d.cat.delete_queue_page(server_id=1)
    assert [e.shard for e in page.entries] == [ShardRef(c.chunk_id, 1, 0)]
    d(DeleteObject("bkt", "k"))
    everything = d.cat.delete_queue_page()
    assert len(everything.entries) == 7
    first = d.cat.delete_queue_page(limit=3)
    assert first.next_after is not None and len(first.entries) == 3
    rest = d.cat.delete_queue_page(after=first.next_after)
    assert first.entries + rest.entries == everything.entries and rest.next_after is None
    acks = (*tuple(e.shard for e in everything.entries[:5]), ShardRef("zzz", 1, 0))
    assert d(AckShardDeletes(acks)) == ShardDeletesAcked(5)
    assert len(d.cat.delete_queue_page().entries) == 2


def test_erasure_profile_and_noop() -> None:
    d = Driver()
    assert d.cat.get_erasure_profile() == ErasureProfile()
    p = ErasureProfile("zfec", 8, 3, 1 << 20, 64 << 20)
    assert d(SetErasureProfile(p)) == ErasureProfileSet(p)
    assert d.cat.get_erasure_profile() == p
    for bad in (
        ErasureProfile("zfec", 0, 2),
        ErasureProfile("zfec", 200, 100),
        ErasureProfile("", 4, 2),
        ErasureProfile("zfec", 4, 2, 0),
        ErasureProfile("zfec", 4, 2, 1 << 20, 1024),
    ):
        assert isinstance(d(SetErasureProfile(bad)), InvalidArgument)
    assert d.cat.get_erasure_profile() == p
    assert d(Noop(), now_ms=123_456) == NoopApplied()
    assert d.cat.now_ms == 123_456
    d(Noop(), now_ms=5)  # the catalog clock never goes backwards
    assert d.cat.now_ms == 123_456


def test_repair_onto_a_server_with_a_pending_delete_of_that_shard_is_refused() -> None:
    d = Driver()
    _register(d)
    d(CreateBucket("bkt", "alice"))
    c = chunk(10)
    d(CommitObject("bkt", "k", "v", "alice", 10, "e", chunks=(c,)))
    assert isinstance(d(UpdatePlacement(c.chunk_id, (ShardMove(0, 1, 7),))), PlacementUpdated)
    back = d(UpdatePlacement(c.chunk_id, (ShardMove(0, 7, 1),)))
    assert isinstance(back, PreconditionFailed) and back.details["code"] == "ShardDeletePending"
    d(AckShardDeletes((ShardRef(c.chunk_id, 1, 0),)))
    assert isinstance(d(UpdatePlacement(c.chunk_id, (ShardMove(0, 7, 1),))), PlacementUpdated)


def test_first_home_for_a_missing_shard() -> None:
    d = Driver()
    _register(d)
    d(CreateBucket("bkt", "alice"))
    c = chunk(10, servers=(1, 2, 3, 4, 5))  # written with k+1 of k+m shards
    d(CommitObject("bkt", "k", "v", "alice", 10, "e", chunks=(c,)))
    r = d(UpdatePlacement(c.chunk_id, (ShardMove(5, 0, 8, "h5"),)))
    assert isinstance(r, PlacementUpdated) and r.queued_deletes == 0
    assert [s.server_id for s in r.chunk.shards] == [1, 2, 3, 4, 5, 8]
    assert isinstance(d(UpdatePlacement(c.chunk_id, (ShardMove(9, 0, 6),))), InvalidArgument)


def test_command_scope_names_bucket_and_key() -> None:
    from metadata.fsm.commands import CopyObject, DeleteObjects, command_scope

    assert command_scope(CommitObject("bkt", "k", "v", "a", 0, "e", inline_data=b"")) == (
        "bkt",
        "k",
    )
    assert command_scope(CopyObject("src", "s", "dst", "d", "v", "a")) == ("dst", "d")
    assert command_scope(CreateBucket("bkt", "a")) == ("bkt", None)
    assert command_scope(DeleteObjects("bkt", ())) == ("bkt", None)
    assert command_scope(Noop()) is None
    assert command_scope(PutUser("a")) is None


def test_list_chunks_pages() -> None:
    d = Driver()
    d(CreateBucket("bkt", "alice"))
    for i in range(5):
        d(CommitObject("bkt", f"k{i}", "v", "alice", 1, "e", chunks=(chunk(1, cid=f"c{i}"),)))
    first = d.cat.list_chunks(limit=2)
    assert [c.chunk.chunk_id for c in first] == ["c0", "c1"]
    rest = d.cat.list_chunks(after="c1")
    assert [c.chunk.chunk_id for c in rest] == ["c2", "c3", "c4"]
