"""parse_request: addressing, key decoding, operation selection and parameter validation."""

from __future__ import annotations

import pytest

from gateway import operations as op
from gateway.conditions import WriteConditions
from gateway.errors import S3Error
from gateway.router import Headers, is_valid_bucket_name, parse_query, parse_request

MD5_B64 = "1B2M2Y8AsgTpgAmY7PhCfg=="  # md5(b"")
CRC32_B64 = "AAAAAA=="


def parse(
    method: str,
    path: str | bytes,
    query: str = "",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    host: str | None = "127.0.0.1:9000",
    domain: str | None = None,
) -> op.S3Operation:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    return parse_request(method, path, query, items, host, domain)


def error(*args: object, **kwargs: object) -> S3Error:
    with pytest.raises(S3Error) as info:
        parse(*args, **kwargs)  # type: ignore[arg-type]
    return info.value


PUT = {"content-length": "0"}


# -- addressing and keys ----------------------------------------------------------------
def test_list_buckets() -> None:
    assert parse("GET", "/") == op.ListBuckets()
    assert error("PUT", "/").status == 405


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("/bkt/a%20b", "a b"),
        ("/bkt/a+b", "a+b"),
        ("/bkt/a%2Bb", "a+b"),
        ("/bkt/a%2520b", "a%20b"),
        ("/bkt/../etc/passwd", "../etc/passwd"),
        ("/bkt//x//y/", "/x//y/"),
        ("/bkt/dir/", "dir/"),
        ("/bkt/%E2%82%AC%C3%BC", "€ü"),
        ("/bkt/a%2Fb", "a/b"),
        ("/bkt/./x", "./x"),
    ],
)
def test_keys_are_decoded_once_never_normalised(raw: str, key: str) -> None:
    got = parse("GET", raw)
    assert isinstance(got, op.GetObject) and got.bucket == "bkt" and got.key == key


def test_raw_utf8_bytes_path() -> None:
    got = parse("HEAD", "/bkt/ü€".encode())
    assert isinstance(got, op.HeadObject) and got.key == "ü€"


@pytest.mark.parametrize("raw", ["/bkt/a%zz", "/bkt/a%", "/bkt/%ff%fe", "bkt/k", ""])
def test_bad_uris(raw: str) -> None:
    assert error("GET", raw).code == "InvalidURI"


def test_key_length_limit() -> None:
    assert isinstance(parse("HEAD", "/bkt/" + "a" * 1024), op.HeadObject)
    assert isinstance(parse("HEAD", "/bkt/" + "é" * 512), op.HeadObject)
    e = error("HEAD", "/bkt/" + "a" * 1025)
    assert e.code == "KeyTooLongError" and e.status == 400
    assert error("HEAD", "/bkt/" + "é" * 513).code == "KeyTooLongError"


def test_virtual_host_style() -> None:
    got = parse("GET", "/some/key", host="my.bucket.s3.example.com:9000", domain="s3.example.com")
    assert isinstance(got, op.GetObject) and (got.bucket, got.key) == ("my.bucket", "some/key")
    got = parse("GET", "/", host="Bkt.S3.Example.com", domain="s3.example.com")
    assert got == op.ListObjects(bucket="bkt")
    # the bare domain, IPs and other hosts are path-style
    assert parse("GET", "/", host="s3.example.com", domain="s3.example.com") == op.ListBuckets()
    got = parse("GET", "/bkt/k", host="127.0.0.1:9000", domain="s3.example.com")
    assert isinstance(got, op.GetObject) and (got.bucket, got.key) == ("bkt", "k")
    got = parse("GET", "/bkt/k", host="[::1]:9000", domain="s3.example.com")
    assert isinstance(got, op.GetObject) and got.bucket == "bkt"
    got = parse("GET", "/bkt/k", host=None, domain="s3.example.com")
    assert isinstance(got, op.GetObject) and got.bucket == "bkt"


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "Bucket",
        "a_b",
        "-ab",
        "ab-",
        "a..b",
        "a.-b",
        "192.168.1.1",
        "xn--ab",
        "ab-s3alias",
        "a b",
    ],
)
def test_invalid_bucket_names(name: str) -> None:
    assert not is_valid_bucket_name(name)
    assert error("PUT", "/" + name.replace(" ", "%20"), headers=PUT).code == "InvalidBucketName"


