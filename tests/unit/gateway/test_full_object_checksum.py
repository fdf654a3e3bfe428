"""FULL_OBJECT multipart checksums (CRC combination) and S3's checksum-type rules, against
the oracle: the CRC of the concatenation computed directly."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.checksums import (
    COMPOSITE,
    FULL_OBJECT,
    Checksum,
    ChecksumAlgorithm,
    crc32c,
    crc32c_pure,
    crc64nvme,
    crc64nvme_pure,
    crc_combine,
    full_object_checksum,
    multipart_checksum_type,
)
from gateway.sigv4 import InvalidRequest

_ORACLES: dict[ChecksumAlgorithm, Callable[[bytes], int]] = {
    ChecksumAlgorithm.CRC32: zlib.crc32,
    ChecksumAlgorithm.CRC32C: lambda d: crc32c_pure(d),
    ChecksumAlgorithm.CRC64NVME: lambda d: crc64nvme_pure(d),
}
CRCS = tuple(_ORACLES)


def _checksum(alg: ChecksumAlgorithm, data: bytes) -> Checksum:
    return Checksum(alg, _ORACLES[alg](data).to_bytes(alg.digest_size, "big"))


@settings(deadline=None, max_examples=60)
@given(
    st.sampled_from(CRCS),
    st.lists(st.binary(max_size=300), min_size=1, max_size=8),
)
def test_full_object_checksum_equals_crc_of_concatenation(
    alg: ChecksumAlgorithm, parts: list[bytes]
) -> None:
    combined = full_object_checksum([(_checksum(alg, p), len(p)) for p in parts])
    assert combined == _checksum(alg, b"".join(parts))


@settings(deadline=None, max_examples=40)
@given(
    st.sampled_from(CRCS),
    st.binary(max_size=64),
    st.binary(max_size=64),
    st.integers(min_value=1, max_value=4),
)
def test_repeated_part_sizes_share_one_power(
    alg: ChecksumAlgorithm, a: bytes, b: bytes, repeat: int
) -> None:
    # many parts of the same size (the cached x^(8n) path) and a different last part
    parts = [a] * repeat + [b]
    combined = full_object_checksum([(_checksum(alg, p), len(p)) for p in parts])
    assert combined == _checksum(alg, b"".join(parts))


@pytest.mark.parametrize("alg", CRCS)
def test_large_parts_combine(alg: ChecksumAlgorithm) -> None:
    # 3 MiB parts: the power computation over many bits, checked against the direct CRC
    part = bytes(range(256)) * (3 * 4096)
    parts = [part, part[::-1], b"tail"]
    # the pure engines are slow over megabytes: the oracle uses the fast backends here
    fast: dict[ChecksumAlgorithm, Callable[[bytes], int]] = {
        ChecksumAlgorithm.CRC32: zlib.crc32,
        ChecksumAlgorithm.CRC32C: crc32c,
        ChecksumAlgorithm.CRC64NVME: crc64nvme,
    }
    crc = fast[alg]
    size = alg.digest_size
    values = [(Checksum(alg, crc(p).to_bytes(size, "big")), len(p)) for p in parts]
    assert full_object_checksum(values).digest == crc(b"".join(parts)).to_bytes(size, "big")


@settings(deadline=None, max_examples=40)
@given(st.sampled_from(CRCS), st.binary(max_size=200), st.binary(max_size=200))
def test_crc_combine_matches_oracle(alg: ChecksumAlgorithm, a: bytes, b: bytes) -> None:
    fn = _ORACLES[alg]
    assert crc_combine(alg, fn(a), fn(b), len(b)) == fn(a + b)


def test_full_object_checksum_refuses_bad_input() -> None:
    crc = _checksum(ChecksumAlgorithm.CRC32, b"x")
    with pytest.raises(ValueError):
        full_object_checksum([])
    with pytest.raises(ValueError):
        full_object_checksum([(Checksum(ChecksumAlgorithm.SHA256, bytes(32)), 1)])
    with pytest.raises(ValueError):
        full_object_checksum([(crc, 1), (_checksum(ChecksumAlgorithm.CRC32C, b"x"), 1)])


@pytest.mark.parametrize(
    ("alg", "requested", "want"),
    [
        (None, None, ""),
        (ChecksumAlgorithm.CRC32, None, COMPOSITE),
        (ChecksumAlgorithm.CRC32C, None, COMPOSITE),
        (ChecksumAlgorithm.SHA1, None, COMPOSITE),
        (ChecksumAlgorithm.SHA256, COMPOSITE, COMPOSITE),
        (ChecksumAlgorithm.CRC64NVME, None, FULL_OBJECT),
        (ChecksumAlgorithm.CRC32, FULL_OBJECT, FULL_OBJECT),
        (ChecksumAlgorithm.CRC32C, FULL_OBJECT, FULL_OBJECT),
        (ChecksumAlgorithm.CRC64NVME, FULL_OBJECT, FULL_OBJECT),
    ],
)
def test_multipart_checksum_type(
    alg: ChecksumAlgorithm | None, requested: str | None, want: str
) -> None:
    assert multipart_checksum_type(alg, requested) == want


@pytest.mark.parametrize(
    ("alg", "requested", "message"),
    [
        (
            ChecksumAlgorithm.SHA1,
            FULL_OBJECT,
            "The FULL_OBJECT checksum type cannot be used with the sha1 checksum algorithm.",
        ),
        (
            ChecksumAlgorithm.SHA256,
            FULL_OBJECT,
            "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm.",
        ),
        (
            ChecksumAlgorithm.CRC64NVME,
            COMPOSITE,
            "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.",
        ),
        (None, FULL_OBJECT, "x-amz-checksum-type header can only be used with"),
        (ChecksumAlgorithm.CRC32, "PARTIAL", "Value for x-amz-checksum-type header is invalid."),
    ],
)
def test_multipart_checksum_type_refusals(
    alg: ChecksumAlgorithm | None, requested: str, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        multipart_checksum_type(alg, requested)
