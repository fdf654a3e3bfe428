"""The request body as its headers describe it: framing, length limits and integrity claims.

Owns: ``payload_info`` (Content-Length, ``x-amz-decoded-content-length``, chunked transfer,
``x-amz-content-sha256``, Content-MD5, ``x-amz-checksum-*``, the SDK checksum algorithm,
``x-amz-trailer`` and ``Expect: 100-continue`` -> ``op.PayloadInfo``), the checksum
algorithm names with their digest sizes, and ``x-amz-checksum-type``.

Invariants: at most one ``x-amz-checksum-<alg>`` header, and its value decodes to the
algorithm's digest size; a size over the operation's limit is EntityTooLarge before any
body byte is read. The body itself is never read here.

Pure: raises only ``gateway.errors.S3Error``. Must not import starlette, asyncio or
anything doing I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from gateway import operations as op
from gateway.errors import S3Error
from gateway.router.request import Headers

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "checksum_algorithm",
    "checksum_header",
    "checksum_type",
    "content_md5",
    "payload_info",
]

# algorithm -> decoded digest length in bytes
CHECKSUM_ALGORITHMS: Mapping[str, int] = {
    "CRC32": 4,
    "CRC32C": 4,
    "CRC64NVME": 8,
    "SHA1": 20,
    "SHA256": 32,
}


def content_md5(h: Headers) -> bytes | None:
    raw = h.get("content-md5")
    if raw is None:
        return None
    try:
        digest = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise S3Error.invalid_digest() from None
    if len(digest) != 16:
        raise S3Error.invalid_digest()
    return digest


def checksum_algorithm(raw: str | None, header: str) -> str | None:
    if raw is None:
        return None
    algo = raw.strip().upper()
    if algo not in CHECKSUM_ALGORITHMS:
        raise S3Error.invalid_request(f"Value for {header} header is invalid.")
    return algo


def checksum_header(h: Headers, *, part_count_suffix: bool = False) -> op.ChecksumHeader | None:
    """The single x-amz-checksum-<alg> header; with ``part_count_suffix`` a COMPOSITE
    multipart value ``b64-N`` is accepted too (CompleteMultipartUpload)."""
    found: list[op.ChecksumHeader] = []
    for algo, size in CHECKSUM_ALGORITHMS.items():
        header = f"x-amz-checksum-{algo.lower()}"
        raw = h.get(header)
        if raw is None:
            continue
        digest, dash, count = raw.strip().partition("-")
        if not part_count_suffix or not dash:
            digest = raw.strip()
        elif not (count.isascii() and count.isdigit() and 0 < int(count) <= 10_000):
            raise S3Error.invalid_request(f"Value for {header} header is invalid.")
        try:
            ok = len(base64.b64decode(digest, validate=True)) == size
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise S3Error.invalid_request(f"Value for {header} header is invalid.")
        found.append(op.ChecksumHeader(algo, raw.strip()))
    if len(found) > 1:
        raise S3Error.invalid_request(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    return found[0] if found else None


def _length(h: Headers, name: str) -> int | None:
    raw = h.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit():
        raise S3Error.invalid_argument(f"{name} must be a non-negative integer", name, raw)
    return int(raw)


def payload_info(
    h: Headers, max_size: int, *, body_required: bool, body_checksum: bool = True
) -> op.PayloadInfo:
    """The body's framing and claims; ``body_checksum=False`` when x-amz-checksum-<alg>
    describes something else than the body (CompleteMultipartUpload: the object)."""
    content_length = _length(h, "content-length")
    decoded = _length(h, "x-amz-decoded-content-length")
    chunked = "chunked" in (h.get("transfer-encoding") or "").lower()
    if body_required and content_length is None and decoded is None and not chunked:
        raise S3Error.missing_content_length()
    checksum = checksum_header(h) if body_checksum else None
    sdk_algo = checksum_algorithm(
        h.get("x-amz-sdk-checksum-algorithm"), "x-amz-sdk-checksum-algorithm"
    )
    if checksum is not None and sdk_algo is not None and sdk_algo != checksum.algorithm:
        raise S3Error.invalid_request("Value for x-amz-sdk-checksum-algorithm header is invalid.")
    trailer = h.get("x-amz-trailer")
    payload = op.PayloadInfo(
        content_length=content_length,
        decoded_content_length=decoded,
        content_sha256=h.get("x-amz-content-sha256"),
        is_chunked_transfer=chunked,
        content_md5=content_md5(h),
        checksum=checksum,
        sdk_checksum_algorithm=sdk_algo,
        trailer=trailer.strip().lower() if trailer else None,
        expect_continue=(h.get("expect") or "").strip().lower() == "100-continue",
    )
    size = payload.object_size
    if size is not None and size > max_size:
        raise S3Error.entity_too_large(size, max_size)
    return payload


def checksum_type(h: Headers) -> str | None:
    raw = h.get("x-amz-checksum-type")
    if raw is None:
        return None
    value = raw.strip().upper()
    if value not in ("COMPOSITE", "FULL_OBJECT"):
        raise S3Error.invalid_request("Value for x-amz-checksum-type header is invalid.")
    return value
