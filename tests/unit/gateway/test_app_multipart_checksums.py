"""Multipart checksums through the app (#5): FULL_OBJECT CRC combination, the
CompleteMultipartUpload request's own checksum header, per-part checksums kept after
completion (GET/HEAD ?partNumber, GetObjectAttributes), and POST Object -> 501."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
import zlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from blobstore.client.catalog import LocalCatalog
from gateway.checksums import ChecksumAlgorithm, crc32c, crc64nvme
from metadata.fsm.multipart import ApplyConfig
from metadata.fsm.state import Catalog
from tests.unit.gateway.test_app_support import Gateway, make_gateway

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
PARTS = (b"first part, " * 40, b"second part " * 33, b"the last one")
WHOLE = b"".join(PARTS)

_CRC: dict[str, Callable[[bytes], int]] = {
    "CRC32": zlib.crc32,
    "CRC32C": crc32c,
    "CRC64NVME": crc64nvme,
}


def _b64_crc(algorithm: str, data: bytes) -> str:
    size = ChecksumAlgorithm.from_name(algorithm).digest_size
    return base64.b64encode(_CRC[algorithm](data).to_bytes(size, "big")).decode()


def _texts(resp: httpx.Response, tag: str) -> list[str]:
    return [e.text or "" for e in ET.fromstring(resp.content).iter(NS + tag)]


def _code(resp: httpx.Response) -> str:
    return ET.fromstring(resp.content).findtext("Code") or ""


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    # tiny minimum part size so multi-part uploads stay small
    catalog = LocalCatalog(Catalog(config=ApplyConfig(min_part_size_bytes=1)))
    g = await make_gateway(catalog=catalog)
    assert (await g.request("PUT", "/bkt")).status_code == 200
    yield g
    await g.client.aclose()


async def _create(gw: Gateway, key: str, **headers: str) -> httpx.Response:
    return await gw.request("POST", f"/bkt/{key}", "uploads", headers=headers)


async def _upload(gw: Gateway, key: str, algorithm: str | None, kind: str | None = None) -> str:
    headers = {}
    if algorithm:
        headers["x-amz-checksum-algorithm"] = algorithm
    if kind:
        headers["x-amz-checksum-type"] = kind
    resp = await _create(gw, key, **headers)
    assert resp.status_code == 200, resp.text
    return _texts(resp, "UploadId")[0]


async def _put_parts(
    gw: Gateway, key: str, uid: str, parts: tuple[bytes, ...] = PARTS, **headers: str
) -> list[httpx.Response]:
    out = []
    for n, body in enumerate(parts, 1):
        r = await gw.request(
            "PUT", f"/bkt/{key}", f"partNumber={n}&uploadId={uid}", body=body, headers=headers
        )
        assert r.status_code == 200, r.text
        out.append(r)
    return out


def _complete_xml(responses: list[httpx.Response], algorithm: str | None = None) -> bytes:
    inner = ""
    for n, r in enumerate(responses, 1):
        extra = ""
        if algorithm:
            tag = f"Checksum{algorithm}"
            extra = f"<{tag}>{r.headers[f'x-amz-checksum-{algorithm.lower()}']}</{tag}>"
        inner += f"<Part><PartNumber>{n}</PartNumber><ETag>{r.headers['etag']}</ETag>{extra}</Part>"
    return f"<CompleteMultipartUpload>{inner}</CompleteMultipartUpload>".encode()


async def _complete(
    gw: Gateway,
    key: str,
    uid: str,
    responses: list[httpx.Response],
    *,
    parts_in: str | None = None,  # list each part's checksum in this algorithm
    **headers: str,
) -> httpx.Response:
    body = _complete_xml(responses, parts_in)
    return await gw.request("POST", f"/bkt/{key}", f"uploadId={uid}", body=body, headers=headers)


# -- FULL_OBJECT --------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
async def test_full_object_checksum_is_the_crc_of_the_whole_object(
    gw: Gateway, algorithm: str
) -> None:
    created = await _create(
        gw,
        "fo",
        **{"x-amz-checksum-algorithm": algorithm, "x-amz-checksum-type": "FULL_OBJECT"},
    )
    assert created.headers["x-amz-checksum-type"] == "FULL_OBJECT"
    uid = _texts(created, "UploadId")[0]
    responses = await _put_parts(gw, "fo", uid)
    listed = await gw.request("GET", "/bkt/fo", f"uploadId={uid}")
    assert _texts(listed, "ChecksumType") == ["FULL_OBJECT"]
    done = await _complete(gw, "fo", uid, responses)
    assert done.status_code == 200, done.text
    expected = _b64_crc(algorithm, WHOLE)
    assert _texts(done, f"Checksum{algorithm}") == [expected]  # no "-N"
    assert _texts(done, "ChecksumType") == ["FULL_OBJECT"]

    mode = {"x-amz-checksum-mode": "ENABLED"}
    head = await gw.request("HEAD", "/bkt/fo", headers=mode)
    assert head.headers[f"x-amz-checksum-{algorithm.lower()}"] == expected
    assert head.headers["x-amz-checksum-type"] == "FULL_OBJECT"
    got = await gw.get("bkt", "fo", **mode)
    assert got.content == WHOLE
    assert got.headers[f"x-amz-checksum-{algorithm.lower()}"] == expected


async def test_crc64nvme_defaults_to_full_object(gw: Gateway) -> None:
    created = await _create(gw, "nv", **{"x-amz-checksum-algorithm": "CRC64NVME"})
    assert created.headers["x-amz-checksum-type"] == "FULL_OBJECT"
    uid = _texts(created, "UploadId")[0]
    done = await _complete(gw, "nv", uid, await _put_parts(gw, "nv", uid))
    assert _texts(done, "ChecksumCRC64NVME") == [_b64_crc("CRC64NVME", WHOLE)]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            {"x-amz-checksum-algorithm": "SHA256", "x-amz-checksum-type": "FULL_OBJECT"},
            "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm.",
        ),
        (
            {"x-amz-checksum-algorithm": "SHA1", "x-amz-checksum-type": "FULL_OBJECT"},
            "The FULL_OBJECT checksum type cannot be used with the sha1 checksum algorithm.",
        ),
        (
            {"x-amz-checksum-algorithm": "CRC64NVME", "x-amz-checksum-type": "COMPOSITE"},
            "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.",
        ),
        (
            {"x-amz-checksum-type": "FULL_OBJECT"},
            "The x-amz-checksum-type header can only be used with the "
            "x-amz-checksum-algorithm header.",
        ),
    ],
)
async def test_refused_checksum_types(gw: Gateway, headers: dict[str, str], message: str) -> None:
    resp = await _create(gw, "bad", **headers)
    assert resp.status_code == 400 and _code(resp) == "InvalidRequest"
    assert ET.fromstring(resp.content).findtext("Message") == message
    uploads = await gw.request("GET", "/bkt", "uploads")
    assert _texts(uploads, "UploadId") == []


# -- the Complete request's own checksum ------------------------------------------------------
async def _assert_not_committed(gw: Gateway, key: str, uid: str) -> None:
    assert (await gw.request("HEAD", f"/bkt/{key}")).status_code == 404
    assert (await gw.request("GET", f"/bkt/{key}", f"uploadId={uid}")).status_code == 200


async def test_complete_checks_the_full_object_header(gw: Gateway) -> None:
    uid = await _upload(gw, "h", "CRC32C", "FULL_OBJECT")
    responses = await _put_parts(gw, "h", uid)
    wrong = _b64_crc("CRC32C", WHOLE + b"!")
    bad = await _complete(gw, "h", uid, responses, **{"x-amz-checksum-crc32c": wrong})
    assert bad.status_code == 400 and _code(bad) == "BadDigest", bad.text
    await _assert_not_committed(gw, "h", uid)
    composite_form = await _complete(
        gw, "h", uid, responses, **{"x-amz-checksum-crc32c": _b64_crc("CRC32C", WHOLE) + "-3"}
    )
    assert _code(composite_form) == "BadDigest"  # FULL_OBJECT has no "-N"
    other_type = await _complete(
        gw,
        "h",
        uid,
        responses,
        **{"x-amz-checksum-crc32c": _b64_crc("CRC32C", WHOLE), "x-amz-checksum-type": "COMPOSITE"},
    )
    assert other_type.status_code == 400 and _code(other_type) == "BadDigest"
    other_alg = await _complete(
        gw, "h", uid, responses, **{"x-amz-checksum-crc32": _b64_crc("CRC32", WHOLE)}
    )
    assert other_alg.status_code == 400 and _code(other_alg) == "InvalidRequest"
    await _assert_not_committed(gw, "h", uid)
    good = await _complete(
        gw,
        "h",
        uid,
        responses,
        **{
            "x-amz-checksum-crc32c": _b64_crc("CRC32C", WHOLE),
            "x-amz-checksum-type": "FULL_OBJECT",
        },
    )
    assert good.status_code == 200, good.text
    assert (await gw.get("bkt", "h")).content == WHOLE


async def test_complete_checks_the_composite_header(gw: Gateway) -> None:
    uid = await _upload(gw, "c", "SHA256")
    responses = await _put_parts(gw, "c", uid)
    digests = b"".join(hashlib.sha256(p).digest() for p in PARTS)
    composite = base64.b64encode(hashlib.sha256(digests).digest()).decode()
    bad = await _complete(
        gw, "c", uid, responses, parts_in="SHA256", **{"x-amz-checksum-sha256": composite + "-2"}
    )
    assert bad.status_code == 400 and _code(bad) == "BadDigest"
    await _assert_not_committed(gw, "c", uid)
    malformed = await _complete(
        gw, "c", uid, responses, parts_in="SHA256", **{"x-amz-checksum-sha256": "abc-3"}
    )
    assert malformed.status_code == 400 and _code(malformed) == "InvalidRequest"
    good = await _complete(
        gw, "c", uid, responses, parts_in="SHA256", **{"x-amz-checksum-sha256": composite + "-3"}
    )
    assert good.status_code == 200, good.text
    assert _texts(good, "ChecksumSHA256") == [composite + "-3"]
    assert _texts(good, "ChecksumType") == ["COMPOSITE"]


async def test_a_composite_complete_must_list_every_part_checksum(gw: Gateway) -> None:
    """As S3: InvalidRequest naming the first part without one, and nothing committed; an
    upload created without an algorithm, or a FULL_OBJECT one, needs none listed."""
    uid = await _upload(gw, "cc", "CRC32")
    responses = await _put_parts(gw, "cc", uid)
    body = _complete_xml(responses, "CRC32").replace(
        f"<ChecksumCRC32>{responses[1].headers['x-amz-checksum-crc32']}</ChecksumCRC32>".encode(),
        b"",
    )
    missing = await gw.request("POST", "/bkt/cc", f"uploadId={uid}", body=body)
    assert missing.status_code == 400 and _code(missing) == "InvalidRequest"
    assert "crc32 checksum" in missing.text and "missing for part 2" in missing.text
    await _assert_not_committed(gw, "cc", uid)
    done = await _complete(gw, "cc", uid, responses, parts_in="CRC32")
    assert done.status_code == 200, done.text
    for key, algorithm, kind in (("fo2", "CRC32", "FULL_OBJECT"), ("none", None, None)):
        uid = await _upload(gw, key, algorithm, kind)
        done = await _complete(gw, key, uid, await _put_parts(gw, key, uid))
        assert done.status_code == 200, done.text


async def test_complete_header_on_an_upload_without_algorithm(gw: Gateway) -> None:
    uid = await _upload(gw, "n", None)
    # the client sent a crc32 with each part although the upload named no algorithm
    responses = []
    for n, body in enumerate(PARTS, 1):
        r = await gw.request(
            "PUT",
            "/bkt/n",
            f"partNumber={n}&uploadId={uid}",
            body=body,
            headers={"x-amz-checksum-crc32": _b64_crc("CRC32", body)},
        )
        assert r.status_code == 200
        responses.append(r)
    bad = await _complete(gw, "n", uid, responses, **{"x-amz-checksum-crc32": "AAAAAA=="})
    assert _code(bad) == "BadDigest"
    unknown = await _complete(
        gw, "n", uid, responses, **{"x-amz-checksum-crc32c": _b64_crc("CRC32C", WHOLE)}
    )
    assert unknown.status_code == 400 and _code(unknown) == "InvalidRequest"
    await _assert_not_committed(gw, "n", uid)
    good = await _complete(
        gw, "n", uid, responses, **{"x-amz-checksum-crc32": _b64_crc("CRC32", WHOLE)}
    )
    assert good.status_code == 200, good.text
    head = await gw.request("HEAD", "/bkt/n", headers={"x-amz-checksum-mode": "ENABLED"})
    assert head.headers["x-amz-checksum-crc32"] == _b64_crc("CRC32", WHOLE)
    assert head.headers["x-amz-checksum-type"] == "FULL_OBJECT"


async def test_complete_content_md5_still_covers_the_body(gw: Gateway) -> None:
    uid = await _upload(gw, "m", "CRC32")
    responses = await _put_parts(gw, "m", uid)
    body = _complete_xml(responses, "CRC32")
    wrong_md5 = base64.b64encode(hashlib.md5(body + b" ").digest()).decode()
    bad = await gw.request(
        "POST", "/bkt/m", f"uploadId={uid}", body=body, headers={"content-md5": wrong_md5}
    )
    assert bad.status_code == 400 and _code(bad) == "BadDigest"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    good = await gw.request(
        "POST", "/bkt/m", f"uploadId={uid}", body=body, headers={"content-md5": md5}
    )
    assert good.status_code == 200, good.text


# -- per-part checksums after completion ---------------------------------------------------
@pytest.mark.parametrize("kind", ["COMPOSITE", "FULL_OBJECT"])
async def test_part_checksums_are_kept(gw: Gateway, kind: str) -> None:
    uid = await _upload(gw, "p", "CRC32", kind)
    responses = await _put_parts(gw, "p", uid)
    body = _complete_xml(responses, "CRC32")
    done = await gw.request("POST", "/bkt/p", f"uploadId={uid}", body=body)
    assert done.status_code == 200, done.text
    object_value = _texts(done, "ChecksumCRC32")[0]
    mode = {"x-amz-checksum-mode": "ENABLED"}
    for n, part in enumerate(PARTS, 1):
        got = await gw.get("bkt", "p", f"partNumber={n}", **mode)
        assert got.status_code == 206 and got.content == part
        assert got.headers["x-amz-checksum-crc32"] == _b64_crc("CRC32", part)
        head = await gw.request("HEAD", "/bkt/p", f"partNumber={n}", headers=mode)
        assert head.headers["x-amz-checksum-crc32"] == _b64_crc("CRC32", part)
        assert head.headers["x-amz-mp-parts-count"] == "3"
    plain = await gw.get("bkt", "p", "partNumber=2")
    assert "x-amz-checksum-crc32" not in plain.headers
    ranged = await gw.get("bkt", "p", range="bytes=0-9", **mode)
    assert "x-amz-checksum-crc32" not in ranged.headers

    attrs = await gw.request(
        "GET",
        "/bkt/p",
        "attributes",
        headers={
            "x-amz-object-attributes": "ETag,Checksum,ObjectParts,ObjectSize,StorageClass",
            "x-amz-max-parts": "2",
            "x-amz-part-number-marker": "1",
        },
    )
    assert attrs.status_code == 200, attrs.text
    assert _texts(attrs, "ChecksumType") == [kind]
    root = ET.fromstring(attrs.content)
    checksum = root.find(NS + "Checksum")
    assert checksum is not None
    # S3 gives a COMPOSITE value here without its "-N"
    assert checksum.findtext(NS + "ChecksumCRC32") == object_value.partition("-")[0]
    parts = root.findall(f"{NS}ObjectParts/{NS}Part")
    assert [p.findtext(NS + "PartNumber") for p in parts] == ["2", "3"]
    assert [p.findtext(NS + "ChecksumCRC32") for p in parts] == [
        _b64_crc("CRC32", PARTS[1]),
        _b64_crc("CRC32", PARTS[2]),
    ]
    assert _texts(attrs, "PartsCount") == ["3"]
    assert _texts(attrs, "ObjectSize") == [str(len(WHOLE))]


async def test_upload_part_copy_records_the_part_checksum(gw: Gateway) -> None:
    source = b"0123456789" * 100
    assert (await gw.put("bkt", "src", source)).status_code == 200
    uid = await _upload(gw, "cp", "CRC32C", "FULL_OBJECT")
    copied = await gw.request(
        "PUT",
        "/bkt/cp",
        f"partNumber=1&uploadId={uid}",
        headers={"x-amz-copy-source": "/bkt/src", "x-amz-copy-source-range": "bytes=10-509"},
    )
    assert copied.status_code == 200, copied.text
    assert _texts(copied, "ChecksumCRC32C") == [_b64_crc("CRC32C", source[10:510])]
    second = await gw.request("PUT", "/bkt/cp", f"partNumber=2&uploadId={uid}", body=b"tail bytes")
    etag1 = _texts(copied, "ETag")[0]
    body = (
        f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag1}</ETag></Part>"
        f"<Part><PartNumber>2</PartNumber><ETag>{second.headers['etag']}</ETag></Part>"
        "</CompleteMultipartUpload>"
    ).encode()
    done = await gw.request("POST", "/bkt/cp", f"uploadId={uid}", body=body)
    assert done.status_code == 200, done.text
    whole = source[10:510] + b"tail bytes"
    assert _texts(done, "ChecksumCRC32C") == [_b64_crc("CRC32C", whole)]
    assert (await gw.get("bkt", "cp")).content == whole


# -- POST Object ----------------------------------------------------------------------------
async def test_form_post_is_not_implemented(gw: Gateway) -> None:
    boundary = "----blobstore"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\nk\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
        f"data\r\n--{boundary}--\r\n"
    ).encode()
    resp = await gw.client.post(
        "http://testserver/bkt",
        content=form,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status_code == 501, resp.text
    assert _code(resp) == "NotImplemented"
    assert (await gw.request("HEAD", "/bkt/k")).status_code == 404
    # anything else unsigned is still refused
    plain = await gw.client.post("http://testserver/bkt", content=b"x")
    assert plain.status_code == 403
