"""Error mapping: domain errors, gateway S3Errors and duck-typed auth errors -> S3 XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from blobstore import errors as domain
from gateway.errors import S3_CODE_STATUS, S3Error, resolve, to_response


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (domain.NoSuchBucket("x", bucket="b"), "NoSuchBucket", 404),
        (domain.NoSuchKey(), "NoSuchKey", 404),
        (domain.NoSuchUpload(), "NoSuchUpload", 404),
        (domain.BucketAlreadyExists(), "BucketAlreadyExists", 409),
        (domain.BucketAlreadyOwnedByYou(), "BucketAlreadyOwnedByYou", 409),
        (domain.BucketNotEmpty(), "BucketNotEmpty", 409),
        (domain.InvalidBucketName(), "InvalidBucketName", 400),
        (domain.PreconditionFailed(), "PreconditionFailed", 412),
        (domain.InvalidPart(), "InvalidPart", 400),
        (domain.InvalidPartOrder(), "InvalidPartOrder", 400),
        (domain.InvalidArgument("bad"), "InvalidArgument", 400),
        (domain.InvalidArgument("small", code="EntityTooSmall"), "EntityTooSmall", 400),
        (domain.InvalidArgument("big", code="EntityTooLarge"), "EntityTooLarge", 400),
        (domain.InvalidRange(), "InvalidRange", 416),
        (domain.BadDigest(), "BadDigest", 400),
        (domain.AccessDenied(), "AccessDenied", 403),
        (domain.Unavailable(), "ServiceUnavailable", 503),
        (domain.NotLeader("n2 is leader", leader="10.0.0.2:7000"), "ServiceUnavailable", 503),
        (domain.DeadlineExceeded(), "ServiceUnavailable", 503),
        (domain.CorruptShard(), "InternalError", 500),
        (domain.InternalError("boom"), "InternalError", 500),
        (domain.ProtocolError(), "InternalError", 500),
        (RuntimeError("secret detail"), "InternalError", 500),
        (KeyError("x"), "InternalError", 500),
    ],
)
def test_mapping(error: BaseException, code: str, status: int) -> None:
    s3 = resolve(error)
    assert (s3.code, s3.status) == (code, status)
    if status >= 500:
        assert "secret" not in s3.message and "10.0.0.2" not in s3.message


class FakeAuthError(Exception):
    """Shape of gateway.sigv4.AuthError: a ``.code`` attribute."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SignatureDoesNotMatch", 403),
        ("InvalidAccessKeyId", 403),
        ("AccessDenied", 403),
        ("AuthorizationHeaderMalformed", 400),
        ("AuthorizationQueryParametersError", 400),
        ("RequestTimeTooSkewed", 403),
        ("XAmzContentSHA256Mismatch", 400),
        ("MissingSecurityHeader", 400),
        ("IncompleteBody", 400),
        ("InvalidDigest", 400),
        ("BadDigest", 400),
        ("InvalidRequest", 400),
    ],
)
def test_duck_typed_auth_errors(code: str, status: int) -> None:
    s3 = resolve(FakeAuthError(code, "why"))
    assert (s3.code, s3.status, s3.message) == (code, status, "why")


def test_unknown_duck_code_is_internal() -> None:
    assert resolve(FakeAuthError("Whatever", "x")).status == 500


def test_real_sigv4_auth_errors_if_present() -> None:
    sigv4 = pytest.importorskip("gateway.sigv4")
    expected = {"SignatureDoesNotMatch": 403, "InvalidAccessKeyId": 403, "IncompleteBody": 400}
    found = 0
    for name, status in expected.items():
        cls = getattr(sigv4, name, None)
        if cls is None:
            continue
        found += 1
        s3 = resolve(cls("why", Detail="x"))
        assert (s3.code, s3.status, s3.message) == (name, status, "why")
    if not found:
        pytest.skip("gateway.sigv4 error classes not defined yet")


