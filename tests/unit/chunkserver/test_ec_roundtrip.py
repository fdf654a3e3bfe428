"""The data path in miniature: ranges + coder + shard files + store, with lost shards.

Encodes an object stripe by stripe into k+m shards in a store, then serves byte ranges
the way a gateway would: healthy reads fetch only the data-shard slices the range plan
names; with shards missing or corrupt, whole pieces of the touched stripes are read from
any k good shards and decoded.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest

from blobstore.codec.ec import NotEnoughPieces, get_coder
from blobstore.codec.ranges import (
    Layout,
    StripeSpan,
    chunk_count,
    chunk_length,
    chunk_spans,
    join_stripe,
    split_stripe,
    stripe_spans,
)
from blobstore.errors import CorruptShard, NoSuchShard
from chunkserver.shardfile import ShardHeader, ShardReader, piece_file_offset
from chunkserver.store import MemoryShardStore

LAYOUT = Layout(chunk_bytes=4 * 1000, stripe_bytes=1000, k=4, m=2)


async def _one(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for p in pieces:
        yield p


async def put_object(store: MemoryShardStore, obj: bytes) -> list[uuid.UUID]:
    coder = get_coder("zfec", LAYOUT.k, LAYOUT.m)
    chunk_ids = []
    for c in range(chunk_count(LAYOUT, len(obj))):
        cid = uuid.UUID(int=c + 1)
        clen = chunk_length(LAYOUT, len(obj), c)
        chunk = obj[c * LAYOUT.chunk_bytes : c * LAYOUT.chunk_bytes + clen]
        shards: list[list[bytes]] = [[] for _ in range(LAYOUT.n)]
        for s in range(0, clen, LAYOUT.stripe_bytes):
            data = split_stripe(LAYOUT, chunk[s : s + LAYOUT.stripe_bytes])
            for i, piece in enumerate(data + coder.encode(data)):
                shards[i].append(piece)
        for i, pieces in enumerate(shards):
            h = ShardHeader(cid, i, LAYOUT.k, LAYOUT.m, "zfec", LAYOUT.stripe_bytes, clen)
            await store.write(h, _one(pieces))
        chunk_ids.append(cid)
    return chunk_ids


async def fetch(store: MemoryShardStore, cid: uuid.UUID, shard: int, off: int, n: int) -> bytes:
    return b"".join([b async for b in store.read(cid, shard, off, n)])


async def read_stripe(
    store: MemoryShardStore, cid: uuid.UUID, stripe: StripeSpan
) -> tuple[bytes, bool]:
    """The wanted bytes of one stripe, and whether a decode was needed."""
    try:  # healthy path: only the data slices the range names, no decode
        parts = [await fetch(store, cid, sl.shard, sl.offset, sl.length) for sl in stripe.slices]
        return b"".join(parts), False
    except (NoSuchShard, CorruptShard):
        pass
    # degraded path: whole pieces of this stripe from the first k good shards
    got: list[tuple[int, bytes]] = []
    for shard in range(LAYOUT.n):
        try:
            got.append(
                (shard, await fetch(store, cid, shard, stripe.piece_offset, stripe.piece_len))
            )
        except (NoSuchShard, CorruptShard):
            continue
        if len(got) == LAYOUT.k:
            break
    coder = get_coder("zfec", LAYOUT.k, LAYOUT.m)
    data = join_stripe(coder.decode(got), stripe.stripe_len)
    return data[stripe.start : stripe.start + stripe.length], True


async def get_range(
    store: MemoryShardStore, chunk_ids: list[uuid.UUID], size: int, start: int, length: int
) -> tuple[bytes, int]:
    """The object bytes ``[start, start + length)`` and how many stripes were decoded."""
    out = bytearray()
    decoded = 0
    for span in chunk_spans(LAYOUT, size, start, length):
        for stripe in stripe_spans(LAYOUT, span):
            data, was_decoded = await read_stripe(store, chunk_ids[span.chunk], stripe)
            out += data
            decoded += was_decoded
    return bytes(out), decoded


@pytest.mark.parametrize("size", [1, 999, 1000, 4001, 9999])
async def test_ranges_healthy_and_degraded(size: int) -> None:
    rng = random.Random(size)
    obj = rng.randbytes(size)
    store = MemoryShardStore()
    chunk_ids = await put_object(store, obj)
    ranges = [(0, size), (size // 3, size // 2), (size - 1, 1), (0, 0)]
    ranges += [(s, rng.randrange(size - s + 1)) for s in (rng.randrange(size) for _ in range(8))]
    for start, length in ranges:
        got, decoded = await get_range(store, chunk_ids, size, start, length)
        assert got == obj[start : start + length]
        assert decoded == 0
    # Lose m = 2 shards of every chunk: data shard 1 deleted, every piece of shard 3 rotten.
    for cid in chunk_ids:
        await store.delete(cid, 1)
        header = ShardReader.from_bytes(store.raw_bytes(cid, 3)).header
        for s in range(header.stripe_count):
            store.corrupt_byte(cid, 3, piece_file_offset(header, s))
    for start, length in ranges:
        got, decoded = await get_range(store, chunk_ids, size, start, length)
        assert got == obj[start : start + length]
    got, decoded = await get_range(store, chunk_ids, size, 0, size)
    assert decoded > 0 or size <= 250  # a 1-byte object only touches data shard 0
    # One more loss is beyond m: decoding must refuse, not invent bytes.
    await store.delete(chunk_ids[0], 0)
    with pytest.raises(NotEnoughPieces):
        await get_range(store, chunk_ids, size, 0, size)
