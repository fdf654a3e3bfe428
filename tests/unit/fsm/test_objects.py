"""Object commands: commit, conditional writes, copy (shared chunks), delete, versioning."""

from __future__ import annotations

import pytest

from blobstore.errors import InvalidArgument, NoSuchBucket, NoSuchKey, PreconditionFailed
from metadata.fsm.commands import (
    CommitObject,
    CopyObject,
    CreateBucket,
    DeleteObject,
    DeleteObjects,
    ObjectIdentifier,
    PutBucketVersioning,
)
from metadata.fsm.records import ObjectHeaders
from metadata.fsm.results import ObjectCommitted, ObjectDeleted, ObjectsDeleted

from .helpers import Driver, chunk, md5, obj


@pytest.fixture
def d() -> Driver:
    drv = Driver()
    drv(CreateBucket("bkt", "alice"))
    return drv


def _queued(d: Driver) -> set[tuple[str, int]]:
    return {(e.shard.chunk_id, e.shard.server_id) for e in d.cat.delete_queue_page().entries}


def test_commit_inline_and_head(d: Driver) -> None:
    headers = ObjectHeaders(content_type="text/plain", user_metadata=(("mtime", "1"),))
    r = d(obj("bkt", "hello.txt", b"hello", headers=headers), now_ms=7_000)
    assert r == ObjectCommitted("bkt", "hello.txt", None, md5(b"hello"), 5, 7_000)
    info = d.cat.head_object("bkt", "hello.txt")
    assert info.record.inline_data == b"hello"
    assert info.record.headers == headers
    assert info.chunks == () and info.is_latest
    with pytest.raises(NoSuchKey):
        d.cat.head_object("bkt", "nope")
    with pytest.raises(NoSuchBucket):
        d.cat.head_object("nob", "x")


def test_commit_chunked_resolves_chunks(d: Driver) -> None:
    c = chunk(10)
    r = d(CommitObject("bkt", "k", "v1", "alice", 10, '"abc"', chunks=(c,)))
    assert isinstance(r, ObjectCommitted) and r.etag == "abc"
    assert d.cat.head_object("bkt", "k").chunks == (c,)
    assert d.cat.get_chunk(c.chunk_id).refs == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "cmd",
    [
        CommitObject("bkt", "", "v", "alice", 0, "e", inline_data=b""),
        CommitObject("bkt", "a\x00b", "v", "alice", 0, "e", inline_data=b""),
        CommitObject("bkt", "k" * 1025, "v", "alice", 0, "e", inline_data=b""),
        CommitObject("bkt", "k", "v", "alice", 3, "e", inline_data=b"ab"),
        CommitObject("bkt", "k", "v", "alice", 3, "e"),
        CommitObject("bkt", "k", "v", "alice", -1, "e", inline_data=b""),
        CommitObject("bkt", "k", "v", "alice", 5, "e", chunks=(chunk(4),)),
        CommitObject("bkt", "k", "v", "alice", 4, "e", chunks=(chunk(4),), inline_data=b"abcd"),
        CommitObject("bkt", "k", "v", "alice", 4, "e", chunks=(chunk(4, (1, 1, 2, 3, 4, 5)),)),
        CommitObject("bkt", "k", "v", "alice", 4, "e", chunks=(chunk(4, (1, 2, 3, 4, 5, 6, 7)),)),
        CommitObject("bkt", "k", "v", "alice", 4, "e", chunks=(chunk(4, (0, 2)),)),
    ],
)
def test_commit_rejects_malformed(d: Driver, cmd: CommitObject) -> None:
    assert isinstance(d(cmd), InvalidArgument)
    assert d.cat.list_objects("bkt").contents == ()
    assert d.cat.list_chunks() == ()


def test_commit_rejects_reused_chunk_id(d: Driver) -> None:
    c = chunk(4)
    d(CommitObject("bkt", "k1", "v", "alice", 4, "e", chunks=(c,)))
    assert isinstance(
        d(CommitObject("bkt", "k2", "v", "alice", 4, "e", chunks=(c,))), InvalidArgument
    )
    assert isinstance(
        d(
            CommitObject(
                "bkt", "k3", "v", "alice", 8, "e", chunks=(chunk(4, cid="z"), chunk(4, cid="z"))
            )
        ),
        InvalidArgument,
    )


def test_missing_bucket(d: Driver) -> None:
    assert isinstance(d(obj("nob", "k", b"x")), NoSuchBucket)


def test_overwrite_queues_old_shards(d: Driver) -> None:
    first = obj("bkt", "k", b"one", chunked=True)
    d(first)
    d(obj("bkt", "k", b"two", chunked=True))
    cid = first.chunks[0].chunk_id
    assert d.cat.get_chunk(cid) is None
    assert _queued(d) == {(cid, s) for s in range(1, 7)}
    assert d.cat.head_object("bkt", "k").record.size == 3


