"""S3 body checksums: Content-MD5 and x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}.

Owns: streaming hashers (``Checksummer``), parsing/validation of the announced values
(``expected_checksums``), comparison (``verify_checksums`` -> BadDigest) and the multipart
object checksums, both S3 types:

- COMPOSITE (``composite_checksum``): the checksum of the concatenated binary part
  checksums, ``"<b64>-N"``; any algorithm but CRC64NVME.
- FULL_OBJECT (``full_object_checksum``): the CRC of the whole object, combined from the
  part CRCs and part lengths (``crc_combine``, zlib's crc32_combine method: multiply by
  x^(8*len) modulo P in GF(2), generalised to crc32c/crc64nvme); CRC algorithms only.
  ``multipart_checksum_type`` applies S3's rules (default COMPOSITE, CRC64NVME always
  FULL_OBJECT, SHA1/SHA256 never) and raises InvalidRequest as S3 does.

Wire form: every value is base64 of the big-endian digest (crc32/crc32c: 4 bytes,
crc64nvme: 8 bytes, sha1: 20, sha256: 32, md5: 16).

Backends: crc32 is ``zlib.crc32`` (C, releases the GIL above 5 KiB); md5/sha1/sha256 are
hashlib (release the GIL above 2 KiB). crc32c and crc64nvme use ``awscrt.checksums`` when
importable (crc32c also from the ``crc32c`` package), otherwise a pure-Python
slicing-by-8 table implementation: correct but slow (a few MB/s) and it HOLDS the GIL, so
large buffers must go through ``asyncio.to_thread`` only to keep the loop responsive, not
for parallelism. ``BACKENDS`` tells which is in use.

Pure: no asyncio, files or sockets. Imports the stdlib, ``blobstore.errors`` and the error
types of ``gateway.sigv4``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import importlib
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from blobstore.errors import BadDigest
from gateway.sigv4 import InvalidDigest, InvalidRequest

__all__ = [
    "BACKENDS",
    "COMPOSITE",
    "FULL_OBJECT",
    "Checksum",
    "ChecksumAlgorithm",
    "Checksummer",
    "composite_checksum",
    "crc32c",
    "crc32c_pure",
    "crc64nvme",
    "crc64nvme_pure",
    "crc_combine",
    "expected_checksums",
    "full_object_checksum",
    "multipart_checksum_type",
    "parse_content_md5",
    "verify_checksums",
]


class ChecksumAlgorithm(enum.Enum):
    """A body checksum S3 understands; the value is the lower-case wire name."""

    MD5 = "md5"
    CRC32 = "crc32"
    CRC32C = "crc32c"
    CRC64NVME = "crc64nvme"
    SHA1 = "sha1"
    SHA256 = "sha256"

    @property
    def header_name(self) -> str:
        """The request/response header carrying this checksum."""
        return "content-md5" if self is ChecksumAlgorithm.MD5 else f"x-amz-checksum-{self.value}"

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZES[self]

    @property
    def is_crc(self) -> bool:
        return self in _CRC_PARAMS

    @classmethod
    def from_name(cls, name: str) -> ChecksumAlgorithm:
        """Parse 'CRC32', 'crc64nvme', 'x-amz-checksum-sha256', ... (not 'md5')."""
        low = name.strip().lower().removeprefix("x-amz-checksum-")
        for alg in cls:
            if alg.value == low and alg is not ChecksumAlgorithm.MD5:
                return alg
        raise InvalidRequest(f"Unsupported checksum algorithm: {name}")


_DIGEST_SIZES = {
    ChecksumAlgorithm.MD5: 16,
    ChecksumAlgorithm.CRC32: 4,
    ChecksumAlgorithm.CRC32C: 4,
    ChecksumAlgorithm.CRC64NVME: 8,
    ChecksumAlgorithm.SHA1: 20,
    ChecksumAlgorithm.SHA256: 32,
}


@dataclass(frozen=True, slots=True)
class Checksum:
    """One checksum value (raw big-endian digest bytes)."""

    algorithm: ChecksumAlgorithm
    digest: bytes

    @property
    def b64(self) -> str:
        return base64.b64encode(self.digest).decode("ascii")

    @classmethod
    def from_b64(cls, algorithm: ChecksumAlgorithm, value: str) -> Checksum:
        """Decode a header value; malformed -> InvalidDigest (MD5) / InvalidRequest."""
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != algorithm.digest_size:
            if algorithm is ChecksumAlgorithm.MD5:
                raise InvalidDigest("The Content-MD5 you specified was invalid.")
            raise InvalidRequest(f"Value for {algorithm.header_name} header is invalid.")
        return cls(algorithm, raw)


# -- CRC engines --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _CrcParams:
    width: int
    poly_reflected: int

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


_CRC_PARAMS = {
    ChecksumAlgorithm.CRC32: _CrcParams(32, 0xEDB88320),
    ChecksumAlgorithm.CRC32C: _CrcParams(32, 0x82F63B78),
    ChecksumAlgorithm.CRC64NVME: _CrcParams(64, 0x9A6C9329AC4BC9B5),
}


def _tables(params: _CrcParams) -> list[list[int]]:
    """Slicing-by-8 tables for a reflected CRC (table[0] is the classic byte table)."""
    t0 = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ params.poly_reflected if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[n] >> 8) ^ t0[prev[n] & 0xFF] for n in range(256)])
    return tables


_T32C = _tables(_CRC_PARAMS[ChecksumAlgorithm.CRC32C])
_T64 = _tables(_CRC_PARAMS[ChecksumAlgorithm.CRC64NVME])


def crc32c_pure(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32C (Castagnoli), continuing from ``value`` (like zlib.crc32). Pure Python."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _T32C
    crc = value ^ 0xFFFFFFFF
    mv = memoryview(data).cast("B")
    n8 = len(mv) - len(mv) % 8
    for (w,) in struct.iter_unpack("<Q", mv[:n8]):
        x = crc ^ (w & 0xFFFFFFFF)
        h = w >> 32
        crc = (
            t7[x & 0xFF]
            ^ t6[(x >> 8) & 0xFF]
            ^ t5[(x >> 16) & 0xFF]
            ^ t4[x >> 24]
            ^ t3[h & 0xFF]
            ^ t2[(h >> 8) & 0xFF]
            ^ t1[(h >> 16) & 0xFF]
            ^ t0[h >> 24]
        )
    for b in mv[n8:]:
        crc = t0[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc64nvme_pure(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-64/NVME, continuing from ``value``. Pure Python."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _T64
    mask = 0xFFFFFFFFFFFFFFFF
    crc = value ^ mask
    mv = memoryview(data).cast("B")
    n8 = len(mv) - len(mv) % 8
    for (w,) in struct.iter_unpack("<Q", mv[:n8]):
        x = crc ^ w
        crc = (
            t7[x & 0xFF]
            ^ t6[(x >> 8) & 0xFF]
            ^ t5[(x >> 16) & 0xFF]
            ^ t4[(x >> 24) & 0xFF]
            ^ t3[(x >> 32) & 0xFF]
            ^ t2[(x >> 40) & 0xFF]
            ^ t1[(x >> 48) & 0xFF]
            ^ t0[x >> 56]
        )
    for b in mv[n8:]:
        crc = t0[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


_CrcFn = Callable[[bytes | bytearray | memoryview, int], int]


def _load_backend(module: str, attr: str) -> _CrcFn | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    fn = getattr(mod, attr, None)
    return fn if callable(fn) else None


def _select() -> tuple[_CrcFn, str, _CrcFn, str]:
    c32 = _load_backend("awscrt.checksums", "crc32c")
    c32_name = "awscrt"
    if c32 is None:
        c32, c32_name = _load_backend("crc32c", "crc32c"), "crc32c"
    if c32 is None:
        c32, c32_name = crc32c_pure, "pure-python"
    c64 = _load_backend("awscrt.checksums", "crc64nvme")
    c64_name = "awscrt"
    if c64 is None:
        c64, c64_name = crc64nvme_pure, "pure-python"
    return c32, c32_name, c64, c64_name


_crc32c_impl, _crc32c_backend, _crc64_impl, _crc64_backend = _select()
BACKENDS: tuple[tuple[str, str], ...] = (
    ("crc32", "zlib"),
    ("crc32c", _crc32c_backend),
    ("crc64nvme", _crc64_backend),
)


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32C with the fastest available backend."""
    return _crc32c_impl(data, value) & 0xFFFFFFFF


