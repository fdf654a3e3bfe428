"""The gateway app end to end in-process: auth, ownership, objects, errors, limits, 503s."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from blobstore.client.catalog import LocalCatalog
from blobstore.errors import BlobstoreError, DeadlineExceeded, PreconditionFailed, Unavailable
from gateway.app import create_app, ensure_root_user
from gateway.auth import Authenticator, access_key_of
from gateway.checksums import ChecksumAlgorithm
from gateway.chunked import ChunkSigningContext, encode_aws_chunked
from gateway.sigv4 import (
    STREAMING_SIGNED,
    STREAMING_UNSIGNED_TRAILER,
    CredentialScope,
    InvalidAccessKeyId,
    RequestParts,
    SignatureDoesNotMatch,
    derive_signing_key,
    format_amz_date,
    sign_request,
)
from gateway.storage import MemoryObjectStore
from metadata.api import GetAccessKeyQuery, Query, ReadMode
from metadata.fsm.commands import Command, PutAccessKey, PutUser
from tests.unit.gateway.test_app_support import (
    ADMIN,
    ALICE,
    BOB,
    HOST,
    UNSIGNED_PAYLOAD,
    Gateway,
    make_gateway,
)

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    g = await make_gateway()
    yield g
    await g.client.aclose()


def _code(resp: httpx.Response) -> str:
    return ET.fromstring(resp.content).findtext("Code") or ""


async def _bucket(gw: Gateway, name: str = "bkt") -> None:
    resp = await gw.request("PUT", f"/{name}")
    assert resp.status_code == 200, resp.text


# -- request ids, errors, auth ---------------------------------------------------------------
async def test_every_response_has_request_ids(gw: Gateway) -> None:
    ok = await gw.request("GET", "/")
    assert ok.status_code == 200
    assert len(ok.headers["x-amz-request-id"]) == 16 and ok.headers["x-amz-id-2"]
    bad = await gw.request("GET", "/nosuchbucket/key")
    assert bad.status_code == 404 and _code(bad) == "NoSuchBucket"
    rid = bad.headers["x-amz-request-id"]
    assert rid != ok.headers["x-amz-request-id"]
    assert ET.fromstring(bad.content).findtext("RequestId") == rid
    head = await gw.request("HEAD", "/nosuchbucket/key")
    assert head.status_code == 404 and head.content == b"" and head.headers["x-amz-request-id"]


async def test_anonymous_and_bad_credentials_are_refused(gw: Gateway) -> None:
    await _bucket(gw)
    anon = await gw.unsigned("PUT", f"http://{HOST}/bkt/k", b"data")
    assert anon.status_code == 403 and _code(anon) == "AccessDenied"
    wrong = await gw.request("PUT", "/bkt/k", body=b"data", secret="nope")
    assert wrong.status_code == 403 and _code(wrong) == "SignatureDoesNotMatch"
    unknown = await gw.request("GET", "/", key=ALICE.__class__("x", "NOKEY", "s"))
    assert unknown.status_code == 403 and _code(unknown) == "InvalidAccessKeyId"
    assert (await gw.get("bkt", "k")).status_code == 404
    assert gw.store.chunks == {}


async def test_presigned_urls(gw: Gateway) -> None:
    await _bucket(gw)
    put = await gw.unsigned("PUT", gw.presign("PUT", "/bkt/p"), b"via presign")
    assert put.status_code == 200
    got = await gw.unsigned("GET", gw.presign("GET", "/bkt/p"))
    assert got.content == b"via presign"
    tampered = gw.presign("GET", "/bkt/p").replace("/bkt/p?", "/bkt/q?")
    assert (await gw.unsigned("GET", tampered)).status_code == 403


async def test_ownership(gw: Gateway) -> None:
    await _bucket(gw, "alices")
    assert (await gw.put("alices", "k", b"1")).status_code == 200
    bob = gw.as_user(BOB)
    denied = await bob.get("alices", "k")
    assert denied.status_code == 403 and _code(denied) == "AccessDenied"
    assert (await bob.put("alices", "k2", b"2")).status_code == 403
    taken = await bob.request("PUT", "/alices")
    assert taken.status_code == 409 and _code(taken) == "BucketAlreadyExists"
    mine = await gw.request("PUT", "/alices")
    assert mine.status_code == 409 and _code(mine) == "BucketAlreadyOwnedByYou"
    listed = await bob.request("GET", "/")
    assert b"alices" not in listed.content
    admin = gw.as_user(ADMIN)
    assert (await admin.get("alices", "k")).content == b"1"
    assert b"alices" in (await admin.request("GET", "/")).content


async def test_unsupported_operation_is_501(gw: Gateway) -> None:
    await _bucket(gw)
    resp = await gw.request("GET", "/bkt", "website")
    assert resp.status_code == 404  # unconfigured sub-resource, as the router says
    resp = await gw.request("PUT", "/bkt/k", "torrent")
    assert resp.status_code == 501 and _code(resp) == "NotImplemented"


# -- objects --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 10, 4096, 4097, 200_000])
async def test_put_get_head_inline_and_chunked(gw: Gateway, size: int) -> None:
    await _bucket(gw)
    data = bytes(i % 251 for i in range(size))
    put = await gw.put("bkt", "a/b c+d", data, **{"x-amz-meta-Color": "Blue"})
    assert put.status_code == 200
    assert put.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = await gw.get("bkt", "a/b c+d")
    assert got.status_code == 200 and got.content == data
    assert got.headers["etag"] == put.headers["etag"]
    assert got.headers["x-amz-meta-color"] == "Blue"
    assert got.headers["content-length"] == str(size)
    assert (size > 4096) == bool(gw.store.chunks)
    head = await gw.request("HEAD", "/bkt/a/b%20c%2Bd")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)


@pytest.mark.parametrize("size", [10, 200_000])
async def test_a_body_with_content_md5_is_hashed_once(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    # the verifier hashes a body that announced Content-MD5; the store is told not to, and
    # the ETag still is the body's MD5 (for an object and for a multipart part)
    await _bucket(gw)
    asked: list[bool] = []
    write = gw.store.write

    async def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("md5", True))
        return await write(*args, **kwargs)

    monkeypatch.setattr(gw.store, "write", spy)
    data = bytes(i % 251 for i in range(size))
    digest = hashlib.md5(data).digest()
    etag = f'"{digest.hex()}"'
    put = await gw.put("bkt", "k", data, **{"content-md5": base64.b64encode(digest).decode()})
    assert put.status_code == 200 and put.headers["etag"] == etag
    assert (await gw.get("bkt", "k")).headers["etag"] == etag
    plain = await gw.put("bkt", "k2", data)  # no Content-MD5: the store hashes it
    assert plain.headers["etag"] == etag
    upload = await gw.request("POST", "/bkt/mp", "uploads")
    upload_id = upload.text.split("<UploadId>")[1].split("</UploadId>")[0]
    part = await gw.request(
        "PUT",
        "/bkt/mp",
        f"partNumber=1&uploadId={upload_id}",
        body=data,
        headers={"content-md5": base64.b64encode(digest).decode()},
    )
    assert part.status_code == 200 and part.headers["etag"] == etag
    assert asked == [False, True, False]


async def test_ranged_reads_across_chunks(gw: Gateway) -> None:
    await _bucket(gw)
    data = bytes(range(256)) * 1024  # 256 KiB over 64 KiB memory chunks
    await gw.put("bkt", "r", data)
    for first, last in [(0, 0), (65530, 65545), (100_000, 262_143), (5, 200_000)]:
        resp = await gw.get("bkt", "r", range=f"bytes={first}-{last}")
        assert resp.status_code == 206
        assert resp.content == data[first : last + 1]
        assert resp.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
    resp = await gw.get("bkt", "r", range=f"bytes={len(data)}-")
    assert resp.status_code == 416 and resp.headers["content-range"] == f"bytes */{len(data)}"


async def test_sha256_mismatch_stores_nothing(gw: Gateway) -> None:
    await _bucket(gw)
    resp = await gw.request(
        "PUT", "/bkt/k", body=b"real body", payload_hash=hashlib.sha256(b"other").hexdigest()
    )
    assert resp.status_code == 400 and _code(resp) == "XAmzContentSHA256Mismatch"
    assert (await gw.get("bkt", "k")).status_code == 404
    big = b"x" * 100_000
    resp = await gw.request(
        "PUT", "/bkt/k", body=big, payload_hash=hashlib.sha256(b"other").hexdigest()
    )
    assert resp.status_code == 400
    assert gw.store.chunks == {}
    md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    resp = await gw.put("bkt", "k", big, **{"content-md5": md5})
    assert resp.status_code == 400 and _code(resp) == "BadDigest"
    assert gw.store.chunks == {} and (await gw.get("bkt", "k")).status_code == 404


def _chunked_headers(
    body_len: int, mode: str, now: datetime, extra: dict[str, str]
) -> list[tuple[str, str]]:
    headers = [
        ("host", HOST),
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", str(body_len)),
        *extra.items(),
    ]
    return sign_request(
        "PUT",
        "/bkt/chunked",
        "",
        headers,
        access_key=ALICE.access_key,
        secret=ALICE.secret,
        region="us-east-1",
        now=now,
        payload_hash=mode,
    )


async def test_signed_aws_chunked_body(gw: Gateway) -> None:
    await _bucket(gw)
    data = bytes(range(256)) * 300
    now = datetime.now(UTC)
    headers = _chunked_headers(len(data), STREAMING_SIGNED, now, {})
    seed = dict(headers)["Authorization"].rsplit("Signature=", 1)[1]
    amz = format_amz_date(now)
    scope = CredentialScope(ALICE.access_key, amz[:8], "us-east-1")
    signing = ChunkSigningContext(
        derive_signing_key(ALICE.secret, amz[:8], "us-east-1"), amz, scope.scope, seed
    )
    body = b"".join(encode_aws_chunked([data[:65536], data[65536:]], signing=signing))
    resp = await gw.client.request(
        "PUT", f"http://{HOST}/bkt/chunked", headers=headers, content=body
    )
    assert resp.status_code == 200, resp.text
    assert (await gw.get("bkt", "chunked")).content == data
    # a corrupted chunk is refused and nothing becomes visible
    await gw.request("DELETE", "/bkt/chunked")
    bad = body.replace(data[70000:70010], b"0123456789")
    resp = await gw.client.request(
        "PUT", f"http://{HOST}/bkt/chunked", headers=headers, content=bad
    )
    assert resp.status_code == 403 and _code(resp) == "SignatureDoesNotMatch"
    assert (await gw.get("bkt", "chunked")).status_code == 404


async def test_unsigned_chunked_with_trailer_checksum(gw: Gateway) -> None:
    await _bucket(gw)
    data = b"hello trailer" * 1000
    headers = _chunked_headers(
        len(data),
        STREAMING_UNSIGNED_TRAILER,
        datetime.now(UTC),
        {"x-amz-trailer": "x-amz-checksum-crc32"},
    )
    body = b"".join(encode_aws_chunked([data], trailer_checksum=ChecksumAlgorithm.CRC32))
    resp = await gw.client.request(
        "PUT", f"http://{HOST}/bkt/chunked", headers=headers, content=body
    )
    assert resp.status_code == 200, resp.text
    crc = resp.headers["x-amz-checksum-crc32"]
    got = await gw.get("bkt", "chunked", **{"x-amz-checksum-mode": "ENABLED"})
    assert got.content == data and got.headers["x-amz-checksum-crc32"] == crc
    await gw.request("DELETE", "/bkt/chunked")
    wrong = body.replace(crc.encode(), b"AAAAAA==")
    resp = await gw.client.request(
        "PUT", f"http://{HOST}/bkt/chunked", headers=headers, content=wrong
    )
    assert resp.status_code == 400 and _code(resp) == "BadDigest", resp.text
    assert (await gw.get("bkt", "chunked")).status_code == 404


async def test_entity_too_large() -> None:
    gw = await make_gateway(max_object_bytes=1000)
    try:
        await _bucket(gw)
        resp = await gw.put("bkt", "big", b"x" * 1001)
        assert resp.status_code == 400 and _code(resp) == "EntityTooLarge"
        # no declared length (unsigned aws-chunked without decoded length): cut while streaming
        headers = sign_request(
            "PUT",
            "/bkt/big",
            "",
            [("host", HOST), ("x-amz-trailer", "x-amz-checksum-crc32")],
            access_key=ALICE.access_key,
            secret=ALICE.secret,
            region="us-east-1",
            now=datetime.now(UTC),
            payload_hash=STREAMING_UNSIGNED_TRAILER,
        )
        body = b"".join(
            encode_aws_chunked([b"y" * 800, b"y" * 800], trailer_checksum=ChecksumAlgorithm.CRC32)
        )
        resp = await gw.client.request(
            "PUT", f"http://{HOST}/bkt/big", headers=headers, content=body
        )
        assert resp.status_code == 400 and _code(resp) == "EntityTooLarge"
        assert (await gw.get("bkt", "big")).status_code == 404
        assert (await gw.put("bkt", "ok", b"x" * 1000)).status_code == 200
    finally:
        await gw.client.aclose()


async def test_unsigned_payload_put(gw: Gateway) -> None:
    await _bucket(gw)
    resp = await gw.request("PUT", "/bkt/u", body=b"unsigned", payload_hash=UNSIGNED_PAYLOAD)
    assert resp.status_code == 200
    assert (await gw.get("bkt", "u")).content == b"unsigned"


# -- availability ------------------------------------------------------------------------------
class _FlakyCatalog:
    def __init__(self, inner: LocalCatalog) -> None:
        self.inner = inner
        self.queries_down = False
        self.execute_error: BlobstoreError | None = None

    async def execute(self, command: Command, *, timeout_s: float = 10.0) -> object:
        if self.execute_error is not None:
            raise self.execute_error
        return await self.inner.execute(command, timeout_s=timeout_s)

    async def query(
        self, q: Query, *, mode: ReadMode = ReadMode.LINEARIZABLE, timeout_s: float = 10.0
    ) -> object:
        if self.queries_down and not isinstance(q, GetAccessKeyQuery):
            raise Unavailable("no quorum")
        return await self.inner.query(q, mode=mode, timeout_s=timeout_s)


async def test_quorum_loss_is_503_and_nothing_becomes_visible() -> None:
    base = await make_gateway()
    flaky = _FlakyCatalog(base.catalog)
    store = MemoryObjectStore(chunk_bytes=1024)
    app = create_app(flaky, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        gw = Gateway(app, base.catalog, store, client)
        await _bucket(gw)
        flaky.queries_down = True
        resp = await gw.put("bkt", "k", b"z" * 10_000)
        assert resp.status_code == 503 and _code(resp) == "ServiceUnavailable"
        assert store.chunks == {}  # refused before any byte was stored
        flaky.queries_down = False
        flaky.execute_error = DeadlineExceeded("commit timed out", leader="10.0.0.1:7000")
        resp = await gw.put("bkt", "k", b"z" * 10_000)
        assert resp.status_code == 503 and b"10.0.0.1" not in resp.content
        # outcome unknown to the gateway (the commit may have happened): data kept for GC
        assert len(store.chunks) == 10
        flaky.execute_error = PreconditionFailed("lost a race")
        resp = await gw.put("bkt", "k2", b"y" * 10_000)
        assert resp.status_code == 412
        assert len(store.chunks) == 10  # a definite refusal: its data was discarded
        flaky.execute_error = None
        assert (await gw.get("bkt", "k")).status_code == 404
        assert (await gw.get("bkt", "k2")).status_code == 404
    await base.client.aclose()


async def test_root_bootstrap_is_idempotent() -> None:
    catalog = LocalCatalog()
    assert not await ensure_root_user(catalog, {})
    env = {"BLOBSTORE_ROOT_ACCESS_KEY": "RK", "BLOBSTORE_ROOT_SECRET_KEY": "rs"}
    assert await ensure_root_user(catalog, env)
    assert await ensure_root_user(catalog, env)
    key, user = await catalog.query(GetAccessKeyQuery("RK"))  # type: ignore[misc]
    assert key.secret == "rs" and user.name == "root" and user.is_admin
    env2 = {**env, "BLOBSTORE_ROOT_SECRET_KEY": "rotated"}
    assert await ensure_root_user(catalog, env2)
    key, _user = await catalog.query(GetAccessKeyQuery("RK"))  # type: ignore[misc]
    assert key.secret == "rotated"


async def test_virtual_host_addressing() -> None:
    base = await make_gateway()
    app = create_app(base.catalog, base.store, domain="s3.example.test", auth_ttl_s=0.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:

        async def call(method: str, host: str, path: str, body: bytes = b"") -> httpx.Response:
            headers = sign_request(
                method,
                path,
                "",
                [("host", host)],
                access_key=ALICE.access_key,
                secret=ALICE.secret,
                region="us-east-1",
                now=datetime.now(UTC),
                payload_hash=hashlib.sha256(body).hexdigest(),
            )
            return await client.request(
                method, f"http://{host}{path}", headers=headers, content=body
            )

        assert (await call("PUT", "vhost.s3.example.test", "/")).status_code == 200
        put = await call("PUT", "vhost.s3.example.test:9000", "/dir/key", b"vh")
        assert put.status_code == 200, put.text
        assert (await call("GET", "s3.example.test", "/vhost/dir/key")).content == b"vh"
        listed = await call("GET", "vhost.s3.example.test", "/")
        assert b"<Key>dir/key</Key>" in listed.content
    await base.client.aclose()


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        (
            {
                "authorization": "AWS4-HMAC-SHA256 "
                "Credential=AK1/20260101/us-east-1/s3/aws4_request"
                ", SignedHeaders=host, Signature=abc"
            },
            "",
            "AK1",
        ),
        ({"authorization": "AWS AK2:c2lnbmF0dXJl"}, "", "AK2"),
        ({}, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK3%2F20260101%2Fus", "AK3"),
        ({}, "AWSAccessKeyId=AK4&Signature=x&Expires=1", "AK4"),
        ({}, "", None),
        ({"authorization": "Bearer token"}, "", None),
        ({}, "X-Amz-Credential=%zz", None),
    ],
)
def test_access_key_of(headers: dict[str, str], query: str, expected: str | None) -> None:
    req = RequestParts.build("GET", "/b/k", query, headers)
    assert access_key_of(req) == expected


async def test_access_key_cache_expires() -> None:
    catalog = LocalCatalog()
    now = [0.0]
    auth = Authenticator(catalog, ttl_s=5.0, negative_ttl_s=1.0, monotonic=lambda: now[0])

    def signed(secret: str) -> RequestParts:
        pairs = sign_request(
            "GET",
            "/",
            "",
            [("host", HOST)],
            access_key="CK",
            secret=secret,
            region="us-east-1",
            now=datetime.now(UTC),
            payload_hash=UNSIGNED_PAYLOAD,
        )
        return RequestParts.build("GET", "/", "", pairs)

    with pytest.raises(InvalidAccessKeyId):
        await auth.authenticate(signed("s1"), datetime.now(UTC))
    await catalog.execute(PutUser("carol"))
    await catalog.execute(PutAccessKey("CK", "s1", "carol"))
    with pytest.raises(InvalidAccessKeyId):  # negative entry still cached
        await auth.authenticate(signed("s1"), datetime.now(UTC))
    now[0] = 1.5
    _ctx, principal = await auth.authenticate(signed("s1"), datetime.now(UTC))
    assert principal.user == "carol" and not principal.is_admin
    await catalog.execute(PutAccessKey("CK", "s2", "carol"))
    _ctx, principal = await auth.authenticate(signed("s1"), datetime.now(UTC))  # cached secret
    now[0] = 7.0
    with pytest.raises(SignatureDoesNotMatch):
        await auth.authenticate(signed("s1"), datetime.now(UTC))
    _ctx, principal = await auth.authenticate(signed("s2"), datetime.now(UTC))
    assert principal.access_key == "CK"


async def test_root_bootstrap_waits_for_the_catalog() -> None:
    inner = LocalCatalog()
    flaky = _FlakyCatalog(inner)
    flaky.execute_error = Unavailable("electing")
    env = {"BLOBSTORE_ROOT_ACCESS_KEY": "RK", "BLOBSTORE_ROOT_SECRET_KEY": "rs"}
    task = asyncio.create_task(ensure_root_user(flaky, env, timeout_s=30))
    await asyncio.sleep(0)  # let it fail once against the unavailable catalog
    assert not task.done()
    flaky.execute_error = None
    assert await asyncio.wait_for(task, timeout=10)
    key, user = await inner.query(GetAccessKeyQuery("RK"))  # type: ignore[misc]
    assert key.secret == "rs" and user.is_admin
    flaky.execute_error = PreconditionFailed("not retryable")
    with pytest.raises(PreconditionFailed):
        await ensure_root_user(flaky, {**env, "BLOBSTORE_ROOT_SECRET_KEY": "other"})
