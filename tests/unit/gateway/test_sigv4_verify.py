"""sigv4.verify: error paths, payload modes, the key cache, and sign/verify round trips."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.errors import AccessDenied, InvalidArgument
from gateway import sigv4
from gateway.sigv4 import PayloadMode, RequestParts

AK = "AKIDTEST"
SK = "secret/key+EXAMPLE"
SECRETS = {AK: SK}.get
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
HOST = ("Host", "localhost:9000")


def _signed(
    method: str = "GET",
    path: str = "/bkt/key",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    payload: str = sigv4.EMPTY_SHA256,
    now: datetime = NOW,
    region: str = "us-east-1",
) -> list[tuple[str, str]]:
    return sigv4.sign_request(
        method,
        path,
        query,
        [HOST, *(headers or [])],
        access_key=AK,
        secret=SK,
        region=region,
        now=now,
        payload_hash=payload,
    )


def _req(
    headers: list[tuple[str, str]], method: str = "GET", path: str = "/bkt/key", query: str = ""
) -> RequestParts:
    return RequestParts.build(method, path, query, headers)


def _replace(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [(k, value if k.lower() == name else v) for k, v in headers]


def _auth_header(credential: str, signed: str = "host;x-amz-date", sig: str = "0" * 64) -> str:
    return f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={sig}"


def test_round_trip_context() -> None:
    headers = _signed(headers=[("x-amz-meta-a", " b  c ")], region="moon-1")
    ctx = sigv4.verify(_req(headers), SECRETS, NOW)
    assert ctx.access_key == AK
    assert ctx.region == "moon-1"
    assert ctx.date == "20260301"
    assert ctx.amz_date == "20260301T120000Z"
    assert ctx.scope == "20260301/moon-1/s3/aws4_request"
    assert ctx.signing_key == sigv4.derive_signing_key(SK, "20260301", "moon-1")
    assert ctx.seed_signature == dict(headers)["Authorization"][-64:]
    assert ctx.signed_headers == ("host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-a")
    assert not ctx.is_presigned
    assert ctx.signature_version == 4


def test_unknown_access_key() -> None:
    with pytest.raises(sigv4.InvalidAccessKeyId) as info:
        sigv4.verify(_req(_signed()), {}.get, NOW)
    assert info.value.code == "InvalidAccessKeyId"
    assert info.value.details["AWSAccessKeyId"] == AK


def test_wrong_secret_reports_string_to_sign() -> None:
    with pytest.raises(sigv4.SignatureDoesNotMatch) as info:
        sigv4.verify(_req(_signed()), {AK: "other"}.get, NOW)
    assert info.value.details["StringToSign"].startswith("AWS4-HMAC-SHA256\n20260301T120000Z\n")
    assert "x-amz-date:20260301T120000Z" in info.value.details["CanonicalRequest"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("host", "evil:9000"), ("x-amz-date", "20260301T120001Z"), ("x-amz-meta-a", "other")],
)
def test_tampered_signed_header(name: str, value: str) -> None:
    headers = _signed(headers=[("x-amz-meta-a", "1")])
    with pytest.raises(sigv4.SignatureDoesNotMatch):
        sigv4.verify(_req(_replace(headers, name, value)), SECRETS, NOW)


def test_unsigned_header_and_path_query_tamper() -> None:
    headers = _signed(query="a=1")
    sigv4.verify(_req([*headers, ("User-Agent", "x")], query="a=1"), SECRETS, NOW)
    with pytest.raises(sigv4.SignatureDoesNotMatch):
        sigv4.verify(_req(headers, query="a=2"), SECRETS, NOW)
    with pytest.raises(sigv4.SignatureDoesNotMatch):
        sigv4.verify(_req(headers, path="/bkt/key2", query="a=1"), SECRETS, NOW)
    with pytest.raises(sigv4.SignatureDoesNotMatch):
        sigv4.verify(_req(headers, method="PUT", query="a=1"), SECRETS, NOW)


@pytest.mark.parametrize("delta_min", [-16, 16])
def test_clock_skew_rejected(delta_min: int) -> None:
    headers = _signed(now=NOW + timedelta(minutes=delta_min))
    with pytest.raises(sigv4.RequestTimeTooSkewed) as info:
        sigv4.verify(_req(headers), SECRETS, NOW)
    assert info.value.details["MaxAllowedSkewMilliseconds"] == "900000"


@pytest.mark.parametrize("delta_min", [-14, 14])
def test_clock_skew_within_window(delta_min: int) -> None:
    sigv4.verify(_req(_signed(now=NOW + timedelta(minutes=delta_min))), SECRETS, NOW)


def _manual_auth(headers: list[tuple[str, str]], signed: tuple[str, ...], payload: str) -> str:
    """Sign exactly ``signed`` headers with ``payload`` as the payload-hash line."""
    req = _req(headers)
    creq = sigv4.canonical_request(
        "GET",
        "/bkt/key",
        "",
        sigv4.canonical_headers(req.headers, signed),
        ";".join(signed),
        payload,
    )
    key = sigv4.derive_signing_key(SK, "20260301", "us-east-1")
    sts = sigv4.string_to_sign("20260301T120000Z", "20260301/us-east-1/s3/aws4_request", creq)
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    return _auth_header(f"{AK}/20260301/us-east-1/s3/aws4_request", ";".join(signed), sig)


def test_date_header_instead_of_x_amz_date() -> None:
    headers = [
        HOST,
        ("Date", "Sun, 01 Mar 2026 12:00:00 GMT"),
        ("x-amz-content-sha256", sigv4.EMPTY_SHA256),
    ]
    auth = _manual_auth(headers, ("date", "host", "x-amz-content-sha256"), sigv4.EMPTY_SHA256)
    ctx = sigv4.verify(_req([*headers, ("Authorization", auth)]), SECRETS, NOW)
    assert ctx.amz_date == "20260301T120000Z"


def test_missing_content_sha256_is_verified_as_empty_payload() -> None:
    headers = [HOST, ("x-amz-date", "20260301T120000Z")]
    auth = _manual_auth(headers, ("host", "x-amz-date"), sigv4.EMPTY_SHA256)
    ctx = sigv4.verify(_req([*headers, ("Authorization", auth)]), SECRETS, NOW)
    assert ctx.payload_mode is PayloadMode.SHA256
    assert ctx.payload_sha256 == sigv4.EMPTY_SHA256
    verifier = ctx.payload_verifier()
    assert verifier is not None
    verifier.update(b"smuggled")
    with pytest.raises(sigv4.XAmzContentSHA256Mismatch):
        verifier.finish()
    unsigned = _manual_auth(headers, ("host", "x-amz-date"), sigv4.UNSIGNED_PAYLOAD)
    with pytest.raises(sigv4.SignatureDoesNotMatch):
        sigv4.verify(_req([*headers, ("Authorization", unsigned)]), SECRETS, NOW)


def test_missing_date() -> None:
    auth = _auth_header(f"{AK}/20260301/us-east-1/s3/aws4_request", "host")
    with pytest.raises(AccessDenied, match="Date or x-amz-date"):
        sigv4.verify(_req([HOST, ("Authorization", auth)]), SECRETS, NOW)


CRED = f"{AK}/20260301/us-east-1/s3/aws4_request"


@pytest.mark.parametrize(
    "authorization",
    [
        f"AWS4-HMAC-SHA256 Credential={CRED}, SignedHeaders=host",
        f"AWS4-HMAC-SHA256 Credential={CRED} SignedHeaders=host Signature=00",
        _auth_header(f"{AK}/20260301/us-east-1/s3"),
        _auth_header(f"{AK}/20260301/us-east-1/ec2/aws4_request"),
        _auth_header(f"{AK}/20260301/us-east-1/s3/aws5_request"),
        _auth_header(f"{AK}/2026031/us-east-1/s3/aws4_request"),
        _auth_header(f"{AK}/20260302/us-east-1/s3/aws4_request"),
        _auth_header(f"{AK}/20260301//s3/aws4_request"),
        _auth_header(CRED, signed="x-amz-date"),
        _auth_header(CRED, signed="host;;x-amz-date"),
        "AWS4-ECDSA-P256-SHA256 Credential=x",
    ],
)
def test_malformed_authorization(authorization: str) -> None:
    headers = [HOST, ("x-amz-date", "20260301T120000Z"), ("Authorization", authorization)]
    with pytest.raises(sigv4.AuthorizationHeaderMalformed):
        sigv4.verify(_req(headers), SECRETS, NOW)


def test_authorization_without_spaces_after_commas() -> None:
    headers = _signed()
    auth = dict(headers)["Authorization"].replace(", ", ",")
    sigv4.verify(_req(_replace(headers, "authorization", auth)), SECRETS, NOW)


@pytest.mark.parametrize("bad", ["é" * 64, "ZZ", "", "0" * 64])
def test_bad_signature_values_never_crash(bad: str) -> None:
    headers = _signed()
    auth = dict(headers)["Authorization"][:-64] + bad
    with pytest.raises(sigv4.SignatureDoesNotMatch):
        sigv4.verify(_req(_replace(headers, "authorization", auth)), SECRETS, NOW)


def test_anonymous_and_double_auth() -> None:
    with pytest.raises(AccessDenied):
        sigv4.verify(_req([HOST]), SECRETS, NOW)
    with pytest.raises(InvalidArgument):
        sigv4.verify(_req(_signed(), query="X-Amz-Algorithm=AWS4-HMAC-SHA256"), SECRETS, NOW)


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("UNSIGNED-PAYLOAD", PayloadMode.UNSIGNED),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", PayloadMode.STREAMING_SIGNED),
        ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", PayloadMode.STREAMING_UNSIGNED_TRAILER),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", PayloadMode.STREAMING_SIGNED_TRAILER),
        ("ab" * 32, PayloadMode.SHA256),
        ("AB" * 32, PayloadMode.SHA256),
    ],
)
def test_payload_modes(value: str, mode: PayloadMode) -> None:
    ctx = sigv4.verify(_req(_signed(method="PUT", payload=value), method="PUT"), SECRETS, NOW)
    assert ctx.payload_mode is mode
    assert (ctx.payload_sha256 is not None) == (mode is PayloadMode.SHA256)
    assert mode.is_aws_chunked == (value.startswith("STREAMING"))


@pytest.mark.parametrize(
    "value",
    ["", "ab" * 31, "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "unsigned-payload", "zz" * 32],
)
def test_invalid_content_sha256(value: str) -> None:
    headers = _signed(method="PUT", payload=value)
    with pytest.raises(InvalidArgument) as info:
        sigv4.verify(_req(headers, method="PUT"), SECRETS, NOW)
    assert info.value.details["ArgumentName"] == "x-amz-content-sha256"


def test_payload_mode_defaults() -> None:
    mode, line = sigv4.payload_mode_of(None, is_presigned=False)
    assert (mode, line) == (PayloadMode.SHA256, sigv4.EMPTY_SHA256)
    assert sigv4.payload_mode_of(None, is_presigned=True) == (
        PayloadMode.UNSIGNED,
        sigv4.UNSIGNED_PAYLOAD,
    )


def test_payload_verifier_streaming() -> None:
    body = bytes(range(256)) * 100
    v = sigv4.PayloadHashVerifier(hashlib.sha256(body).hexdigest().upper())
    for i in range(0, len(body), 777):
        v.update(memoryview(body)[i : i + 777])
    v.finish()
    assert v.size_bytes == len(body)
    bad = sigv4.PayloadHashVerifier(hashlib.sha256(body).hexdigest())
    bad.update(body[:-1])
    with pytest.raises(sigv4.XAmzContentSHA256Mismatch):
        bad.finish()


# -- presigned ----------------------------------------------------------------------------
def _presigned(expires_s: int = 600, path: str = "/bkt/k", query: str = "") -> RequestParts:
    q = sigv4.presign_url(
        "GET",
        path,
        query,
        "localhost:9000",
        access_key=AK,
        secret=SK,
        region="r1",
        now=NOW,
        expires_s=expires_s,
    )
    return _req([HOST], path=path, query=q)


def test_presigned_window() -> None:
    req = _presigned(600)
    assert sigv4.verify(req, SECRETS, NOW + timedelta(seconds=600)).region == "r1"
    with pytest.raises(AccessDenied, match="Request has expired"):
        sigv4.verify(req, SECRETS, NOW + timedelta(seconds=601))
    with pytest.raises(AccessDenied, match="not valid yet"):
        sigv4.verify(req, SECRETS, NOW - timedelta(minutes=16))


def test_presigned_with_operation_params() -> None:
    req = _presigned(query="response-content-type=text%2Fplain&versionId=null")
    sigv4.verify(req, SECRETS, NOW)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda q: q.replace("X-Amz-Expires=600", "X-Amz-Expires=604801"), "less than a week"),
        (lambda q: q.replace("X-Amz-Expires=600", "X-Amz-Expires=-1"), "number"),
        (lambda q: q.replace("&X-Amz-Expires=600", ""), "requires"),
        (lambda q: q.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), "only supports"),
        (lambda q: q.replace("20260301T120000Z", "20260301T12"), "ISO8601"),
        (lambda q: q.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x"), "host"),
    ],
)
def test_presigned_malformed(edit: object, needle: str) -> None:
    req = _presigned()
    assert callable(edit)
    broken = _req([HOST], path="/bkt/k", query=edit(str(req.query_string)))
    with pytest.raises(sigv4.AuthorizationQueryParametersError, match=needle):
        sigv4.verify(broken, SECRETS, NOW)


def test_presign_rejects_bad_expiry() -> None:
    with pytest.raises(ValueError):
        _presigned(expires_s=sigv4.MAX_PRESIGN_EXPIRES_S + 1)


# -- key cache ------------------------------------------------------------------------------
def test_signing_key_cache_hits_rotation_and_bound() -> None:
    cache = sigv4.SigningKeyCache(max_entries=2)
    k1 = cache.get("a", "s1", "20260301", "r", "s3")
    assert cache.get("a", "s1", "20260301", "r", "s3") is k1
    k2 = cache.get("a", "s2", "20260301", "r", "s3")  # rotated secret
    assert k2 != k1 and k2 == sigv4.derive_signing_key("s2", "20260301", "r")
    cache.get("b", "s", "20260301", "r", "s3")
    cache.get("c", "s", "20260301", "r", "s3")
    assert len(cache) == 2
    req = _req(_signed())
    sigv4.verify(req, SECRETS, NOW, key_cache=cache)
    assert len(cache) == 2


# -- canonical forms ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("", "/"),
        ("/a b", "/a%20b"),
        ("/a%20b", "/a%20b"),
        ("/a+b", "/a%2Bb"),
        ("/a%2Bb", "/a%2Bb"),
        ("/a//b/../c/./d", "/a//b/../c/./d"),
        ("/%7e~%2a*", "/~~%2A%2A"),
        ("/%e2%82%ac", "/%E2%82%AC"),
        ("/€", "/%E2%82%AC"),
        ("/100%", "/100%25"),
    ],
)
def test_canonical_uri(raw: str, canonical: str) -> None:
    assert sigv4.canonical_uri(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("", ""),
        ("acl", "acl="),
        ("b=2&a=1&a=0", "a=0&a=1&b=2"),
        ("x=a%20b&y=a+b", "x=a%20b&y=a%2Bb"),
        ("k=%2f/", "k=%2F%2F"),
        ("&&a=&", "a="),
        ("X-Amz-Signature=abc&a=1", "X-Amz-Signature=abc&a=1"),
        ("B=1&a=1", "B=1&a=1"),
    ],
)
def test_canonical_query(raw: str, canonical: str) -> None:
    assert sigv4.canonical_query(raw) == canonical


def test_canonical_query_excludes_signature_when_presigned() -> None:
    assert sigv4.canonical_query("X-Amz-Signature=abc&a=1", exclude_signature=True) == "a=1"


def test_canonical_headers_trim_and_join() -> None:
    req = _req([("A", "  x   y  "), ("b", "1"), ("B", " 2 "), ("c", "\tz\t")])
    assert sigv4.canonical_headers(req.headers, ("a", "b", "c")) == b"a:x y\nb:1,2\nc:z\n"


_key_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(
    key=_key_text,
    qv=st.lists(
        st.tuples(
            _key_text.filter(lambda k: not k.lower().startswith("x-amz-")),
            st.text(max_size=10),
        ),
        max_size=4,
    ),
    meta=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
)
def test_round_trip_property(key: str, qv: list[tuple[str, str]], meta: str) -> None:
    path = "/bkt/" + sigv4.uri_encode(key, keep_slash=True)
    query = "&".join(
        f"{sigv4.uri_encode(k, keep_slash=False)}={sigv4.uri_encode(v, keep_slash=False)}"
        for k, v in qv
    )
    headers = _signed(path=path, query=query, headers=[("x-amz-meta-m", meta)])
    sigv4.verify(_req(headers, path=path, query=query), SECRETS, NOW)
    q = sigv4.presign_url(
        "GET", path, query, "localhost:9000", access_key=AK, secret=SK, region="r", now=NOW
    )
    sigv4.verify(_req([HOST], path=path, query=q), SECRETS, NOW)


def test_sigv2_query_missing_params() -> None:
    with pytest.raises(sigv4.AuthorizationQueryParametersError):
        sigv4.verify(_req([HOST], query="Signature=abc&Expires=1"), SECRETS, NOW)
    with pytest.raises(sigv4.InvalidAccessKeyId):
        sigv4.verify(
            _req([HOST], query="AWSAccessKeyId=nobody&Signature=abc&Expires=1"), SECRETS, NOW
        )


def test_asgi_shaped_bytes_input() -> None:
    """What starlette hands over: scope['raw_path'], scope['query_string'], scope['headers']."""
    headers = _signed(
        path="/bkt/a%20b%2Bc", query="prefix=x%2Fy&list-type=2", headers=[("X-Amz-Meta-A", "1")]
    )
    scope_headers = [(k.lower().encode(), v.encode()) for k, v in headers]
    scope_headers.append((b"x-amz-meta-a", b"2"))  # a repeated header the client did not sign
    req = RequestParts.build("GET", b"/bkt/a%20b%2Bc", b"prefix=x%2Fy&list-type=2", scope_headers)
    with pytest.raises(sigv4.SignatureDoesNotMatch):
        sigv4.verify(req, SECRETS, NOW)  # the repeat changes the signed header's value
    req = RequestParts.build(
        "GET", b"/bkt/a%20b%2Bc", b"prefix=x%2Fy&list-type=2", scope_headers[:-1]
    )
    assert sigv4.verify(req, SECRETS, NOW).access_key == AK


def test_stray_x_amz_signature_param_in_header_signed_request() -> None:
    headers = _signed(query="X-Amz-Signature=&a=1")
    sigv4.verify(_req(headers, query="X-Amz-Signature=&a=1"), SECRETS, NOW)