@pytest.mark.parametrize("name", ["abc", "a" * 63, "my.bucket-1", "1bucket", "a-b.c"])
def test_valid_bucket_names(name: str) -> None:
    assert is_valid_bucket_name(name)
    assert parse("PUT", "/" + name, headers=PUT) == op.CreateBucket(bucket=name)


def test_headers_multimap() -> None:
    h = Headers([("X-A", "1"), ("x-a", "2"), ("B", "3")])
    assert h.get("x-A") == "1,2" and h.get_all("X-A") == ("1", "2") and h.get("c") is None
    assert "b" in h and "c" not in h and 5 not in h
    assert Headers.from_raw([(b"Host", b"\xe9")]).get("host") == "é"


def test_query_decoding() -> None:
    assert parse_query("prefix=a+b%2Bc&x&y=1&y=2") == {"prefix": "a b+c", "x": "", "y": "1"}
    assert parse_query(b"") == {}


def test_header_section_limit() -> None:
    e = error("GET", "/bkt/k", headers={"x-big": "a" * 9000})
    assert e.code == "RequestHeaderSectionTooLarge" and e.status == 400


def test_unknown_method() -> None:
    e = error("PATCH", "/bkt/k")
    assert e.code == "MethodNotAllowed" and e.status == 405


# -- bucket operations ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "query", "cls"),
    [
        ("HEAD", "", op.HeadBucket),
        ("DELETE", "", op.DeleteBucket),
        ("GET", "location", op.GetBucketLocation),
        ("GET", "versioning", op.GetBucketVersioning),
        ("PUT", "versioning", op.PutBucketVersioning),
        ("GET", "tagging", op.GetBucketTagging),
        ("PUT", "tagging", op.PutBucketTagging),
        ("DELETE", "tagging", op.DeleteBucketTagging),
        ("GET", "cors", op.GetBucketCors),
        ("PUT", "cors", op.PutBucketCors),
        ("DELETE", "cors", op.DeleteBucketCors),
        ("GET", "acl", op.GetBucketAcl),
        ("PUT", "acl", op.PutBucketAcl),
        ("GET", "policy", op.GetBucketPolicy),
        ("DELETE", "policy", op.DeleteBucketPolicy),
        ("DELETE", "lifecycle", op.DeleteBucketLifecycle),
        ("GET", "uploads", op.ListMultipartUploads),
        ("GET", "versions", op.ListObjectVersions),
        ("GET", "", op.ListObjects),
        ("GET", "list-type=2", op.ListObjectsV2),
        ("POST", "delete", op.DeleteObjects),
        ("PUT", "", op.CreateBucket),
        ("PUT", "policy", op.Unsupported),
        ("PUT", "lifecycle", op.Unsupported),
        ("POST", "", op.Unsupported),
        ("GET", "analytics", op.Unsupported),
    ],
)
def test_bucket_dispatch(method: str, query: str, cls: type) -> None:
    headers = {"content-md5": "1B2M2Y8AsgTpgAmY7PhCfg=="} if query == "delete" else {}
    assert type(parse(method, "/bkt", query, headers)) is cls
    assert type(parse(method, "/bkt/", query, headers)) is cls


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({}, False),
        ({"x-amz-sdk-checksum-algorithm": "CRC32"}, False),
        ({"x-amz-trailer": "x-amz-meta-foo"}, False),
        ({"content-md5": "1B2M2Y8AsgTpgAmY7PhCfg=="}, True),
        ({"x-amz-checksum-crc32": "AAAAAA=="}, True),
        ({"x-amz-checksum-sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}, True),
        ({"x-amz-trailer": "x-amz-checksum-crc32c"}, True),
    ],
)
def test_delete_objects_requires_md5_or_checksum(headers: dict[str, str], ok: bool) -> None:
    """S3: Content-MD5 or an x-amz-checksum-* (header, or trailer) is required."""
    if ok:
        assert isinstance(parse("POST", "/bkt", "delete", headers), op.DeleteObjects)
    else:
        with pytest.raises(S3Error) as exc:
            parse("POST", "/bkt", "delete", headers)
        assert exc.value.code == "InvalidRequest" and exc.value.status == 400
        assert "Content-MD5" in exc.value.message


