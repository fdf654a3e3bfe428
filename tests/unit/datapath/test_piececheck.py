"""PieceCheck against bodies from the chunkserver's own checksummed reads."""

from __future__ import annotations

import io
import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.codec.ranges import piece_segments
from blobstore.datapath.piececheck import PieceCheck, PieceMismatch
from chunkserver.shardfile import ShardHeader, ShardReader, piece_length, write_shard

SETTINGS = settings(deadline=None, max_examples=200)


class Case:
    """A shard, a range of its data, and the checksummed body a chunkserver sends for it."""

    def __init__(self, stripe: int, k: int, data_length: int, seed: int) -> None:
        rng = random.Random(seed)
        self.header = ShardHeader(uuid.uuid4(), 0, k, 1, "zfec", stripe, data_length)
        pieces = [
            rng.randbytes(piece_length(self.header, s)) for s in range(self.header.stripe_count)
        ]
        self.data = b"".join(pieces)
        f = io.BytesIO()
        write_shard(f, self.header, pieces)
        self.reader = ShardReader.from_bytes(f.getvalue())

    def body(self, start: int, length: int) -> bytes:
        # small read batches: a range spans several, as on a disk store
        blocks = self.reader.iter_range(start, length, batch_bytes=50, checksums=True)
        return b"".join(blocks)

    def segments(self, start: int, length: int) -> list[tuple[int, bool]]:
        return list(piece_segments(self.header.layout, self.header.data_length, start, length))

    def check(self, start: int, length: int) -> PieceCheck:
        return PieceCheck(self.segments(start, length))


@st.composite
def cases(draw: st.DrawFn) -> tuple[Case, int, int, list[int]]:
    stripe = draw(st.integers(1, 64))
    k = draw(st.integers(1, 4))
    case = Case(stripe, k, draw(st.integers(0, 6 * stripe)), draw(st.integers(0, 99)))
    start = draw(st.integers(0, len(case.data)))
    length = draw(st.integers(0, len(case.data) - start))
    cuts = draw(st.lists(st.integers(1, 40), max_size=30))  # how the body arrives
    return case, start, length, cuts


def frames(body: bytes, cuts: list[int]) -> list[memoryview]:
    out, pos, view = [], 0, memoryview(body)
    for n in cuts:
        out.append(view[pos : pos + n])
        pos += n
    out.append(view[pos:])
    return out


@SETTINGS
@given(cases())
def test_any_framing_yields_the_range(c: tuple[Case, int, int, list[int]]) -> None:
    case, start, length, cuts = c
    check = case.check(start, length)
    got = b"".join(bytes(v) for f in frames(case.body(start, length), cuts) for v in check.feed(f))
    assert got == case.data[start : start + length]
    assert check.done


@SETTINGS
@given(cases(), st.data())
def test_a_flipped_byte_in_a_whole_piece_is_caught_before_its_bytes_pass(
    c: tuple[Case, int, int, list[int]], data: st.DataObject
) -> None:
    case, start, length, cuts = c
    body = bytearray(case.body(start, length))
    # where each whole piece (bytes + checksum) lies in the body, and its range offset
    spans, pos, out = [], 0, 0
    for n, whole in case.segments(start, length):
        if whole:
            spans.append((pos, pos + n + 8, out))
        pos += n + (8 if whole else 0)
        out += n
    if not spans:
        return
    lo, hi, first_byte = data.draw(st.sampled_from(spans))
    body[data.draw(st.integers(lo, hi - 1))] ^= 1 << data.draw(st.integers(0, 7))
    check = case.check(start, length)
    passed = 0
    with pytest.raises(PieceMismatch):
        for f in frames(bytes(body), cuts):
            passed += sum(len(v) for v in check.feed(f))
    assert passed <= first_byte  # nothing of the bad piece (or after it) got through


def test_bytes_past_the_range_are_refused() -> None:
    case = Case(16, 2, 40, 1)
    check = case.check(0, 10)
    with pytest.raises(PieceMismatch, match="past the end"):
        check.feed(memoryview(case.body(0, 10) + b"x"))


def test_a_checksum_split_across_frames_is_reassembled() -> None:
    case = Case(16, 2, 32, 2)  # two whole pieces of 8 bytes, each followed by 8
    body = case.body(0, 16)
    check = case.check(0, 16)
    assert check.feed(memoryview(body[:11])) == []  # piece 0 held until its checksum is whole
    assert [bytes(v) for v in check.feed(memoryview(body[11:17]))] == [case.data[:8]]
    assert not check.done
    assert b"".join(check.feed(memoryview(body[17:]))) == case.data[8:16]
    assert check.done
