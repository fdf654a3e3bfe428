"""How a SigV4 request protects its body: payload modes, the sha256 check, chunk signatures.

Owns: the ``x-amz-content-sha256`` keywords, ``PayloadMode`` and ``payload_mode_of`` (the
mode plus the payload-hash line of the canonical request), ``PayloadHashVerifier`` (the
streaming check of a body against an announced hex sha256) and the chunk / trailer
string-to-sign used by ``gateway/chunked`` for aws-chunked bodies.

Decision: a header-signed request without ``x-amz-content-sha256`` is verified as the
generic SigV4 would: the payload hash is sha256("") and the body must then be empty
(``PayloadMode.SHA256``), so nothing unsigned can slip through. A presigned URL without it
is ``UNSIGNED-PAYLOAD``.

Pure: imports only the stdlib, ``blobstore.errors`` and sibling ``gateway.sigv4`` modules.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re

from blobstore.errors import InvalidArgument
from gateway.sigv4.canonical import ALGORITHM
from gateway.sigv4.errors import XAmzContentSHA256Mismatch
from gateway.sigv4.keys import hmac_hex

__all__ = [
    "EMPTY_SHA256",
    "STREAMING_SIGNED",
    "STREAMING_SIGNED_TRAILER",
    "STREAMING_UNSIGNED_TRAILER",
    "UNSIGNED_PAYLOAD",
    "PayloadHashVerifier",
    "PayloadMode",
    "chunk_signature",
    "payload_mode_of",
    "trailer_signature",
]

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class PayloadMode(enum.Enum):
    """How the body is protected, from ``x-amz-content-sha256`` (never Content-Encoding)."""

    SHA256 = "sha256"  # hex digest announced: verify the body against it
    UNSIGNED = UNSIGNED_PAYLOAD
    STREAMING_SIGNED = STREAMING_SIGNED
    STREAMING_UNSIGNED_TRAILER = STREAMING_UNSIGNED_TRAILER
    STREAMING_SIGNED_TRAILER = STREAMING_SIGNED_TRAILER

    @property
    def is_aws_chunked(self) -> bool:
        """True when the body is aws-chunked framing that must be decoded."""
        return self in _CHUNKED_MODES

    @property
    def has_chunk_signatures(self) -> bool:
        return self in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER)

    @property
    def has_trailer(self) -> bool:
        return self in (
            PayloadMode.STREAMING_UNSIGNED_TRAILER,
            PayloadMode.STREAMING_SIGNED_TRAILER,
        )


_CHUNKED_MODES = frozenset(
    {
        PayloadMode.STREAMING_SIGNED,
        PayloadMode.STREAMING_UNSIGNED_TRAILER,
        PayloadMode.STREAMING_SIGNED_TRAILER,
    }
)


class PayloadHashVerifier:
    """Streaming check of a body against its announced hex sha256.

    Feed every body byte to ``update`` (hashlib releases the GIL above 2 KiB, so large
    buffers may be passed through ``asyncio.to_thread``), then call ``finish``.
    """

    __slots__ = ("_expected", "_hash", "_size")

    def __init__(self, expected_hex: str) -> None:
        self._expected = expected_hex.lower()
        self._hash = hashlib.sha256()
        self._size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self._size += len(data)

    @property
    def size_bytes(self) -> int:
        return self._size

    def finish(self) -> None:
        """Raise XAmzContentSHA256Mismatch unless the body hashed to the announced value."""
        actual = self._hash.hexdigest()
        if not hmac.compare_digest(actual, self._expected):
            raise XAmzContentSHA256Mismatch(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                ClientComputedContentSHA256=self._expected,
                S3ComputedContentSHA256=actual,
            )


def payload_mode_of(value: str | None, *, is_presigned: bool) -> tuple[PayloadMode, str]:
    """Payload mode and the payload-hash line of the canonical request for a header value.

    Raises InvalidArgument for a value that is neither a known keyword nor a hex sha256.
    """
    if value is None:
        if is_presigned:
            return PayloadMode.UNSIGNED, UNSIGNED_PAYLOAD
        return PayloadMode.SHA256, EMPTY_SHA256
    for mode in PayloadMode:
        if mode is not PayloadMode.SHA256 and value == mode.value:
            return mode, value
    if _HEX64.fullmatch(value):
        return PayloadMode.SHA256, value
    raise InvalidArgument(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or "
        "a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=value,
    )


def chunk_signature(
    signing_key: bytes, amz_date: str, scope: str, previous: str, data_sha256_hex: str
) -> str:
    """Signature of one aws-chunked chunk, given the hex sha256 of its data."""
    sts = f"{ALGORITHM}-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{data_sha256_hex}"
    return hmac_hex(signing_key, sts)


def trailer_signature(
    signing_key: bytes, amz_date: str, scope: str, previous: str, canonical_trailers: bytes
) -> str:
    """Signature of the trailer section (``name:value\\n`` per trailer, in sent order)."""
    digest = hashlib.sha256(canonical_trailers).hexdigest()
    return hmac_hex(signing_key, f"{ALGORITHM}-TRAILER\n{amz_date}\n{scope}\n{previous}\n{digest}")