@pytest.mark.parametrize(
    "storage_class",
    [
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER_IR",
    ],
)
def test_online_storage_classes_accepted(storage_class: str) -> None:
    got = parse("PUT", "/bkt/k", "", {"x-amz-storage-class": storage_class, "content-length": "0"})
    assert isinstance(got, op.PutObject) and got.storage_class == storage_class
    got = parse("POST", "/bkt/k", "uploads", {"x-amz-storage-class": storage_class})
    assert isinstance(got, op.CreateMultipartUpload) and got.storage_class == storage_class


@pytest.mark.parametrize(
    "storage_class", ["GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "EXPRESS_ONEZONE", "standard", "X"]
)
def test_archive_and_unknown_storage_classes_refused(storage_class: str) -> None:
    with pytest.raises(S3Error) as exc:
        parse("PUT", "/bkt/k", "", {"x-amz-storage-class": storage_class, "content-length": "0"})
    assert exc.value.code == "InvalidStorageClass"


@pytest.mark.parametrize(
    ("sub", "code"),
    [
        ("lifecycle", "NoSuchLifecycleConfiguration"),
        ("encryption", "ServerSideEncryptionConfigurationNotFoundError"),
        ("website", "NoSuchWebsiteConfiguration"),
        ("object-lock", "ObjectLockConfigurationNotFoundError"),
        ("logging", None),
        ("notification", None),
    ],
)
def test_unconfigured_subresources(sub: str, code: str | None) -> None:
    got = parse("GET", "/bkt", sub)
    assert isinstance(got, op.GetBucketConfiguration) and got.error_code == code
    assert (got.empty_document is None) == (code is not None)


def test_create_bucket_params() -> None:
    got = parse(
        "PUT",
        "/bkt",
        headers={"x-amz-acl": "public-read", "x-amz-bucket-object-lock-enabled": "True"},
    )
    assert got == op.CreateBucket(bucket="bkt", acl="public-read", object_lock_enabled=True)
    assert error("PUT", "/bkt", headers={"x-amz-acl": "nope"}).code == "InvalidArgument"


def test_list_objects_v2_params() -> None:
    got = parse(
        "GET",
        "/bkt",
        "list-type=2&prefix=a%2Fb+c&delimiter=%2F&max-keys=50&continuation-token=tok"
        "&start-after=x&fetch-owner=true&encoding-type=url",
    )
    assert got == op.ListObjectsV2(
        bucket="bkt",
        prefix="a/b c",
        delimiter="/",
        max_keys=50,
        continuation_token="tok",
        start_after="x",
        fetch_owner=True,
        encoding_type="url",
    )
    got = parse("GET", "/bkt", "list-type=2&max-keys=5000&delimiter=")
    assert isinstance(got, op.ListObjectsV2) and got.max_keys == 1000 and got.delimiter is None


@pytest.mark.parametrize(
    "query",
    [
        "list-type=2&max-keys=-1",
        "list-type=2&max-keys=abc",
        "list-type=2&max-keys=1.5",
        "list-type=2&max-keys=99999999999",
        "list-type=2&encoding-type=base64",
        "list-type=3",
        "list-type=2&continuation-token=",
        "max-keys=-5",
        "uploads&max-uploads=x",
        "versions&encoding-type=xml",
    ],
)
def test_list_param_errors(query: str) -> None:
    e = error("GET", "/bkt", query)
    assert e.code == "InvalidArgument" and e.status == 400


def test_list_objects_v1_params() -> None:
    got = parse("GET", "/bkt", "marker=m&prefix=p&delimiter=%2F&max-keys=0")
    assert got == op.ListObjects(bucket="bkt", prefix="p", delimiter="/", marker="m", max_keys=0)


def test_delete_objects_payload() -> None:
    got = parse(
        "POST",
        "/bkt",
        "delete",
        {"content-md5": MD5_B64, "x-amz-checksum-crc32": CRC32_B64, "content-length": "10"},
    )
    assert isinstance(got, op.DeleteObjects)
    assert got.payload.content_md5 is not None and len(got.payload.content_md5) == 16
    assert got.payload.checksum == op.ChecksumHeader("CRC32", CRC32_B64)


def test_cors_preflight() -> None:
    got = parse(
        "OPTIONS",
        "/bkt/k",
        headers={
            "origin": "https://x.example",
            "access-control-request-method": "PUT",
            "access-control-request-headers": "Content-Type, X-Amz-Date",
        },
    )
    assert got == op.CorsPreflight(
        bucket="bkt",
        key="k",
        origin="https://x.example",
        request_method="PUT",
        request_headers=("content-type", "x-amz-date"),
    )
    assert error("OPTIONS", "/bkt", headers={"access-control-request-method": "GET"}).status == 400
    assert error("OPTIONS", "/bkt", headers={"origin": "o"}).status == 400


# -- object operations ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "query", "headers", "cls"),
    [
        ("GET", "", {}, op.GetObject),
        ("HEAD", "", {}, op.HeadObject),
        ("PUT", "", PUT, op.PutObject),
        ("PUT", "", {"x-amz-copy-source": "/src/k"}, op.CopyObject),
        ("DELETE", "", {}, op.DeleteObject),
        ("GET", "acl", {}, op.GetObjectAcl),
        ("PUT", "acl", {}, op.PutObjectAcl),
        ("GET", "tagging", {}, op.GetObjectTagging),
        ("PUT", "tagging", {}, op.PutObjectTagging),
        ("DELETE", "tagging", {}, op.DeleteObjectTagging),
        (
            "GET",
            "attributes",
            {"x-amz-object-attributes": "ETag,ObjectSize"},
            op.GetObjectAttributes,
        ),
        ("POST", "uploads", {}, op.CreateMultipartUpload),
        ("PUT", "partNumber=1&uploadId=u", PUT, op.UploadPart),
        ("PUT", "partNumber=1&uploadId=u", {"x-amz-copy-source": "src/k"}, op.UploadPartCopy),
        ("POST", "uploadId=u", {}, op.CompleteMultipartUpload),
        ("DELETE", "uploadId=u", {}, op.AbortMultipartUpload),
        ("GET", "uploadId=u", {}, op.ListParts),
        ("POST", "select&select-type=2", {}, op.Unsupported),
        ("POST", "restore", {}, op.Unsupported),
        ("GET", "torrent", {}, op.Unsupported),
        ("PUT", "retention", {}, op.Unsupported),
    ],
)
def test_object_dispatch(method: str, query: str, headers: dict[str, str], cls: type) -> None:
    assert type(parse(method, "/bkt/key", query, headers)) is cls


