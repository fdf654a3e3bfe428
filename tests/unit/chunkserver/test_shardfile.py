"""Shard file format: header codec, writer/reader, corruption and truncation."""

from __future__ import annotations

import io
import os
import random
import struct
import uuid
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blobstore.codec.ranges import split_stripe
from blobstore.errors import CorruptShard, InvalidArgument, from_wire
from chunkserver.shardfile import (
    HEADER_BYTES,
    MAGIC,
    InvalidShardHeader,
    NotAShardFile,
    ShardEncoder,
    ShardFormatError,
    ShardHeader,
    ShardHeaderChecksumMismatch,
    ShardReader,
    ShardWriter,
    TruncatedShard,
    UnsupportedShardVersion,
    check_identity,
    decode_header,
    encode_header,
    file_length,
    piece_checksum,
    piece_file_offset,
    piece_length,
    shard_checksum,
    write_shard,
)

SETTINGS = settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
CID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")


def make_pieces(header: ShardHeader, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(piece_length(header, s)) for s in range(header.stripe_count)]


def build(header: ShardHeader, seed: int = 0) -> tuple[bytes, list[bytes]]:
    pieces = make_pieces(header, seed)
    buf = io.BytesIO()
    write_shard(buf, header, pieces)
    return buf.getvalue(), pieces


@st.composite
def headers(draw: st.DrawFn, max_length: int = 400) -> ShardHeader:
    k = draw(st.integers(1, 6))
    m = draw(st.integers(0, 3))
    return ShardHeader(
        chunk_id=uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
        shard_index=draw(st.integers(0, k + m - 1)),
        k=k,
        m=m,
        coder=draw(st.sampled_from(["zfec", "x", "sixteen-chars-ok"])),
        stripe_bytes=draw(st.integers(1, 64)),
        data_length=draw(st.integers(0, max_length)),
    )


# -- header ----------------------------------------------------------------------------
@SETTINGS
@given(headers(max_length=2**40))
def test_header_roundtrip(header: ShardHeader) -> None:
    raw = encode_header(header)
    assert len(raw) == HEADER_BYTES
    assert decode_header(raw) == header


def test_header_byte_layout() -> None:
    h = ShardHeader(CID, 5, 4, 2, "zfec", 1 << 20, 0x0102030405)
    raw = encode_header(h)
    assert raw[0:8] == MAGIC
    assert struct.unpack_from("<HH", raw, 8) == (1, 72)
    assert raw[12:28] == CID.bytes
    assert tuple(raw[28:32]) == (5, 4, 2, 1)
    assert struct.unpack_from("<II", raw, 32) == (1 << 20, 0)
    assert struct.unpack_from("<Q", raw, 40) == (0x0102030405,)
    assert raw[48:64] == b"zfec" + bytes(12)
    assert struct.unpack_from("<Q", raw, 64) == (xxhash.xxh3_64_intdigest(raw[:64]),)


def _resum(raw: bytearray) -> bytes:
    """Recompute the header checksum (to reach the field checks past it)."""
    raw[64:72] = struct.pack("<Q", xxhash.xxh3_64_intdigest(bytes(raw[:64])))
    return bytes(raw)


def test_header_errors() -> None:
    good = encode_header(ShardHeader(CID, 0, 4, 2, "zfec", 64, 100))
    with pytest.raises(NotAShardFile):
        decode_header(b"NOTASHARD" + good[9:])
    with pytest.raises(NotAShardFile):
        decode_header(b"\x00" * 72)
    for cut in range(HEADER_BYTES):
        with pytest.raises(ShardFormatError):
            decode_header(good[:cut])
    with pytest.raises(TruncatedShard):
        decode_header(good[:40])
    v2 = bytearray(good)
    v2[8:10] = struct.pack("<H", 2)
    with pytest.raises(UnsupportedShardVersion, match="version 2"):
        decode_header(bytes(v2))
    flipped = bytearray(good)
    flipped[45] ^= 0x10
    with pytest.raises(ShardHeaderChecksumMismatch):
        decode_header(bytes(flipped))
    bad_fields: list[tuple[int, bytes]] = [
        (28, b"\x06"),  # shard index 6 >= k + m
        (29, b"\x00"),  # k = 0
        (31, b"\x02"),  # unknown checksum algorithm
        (36, b"\x01"),  # reserved not zero
        (10, b"\x50"),  # header size 80
        (48, b"\xff"),  # coder name not ASCII
        (48, b"\x00"),  # empty coder name
        (32, b"\x00\x00\x00\x00"),  # stripe size 0
    ]
    for offset, value in bad_fields:
        raw = bytearray(good)
        raw[offset : offset + len(value)] = value
        with pytest.raises(InvalidShardHeader):
            decode_header(_resum(raw))


