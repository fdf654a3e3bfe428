"""Body checksums: known vectors, naive bitwise oracles, botocore's classes, combination."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
from botocore.httpchecksum import Crc32Checksum, Sha1Checksum, Sha256Checksum
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.errors import BadDigest
from gateway import checksums
from gateway.checksums import Checksum, ChecksumAlgorithm, Checksummer
from gateway.sigv4 import InvalidDigest, InvalidRequest

CHECK = b"123456789"


def _bitwise(data: bytes, width: int, poly_reflected: int, value: int = 0) -> int:
    """Naive one-bit-at-a-time reflected CRC (init/xorout all ones): the oracle."""
    mask = (1 << width) - 1
    crc = value ^ mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly_reflected if crc & 1 else crc >> 1
    return crc ^ mask


def _crc32c_oracle(data: bytes, value: int = 0) -> int:
    return _bitwise(data, 32, 0x82F63B78, value)


def _crc64_oracle(data: bytes, value: int = 0) -> int:
    return _bitwise(data, 64, 0x9A6C9329AC4BC9B5, value)


def test_known_check_values() -> None:
    assert zlib.crc32(CHECK) == 0xCBF43926
    assert checksums.crc32c(CHECK) == 0xE3069283
    assert checksums.crc32c_pure(CHECK) == 0xE3069283
    assert checksums.crc64nvme(CHECK) == 0xAE8B14860A799888
    assert checksums.crc64nvme_pure(CHECK) == 0xAE8B14860A799888
    assert checksums.crc32c(b"") == 0
    assert checksums.crc64nvme(b"") == 0
    # RFC 3720 (iSCSI) B.4 test vectors for CRC32C
    assert checksums.crc32c(bytes(32)) == 0x8A9136AA
    assert checksums.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert checksums.crc32c(bytes(range(32))) == 0x46DD794E


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300), split=st.integers(min_value=0, max_value=300))
def test_crc_engines_match_bitwise_oracle(data: bytes, split: int) -> None:
    assert checksums.crc32c_pure(data) == _crc32c_oracle(data)
    assert checksums.crc64nvme_pure(data) == _crc64_oracle(data)
    assert checksums.crc32c(data) == _crc32c_oracle(data)
    assert checksums.crc64nvme(data) == _crc64_oracle(data)
    head, tail = data[:split], data[split:]
    assert checksums.crc32c_pure(tail, checksums.crc32c_pure(head)) == _crc32c_oracle(data)
    assert checksums.crc64nvme_pure(tail, checksums.crc64nvme_pure(head)) == _crc64_oracle(data)


def test_pure_engines_accept_buffers() -> None:
    data = bytes(range(256)) * 3
    assert checksums.crc32c_pure(bytearray(data)) == checksums.crc32c_pure(data)
    assert checksums.crc64nvme_pure(memoryview(data)[5:]) == checksums.crc64nvme_pure(data[5:])


@settings(max_examples=40, deadline=None)
@given(a=st.binary(max_size=200), b=st.binary(max_size=200))
def test_crc_combine(a: bytes, b: bytes) -> None:
    engines = {
        ChecksumAlgorithm.CRC32: zlib.crc32,
        ChecksumAlgorithm.CRC32C: checksums.crc32c,
        ChecksumAlgorithm.CRC64NVME: checksums.crc64nvme,
    }
    for alg, fn in engines.items():
        assert checksums.crc_combine(alg, fn(a), fn(b), len(b)) == fn(a + b)


def test_crc_combine_large_length_and_non_crc() -> None:
    a, b = b"x" * 10, b"y" * 100_000
    got = checksums.crc_combine(ChecksumAlgorithm.CRC32, zlib.crc32(a), zlib.crc32(b), len(b))
    assert got == zlib.crc32(a + b)
    with pytest.raises(ValueError):
        checksums.crc_combine(ChecksumAlgorithm.SHA256, 0, 0, 1)


@pytest.mark.parametrize(
    ("alg", "boto_cls"),
    [
        (ChecksumAlgorithm.CRC32, Crc32Checksum),
        (ChecksumAlgorithm.SHA1, Sha1Checksum),
        (ChecksumAlgorithm.SHA256, Sha256Checksum),
    ],
)
def test_checksummer_matches_botocore(alg: ChecksumAlgorithm, boto_cls: type) -> None:
    data = bytes((i * 31) % 256 for i in range(100_000))
    ours = Checksummer([alg])
    theirs = boto_cls()
    for i in range(0, len(data), 4097):
        ours.update(data[i : i + 4097])
        theirs.update(data[i : i + 4097])
    assert ours.digest(alg).b64 == theirs.b64digest()


def test_checksummer_many_algorithms() -> None:
    data = b"The quick brown fox"
    summer = Checksummer([*ChecksumAlgorithm, ChecksumAlgorithm.CRC32])  # duplicates folded
    summer.update(data[:5])
    summer.update(memoryview(data)[5:])
    got = {c.algorithm: c.digest for c in summer.digests()}
    assert len(summer.algorithms) == len(ChecksumAlgorithm)
    assert got[ChecksumAlgorithm.MD5] == hashlib.md5(data).digest()
    assert got[ChecksumAlgorithm.SHA1] == hashlib.sha1(data).digest()
    assert got[ChecksumAlgorithm.SHA256] == hashlib.sha256(data).digest()
    assert got[ChecksumAlgorithm.CRC32] == zlib.crc32(data).to_bytes(4, "big")
    assert got[ChecksumAlgorithm.CRC32C] == _crc32c_oracle(data).to_bytes(4, "big")
    assert got[ChecksumAlgorithm.CRC64NVME] == _crc64_oracle(data).to_bytes(8, "big")


def test_header_names_and_parsing() -> None:
    assert ChecksumAlgorithm.MD5.header_name == "content-md5"
    assert ChecksumAlgorithm.CRC64NVME.header_name == "x-amz-checksum-crc64nvme"
    assert ChecksumAlgorithm.from_name("CRC32C") is ChecksumAlgorithm.CRC32C
    assert ChecksumAlgorithm.from_name("x-amz-checksum-sha256") is ChecksumAlgorithm.SHA256
    with pytest.raises(InvalidRequest):
        ChecksumAlgorithm.from_name("md5")
    with pytest.raises(InvalidRequest):
        ChecksumAlgorithm.from_name("xxhash64")


@pytest.mark.parametrize(
    "value", ["", "abc", "AAAA", "!!!!" * 6, base64.b64encode(b"x" * 15).decode()]
)
def test_malformed_content_md5(value: str) -> None:
    with pytest.raises(InvalidDigest):
        checksums.parse_content_md5(value)


def test_expected_checksums_and_verification() -> None:
    data = b"hello"
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    headers = [
        ("Content-MD5", md5),
        ("x-amz-checksum-crc32", "NhCmhg=="),
        ("x-amz-checksum-algorithm", "CRC32"),
        ("x-amz-checksum-mode", "ENABLED"),
        ("x-amz-checksum-type", "FULL_OBJECT"),
    ]
    expected = checksums.expected_checksums(headers)
    assert [c.algorithm for c in expected] == [ChecksumAlgorithm.MD5, ChecksumAlgorithm.CRC32]
    summer = Checksummer(c.algorithm for c in expected)
    summer.update(data)
    checksums.verify_checksums(expected, summer)
    wrong = Checksummer(c.algorithm for c in expected)
    wrong.update(b"hellO")
    with pytest.raises(BadDigest, match="Content-MD5"):
        checksums.verify_checksums(expected, wrong)
    with pytest.raises(BadDigest, match="CRC32"):
        checksums.verify_checksums(expected[1:], wrong)


def test_expected_checksums_errors() -> None:
    with pytest.raises(InvalidRequest, match="single"):
        checksums.expected_checksums(
            [("x-amz-checksum-crc32", "NhCmhg=="), ("x-amz-checksum-sha1", "A" * 27 + "=")]
        )
    with pytest.raises(InvalidRequest):
        checksums.expected_checksums([("x-amz-checksum-crc32", "NhCmhg")])
    with pytest.raises(InvalidRequest):
        checksums.expected_checksums([("x-amz-checksum-crc32", "AAAAAAAA")])  # 6 bytes
    with pytest.raises(InvalidDigest):
        checksums.expected_checksums([("content-md5", "nope")])


def test_composite_checksum() -> None:
    parts = [b"part one", b"part two!", b"3"]
    digests = [Checksum(ChecksumAlgorithm.CRC32, zlib.crc32(p).to_bytes(4, "big")) for p in parts]
    joined = b"".join(d.digest for d in digests)
    want = base64.b64encode(zlib.crc32(joined).to_bytes(4, "big")).decode() + "-3"
    assert checksums.composite_checksum(digests) == want
    sha = [Checksum(ChecksumAlgorithm.SHA256, hashlib.sha256(p).digest()) for p in parts]
    want_sha = base64.b64encode(hashlib.sha256(b"".join(d.digest for d in sha)).digest())
    assert checksums.composite_checksum(sha) == want_sha.decode() + "-3"
    with pytest.raises(ValueError):
        checksums.composite_checksum([])
    with pytest.raises(ValueError):
        checksums.composite_checksum([digests[0], sha[0]])


def test_backends_reported() -> None:
    names = dict(checksums.BACKENDS)
    assert names["crc32"] == "zlib"
    assert names["crc32c"] in {"awscrt", "crc32c", "pure-python"}
    assert names["crc64nvme"] in {"awscrt", "pure-python"}
