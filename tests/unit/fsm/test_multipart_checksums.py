"""Multipart checksum state (#5): the upload's checksum type, part checksums kept on the
completed object, and old encodings (before these fields) still decoding."""

from __future__ import annotations

import dataclasses
from typing import Any

from metadata.fsm.codec import TAGS, decode_value, encode_value, make_packer
from metadata.fsm.commands import (
    CommitPart,
    CompletedPart,
    CompleteMultipartUpload,
    CreateBucket,
    CreateMultipartUpload,
)
from metadata.fsm.records import ObjectRecord, UploadRecord
from metadata.fsm.results import ObjectCommitted

from .helpers import Driver, chunk, md5

BIG = b"x" * 10  # the test driver's minimum part size is 10 bytes


def _part(number: int, data: bytes, checksums: tuple[tuple[str, str], ...]) -> CommitPart:
    return CommitPart(
        "bkt", "k", "up", number, len(data), md5(data), (chunk(len(data)),), checksums
    )


def _setup(kind: str = "FULL_OBJECT") -> Driver:
    d = Driver()
    d(CreateBucket("bkt", "alice"))
    d(
        CreateMultipartUpload(
            "bkt", "k", "up", "alice", checksum_algorithm="CRC32", checksum_type=kind
        )
    )
    return d


def test_upload_keeps_its_checksum_type() -> None:
    d = _setup("FULL_OBJECT")
    page = d.cat.list_parts("bkt", "k", "up")
    assert page.upload.checksum_algorithm == "CRC32"
    assert page.upload.checksum_type == "FULL_OBJECT"


def _complete(d: Driver, keep: bool, listed: tuple[int, ...] = (1, 2, 3)) -> ObjectRecord:
    datas = {1: BIG, 2: BIG + b"y", 3: b"tail"}
    sums = {1: (("CRC32", "AAAAAQ=="),), 2: (("CRC32", "AAAAAg=="),), 3: ()}
    for n in (1, 2, 3):
        d(_part(n, datas[n], sums[n]))
    result = d(
        CompleteMultipartUpload(
            "bkt",
            "k",
            "up",
            tuple(CompletedPart(n, md5(datas[n])) for n in listed),
            "v1",
            checksums=(("CRC32", "AAAAAw=="),),
            keep_part_checksums=keep,
        )
    )
    assert isinstance(result, ObjectCommitted), result
    return d.cat.head_object("bkt", "k").record


def test_complete_keeps_the_listed_parts_checksums() -> None:
    rec = _complete(_setup(), keep=True)
    assert rec.checksums == (("CRC32", "AAAAAw=="),)
    assert rec.part_sizes == (10, 11, 4)
    assert rec.part_checksums == ((("CRC32", "AAAAAQ=="),), (("CRC32", "AAAAAg=="),), ())


def test_complete_keeps_only_listed_parts() -> None:
    rec = _complete(_setup(), keep=True, listed=(2, 3))
    assert rec.part_sizes == (11, 4)
    assert rec.part_checksums == ((("CRC32", "AAAAAg=="),), ())


def test_complete_without_the_flag_is_unchanged() -> None:
    # a log entry written before the field existed replays as it did then
    rec = _complete(_setup(), keep=False)
    assert rec.part_checksums == ()


def test_parts_without_checksums_store_nothing() -> None:
    d = _setup("COMPOSITE")
    d(_part(1, b"only", ()))
    d(
        CompleteMultipartUpload(
            "bkt", "k", "up", (CompletedPart(1, md5(b"only")),), "v1", keep_part_checksums=True
        )
    )
    assert d.cat.head_object("bkt", "k").record.part_checksums == ()


def _old_bytes(value: Any, dropped: int) -> bytes:
    """``value`` encoded as the previous layout did: without its last ``dropped`` fields."""
    fields = tuple(getattr(value, f.name) for f in dataclasses.fields(value))[:-dropped]
    return bytes(make_packer().pack({TAGS[type(value)]: fields}))


def test_old_encodings_decode_with_defaults() -> None:
    rec = ObjectRecord("v1", 4, "e-1", 5, "alice", 1, part_sizes=(4,), part_checksums=((),))
    assert decode_value(encode_value(rec)) == rec
    assert decode_value(_old_bytes(rec, 1)) == dataclasses.replace(rec, part_checksums=())

    up = UploadRecord("up", "alice", 5, checksum_algorithm="CRC32", checksum_type="COMPOSITE")
    assert decode_value(encode_value(up)) == up
    assert decode_value(_old_bytes(up, 1)) == dataclasses.replace(up, checksum_type="")

    create = CreateMultipartUpload("b", "k", "up", "alice", checksum_type="FULL_OBJECT")
    # (2: ``incarnation`` was appended after ``checksum_type``)
    assert decode_value(_old_bytes(create, 2)) == dataclasses.replace(create, checksum_type="")

    complete = CompleteMultipartUpload(
        "b", "k", "up", (CompletedPart(1, "e"),), "v", keep_part_checksums=True
    )
    assert decode_value(encode_value(complete)) == complete
    assert decode_value(_old_bytes(complete, 2)) == dataclasses.replace(
        complete, keep_part_checksums=False
    )