def test_header_constructor_validation() -> None:
    with pytest.raises(ValueError):
        ShardHeader(CID, 6, 4, 2, "zfec", 64, 1)
    with pytest.raises(ValueError):
        ShardHeader(CID, 0, 4, 2, "", 64, 1)
    with pytest.raises(ValueError):
        ShardHeader(CID, 0, 4, 2, "é", 64, 1)
    with pytest.raises(ValueError):
        ShardHeader(CID, 0, 4, 2, "zfec", 64, -1)
    with pytest.raises(ValueError):
        ShardHeader(CID, 0, 4, 2, "zfec", 64, 1, checksum_algo=7)


def test_format_errors_travel_as_corrupt_shard() -> None:
    err = TruncatedShard("cut short", shard="3")
    assert isinstance(err, CorruptShard)
    assert err.code == "CorruptShard"
    back = from_wire(err.code, err.message, err.details)
    assert type(back) is CorruptShard
    assert back.details == {"shard": "3", "reason": "truncated"}
    # A peer that does know the subclass name can rebuild it too.
    assert type(from_wire("TruncatedShard", "x", err.details)) is TruncatedShard


# -- offsets and writing ---------------------------------------------------------------
def test_offsets_and_length() -> None:
    h = ShardHeader(CID, 1, 4, 2, "zfec", 100, 250)  # stripes of 100, 100, 50
    assert h.stripe_count == 3
    assert [piece_length(h, s) for s in range(3)] == [25, 25, 13]
    assert [piece_file_offset(h, s) for s in range(3)] == [72, 105, 138]
    assert file_length(h) == 72 + 25 + 25 + 13 + 3 * 8
    assert h.shard_data_length == 63
    empty = ShardHeader(CID, 1, 4, 2, "zfec", 100, 0)
    assert file_length(empty) == HEADER_BYTES
    with pytest.raises(ValueError):
        piece_length(h, 3)


@SETTINGS
@given(headers(), st.data())
def test_write_then_read_any_range(header: ShardHeader, data: st.DataObject) -> None:
    raw, pieces = build(header)
    assert len(raw) == file_length(header)
    shard_data = b"".join(pieces)
    reader = ShardReader.from_bytes(raw)
    assert reader.header == header
    start = data.draw(st.integers(0, len(shard_data)))
    length = data.draw(st.integers(0, len(shard_data) - start))
    batch = data.draw(st.integers(1, 300))
    blocks = list(reader.iter_range(start, length, batch_bytes=batch))
    assert b"".join(blocks) == shard_data[start : start + length]
    assert all(blocks)  # no empty blocks
    assert reader.verify() == ()


@SETTINGS
@given(headers(), st.lists(st.integers(1, 50), min_size=1), st.randoms(use_true_random=False))
def test_any_slicing_gives_same_file(
    header: ShardHeader, cuts: list[int], rng: random.Random
) -> None:
    raw, pieces = build(header)
    stream = b"".join(pieces)
    out = io.BytesIO()
    writer = ShardWriter(out, header)
    pos = 0
    while pos < len(stream):
        step = rng.choice(cuts)
        writer.write(stream[pos : pos + step])
        pos += step
    receipt = writer.finish()
    assert out.getvalue() == raw
    assert receipt.file_bytes == len(raw)
    assert receipt.data_bytes == len(stream)
    assert receipt.checksum == shard_checksum(piece_checksum(p) for p in pieces)
    assert (receipt.chunk_id, receipt.shard_index) == (header.chunk_id, header.shard_index)


def test_writer_rejects_wrong_amount_of_data() -> None:
    h = ShardHeader(CID, 0, 2, 1, "zfec", 8, 12)  # pieces of 4 and 2 bytes
    with pytest.raises(InvalidArgument, match="more piece data"):
        write_shard(io.BytesIO(), h, [b"aaaa", b"bb", b"c"])
    with pytest.raises(InvalidArgument, match="ended after 1 of 2"):
        write_shard(io.BytesIO(), h, [b"aaaa", b"b"])
    enc = ShardEncoder(h)
    with pytest.raises(RuntimeError):
        enc.feed(b"x")
    enc.start()
    with pytest.raises(RuntimeError):
        enc.start()


def test_fd_and_file_targets(tmp_path: Path) -> None:
    h = ShardHeader(CID, 2, 3, 1, "zfec", 30, 95)
    raw, pieces = build(h, seed=3)
    path = tmp_path / "s"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        write_shard(fd, h, pieces)
        assert ShardReader.from_fd(fd).read_range() == b"".join(pieces)
    finally:
        os.close(fd)
    assert path.read_bytes() == raw
    with path.open("rb") as f:
        assert ShardReader.from_file(f).read_range(5, 20) == b"".join(pieces)[5:25]


def test_real_stripes_with_parity_roundtrip() -> None:
    """Pieces produced by split_stripe fit the header's piece lengths exactly."""
    h = ShardHeader(CID, 0, 4, 2, "zfec", 64, 150)
    rng = random.Random(9)
    obj = rng.randbytes(150)
    layout = h.layout
    pieces = [split_stripe(layout, obj[s : s + 64])[0] for s in range(0, 150, 64)]
    buf = io.BytesIO()
    write_shard(buf, h, pieces)
    assert ShardReader.from_bytes(buf.getvalue()).read_range() == b"".join(pieces)


