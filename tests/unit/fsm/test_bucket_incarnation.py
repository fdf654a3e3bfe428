"""Bucket incarnations in the catalog FSM: every created bucket gets a number that never
repeats, and commands / queries naming an incarnation that is no longer current fail with
NoSuchBucket and change nothing (the gateway's stale bucket cache relies on this).

Also: records and log entries encoded before the field existed still decode ("no check").
"""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.errors import BlobstoreError, NoSuchBucket
from blobstore.rpc import codec as rpc
from metadata import wire
from metadata.api import (
    HeadObjectQuery,
    ListMultipartUploadsQuery,
    ListObjectsQuery,
    ListObjectsV2Query,
    ListObjectVersionsQuery,
    ListPartsQuery,
    run_query,
)
from metadata.fsm import keyspace as ks
from metadata.fsm.codec import decode_value, encode_value
from metadata.fsm.commands import (
    AbortMultipartUpload,
    ClientCommand,
    Command,
    CommitObject,
    CompletedPart,
    CompleteMultipartUpload,
    CopyObject,
    CreateBucket,
    CreateMultipartUpload,
    DeleteBucket,
    DeleteObject,
    DeleteObjects,
    ObjectIdentifier,
    PutBucketAcl,
    PutBucketCors,
    PutBucketTagging,
    PutBucketVersioning,
    PutObjectTagging,
)
from metadata.fsm.machine import decode_entry
from metadata.fsm.records import BucketRecord, CorsRule
from metadata.fsm.results import ObjectCommitted
from metadata.fsm.state import Catalog

from .helpers import Driver, md5, obj, part
from .test_fences import OLD_ENTRY, OLD_SNAPSHOT, state
from .test_multipart_checksums import _old_bytes

B = "inc-bucket"


def exists(d: Driver, name: str = B) -> bool:
    return d.cat.kv.get(ks.BUCKET + name.encode()) is not None


def incarnation(d: Driver, name: str = B) -> int:
    return d.cat.get_bucket(name).incarnation


def replaced(owner: str = "bob") -> tuple[Driver, int, int]:
    """A bucket of alice's with an object and an upload, deleted and re-created by
    ``owner`` in the same millisecond; the new one holds bob's objects and upload.
    Returns (driver, old incarnation, new incarnation)."""
    d = Driver()
    d(CreateBucket(B, "alice"))
    old = incarnation(d)
    d(obj(B, "k", b"alice"))
    d(DeleteObject(B, "k"))
    assert d(DeleteBucket(B)) is not None
    d(CreateBucket(B, owner))
    new = incarnation(d)
    d(obj(B, "k", b"bob's"))
    d(obj(B, "other", b"bob's other"))
    d(CreateMultipartUpload(B, "mp", "up-1", owner))
    return d, old, new


# -- allocation -------------------------------------------------------------------------
def test_incarnations_never_repeat_even_within_one_millisecond() -> None:
    d = Driver()
    seen: list[int] = []
    for owner in ("alice", "bob", "alice", "alice"):
        d(CreateBucket(B, owner), now_ms=5_000)
        d(CreateBucket("other-bucket", owner), now_ms=5_000)
        seen += [incarnation(d), incarnation(d, "other-bucket")]
        d(DeleteBucket(B), now_ms=5_000)
        d(DeleteBucket("other-bucket"), now_ms=5_000)
    assert len(set(seen)) == len(seen) and min(seen) >= 1
    assert seen == sorted(seen)  # drawn from one increasing sequence


def test_incarnation_is_shared_with_the_version_sequence_and_survives_snapshots() -> None:
    d = Driver()
    d(CreateBucket(B, "alice"))
    d(obj(B, "k", b"x"))
    d(CreateBucket("second", "alice"))
    seq = d.cat.head_object(B, "k").record.seq
    assert incarnation(d) < seq < incarnation(d, "second")
    restored = Catalog()
    restored.restore(d.cat.snapshot())
    assert restored.get_bucket("second") == d.cat.get_bucket("second")
    d2 = Driver(restored)
    d2.seq = 100
    d2(CreateBucket("third", "alice"))
    assert incarnation(d2, "third") > incarnation(d, "second")