def test_put_object_fields() -> None:
    got = parse(
        "PUT",
        "/bkt/dir/file.txt",
        headers=[
            ("Content-Length", "11"),
            ("Content-Type", "text/plain"),
            ("Content-Encoding", "aws-chunked,gzip"),
            ("Content-Disposition", "attachment"),
            ("Content-Language", "en"),
            ("Cache-Control", "no-cache"),
            ("Expires", "Thu, 01 Dec 1994 16:00:00 GMT"),
            ("X-Amz-Meta-Mtime", "1700000000"),
            ("x-amz-meta-MD5chksum", "abc"),
            ("x-amz-tagging", "a=1&b=two+words&c=%2B"),
            ("x-amz-acl", "private"),
            ("x-amz-storage-class", "STANDARD"),
            ("Content-MD5", MD5_B64),
            ("x-amz-checksum-crc32", CRC32_B64),
            ("x-amz-sdk-checksum-algorithm", "crc32"),
            ("If-None-Match", "*"),
            ("Expect", "100-continue"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ],
    )
    assert isinstance(got, op.PutObject)
    assert got.headers == op.ObjectHeaders(
        content_type="text/plain",
        content_encoding="gzip",
        content_disposition="attachment",
        content_language="en",
        cache_control="no-cache",
        expires="Thu, 01 Dec 1994 16:00:00 GMT",
        user_metadata=(("md5chksum", "abc"), ("mtime", "1700000000")),
    )
    assert got.tagging == (op.Tag("a", "1"), op.Tag("b", "two words"), op.Tag("c", "+"))
    assert got.acl == "private" and got.storage_class == "STANDARD"
    assert got.write_conditions.if_none_match_any
    p = got.payload
    assert p.content_length == 11 and p.object_size == 11 and p.expect_continue
    assert p.checksum == op.ChecksumHeader("CRC32", CRC32_B64)
    assert p.sdk_checksum_algorithm == "CRC32" and p.content_sha256 == "UNSIGNED-PAYLOAD"


def test_aws_chunked_only_encoding_is_dropped() -> None:
    got = parse(
        "PUT",
        "/bkt/k",
        headers={
            "content-encoding": "aws-chunked",
            "transfer-encoding": "chunked",
            "x-amz-decoded-content-length": "5",
            "x-amz-trailer": "X-Amz-Checksum-Crc32",
        },
    )
    assert isinstance(got, op.PutObject)
    assert got.headers.content_encoding is None
    assert got.payload.is_chunked_transfer and got.payload.object_size == 5
    assert got.payload.content_length is None and got.payload.trailer == "x-amz-checksum-crc32"


@pytest.mark.parametrize(
    ("headers", "code", "status"),
    [
        ({}, "MissingContentLength", 411),
        ({**PUT, "x-amz-storage-class": "GLACIER"}, "InvalidStorageClass", 400),
        ({**PUT, "x-amz-acl": "everyone"}, "InvalidArgument", 400),
        ({**PUT, "content-md5": "not-base64!"}, "InvalidDigest", 400),
        ({**PUT, "content-md5": "AAAA"}, "InvalidDigest", 400),
        ({**PUT, "x-amz-checksum-crc32": "AAAAAAAA"}, "InvalidRequest", 400),
        (
            {**PUT, "x-amz-checksum-crc32": CRC32_B64, "x-amz-checksum-crc32c": CRC32_B64},
            "InvalidRequest",
            400,
        ),
        ({**PUT, "x-amz-sdk-checksum-algorithm": "MD4"}, "InvalidRequest", 400),
        (
            {**PUT, "x-amz-checksum-crc32": CRC32_B64, "x-amz-sdk-checksum-algorithm": "SHA1"},
            "InvalidRequest",
            400,
        ),
        ({**PUT, "x-amz-meta-big": "x" * 2100}, "MetadataTooLarge", 400),
        ({**PUT, "x-amz-tagging": "&".join(f"k{i}=v" for i in range(11))}, "InvalidTag", 400),
        ({**PUT, "x-amz-tagging": "a=1&a=2"}, "InvalidTag", 400),
        ({**PUT, "x-amz-tagging": "k=" + "v" * 257}, "InvalidTag", 400),
        ({**PUT, "if-none-match": '"abc"'}, "NotImplemented", 501),
        ({"content-length": "6000000000"}, "EntityTooLarge", 400),
        ({"content-length": "-1"}, "InvalidArgument", 400),
        ({"content-length": "12abc"}, "InvalidArgument", 400),
    ],
)
def test_put_object_errors(headers: dict[str, str], code: str, status: int) -> None:
    e = error("PUT", "/bkt/k", headers=headers)
    assert (e.code, e.status) == (code, status)


def test_reduced_redundancy_accepted() -> None:
    got = parse("PUT", "/bkt/k", headers={**PUT, "x-amz-storage-class": "REDUCED_REDUNDANCY"})
    assert isinstance(got, op.PutObject) and got.storage_class == "REDUCED_REDUNDANCY"


def test_metadata_limit_counts_names_and_values() -> None:
    ok = {**PUT, "x-amz-meta-a": "x" * 2047}
    assert isinstance(parse("PUT", "/bkt/k", headers=ok), op.PutObject)
    assert error("PUT", "/bkt/k", headers={**PUT, "x-amz-meta-ab": "x" * 2047}).code == (
        "MetadataTooLarge"
    )


def test_get_object_fields() -> None:
    got = parse(
        "GET",
        "/bkt/k",
        "versionId=null&response-content-type=text%2Fhtml&response-cache-control=no-store",
        {
            "range": "bytes=0-99",
            "if-match": '"abc"',
            "if-modified-since": "Thu, 26 Nov 2026 09:10:44 GMT",
            "x-amz-checksum-mode": "ENABLED",
            "authorization": "AWS4-HMAC-SHA256 ...",
        },
    )
    assert isinstance(got, op.GetObject)
    assert got.version_id == "null"
    assert got.range is not None and (got.range.first, got.range.last) == (0, 99)
    assert got.conditions.if_match == ("abc",) and got.conditions.if_modified_since is not None
    assert got.overrides.content_type == "text/html" and got.overrides.cache_control == "no-store"
    assert got.checksum_mode


def test_get_object_errors() -> None:
    assert error("GET", "/bkt/k", "response-content-type=x").code == "InvalidRequest"
    presigned = parse("GET", "/bkt/k", "response-content-type=x&X-Amz-Signature=abc")
    assert isinstance(presigned, op.GetObject)
    e = error("GET", "/bkt/k", "partNumber=1", {"range": "bytes=0-1"})
    assert e.code == "InvalidRequest"
    assert error("GET", "/bkt/k", "partNumber=0").code == "InvalidArgument"
    assert error("GET", "/bkt/k", "partNumber=10001").code == "InvalidArgument"
    assert error("GET", "/bkt/k", "versionId=").code == "InvalidArgument"
    got = parse("HEAD", "/bkt/k", "partNumber=3")
    assert isinstance(got, op.HeadObject) and got.part_number == 3


def test_invalid_range_is_ignored() -> None:
    got = parse("GET", "/bkt/k", headers={"range": "bytes=0-1,5-6"})
    assert isinstance(got, op.GetObject) and got.range is None


def test_copy_object() -> None:
    got = parse(
        "PUT",
        "/dst/new%20key",
        headers={
            "x-amz-copy-source": "/src/dir/a%20b%2Bc.txt?versionId=null",
            "x-amz-metadata-directive": "REPLACE",
            "x-amz-meta-mode": "0644",
            "content-type": "image/png",
            "x-amz-copy-source-if-match": '"e1"',
            "x-amz-copy-source-if-unmodified-since": "Thu, 26 Nov 2026 09:10:44 GMT",
        },
    )
    assert isinstance(got, op.CopyObject)
    assert got.key == "new key"
    assert got.source == op.CopySource("src", "dir/a b+c.txt", "null")
    assert got.metadata_directive == "REPLACE"
    assert got.headers.user_metadata == (("mode", "0644"),)
    assert got.headers.content_type == "image/png"
    assert got.source_conditions.if_match == ("e1",)
    assert got.source_conditions.if_unmodified_since is not None


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"x-amz-copy-source": "/bkt/k"}, "InvalidRequest"),  # copy onto itself, no change
        ({"x-amz-copy-source": "nokey"}, "InvalidArgument"),
        ({"x-amz-copy-source": "/src/"}, "InvalidArgument"),
        ({"x-amz-copy-source": "/src/k", "x-amz-metadata-directive": "MOVE"}, "InvalidArgument"),
        ({"x-amz-copy-source": "/src/k?versionId="}, "InvalidArgument"),
        ({"x-amz-copy-source": "/BAD_/k"}, "InvalidBucketName"),
        ({"x-amz-copy-source": "/src/%zz"}, "InvalidURI"),
    ],
)
def test_copy_object_errors(headers: dict[str, str], code: str) -> None:
    assert error("PUT", "/bkt/k", headers=headers).code == code


