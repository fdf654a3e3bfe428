"""Six chunkserver processes: every size and range class, kill -9, corruption, full disk."""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from blobstore import errors
from blobstore.codec.ranges import Layout
from blobstore.datapath import (
    BadShard,
    BadShardReason,
    ChunkRef,
    ReadOptions,
    WriteResult,
    read_range,
    write_object,
)
from blobstore.rpc import RpcClient
from chunkserver.shardfile import HEADER_BYTES, decode_header
from tests.integration.chunk_cluster import ChunkCluster

pytestmark = pytest.mark.integration

MiB = 1 << 20
LAYOUT = Layout(chunk_bytes=4 * MiB, stripe_bytes=256 * 1024, k=4, m=2)
READ = ReadOptions(hedge_delay_s=2.0, call_timeout_s=60.0)


def _sizes() -> list[int]:
    s, c = LAYOUT.stripe_bytes, LAYOUT.chunk_bytes
    return [0, 1, s - 1, s, s + 1, c - 1, c, c + 1]


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def _stream(data: bytes, step: int = 64 * 1024) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(data), step):
        yield view[i : i + step]


def _ranges(size: int, rng: random.Random) -> Iterator[tuple[int, int]]:
    """Every range class: whole, empty, first/last byte, inside a piece, across piece,
    stripe and chunk boundaries, and a few random ones."""
    yield 0, size
    if size == 0:
        return
    yield 0, 1
    yield size - 1, 1
    yield size // 2, 0
    piece = LAYOUT.piece_bytes
    for boundary in (piece, LAYOUT.stripe_bytes, LAYOUT.chunk_bytes):
        if boundary < size:
            lo = max(0, boundary - 3)
            yield lo, min(size, boundary + 3) - lo
    for _ in range(4):
        start = rng.randrange(size)
        yield start, rng.randint(0, size - start)


async def _read(
    client: RpcClient,
    cluster: ChunkCluster,
    chunks: tuple[ChunkRef, ...],
    start: int,
    length: int,
    bad: list[BadShard],
) -> bytes:
    out = bytearray()
    async for block in read_range(
        chunks,
        start,
        length,
        directory=cluster.placement(LAYOUT.n),
        transport=client,
        options=READ,
        on_bad_shard=bad.append,
        health=cluster.health,
    ):
        out += block
    return bytes(out)


async def _check_all(
    client: RpcClient,
    cluster: ChunkCluster,
    objects: dict[int, tuple[bytes, WriteResult]],
    bad: list[BadShard],
    seed: int,
) -> None:
    rng = random.Random(seed)
    for size, (data, res) in objects.items():
        for start, length in _ranges(size, rng):
            got = await _read(client, cluster, res.chunks, start, length, bad)
            assert got == data[start : start + length], (size, start, length)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ChunkCluster]:
    c = ChunkCluster(tmp_path / "cluster")
    c.start()
    yield c
    c.stop()


async def _scenario(cluster: ChunkCluster, big: int) -> None:
    client = RpcClient(cluster.secret, backoff_max_s=0.2)
    try:
        placement = cluster.placement(LAYOUT.n)
        objects: dict[int, tuple[bytes, WriteResult]] = {}
        for size in [*_sizes(), big]:
            data = _payload(size, size)
            res = await write_object(
                _stream(data),
                layout=LAYOUT,
                placement=placement,
                transport=client,
                size_bytes=size,
            )
            assert res.size_bytes == size and not res.missing
            objects[size] = (data, res)
        bad: list[BadShard] = []
        await _check_all(client, cluster, objects, bad, 1)
        assert bad == []

        # flip random bytes in random data-shard files of two servers (within m)
        rng = random.Random(7)
        victims = (2, 5)
        corrupted: set[tuple[str, int]] = set()
        for sid in victims:
            files = [f for f in cluster.shard_files(sid) if int(f.name.split(".")[1]) < LAYOUT.k]
            for f in rng.sample(files, min(4, len(files))):
                raw = bytearray(f.read_bytes())
                # flip a bit of object data in the first piece, which a full read fetches
                # (pure padding or parity is left to the scrubber)
                h = decode_header(raw)
                stripe0 = min(h.stripe_bytes, h.data_length)
                plen = -(-stripe0 // h.k)
                in_piece = min(plen, stripe0 - h.shard_index * plen)
                if in_piece <= 0:
                    continue
                raw[HEADER_BYTES + rng.randrange(in_piece)] ^= 1 << rng.randrange(8)
                f.write_bytes(bytes(raw))
                corrupted.add((h.chunk_id.hex, h.shard_index))
        assert corrupted
        bad = []
        await _check_all(client, cluster, objects, bad, 2)
        reported = {
            (b.chunk_id.hex, b.shard_index) for b in bad if b.reason is BadShardReason.CORRUPT
        }
        assert corrupted == reported, (corrupted, reported)

        # kill -9 the same m servers: everything still reads back
        for sid in victims:
            cluster.kill(sid, signal.SIGKILL)
        bad = []
        await _check_all(client, cluster, objects, bad, 3)
    finally:
        await client.close()


async def test_chunkservers_sizes_ranges_kill_and_corruption(cluster: ChunkCluster) -> None:
    await _scenario(cluster, 24 * MiB + 12345)


@pytest.mark.slow
async def test_chunkservers_200_mib_object(cluster: ChunkCluster) -> None:
    await _scenario(cluster, 200 * MiB + 3)


async def test_full_disks_give_insufficient_space(tmp_path: Path) -> None:
    cluster = ChunkCluster(tmp_path / "full", reserve_bytes=1 << 60)
    cluster.start()
    client = RpcClient(cluster.secret)
    try:
        with pytest.raises(errors.InsufficientSpace, match="reserve"):
            await write_object(
                _stream(_payload(MiB, 1)),
                layout=LAYOUT,
                placement=cluster.placement(LAYOUT.n),
                transport=client,
                size_bytes=MiB,
            )
    finally:
        await client.close()
        codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), codes


async def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    cluster = ChunkCluster(tmp_path / "term", count=1)
    cluster.start()
    assert cluster.stop() == {1: 0}
