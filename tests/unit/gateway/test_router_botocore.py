"""Real botocore requests through parse_request, and our XML through botocore's parsers.

No network: a ``before-send`` hook captures each request (and, for the response tests,
answers with bytes built by ``gateway.xml``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

botocore = pytest.importorskip("botocore")
from botocore.awsrequest import AWSResponse  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.session import get_session  # noqa: E402

from gateway import operations as op  # noqa: E402
from gateway import xml as sx  # noqa: E402
from gateway.router import parse_request  # noqa: E402

ENDPOINT = "http://127.0.0.1:9000"
T = datetime(2026, 11, 26, 9, 10, 44, tzinfo=UTC)
OWNER = sx.Owner("owner-id", "owner")


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._body


_answer: list[Callable[[Any], AWSResponse] | None] = [None]
_clients: list[Any] = []


def _client(answer: Callable[[Any], AWSResponse] | None = None) -> Any:
    """One shared client (creating clients is slow); ``answer`` None captures requests."""
    _answer[0] = answer
    if not _clients:
        client = get_session().create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=ENDPOINT,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

        def before_send(request: Any, **_kwargs: Any) -> AWSResponse:
            current = _answer[0]
            if current is None:
                raise _Captured(request)
            return current(request)

        client.meta.events.register("before-send.s3", before_send)
        _clients.append(client)
    return _clients[0]


def capture(call: Callable[[Any], Any]) -> tuple[op.S3Operation, bytes]:
    client = _client()
    with pytest.raises(_Captured) as info:
        call(client)
    req = info.value.request
    url = urlsplit(req.url)
    headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in req.headers.items()]
    body = req.body or b""
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    parsed = parse_request(req.method, url.path, url.query, headers, url.netloc, None)
    return parsed, body


KEY = "dir/a b+c%20d/ü€/../x"


def test_object_crud_requests() -> None:
    got, _ = capture(
        lambda c: c.put_object(
            Bucket="bkt",
            Key=KEY,
            Body=b"hello",
            Metadata={"Mtime": "1700000000"},
            Tagging="a=1&b=two words",
            ContentType="text/plain",
            StorageClass="STANDARD",
            ACL="private",
        )
    )
    assert isinstance(got, op.PutObject) and got.key == KEY
    assert got.headers.user_metadata == (("mtime", "1700000000"),)
    assert got.tagging == (op.Tag("a", "1"), op.Tag("b", "two words"))
    assert got.payload.object_size == 5
    assert got.payload.checksum is not None or got.payload.content_md5 is not None

    got, _ = capture(
        lambda c: c.get_object(Bucket="bkt", Key=KEY, Range="bytes=0-1", IfMatch='"e"')
    )
    assert isinstance(got, op.GetObject) and got.key == KEY
    assert got.range is not None and got.conditions.if_match == ("e",)
    got, _ = capture(lambda c: c.head_object(Bucket="bkt", Key=KEY, VersionId="null"))
    assert isinstance(got, op.HeadObject) and got.version_id == "null"
    got, _ = capture(lambda c: c.delete_object(Bucket="bkt", Key=KEY))
    assert isinstance(got, op.DeleteObject) and got.key == KEY
    got, _ = capture(
        lambda c: c.copy_object(
            Bucket="dst",
            Key="k2",
            CopySource={"Bucket": "bkt", "Key": KEY},
            MetadataDirective="REPLACE",
            CopySourceIfMatch='"e"',
        )
    )
    assert isinstance(got, op.CopyObject) and got.source == op.CopySource("bkt", KEY)
    assert got.metadata_directive == "REPLACE"


def test_subresource_requests() -> None:
    cases: list[tuple[Callable[[Any], Any], type]] = [
        (lambda c: c.list_buckets(), op.ListBuckets),
        (lambda c: c.create_bucket(Bucket="bkt"), op.CreateBucket),
        (lambda c: c.head_bucket(Bucket="bkt"), op.HeadBucket),
        (lambda c: c.delete_bucket(Bucket="bkt"), op.DeleteBucket),
        (lambda c: c.get_bucket_location(Bucket="bkt"), op.GetBucketLocation),
        (lambda c: c.get_bucket_versioning(Bucket="bkt"), op.GetBucketVersioning),
        (lambda c: c.get_bucket_tagging(Bucket="bkt"), op.GetBucketTagging),
        (lambda c: c.delete_bucket_tagging(Bucket="bkt"), op.DeleteBucketTagging),
        (lambda c: c.get_bucket_cors(Bucket="bkt"), op.GetBucketCors),
        (lambda c: c.delete_bucket_cors(Bucket="bkt"), op.DeleteBucketCors),
        (lambda c: c.get_bucket_acl(Bucket="bkt"), op.GetBucketAcl),
        (lambda c: c.get_bucket_policy(Bucket="bkt"), op.GetBucketPolicy),
        (lambda c: c.get_bucket_lifecycle_configuration(Bucket="bkt"), op.GetBucketConfiguration),
        (lambda c: c.get_bucket_encryption(Bucket="bkt"), op.GetBucketConfiguration),
        (lambda c: c.list_objects(Bucket="bkt", Marker="m"), op.ListObjects),
        (lambda c: c.list_objects_v2(Bucket="bkt", Prefix="a+b"), op.ListObjectsV2),
        (lambda c: c.list_multipart_uploads(Bucket="bkt"), op.ListMultipartUploads),
        (lambda c: c.list_object_versions(Bucket="bkt"), op.ListObjectVersions),
        (lambda c: c.get_object_acl(Bucket="bkt", Key="k"), op.GetObjectAcl),
        (lambda c: c.put_object_acl(Bucket="bkt", Key="k", ACL="public-read"), op.PutObjectAcl),
        (lambda c: c.get_object_tagging(Bucket="bkt", Key="k"), op.GetObjectTagging),
        (lambda c: c.delete_object_tagging(Bucket="bkt", Key="k"), op.DeleteObjectTagging),
        (
            lambda c: c.get_object_attributes(Bucket="bkt", Key="k", ObjectAttributes=["ETag"]),
            op.GetObjectAttributes,
        ),
        (lambda c: c.create_multipart_upload(Bucket="bkt", Key="k"), op.CreateMultipartUpload),
        (
            lambda c: c.upload_part(Bucket="bkt", Key="k", UploadId="u", PartNumber=3, Body=b"x"),
            op.UploadPart,
        ),
        (
            lambda c: c.upload_part_copy(
                Bucket="bkt",
                Key="k",
                UploadId="u",
                PartNumber=2,
                CopySource="src/a+b",
                CopySourceRange="bytes=0-9",
            ),
            op.UploadPartCopy,
        ),
        (
            lambda c: c.abort_multipart_upload(Bucket="bkt", Key="k", UploadId="u"),
            op.AbortMultipartUpload,
        ),
        (lambda c: c.list_parts(Bucket="bkt", Key="k", UploadId="u"), op.ListParts),
    ]
    for call, cls in cases:
        got, _ = capture(call)
        assert type(got) is cls, (cls, got)
    got, _ = capture(lambda c: c.list_objects_v2(Bucket="bkt", Prefix="a+b"))
    assert isinstance(got, op.ListObjectsV2) and got.prefix == "a+b"
    assert got.encoding_type == "url"  # boto3 always asks for it
    got, _ = capture(
        lambda c: c.upload_part_copy(
            Bucket="bkt", Key="k", UploadId="u", PartNumber=2, CopySource="src/a+b"
        )
    )
    assert isinstance(got, op.UploadPartCopy) and got.source.key == "a+b"


def test_xml_bodies_parse() -> None:
    got, body = capture(
        lambda c: c.delete_objects(
            Bucket="bkt", Delete={"Objects": [{"Key": KEY}, {"Key": " sp "}], "Quiet": True}
        )
    )
    assert isinstance(got, op.DeleteObjects)
    req = sx.parse_delete(body)
    assert [o.key for o in req.objects] == [KEY, " sp "] and req.quiet
    got, body = capture(
        lambda c: c.complete_multipart_upload(
            Bucket="bkt",
            Key="k",
            UploadId="u",
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": '"e1"'}, {"PartNumber": 2, "ETag": '"e2"'}]
            },
        )
    )
    assert isinstance(got, op.CompleteMultipartUpload)
    assert sx.parse_complete_multipart_upload(body) == (
        sx.CompletedPart(1, "e1"),
        sx.CompletedPart(2, "e2"),
    )
    _, body = capture(
        lambda c: c.put_bucket_tagging(
            Bucket="bkt", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
        )
    )
    assert sx.parse_tagging(body, 50) == (op.Tag("k", "v"),)
    _, body = capture(
        lambda c: c.put_bucket_cors(
            Bucket="bkt",
            CORSConfiguration={"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]},
        )
    )
    assert sx.parse_cors_configuration(body).rules[0].allowed_methods == ("GET",)
    _, body = capture(
        lambda c: c.put_bucket_versioning(
            Bucket="bkt", VersioningConfiguration={"Status": "Enabled"}
        )
    )
    assert sx.parse_versioning_configuration(body).status == "Enabled"
    _, body = capture(
        lambda c: c.create_bucket(
            Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    )
    assert sx.parse_create_bucket_configuration(body) == "eu-west-1"
    _, body = capture(
        lambda c: c.put_object_acl(
            Bucket="bkt",
            Key="k",
            AccessControlPolicy={
                "Grants": [
                    {
                        "Grantee": {"Type": "CanonicalUser", "ID": "id1"},
                        "Permission": "FULL_CONTROL",
                    }
                ],
                "Owner": {"ID": "id1"},
            },
        )
    )
    assert sx.parse_access_control_policy(body) == (
        sx.AclGrant("CanonicalUser", "id1", "FULL_CONTROL"),
    )


def test_presigned_urls() -> None:
    client = _client()
    url = urlsplit(
        client.generate_presigned_url(
            "get_object",
            Params={"Bucket": "bkt", "Key": KEY, "ResponseContentType": "text/html"},
        )
    )
    got = parse_request("GET", url.path, url.query, [], url.netloc, None)
    assert isinstance(got, op.GetObject) and got.key == KEY
    assert got.overrides.content_type == "text/html"
    url = urlsplit(
        client.generate_presigned_url("put_object", Params={"Bucket": "bkt", "Key": KEY})
    )
    got = parse_request("PUT", url.path, url.query, [("content-length", "3")], url.netloc, None)
    assert isinstance(got, op.PutObject) and got.key == KEY


# -- our XML through botocore's response parsers --------------------------------------------
def respond(body: bytes, call: Callable[[Any], Any], status: int = 200) -> Any:
    def answer(request: Any) -> AWSResponse:
        return AWSResponse(request.url, status, {"content-type": "application/xml"}, _Raw(body))

    return call(_client(answer))


WEIRD = ["a+b", "lit%20eral", "sp ace", "amp&<>", "uni/ü€", "tab\tx"]


def test_botocore_reads_list_v2_with_url_encoding() -> None:
    def call(c: Any) -> Any:
        return c.list_objects_v2(Bucket="bkt", Delimiter="/")

    req = op.ListObjectsV2(bucket="bkt", delimiter="/", encoding_type="url")
    page = sx.ListPage([sx.ObjectEntry(k, T, "abc", 3) for k in WEIRD], ["p +/"], True, "tok")
    out = respond(sx.list_objects_v2_result(req, page, OWNER), call)
    assert [o["Key"] for o in out["Contents"]] == WEIRD
    assert out["Contents"][0]["ETag"] == '"abc"'
    assert out["Contents"][0]["LastModified"] == T
    assert out["CommonPrefixes"] == [{"Prefix": "p +/"}]
    assert out["NextContinuationToken"] == "tok" and out["IsTruncated"] is True


def test_botocore_reads_list_v1_and_other_documents() -> None:
    req = op.ListObjects(bucket="bkt")
    page = sx.ListPage([sx.ObjectEntry(k, T, "abc", 3) for k in WEIRD], [], False, None)
    out = respond(sx.list_objects_result(req, page, OWNER), lambda c: c.list_objects(Bucket="bkt"))
    assert [o["Key"] for o in out["Contents"]] == WEIRD
    assert out["Contents"][0]["Owner"]["ID"] == "owner-id"
    out = respond(
        sx.list_all_my_buckets_result(OWNER, [sx.BucketEntry("b1", T)]), lambda c: c.list_buckets()
    )
    assert out["Buckets"][0]["Name"] == "b1"
    out = respond(
        sx.location_constraint("us-east-1"), lambda c: c.get_bucket_location(Bucket="bkt")
    )
    assert out.get("LocationConstraint") in (None, "")
    out = respond(
        sx.initiate_multipart_upload_result("bkt", "k", "u1"),
        lambda c: c.create_multipart_upload(Bucket="bkt", Key="k"),
    )
    assert out["UploadId"] == "u1"
    out = respond(
        sx.delete_result(
            [sx.DeletedEntry("a")], [sx.DeleteError("b", "AccessDenied", "no")], quiet=False
        ),
        lambda c: c.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]}),
    )
    assert out["Deleted"] == [{"Key": "a"}] and out["Errors"][0]["Code"] == "AccessDenied"
    out = respond(sx.tagging([op.Tag("k", "v")]), lambda c: c.get_bucket_tagging(Bucket="bkt"))
    assert out["TagSet"] == [{"Key": "k", "Value": "v"}]
    out = respond(sx.access_control_policy(OWNER), lambda c: c.get_bucket_acl(Bucket="bkt"))
    assert out["Grants"][0]["Permission"] == "FULL_CONTROL"
    assert out["Grants"][0]["Grantee"]["Type"] == "CanonicalUser"
    out = respond(
        sx.copy_object_result("e", T),
        lambda c: c.copy_object(Bucket="bkt", Key="k2", CopySource="bkt/k"),
    )
    assert out["CopyObjectResult"]["ETag"] == '"e"'
    req_p = op.ListParts(bucket="bkt", key="k", upload_id="u")
    out = respond(
        sx.list_parts_result(
            req_p, [sx.PartEntry(1, T, "e1", 5)], is_truncated=False,
            next_part_number_marker=None, owner=OWNER,
        ),
        lambda c: c.list_parts(Bucket="bkt", Key="k", UploadId="u"),
    )  # fmt: skip
    assert out["Parts"][0]["ETag"] == '"e1"' and out["Parts"][0]["Size"] == 5
    out = respond(
        sx.versioning_configuration(None), lambda c: c.get_bucket_versioning(Bucket="bkt")
    )
    assert "Status" not in out


def test_botocore_reads_error_xml() -> None:
    from botocore.exceptions import ClientError

    from gateway.errors import S3Error, to_response

    resp = to_response(S3Error.no_such_bucket_policy("bkt"), "/bkt", "REQ")
    with pytest.raises(ClientError) as info:
        respond(resp.body, lambda c: c.get_bucket_policy(Bucket="bkt"), status=resp.status)
    assert info.value.response["Error"]["Code"] == "NoSuchBucketPolicy"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