# -- commands ---------------------------------------------------------------------------
def _commands(inc: int | None) -> list[Command]:
    """One of every command that names a bucket incarnation, each aimed at ``B``."""
    return [
        obj(B, "k", b"alice overwrites"),
        obj(B, "new", b"alice plants"),
        CopyObject(B, "other", B, "copied", "v9", "alice"),
        DeleteObject(B, "k"),
        DeleteObject(B, "other", "null"),
        DeleteObjects(B, (ObjectIdentifier("k"), ObjectIdentifier("other"))),
        PutObjectTagging(B, "k", (("x", "y"),)),
        CreateMultipartUpload(B, "mp2", "up-2", "alice"),
        part(B, "mp", "up-1", 1, b"alice's part"),
        AbortMultipartUpload(B, "mp", "up-1"),
        PutBucketVersioning(B, "Enabled"),
        PutBucketTagging(B, (("t", "1"),)),
        PutBucketCors(B, (CorsRule(("*",), ("GET",)),)),
        PutBucketAcl(B, "public-read"),
        DeleteBucket(B),
    ]


def _with(command: Command, inc: int | None) -> Command:
    if isinstance(command, CopyObject):
        return dataclasses.replace(command, src_incarnation=inc, incarnation=inc)
    return dataclasses.replace(command, incarnation=inc)  # type: ignore[arg-type]


@pytest.mark.parametrize("index", range(len(_commands(None))))
def test_a_command_naming_a_replaced_incarnation_fails_and_changes_nothing(index: int) -> None:
    d, old, _new = replaced()
    before = state(d)
    result = d(_with(_commands(old)[index], old))
    assert isinstance(result, NoSuchBucket)
    assert result.details["bucket"] == B
    assert state(d) == before
    assert d.cat.head_object(B, "k").record.inline_data == b"bob's"


@pytest.mark.parametrize("index", range(len(_commands(None))))
@pytest.mark.parametrize("current", [True, False])
def test_the_current_incarnation_or_none_checks_pass(index: int, current: bool) -> None:
    d, _old, new = replaced()
    command = _with(_commands(new)[index], new if current else None)
    if isinstance(command, DeleteBucket):  # needs an empty bucket
        for key in ("k", "other"):
            d(DeleteObject(B, key))
    result = d(command)
    assert not isinstance(result, BlobstoreError), result


def test_complete_multipart_upload_checks_the_incarnation() -> None:
    d = Driver()
    d(CreateBucket(B, "alice"))
    d(CreateMultipartUpload(B, "mp", "up", "alice"))
    d(part(B, "mp", "up", 1, b"only"))
    inc = incarnation(d)
    complete = CompleteMultipartUpload(B, "mp", "up", (CompletedPart(1, md5(b"only")),), "v1")
    stale = d(dataclasses.replace(complete, incarnation=inc + 1))
    assert isinstance(stale, NoSuchBucket)
    assert isinstance(d(dataclasses.replace(complete, incarnation=inc)), ObjectCommitted)


def test_copy_checks_source_and_destination_separately() -> None:
    d, old, new = replaced()
    d(CreateBucket("dest", "bob"))
    dest = incarnation(d, "dest")
    copy = CopyObject(B, "k", "dest", "copied", "v1", "bob")
    stale_src = dataclasses.replace(copy, src_incarnation=old, incarnation=dest)
    assert isinstance(d(stale_src), NoSuchBucket)
    stale_dest = dataclasses.replace(copy, src_incarnation=new, incarnation=dest + 1)
    result = d(stale_dest)
    assert isinstance(result, NoSuchBucket) and result.details["bucket"] == "dest"
    ok = dataclasses.replace(copy, src_incarnation=new, incarnation=dest)
    assert isinstance(d(ok), ObjectCommitted)


# -- queries ----------------------------------------------------------------------------
ScopedQuery = (
    HeadObjectQuery
    | ListObjectsQuery
    | ListObjectsV2Query
    | ListObjectVersionsQuery
    | ListMultipartUploadsQuery
    | ListPartsQuery
)
_QUERIES: list[ScopedQuery] = [
    HeadObjectQuery(B, "k"),
    HeadObjectQuery(B, "k", "null"),
    ListObjectsQuery(B),
    ListObjectsV2Query(B),
    ListObjectVersionsQuery(B),
    ListMultipartUploadsQuery(B),
    ListPartsQuery(B, "mp", "up-1"),
]