def test_error_xml() -> None:
    resp = to_response(domain.NoSuchKey("gone", key="a&b"), "/bkt/a&b", "REQ1", "HOST1")
    status, headers, body = resp
    assert status == 404
    assert ("x-amz-request-id", "REQ1") in headers and ("x-amz-id-2", "HOST1") in headers
    assert ("Content-Type", "application/xml") in headers
    root = ET.fromstring(body)
    assert root.tag == "Error"
    assert root.findtext("Code") == "NoSuchKey"
    assert root.findtext("Message") == "The specified key does not exist."  # not "gone"
    assert root.findtext("Key") == "a&b"
    assert root.findtext("Resource") == "/bkt/a&b"
    assert root.findtext("RequestId") == "REQ1"
    assert root.findtext("HostId") == "HOST1"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            domain.NoSuchBucket("bucket 'b' does not exist in shard 7", bucket="b"),
            "The specified bucket does not exist",
        ),
        (
            domain.InvalidArgument("chunk lengths do not add up to the part size"),
            "Invalid Argument",
        ),
        (
            domain.InvalidArgument("part 1 is smaller than the minimum", code="EntityTooSmall"),
            "Your proposed upload is smaller than the minimum allowed object size.",
        ),
        (
            domain.InvalidPart("part 3 was not uploaded or its ETag differs", part_number="3"),
            "One or more of the specified parts could not be found. The part may not have "
            "been uploaded, or the specified entity tag may not match the part's entity tag.",
        ),
        (domain.AccessDenied("user bob is not owner of b (owner alice)"), "Access Denied"),
        (
            domain.NotLeader("not the leader", leader="10.0.0.2:7001"),
            "Please reduce your request rate.",
        ),
    ],
)
def test_domain_messages_never_reach_clients(error: domain.BlobstoreError, message: str) -> None:
    """Clients get S3's standard message for the code; the domain text stays in our logs
    (structured details that came from the request still become fields)."""
    body = to_response(error, "/b/k", "r").body
    root = ET.fromstring(body)
    assert root.findtext("Message") == message
    assert error.message.encode() not in body
    if "part_number" in error.details:
        assert root.findtext("PartNumber") == error.details["part_number"]


def test_default_message_when_domain_error_has_none() -> None:
    root = ET.fromstring(to_response(domain.NoSuchBucket(), "/b", "r").body)
    assert root.findtext("Message") == "The specified bucket does not exist"


def test_head_and_304_have_no_body() -> None:
    assert to_response(domain.NoSuchKey(), "/b/k", "r", is_head=True).body == b""
    resp = to_response(S3Error.not_modified((("ETag", '"x"'),)), "/b/k", "r")
    assert resp.status == 304 and resp.body == b"" and ("ETag", '"x"') in resp.headers


def test_invalid_range_headers() -> None:
    resp = to_response(S3Error.invalid_range(10, "bytes=20-"), "/b/k", "r")
    assert resp.status == 416 and ("Content-Range", "bytes */10") in resp.headers
    resp = to_response(domain.InvalidRange("no", size="7"), "/b/k", "r")
    assert resp.status == 416 and ("Content-Range", "bytes */7") in resp.headers


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (S3Error.malformed_xml(), "MalformedXML", 400),
        (S3Error.invalid_request("x"), "InvalidRequest", 400),
        (S3Error.not_implemented(), "NotImplemented", 501),
        (S3Error.method_not_allowed("PATCH"), "MethodNotAllowed", 405),
        (S3Error.entity_too_large(10, 5), "EntityTooLarge", 400),
        (S3Error.entity_too_small(), "EntityTooSmall", 400),
        (S3Error.key_too_long(2000), "KeyTooLongError", 400),
        (S3Error.metadata_too_large(3000, 2048), "MetadataTooLarge", 400),
        (S3Error.invalid_storage_class("X"), "InvalidStorageClass", 400),
        (S3Error.no_such_bucket_policy("b"), "NoSuchBucketPolicy", 404),
        (S3Error.no_such_cors_configuration("b"), "NoSuchCORSConfiguration", 404),
        (S3Error.no_such_tag_set("b"), "NoSuchTagSet", 404),
        (S3Error.missing_content_length(), "MissingContentLength", 411),
        (S3Error.invalid_digest(), "InvalidDigest", 400),
        (S3Error.request_header_section_too_large(9000, 8192), "RequestHeaderSectionTooLarge", 400),
        (S3Error.not_modified(), "NotModified", 304),
        (S3Error.precondition_failed("If-Match"), "PreconditionFailed", 412),
        (S3Error.invalid_uri(), "InvalidURI", 400),
        (S3Error.invalid_tag("x"), "InvalidTag", 400),
        (S3Error.invalid_part_order(), "InvalidPartOrder", 400),
        (
            S3Error.not_configured("NoSuchLifecycleConfiguration", "m", "b"),
            "NoSuchLifecycleConfiguration",
            404,
        ),
    ],
)
def test_constructors(error: S3Error, code: str, status: int) -> None:
    assert (error.code, error.status) == (code, status)
    assert resolve(error) is error
    body = to_response(error, "/r", "id").body
    if status != 304:
        assert ET.fromstring(body).findtext("Code") == code


def test_every_table_status_is_valid() -> None:
    assert all(100 <= s <= 599 for s in S3_CODE_STATUS.values())


def test_control_characters_in_resource_stay_parseable_by_lenient_readers() -> None:
    body = to_response(S3Error.no_such_key("a\x01b"), "/b/a\x01b", "r").body
    assert b"\x01" not in body and b"&#x1;" in body
