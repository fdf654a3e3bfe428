"""Bucket commands and queries; S3 bucket-name rules."""

from __future__ import annotations

import pytest

from blobstore.errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidArgument,
    InvalidBucketName,
    NoSuchBucket,
)
from metadata.fsm.commands import (
    CreateBucket,
    CreateMultipartUpload,
    DeleteBucket,
    DeleteObject,
    PutBucketAcl,
    PutBucketCors,
    PutBucketTagging,
    PutBucketVersioning,
)
from metadata.fsm.names import bucket_name_error
from metadata.fsm.records import CorsRule
from metadata.fsm.results import BucketCreated, BucketDeleted, BucketUpdated

from .helpers import Driver, obj, part


@pytest.mark.parametrize(
    "name",
    ["abc", "my-bucket", "my.bucket.1", "a" * 63, "0bucket9", "xn-a", "192.168.5.4x"],
)
def test_valid_bucket_names(name: str) -> None:
    assert bucket_name_error(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "MyBucket",
        "-abc",
        "abc-",
        ".abc",
        "abc.",
        "a..b",
        "192.168.5.4",
        "xn--abc",
        "sthree-abc",
        "abc-s3alias",
        "abc--ol-s3",
        "a_b",
        "ab c",
        "",
    ],
)
def test_invalid_bucket_names(name: str) -> None:
    assert bucket_name_error(name) is not None
    d = Driver()
    assert isinstance(d(CreateBucket(name, "alice")), InvalidBucketName)
    assert d.cat.list_buckets() == ()


def test_create_then_conflicts() -> None:
    d = Driver()
    assert d(CreateBucket("photos", "alice"), now_ms=5_000) == BucketCreated("photos")
    assert isinstance(d(CreateBucket("photos", "alice")), BucketAlreadyOwnedByYou)
    assert isinstance(d(CreateBucket("photos", "bob")), BucketAlreadyExists)
    b = d.cat.get_bucket("photos")
    assert (b.owner, b.created_ms, b.versioning, b.acl) == (
        "alice",
        5_000,
        "Unversioned",
        "private",
    )
    assert isinstance(d(CreateBucket("other", "")), InvalidArgument)


def test_list_buckets_by_owner() -> None:
    d = Driver()
    for name, owner in [("zeta", "alice"), ("alpha", "alice"), ("beta", "bob")]:
        d(CreateBucket(name, owner))
    assert [b.name for b in d.cat.list_buckets("alice")] == ["alpha", "zeta"]
    assert [b.name for b in d.cat.list_buckets("bob")] == ["beta"]
    assert [b.name for b in d.cat.list_buckets()] == ["alpha", "beta", "zeta"]
    assert d.cat.list_buckets("carol") == ()


def test_get_missing_bucket_raises() -> None:
    with pytest.raises(NoSuchBucket):
        Driver().cat.get_bucket("nope")


def test_delete_bucket_only_if_empty() -> None:
    d = Driver()
    assert isinstance(d(DeleteBucket("photos")), NoSuchBucket)
    d(CreateBucket("photos", "alice"))
    d(obj("photos", "a.jpg", b"x"))
    assert isinstance(d(DeleteBucket("photos")), BucketNotEmpty)
    d(DeleteObject("photos", "a.jpg"))
    d(CreateMultipartUpload("photos", "big", "up-1", "alice"))
    d(part("photos", "big", "up-1", 1, b"data"))
    r = d(DeleteBucket("photos"))
    assert r == BucketDeleted("photos", 1)
    assert d.cat.list_buckets("alice") == ()
    assert len(d.cat.delete_queue_page().entries) == 6  # the part's shards
    # the name is free again, for anyone
    assert d(CreateBucket("photos", "bob")) == BucketCreated("photos")


def test_versioned_bucket_with_only_noncurrent_versions_is_not_empty() -> None:
    d = Driver()
    d(CreateBucket("photos", "alice"))
    d(PutBucketVersioning("photos", "Enabled"))
    d(obj("photos", "a", b"1"))
    d(DeleteObject("photos", "a", marker_version_id="m1"))
    assert isinstance(d(DeleteBucket("photos")), BucketNotEmpty)


def test_bucket_settings() -> None:
    d = Driver()
    d(CreateBucket("photos", "alice"))
    r = d(PutBucketVersioning("photos", "Enabled"))
    assert isinstance(r, BucketUpdated) and r.bucket.versioning == "Enabled"
    assert isinstance(d(PutBucketVersioning("photos", "Unversioned")), InvalidArgument)
    d(PutBucketVersioning("photos", "Suspended"))
    assert d.cat.get_bucket("photos").versioning == "Suspended"
    d(PutBucketTagging("photos", (("env", "prod"),)))
    assert d.cat.get_bucket("photos").tags == (("env", "prod"),)
    d(PutBucketTagging("photos", None))
    assert d.cat.get_bucket("photos").tags is None
    rule = CorsRule(("*",), ("GET",), max_age_s=60)
    d(PutBucketCors("photos", (rule,)))
    assert d.cat.get_bucket("photos").cors == (rule,)
    d(PutBucketAcl("photos", "public-read"))
    assert d.cat.get_bucket("photos").acl == "public-read"
    assert isinstance(d(PutBucketAcl("nope", "private")), NoSuchBucket)
