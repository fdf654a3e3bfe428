"""Every S3 operation through the app (httpx.ASGITransport + LocalCatalog + memory store):
buckets and sub-resources, listings, copies, tagging, DeleteObjects, multipart, versioning."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest

from metadata.fsm.commands import DeleteBucket
from tests.unit.gateway.test_app_support import BOB, Gateway, make_gateway

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    g = await make_gateway()
    assert (await g.request("PUT", "/bkt")).status_code == 200
    yield g
    await g.client.aclose()


def _code(resp: httpx.Response) -> str:
    return ET.fromstring(resp.content).findtext("Code") or ""


def _texts(resp: httpx.Response, tag: str) -> list[str]:
    return [e.text or "" for e in ET.fromstring(resp.content).iter(NS + tag)]


def _md5_b64(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


# -- buckets ------------------------------------------------------------------------------
async def test_bucket_basics(gw: Gateway) -> None:
    assert (await gw.request("HEAD", "/bkt")).status_code == 200
    loc = await gw.request("GET", "/bkt", "location")
    assert loc.status_code == 200 and b"<LocationConstraint" in loc.content
    assert (await gw.request("GET", "/nope", "location")).status_code == 404
    body = (
        b"<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint>"
        b"</CreateBucketConfiguration>"
    )
    assert (await gw.request("PUT", "/other", body=body)).status_code == 200
    bad = await gw.request("PUT", "/third", body=b"<nope")
    assert bad.status_code == 400 and _code(bad) == "MalformedXML"
    assert (await gw.request("PUT", "/Bad_Name")).status_code == 400
    await gw.put("other", "k", b"1")
    busy = await gw.request("DELETE", "/other")
    assert busy.status_code == 409 and _code(busy) == "BucketNotEmpty"
    await gw.request("DELETE", "/other/k")
    assert (await gw.request("DELETE", "/other")).status_code == 204
    assert (await gw.request("HEAD", "/other")).status_code == 404
    names = _texts(await gw.request("GET", "/"), "Name")
    assert names == ["bkt"]


async def test_versioning_tagging_cors_acl_policy(gw: Gateway) -> None:
    assert _texts(await gw.request("GET", "/bkt", "versioning"), "Status") == []
    doc = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
    assert (await gw.request("PUT", "/bkt", "versioning", body=doc)).status_code == 200
    assert _texts(await gw.request("GET", "/bkt", "versioning"), "Status") == ["Enabled"]
    put = await gw.put("bkt", "v", b"one")
    assert put.headers.get("x-amz-version-id")
    deleted = await gw.request("DELETE", "/bkt/v")
    assert deleted.headers["x-amz-delete-marker"] == "true"
    assert (await gw.get("bkt", "v")).status_code == 404
    old = await gw.get("bkt", "v", f"versionId={put.headers['x-amz-version-id']}")
    assert old.content == b"one"

    missing = await gw.request("GET", "/bkt", "tagging")
    assert missing.status_code == 404 and _code(missing) == "NoSuchTagSet"
    tags = b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"
    assert (await gw.request("PUT", "/bkt", "tagging", body=tags)).status_code == 204
    assert _texts(await gw.request("GET", "/bkt", "tagging"), "Key") == ["k"]
    assert (await gw.request("DELETE", "/bkt", "tagging")).status_code == 204

    cors = (
        b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>"
        b"<AllowedOrigin>*</AllowedOrigin><AllowedHeader>*</AllowedHeader>"
        b"<ExposeHeader>ETag</ExposeHeader></CORSRule></CORSConfiguration>"
    )
    assert (await gw.request("GET", "/bkt", "cors")).status_code == 404
    assert (await gw.request("PUT", "/bkt", "cors", body=cors)).status_code == 200
    assert _texts(await gw.request("GET", "/bkt", "cors"), "AllowedOrigin") == ["*"]
    pre = await gw.client.request(
        "OPTIONS",
        "http://testserver/bkt/key",
        headers={
            "Origin": "https://x.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-amz-date",
        },
    )
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "*"
    assert pre.headers["access-control-expose-headers"] == "ETag"
    denied = await gw.client.request(
        "OPTIONS",
        "http://testserver/bkt/key",
        headers={"Origin": "https://x.example", "Access-Control-Request-Method": "PUT"},
    )
    assert denied.status_code == 403
    await gw.put("bkt", "key", b"v")
    actual = await gw.get("bkt", "key", origin="https://x.example")
    assert actual.headers["access-control-allow-origin"] == "*"
    plain = await gw.get("bkt", "key")
    assert "access-control-allow-origin" not in plain.headers
    assert (await gw.request("DELETE", "/bkt", "cors")).status_code == 204
    after = await gw.get("bkt", "key", origin="https://x.example")
    assert "access-control-allow-origin" not in after.headers

    acl = await gw.request("GET", "/bkt", "acl")
    assert _texts(acl, "Permission") == ["FULL_CONTROL"]
    assert (
        await gw.request("PUT", "/bkt", "acl", headers={"x-amz-acl": "private"})
    ).status_code == 200
    pol = await gw.request("GET", "/bkt", "policy")
    assert pol.status_code == 404 and _code(pol) == "NoSuchBucketPolicy"
    assert (await gw.request("DELETE", "/bkt", "policy")).status_code == 204
    assert (await gw.request("GET", "/bkt", "logging")).status_code == 200


# -- listing ------------------------------------------------------------------------------
async def test_list_v1_v2_and_encoding(gw: Gateway) -> None:
    keys = ["a/1", "a/2", "b", "c+d", "e%20f"]
    for k in keys:
        await gw.put("bkt", k, b"x")
    v2 = await gw.request("GET", "/bkt", "list-type=2&delimiter=%2F")
    assert _texts(v2, "Key") == ["b", "c+d", "e%20f"]
    assert _texts(v2, "Prefix")[-1] == "a/"
    enc = await gw.request("GET", "/bkt", "list-type=2&encoding-type=url")
    assert _texts(enc, "Key") == ["a/1", "a/2", "b", "c%2Bd", "e%2520f"]
    page = await gw.request("GET", "/bkt", "list-type=2&max-keys=2")
    assert _texts(page, "IsTruncated") == ["true"]
    token = _texts(page, "NextContinuationToken")[0]
    rest = await gw.request("GET", "/bkt", f"list-type=2&continuation-token={token}")
    assert _texts(rest, "Key") == ["b", "c+d", "e%20f"]
    v1 = await gw.request("GET", "/bkt", "delimiter=%2F&max-keys=1")
    assert _texts(v1, "NextMarker") == ["a/"]
    v1b = await gw.request("GET", "/bkt", "marker=a%2F2")
    assert _texts(v1b, "Key") == ["b", "c+d", "e%20f"]
    assert _texts(v1b, "ID")  # v1 always lists owners
    versions = await gw.request("GET", "/bkt", "versions")
    assert _texts(versions, "Key") == keys
    assert (await gw.request("GET", "/nope", "list-type=2")).status_code == 404


# -- objects ------------------------------------------------------------------------------
async def test_conditional_get_and_overrides(gw: Gateway) -> None:
    put = await gw.put("bkt", "k", b"content", **{"content-type": "text/plain"})
    etag = put.headers["etag"]
    nm = await gw.get("bkt", "k", **{"if-none-match": etag})
    assert nm.status_code == 304 and nm.headers["etag"] == etag and nm.content == b""
    pf = await gw.get("bkt", "k", **{"if-match": '"zzz"'})
    assert pf.status_code == 412 and _code(pf) == "PreconditionFailed"
    ok = await gw.get("bkt", "k", **{"if-match": etag, "range": "bytes=1-2"})
    assert ok.status_code == 206 and ok.content == b"on"
    ov = await gw.get("bkt", "k", "response-content-type=application%2Fjson")
    assert ov.headers["content-type"] == "application/json"
    cond = await gw.put("bkt", "k", b"new", **{"if-none-match": "*"})
    assert cond.status_code == 412
    missing = await gw.put("bkt", "absent", b"new", **{"if-match": etag})
    assert missing.status_code == 404
    assert (await gw.put("bkt", "k", b"new", **{"if-match": etag})).status_code == 200


async def test_copy_tagging_attributes_acl(gw: Gateway) -> None:
    await gw.put("bkt", "src", b"source data", **{"x-amz-tagging": "a=1", "x-amz-meta-m": "1"})
    copy = await gw.request("PUT", "/bkt/dst", headers={"x-amz-copy-source": "/bkt/src"})
    assert copy.status_code == 200 and _texts(copy, "ETag")
    head = await gw.request("HEAD", "/bkt/dst")
    assert head.headers["x-amz-meta-m"] == "1" and head.headers["x-amz-tagging-count"] == "1"
    replaced = await gw.request(
        "PUT",
        "/bkt/dst",
        headers={
            "x-amz-copy-source": "/bkt/dst",
            "x-amz-metadata-directive": "REPLACE",
            "x-amz-tagging-directive": "REPLACE",
            "x-amz-tagging": "b=2&c=3",
            "x-amz-meta-n": "2",
        },
    )
    assert replaced.status_code == 200
    head = await gw.request("HEAD", "/bkt/dst")
    assert "x-amz-meta-m" not in head.headers and head.headers["x-amz-meta-n"] == "2"
    assert head.headers["x-amz-tagging-count"] == "2"
    self_copy = await gw.request("PUT", "/bkt/dst", headers={"x-amz-copy-source": "/bkt/dst"})
    assert self_copy.status_code == 400
    cond = await gw.request(
        "PUT",
        "/bkt/x",
        headers={"x-amz-copy-source": "/bkt/src", "x-amz-copy-source-if-none-match": "*"},
    )
    assert cond.status_code == 412

    tags = b"<Tagging><TagSet><Tag><Key>t</Key><Value>1</Value></Tag></TagSet></Tagging>"
    assert (await gw.request("PUT", "/bkt/src", "tagging", body=tags)).status_code == 200
    assert _texts(await gw.request("GET", "/bkt/src", "tagging"), "Key") == ["t"]
    assert (await gw.request("DELETE", "/bkt/src", "tagging")).status_code == 204
    assert _texts(await gw.request("GET", "/bkt/src", "tagging"), "Key") == []
    gone = await gw.request("GET", "/bkt/nokey", "tagging")
    assert gone.status_code == 404 and _code(gone) == "NoSuchKey"

    attrs = await gw.request(
        "GET", "/bkt/src", "attributes", headers={"x-amz-object-attributes": "ETag,ObjectSize"}
    )
    assert _texts(attrs, "ObjectSize") == ["11"]
    assert _texts(attrs, "ETag") == [hashlib.md5(b"source data").hexdigest()]
    assert _texts(await gw.request("GET", "/bkt/src", "acl"), "Permission") == ["FULL_CONTROL"]
    assert (
        await gw.request("PUT", "/bkt/src", "acl", headers={"x-amz-acl": "private"})
    ).status_code == 200


async def test_delete_objects(gw: Gateway) -> None:
    for k in ("a", "b"):
        await gw.put("bkt", k, b"x")
    body = (
        b"<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object>"
        b"<Object><Key>zz</Key></Object></Delete>"
    )
    bad = await gw.request(
        "POST", "/bkt", "delete", body=body, headers={"content-md5": _md5_b64(b"no")}
    )
    assert bad.status_code == 400 and _code(bad) == "BadDigest"
    assert (await gw.get("bkt", "a")).status_code == 200
    ok = await gw.request(
        "POST", "/bkt", "delete", body=body, headers={"content-md5": _md5_b64(body)}
    )
    assert ok.status_code == 200 and sorted(_texts(ok, "Key")) == ["a", "b", "zz"]
    assert (await gw.get("bkt", "a")).status_code == 404
    quiet = body.replace(b"<Delete>", b"<Delete><Quiet>true</Quiet>")
    q = await gw.request(
        "POST", "/bkt", "delete", body=quiet, headers={"content-md5": _md5_b64(quiet)}
    )
    assert q.status_code == 200 and _texts(q, "Key") == []
    empty = await gw.request(
        "POST", "/bkt", "delete", body=b"<Delete/>", headers={"content-md5": _md5_b64(b"<Delete/>")}
    )
    assert empty.status_code == 400 and _code(empty) == "MalformedXML"
    assert (await gw.request("DELETE", "/bkt/never")).status_code == 204


async def test_delete_objects_needs_an_integrity_header(gw: Gateway) -> None:
    """As S3: no Content-MD5 and no x-amz-checksum-* -> 400 InvalidRequest, nothing deleted;
    a checksum header (what boto3 sends) or an announced checksum trailer is enough."""
    await gw.put("bkt", "a", b"x")
    body = b"<Delete><Object><Key>a</Key></Object></Delete>"
    bare = await gw.request("POST", "/bkt", "delete", body=body)
    assert bare.status_code == 400 and _code(bare) == "InvalidRequest"
    assert "Content-MD5" in ET.fromstring(bare.content).findtext("Message", "")
    assert (await gw.get("bkt", "a")).status_code == 200
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    ok = await gw.request(
        "POST", "/bkt", "delete", body=body, headers={"x-amz-checksum-crc32": crc}
    )
    assert ok.status_code == 200 and _texts(ok, "Key") == ["a"]
    assert (await gw.get("bkt", "a")).status_code == 404
    wrong = await gw.request(
        "POST", "/bkt", "delete", body=body, headers={"x-amz-checksum-crc32": "AAAAAA=="}
    )
    assert wrong.status_code == 400 and _code(wrong) == "BadDigest"


# -- multipart ----------------------------------------------------------------------------
async def _create(gw: Gateway, key: str, **headers: str) -> str:
    resp = await gw.request("POST", f"/bkt/{key}", "uploads", headers=headers)
    assert resp.status_code == 200, resp.text
    return _texts(resp, "UploadId")[0]


def _complete_body(parts: list[tuple[int, str]], extra: str = "") -> bytes:
    inner = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag>{extra}</Part>" for n, e in parts
    )
    return f"<CompleteMultipartUpload>{inner}</CompleteMultipartUpload>".encode()


async def test_multipart_flow_and_errors() -> None:
    gw = await make_gateway(chunk_bytes=1024 * 1024)
    try:
        await gw.request("PUT", "/bkt")
        uid = await _create(gw, "mp", **{"x-amz-meta-x": "1", "content-type": "text/csv"})
        p1 = b"a" * (5 * 1024 * 1024)
        p2 = b"b" * 100
        r2 = await gw.request("PUT", "/bkt/mp", f"partNumber=2&uploadId={uid}", body=p2)
        r1 = await gw.request("PUT", "/bkt/mp", f"partNumber=1&uploadId={uid}", body=p1)
        e1, e2 = r1.headers["etag"], r2.headers["etag"]
        listed = await gw.request("GET", "/bkt/mp", f"uploadId={uid}")
        assert _texts(listed, "PartNumber") == ["1", "2"]
        ups = await gw.request("GET", "/bkt", "uploads")
        assert _texts(ups, "UploadId") == [uid]
        wrong = await gw.request(
            "POST",
            "/bkt/mp",
            f"uploadId={uid}",
            body=_complete_body([(1, e1), (2, '"00000000000000000000000000000000"')]),
        )
        assert wrong.status_code == 400 and _code(wrong) == "InvalidPart"
        order = await gw.request(
            "POST", "/bkt/mp", f"uploadId={uid}", body=_complete_body([(2, e2), (1, e1)])
        )
        assert order.status_code == 400 and _code(order) == "InvalidPartOrder"
        small = await gw.request(
            "POST", "/bkt/mp", f"uploadId={uid}", body=_complete_body([(2, e2)])
        )
        assert small.status_code == 200  # a single (last) part may be small
        uid = await _create(gw, "mp2")
        e_small = (
            await gw.request("PUT", "/bkt/mp2", f"partNumber=1&uploadId={uid}", body=p2)
        ).headers["etag"]
        e_last = (
            await gw.request("PUT", "/bkt/mp2", f"partNumber=2&uploadId={uid}", body=p2)
        ).headers["etag"]
        too_small = await gw.request(
            "POST", "/bkt/mp2", f"uploadId={uid}", body=_complete_body([(1, e_small), (2, e_last)])
        )
        assert too_small.status_code == 400 and _code(too_small) == "EntityTooSmall"
        e1 = (await gw.request("PUT", "/bkt/mp2", f"partNumber=1&uploadId={uid}", body=p1)).headers[
            "etag"
        ]
        done = await gw.request(
            "POST", "/bkt/mp2", f"uploadId={uid}", body=_complete_body([(1, e1), (2, e_last)])
        )
        assert done.status_code == 200, done.text
        etag = _texts(done, "ETag")[0]
        md5s = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest()
        assert etag == f'"{md5s}-2"'
        head = await gw.request("HEAD", "/bkt/mp2")
        assert head.headers["etag"] == etag
        part2 = await gw.get("bkt", "mp2", "partNumber=2")
        assert part2.status_code == 206 and part2.content == p2
        assert part2.headers["x-amz-mp-parts-count"] == "2"
        assert (await gw.get("bkt", "mp2", "partNumber=3")).status_code == 416
        attrs = await gw.request(
            "GET", "/bkt/mp2", "attributes", headers={"x-amz-object-attributes": "ObjectParts"}
        )
        assert _texts(attrs, "PartsCount") == ["2"]
        gone = await gw.request("PUT", "/bkt/mp2", f"partNumber=1&uploadId={uid}", body=b"late")
        assert gone.status_code == 404 and _code(gone) == "NoSuchUpload"
        uid = await _create(gw, "ab")
        await gw.request("PUT", "/bkt/ab", f"partNumber=1&uploadId={uid}", body=b"zz" * 5000)
        before = len(gw.store.chunks)
        assert (await gw.request("DELETE", "/bkt/ab", f"uploadId={uid}")).status_code == 204
        assert (await gw.request("GET", "/bkt/ab", f"uploadId={uid}")).status_code == 404
        assert before >= 1
    finally:
        await gw.client.aclose()


async def test_multipart_checksums_and_part_copy(gw: Gateway) -> None:
    uid = await _create(gw, "ck", **{"x-amz-checksum-algorithm": "CRC32"})
    r = await gw.request("PUT", "/bkt/ck", f"partNumber=1&uploadId={uid}", body=b"hello")
    crc = r.headers["x-amz-checksum-crc32"]
    mismatch = await gw.request(
        "POST",
        "/bkt/ck",
        f"uploadId={uid}",
        body=_complete_body([(1, r.headers["etag"])], "<ChecksumCRC32>AAAAAA==</ChecksumCRC32>"),
    )
    assert mismatch.status_code == 400 and _code(mismatch) == "InvalidPart"
    done = await gw.request(
        "POST",
        "/bkt/ck",
        f"uploadId={uid}",
        body=_complete_body([(1, r.headers["etag"])], f"<ChecksumCRC32>{crc}</ChecksumCRC32>"),
    )
    assert done.status_code == 200 and _texts(done, "ChecksumCRC32")[0].endswith("-1")

    await gw.put("bkt", "src", bytes(range(256)) * 100)
    uid = await _create(gw, "pc")
    cp = await gw.request(
        "PUT",
        "/bkt/pc",
        f"partNumber=1&uploadId={uid}",
        headers={"x-amz-copy-source": "/bkt/src", "x-amz-copy-source-range": "bytes=10-20009"},
    )
    assert cp.status_code == 200, cp.text
    bad = await gw.request(
        "PUT",
        "/bkt/pc",
        f"partNumber=2&uploadId={uid}",
        headers={"x-amz-copy-source": "/bkt/src", "x-amz-copy-source-range": "bytes=0-99999"},
    )
    assert bad.status_code == 400
    etag = _texts(cp, "ETag")[0]
    done = await gw.request("POST", "/bkt/pc", f"uploadId={uid}", body=_complete_body([(1, etag)]))
    assert done.status_code == 200
    assert (await gw.get("bkt", "pc")).content == (bytes(range(256)) * 100)[10:20010]


async def test_memory_store_garbage_collection(gw: Gateway) -> None:
    await gw.put("bkt", "a", b"a" * 200_000)
    await gw.put("bkt", "b", b"b" * 200_000)
    before = len(gw.store.chunks)
    await gw.put("bkt", "a", b"c" * 10)  # overwrite with an inline object
    await gw.request("DELETE", "/bkt/b")
    dropped = await gw.store.collect_garbage(gw.catalog)
    assert dropped == before and gw.store.chunks == {}
    assert (await gw.get("bkt", "a")).content == b"c" * 10
    assert await gw.store.collect_garbage(gw.catalog) == 0


# -- #5 gaps: composite checksums, CORS on errors, storage classes, bucket cache ----------
async def test_multipart_composite_checksum_is_stored_and_returned(gw: Gateway) -> None:
    uid = await _create(gw, "cc", **{"x-amz-checksum-algorithm": "CRC32"})
    assert (await gw.request("GET", "/bkt/cc", f"uploadId={uid}")).status_code == 200
    body = b"composite part body"
    r = await gw.request("PUT", "/bkt/cc", f"partNumber=1&uploadId={uid}", body=body)
    part_crc = zlib.crc32(body).to_bytes(4, "big")
    assert r.headers["x-amz-checksum-crc32"] == base64.b64encode(part_crc).decode()
    listed = await gw.request("GET", "/bkt/cc", f"uploadId={uid}")
    assert _texts(listed, "ChecksumAlgorithm") == ["CRC32"]
    assert _texts(listed, "ChecksumType") == ["COMPOSITE"]
    assert _texts(listed, "ChecksumCRC32") == [r.headers["x-amz-checksum-crc32"]]
    listed_crc = f"<ChecksumCRC32>{r.headers['x-amz-checksum-crc32']}</ChecksumCRC32>"
    done = await gw.request(
        "POST",
        "/bkt/cc",
        f"uploadId={uid}",
        body=_complete_body([(1, r.headers["etag"])], listed_crc),
    )
    assert done.status_code == 200, done.text
    # S3's COMPOSITE value: b64(crc32(crc(part1) || ...)) + "-N"
    expected = base64.b64encode(zlib.crc32(part_crc).to_bytes(4, "big")).decode() + "-1"
    assert _texts(done, "ChecksumCRC32") == [expected]
    assert _texts(done, "ChecksumType") == ["COMPOSITE"]

    head = await gw.request("HEAD", "/bkt/cc", headers={"x-amz-checksum-mode": "ENABLED"})
    assert head.headers["x-amz-checksum-crc32"] == expected
    assert head.headers["x-amz-checksum-type"] == "COMPOSITE"
    got = await gw.get("bkt", "cc", **{"x-amz-checksum-mode": "ENABLED"})
    assert got.content == body and got.headers["x-amz-checksum-crc32"] == expected
    plain = await gw.request("HEAD", "/bkt/cc")
    assert "x-amz-checksum-crc32" not in plain.headers  # only with checksum mode
    ranged = await gw.get("bkt", "cc", range="bytes=0-3", **{"x-amz-checksum-mode": "ENABLED"})
    assert ranged.status_code == 206 and "x-amz-checksum-crc32" not in ranged.headers
    part = await gw.get("bkt", "cc", "partNumber=1", **{"x-amz-checksum-mode": "ENABLED"})
    # a part: its own checksum (kept after completion), not the object's
    assert part.headers["x-amz-checksum-crc32"] == base64.b64encode(part_crc).decode()

    attrs = await gw.request(
        "GET",
        "/bkt/cc",
        "attributes",
        headers={"x-amz-object-attributes": "Checksum,ObjectParts,ObjectSize"},
    )
    assert attrs.status_code == 200, attrs.text
    # S3 gives the COMPOSITE value without "-N" here; the part lists its own checksum
    assert _texts(attrs, "ChecksumCRC32") == [
        expected.partition("-")[0],
        base64.b64encode(part_crc).decode(),
    ]
    assert _texts(attrs, "ChecksumType") == ["COMPOSITE"]
    assert _texts(attrs, "PartsCount") == ["1"]


async def test_single_part_checksum_type_is_full_object(gw: Gateway) -> None:
    body = b"full object"
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert (await gw.put("bkt", "f", body, **{"x-amz-checksum-crc32": crc})).status_code == 200
    head = await gw.request("HEAD", "/bkt/f", headers={"x-amz-checksum-mode": "ENABLED"})
    assert head.headers["x-amz-checksum-crc32"] == crc
    assert head.headers["x-amz-checksum-type"] == "FULL_OBJECT"


async def test_multipart_without_algorithm_has_no_checksum(gw: Gateway) -> None:
    uid = await _create(gw, "nc")
    r = await gw.request("PUT", "/bkt/nc", f"partNumber=1&uploadId={uid}", body=b"x")
    listed = await gw.request("GET", "/bkt/nc", f"uploadId={uid}")
    assert _texts(listed, "ChecksumType") == []
    done = await gw.request(
        "POST", "/bkt/nc", f"uploadId={uid}", body=_complete_body([(1, r.headers["etag"])])
    )
    assert done.status_code == 200 and _texts(done, "ChecksumType") == []
    head = await gw.request("HEAD", "/bkt/nc", headers={"x-amz-checksum-mode": "ENABLED"})
    assert not [h for h in head.headers if h.startswith("x-amz-checksum")]


_CORS_GET = (
    b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>"
    b"<AllowedOrigin>https://app.example</AllowedOrigin></CORSRule></CORSConfiguration>"
)


async def test_cors_headers_on_error_responses(gw: Gateway) -> None:
    origin = {"origin": "https://app.example"}
    assert (await gw.request("PUT", "/bkt", "cors", body=_CORS_GET)).status_code == 200
    missing = await gw.get("bkt", "nope", **origin)
    assert missing.status_code == 404 and _code(missing) == "NoSuchKey"
    assert missing.headers["access-control-allow-origin"] == "https://app.example"
    bad_sig = await gw.request("GET", "/bkt/nope", headers=origin, secret="wrong-secret")
    assert bad_sig.status_code == 403 and _code(bad_sig) == "SignatureDoesNotMatch"
    assert bad_sig.headers["access-control-allow-origin"] == "https://app.example"
    # no matching rule: no CORS headers (other origin; other method)
    other = await gw.get("bkt", "nope", origin="https://evil.example")
    assert other.status_code == 404 and "access-control-allow-origin" not in other.headers
    put = await gw.put("bkt", "k", b"x", **{"x-amz-storage-class": "GLACIER"}, **origin)
    assert put.status_code == 400 and "access-control-allow-origin" not in put.headers
    # a missing bucket has no rules
    gone = await gw.get("nobucket", "k", **origin)
    assert gone.status_code == 404 and "access-control-allow-origin" not in gone.headers


async def test_online_storage_classes_are_stored_and_echoed(gw: Gateway) -> None:
    sc = {"x-amz-storage-class": "STANDARD_IA"}
    assert (await gw.put("bkt", "ia", b"data", **sc)).status_code == 200
    head = await gw.request("HEAD", "/bkt/ia")
    assert head.headers["x-amz-storage-class"] == "STANDARD_IA"
    listing = await gw.request("GET", "/bkt", "list-type=2")
    assert _texts(listing, "StorageClass") == ["STANDARD_IA"]
    uid = await _create(gw, "mp", **{"x-amz-storage-class": "GLACIER_IR"})
    parts = await gw.request("GET", "/bkt/mp", f"uploadId={uid}")
    assert _texts(parts, "StorageClass") == ["GLACIER_IR"]
    glacier = await gw.put("bkt", "g", b"x", **{"x-amz-storage-class": "GLACIER"})
    assert glacier.status_code == 400 and _code(glacier) == "InvalidStorageClass"
    assert (await gw.get("bkt", "g")).status_code == 404


async def test_bucket_cache_never_outlives_the_bucket(gw: Gateway) -> None:
    """Object requests use a short-lived per-process bucket cache: ownership is still
    enforced from it, and a bucket deleted elsewhere (another gateway) is still gone."""
    await gw.put("bkt", "k", b"v")
    assert (await gw.get("bkt", "k")).status_code == 200  # alice's record is now cached
    bob = gw.as_user(BOB)
    denied = await bob.get("bkt", "k")
    assert denied.status_code == 403 and _code(denied) == "AccessDenied"
    denied_put = await bob.put("bkt", "k2", b"v")
    assert denied_put.status_code == 403
    await gw.request("DELETE", "/bkt/k")
    # deleted behind this gateway's back, straight in the catalog
    await gw.catalog.execute(DeleteBucket("bkt"))
    put = await gw.put("bkt", "k", b"v")
    assert put.status_code == 404 and _code(put) == "NoSuchBucket"
    get = await gw.get("bkt", "k")
    assert get.status_code == 404 and _code(get) == "NoSuchBucket"
    assert (await gw.request("HEAD", "/bkt")).status_code == 404


async def test_delete_bucket_drops_the_cached_record(gw: Gateway) -> None:
    await gw.put("bkt", "k", b"v")
    await gw.request("DELETE", "/bkt/k")
    assert (await gw.request("DELETE", "/bkt")).status_code == 204
    bob = gw.as_user(BOB)
    assert (await bob.request("PUT", "/bkt")).status_code == 200  # re-created by bob
    denied = await gw.put("bkt", "k", b"v")  # alice: not from a stale cache entry
    assert denied.status_code == 403 and _code(denied) == "AccessDenied"