def test_copy_source_plus_is_space_like_s3() -> None:
    got = parse("PUT", "/bkt/k", headers={"x-amz-copy-source": "src/a+b%2Bc"})
    assert isinstance(got, op.CopyObject) and got.source.key == "a b+c"


def test_copy_onto_itself_allowed_with_replace_or_storage_class() -> None:
    for extra in ({"x-amz-metadata-directive": "REPLACE"}, {"x-amz-storage-class": "STANDARD"}):
        got = parse("PUT", "/bkt/k", headers={"x-amz-copy-source": "bkt/k", **extra})
        assert isinstance(got, op.CopyObject)


def test_multipart_operations() -> None:
    got = parse(
        "POST",
        "/bkt/k",
        "uploads",
        {"x-amz-checksum-algorithm": "crc32", "x-amz-meta-md5chksum": "x", "content-type": "a/b"},
    )
    assert isinstance(got, op.CreateMultipartUpload)
    assert got.checksum_algorithm == "CRC32" and got.headers.content_type == "a/b"
    got = parse(
        "PUT",
        "/bkt/k",
        "partNumber=7&uploadId=abc",
        {"content-length": "5", "x-amz-checksum-crc32": CRC32_B64},
    )
    assert isinstance(got, op.UploadPart)
    assert (got.upload_id, got.part_number, got.payload.content_length) == ("abc", 7, 5)
    got = parse(
        "PUT",
        "/bkt/k",
        "partNumber=2&uploadId=abc",
        {
            "x-amz-copy-source": "src/big",
            "x-amz-copy-source-range": "bytes=0-5242879",
            "x-amz-copy-source-if-match": '"etag"',
        },
    )
    assert isinstance(got, op.UploadPartCopy)
    assert got.source_range == (0, 5242879) and got.source_conditions.if_match == ("etag",)
    got = parse("GET", "/bkt/k", "uploadId=abc&max-parts=2000&part-number-marker=3")
    assert got == op.ListParts(
        bucket="bkt", key="k", upload_id="abc", max_parts=1000, part_number_marker=3
    )
    got = parse("POST", "/bkt/k", "uploadId=abc", {"if-none-match": "*"})
    assert isinstance(got, op.CompleteMultipartUpload) and got.write_conditions.if_none_match_any


