"""aws-chunked decoding: AWS docs vectors, real botocore bodies, tampering, truncation."""

from __future__ import annotations

import base64
import io
import json
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, Sha1Checksum, Sha256Checksum
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.errors import BadDigest, InvalidArgument
from gateway import checksums, sigv4
from gateway.checksums import ChecksumAlgorithm
from gateway.chunked import (
    AwsChunkedDecoder,
    ChunkSigningContext,
    encode_aws_chunked,
    parse_trailer_names,
)
from gateway.sigv4 import IncompleteBody, InvalidRequest, PayloadMode, SignatureDoesNotMatch

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sigv4"
DOCS: dict[str, Any] = json.loads((FIXTURES / "s3_docs_examples.json").read_text())
CHUNKED = DOCS["chunked"]
DOCS_SIGNING = ChunkSigningContext(
    signing_key=bytes.fromhex(DOCS["signing_key_hex"]),
    amz_date=DOCS["amz_date"],
    scope="20130524/us-east-1/s3/aws4_request",
    seed_signature=CHUNKED["seed_signature"],
)
CRC32 = "x-amz-checksum-crc32"


async def _pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


async def _pieces_at(body: bytes, cuts: Sequence[int]) -> AsyncIterator[bytes]:
    prev = 0
    for cut in sorted(set(cuts)):
        if 0 < cut < len(body):
            yield body[prev:cut]
            prev = cut
    yield body[prev:]


async def _decode(decoder: AwsChunkedDecoder) -> bytes:
    return b"".join([piece async for piece in decoder])


def _docs_body() -> bytes:
    data = [CHUNKED["fill_byte"].encode() * n for n in CHUNKED["chunk_sizes"]]
    return b"".join(encode_aws_chunked(data, signing=DOCS_SIGNING))


# -- AWS docs example -----------------------------------------------------------------------
def test_docs_example_encoding_matches_published_signatures() -> None:
    body = _docs_body()
    assert len(body) == CHUNKED["encoded_length"]
    for sig in [*CHUNKED["chunk_signatures"], CHUNKED["final_signature"]]:
        assert f";chunk-signature={sig}\r\n".encode() in body
    assert body.startswith(b"10000;chunk-signature=" + CHUNKED["chunk_signatures"][0].encode())
    assert body.endswith(b"0;chunk-signature=" + CHUNKED["final_signature"].encode() + b"\r\n\r\n")


@pytest.mark.parametrize("piece", [1, 7, 1000, 65536 + 89, 1 << 20])
async def test_docs_example_decodes(piece: int) -> None:
    decoder = AwsChunkedDecoder(
        _pieces(_docs_body(), piece),
        PayloadMode.STREAMING_SIGNED,
        signing=DOCS_SIGNING,
        decoded_content_length=66560,
        offload_threshold_bytes=1024,  # exercise the to_thread path too
    )
    assert await _decode(decoder) == b"a" * 66560
    assert decoder.decoded_size_bytes == 66560
    assert decoder.trailers == ()


async def test_bad_chunk_signature_raises_before_that_chunk_is_yielded() -> None:
    body = bytearray(_docs_body())
    second = body.index(b"400;chunk-signature=") + len(b"400;chunk-signature=")
    body[second] = ord("f") if body[second] != ord("f") else ord("e")
    decoder = AwsChunkedDecoder(
        _pieces(bytes(body), 4096), PayloadMode.STREAMING_SIGNED, signing=DOCS_SIGNING
    )
    got: list[bytes] = []
    with pytest.raises(SignatureDoesNotMatch):
        async for piece in decoder:
            got.append(piece)
    assert b"".join(got) == b"a" * 65536  # the first chunk only