def test_if_none_match_star(d: Driver) -> None:
    assert isinstance(d(obj("bkt", "k", b"1", if_none_match=True)), ObjectCommitted)
    assert isinstance(d(obj("bkt", "k", b"2", if_none_match=True)), PreconditionFailed)
    assert d.cat.head_object("bkt", "k").record.inline_data == b"1"


def test_if_match(d: Driver) -> None:
    assert isinstance(d(obj("bkt", "k", b"1", if_match="*")), NoSuchKey)
    d(obj("bkt", "k", b"1"))
    assert isinstance(d(obj("bkt", "k", b"2", if_match='"deadbeef"')), PreconditionFailed)
    assert isinstance(d(obj("bkt", "k", b"2", if_match=f'"{md5(b"1")}"')), ObjectCommitted)
    assert isinstance(d(obj("bkt", "k", b"3", if_match="*")), ObjectCommitted)
    assert d.cat.head_object("bkt", "k").record.inline_data == b"3"


def test_copy_shares_chunks_and_survives_source_delete(d: Driver) -> None:
    src = obj("bkt", "src", b"data", chunked=True)
    d(src)
    cid = src.chunks[0].chunk_id
    r = d(CopyObject("bkt", "src", "bkt", "dst", "v9", "bob"), now_ms=9_000)
    assert isinstance(r, ObjectCommitted) and r.etag == md5(b"data") and r.last_modified_ms == 9_000
    assert d.cat.get_chunk(cid).refs == 2  # type: ignore[union-attr]
    d(DeleteObject("bkt", "src"))
    assert d.cat.get_chunk(cid).refs == 1  # type: ignore[union-attr]
    assert _queued(d) == set()
    assert d.cat.head_object("bkt", "dst").chunks == src.chunks
    d(DeleteObject("bkt", "dst"))
    assert d.cat.get_chunk(cid) is None
    assert len(_queued(d)) == 6


def test_copy_onto_itself_replaces_metadata_keeps_chunks(d: Driver) -> None:
    src = obj("bkt", "k", b"data", chunked=True)
    d(src)
    new_headers = ObjectHeaders(content_type="image/png")
    r = d(CopyObject("bkt", "k", "bkt", "k", "v2", "alice", headers=new_headers))
    assert isinstance(r, ObjectCommitted)
    info = d.cat.head_object("bkt", "k")
    assert info.record.headers == new_headers
    assert d.cat.get_chunk(src.chunks[0].chunk_id).refs == 1  # type: ignore[union-attr]
    assert _queued(d) == set()


def test_copy_inline_and_conditions(d: Driver) -> None:
    d(obj("bkt", "src", b"tiny", headers=ObjectHeaders(content_type="a/b")))
    assert isinstance(d(CopyObject("bkt", "nope", "bkt", "x", "v", "a")), NoSuchKey)
    assert isinstance(d(CopyObject("nob", "src", "bkt", "x", "v", "a")), NoSuchBucket)
    bad = CopyObject("bkt", "src", "bkt", "x", "v", "a", source_if_match="zzz")
    assert isinstance(d(bad), PreconditionFailed)
    bad = CopyObject("bkt", "src", "bkt", "x", "v", "a", source_if_none_match=md5(b"tiny"))
    assert isinstance(d(bad), PreconditionFailed)
    ok = CopyObject("bkt", "src", "bkt", "x", "v", "a", source_if_match=md5(b"tiny"))
    assert isinstance(d(ok), ObjectCommitted)
    info = d.cat.head_object("bkt", "x")
    assert info.record.inline_data == b"tiny" and info.record.headers.content_type == "a/b"
    assert isinstance(
        d(CopyObject("bkt", "src", "bkt", "x", "v", "a", if_none_match=True)), PreconditionFailed
    )


def test_delete_missing_key_succeeds(d: Driver) -> None:
    assert d(DeleteObject("bkt", "nope")) == ObjectDeleted("nope", None, False)


def test_delete_if_match(d: Driver) -> None:
    d(obj("bkt", "k", b"1"))
    assert isinstance(d(DeleteObject("bkt", "k", if_match="nope")), PreconditionFailed)
    assert isinstance(d(DeleteObject("bkt", "k", if_match=md5(b"1"))), ObjectDeleted)
    with pytest.raises(NoSuchKey):
        d.cat.head_object("bkt", "k")