@pytest.mark.parametrize(
    ("query", "headers", "code"),
    [
        ("uploadId=abc", PUT, "InvalidArgument"),  # no partNumber
        ("partNumber=1", PUT, "InvalidArgument"),  # no uploadId
        ("partNumber=0&uploadId=a", PUT, "InvalidArgument"),
        ("partNumber=x&uploadId=a", PUT, "InvalidArgument"),
        ("partNumber=1&uploadId=", PUT, "InvalidArgument"),
        ("partNumber=1&uploadId=a", {}, "MissingContentLength"),
        ("partNumber=1&uploadId=a", {"content-length": str(6 * 1024**3)}, "EntityTooLarge"),
        (
            "partNumber=1&uploadId=a",
            {"x-amz-copy-source": "src/k", "x-amz-copy-source-range": "bytes=5-"},
            "InvalidArgument",
        ),
    ],
)
def test_upload_part_errors(query: str, headers: dict[str, str], code: str) -> None:
    assert error("PUT", "/bkt/k", query, headers).code == code


def test_create_multipart_errors() -> None:
    assert error("POST", "/bkt/k", "uploads", {"x-amz-checksum-algorithm": "md5"}).code == (
        "InvalidRequest"
    )
    assert error("POST", "/bkt/k", "uploads", {"x-amz-checksum-type": "x"}).code == "InvalidRequest"


