"""Multipart uploads: create, parts, complete (validation, ETag), abort, listings."""

from __future__ import annotations

import hashlib

import pytest

from blobstore.errors import (
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    NoSuchBucket,
    NoSuchUpload,
    PreconditionFailed,
)
from metadata.fsm.apply import multipart_etag
from metadata.fsm.commands import (
    AbortMultipartUpload,
    CommitPart,
    CompletedPart,
    CompleteMultipartUpload,
    CreateBucket,
    CreateMultipartUpload,
)
from metadata.fsm.records import ObjectHeaders
from metadata.fsm.results import ObjectCommitted, PartCommitted, UploadAborted, UploadCreated

from .helpers import Driver, md5, obj, part

BIG = b"x" * 10  # the test driver's minimum part size is 10 bytes


@pytest.fixture
def d() -> Driver:
    drv = Driver()
    drv(CreateBucket("bkt", "alice"))
    return drv


def _queued(d: Driver) -> int:
    return len(d.cat.delete_queue_page().entries)


def test_multipart_etag_matches_s3_formula() -> None:
    a, b = md5(b"a"), md5(b"b")
    want = hashlib.md5(bytes.fromhex(a) + bytes.fromhex(b)).hexdigest() + "-2"
    assert multipart_etag([a, b]) == want


def test_full_upload(d: Driver) -> None:
    headers = ObjectHeaders(content_type="video/mp4")
    assert d(CreateMultipartUpload("bkt", "movie", "up1", "alice", headers)) == UploadCreated(
        "bkt", "movie", "up1"
    )
    assert isinstance(d(CreateMultipartUpload("bkt", "movie", "up1", "alice")), InvalidArgument)
    p1, p2, p3 = (
        part("bkt", "movie", "up1", 1, BIG),
        part("bkt", "movie", "up1", 2, BIG + b"y"),
        part("bkt", "movie", "up1", 3, b"tail"),
    )
    for p in (p1, p2, p3):
        assert d(p) == PartCommitted("up1", p.part_number, p.etag)
    listed = d.cat.list_parts("bkt", "movie", "up1")
    assert [p.part_number for p in listed.parts] == [1, 2, 3] and not listed.is_truncated
    page = d.cat.list_parts("bkt", "movie", "up1", part_number_marker=1, max_parts=1)
    assert [p.part_number for p in page.parts] == [2]
    assert page.is_truncated and page.next_part_number_marker == 2
    done = d(
        CompleteMultipartUpload(
            "bkt",
            "movie",
            "up1",
            (CompletedPart(1, p1.etag), CompletedPart(3, f'"{p3.etag}"')),
            "v1",
        ),
        now_ms=50_000,
    )
    assert isinstance(done, ObjectCommitted)
    assert done.etag == multipart_etag([p1.etag, p3.etag])
    assert done.size == 14 and done.last_modified_ms == 50_000
    info = d.cat.head_object("bkt", "movie")
    assert info.record.part_sizes == (10, 4)
    assert info.chunks == p1.chunks + p3.chunks
    assert info.record.headers == headers
    assert _queued(d) == 6  # part 2 was not listed: its shards are freed
    with pytest.raises(NoSuchUpload):
        d.cat.list_parts("bkt", "movie", "up1")
    assert d.cat.list_multipart_uploads("bkt").uploads == ()


def test_reuploaded_part_replaces_old(d: Driver) -> None:
    d(CreateMultipartUpload("bkt", "k", "up1", "alice"))
    d(part("bkt", "k", "up1", 1, BIG))
    newer = part("bkt", "k", "up1", 1, BIG + b"z")
    d(newer)
    assert _queued(d) == 6
    assert d.cat.list_parts("bkt", "k", "up1").parts[0].etag == newer.etag


@pytest.mark.parametrize("number", [0, 10_001, -1])
def test_part_number_range(d: Driver, number: int) -> None:
    d(CreateMultipartUpload("bkt", "k", "up1", "alice"))
    assert isinstance(d(part("bkt", "k", "up1", number, b"x")), InvalidArgument)