def test_delete_objects_mixed(d: Driver) -> None:
    for k in ("a", "bkt", "c"):
        d(obj("bkt", k, b"x"))
    r = d(
        DeleteObjects("bkt", (ObjectIdentifier("a"), ObjectIdentifier("zz"), ObjectIdentifier("")))
    )
    assert isinstance(r, ObjectsDeleted)
    assert [x.key for x in r.deleted] == ["a", "zz"]
    assert [(e.key, e.code) for e in r.errors] == [("", "InvalidArgument")]
    assert [o.key for o in d.cat.list_objects("bkt").contents] == ["bkt", "c"]
    too_many = DeleteObjects("bkt", tuple(ObjectIdentifier(f"k{i}") for i in range(1001)))
    assert isinstance(d(too_many), InvalidArgument)


def test_versioning_enabled_keeps_versions_and_markers(d: Driver) -> None:
    d(obj("bkt", "k", b"null-era", version_id="ignored"))
    d(PutBucketVersioning("bkt", "Enabled"))
    r1 = d(obj("bkt", "k", b"one", chunked=True, version_id="v1"))
    assert isinstance(r1, ObjectCommitted) and r1.version_id == "v1"
    assert isinstance(d(obj("bkt", "k", b"dup", version_id="v1")), InvalidArgument)
    d(obj("bkt", "k", b"two", version_id="v2"))
    assert d.cat.head_object("bkt", "k").record.inline_data == b"two"
    assert d.cat.head_object("bkt", "k", "null").record.inline_data == b"null-era"
    old = d.cat.head_object("bkt", "k", "v1")
    assert old.record.size == 3 and not old.is_latest and old.chunks
    r = d(DeleteObject("bkt", "k", marker_version_id="m1"))
    assert r == ObjectDeleted("k", "m1", True)
    with pytest.raises(NoSuchKey):
        d.cat.head_object("bkt", "k")
    marker = d.cat.head_object("bkt", "k", "m1")
    assert marker.record.is_delete_marker and marker.is_latest
    assert d.cat.list_objects("bkt").contents == ()
    # removing the marker brings back v2
    assert d(DeleteObject("bkt", "k", version_id="m1")) == ObjectDeleted("k", "m1", True)
    assert d.cat.head_object("bkt", "k").record.version_id == "v2"
    # permanently deleting the current version promotes the newest remaining (v1)
    d(DeleteObject("bkt", "k", version_id="v2"))
    assert d.cat.head_object("bkt", "k").record.version_id == "v1"
    assert _queued(d) == set()
    d(DeleteObject("bkt", "k", version_id="v1"))
    assert len(_queued(d)) == 6
    assert d.cat.head_object("bkt", "k").record.version_id == "null"


def test_versioning_suspended_replaces_null_version(d: Driver) -> None:
    d(PutBucketVersioning("bkt", "Enabled"))
    d(obj("bkt", "k", b"one", version_id="v1"))
    d(PutBucketVersioning("bkt", "Suspended"))
    first = obj("bkt", "k", b"n1", chunked=True)
    r = d(first)
    assert isinstance(r, ObjectCommitted) and r.version_id == "null"
    d(obj("bkt", "k", b"n2"))
    assert d.cat.get_chunk(first.chunks[0].chunk_id) is None  # null version replaced
    assert d.cat.head_object("bkt", "k", "v1").record.inline_data == b"one"
    r2 = d(DeleteObject("bkt", "k"))
    assert r2 == ObjectDeleted("k", "null", True)
    with pytest.raises(NoSuchKey):
        d.cat.head_object("bkt", "k")
    assert d.cat.head_object("bkt", "k", "null").record.is_delete_marker


def test_put_object_tagging(d: Driver) -> None:
    from metadata.fsm.commands import PutObjectTagging
    from metadata.fsm.results import ObjectTagged

    d(obj("bkt", "k", b"x"), now_ms=5_000)
    r = d(PutObjectTagging("bkt", "k", (("a", "1"),)), now_ms=9_000)
    assert r == ObjectTagged("k", None)
    info = d.cat.head_object("bkt", "k")
    assert info.record.headers.tags == (("a", "1"),) and info.record.last_modified_ms == 5_000
    d(PutObjectTagging("bkt", "k", None))
    assert d.cat.head_object("bkt", "k").record.headers.tags == ()
    assert isinstance(d(PutObjectTagging("bkt", "nope", ())), NoSuchKey)
    many = tuple((f"t{i}", "v") for i in range(11))
    assert isinstance(d(PutObjectTagging("bkt", "k", many)), InvalidArgument)
    d(PutBucketVersioning("bkt", "Enabled"))
    d(obj("bkt", "k", b"y", version_id="v2"))
    assert d(PutObjectTagging("bkt", "k", (("old", "1"),), "null")) == ObjectTagged("k", "null")
    assert d.cat.head_object("bkt", "k", "null").record.headers.tags == (("old", "1"),)
    assert d.cat.head_object("bkt", "k").record.headers.tags == ()
