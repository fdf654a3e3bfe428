"""Fuzzing parse_request: only S3Error ever escapes; keys round-trip exactly."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import operations as op
from gateway.errors import S3Error
from gateway.router import parse_request

_HEADER_NAMES = [
    "content-length",
    "content-md5",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "expect",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "x-amz-copy-source",
    "x-amz-copy-source-range",
    "x-amz-copy-source-if-match",
    "x-amz-copy-source-if-modified-since",
    "x-amz-metadata-directive",
    "x-amz-tagging-directive",
    "x-amz-tagging",
    "x-amz-acl",
    "x-amz-storage-class",
    "x-amz-meta-a",
    "X-Amz-Meta-B",
    "x-amz-checksum-crc32",
    "x-amz-checksum-sha256",
    "x-amz-sdk-checksum-algorithm",
    "x-amz-checksum-algorithm",
    "x-amz-checksum-type",
    "x-amz-checksum-mode",
    "x-amz-decoded-content-length",
    "x-amz-trailer",
    "x-amz-object-attributes",
    "x-amz-max-parts",
    "x-amz-part-number-marker",
    "x-amz-bucket-object-lock-enabled",
    "origin",
    "access-control-request-method",
    "access-control-request-headers",
    "authorization",
]
_QUERY_WORDS = [
    "acl", "tagging", "uploads", "uploadId", "partNumber", "versionId", "delete", "location",
    "versioning", "cors", "policy", "lifecycle", "list-type", "max-keys", "prefix", "delimiter",
    "encoding-type", "continuation-token", "start-after", "fetch-owner", "marker", "versions",
    "attributes", "max-parts", "part-number-marker", "response-content-type", "select",
    "X-Amz-Signature", "logging", "max-uploads", "key-marker",
]  # fmt: skip
_values = st.one_of(
    st.text(max_size=30),
    st.text(alphabet='0123456789-=,*" bytesW/%+&?/abcAZ', max_size=30),
    st.sampled_from(["1", "2", "-1", "url", "*", "bytes=0-1", "REPLACE", "true", "", "null"]),
)
_query = st.lists(
    st.tuples(st.sampled_from(_QUERY_WORDS) | st.text(max_size=8), _values, st.booleans()),
    max_size=6,
).map(lambda items: "&".join(f"{k}={v}" if eq else k for k, v, eq in items))
_headers = st.lists(
    st.tuples(st.sampled_from(_HEADER_NAMES) | st.text(min_size=1, max_size=12), _values),
    max_size=10,
)
_path = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda t: "/" + t),
    st.builds(
        lambda b, k: f"/{b}/{k}",
        st.sampled_from(["bkt", "my.bucket", "B", "a..b", "xn--x", "ab", "%62kt"]),
        st.text(alphabet="ab/%2F0.+ %zé", max_size=40),
    ),
)
_method = st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"]) | st.text(max_size=8)
_host = st.one_of(
    st.none(),
    st.sampled_from(["127.0.0.1:9000", "bkt.s3.local", "s3.local", "[::1]:9000", "X.S3.LOCAL:1"]),
    st.text(max_size=20),
)
_domain = st.sampled_from([None, "s3.local", "", "s3.local:9000"]) | st.text(max_size=10)


@settings(deadline=None, max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(_method, _path, _query | st.binary(max_size=40), _headers, _host, _domain)
def test_only_s3_errors_escape(
    method: str,
    path: str | bytes,
    query: str | bytes,
    headers: list[tuple[str, str]],
    host: str | None,
    domain: str | None,
) -> None:
    try:
        result = parse_request(method, path, query, headers, host, domain)
    except S3Error as e:
        assert 300 <= e.status <= 599
        return
    assert isinstance(result, op.S3Operation)
    key = getattr(result, "key", None)
    if key is not None:
        assert 0 < len(key.encode("utf-8")) <= 1024


_keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300
).filter(lambda k: len(k.encode("utf-8")) <= 1024)


@settings(deadline=None, max_examples=300)
@given(_keys, st.sampled_from(["", "/", "/+", "/+~!$&'()*,;=:@"]))
def test_keys_round_trip_path_style(key: str, safe: str) -> None:
    got = parse_request("GET", "/bkt/" + quote(key, safe=safe), "", [], "localhost", None)
    assert isinstance(got, op.GetObject) and got.key == key


@settings(deadline=None, max_examples=200)
@given(_keys)
def test_keys_round_trip_virtual_host(key: str) -> None:
    got = parse_request("PUT", "/" + quote(key, safe="/"), "", [("content-length", "0")],
                        "bkt.s3.local:9000", "s3.local")  # fmt: skip
    assert isinstance(got, op.PutObject) and (got.bucket, got.key) == ("bkt", key)


@settings(deadline=None, max_examples=200)
@given(_keys, _keys)
def test_copy_source_round_trip(src_key: str, dst_key: str) -> None:
    got = parse_request(
        "PUT",
        "/dst/" + quote(dst_key, safe=""),
        "",
        [("x-amz-copy-source", "src/" + quote(src_key, safe="/"))],
        "localhost",
        None,
    )
    assert isinstance(got, op.CopyObject) and got.source == op.CopySource("src", src_key)
    assert got.key == dst_key


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=50))
def test_prefix_round_trip(prefix: str) -> None:
    q = "list-type=2&prefix=" + quote(prefix.encode("utf-8", "surrogatepass"), safe="")
    try:
        got = parse_request("GET", "/bkt", q, [], "localhost", None)
    except S3Error as e:  # lone surrogates are not UTF-8
        assert e.code == "InvalidURI"
        return
    assert isinstance(got, op.ListObjectsV2) and got.prefix == prefix
