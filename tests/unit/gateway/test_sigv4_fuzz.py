"""Hostile input never crashes the verifier or the decoder: only typed errors come out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blobstore.errors import BlobstoreError
from gateway import sigv4
from gateway.chunked import AwsChunkedDecoder, ChunkSigningContext
from gateway.sigv4 import AuthError, PayloadMode, RequestParts

# the slow variants' budget: ~30 s each on a 2-core CI machine (20,000 took 60-70 s)
LONG_EXAMPLES = 8_000

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SECRETS = {"AK": "SK"}.get
_TYPED = (AuthError, BlobstoreError)

_auth_fragments = st.sampled_from(
    [
        "AWS4-HMAC-SHA256 ",
        "Credential=AK/20260301/us-east-1/s3/aws4_request",
        "Credential=",
        "SignedHeaders=host;x-amz-date",
        "SignedHeaders=hóst;ä",
        "Signature=" + "a" * 64,
        "Signature=é",
        ",",
        ", ",
        "=",
        "/",
        "AWS AK:sig",
        "\x00",
        "ü",
    ]
)


def _mostly(good: str) -> st.SearchStrategy[str]:
    """The right value three times in four, anything otherwise."""
    return st.one_of(st.just(good), st.just(good), st.just(good), st.text(max_size=8))


_structured = st.builds(
    lambda ak, d, r, svc, term, names, sig, sep: (
        f"AWS4-HMAC-SHA256 Credential={ak}/{d}/{r}/{svc}/{term}{sep}"
        f"SignedHeaders={';'.join(names)}{sep}Signature={sig}"
    ),
    _mostly("AK"),
    _mostly("20260301"),
    _mostly("us-east-1"),
    _mostly("s3"),
    _mostly("aws4_request"),
    st.lists(_mostly("host"), min_size=1, max_size=3),
    st.one_of(st.just("a" * 64), st.text(max_size=70)),
    st.sampled_from([", ", ",", " ", ",,"]),
)
_authorization = st.one_of(
    st.text(max_size=200),
    st.lists(_auth_fragments, max_size=8).map("".join),
    _structured,
    _structured,
)
_query_fragments = st.sampled_from(
    [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Credential=AK%2F20260301%2Fr%2Fs3%2Faws4_request",
        "X-Amz-Date=20260301T120000Z",
        "X-Amz-Date=29991399T999999Z",
        "X-Amz-Expires=60",
        "X-Amz-Expires=%FF",
        "X-Amz-SignedHeaders=host",
        "X-Amz-SignedHeaders=%C3%A4",
        "X-Amz-Signature=abc",
        "AWSAccessKeyId=AK",
        "Signature=x",
        "Expires=99999999999999999999",
        "%",
        "%zz=%",
        "&",
        "=",
    ]
)
_query = st.one_of(st.binary(max_size=100), st.lists(_query_fragments, max_size=8).map("&".join))
_header_value = st.one_of(st.binary(max_size=60), st.text(max_size=40))


def _verify_case(
    authorization: str | None,
    query: str | bytes,
    path: str | bytes,
    date: str | None,
    extra: list[tuple[str, str | bytes]],
) -> None:
    headers: list[tuple[str | bytes, str | bytes]] = [("host", "h")]
    if authorization is not None:
        headers.append(("authorization", authorization))
    if date is not None:
        headers.append(("x-amz-date", date))
    headers.extend(extra)
    req = RequestParts.build("GET", path, query, headers)
    with contextlib.suppress(*_TYPED):
        sigv4.verify(req, SECRETS, NOW)


_VERIFY_GIVEN = given(
    authorization=st.one_of(st.none(), _authorization),
    query=_query,
    path=st.one_of(st.binary(max_size=40), st.text(max_size=40)),
    date=st.one_of(st.none(), _mostly("20260301T120000Z"), st.just("Sun, 01 Mar")),
    extra=st.lists(
        st.tuples(st.sampled_from(["x-amz-content-sha256", "date", "host", "ä"]), _header_value),
        max_size=4,
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@_VERIFY_GIVEN
def test_verify_only_raises_typed_errors(**kwargs: Any) -> None:
    _verify_case(**kwargs)


@pytest.mark.slow
@settings(max_examples=LONG_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@_VERIFY_GIVEN
def test_verify_only_raises_typed_errors_long(**kwargs: Any) -> None:
    _verify_case(**kwargs)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 7):
        yield data[i : i + 7]


SIGNING = ChunkSigningContext(b"k" * 32, "20260301T120000Z", "20260301/r/s3/aws4_request", "0" * 64)
_framing = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"0",
                b"5",
                b"ffff",
                b";chunk-signature=",
                b"\r\n",
                b"\n",
                b"hello",
                b"x-amz-checksum-crc32:",
                b"NhCmhg==",
                b":",
                b"x-amz-trailer-signature:",
            ]
        ),
        st.binary(max_size=12),
    ),
    max_size=20,
).map(b"".join)


async def _decoder_case(body: bytes, mode: PayloadMode, length: int | None) -> None:
    decoder = AwsChunkedDecoder(
        _once(body),
        mode,
        signing=SIGNING,
        decoded_content_length=length,
        trailer_names=("x-amz-checksum-crc32",),
    )
    with contextlib.suppress(*_TYPED):
        async for _ in decoder:
            pass


_DECODER_GIVEN = given(
    body=_framing,
    mode=st.sampled_from(
        [
            PayloadMode.STREAMING_SIGNED,
            PayloadMode.STREAMING_UNSIGNED_TRAILER,
            PayloadMode.STREAMING_SIGNED_TRAILER,
        ]
    ),
    length=st.one_of(st.none(), st.integers(min_value=0, max_value=20)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@_DECODER_GIVEN
async def test_decoder_only_raises_typed_errors(**kwargs: Any) -> None:
    await _decoder_case(**kwargs)


@pytest.mark.slow
@settings(max_examples=LONG_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@_DECODER_GIVEN
async def test_decoder_only_raises_typed_errors_long(**kwargs: Any) -> None:
    await _decoder_case(**kwargs)


def test_non_ascii_signed_header_name() -> None:
    auth = (
        "AWS4-HMAC-SHA256 Credential=AK/20260301/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;\u00fc, Signature=" + "a" * 64
    )
    headers = [("host", "h"), ("x-amz-date", "20260301T120000Z"), ("authorization", auth)]
    with pytest.raises(sigv4.AuthorizationHeaderMalformed):
        sigv4.verify(RequestParts.build("GET", "/", "", headers), SECRETS, NOW)


def test_fuzz_harness_sees_errors() -> None:
    req = RequestParts.build("GET", "/", "", [("authorization", "AWS4-HMAC-SHA256 x")])
    with pytest.raises(_TYPED):
        sigv4.verify(req, SECRETS, NOW)
