"""boto3 against the gateway: every S3 operation we serve, its error codes, presigned URLs,
concurrent out-of-order multipart uploads (with COMPOSITE and FULL_OBJECT checksums and the
CompleteMultipartUpload checksum check), and authentication failures.

Runs against ``s3_server`` (see conftest): in-process over HTTP and HTTPS (where boto3
switches PutObject/UploadPart to aws-chunked with trailing checksums), each with botocore's
default checksum settings and with ``request_checksum_calculation="when_required"``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import os
import random
import ssl
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.e2e.conftest import S3Endpoint, collect_leaked_sockets

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


def _client(ep: S3Endpoint, secret: str | None = None, **config: Any) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=ep.endpoint_url,
        aws_access_key_id=ep.access_key,
        aws_secret_access_key=secret if secret is not None else ep.secret_key,
        region_name="us-east-1",
        verify=ep.ca_bundle if ep.ca_bundle else True,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            **config,
        ),
    )


@pytest.fixture
def s3(variant: str, s3_server: S3Endpoint) -> Iterator[BaseClient]:
    if variant.endswith("when_required"):
        client = _client(
            s3_server,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
    else:
        client = _client(s3_server)
    yield client
    client.close()
    collect_leaked_sockets()


@pytest.fixture
def bucket(s3: BaseClient) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys})
    for up in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    s3.delete_bucket(Bucket=name)


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -- buckets ------------------------------------------------------------------------------
def test_bucket_lifecycle(s3: BaseClient) -> None:
    name = f"e2e-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert _code(exc) == "BucketAlreadyOwnedByYou" and _status(exc) == 409
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _code(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert _status(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_location(Bucket=name)
    assert _code(exc) == "NoSuchBucket"


def test_create_bucket_with_location_constraint(s3: BaseClient) -> None:
    name = f"e2e-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.delete_bucket(Bucket=name)


def test_bucket_subresources(s3: BaseClient, bucket: str) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"

    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert _code(exc) == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "1"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "a", "Value": "1"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_tagging(Bucket=bucket)

    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=bucket)
    assert _code(exc) == "NoSuchCORSConfiguration"
    rules = [{"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["https://a.example"]}]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got[0]["AllowedMethods"] == ["GET", "PUT"]
    s3.delete_bucket_cors(Bucket=bucket)

    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Grants"][0]["Permission"] == "FULL_CONTROL"
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket=bucket)
    assert _code(exc) == "NoSuchBucketPolicy"
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert _status(exc) == 404


def test_cors_preflight(s3: BaseClient, s3_server: S3Endpoint, bucket: str) -> None:
    rules = [
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["https://a.example"], "MaxAgeSeconds": 60}
    ]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    url = f"{s3_server.endpoint_url}/{bucket}/x"
    with _http(s3_server) as http:
        ok = http.options(
            url, headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"}
        )
        assert ok.status_code == 200
        assert ok.headers["Access-Control-Allow-Origin"] == "https://a.example"
        assert ok.headers["Access-Control-Max-Age"] == "60"
        bad = http.options(
            url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
        )
        assert bad.status_code == 403


# -- objects ------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, 4096, 4097, 300_000, 3 * MiB + 7])
def test_put_get_roundtrip(s3: BaseClient, bucket: str, size: int) -> None:
    data = random.Random(size).randbytes(size)
    put = s3.put_object(
        Bucket=bucket,
        Key="dir/obj",
        Body=data,
        ContentType="text/plain",
        Metadata={"color": "blue", "mtime": "123"},
        CacheControl="no-cache",
    )
    assert put["ETag"] == f'"{_md5(data)}"'
    got = s3.get_object(Bucket=bucket, Key="dir/obj")
    assert got["Body"].read() == data
    assert got["ETag"] == put["ETag"]
    assert got["ContentLength"] == size
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"color": "blue", "mtime": "123"}
    assert got["CacheControl"] == "no-cache"
    head = s3.head_object(Bucket=bucket, Key="dir/obj")
    assert head["ETag"] == put["ETag"] and head["ContentLength"] == size
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert listed[0]["ETag"] == put["ETag"] and listed[0]["Size"] == size
    assert head["LastModified"] <= datetime.now(UTC) + timedelta(seconds=2)


def test_early_refusal_of_a_large_put_keeps_the_connection_usable(
    s3: BaseClient, bucket: str
) -> None:
    """The gateway answers before reading the body (then closes that connection)."""
    big = os.urandom(2 * MiB)
    for _ in range(3):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket="e2e-no-such-bucket-x", Key="k", Body=big)
        assert _code(exc) == "NoSuchBucket"
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="k", Body=big, IfMatch='"nope"')
        assert _status(exc) == 404
        s3.put_object(Bucket=bucket, Key="k", Body=b"small")
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"small"
        s3.delete_object(Bucket=bucket, Key="k")


def test_missing_key_and_bucket(s3: BaseClient, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="nope")
    assert _code(exc) == "NoSuchKey" and _status(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="nope")
    assert _status(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="no-such-bucket-e2e", Key="x")
    assert _code(exc) == "NoSuchBucket"
    s3.delete_object(Bucket=bucket, Key="nope")  # idempotent 204


def test_ranges_and_conditionals(s3: BaseClient, bucket: str) -> None:
    data = bytes(range(256)) * 40
    etag = s3.put_object(Bucket=bucket, Key="r", Body=data)["ETag"]
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert got["Body"].read() == data[10:20]
    assert got["ContentRange"] == f"bytes 10-19/{len(data)}"
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == data[-5:]
    assert (
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=10000-")["Body"].read() == data[10000:]
    )
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(data)}-")
    assert _status(exc) == 416
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=0-3", IfMatch=etag)
    assert got["Body"].read() == data[:4]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", IfMatch='"0000"')
    assert _status(exc) == 412
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", IfNoneMatch=etag)
    assert _status(exc) == 304
    future = datetime.now(UTC) + timedelta(days=1)
    past = datetime.now(UTC) - timedelta(days=1)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", IfModifiedSince=future)
    assert _status(exc) == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", IfUnmodifiedSince=past)
    assert _status(exc) == 412
    got = s3.get_object(Bucket=bucket, Key="r", ResponseContentType="application/x-test")
    assert got["ContentType"] == "application/x-test"


def test_conditional_writes(s3: BaseClient, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"1", IfNoneMatch="*")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="c", Body=b"2", IfNoneMatch="*")
    assert _status(exc) == 412
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="c", Body=b"2", IfMatch='"abc"')
    assert _status(exc) == 412
    s3.put_object(Bucket=bucket, Key="c", Body=b"3", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"3"


def test_checksum_mode_returns_stored_checksum(s3: BaseClient, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="ck", Body=b"hello world", ChecksumAlgorithm="SHA256")
    got = s3.get_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"hello world"
    assert got.get("ChecksumSHA256") == "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
    ranged = s3.get_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED", Range="bytes=0-1")
    assert "ChecksumSHA256" not in ranged


def test_bad_content_md5_is_rejected(s3: BaseClient, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"abc", ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==")
    assert _code(exc) == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad")


def test_copy_object(s3: BaseClient, bucket: str) -> None:
    data = os.urandom(10_000)
    src = s3.put_object(Bucket=bucket, Key="src", Body=data, Metadata={"a": "1"})
    first = s3.head_object(Bucket=bucket, Key="src")["LastModified"]
    out = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert out["CopyObjectResult"]["ETag"] == src["ETag"]
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {"a": "1"} and head["LastModified"] >= first
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == data
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "dst"},
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
        ContentType="image/png",
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {"b": "2"} and head["ContentType"] == "image/png"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "dst"})
    assert _code(exc) == "InvalidRequest"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket,
            Key="x",
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceIfMatch='"deadbeef"',
        )
    assert _status(exc) == 412
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})
    assert _code(exc) == "NoSuchKey"


def test_delete_objects(s3: BaseClient, bucket: str) -> None:
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"d/{i}", Body=b"x")
    out = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": f"d/{i}"} for i in range(6)]}
    )
    assert sorted(d["Key"] for d in out["Deleted"]) == [f"d/{i}" for i in range(6)]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "q"}], "Quiet": True})
    assert "Deleted" not in quiet


def test_object_tagging_acl_attributes(s3: BaseClient, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="t", Body=b"abc", Tagging="a=1&b=two")
    assert (
        s3.head_object(Bucket=bucket, Key="t")["ResponseMetadata"]["HTTPHeaders"][
            "x-amz-tagging-count"
        ]
        == "2"
    )
    tags = s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"a": "1", "b": "two"}
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "z", "Value": ""}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [{"Key": "z", "Value": ""}]
    s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []
    assert s3.get_object_acl(Bucket=bucket, Key="t")["Grants"][0]["Permission"] == "FULL_CONTROL"
    s3.put_object_acl(Bucket=bucket, Key="t", ACL="private")
    attrs = s3.get_object_attributes(
        Bucket=bucket, Key="t", ObjectAttributes=["ETag", "ObjectSize", "StorageClass"]
    )
    assert attrs["ObjectSize"] == 3 and attrs["ETag"] == _md5(b"abc")


# -- listing ------------------------------------------------------------------------------
def test_listing(s3: BaseClient, bucket: str) -> None:
    keys = ["a/1", "a/2", "b/1", "c", "d+e", "f%20g", "h i"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    v2 = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["a/", "b/"]
    assert [o["Key"] for o in v2["Contents"]] == ["c", "d+e", "f%20g", "h i"]
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 2}
        )
    )
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == sorted(keys)
    assert len(pages) == 4
    v1 = list(
        s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
    )
    assert [o["Key"] for p in v1 for o in p.get("Contents", [])] == sorted(keys)
    v1d = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=1)
    assert v1d["IsTruncated"] and v1d["NextMarker"] == "a/"
    assert s3.list_objects_v2(Bucket=bucket, Prefix="a/")["KeyCount"] == 2
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="c")
    assert [o["Key"] for o in after["Contents"]] == ["d+e", "f%20g", "h i"]
    owner = s3.list_objects_v2(Bucket=bucket, FetchOwner=True, MaxKeys=1)["Contents"][0]
    assert "Owner" in owner


# -- multipart ----------------------------------------------------------------------------
def _multipart(
    s3: BaseClient, bucket: str, key: str, parts: list[bytes], workers: int = 4
) -> dict[str, Any]:
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata={"m": "1"})
    uid = up["UploadId"]
    order = list(range(len(parts)))
    random.Random(len(parts)).shuffle(order)

    def send(i: int) -> dict[str, Any]:
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=i + 1, Body=parts[i])
        return {"PartNumber": i + 1, "ETag": r["ETag"]}

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(send, order))
    done.sort(key=lambda p: p["PartNumber"])
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)["Parts"]
    assert [p["PartNumber"] for p in listed] == list(range(1, len(parts) + 1))
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert uid in [u["UploadId"] for u in uploads]
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": done}
    )


def _expected_etag(parts: list[bytes]) -> str:
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def test_ranges_starting_mid_piece_over_many_stripes_are_exact(s3: BaseClient, bucket: str) -> None:
    """Ranged GETs that start inside a piece and cover tens of stripes of one chunk (a
    resumed download): each chunkserver's shard read then spans several of its read
    batches, which once returned a short, shifted range."""
    rng = random.Random(40)
    data = rng.randbytes(40 * MiB)
    s3.put_object(Bucket=bucket, Key="long", Body=data)
    for start, end in ((100, 36 * MiB), (MiB + 12_345, 40 * MiB - 1), (3, 7 * MiB + 5)):
        got = s3.get_object(Bucket=bucket, Key="long", Range=f"bytes={start}-{end}")
        body = got["Body"].read()
        assert len(body) == end - start + 1
        assert hashlib.sha256(body).digest() == hashlib.sha256(data[start : end + 1]).digest()


def test_multipart_16mib_concurrent_out_of_order(s3: BaseClient, bucket: str) -> None:
    rng = random.Random(16)
    parts = [rng.randbytes(5 * MiB) for _ in range(3)] + [rng.randbytes(MiB + 3)]
    out = _multipart(s3, bucket, "big", parts)
    assert out["ETag"] == _expected_etag(parts)
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ETag"] == out["ETag"] and head["ContentLength"] == sum(map(len, parts))
    assert head["Metadata"] == {"m": "1"}
    data = b"".join(parts)
    assert (
        hashlib.sha256(s3.get_object(Bucket=bucket, Key="big")["Body"].read()).digest()
        == hashlib.sha256(data).digest()
    )
    part2 = s3.get_object(Bucket=bucket, Key="big", PartNumber=2)
    assert part2["Body"].read() == parts[1] and part2["PartsCount"] == 4
    ranged = s3.get_object(
        Bucket=bucket, Key="big", Range="bytes=5242870-5242889", IfMatch=out["ETag"]
    )
    assert ranged["Body"].read() == data[5242870:5242890]
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert listed["ETag"] == out["ETag"]


@pytest.mark.slow
def test_multipart_100mib(s3: BaseClient, bucket: str) -> None:
    rng = random.Random(100)
    parts = [rng.randbytes(8 * MiB) for _ in range(12)] + [rng.randbytes(5 * MiB)]
    out = _multipart(s3, bucket, "huge", parts, workers=6)
    assert out["ETag"] == _expected_etag(parts)
    body = s3.get_object(Bucket=bucket, Key="huge")["Body"]
    h = hashlib.sha256()
    for block in iter(lambda: body.read(MiB), b""):
        h.update(block)
    assert h.digest() == hashlib.sha256(b"".join(parts)).digest()


def test_multipart_validation(s3: BaseClient, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="v")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="v", UploadId=uid, PartNumber=1, Body=b"small")["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="v", UploadId=uid, PartNumber=2, Body=b"tail")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="v",
            UploadId=uid,
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]
            },
        )
    assert _code(exc) == "EntityTooSmall"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="v",
            UploadId=uid,
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}]
            },
        )
    assert _code(exc) == "InvalidPart"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="v",
            UploadId=uid,
            MultipartUpload={
                "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]
            },
        )
    assert _code(exc) == "InvalidPartOrder"
    # re-uploading a part replaces it; a single (last) part may be small
    e1b = s3.upload_part(Bucket=bucket, Key="v", UploadId=uid, PartNumber=1, Body=b"again")["ETag"]
    out = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="v",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1b}]},
    )
    assert out["ETag"] == _expected_etag([b"again"])
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"again"
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="v", UploadId=uid, PartNumber=1, Body=b"late")
    assert _code(exc) == "NoSuchUpload"


def test_abort_and_upload_part_copy(s3: BaseClient, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="a")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="a", UploadId=uid, PartNumber=1, Body=b"x" * 100)
    s3.abort_multipart_upload(Bucket=bucket, Key="a", UploadId=uid)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="a", UploadId=uid)
    assert _code(exc) == "NoSuchUpload"

    src = os.urandom(6 * MiB)
    etag = s3.put_object(Bucket=bucket, Key="src", Body=src)["ETag"]
    uid = s3.create_multipart_upload(Bucket=bucket, Key="c")["UploadId"]
    p1 = s3.upload_part_copy(
        Bucket=bucket,
        Key="c",
        UploadId=uid,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=0-{5 * MiB - 1}",
        CopySourceIfMatch=etag,
    )["CopyPartResult"]
    p2 = s3.upload_part_copy(
        Bucket=bucket,
        Key="c",
        UploadId=uid,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes={5 * MiB}-{6 * MiB - 1}",
    )["CopyPartResult"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="c",
        UploadId=uid,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]
        },
    )
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == src


def test_managed_transfer(s3: BaseClient, bucket: str, tmp_path: Any) -> None:
    from boto3.s3.transfer import TransferConfig

    data = os.urandom(12 * MiB + 5)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    cfg = TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
    )
    s3.upload_file(str(src), bucket, "managed", Config=cfg)
    dst = tmp_path / "out.bin"
    s3.download_file(bucket, "managed", str(dst), Config=cfg)
    assert dst.read_bytes() == data
    s3.copy({"Bucket": bucket, "Key": "managed"}, bucket, "managed-copy", Config=cfg)
    assert s3.head_object(Bucket=bucket, Key="managed-copy")["ContentLength"] == len(data)


# -- presigned and authentication ----------------------------------------------------------
def _http(ep: S3Endpoint) -> httpx.Client:
    verify = ssl.create_default_context(cafile=ep.ca_bundle) if ep.ca_bundle else True
    return httpx.Client(verify=verify, timeout=30)


def test_presigned_get_put(s3: BaseClient, s3_server: S3Endpoint, bucket: str) -> None:
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300
    )
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300
    )
    with _http(s3_server) as http:
        assert http.put(put_url, content=b"presigned!").status_code == 200
        got = http.get(get_url)
        assert got.status_code == 200 and got.content == b"presigned!"
        v4 = _client(s3_server, signature_version="s3v4")
        url = v4.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300
        )
        v4.close()
        assert http.get(url).content == b"presigned!"


def test_presigned_put_of_unknown_length(
    s3: BaseClient, s3_server: S3Endpoint, bucket: str
) -> None:
    """HTTP chunked transfer with no Content-Length (a client streaming a body of unknown
    size to a presigned URL): stored whole, over several of the writer's smaller chunks."""
    data = os.urandom(17 * MiB + 5)
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "streamed"}, ExpiresIn=300
    )

    def body() -> Iterator[bytes]:
        for i in range(0, len(data), MiB):
            yield data[i : i + MiB]

    with _http(s3_server) as http:
        put = http.put(url, content=body())
    assert put.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in put.request.headers
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="streamed")
    assert got["ContentLength"] == len(data) and got["Body"].read() == data