def test_get_object_attributes() -> None:
    got = parse(
        "GET",
        "/bkt/k",
        "attributes",
        {"x-amz-object-attributes": "ETag, ObjectParts,ETag", "x-amz-max-parts": "10"},
    )
    assert isinstance(got, op.GetObjectAttributes)
    assert got.attributes == ("ETag", "ObjectParts") and got.max_parts == 10
    assert error("GET", "/bkt/k", "attributes").code == "InvalidArgument"
    assert error("GET", "/bkt/k", "attributes", {"x-amz-object-attributes": "Foo"}).code == (
        "InvalidArgument"
    )


def test_delete_object_version_and_if_match() -> None:
    got = parse("DELETE", "/bkt/k", "versionId=null", {"if-match": '"e"'})
    assert got == op.DeleteObject(
        bucket="bkt",
        key="k",
        version_id="null",
        write_conditions=WriteConditions(if_match=("e",)),
    )


def test_operations_are_frozen() -> None:
    got = parse("GET", "/bkt/k")
    with pytest.raises(AttributeError):
        got.key = "x"  # type: ignore[misc]


def test_misc_dispatch_corners() -> None:
    got = parse("GET", "/", "max-buckets=5&prefix=a")
    assert got == op.ListBuckets(prefix="a", max_buckets=5)
    assert isinstance(parse("DELETE", "/bkt", "encryption"), op.Unsupported)
    assert isinstance(parse("POST", "/bkt/k"), op.Unsupported)
    got = parse("PUT", "/bkt/k", "&&x-id=PutObject&", {**PUT, "x-amz-tagging": "a=1&&b=2"})
    assert isinstance(got, op.PutObject) and len(got.tagging) == 2
    got = parse(
        "PUT", "/bkt/k", "", {"x-amz-copy-source": "src/k", "x-amz-tagging-directive": "replace"}
    )
    assert isinstance(got, op.CopyObject) and got.tagging_directive == "REPLACE"
    assert error("PUT", "/bkt/k", headers={**PUT, "x-amz-checksum-sha1": "!!!"}).code == (
        "InvalidRequest"
    )
    got = parse("PUT", "/bkt/k", headers={**PUT, "x-amz-meta-u": "\u20ac"})
    assert isinstance(got, op.PutObject) and got.headers.user_metadata == (("u", "\u20ac"),)
    assert Headers([("a", "1")]).items() == (("a", "1"),)


