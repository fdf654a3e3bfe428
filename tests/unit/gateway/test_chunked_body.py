"""VerifiedBody: every payload mode decoded and verified, with header checksums."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from blobstore.errors import BadDigest
from gateway import sigv4
from gateway.checksums import ChecksumAlgorithm
from gateway.chunked import ChunkSigningContext, VerifiedBody, encode_aws_chunked
from gateway.sigv4 import PayloadMode, RequestParts

AK, SK = "AKIDBODY", "body-secret"
SECRETS = {AK: SK}.get
NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
MD5 = ChecksumAlgorithm.MD5


async def _pieces(body: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


async def _read(body: VerifiedBody) -> bytes:
    return b"".join([p async for p in body])


def _put(payload_hash: str, extra: list[tuple[str, str]] | None = None) -> tuple[Any, Any]:
    headers = sigv4.sign_request(
        "PUT",
        "/bkt/obj",
        "",
        [("host", "gw:9000"), *(extra or [])],
        access_key=AK,
        secret=SK,
        region="us-east-1",
        now=NOW,
        payload_hash=payload_hash,
    )
    req = RequestParts.build("PUT", "/bkt/obj", "", headers)
    return sigv4.verify(req, SECRETS, NOW), req


def _b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


async def test_sha256_payload_ok_and_etag_md5() -> None:
    data = b"0123456789" * 1000
    auth, req = _put(hashlib.sha256(data).hexdigest())
    body = VerifiedBody(_pieces(data), auth, req, offload_threshold_bytes=4096)
    assert await _read(body) == data
    assert body.size_bytes == len(data)
    assert {c.algorithm: c.digest for c in body.checksums}[MD5] == hashlib.md5(data).digest()


async def test_sha256_payload_mismatch_raises_at_end() -> None:
    data = b"x" * 5000
    auth, req = _put(hashlib.sha256(b"y" * 5000).hexdigest())
    got: list[bytes] = []
    with pytest.raises(sigv4.XAmzContentSHA256Mismatch):
        async for piece in VerifiedBody(_pieces(data), auth, req):
            got.append(piece)
    assert b"".join(got) == data


@pytest.mark.parametrize("good", [True, False])
async def test_unsigned_payload_with_content_md5(good: bool) -> None:
    data = b"rclone style upload"
    md5 = _b64md5(data if good else data + b"!")
    auth, req = _put(sigv4.UNSIGNED_PAYLOAD, [("Content-MD5", md5)])
    body = VerifiedBody(_pieces(data, 4), auth, req)
    if good:
        assert await _read(body) == data
    else:
        with pytest.raises(BadDigest):
            await _read(body)


async def test_streaming_signed_with_header_checksum() -> None:
    data = bytes(range(256)) * 300
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    auth, req = _put(
        sigv4.STREAMING_SIGNED,
        [("x-amz-checksum-crc32", crc), ("x-amz-decoded-content-length", str(len(data)))],
    )
    parts = [data[i : i + 8192] for i in range(0, len(data), 8192)]
    framed = b"".join(encode_aws_chunked(parts, signing=ChunkSigningContext.from_auth(auth)))
    body = VerifiedBody(_pieces(framed, 3000), auth, req, compute=())
    assert await _read(body) == data
    assert body.decoder is not None and body.decoder.decoded_size_bytes == len(data)
    assert [c.algorithm for c in body.checksums] == [ChecksumAlgorithm.CRC32]


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _capture(endpoint: str, call: Callable[[Any], object]) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )

    def hook(request: Any, **_: Any) -> None:
        raise _Captured(request)

    client.meta.events.register("before-send.s3.*", hook)
    with pytest.raises(_Captured) as info:
        call(client)
    return info.value.request


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9", "https://127.0.0.1:9"])
@pytest.mark.parametrize("algorithm", [None, "CRC32", "SHA256", "SHA1", "CRC32C", "CRC64NVME"])
async def test_real_boto3_put_object(endpoint: str, algorithm: str | None) -> None:
    if algorithm in ("CRC32C", "CRC64NVME") and importlib.util.find_spec("awscrt") is None:
        pytest.skip("botocore computes CRC32C/CRC64NVME only with awscrt installed")
    data = b"payload from boto3 " * 5000
    kwargs: dict[str, Any] = {"Bucket": "bkt", "Key": "k", "Body": data}
    if algorithm:
        kwargs["ChecksumAlgorithm"] = algorithm
    prepared = _capture(endpoint, lambda c: c.put_object(**kwargs))
    url = urlsplit(prepared.url)
    headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in prepared.headers.items()]
    if not any(k.lower() == "host" for k, _ in headers):  # the HTTP client adds it
        headers.append(("host", url.netloc))
    req = RequestParts.build("PUT", url.path, url.query, headers)
    amz = req.header("x-amz-date")
    assert amz is not None
    now = datetime.strptime(amz, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    auth = sigv4.verify(req, SECRETS, now)
    raw = prepared.body if isinstance(prepared.body, bytes) else prepared.body.read()
    expect_chunked = endpoint.startswith("https")
    assert (auth.payload_mode is PayloadMode.STREAMING_UNSIGNED_TRAILER) == expect_chunked
    body = VerifiedBody(_pieces(raw, 4096), auth, req)
    assert await _read(body) == data
    algs = {c.algorithm for c in body.checksums}
    assert MD5 in algs
    assert ChecksumAlgorithm.from_name(algorithm or "CRC32") in algs