def _http_status(url: str, ep: S3Endpoint, method: str = "GET", data: bytes | None = None) -> int:
    with _http(ep) as http:
        return http.request(method, url, content=data).status_code


def test_auth_failures_store_nothing(s3: BaseClient, s3_server: S3Endpoint, bucket: str) -> None:
    wrong = _client(s3_server, secret="not-the-secret")
    with pytest.raises(ClientError) as exc:
        wrong.put_object(Bucket=bucket, Key="w", Body=b"x")
    wrong.close()
    assert _status(exc) == 403 and _code(exc) == "SignatureDoesNotMatch"

    unknown = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id="NOSUCHKEY",
        aws_secret_access_key="x",
        region_name="us-east-1",
        verify=s3_server.ca_bundle or True,
        config=Config(s3={"addressing_style": "path"}),
    )
    with pytest.raises(ClientError) as exc:
        unknown.list_buckets()
    unknown.close()
    assert _status(exc) == 403 and _code(exc) == "InvalidAccessKeyId"

    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "t"}, ExpiresIn=300
    )
    tampered = url.replace("/t?", "/u?")
    assert _http_status(tampered, s3_server, "PUT", b"x") == 403

    v4 = _client(s3_server, signature_version="s3v4")
    expired = v4.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "e"}, ExpiresIn=1
    )
    v4.close()
    # rewrite X-Amz-Date into the past so the URL has expired (the signature is then wrong
    # too, but expiry is checked first); a freshly signed past URL needs a clock we do not own.
    # The credential scope's date moves with it: an hour ago may be yesterday (00:00-01:00
    # UTC), and a scope date that disagrees with X-Amz-Date is a malformed request (400)
    past = datetime.now(UTC) - timedelta(hours=1)
    import re

    expired = re.sub(r"X-Amz-Date=[0-9TZ]+", f"X-Amz-Date={past:%Y%m%dT%H%M%SZ}", expired)
    expired = re.sub(r"(X-Amz-Credential=[^&]*?%2F)[0-9]{8}%2F", rf"\g<1>{past:%Y%m%d}%2F", expired)
    assert _http_status(expired, s3_server, "PUT", b"x") == 403

    anon = f"{s3_server.endpoint_url}/{bucket}/anon"
    assert _http_status(anon, s3_server, "PUT", b"x") == 403
    assert _http_status(anon, s3_server) == 403

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == []


# -- #5: composite multipart checksums, DeleteObjects integrity, storage classes, CORS ---------
def test_multipart_composite_checksum(s3: BaseClient, bucket: str) -> None:
    rng = random.Random(5)
    parts = [rng.randbytes(5 * MiB), rng.randbytes(1000)]
    uid = s3.create_multipart_upload(Bucket=bucket, Key="cc", ChecksumAlgorithm="CRC32")["UploadId"]
    done = []
    crcs = []
    for n, data in enumerate(parts, 1):
        r = s3.upload_part(
            Bucket=bucket,
            Key="cc",
            UploadId=uid,
            PartNumber=n,
            Body=data,
            ChecksumAlgorithm="CRC32",
        )
        crc = zlib.crc32(data).to_bytes(4, "big")
        assert r["ChecksumCRC32"] == base64.b64encode(crc).decode()
        crcs.append(crc)
        done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    listed = s3.list_parts(Bucket=bucket, Key="cc", UploadId=uid)
    assert listed["ChecksumAlgorithm"] == "CRC32"
    assert [p["ChecksumCRC32"] for p in listed["Parts"]] == [d["ChecksumCRC32"] for d in done]
    out = s3.complete_multipart_upload(
        Bucket=bucket, Key="cc", UploadId=uid, MultipartUpload={"Parts": done}
    )
    composite = base64.b64encode(zlib.crc32(b"".join(crcs)).to_bytes(4, "big")).decode() + "-2"
    assert out["ChecksumCRC32"] == composite
    head = s3.head_object(Bucket=bucket, Key="cc", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == composite and head["ChecksumType"] == "COMPOSITE"
    got = s3.get_object(Bucket=bucket, Key="cc", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == composite  # botocore does not validate "-N" values
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(b"".join(parts)).digest()
    attrs = s3.get_object_attributes(
        Bucket=bucket, Key="cc", ObjectAttributes=["Checksum", "ObjectParts", "ObjectSize"]
    )
    # as S3: the COMPOSITE value without its "-N" here, and each part's own checksum
    assert attrs["Checksum"]["ChecksumCRC32"] == composite.partition("-")[0]
    assert attrs["Checksum"]["ChecksumType"] == "COMPOSITE"
    assert attrs["ObjectParts"]["TotalPartsCount"] == 2
    assert [p["ChecksumCRC32"] for p in attrs["ObjectParts"]["Parts"]] == [
        d["ChecksumCRC32"] for d in done
    ]
    assert attrs["ObjectSize"] == sum(map(len, parts))


def _strip_integrity_headers(request: Any, **_kwargs: Any) -> None:
    for name in list(request.headers.keys()):
        lower = name.lower()
        if lower == "content-md5" or lower.startswith(("x-amz-checksum-", "x-amz-sdk-checksum")):
            del request.headers[name]


def test_delete_objects_needs_md5_or_checksum(
    s3: BaseClient, s3_server: S3Endpoint, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    bare = _client(s3_server)
    bare.meta.events.register("before-sign.s3.DeleteObjects", _strip_integrity_headers)
    try:
        with pytest.raises(ClientError) as exc:
            bare.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "keep"}]})
        assert _code(exc) == "InvalidRequest" and _status(exc) == 400
    finally:
        bare.close()
    assert s3.head_object(Bucket=bucket, Key="keep")["ContentLength"] == 1
    # boto3 itself always sends a checksum (also with when_required): it still works
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "keep"}]})
    assert [d["Key"] for d in out["Deleted"]] == ["keep"]


