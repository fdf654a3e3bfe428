"""The MinIO Python SDK (PyPI ``minio``) against a real ``blobstore server``, http and https.

minio-py asks GetBucketLocation before its first request to a bucket, lists with
ListObjectsV2 (``encoding-type=url``), uploads above ``part_size`` as multipart (parallel
parts, CompleteMultipartUpload with Content-MD5; with ``length=-1`` it streams parts of
``part_size`` without knowing the length), downloads with ranged GETs and deletes in bulk
with DeleteObjects + Content-MD5. The test: make_bucket / bucket_exists, put_object of a
small and a multipart object (known and unknown length), stat_object (size, ETag, user
metadata), get_object (whole, offset/length), fget_object, list_objects (prefix,
recursive, awkward names), copy_object, a presigned GET fetched with plain httpx,
remove_object, remove_objects and remove_bucket. Bytes are checked by SHA-256, also
through an independent boto3 client.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import ssl
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import S3Endpoint, bucket_digest, sha256_file

minio = pytest.importorskip("minio", reason="the minio SDK is not installed (PyPI minio)")
urllib3 = pytest.importorskip("urllib3")

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


@pytest.fixture(params=["http", "https"])
def client_endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    name = "s3_endpoint" if request.param == "http" else "s3_endpoint_https"
    endpoint: S3Endpoint = request.getfixturevalue(name)
    return endpoint


@pytest.fixture
def mc(client_endpoint: S3Endpoint) -> Iterator[Any]:
    url = urlsplit(client_endpoint.endpoint_url)
    pool = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=120),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[503]),
        **(
            {"cert_reqs": "CERT_REQUIRED", "ca_certs": client_endpoint.ca_bundle}
            if client_endpoint.ca_bundle
            else {}
        ),
    )
    yield minio.Minio(
        url.netloc,
        access_key=client_endpoint.access_key,
        secret_key=client_endpoint.secret_key,
        secure=url.scheme == "https",
        region="us-east-1",
        http_client=pool,
    )
    pool.clear()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_objects_multipart_presign_and_removal(
    mc: Any, fresh_bucket: str, verifier: Any, client_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    rng = random.Random(17)
    assert not mc.bucket_exists(fresh_bucket)
    mc.make_bucket(fresh_bucket)
    assert mc.bucket_exists(fresh_bucket)

    small = rng.randbytes(70_000)
    big = rng.randbytes(17 * MiB + 5)
    streamed = rng.randbytes(11 * MiB + 1)
    want: dict[str, str] = {}

    # single PUT with user metadata
    res = mc.put_object(
        fresh_bucket,
        "docs/small.bin",
        io.BytesIO(small),
        len(small),
        content_type="application/x-test",
        metadata={"x-amz-meta-origin": "minio-py"},
    )
    assert res.etag == hashlib.md5(small).hexdigest()  # the S3 ETag of a single PUT
    want["docs/small.bin"] = _sha(small)

    # multipart, known length: 5 MiB parts uploaded in parallel
    res = mc.put_object(fresh_bucket, "big/known.bin", io.BytesIO(big), len(big), part_size=5 * MiB)
    known_etag = res.etag
    assert re.fullmatch(r"[0-9a-f]{32}-4", known_etag), known_etag
    want["big/known.bin"] = _sha(big)

    # multipart, unknown length (length=-1): streamed parts of part_size
    res = mc.put_object(
        fresh_bucket, "big/streamed.bin", io.BytesIO(streamed), -1, part_size=5 * MiB
    )
    assert re.fullmatch(r"[0-9a-f]{32}-3", res.etag), res.etag
    want["big/streamed.bin"] = _sha(streamed)

    for i, name in enumerate(["odd/with space.txt", "odd/plus+sign.txt", "odd/ünï ß.txt"]):
        data = f"odd {i}\n".encode()
        mc.put_object(fresh_bucket, name, io.BytesIO(data), len(data))
        want[name] = _sha(data)

    # what minio-py stored, read back independently
    assert bucket_digest(verifier, fresh_bucket) == want

    st = mc.stat_object(fresh_bucket, "docs/small.bin")
    assert st.size == len(small) and st.content_type == "application/x-test"
    assert st.metadata.get("x-amz-meta-origin") == "minio-py"
    st = mc.stat_object(fresh_bucket, "big/known.bin")
    assert st.size == len(big) and st.etag == known_etag

    # downloads: whole, a range, and to a file
    resp = mc.get_object(fresh_bucket, "big/streamed.bin")
    try:
        assert _sha(resp.read()) == want["big/streamed.bin"]
    finally:
        resp.close()
        resp.release_conn()
    resp = mc.get_object(fresh_bucket, "big/known.bin", offset=5 * MiB - 3, length=1000)
    try:
        assert resp.read() == big[5 * MiB - 3 : 5 * MiB + 997]
    finally:
        resp.close()
        resp.release_conn()
    out = tmp_path / "known.bin"
    mc.fget_object(fresh_bucket, "big/known.bin", str(out))
    assert sha256_file(out) == want["big/known.bin"]

    # listing: delimiter view, recursive view with awkward names
    top = sorted(o.object_name for o in mc.list_objects(fresh_bucket))
    assert top == ["big/", "docs/", "odd/"]
    every = {o.object_name: o.size for o in mc.list_objects(fresh_bucket, recursive=True)}
    assert set(every) == set(want) and every["big/known.bin"] == len(big)
    assert [o.object_name for o in mc.list_objects(fresh_bucket, prefix="odd/p")] == [
        "odd/plus+sign.txt"
    ]

    # server-side copy
    mc.copy_object(
        fresh_bucket,
        "copy/small.bin",
        minio.commonconfig.CopySource(fresh_bucket, "docs/small.bin"),
    )
    assert bucket_digest(verifier, fresh_bucket, "copy/") == {"small.bin": want["docs/small.bin"]}

    # a presigned GET works for anyone holding the URL, for the object it names only
    url = mc.presigned_get_object(fresh_bucket, "odd/with space.txt", expires=timedelta(minutes=5))
    ca = client_endpoint.ca_bundle
    with httpx.Client(verify=ssl.create_default_context(cafile=ca) if ca else True) as http:
        got = http.get(url)
        assert got.status_code == 200 and got.content == b"odd 0\n"
        tampered = http.get(url.replace("with%20space", "plus%2Bsign"))
        assert tampered.status_code == 403

    # removal: one object, then the rest in bulk (DeleteObjects + Content-MD5)
    mc.remove_object(fresh_bucket, "copy/small.bin")
    with pytest.raises(minio.error.S3Error) as info:
        mc.stat_object(fresh_bucket, "copy/small.bin")
    assert info.value.code == "NoSuchKey"  # minio-py maps the body-less 404 of a HEAD
    names = [o.object_name for o in mc.list_objects(fresh_bucket, recursive=True)]
    errors = list(
        mc.remove_objects(fresh_bucket, [minio.deleteobjects.DeleteObject(n) for n in names])
    )
    assert errors == []
    assert list(mc.list_objects(fresh_bucket, recursive=True)) == []
    mc.remove_bucket(fresh_bucket)
    assert not mc.bucket_exists(fresh_bucket)