@pytest.mark.parametrize(
    ("method", "query", "headers"),
    [
        ("PUT", "", {**PUT, "x-amz-server-side-encryption-customer-algorithm": "AES256"}),
        ("PUT", "", {**PUT, "x-amz-server-side-encryption": "aws:kms"}),
        ("PUT", "", {**PUT, "x-amz-object-lock-mode": "GOVERNANCE"}),
        ("POST", "uploads", {"x-amz-object-lock-legal-hold": "ON"}),
        ("GET", "", {"x-amz-server-side-encryption-customer-algorithm": "AES256"}),
        ("PUT", "", {"x-amz-copy-source": "src/k", "x-amz-server-side-encryption": "aws:kms"}),
    ],
)
def test_unsupported_features_are_501(method: str, query: str, headers: dict[str, str]) -> None:
    e = error(method, "/bkt/k", query, headers)
    assert (e.code, e.status) == ("NotImplemented", 501)


def test_sse_s3_is_accepted() -> None:
    got = parse("PUT", "/bkt/k", headers={**PUT, "x-amz-server-side-encryption": "AES256"})
    assert isinstance(got, op.PutObject)


def test_custom_limits() -> None:
    from gateway.router import RouterLimits

    limits = RouterLimits(max_object_bytes=10, max_key_bytes=3, max_header_bytes=100)
    with pytest.raises(S3Error) as info:
        parse_request("PUT", "/bkt/k", "", [("content-length", "11")], None, None, limits=limits)
    assert info.value.code == "EntityTooLarge"
    with pytest.raises(S3Error) as info:
        parse_request("GET", "/bkt/abcd", "", [], None, None, limits=limits)
    assert info.value.code == "KeyTooLongError"


def test_complete_multipart_object_checksum_header() -> None:
    # the header is the whole object's expected checksum (b64, or COMPOSITE b64-N)
    got = parse(
        "POST",
        "/bkt/k",
        "uploadId=abc",
        {"x-amz-checksum-crc32": "AAAAAA==-12", "x-amz-checksum-type": "composite"},
    )
    assert isinstance(got, op.CompleteMultipartUpload)
    assert got.object_checksum == op.ChecksumHeader("CRC32", "AAAAAA==-12")
    assert got.checksum_type == "COMPOSITE"
    assert got.payload.checksum is None  # not a checksum of the XML body
    plain = parse("POST", "/bkt/k", "uploadId=abc", {"x-amz-checksum-sha1": "A" * 27 + "="})
    assert isinstance(plain, op.CompleteMultipartUpload)
    assert plain.object_checksum == op.ChecksumHeader("SHA1", "A" * 27 + "=")
    for bad in ("AAAAAA==-0", "AAAAAA==-x", "AAAAAA==-10001", "AAAA-3", "-3"):
        err = error("POST", "/bkt/k", "uploadId=abc", {"x-amz-checksum-crc32": bad})
        assert err.code == "InvalidRequest", bad
    # elsewhere the suffix is not allowed
    err = error("PUT", "/bkt/k", "", {**PUT, "x-amz-checksum-crc32": "AAAAAA==-2"})
    assert err.code == "InvalidRequest"