def crc64nvme(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-64/NVME with the fastest available backend."""
    return _crc64_impl(data, value) & 0xFFFFFFFFFFFFFFFF


def _zlib_crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    return zlib.crc32(data, value)


_CRC_FNS: dict[ChecksumAlgorithm, _CrcFn] = {
    ChecksumAlgorithm.CRC32: _zlib_crc32,
    ChecksumAlgorithm.CRC32C: crc32c,
    ChecksumAlgorithm.CRC64NVME: crc64nvme,
}


# -- streaming hashers --------------------------------------------------------------------
class _Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class _CrcHasher:
    __slots__ = ("_fn", "_size", "_value")

    def __init__(self, fn: _CrcFn, size: int) -> None:
        self._fn = fn
        self._size = size
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._value = self._fn(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")


def _new_hasher(alg: ChecksumAlgorithm) -> _Hasher:
    crc = _CRC_FNS.get(alg)
    if crc is not None:
        return _CrcHasher(crc, alg.digest_size)
    return hashlib.new(alg.value, usedforsecurity=False)


class Checksummer:
    """Computes several checksums over one stream in a single pass."""

    __slots__ = ("_hashers",)

    def __init__(self, algorithms: Iterable[ChecksumAlgorithm]) -> None:
        self._hashers = {alg: _new_hasher(alg) for alg in dict.fromkeys(algorithms)}

    @property
    def algorithms(self) -> tuple[ChecksumAlgorithm, ...]:
        return tuple(self._hashers)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        for h in self._hashers.values():
            h.update(data)

    def digest(self, algorithm: ChecksumAlgorithm) -> Checksum:
        return Checksum(algorithm, self._hashers[algorithm].digest())

    def digests(self) -> tuple[Checksum, ...]:
        return tuple(Checksum(a, h.digest()) for a, h in self._hashers.items())


# -- headers and verification ------------------------------------------------------------
def parse_content_md5(value: str) -> Checksum:
    """Decode a Content-MD5 header; malformed -> InvalidDigest."""
    return Checksum.from_b64(ChecksumAlgorithm.MD5, value)


_NON_VALUE_HEADERS = frozenset(
    {"x-amz-checksum-algorithm", "x-amz-checksum-mode", "x-amz-checksum-type"}
)


def expected_checksums(headers: Iterable[tuple[str, str]]) -> tuple[Checksum, ...]:
    """The checksums a request announces in its headers (Content-MD5 and at most one
    x-amz-checksum-<alg>). Raises InvalidDigest / InvalidRequest when malformed."""
    found: list[Checksum] = []
    amz = 0
    for name, value in headers:
        low = name.lower()
        if low == "content-md5":
            found.append(parse_content_md5(value))
        elif low.startswith("x-amz-checksum-") and low not in _NON_VALUE_HEADERS:
            alg = ChecksumAlgorithm.from_name(low)
            amz += 1
            found.append(Checksum.from_b64(alg, value))
    if amz > 1:
        raise InvalidRequest(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    return tuple(found)


def verify_checksums(expected: Sequence[Checksum], checksummer: Checksummer) -> None:
    """Raise BadDigest if any expected checksum differs from the computed one."""
    for want in expected:
        got = checksummer.digest(want.algorithm)
        if got.digest != want.digest:
            if want.algorithm is ChecksumAlgorithm.MD5:
                message = "The Content-MD5 you specified did not match what we received."
            else:
                message = (
                    f"The {want.algorithm.value.upper()} you specified did not match the "
                    "calculated checksum."
                )
            raise BadDigest(message, expected=want.b64, calculated=got.b64)


# -- multipart ----------------------------------------------------------------------------
def composite_checksum(parts: Sequence[Checksum]) -> str:
    """S3 COMPOSITE checksum of a multipart object: b64(H(d1 || d2 || ...)) + '-N'."""
    if not parts:
        raise ValueError("no parts")
    alg = parts[0].algorithm
    if any(p.algorithm is not alg for p in parts):
        raise ValueError("parts use different algorithms")
    h = Checksummer([alg])
    for p in parts:
        h.update(p.digest)
    return f"{h.digest(alg).b64}-{len(parts)}"


def _multmodp(params: _CrcParams, a: int, b: int) -> int:
    """a * b modulo the CRC polynomial (reflected bit order)."""
    m = 1 << (params.width - 1)
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ params.poly_reflected if b & 1 else b >> 1


def _x8n(params: _CrcParams, n: int) -> int:
    """x^(8*n) modulo P (reflected), by square-and-multiply over x^(2^k): O(log n)."""
    power = 1 << (params.width - 2)  # x^1
    for _ in range(3):  # x^8 = x^(2^3)
        power = _multmodp(params, power, power)
    acc = 1 << (params.width - 1)  # x^0
    while n:
        if n & 1:
            acc = _multmodp(params, power, acc)
        n >>= 1
        if n:
            power = _multmodp(params, power, power)
    return acc


def _crc_params(algorithm: ChecksumAlgorithm) -> _CrcParams:
    params = _CRC_PARAMS.get(algorithm)
    if params is None:
        raise ValueError(f"{algorithm.value} is not a CRC")
    return params


def crc_combine(algorithm: ChecksumAlgorithm, crc1: int, crc2: int, len2: int) -> int:
    """CRC of A||B from crc(A), crc(B) and len(B), for crc32/crc32c/crc64nvme.

    Appending len2 bytes multiplies A's register by x^(8*len2) mod P; the pre/post
    inversions of the two CRCs cancel, so no other term is needed (zlib's method)."""
    params = _crc_params(algorithm)
    return _multmodp(params, _x8n(params, len2), crc1) ^ crc2


def full_object_checksum(parts: Sequence[tuple[Checksum, int]]) -> Checksum:
    """S3 FULL_OBJECT checksum of a multipart object: the CRC of the concatenated parts,
    from each part's (CRC checksum, length in bytes), in part order."""
    if not parts:
        raise ValueError("no parts")
    alg = parts[0][0].algorithm
    if not alg.is_crc:
        raise ValueError(f"{alg.value} is not a CRC")
    if any(c.algorithm is not alg for c, _ in parts):
        raise ValueError("parts use different algorithms")
    params = _crc_params(alg)
    powers: dict[int, int] = {}  # parts mostly share one size: one x^(8n) for all of them
    value = 0  # the CRC of the empty string, for all three
    for c, length in parts:
        power = powers.get(length)
        if power is None:
            power = powers[length] = _x8n(params, length)
        value = _multmodp(params, power, value) ^ int.from_bytes(c.digest, "big")
    return Checksum(alg, value.to_bytes(alg.digest_size, "big"))


COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"


def multipart_checksum_type(algorithm: ChecksumAlgorithm | None, requested: str | None) -> str:
    """The checksum type of a new multipart upload (S3's CreateMultipartUpload rules).

    No algorithm: no type ("" ; a type alone is InvalidRequest). Default: COMPOSITE, but
    FULL_OBJECT for CRC64NVME. FULL_OBJECT with SHA1/SHA256 and COMPOSITE with CRC64NVME
    are refused (InvalidRequest, S3's wording)."""
    if algorithm is None:
        if requested:
            raise InvalidRequest(
                "The x-amz-checksum-type header can only be used with the "
                "x-amz-checksum-algorithm header."
            )
        return ""
    crc64 = algorithm is ChecksumAlgorithm.CRC64NVME
    kind = requested or (FULL_OBJECT if crc64 else COMPOSITE)
    if (kind == FULL_OBJECT and not algorithm.is_crc) or (kind == COMPOSITE and crc64):
        raise InvalidRequest(
            f"The {kind} checksum type cannot be used with the {algorithm.value} "
            "checksum algorithm."
        )
    if kind not in (COMPOSITE, FULL_OBJECT):
        raise InvalidRequest("Value for x-amz-checksum-type header is invalid.")
    return kind
