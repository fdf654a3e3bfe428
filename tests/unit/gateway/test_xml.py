"""XML response builders (well-formed, namespaced, exact values) and hardened parsers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import unquote, unquote_plus

import pytest

from gateway import operations as op
from gateway import xml as sx
from gateway.errors import S3Error

N = "{" + sx.NS + "}"
T = datetime(2026, 11, 26, 9, 10, 44, 123_456, tzinfo=UTC)
OWNER = sx.Owner("owner-id", "owner")
KEYS = ["plain", "a+b", "lit%20eral", "sp ace", "amp&<lt>", "uni/ü€", "tab\tx"]


def root(body: bytes) -> ET.Element:
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(body)


def texts(el: ET.Element, path: str) -> list[str]:
    return [e.text or "" for e in el.iterfind(path.replace("/", "/" + N).replace("^", N))]


def entries(keys: list[str]) -> list[sx.ObjectEntry]:
    return [sx.ObjectEntry(k, T, "abc", i) for i, k in enumerate(keys)]


def test_timestamp_and_etag() -> None:
    assert sx.format_timestamp(T) == "2026-11-26T09:10:44.123Z"
    assert sx.format_timestamp(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"
    assert sx.quote_etag("abc") == sx.quote_etag('"abc"') == '"abc"'


def test_list_v2_without_encoding_keeps_keys_verbatim() -> None:
    req = op.ListObjectsV2(bucket="bkt", prefix="", delimiter="/")
    page = sx.ListPage(entries(KEYS), ["dir+1/"], is_truncated=True, next_marker="tok")
    r = root(sx.list_objects_v2_result(req, page, OWNER))
    assert r.tag == N + "ListBucketResult"
    assert texts(r, "^Contents/Key") == KEYS
    assert texts(r, "^CommonPrefixes/Prefix") == ["dir+1/"]
    assert texts(r, "^KeyCount") == [str(len(KEYS) + 1)]
    assert texts(r, "^NextContinuationToken") == ["tok"]
    assert texts(r, "^Contents/ETag")[0] == '"abc"'
    assert texts(r, "^Contents/LastModified")[0] == "2026-11-26T09:10:44.123Z"
    assert r.find(N + "EncodingType") is None
    assert r.find(N + "Contents/" + N + "Owner") is None  # no fetch-owner


def test_list_v2_url_encoding_applied_when_asked() -> None:
    req = op.ListObjectsV2(
        bucket="bkt",
        prefix="p +",
        delimiter="/",
        start_after="s+",
        encoding_type="url",
        fetch_owner=True,
    )
    page = sx.ListPage(entries(KEYS), ["a b/"], False, None)
    r = root(sx.list_objects_v2_result(req, page, OWNER))
    encoded = texts(r, "^Contents/Key")
    assert [unquote(k) for k in encoded] == KEYS
    assert [unquote_plus(k) for k in encoded] == KEYS  # boto3 decodes with unquote_plus
    assert "a%2Bb" in encoded and "lit%2520eral" in encoded
    assert texts(r, "^Prefix") == ["p%20%2B"]
    assert texts(r, "^StartAfter") == ["s%2B"]
    assert texts(r, "^CommonPrefixes/Prefix") == ["a%20b/"]
    assert texts(r, "^EncodingType") == ["url"]
    assert texts(r, "^Contents/Owner/ID")[0] == "owner-id"


def test_list_v1() -> None:
    req = op.ListObjects(bucket="bkt", prefix="", delimiter="/", marker="m+", encoding_type="url")
    page = sx.ListPage(entries(["a+b"]), [], True, "a+b")
    r = root(sx.list_objects_result(req, page, OWNER))
    assert texts(r, "^Marker") == ["m%2B"]
    assert texts(r, "^NextMarker") == ["a%2Bb"]
    assert texts(r, "^Contents/Owner/ID") == ["owner-id"]
    assert texts(r, "^IsTruncated") == ["true"]
    req = op.ListObjects(bucket="bkt")
    r = root(sx.list_objects_result(req, sx.ListPage(entries(["a+b"])), OWNER))
    assert texts(r, "^Contents/Key") == ["a+b"] and r.find(N + "Delimiter") is None


def test_list_versions_and_uploads_and_parts() -> None:
    version = sx.VersionEntry("k", "null", True, False, T, "e", 1)
    r = root(
        sx.list_versions_result(
            op.ListObjectVersions(bucket="bkt"), [version], [], is_truncated=False,
            next_key_marker=None, next_version_id_marker=None, owner=OWNER,
        )
    )  # fmt: skip
    assert texts(r, "^Version/VersionId") == ["null"] and texts(r, "^Version/IsLatest") == ["true"]
    r = root(
        sx.list_multipart_uploads_result(
            op.ListMultipartUploads(bucket="bkt", encoding_type="url"),
            [sx.UploadEntry("a b", "u1", T)],
            ["p/"],
            is_truncated=False,
            next_key_marker=None,
            next_upload_id_marker=None,
            owner=OWNER,
        )
    )
    assert texts(r, "^Upload/Key") == ["a%20b"] and texts(r, "^Upload/UploadId") == ["u1"]
    r = root(
        sx.list_parts_result(
            op.ListParts(bucket="bkt", key="k", upload_id="u1"),
            [sx.PartEntry(1, T, "e1", 5, (op.ChecksumHeader("CRC32", "AAAAAA=="),))],
            is_truncated=True,
            next_part_number_marker=1,
            owner=OWNER,
        )
    )
    assert texts(r, "^Part/ETag") == ['"e1"'] and texts(r, "^Part/ChecksumCRC32") == ["AAAAAA=="]
    assert texts(r, "^NextPartNumberMarker") == ["1"]


def test_small_documents() -> None:
    r = root(sx.list_all_my_buckets_result(OWNER, [sx.BucketEntry("b1", T)]))
    assert texts(r, "^Buckets/Bucket/Name") == ["b1"]
    r = root(sx.initiate_multipart_upload_result("b", "k&", "u"))
    assert texts(r, "^Key") == ["k&"]
    r = root(sx.complete_multipart_upload_result("http://x/b/k", "b", "k", "abc-2"))
    assert texts(r, "^ETag") == ['"abc-2"']
    assert root(sx.copy_object_result("e", T)).tag == N + "CopyObjectResult"
    assert root(sx.copy_part_result("e", T)).tag == N + "CopyPartResult"
    r = root(sx.location_constraint("us-east-1"))
    assert r.tag == N + "LocationConstraint" and not r.text
    assert root(sx.location_constraint("eu-west-1")).text == "eu-west-1"
    assert len(root(sx.versioning_configuration(None))) == 0
    assert texts(root(sx.versioning_configuration("Enabled")), "^Status") == ["Enabled"]
    r = root(sx.tagging([op.Tag("k", "v")]))
    assert texts(r, "^TagSet/Tag/Key") == ["k"]
    r = root(sx.access_control_policy(OWNER))
    assert texts(r, "^AccessControlList/Grant/Permission") == ["FULL_CONTROL"]
    grantee = r.find(f"{N}AccessControlList/{N}Grant/{N}Grantee")
    assert grantee is not None
    assert grantee.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "CanonicalUser"
    assert texts(root(sx.empty_configuration("RequestPaymentConfiguration")), "^Payer") == [
        "BucketOwner"
    ]
    assert root(sx.empty_configuration("BucketLoggingStatus")).tag == N + "BucketLoggingStatus"


def test_delete_result_quiet() -> None:
    deleted = [sx.DeletedEntry("a"), sx.DeletedEntry("b")]
    errors = [sx.DeleteError("c", "AccessDenied", "Access Denied")]
    r = root(sx.delete_result(deleted, errors, quiet=False))
    assert texts(r, "^Deleted/Key") == ["a", "b"] and texts(r, "^Error/Code") == ["AccessDenied"]
    r = root(sx.delete_result(deleted, errors, quiet=True))
    assert texts(r, "^Deleted/Key") == [] and texts(r, "^Error/Key") == ["c"]


def test_cors_round_trip() -> None:
    config = sx.CorsConfiguration(
        (
            sx.CorsRule(("GET", "PUT"), ("*",), ("*",), ("ETag",), 3000, "r1"),
            sx.CorsRule(("HEAD",), ("https://a.example",)),
        )
    )
    assert sx.parse_cors_configuration(sx.cors_configuration(config)) == config


def test_cors_rule_matching() -> None:
    r1 = sx.CorsRule(("PUT",), ("https://*.example.com",), ("x-amz-*", "content-type"))
    r2 = sx.CorsRule(("GET", "HEAD"), ("*",))
    config = sx.CorsConfiguration((r1, r2))
    assert config.find_rule("https://app.example.com", "PUT", ["X-Amz-Date", "Content-Type"]) == r1
    assert config.find_rule("https://app.example.com", "PUT", ["authorization"]) is None
    assert config.find_rule("https://evil.com", "PUT") is None
    assert config.find_rule("https://evil.com", "GET") == r2
    assert config.find_rule("https://evil.com", "GET", ["x-custom"]) is None
    assert config.find_rule("o", "DELETE") is None


def test_get_object_attributes() -> None:
    req = op.GetObjectAttributes(
        bucket="b", key="k", attributes=("ETag", "ObjectSize", "StorageClass", "ObjectParts")
    )
    r = root(
        sx.get_object_attributes_response(
            req, etag='"abc"', size=10, parts=[sx.PartEntry(1, T, "x", 10)], total_parts=1
        )
    )
    assert texts(r, "^ETag") == ["abc"] and texts(r, "^ObjectSize") == ["10"]
    assert texts(r, "^ObjectParts/PartsCount") == ["1"]
    assert r.find(N + "Checksum") is None


def test_control_characters_are_escaped() -> None:
    body = sx.list_objects_v2_result(
        op.ListObjectsV2(bucket="b"), sx.ListPage(entries(["a\x01b\rc"])), OWNER
    )
    assert b"\x01" not in body and b"&#x1;" in body and b"&#xD;" in body


# -- parsers ----------------------------------------------------------------------------
COMPLETE = b"""<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Part><PartNumber>1</PartNumber><ETag>"e1"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>
  <Part><ETag>e2</ETag><PartNumber> 3 </PartNumber></Part>
