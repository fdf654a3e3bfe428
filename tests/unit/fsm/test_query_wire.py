"""Query answers cross the wire in the catalog codec: every result type round-trips."""

from __future__ import annotations

import dataclasses

from metadata.api import HeadObjectQuery, ListObjectsV2Query, ListPartsQuery, run_query
from metadata.fsm import results
from metadata.fsm.codec import TAGS, decode_value, encode_value
from metadata.fsm.commands import (
    ClientCommand,
    CommitObject,
    CreateBucket,
    CreateMultipartUpload,
)
from metadata.fsm.state import Catalog


def test_every_result_class_has_a_tag() -> None:
    for name in results.__all__:
        cls = getattr(results, name)
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            assert cls in TAGS, f"{name} cannot cross the wire"


def test_query_answers_round_trip() -> None:
    cat = Catalog()
    seq = iter(range(1, 100))
    for cmd in (
        CreateBucket("bucket", "alice"),
        CommitObject(
            bucket="bucket",
            key="a/b",
            version_id="",
            owner="alice",
            size=3,
            etag='"e"',
            inline_data=b"abc",
        ),
        CreateMultipartUpload(bucket="bucket", key="big", upload_id="u1", owner="alice"),
    ):
        cat.apply(ClientCommand("c", next(seq), 1_000, cmd))
    for q in (
        HeadObjectQuery("bucket", "a/b"),
        ListObjectsV2Query("bucket", delimiter="/"),
        ListPartsQuery("bucket", "big", "u1"),
    ):
        answer = run_query(cat, q)
        assert decode_value(encode_value(answer)) == answer