@pytest.mark.parametrize("q", _QUERIES, ids=lambda q: type(q).__name__)
def test_queries_refuse_a_replaced_incarnation_and_answer_the_current_one(q: ScopedQuery) -> None:
    d, old, new = replaced()
    with pytest.raises(NoSuchBucket):
        run_query(d.cat, dataclasses.replace(q, incarnation=old))
    run_query(d.cat, dataclasses.replace(q, incarnation=new))
    run_query(d.cat, q)  # None: no check


# -- a history of re-creations ------------------------------------------------------------
step = st.tuples(st.sampled_from(["create", "delete", "put"]), st.sampled_from(["alice", "bob"]))


@settings(deadline=None, max_examples=60)
@given(st.lists(step, max_size=25), st.data())
def test_a_write_succeeds_exactly_when_it_names_the_current_incarnation(
    steps: list[tuple[str, str]], data: st.DataObject
) -> None:
    d = Driver()
    history: list[int] = []  # every incarnation B ever had
    for n, (action, owner) in enumerate(steps):
        if action == "create" and not isinstance(d(CreateBucket(B, owner)), BlobstoreError):
            history.append(incarnation(d))
        elif action == "delete" and exists(d):
            for summary in d.cat.list_objects(B).contents:
                d(DeleteObject(B, summary.key))
            assert not isinstance(d(DeleteBucket(B)), BlobstoreError)
        elif action == "put" and history:
            named = data.draw(st.sampled_from([*history, None]))
            current = incarnation(d) if exists(d) else None
            result = d(dataclasses.replace(obj(B, f"k{n}", b"v"), incarnation=named))
            ok = exists(d) and (named is None or named == current)
            assert isinstance(result, ObjectCommitted) == ok, (named, current, result)


# -- old encodings -------------------------------------------------------------------------
def test_records_and_commands_encoded_before_the_field_decode_with_no_check() -> None:
    rec = BucketRecord(B, "alice", 5, incarnation=7)
    assert decode_value(encode_value(rec)) == rec
    assert decode_value(_old_bytes(rec, 1)) == dataclasses.replace(rec, incarnation=0)
    for command in _commands(3):
        scoped = _with(command, 3)
        dropped = 2 if isinstance(scoped, CopyObject) else 1
        assert decode_value(_old_bytes(scoped, dropped)) == _with(command, None)


def test_an_old_snapshot_and_log_entry_work_with_incarnations() -> None:
    cat = Catalog()
    cat.restore(OLD_SNAPSHOT)  # written before incarnations: bucket "old" has none
    assert cat.get_bucket("old").incarnation == 0
    d = Driver(cat, client="new-gw")
    entry = decode_entry(OLD_ENTRY)  # a CommitObject logged before the field: no check
    assert isinstance(entry.command, CommitObject) and entry.command.incarnation is None
    assert isinstance(cat.apply(ClientCommand("old-gw", 1, 6_000, entry.command)), ObjectCommitted)
    assert isinstance(d(dataclasses.replace(obj("old", "a", b"1"), incarnation=0)), ObjectCommitted)
    for key in ("k", "late", "a"):
        d(DeleteObject("old", key))
    assert not isinstance(d(DeleteBucket("old", 0)), BlobstoreError)
    d(CreateBucket("old", "bob"))
    assert incarnation(d, "old") >= 1
    assert isinstance(d(dataclasses.replace(obj("old", "b", b"2"), incarnation=0)), NoSuchBucket)


@pytest.mark.parametrize("q", _QUERIES, ids=lambda q: type(q).__name__)
def test_queries_carry_the_incarnation_over_rpc_and_older_senders_mean_no_check(
    q: ScopedQuery,
) -> None:
    wire.register_all()
    scoped = dataclasses.replace(q, incarnation=12)
    assert rpc.decode(rpc.encode(scoped)) == scoped
    fields = [getattr(q, f.name) for f in dataclasses.fields(q)][:-1]
    older = msgpack.packb([rpc.tag_of(type(q)), *fields], use_bin_type=True)
    assert rpc.decode(older) == q  # a sender from before the field: incarnation None