</CompleteMultipartUpload>"""


def test_parse_complete() -> None:
    parts = sx.parse_complete_multipart_upload(COMPLETE)
    assert parts == (
        sx.CompletedPart(1, "e1", (op.ChecksumHeader("CRC32", "AAAAAA=="),)),
        sx.CompletedPart(3, "e2"),
    )
    no_ns = COMPLETE.replace(b' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"', b"")
    assert sx.parse_complete_multipart_upload(no_ns) == parts


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<CompleteMultipartUpload/>", "MalformedXML"),
        (
            b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
            "MalformedXML",
        ),
        (
            b"<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
            "InvalidArgument",
        ),
        (
            b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
            "InvalidArgument",
        ),
        (
            b"<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>a</ETag></Part>"
            b"<Part><PartNumber>1</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>",
            "InvalidPartOrder",
        ),
        (
            b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part>"
            b"<Part><PartNumber>1</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>",
            "InvalidPartOrder",
        ),
        (b"<Other/>", "MalformedXML"),
        (b"", "MalformedXML"),
        (b"<CompleteMultipartUpload>", "MalformedXML"),
    ],
)
def test_parse_complete_errors(body: bytes, code: str) -> None:
    with pytest.raises(S3Error) as info:
        sx.parse_complete_multipart_upload(body)
    assert info.value.code == code


def test_parse_delete() -> None:
    body = (
        b"<Delete><Quiet>true</Quiet><Object><Key> spaced &amp; key </Key></Object>"
        b"<Object><Key>b</Key><VersionId>null</VersionId></Object></Delete>"
    )
    req = sx.parse_delete(body)
    assert req.quiet
    assert req.objects == (sx.ObjectIdentifier(" spaced & key "), sx.ObjectIdentifier("b", "null"))
    many = b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>"
    with pytest.raises(S3Error) as info:
        sx.parse_delete(many)
    assert info.value.code == "MalformedXML"
    assert (
        len(sx.parse_delete(many.replace(b"<Object><Key>k</Key></Object>", b"", 1)).objects) == 1000
    )


def test_parse_tagging() -> None:
    body = (
        b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag>"
        b"<Tag><Key>b</Key></Tag></TagSet></Tagging>"
    )
    assert sx.parse_tagging(body) == (op.Tag("a", "1"), op.Tag("b", ""))
    eleven = (
        b"<Tagging><TagSet>"
        + b"".join(b"<Tag><Key>k%d</Key><Value>v</Value></Tag>" % i for i in range(11))
        + b"</TagSet></Tagging>"
    )
    with pytest.raises(S3Error) as info:
        sx.parse_tagging(eleven)
    assert info.value.code == "InvalidTag"
    assert len(sx.parse_tagging(eleven, max_tags=50)) == 11
    for bad in (b"k" * 129, b""):
        with pytest.raises(S3Error):
            sx.parse_tagging(
                b"<Tagging><TagSet><Tag><Key>" + bad + b"</Key></Tag></TagSet></Tagging>"
            )
    with pytest.raises(S3Error):
        sx.parse_tagging(b"<Tagging/>")


def test_parse_versioning_and_location_and_acl() -> None:
    assert sx.parse_versioning_configuration(
        b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Status>Enabled</Status></VersioningConfiguration>"
    ) == sx.VersioningConfiguration("Enabled")
    with pytest.raises(S3Error):
        sx.parse_versioning_configuration(
            b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>"
        )
    assert sx.parse_create_bucket_configuration(b"") is None
    assert (
        sx.parse_create_bucket_configuration(
            b"<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint>"
            b"</CreateBucketConfiguration>"
        )
        == "eu-west-1"
    )
    grants = sx.parse_access_control_policy(sx.access_control_policy(OWNER))
    assert grants == (sx.AclGrant("CanonicalUser", "owner-id", "FULL_CONTROL"),)


def test_parse_cors_errors() -> None:
    for body in (
        b"<CORSConfiguration/>",
        b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>",
        b"<CORSConfiguration><CORSRule><AllowedMethod>PATCH</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>",
        b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin><MaxAgeSeconds>x</MaxAgeSeconds></CORSRule></CORSConfiguration>",
    ):
        with pytest.raises(S3Error):
            sx.parse_cors_configuration(body)


HOSTILE = [
    # billion laughs
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
    b"<Delete><Object><Key>&lol2;</Key></Object></Delete>",
    # external entity (XXE)
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<Delete><Object><Key>&xxe;</Key></Object></Delete>",
    # external DTD
    b'<?xml version="1.0"?><!DOCTYPE Delete SYSTEM "http://example.com/x.dtd">'
    b"<Delete><Object><Key>k</Key></Object></Delete>",
    # parameter entities
    b'<!DOCTYPE d [<!ENTITY % p SYSTEM "http://example.com/p">%p;]><Delete/>',
    # undefined entity
    b"<Delete><Object><Key>&nope;</Key></Object></Delete>",
    # too deep
    b"<Delete>" + b"<a>" * 100 + b"</a>" * 100 + b"</Delete>",
    # too large
    b"<Delete>" + b" " * (9 * 1024 * 1024) + b"</Delete>",
    # unbound prefix
    b"<s3:Delete><Object><Key>k</Key></Object></s3:Delete>",
]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_documents_are_malformed(body: bytes) -> None:
    with pytest.raises(S3Error) as info:
        sx.parse_delete(body)
    assert info.value.code == "MalformedXML"


def test_prefixed_namespace_is_tolerated() -> None:
    body = (
        b'<s3:Delete xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<s3:Object><s3:Key>k</s3:Key></s3:Object></s3:Delete>"
    )
    assert sx.parse_delete(body).objects == (sx.ObjectIdentifier("k"),)


def test_builder_optional_fields() -> None:
    from datetime import timedelta, timezone

    cet = T.astimezone(timezone(timedelta(hours=1)))
    assert sx.format_timestamp(cet) == "2026-11-26T09:10:44.123Z"
    r = root(
        sx.list_all_my_buckets_result(
            OWNER, [sx.BucketEntry("b1", T, "us-east-1")], prefix="b", continuation_token="c"
        )
    )
    assert texts(r, "^Prefix") == ["b"] and texts(r, "^ContinuationToken") == ["c"]
    assert texts(r, "^Buckets/Bucket/BucketRegion") == ["us-east-1"]
    req = op.ListObjectsV2(bucket="bkt", continuation_token="c0")
    entry = sx.ObjectEntry("k", T, "e", 1, checksum_algorithm="CRC32")
    r = root(sx.list_objects_v2_result(req, sx.ListPage([entry]), OWNER))
    assert texts(r, "^ContinuationToken") == ["c0"]
    assert texts(r, "^Contents/ChecksumAlgorithm") == ["CRC32"]
    assert r.find(N + "NextContinuationToken") is None  # not truncated
    req_v = op.ListObjectVersions(bucket="bkt", delimiter="/", encoding_type="url")
    r = root(
        sx.list_versions_result(
            req_v, [sx.VersionEntry("a b", "null", True, False, T, "e", 1)], [],
            is_truncated=True, next_key_marker="a b", next_version_id_marker=None, owner=OWNER,
        )
    )  # fmt: skip
    assert texts(r, "^NextKeyMarker") == ["a%20b"] and texts(r, "^NextVersionIdMarker") == ["null"]
    assert texts(r, "^Delimiter") == ["/"] and texts(r, "^EncodingType") == ["url"]
    r = root(
        sx.list_multipart_uploads_result(
            op.ListMultipartUploads(bucket="bkt", delimiter="/"),
            [],
            [],
            is_truncated=True,
            next_key_marker="k+",
            next_upload_id_marker="u",
            owner=OWNER,
        )
    )
    assert texts(r, "^NextKeyMarker") == ["k+"] and texts(r, "^NextUploadIdMarker") == ["u"]
    r = root(
        sx.list_parts_result(
            op.ListParts(bucket="b", key="a b", upload_id="u", encoding_type="url"),
            [],
            is_truncated=False,
            next_part_number_marker=None,
            owner=OWNER,
            checksum_algorithm="SHA256",
        )
    )
    assert texts(r, "^Key") == ["a%20b"] and texts(r, "^ChecksumAlgorithm") == ["SHA256"]
    crc = op.ChecksumHeader("CRC32", "AAAAAA==")
    r = root(sx.complete_multipart_upload_result("l", "b", "k", "e-2", [crc], "COMPOSITE"))
    assert texts(r, "^ChecksumCRC32") == ["AAAAAA=="] and texts(r, "^ChecksumType") == ["COMPOSITE"]
    r = root(sx.versioning_configuration("Suspended", "Disabled"))
    assert texts(r, "^MfaDelete") == ["Disabled"]
    req_a = op.GetObjectAttributes(bucket="b", key="k", attributes=("Checksum", "ObjectParts"))
    r = root(
        sx.get_object_attributes_response(
            req_a,
            etag="e",
            size=1,
            checksums=[crc],
            checksum_type="FULL_OBJECT",
            parts=[],
            total_parts=3,
            parts_truncated=True,
            next_part_number_marker=2,
        )
    )
    assert texts(r, "^Checksum/ChecksumType") == ["FULL_OBJECT"]
    assert texts(r, "^ObjectParts/NextPartNumberMarker") == ["2"]
    assert r.find(N + "ETag") is None


@pytest.mark.parametrize(
    ("parser", "body"),
    [
        (sx.parse_delete, b"<Delete><Object><VersionId>v</VersionId></Object></Delete>"),
        (sx.parse_tagging, b"<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>"),
        (
            sx.parse_cors_configuration,
            b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>"
            b"<AllowedOrigin>*.*</AllowedOrigin></CORSRule></CORSConfiguration>",
        ),
        (
            sx.parse_versioning_configuration,
            b"<VersioningConfiguration><MfaDelete>x</MfaDelete></VersioningConfiguration>",
        ),
        (sx.parse_access_control_policy, b"<AccessControlPolicy/>"),
        (
            sx.parse_access_control_policy,
            b"<AccessControlPolicy><AccessControlList><Grant><Permission>ALL</Permission>"
            b"</Grant></AccessControlList></AccessControlPolicy>",
        ),
        (
            sx.parse_access_control_policy,
            b"<AccessControlPolicy><AccessControlList><Grant><Grantee><ID>x</ID></Grantee>"
            b"<Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>",
        ),
    ],
)
def test_parser_semantic_errors(parser: object, body: bytes) -> None:
    with pytest.raises(S3Error) as info:
        parser(body)  # type: ignore[operator]
    assert info.value.status == 400
