"""Cross-check: requests signed by real botocore (boto3 clients) verify with our verifier.

The client is pointed at an unreachable endpoint and a ``before-send`` hook captures the
fully signed request before any I/O, so these tests need no server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import HmacV1Auth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from blobstore.errors import AccessDenied
from gateway import sigv4
from gateway.chunked import AwsChunkedDecoder
from gateway.sigv4 import PayloadMode, RequestParts

AK = "AKIDBLOBSTORETEST"
SK = "s3cr3t/with+chars=="
SECRETS = {AK: SK}.get

HOSTILE_KEYS = [
    "plain.txt",
    "with space.txt",
    "plus+sign",
    "percent%20literal",
    "percent%zz",
    "unicodé/ключ/键",
    "double//slash",
    "dot/../dotdot/./x",
    "../escape",
    "tilde~star*eq=amp&q?hash#",
    "!'()*;:@,$[]{}|^`\\\"<>",
    "trailing/",
    " leading-space",
    "emoji-😀",
]


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _raise_captured(request: Any, **_: Any) -> None:
    raise _Captured(request)


def _client(endpoint: str, region: str = "us-east-1") -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        region_name=region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    client.meta.events.register("before-send.s3.*", _raise_captured)
    return client


def _capture(call: Callable[[], object]) -> Any:
    with pytest.raises(_Captured) as info:
        call()
    return info.value.request


def _as_text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _parts(prepared: Any) -> tuple[RequestParts, datetime]:
    """What our HTTP layer would see: raw path, raw query, headers incl. Host."""
    url = urlsplit(prepared.url)
    headers = [(k, _as_text(v)) for k, v in prepared.headers.items()]
    if not any(k.lower() == "host" for k, _ in headers):  # the HTTP client adds it
        headers.append(("host", url.netloc))
    req = RequestParts.build(prepared.method, url.path, url.query, headers)
    amz = req.header("x-amz-date")
    if amz is None:  # presigned
        amz = dict(p.split("=", 1) for p in url.query.split("&"))["X-Amz-Date"]
    now = datetime.strptime(amz, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return req, now


def _body_bytes(prepared: Any) -> bytes:
    body = prepared.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    data: bytes = body.read()
    return data


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_put_object_sha256_signed_over_http(key: str) -> None:
    client = _client("http://127.0.0.1:9", region="eu-west-3")
    prepared = _capture(lambda: client.put_object(Bucket="bkt", Key=key, Body=b"hello"))
    req, now = _parts(prepared)
    ctx = sigv4.verify(req, SECRETS, now)
    assert ctx.region == "eu-west-3"
    assert ctx.payload_mode is PayloadMode.SHA256
    verifier = ctx.payload_verifier()
    assert verifier is not None
    verifier.update(_body_bytes(prepared))
    verifier.finish()


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_get_and_delete_object(key: str) -> None:
    client = _client("http://127.0.0.1:9")
    for call in (
        lambda: client.get_object(Bucket="bkt", Key=key, Range="bytes=0-9"),
        lambda: client.delete_object(Bucket="bkt", Key=key),
        lambda: client.head_object(Bucket="bkt", Key=key, VersionId="null"),
    ):
        req, now = _parts(_capture(call))
        ctx = sigv4.verify(req, SECRETS, now)
        assert ctx.payload_sha256 == sigv4.EMPTY_SHA256


@pytest.mark.parametrize("prefix", ["", "a b", "x+y", "eq=val", "%41", "ü/", "~*'"])
def test_list_objects_query_values(prefix: str) -> None:
    client = _client("http://127.0.0.1:9")
    prepared = _capture(
        lambda: client.list_objects_v2(Bucket="bkt", Prefix=prefix, Delimiter="/", StartAfter="")
    )
    req, now = _parts(prepared)
    sigv4.verify(req, SECRETS, now)


@pytest.mark.parametrize("key", HOSTILE_KEYS)
async def test_put_object_aws_chunked_unsigned_trailer_over_https(key: str) -> None:
    client = _client("https://127.0.0.1:9")
    payload = bytes(range(256)) * 40
    prepared = _capture(lambda: client.put_object(Bucket="bkt", Key=key, Body=payload))
    req, now = _parts(prepared)
    ctx = sigv4.verify(req, SECRETS, now)
    assert ctx.payload_mode is PayloadMode.STREAMING_UNSIGNED_TRAILER
    body = _body_bytes(prepared)

    async def source() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 333):
            yield body[i : i + 333]
            await asyncio.sleep(0)

    decoder = AwsChunkedDecoder.for_request(source(), ctx, req)
    out = b"".join([piece async for piece in decoder])
    assert out == payload
    assert [c.algorithm.value for c in decoder.checksums] == ["crc32"]


def _presign_client(flavour: str) -> Any:
    if flavour == "v2-default-us-east-1":  # boto3's default for us-east-1 is still SigV2
        return _client("http://127.0.0.1:9", region="us-east-1")
    if flavour == "v4-regional":
        return _client("http://127.0.0.1:9", region="eu-west-3")
    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    return client


@pytest.mark.parametrize("flavour", ["v2-default-us-east-1", "v4-regional", "v4-explicit"])
@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_presigned_get_and_put(key: str, flavour: str) -> None:
    client = _presign_client(flavour)
    for method, op, extra in (
        ("GET", "get_object", {}),
        ("PUT", "put_object", {}),
        ("GET", "get_object", {"ResponseContentDisposition": "attachment; filename=x y"}),
    ):
        params = {"Bucket": "bkt", "Key": key, **extra}
        url = client.generate_presigned_url(op, Params=params, ExpiresIn=300)
        parts = urlsplit(url)
        query = dict(p.split("=", 1) for p in parts.query.split("&"))
        req = RequestParts.build(method, parts.path, parts.query, [("Host", parts.netloc)])
        if "X-Amz-Date" in query:
            start = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            ok, late, version = start + timedelta(seconds=299), start + timedelta(seconds=301), 4
        else:
            expires = datetime.fromtimestamp(int(query["Expires"]), UTC)
            ok, late, version = expires - timedelta(seconds=1), expires + timedelta(seconds=1), 2
        ctx = sigv4.verify(req, SECRETS, ok)
        assert ctx.is_presigned
        assert ctx.signature_version == version
        assert ctx.payload_mode is PayloadMode.UNSIGNED
        with pytest.raises(AccessDenied, match="Request has expired"):
            sigv4.verify(req, SECRETS, late)
        wrong = RequestParts.build("DELETE", parts.path, parts.query, [("Host", parts.netloc)])
        with pytest.raises(sigv4.SignatureDoesNotMatch):
            sigv4.verify(wrong, SECRETS, ok)


# Raw query strings that botocore signs verbatim (sorted, not re-encoded); our verifier
# re-encodes first and falls back to the raw form, so both spellings must pass.
RAW_QUERIES = [
    "acl",
    "uploads=",
    "a=1&a=0&b=&c",
    "d=x%3Dy&e=%7E~",
    "k=%2f%2F",
    "versionId=null&partNumber=3",
    "x=a%20b&y=a+b",
    "empty=&&&also=",
    "%C3%BC=%E2%82%AC",
]


@pytest.mark.parametrize("query", RAW_QUERIES)
@pytest.mark.parametrize("presigned", [False, True], ids=["header", "presigned"])
def test_low_level_signers_with_raw_queries(query: str, presigned: bool) -> None:
    url = f"http://h.example:8080/bkt/some%20key?{query}"
    request = AWSRequest(method="GET", url=url)
    creds = Credentials(AK, SK)
    signer: S3SigV4Auth = (
        S3SigV4QueryAuth(creds, "s3", "ap-south-2", expires=60)
        if presigned
        else S3SigV4Auth(creds, "s3", "ap-south-2")
    )
    signer.add_auth(request)
    prepared = request.prepare()
    req, now = _parts(prepared)
    ctx = sigv4.verify(req, SECRETS, now)
    assert ctx.region == "ap-south-2"
    assert ctx.is_presigned is presigned


def test_tampered_botocore_request_fails() -> None:
    client = _client("http://127.0.0.1:9")
    prepared = _capture(lambda: client.get_object(Bucket="bkt", Key="k"))
    req, now = _parts(prepared)
    sigv4.verify(req, SECRETS, now)
    tampered = RequestParts(req.method, "/bkt/K", req.query_string, req.headers)
    with pytest.raises(sigv4.SignatureDoesNotMatch):
        sigv4.verify(tampered, SECRETS, now)


@pytest.mark.parametrize("query", ["", "acl", "uploads", "versionId=3&foo=bar", "uploadId=x%2By"])
def test_sigv2_header_auth_from_botocore(query: str) -> None:
    url = "http://h.example/bkt/some%20key%2B" + (f"?{query}" if query else "")
    request = AWSRequest(method="PUT", url=url)
    request.headers["Content-Type"] = "text/plain"
    request.headers["x-amz-meta-a"] = "  1 "
    HmacV1Auth(Credentials(AK, SK)).add_auth(request)
    prepared = request.prepare()
    url_parts = urlsplit(prepared.url)
    headers = [("host", url_parts.netloc)]
    headers += [(k, _as_text(v)) for k, v in prepared.headers.items()]
    req = RequestParts.build("PUT", url_parts.path, url_parts.query, headers)
    date_header = req.header("date")
    assert date_header is not None
    now = parsedate_to_datetime(date_header)
    ctx = sigv4.verify(req, SECRETS, now)
    assert ctx.signature_version == 2
    assert not ctx.is_presigned
    with pytest.raises(sigv4.RequestTimeTooSkewed):
        sigv4.verify(req, SECRETS, now + timedelta(minutes=16))
    changed = RequestParts.build(
        "PUT", url_parts.path, url_parts.query, [*headers, ("x-amz-meta-b", "2")]
    )
    with pytest.raises(sigv4.SignatureDoesNotMatch):
        sigv4.verify(changed, SECRETS, now)


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_our_presign_url_equals_botocore(key: str) -> None:
    client = _presign_client("v4-regional")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": "bkt", "Key": key}, ExpiresIn=900
    )
    parts = urlsplit(url)
    amz = dict(p.split("=", 1) for p in parts.query.split("&"))["X-Amz-Date"]
    now = datetime.strptime(amz, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sigv4.presign_url(
        "GET",
        "/bkt/" + sigv4.uri_encode(key, keep_slash=True),
        "",
        parts.netloc,
        access_key=AK,
        secret=SK,
        region="eu-west-3",
        now=now,
        expires_s=900,
    )
    assert parts.path == "/bkt/" + sigv4.uri_encode(key, keep_slash=True)
    # same parameters and signature (the CRT presigner, used when awscrt is installed,
    # orders the parameters differently)
    assert sorted(ours.split("&")) == sorted(parts.query.split("&"))


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_our_sign_request_equals_botocore(key: str) -> None:
    path = "/bkt/" + sigv4.uri_encode(key, keep_slash=True)
    query = "tagging=&versionId=a%2Bb"
    request = AWSRequest(method="PUT", url=f"http://h.example:8080{path}?{query}", data=b"body")
    request.headers["Content-Type"] = "text/plain"
    request.headers["x-amz-meta-x"] = " a   b "
    S3SigV4Auth(Credentials(AK, SK), "s3", "us-west-2").add_auth(request)
    amz = request.headers["X-Amz-Date"]
    now = datetime.strptime(amz, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sigv4.sign_request(
        "PUT",
        path,
        query,
        [("host", "h.example:8080"), ("Content-Type", "text/plain"), ("x-amz-meta-x", " a   b ")],
        access_key=AK,
        secret=SK,
        region="us-west-2",
        now=now,
        payload_hash=request.headers["X-Amz-Content-SHA256"],
    )
    assert dict(ours)["Authorization"] == request.headers["Authorization"]


def test_sigv2_virtual_hosted_needs_the_bucket() -> None:
    request = AWSRequest(method="GET", url="http://bkt.s3.example/some%20key?acl")
    request.auth_path = "/bkt/some%20key"
    HmacV1Auth(Credentials(AK, SK)).add_auth(request)
    prepared = request.prepare()
    url_parts = urlsplit(prepared.url)
    headers = [("host", url_parts.netloc)]
    headers += [(k, _as_text(v)) for k, v in prepared.headers.items()]
    req = RequestParts.build("GET", url_parts.path, url_parts.query, headers)
    date_header = req.header("date")
    assert date_header is not None
    now = parsedate_to_datetime(date_header)
    assert sigv4.verify(req, SECRETS, now, virtual_host_bucket="bkt").signature_version == 2
    with pytest.raises(sigv4.SignatureDoesNotMatch):
        sigv4.verify(req, SECRETS, now)