def test_part_into_missing_upload(d: Driver) -> None:
    assert isinstance(d(part("bkt", "k", "nope", 1, b"x")), NoSuchUpload)
    assert isinstance(d(part("nob", "k", "nope", 1, b"x")), NoSuchBucket)
    bad = CommitPart("bkt", "k", "up\x00", 1, 0, "e")
    assert isinstance(d(bad), NoSuchUpload)


def test_complete_validation(d: Driver) -> None:
    d(CreateMultipartUpload("bkt", "k", "up1", "alice"))
    p1, p2 = part("bkt", "k", "up1", 1, b"small"), part("bkt", "k", "up1", 2, BIG)
    d(p1)
    d(p2)

    def complete(*parts: CompletedPart, **kw: object) -> object:
        return d(CompleteMultipartUpload("bkt", "k", "up1", parts, "v", **kw))  # type: ignore[arg-type]

    assert isinstance(complete(), InvalidArgument)
    assert isinstance(
        complete(CompletedPart(2, p2.etag), CompletedPart(1, p1.etag)), InvalidPartOrder
    )
    assert isinstance(
        complete(CompletedPart(1, p1.etag), CompletedPart(1, p1.etag)), InvalidPartOrder
    )
    assert isinstance(complete(CompletedPart(1, "0" * 32)), InvalidPart)
    assert isinstance(complete(CompletedPart(7, p1.etag)), InvalidPart)
    small = complete(CompletedPart(1, p1.etag), CompletedPart(2, p2.etag))
    assert isinstance(small, InvalidArgument) and small.details["code"] == "EntityTooSmall"
    d(obj("bkt", "k", b"existing"))
    assert isinstance(complete(CompletedPart(2, p2.etag), if_none_match=True), PreconditionFailed)
    # nothing was consumed by the failed attempts
    assert len(d.cat.list_parts("bkt", "k", "up1").parts) == 2
    assert isinstance(
        complete(CompletedPart(2, p2.etag)), ObjectCommitted
    )  # last part may be small
    assert isinstance(complete(CompletedPart(2, p2.etag)), NoSuchUpload)


def test_abort(d: Driver) -> None:
    d(CreateMultipartUpload("bkt", "k", "up1", "alice"))
    d(part("bkt", "k", "up1", 1, b"a"))
    d(part("bkt", "k", "up1", 2, b"b"))
    assert d(AbortMultipartUpload("bkt", "k", "up1")) == UploadAborted("up1", 2)
    assert _queued(d) == 12
    assert isinstance(d(AbortMultipartUpload("bkt", "k", "up1")), NoSuchUpload)


def test_list_multipart_uploads_markers(d: Driver) -> None:
    for key, uid in [("a/1", "u1"), ("a/1", "u2"), ("a/2", "u3"), ("b", "u4"), ("c", "u5")]:
        d(CreateMultipartUpload("bkt", key, uid, "alice"))
    everything = d.cat.list_multipart_uploads("bkt")
    assert [(u.key, u.upload.upload_id) for u in everything.uploads] == [
        ("a/1", "u1"),
        ("a/1", "u2"),
        ("a/2", "u3"),
        ("b", "u4"),
        ("c", "u5"),
    ]
    page = d.cat.list_multipart_uploads("bkt", max_uploads=1)
    assert page.is_truncated and (page.next_key_marker, page.next_upload_id_marker) == ("a/1", "u1")
    page = d.cat.list_multipart_uploads("bkt", key_marker="a/1", upload_id_marker="u1")
    assert [u.upload.upload_id for u in page.uploads] == ["u2", "u3", "u4", "u5"]
    page = d.cat.list_multipart_uploads("bkt", key_marker="a/1")
    assert [u.upload.upload_id for u in page.uploads] == ["u3", "u4", "u5"]
    page = d.cat.list_multipart_uploads("bkt", delimiter="/")
    assert page.common_prefixes == ("a/",)
    assert [u.key for u in page.uploads] == ["b", "c"]
    page = d.cat.list_multipart_uploads("bkt", delimiter="/", key_marker="a/")
    assert page.common_prefixes == () and [u.key for u in page.uploads] == ["b", "c"]
    page = d.cat.list_multipart_uploads("bkt", prefix="a/")
    assert [u.key for u in page.uploads] == ["a/1", "a/1", "a/2"]