def test_online_storage_classes(s3: BaseClient, bucket: str) -> None:
    for sc in ("STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"):
        s3.put_object(Bucket=bucket, Key=sc, Body=b"x", StorageClass=sc)
        assert s3.head_object(Bucket=bucket, Key=sc)["StorageClass"] == sc
        assert s3.get_object(Bucket=bucket, Key=sc)["Body"].read() == b"x"
    listed = {o["Key"]: o["StorageClass"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == {sc: sc for sc in listed}
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="g", Body=b"x", StorageClass="GLACIER")
    assert _code(exc) == "InvalidStorageClass"


def test_cors_headers_on_errors(s3: BaseClient, s3_server: S3Endpoint, bucket: str) -> None:
    rules = [{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://a.example"]}]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "missing"})
    with _http(s3_server) as http:
        missing = http.get(url, headers={"Origin": "https://a.example"})
        assert missing.status_code == 404
        assert missing.headers["Access-Control-Allow-Origin"] == "https://a.example"
        other = http.get(url, headers={"Origin": "https://evil.example"})
        assert other.status_code == 404 and "Access-Control-Allow-Origin" not in other.headers


# -- #5: FULL_OBJECT multipart checksums, the Complete checksum check, part checksums ----------
def _crc(algorithm: str, data: bytes) -> str:
    """Independent oracle: zlib and awscrt (botocore's own CRT checksums)."""
    from awscrt import checksums as crt  # type: ignore[import-untyped]

    if algorithm == "CRC32":
        return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    if algorithm == "CRC32C":
        return base64.b64encode(crt.crc32c(data).to_bytes(4, "big")).decode()
    return base64.b64encode(crt.crc64nvme(data).to_bytes(8, "big")).decode()


def _upload_parts(
    s3: BaseClient, bucket: str, key: str, uid: str, parts: list[bytes], algorithm: str
) -> list[dict[str, Any]]:
    done = []
    for n, data in enumerate(parts, 1):
        r = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=uid,
            PartNumber=n,
            Body=data,
            ChecksumAlgorithm=algorithm,
        )
        assert r[f"Checksum{algorithm}"] == _crc(algorithm, data)
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    return done


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
def test_multipart_full_object_checksum(s3: BaseClient, bucket: str, algorithm: str) -> None:
    rng = random.Random(algorithm)
    parts = [rng.randbytes(5 * MiB), rng.randbytes(5 * MiB + 3), rng.randbytes(777)]
    whole = b"".join(parts)
    key = f"fo-{algorithm}"
    up = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, ChecksumType="FULL_OBJECT"
    )
    assert up["ChecksumType"] == "FULL_OBJECT"
    done = _upload_parts(s3, bucket, key, up["UploadId"], parts, algorithm)
    assert s3.list_parts(Bucket=bucket, Key=key, UploadId=up["UploadId"])["ChecksumType"] == (
        "FULL_OBJECT"
    )
    expected = _crc(algorithm, whole)
    out = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": done},
        ChecksumType="FULL_OBJECT",
        **{f"Checksum{algorithm}": expected},  # checked by the gateway
    )
    assert out[f"Checksum{algorithm}"] == expected and out["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected and head["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    # no "-N": botocore validates the whole body against it while reading
    assert got[f"Checksum{algorithm}"] == expected
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(whole).digest()
    part = s3.get_object(Bucket=bucket, Key=key, PartNumber=3, ChecksumMode="ENABLED")
    assert part[f"Checksum{algorithm}"] == _crc(algorithm, parts[2])
    assert part["Body"].read() == parts[2] and part["PartsCount"] == 3
    attrs = s3.get_object_attributes(
        Bucket=bucket, Key=key, ObjectAttributes=["Checksum", "ObjectParts", "ETag"]
    )
    assert attrs["Checksum"][f"Checksum{algorithm}"] == expected
    assert attrs["Checksum"]["ChecksumType"] == "FULL_OBJECT"
    assert [p[f"Checksum{algorithm}"] for p in attrs["ObjectParts"]["Parts"]] == [
        _crc(algorithm, p) for p in parts
    ]


def test_complete_multipart_checksum_mismatch_commits_nothing(s3: BaseClient, bucket: str) -> None:
    parts = [b"a" * (5 * MiB), b"tail"]
    up = s3.create_multipart_upload(
        Bucket=bucket, Key="mm", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )
    uid = up["UploadId"]
    done = _upload_parts(s3, bucket, "mm", uid, parts, "CRC32")
    # a wrong whole-object value, then a checksum type other than the upload's
    for wrong in (
        {"ChecksumCRC32": _crc("CRC32", b"something else")},
        {"ChecksumType": "COMPOSITE"},
    ):
        with pytest.raises(ClientError) as exc:
            s3.complete_multipart_upload(
                Bucket=bucket, Key="mm", UploadId=uid, MultipartUpload={"Parts": done}, **wrong
            )
        assert _status(exc) == 400 and _code(exc) == "BadDigest", wrong
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="mm")
    assert _status(exc) == 404
    assert len(s3.list_parts(Bucket=bucket, Key="mm", UploadId=uid)["Parts"]) == 2
    out = s3.complete_multipart_upload(
        Bucket=bucket, Key="mm", UploadId=uid, MultipartUpload={"Parts": done}
    )
    assert out["ChecksumCRC32"] == _crc("CRC32", b"".join(parts))


def test_full_object_refused_for_sha(s3: BaseClient, bucket: str) -> None:
    for algorithm in ("SHA1", "SHA256"):
        with pytest.raises(ClientError) as exc:
            s3.create_multipart_upload(
                Bucket=bucket, Key="sha", ChecksumAlgorithm=algorithm, ChecksumType="FULL_OBJECT"
            )
        assert _status(exc) == 400 and _code(exc) == "InvalidRequest"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_post_object_form_upload_is_not_implemented(s3_server: S3Endpoint, bucket: str) -> None:
    files = {"file": ("f.txt", b"form data")}
    with _http(s3_server) as http:
        resp = http.post(f"{s3_server.endpoint_url}/{bucket}", data={"key": "f"}, files=files)
    assert resp.status_code == 501, resp.text
    assert b"<Code>NotImplemented</Code>" in resp.content
