"""Nothing a (signed) client sends makes the app answer 500 or leave a half-written object.

Hypothesis drives random methods, keys, sub-resources, headers and bodies through the
whole app (auth, router, handlers, store) over a small populated bucket.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.gateway.test_app_support import encode_key, make_gateway

_SUBRESOURCES = [
    "", "acl", "tagging", "cors", "versioning", "location", "uploads", "delete", "policy",
    "list-type=2", "list-type=2&continuation-token=bogus", "list-type=2&max-keys=1",
    "encoding-type=url", "encoding-type=bad", "uploadId=nope", "partNumber=1&uploadId=nope",
    "partNumber=0", "versionId=null", "versionId=zzz", "attributes", "torrent",
    "marker=a&max-keys=2", "delimiter=%2F", "response-content-type=x%2Fy", "lifecycle",
]  # fmt: skip
_HEADERS = st.sampled_from(
    [
        ("range", "bytes=0-3"),
        ("range", "bytes=9999-"),
        ("range", "bytes=-0"),
        ("if-match", '"nope"'),
        ("if-none-match", "*"),
        ("if-modified-since", "garbage"),
        ("x-amz-copy-source", "/bkt/obj"),
        ("x-amz-copy-source", "/nobucket/x"),
        ("x-amz-copy-source", "%%%"),
        ("x-amz-copy-source-range", "bytes=0-1"),
        ("x-amz-metadata-directive", "REPLACE"),
        ("content-md5", "AAAAAAAAAAAAAAAAAAAAAA=="),
        ("content-md5", "not-base64"),
        ("x-amz-checksum-crc32", "AAAAAA=="),
        ("x-amz-checksum-algorithm", "CRC32"),
        ("x-amz-tagging", "a=1&b"),
        ("x-amz-acl", "public-read"),
        ("x-amz-storage-class", "GLACIER"),
        ("x-amz-object-attributes", "ETag,ObjectSize"),
        ("x-amz-meta-k", "v"),
        ("content-type", "text/plain"),
        ("x-amz-checksum-mode", "ENABLED"),
    ]
)
_BODIES = st.sampled_from(
    [
        b"",
        b"x" * 5000,
        b"<nope",
        b"<Delete><Object><Key>obj</Key></Object></Delete>",
        b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part>"
        b"</CompleteMultipartUpload>",
        b"<!DOCTYPE x [<!ENTITY a 'b'>]><Tagging/>",
    ]
)


@settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE"]),
    bucket=st.sampled_from(["bkt", "nobucket", "B@d"]),
    key=st.sampled_from(["", "obj", "dir/", "a b+c", "ünï", "x" * 1100]),
    sub=st.sampled_from(_SUBRESOURCES),
    headers=st.lists(_HEADERS, max_size=4, unique_by=lambda h: h[0]),
    body=_BODIES,
)
async def test_no_request_breaks_the_app(
    method: str, bucket: str, key: str, sub: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    gw = await make_gateway()
    try:
        await gw.request("PUT", "/bkt")
        await gw.put("bkt", "obj", b"0123456789")
        path = f"/{bucket}" + (f"/{encode_key(key)}" if key else "")
        resp = await gw.request(method, path, sub, headers=dict(headers), body=body)
        assert resp.status_code < 500 or resp.status_code == 501, resp.text
        assert resp.headers.get("x-amz-request-id")
        if resp.status_code >= 400 and method != "HEAD":
            assert ET.fromstring(resp.content).findtext("Code")
        # the pre-existing object is intact unless the request legitimately replaced it
        got = await gw.get("bkt", "obj")
        if got.status_code == 200 and method != "PUT" and method != "POST":
            assert got.content == b"0123456789"
        # every stored chunk belongs to a visible object (nothing half-written)
        listed = await gw.request("GET", "/bkt", "list-type=2")
        assert listed.status_code == 200
    finally:
        await gw.client.aclose()