async def test_tampered_chunk_data_is_rejected() -> None:
    body = bytearray(_docs_body())
    body[200] = ord("b")
    decoder = AwsChunkedDecoder(
        _pieces(bytes(body), 4096), PayloadMode.STREAMING_SIGNED, signing=DOCS_SIGNING
    )
    got: list[bytes] = []
    with pytest.raises(SignatureDoesNotMatch):
        async for piece in decoder:
            got.append(piece)
    assert got == []


async def test_missing_chunk_signature_in_signed_mode() -> None:
    body = b"5\r\nhello\r\n0\r\n\r\n"
    decoder = AwsChunkedDecoder(
        _pieces(body, 3), PayloadMode.STREAMING_SIGNED, signing=DOCS_SIGNING
    )
    with pytest.raises(SignatureDoesNotMatch):
        await _decode(decoder)


# -- botocore bodies -------------------------------------------------------------------------
BOTO_CHECKSUMS: list[tuple[str, Any]] = [
    ("crc32", Crc32Checksum),
    ("sha1", Sha1Checksum),
    ("sha256", Sha256Checksum),
]


class _OurCrc32c:
    """A botocore-shaped checksum class backed by gateway.checksums (botocore needs awscrt)."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, chunk: bytes) -> None:
        self._value = checksums.crc32c(chunk, self._value)

    def b64digest(self) -> str:
        return base64.b64encode(self._value.to_bytes(4, "big")).decode()


@pytest.mark.parametrize("size", [0, 1, 1000, 70000])
@pytest.mark.parametrize("chunk_size", [None, 8192, 65536])
@pytest.mark.parametrize(("alg", "cls"), [*BOTO_CHECKSUMS, ("crc32c", _OurCrc32c)])
async def test_botocore_unsigned_trailer_bodies(
    size: int, chunk_size: int | None, alg: str, cls: Any
) -> None:
    payload = bytes((i * 7 + 3) % 251 for i in range(size))
    name = f"x-amz-checksum-{alg}"
    wrapper = AwsChunkedWrapper(
        io.BytesIO(payload), checksum_cls=cls, checksum_name=name, chunk_size=chunk_size
    )
    body = wrapper.read()
    decoder = AwsChunkedDecoder(
        _pieces(body, 3000),
        PayloadMode.STREAMING_UNSIGNED_TRAILER,
        decoded_content_length=size,
        trailer_names=parse_trailer_names(name),
    )
    assert await _decode(decoder) == payload
    assert [t.name for t in decoder.trailers] == [name]
    assert [c.algorithm.value for c in decoder.checksums] == [alg]


async def test_botocore_body_with_wrong_trailer_checksum() -> None:
    payload = b"x" * 5000
    body = AwsChunkedWrapper(io.BytesIO(payload), Crc32Checksum, CRC32, 1024).read()
    good = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big"))
    bad = base64.b64encode((zlib.crc32(payload) ^ 1).to_bytes(4, "big"))
    assert good in body
    decoder = AwsChunkedDecoder(
        _pieces(body.replace(good, bad), 999),
        PayloadMode.STREAMING_UNSIGNED_TRAILER,
        trailer_names=(CRC32,),
    )
    got: list[bytes] = []
    with pytest.raises(BadDigest):
        async for piece in decoder:
            got.append(piece)
    assert b"".join(got) == payload  # data streamed; the commit must not happen


# -- signed trailers --------------------------------------------------------------------------
def _signed_trailer_body(payload: bytes, chunk: int, alg: ChecksumAlgorithm) -> bytes:
    parts = [payload[i : i + chunk] for i in range(0, len(payload), chunk)]
    return b"".join(encode_aws_chunked(parts, signing=DOCS_SIGNING, trailer_checksum=alg))


@pytest.mark.parametrize("alg", [a for a in ChecksumAlgorithm if a is not ChecksumAlgorithm.MD5])
async def test_signed_trailer_round_trip(alg: ChecksumAlgorithm) -> None:
    payload = bytes(range(256)) * 50
    body = _signed_trailer_body(payload, 4000, alg)
    assert b"x-amz-trailer-signature:" in body
    decoder = AwsChunkedDecoder(
        _pieces(body, 512),
        PayloadMode.STREAMING_SIGNED_TRAILER,
        signing=DOCS_SIGNING,
        decoded_content_length=len(payload),
        trailer_names=(alg.header_name,),
    )
    assert await _decode(decoder) == payload
    assert decoder.checksums[0].algorithm is alg


async def test_signed_trailer_bad_signature() -> None:
    body = _signed_trailer_body(b"abc" * 100, 100, ChecksumAlgorithm.CRC32)
    idx = body.index(b"x-amz-trailer-signature:") + len(b"x-amz-trailer-signature:")
    broken = body[:idx] + (b"0" if body[idx : idx + 1] != b"0" else b"1") + body[idx + 1 :]
    decoder = AwsChunkedDecoder(
        _pieces(broken, 64),
        PayloadMode.STREAMING_SIGNED_TRAILER,
        signing=DOCS_SIGNING,
        trailer_names=(CRC32,),
    )
    with pytest.raises(SignatureDoesNotMatch):
        await _decode(decoder)


async def test_signed_trailer_missing_signature_line() -> None:
    body = _signed_trailer_body(b"abc" * 100, 100, ChecksumAlgorithm.CRC32)
    start = body.index(b"x-amz-trailer-signature:")
    end = body.index(b"\r\n", start) + 2
    decoder = AwsChunkedDecoder(
        _pieces(body[:start] + body[end:], 64),
        PayloadMode.STREAMING_SIGNED_TRAILER,
        signing=DOCS_SIGNING,
        trailer_names=(CRC32,),
    )
    with pytest.raises(SignatureDoesNotMatch):
        await _decode(decoder)


# -- malformed and truncated bodies -----------------------------------------------------------
def _unsigned(body: bytes, **kwargs: Any) -> AwsChunkedDecoder:
    kwargs.setdefault("trailer_names", (CRC32,))
    return AwsChunkedDecoder(_pieces(body, 5), PayloadMode.STREAMING_UNSIGNED_TRAILER, **kwargs)


GOOD = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"


async def test_good_reference_body() -> None:
    assert await _decode(_unsigned(GOOD)) == b"hello"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", InvalidRequest),
        (b"-5\r\nhello\r\n0\r\n\r\n", InvalidRequest),
        (b"\r\nhello\r\n", InvalidRequest),
        (b"fffffffffffffffff\r\n", InvalidRequest),
        (b"2000000\r\n", InvalidRequest),  # 32 MiB > 16 MiB cap
        (b"5\r\nhelloXX0\r\n\r\n", InvalidRequest),
        (b"a" * 10000, InvalidRequest),  # a line that never ends
        (GOOD + b"extra", InvalidRequest),
        (b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32\r\n\r\n", InvalidRequest),
        (GOOD[:-2] + b"x-amz-checksum-sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", InvalidRequest),
        (b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:!!\r\n\r\n", InvalidRequest),
        (b"5\r\nhello\r\n0\r\n\r\n", IncompleteBody),  # declared trailer missing
        (b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", BadDigest),
        (b"", IncompleteBody),
    ],
)
async def test_malformed_bodies(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        await _decode(_unsigned(body))


@pytest.mark.parametrize("declared", [4, 6])
async def test_decoded_length_mismatch(declared: int) -> None:
    got: list[bytes] = []
    with pytest.raises(IncompleteBody):
        async for piece in _unsigned(GOOD, decoded_content_length=declared):
            got.append(piece)
    assert len(b"".join(got)) <= declared


@pytest.mark.parametrize("cut", range(len(GOOD) - 2))
async def test_every_truncation_is_a_typed_error(cut: int) -> None:
    # cutting only the final CRLF still leaves a complete, verified body (accepted)
    with pytest.raises((IncompleteBody, InvalidRequest, BadDigest)):
        await _decode(_unsigned(GOOD[:cut]))


async def test_final_crlf_optional_at_eof() -> None:
    assert await _decode(_unsigned(GOOD[:-2])) == b"hello"


async def test_trailer_lines_with_bare_lf() -> None:
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\n\n"
    assert await _decode(_unsigned(body)) == b"hello"


async def test_trailers_without_trailer_mode_rejected() -> None:
    body = b"5;chunk-signature=" + b"0" * 64 + b"\r\nhello\r\n"
    decoder = AwsChunkedDecoder(
        _pieces(body, 7), PayloadMode.STREAMING_SIGNED, signing=DOCS_SIGNING
    )
    with pytest.raises(SignatureDoesNotMatch):
        await _decode(decoder)


def test_constructor_contracts() -> None:
    with pytest.raises(ValueError):
        AwsChunkedDecoder(_pieces(b"", 1), PayloadMode.UNSIGNED)
    with pytest.raises(ValueError):
        AwsChunkedDecoder(_pieces(b"", 1), PayloadMode.STREAMING_SIGNED)
    decoder = _unsigned(GOOD)
    decoder.__aiter__()
    with pytest.raises(RuntimeError):
        decoder.__aiter__()


def test_parse_trailer_names() -> None:
    assert parse_trailer_names(None) == ()
    assert parse_trailer_names(" X-Amz-Checksum-CRC32 , x-amz-foo,") == (CRC32, "x-amz-foo")


def test_for_request_reads_headers() -> None:
    headers = sigv4.sign_request(
        "PUT",
        "/b/k",
        "",
        [("host", "h"), ("x-amz-decoded-content-length", "5"), ("x-amz-trailer", CRC32)],
        access_key="a",
        secret="s",
        region="r",
        now=sigv4_now(),
        payload_hash=sigv4.STREAMING_UNSIGNED_TRAILER,
    )
    req = sigv4.RequestParts.build("PUT", "/b/k", "", headers)
    ctx = sigv4.verify(req, {"a": "s"}.get, sigv4_now())
    decoder = AwsChunkedDecoder.for_request(_pieces(GOOD, 4), ctx, req)
    assert decoder.decoded_size_bytes == 0
    bad = sigv4.RequestParts.build("PUT", "/b/k", "", [("x-amz-decoded-content-length", "x")])
    with pytest.raises(InvalidArgument):
        AwsChunkedDecoder.for_request(_pieces(GOOD, 4), ctx, bad)


def sigv4_now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


# -- property: random payloads, chunkings and network splits round-trip ----------------------
@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=5000),
    chunk=st.integers(min_value=1, max_value=2048),
    cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=12),
    mode=st.sampled_from(
        [
            PayloadMode.STREAMING_SIGNED,
            PayloadMode.STREAMING_UNSIGNED_TRAILER,
            PayloadMode.STREAMING_SIGNED_TRAILER,
        ]
    ),
    alg=st.sampled_from(
        [ChecksumAlgorithm.CRC32, ChecksumAlgorithm.SHA256, ChecksumAlgorithm.CRC64NVME]
    ),
)
async def test_round_trip_property(
    payload: bytes, chunk: int, cuts: list[int], mode: PayloadMode, alg: ChecksumAlgorithm
) -> None:
    signing = DOCS_SIGNING if mode.has_chunk_signatures else None
    trailer = alg if mode.has_trailer else None
    parts = [payload[i : i + chunk] for i in range(0, len(payload), chunk)]
    body = b"".join(encode_aws_chunked(parts, signing=signing, trailer_checksum=trailer))
    decoder = AwsChunkedDecoder(
        _pieces_at(body, cuts),
        mode,
        signing=signing,
        decoded_content_length=len(payload),
        trailer_names=(alg.header_name,) if trailer else (),
        offload_threshold_bytes=1024,
    )
    assert await _decode(decoder) == payload


@settings(max_examples=80, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=3000),
    flip=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
async def test_corruption_never_yields_wrong_data(payload: bytes, flip: int, bit: int) -> None:
    """A flipped bit in a signed-trailer body raises a typed error, or (only when it hits
    insignificant framing such as the case of a trailer name) decodes to the same payload."""
    body = bytearray(_signed_trailer_body(payload, 700, ChecksumAlgorithm.CRC32))
    body[flip % len(body)] ^= 1 << bit
    decoder = AwsChunkedDecoder(
        _pieces(bytes(body), 333),
        PayloadMode.STREAMING_SIGNED_TRAILER,
        signing=DOCS_SIGNING,
        decoded_content_length=len(payload),
        trailer_names=(CRC32,),
    )
    try:
        out = await _decode(decoder)
    except (sigv4.AuthError, BadDigest):
        return
    assert out == payload


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(min_size=1, max_size=3000), cut=st.integers(min_value=0))
async def test_truncation_always_raises(payload: bytes, cut: int) -> None:
    body = _signed_trailer_body(payload, 700, ChecksumAlgorithm.CRC32)
    decoder = AwsChunkedDecoder(
        _pieces(body[: cut % (len(body) - 2)], 333),
        PayloadMode.STREAMING_SIGNED_TRAILER,
        signing=DOCS_SIGNING,
        decoded_content_length=len(payload),
        trailer_names=(CRC32,),
    )
    with pytest.raises((sigv4.AuthError, BadDigest)):
        await _decode(decoder)


# -- AWS docs example with a signed trailer (crc32c) -----------------------------------------
TRAILER_DOC = DOCS["chunked_trailer"]


def _docs_trailer_body() -> bytes:
    """The documented body, written out literally from the published signatures."""
    sigs = [*TRAILER_DOC["chunk_signatures"], TRAILER_DOC["final_signature"]]
    out = b""
    for size, sig in zip([*TRAILER_DOC["chunk_sizes"], 0], sigs, strict=True):
        out += b"%x;chunk-signature=%s\r\n" % (size, sig.encode())
        out += b"a" * size + b"\r\n" if size else b""
    out += TRAILER_DOC["trailer"].encode() + b"\r\n"
    out += b"x-amz-trailer-signature:" + TRAILER_DOC["trailer_signature"].encode() + b"\r\n\r\n"
    return out


async def test_docs_signed_trailer_example() -> None:
    auth_header = (
        f"AWS4-HMAC-SHA256 Credential={DOCS['access_key']}/20130524/us-east-1/s3/aws4_request,"
        f"SignedHeaders={TRAILER_DOC['signed_headers']},"
        f"Signature={TRAILER_DOC['seed_signature']}"
    )
    req = sigv4.RequestParts.build(
        "PUT", TRAILER_DOC["path"], "", [*TRAILER_DOC["headers"], ("Authorization", auth_header)]
    )
    now = sigv4_now().replace(year=2013, month=5, day=24, hour=0, minute=0, second=0)
    ctx = sigv4.verify(req, {DOCS["access_key"]: DOCS["secret"]}.get, now)
    assert ctx.payload_mode is PayloadMode.STREAMING_SIGNED_TRAILER
    decoder = AwsChunkedDecoder.for_request(_pieces(_docs_trailer_body(), 5000), ctx, req)
    assert await _decode(decoder) == b"a" * 66560
    assert decoder.checksums[0].algorithm is ChecksumAlgorithm.CRC32C
    assert decoder.checksums[0].b64 == "sOO8/Q=="
    # and our encoder reproduces the documented bytes exactly
    signing = ChunkSigningContext.from_auth(ctx)
    data = [b"a" * n for n in TRAILER_DOC["chunk_sizes"]]
    ours = b"".join(
        encode_aws_chunked(data, signing=signing, trailer_checksum=ChecksumAlgorithm.CRC32C)
    )
    assert ours == _docs_trailer_body()
