"""ranges.py against a naive reference that materializes every shard's bytes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.codec.ranges import (
    Layout,
    Position,
    chunk_count,
    chunk_length,
    chunk_spans,
    join_stripe,
    locate,
    object_offset,
    padding_bytes,
    piece_length,
    piece_offset,
    piece_segments,
    shard_data_length,
    split_stripe,
    stripe_count,
    stripe_length,
    stripe_spans,
)

SETTINGS = settings(deadline=None, max_examples=150)


# -- naive reference -------------------------------------------------------------------
def naive_shards(layout: Layout, obj: bytes) -> list[list[bytes]]:
    """For every chunk, the data of each of its k data shards, built byte by byte."""
    chunks = [obj[i : i + layout.chunk_bytes] for i in range(0, len(obj), layout.chunk_bytes)]
    out: list[list[bytes]] = []
    for chunk in chunks:
        shards = [bytearray() for _ in range(layout.k)]
        for s in range(0, len(chunk), layout.stripe_bytes):
            stripe = chunk[s : s + layout.stripe_bytes]
            plen = -(-len(stripe) // layout.k)
            padded = stripe + bytes(plen * layout.k - len(stripe))
            for i in range(layout.k):
                shards[i] += padded[i * plen : (i + 1) * plen]
        out.append([bytes(x) for x in shards])
    return out


def naive_position(layout: Layout, obj_len: int, offset: int) -> Position:
    """Walk the object byte by byte, tracking where each byte lands."""
    chunk, in_chunk = divmod(offset, layout.chunk_bytes)
    chunk_len = min(layout.chunk_bytes, obj_len - chunk * layout.chunk_bytes)
    stripe, in_stripe = divmod(in_chunk, layout.stripe_bytes)
    slen = min(layout.stripe_bytes, chunk_len - stripe * layout.stripe_bytes)
    plen = -(-slen // layout.k)
    shard = 0
    pos = in_stripe
    while pos >= plen:
        pos -= plen
        shard += 1
    return Position(chunk, stripe, shard, pos)


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    k = draw(st.integers(1, 6))
    m = draw(st.integers(0, 3))
    stripe = draw(st.integers(1, 40))
    chunk = stripe * draw(st.integers(1, 4))
    return Layout(chunk, stripe, k, m)


@st.composite
def layout_object_range(draw: st.DrawFn) -> tuple[Layout, bytes, int, int]:
    layout = draw(layouts())
    size = draw(st.integers(0, 3 * layout.chunk_bytes + 7))
    obj = random.Random(size).randbytes(size)
    start = draw(st.integers(0, size))
    length = draw(st.integers(0, size - start))
    return layout, obj, start, length


# -- properties ------------------------------------------------------------------------
@SETTINGS
@given(layout_object_range())
def test_range_slices_reassemble_the_range(case: tuple[Layout, bytes, int, int]) -> None:
    layout, obj, start, length = case
    shards = naive_shards(layout, obj)
    got = bytearray()
    spans = list(chunk_spans(layout, len(obj), start, length))
    for span in spans:
        assert span.chunk_len == len(
            obj[span.chunk_offset : span.chunk_offset + layout.chunk_bytes]
        )
        assert sum(s.length for s in stripe_spans(layout, span)) == span.length
        for sspan in stripe_spans(layout, span):
            assert sspan.piece_offset == piece_offset(layout, sspan.stripe)
            assert sspan.piece_len == piece_length(layout, span.chunk_len, sspan.stripe)
            for ps in sspan.slices:
                assert 0 <= ps.shard < layout.k
                got += shards[span.chunk][ps.shard][ps.offset : ps.offset + ps.length]
    assert bytes(got) == obj[start : start + length]
    if length == 0:
        assert spans == []


@SETTINGS
@given(layouts(), st.integers(0, 200))
def test_shard_lengths_match_reference(layout: Layout, size: int) -> None:
    obj = bytes(size)
    shards = naive_shards(layout, obj)
    assert chunk_count(layout, size) == len(shards)
    for c, chunk_shards in enumerate(shards):
        clen = chunk_length(layout, size, c)
        assert shard_data_length(layout, clen) == len(chunk_shards[0])
        total = sum(
            stripe_length(layout, clen, s) + padding_bytes(layout, clen, s)
            for s in range(stripe_count(layout, clen))
        )
        assert total == layout.k * len(chunk_shards[0])


@SETTINGS
@given(layouts(), st.data())
def test_piece_segments_match_reference(layout: Layout, data: st.DataObject) -> None:
    clen = data.draw(st.integers(0, layout.chunk_bytes))
    # the reference: every stripe's piece length, laid end to end in the shard data
    plens = [
        -(-min(layout.stripe_bytes, clen - s) // layout.k)
        for s in range(0, clen, layout.stripe_bytes)
    ]
    size = sum(plens)
    start = data.draw(st.integers(0, size))
    length = data.draw(st.integers(0, size - start))
    want, pos = [], 0
    for plen in plens:
        overlap = min(start + length, pos + plen) - max(start, pos)
        if overlap > 0:
            want.append((overlap, overlap == plen))
        pos += plen
    assert list(piece_segments(layout, clen, start, length)) == want
    with pytest.raises(ValueError):
        list(piece_segments(layout, clen, start, size - start + 1))


@SETTINGS
@given(layouts(), st.data())
def test_locate_matches_reference_and_inverts(layout: Layout, data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 3 * layout.chunk_bytes + 5))
    offset = data.draw(st.integers(0, size - 1))
    obj = random.Random(size).randbytes(size)
    pos = locate(layout, size, offset)
    assert pos == naive_position(layout, size, offset)
    shards = naive_shards(layout, obj)
    assert (
        shards[pos.chunk][pos.shard][piece_offset(layout, pos.stripe) + pos.offset] == obj[offset]
    )
    assert object_offset(layout, size, pos) == offset


@SETTINGS
@given(layouts(), st.data())
def test_split_join_roundtrip(layout: Layout, data: st.DataObject) -> None:
    stripe = data.draw(st.binary(min_size=1, max_size=layout.stripe_bytes))
    pieces = split_stripe(layout, stripe)
    assert len(pieces) == layout.k
    assert len({len(p) for p in pieces}) == 1
    assert len(pieces[0]) == -(-len(stripe) // layout.k)
    assert b"".join(pieces)[len(stripe) :] == bytes(len(pieces[0]) * layout.k - len(stripe))
    assert join_stripe(pieces, len(stripe)) == stripe


# -- examples and validation -----------------------------------------------------------
def test_default_layout() -> None:
    layout = Layout()
    assert (layout.chunk_bytes, layout.stripe_bytes, layout.k, layout.m) == (
        64 << 20,
        1 << 20,
        4,
        2,
    )
    assert layout.piece_bytes == 256 * 1024
    assert layout.stripes_per_chunk == 64
    assert layout.n == 6
    # 100 MiB + 1: two chunks, the second of 36 MiB + 1 -> 37 stripes, last one 1 byte.
    size = 100 * 1024 * 1024 + 1
    assert chunk_count(layout, size) == 2
    assert chunk_length(layout, size, 1) == 36 * 1024 * 1024 + 1
    assert shard_data_length(layout, 36 * 1024 * 1024 + 1) == 36 * 256 * 1024 + 1
    assert locate(layout, size, size - 1) == Position(1, 36, 0, 0)
    assert padding_bytes(layout, 36 * 1024 * 1024 + 1, 36) == 3


def test_small_object_pays_only_small_pieces() -> None:
    layout = Layout()
    assert shard_data_length(layout, 10) == 3  # ceil(10 / 4), not 256 KiB
    assert shard_data_length(layout, 0) == 0
    assert chunk_count(layout, 0) == 0


@pytest.mark.parametrize(
    ("chunk", "stripe", "k", "m"),
    [
        (10, 10, 0, 2),
        (10, 10, 4, -1),
        (10, 10, 200, 56),
        (10, 0, 4, 2),
        (15, 10, 4, 2),
        (5, 10, 4, 2),
        (2**33, 2**32, 4, 2),
    ],
)
def test_layout_validation(chunk: int, stripe: int, k: int, m: int) -> None:
    with pytest.raises(ValueError):
        Layout(chunk, stripe, k, m)


def test_layout_is_frozen() -> None:
    layout = Layout()
    with pytest.raises(AttributeError):
        layout.k = 3  # type: ignore[misc]


def test_out_of_range_arguments() -> None:
    layout = Layout(8, 4, 2, 1)
    with pytest.raises(ValueError):
        list(chunk_spans(layout, 10, 5, 6))
    with pytest.raises(ValueError):
        list(chunk_spans(layout, 10, -1, 1))
    with pytest.raises(ValueError):
        locate(layout, 10, 10)
    with pytest.raises(ValueError):
        chunk_length(layout, 10, 2)
    with pytest.raises(ValueError):
        stripe_length(layout, 8, 2)
    with pytest.raises(ValueError):
        stripe_count(layout, 9)
    with pytest.raises(ValueError):
        chunk_count(layout, -1)
    with pytest.raises(ValueError):
        piece_offset(layout, -1)
    with pytest.raises(ValueError):
        split_stripe(layout, b"")
    with pytest.raises(ValueError):
        split_stripe(layout, b"12345")
    with pytest.raises(ValueError):
        join_stripe([b"ab", b"cd"], 5)
    # 10-byte object, chunk 1 is 2 bytes: 1 stripe of 2 bytes -> pieces of 1 byte.
    assert object_offset(layout, 10, Position(1, 0, 1, 0)) == 9
    with pytest.raises(ValueError):  # offset beyond the piece
        object_offset(layout, 10, Position(1, 0, 1, 1))
    with pytest.raises(ValueError):  # a parity shard holds no object bytes
        object_offset(layout, 10, Position(0, 0, 2, 0))
    # 9-byte object: chunk 1 has 1 byte, stripe of 1 byte -> shard 1 is padding.
    with pytest.raises(ValueError):
        object_offset(layout, 9, Position(1, 0, 1, 0))
