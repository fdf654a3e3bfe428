"""Regression tests for gateway bugs that real S3 clients (tests/e2e/test_clients_*) found.

Each test names the client and what it saw.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import botocore.parsers
import botocore.session
import httpx
import pytest

from tests.unit.gateway.test_app_support import Gateway, make_gateway

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    g = await make_gateway()
    assert (await g.request("PUT", "/bkt")).status_code == 200
    yield g
    await g.client.aclose()


def _entries(resp: httpx.Response) -> list[tuple[str, str, str, str]]:
    """(kind, key, version id, is latest) of every Version / DeleteMarker, in order."""
    root = ET.fromstring(resp.content)
    out = []
    for el in root:
        kind = el.tag.removeprefix(NS)
        if kind in ("Version", "DeleteMarker"):
            out.append(
                (
                    kind,
                    el.findtext(NS + "Key") or "",
                    el.findtext(NS + "VersionId") or "",
                    el.findtext(NS + "IsLatest") or "",
                )
            )
    return out


async def test_list_object_versions_of_a_versioned_bucket(gw: Gateway) -> None:
    """rclone --s3-versions / `aws s3api list-object-versions` saw every object as one
    version ``null``: the versions of a versioned bucket (and its delete markers) were
    hidden, so they could be neither listed nor deleted by id."""
    assert (await gw.put("bkt", "old", b"unversioned")).status_code == 200
    config = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
    assert (await gw.request("PUT", "/bkt", "versioning", body=config)).status_code == 200
    v1 = (await gw.put("bkt", "k", b"one")).headers["x-amz-version-id"]
    v2 = (await gw.put("bkt", "k", b"two")).headers["x-amz-version-id"]
    deleted = await gw.request("DELETE", "/bkt/k")
    marker = deleted.headers["x-amz-version-id"]
    assert len({v1, v2, marker}) == 3

    listing = await gw.request("GET", "/bkt", "versions")
    assert listing.status_code == 200
    assert _entries(listing) == [
        ("DeleteMarker", "k", marker, "true"),
        ("Version", "k", v2, "false"),
        ("Version", "k", v1, "false"),
        ("Version", "old", "null", "true"),
    ]
    # the listed ids address the versions
    assert (await gw.get("bkt", "k", f"versionId={v1}")).content == b"one"
    assert (await gw.get("bkt", "old", "versionId=null")).content == b"unversioned"

    # paging by (key, version id) markers
    first = await gw.request("GET", "/bkt", "max-keys=2&versions")
    root = ET.fromstring(first.content)
    assert root.findtext(NS + "IsTruncated") == "true"
    assert root.findtext(NS + "NextKeyMarker") == "k"
    assert root.findtext(NS + "NextVersionIdMarker") == v2
    rest = await gw.request("GET", "/bkt", f"key-marker=k&version-id-marker={v2}&versions")
    assert [e[2] for e in _entries(rest)] == [v1, "null"]

    # deleting every listed version by id empties the bucket
    for _kind, key, vid, _latest in _entries(listing):
        assert (await gw.request("DELETE", f"/bkt/{key}", f"versionId={vid}")).status_code == 204
    assert _entries(await gw.request("GET", "/bkt", "versions")) == []
    assert (await gw.request("DELETE", "/bkt")).status_code == 204


def _botocore_parse(operation: str, resp: httpx.Response) -> dict[str, object]:
    """The response as botocore (boto3, the aws CLI) reads it, with S3's service model."""
    model = botocore.session.get_session().get_service_model("s3")
    parser = botocore.parsers.create_parser("rest-xml")
    parsed: dict[str, object] = parser.parse(
        {"status_code": resp.status_code, "headers": dict(resp.headers), "body": resp.content},
        model.operation_model(operation).output_shape,
    )
    return parsed


async def test_get_object_attributes_parts_count_reaches_the_sdk(gw: Gateway) -> None:
    """`aws s3api get-object-attributes --object-attributes ObjectParts` showed no
    TotalPartsCount: its wire name is <PartsCount>, we sent <TotalPartsCount>."""
    created = await gw.request("POST", "/bkt/mp", "uploads")
    uid = ET.fromstring(created.content).findtext(NS + "UploadId")
    etags = []
    for n, body in ((1, b"a" * (5 * 1024 * 1024)), (2, b"b" * 10)):
        put = await gw.request("PUT", "/bkt/mp", f"partNumber={n}&uploadId={uid}", body=body)
        etags.append(put.headers["etag"])
    parts = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, 1)
    )
    done = await gw.request(
        "POST",
        "/bkt/mp",
        f"uploadId={uid}",
        body=f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode(),
    )
    assert done.status_code == 200
    attrs = await gw.request(
        "GET", "/bkt/mp", "attributes", headers={"x-amz-object-attributes": "ObjectParts"}
    )
    assert attrs.status_code == 200
    parsed = _botocore_parse("GetObjectAttributes", attrs)
    object_parts = parsed["ObjectParts"]
    assert isinstance(object_parts, dict)
    assert object_parts["TotalPartsCount"] == 2