def test_check_identity() -> None:
    h = ShardHeader(CID, 2, 4, 2, "zfec", 64, 1)
    check_identity(h, CID, 2)
    with pytest.raises(CorruptShard, match="holds chunk"):
        check_identity(h, CID, 3)
    with pytest.raises(CorruptShard):
        check_identity(h, uuid.UUID(int=1), 2)


# -- corruption ------------------------------------------------------------------------
def test_flipped_piece_fails_only_that_piece() -> None:
    h = ShardHeader(CID, 0, 2, 1, "zfec", 20, 100)  # 5 stripes, pieces of 10 bytes
    raw, pieces = build(h)
    bad = bytearray(raw)
    bad[piece_file_offset(h, 2) + 3] ^= 0x01
    reader = ShardReader.from_bytes(bytes(bad))
    assert reader.verify() == (2,)
    assert reader.read_range(0, 20) == pieces[0] + pieces[1]
    assert reader.read_range(30, 20) == pieces[3] + pieces[4]
    with pytest.raises(CorruptShard) as info:
        reader.read_range(25, 1)
    assert info.value.details["stripe"] == "2"
    assert not isinstance(info.value, ShardFormatError)
    # Streaming from the start yields the good pieces before failing (batch of 1 piece).
    got = []
    with pytest.raises(CorruptShard):
        for block in reader.iter_range(0, 50, batch_bytes=1):
            got.append(block)
    assert b"".join(got) == pieces[0] + pieces[1]
    # A damaged checksum is as bad as a damaged piece.
    bad2 = bytearray(raw)
    bad2[piece_file_offset(h, 4) + 10] ^= 0x80
    assert ShardReader.from_bytes(bytes(bad2)).verify() == (4,)


def test_truncated_body() -> None:
    h = ShardHeader(CID, 0, 2, 1, "zfec", 20, 100)
    raw, pieces = build(h)
    reader = ShardReader.from_bytes(raw[: piece_file_offset(h, 3) + 5])
    assert reader.read_range(0, 30) == b"".join(pieces[:3])
    with pytest.raises(TruncatedShard):
        reader.read_range(30, 1)
    assert reader.verify() == (3, 4)


def _read_all_or_corrupt(raw: bytes, start: int, length: int, expected: bytes) -> None:
    """The oracle: either exactly the right bytes or CorruptShard, nothing else."""
    try:
        reader = ShardReader.from_bytes(raw)
        got = reader.read_range(start, length)
    except CorruptShard:
        return
    assert got == expected[start : start + length]


@settings(deadline=None, max_examples=200)
@given(headers(max_length=200), st.data())
def test_random_bit_flips_never_return_bad_bytes(header: ShardHeader, data: st.DataObject) -> None:
    raw, pieces = build(header)
    expected = b"".join(pieces)
    bad = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        bit = data.draw(st.integers(0, len(raw) * 8 - 1))
        bad[bit // 8] ^= 1 << (bit % 8)
    start = data.draw(st.integers(0, len(expected)))
    length = data.draw(st.integers(0, len(expected) - start))
    _read_all_or_corrupt(bytes(bad), start, length, expected)


@settings(deadline=None, max_examples=200)
@given(headers(max_length=200), st.data())
def test_random_truncation_never_returns_bad_bytes(
    header: ShardHeader, data: st.DataObject
) -> None:
    raw, pieces = build(header)
    expected = b"".join(pieces)
    cut = data.draw(st.integers(0, len(raw) - 1))
    start = data.draw(st.integers(0, len(expected)))
    length = data.draw(st.integers(0, len(expected) - start))
    _read_all_or_corrupt(raw[:cut], start, length, expected)
    if cut < HEADER_BYTES:
        with pytest.raises(ShardFormatError):
            ShardReader.from_bytes(raw[:cut])


def test_out_of_range_read_is_invalid_argument() -> None:
    h = ShardHeader(CID, 0, 2, 1, "zfec", 20, 100)
    raw, _ = build(h)
    reader = ShardReader.from_bytes(raw)
    with pytest.raises(InvalidArgument):
        reader.read_range(40, 11)
    with pytest.raises(InvalidArgument):
        reader.read_range(-1, 1)
    assert reader.read_range(50, 0) == b""


@pytest.mark.slow
@settings(deadline=None, max_examples=3000)
@given(headers(max_length=2000), st.data())
def test_random_damage_long_run(header: ShardHeader, data: st.DataObject) -> None:
    """Long version of the bit-flip and truncation properties (bigger files, more runs)."""
    raw, pieces = build(header)
    expected = b"".join(pieces)
    bad = bytearray(raw)
    for _ in range(data.draw(st.integers(0, 4))):
        bit = data.draw(st.integers(0, len(raw) * 8 - 1))
        bad[bit // 8] ^= 1 << (bit % 8)
    cut = data.draw(st.integers(0, len(raw)))
    start = data.draw(st.integers(0, len(expected)))
    length = data.draw(st.integers(0, len(expected) - start))
    _read_all_or_corrupt(bytes(bad[:cut]), start, length, expected)
