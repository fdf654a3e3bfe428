"""ShardStore contract, run against every implementation (memory and disk)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from blobstore.errors import CorruptShard, InsufficientSpace, InvalidArgument, NoSuchShard
from chunkserver.shardfile import (
    Buffer,
    ShardFormatError,
    ShardHeader,
    file_length,
    piece_checksum,
    piece_file_offset,
    piece_length,
    shard_checksum,
)
from chunkserver.store import DiskShardStore, MemoryShardStore, ShardStore
from tests.unit.chunkserver.tempfiles import temp_files

STRIPE = 4096


@dataclass
class Harness:
    store: ShardStore
    corrupt: Callable[[uuid.UUID, int, int], None]  # flip the byte at a file offset
    tmp_files: Callable[[], list[str]]  # leftovers of writes (always [] in memory)


def _flip_file(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.fixture(params=["memory", "disk"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    if request.param == "memory":
        mem = MemoryShardStore(capacity_bytes=1 << 30)
        await mem.start()
        return Harness(mem, mem.corrupt_byte, list)
    disk = DiskShardStore(tmp_path / "disk", reserve_bytes=0, batch_bytes=5000)
    await disk.start()
    return Harness(
        disk,
        lambda cid, shard, off: _flip_file(disk.shard_path(cid, shard), off),
        lambda: temp_files(tmp_path / "disk"),
    )


def header(data_length: int, shard: int = 0, cid: uuid.UUID | None = None) -> ShardHeader:
    return ShardHeader(cid or uuid.uuid4(), shard, 4, 2, "zfec", STRIPE, data_length)


def pieces_for(h: ShardHeader, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(piece_length(h, s)) for s in range(h.stripe_count)]


async def stream(chunks: Iterable[Buffer]) -> AsyncIterator[Buffer]:
    for c in chunks:
        yield c


def sliced(data: bytes, step: int) -> list[bytes]:
    return [data[i : i + step] for i in range(0, len(data), step)]


async def read_all(
    store: ShardStore, cid: uuid.UUID, shard: int, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join([b async for b in store.read(cid, shard, offset, length)])


def test_implementations_satisfy_protocol(tmp_path: Path) -> None:
    assert isinstance(MemoryShardStore(), ShardStore)
    assert isinstance(DiskShardStore(tmp_path, 0), ShardStore)


@pytest.mark.parametrize(
    "data_length", [0, 1, 3, STRIPE - 1, STRIPE, STRIPE + 1, 3 * STRIPE + 5, 7 * STRIPE]
)
async def test_write_read_roundtrip(harness: Harness, data_length: int) -> None:
    store = harness.store
    h = header(data_length, shard=1)
    pieces = pieces_for(h, seed=data_length)
    receipt = await store.write(h, stream(pieces))
    assert receipt.file_bytes == file_length(h)
    assert receipt.data_bytes == sum(len(p) for p in pieces)
    assert receipt.checksum == shard_checksum(piece_checksum(p) for p in pieces)
    assert await read_all(store, h.chunk_id, 1) == b"".join(pieces)
    info = await store.stat(h.chunk_id, 1)
    assert info is not None
    assert (info.chunk_id, info.shard_index, info.size_bytes) == (h.chunk_id, 1, file_length(h))
    assert harness.tmp_files() == []


@pytest.mark.parametrize("step", [1, 7, 1000, 5000, 100_000])
async def test_any_stream_slicing(harness: Harness, step: int) -> None:
    h = header(5 * STRIPE + 77)
    data = b"".join(pieces_for(h))
    receipt = await harness.store.write(h, stream(sliced(data, step)))
    assert receipt.data_bytes == len(data)
    assert await read_all(harness.store, h.chunk_id, 0) == data


async def test_range_reads(harness: Harness) -> None:
    # 26 pieces of 1 KiB: ranges span several of the disk store's read batches (4 pieces)
    h = header(25 * STRIPE + 100)
    data = b"".join(pieces_for(h))
    await harness.store.write(h, stream([data]))
    rng = random.Random(4)
    for _ in range(100):
        start = rng.randrange(len(data) + 1)
        length = rng.randrange(len(data) - start + 1)
        assert (
            await read_all(harness.store, h.chunk_id, 0, start, length)
            == data[start : start + length]
        )
    assert await read_all(harness.store, h.chunk_id, 0, 1000) == data[1000:]
    with pytest.raises(InvalidArgument):
        await read_all(harness.store, h.chunk_id, 0, len(data), 1)


def _with_checksums(pieces: list[bytes], start: int, length: int) -> bytes:
    """The body of a checksummed read, built from the pieces (each whole one + checksum)."""
    out, pos = bytearray(), 0
    for p in pieces:
        lo, hi = max(start, pos), min(start + length, pos + len(p))
        if lo < hi:
            out += p[lo - pos : hi - pos]
            if (lo, hi) == (pos, pos + len(p)):
                out += piece_checksum(p).to_bytes(8, "little")
        pos += len(p)
    return bytes(out)


async def test_checksummed_range_reads(harness: Harness) -> None:
    # a short last piece, and ranges across the disk store's read batches (4 pieces)
    h = header(25 * STRIPE + 100)
    pieces = pieces_for(h)
    size = sum(len(p) for p in pieces)
    await harness.store.write(h, stream(pieces))
    rng = random.Random(5)
    ranges = [(0, size), (0, 0), (1024, 1024), (1023, 1026), (size - 25, 25)]
    ranges += [(s, rng.randrange(size - s + 1)) for s in rng.sample(range(size), 60)]
    for start, length in ranges:
        blocks = harness.store.read(h.chunk_id, 0, start, length, checksums=True)
        got = b"".join([b async for b in blocks])
        assert got == _with_checksums(pieces, start, length), (start, length)


async def test_missing_shard(harness: Harness) -> None:
    cid = uuid.uuid4()
    with pytest.raises(NoSuchShard):
        await read_all(harness.store, cid, 0)
    assert await harness.store.stat(cid, 0) is None
    assert await harness.store.delete(cid, 0) is False


async def test_delete_inventory_and_space(harness: Harness) -> None:
    store = harness.store
    base = (await store.space()).used_bytes
    written = {}
    cid = uuid.uuid4()
    for shard in range(6):
        h = header(2 * STRIPE + shard, shard=shard, cid=cid)
        await store.write(h, stream(pieces_for(h)))
        written[(cid, shard)] = file_length(h)
    other = header(10)
    await store.write(other, stream(pieces_for(other)))
    written[(other.chunk_id, 0)] = file_length(other)
    listed = {(i.chunk_id, i.shard_index): i.size_bytes async for i in store.inventory()}
    assert listed == written
    space = await store.space()
    assert space.used_bytes == base + sum(written.values())
    assert space.capacity_bytes > 0
    assert space.free_bytes <= space.capacity_bytes
    assert await store.delete(cid, 3) is True
    assert await store.delete(cid, 3) is False
    assert await store.stat(cid, 3) is None
    with pytest.raises(NoSuchShard):
        await read_all(store, cid, 3)
    del written[(cid, 3)]
    listed = {(i.chunk_id, i.shard_index): i.size_bytes async for i in store.inventory()}
    assert listed == written
    assert (await store.space()).used_bytes == base + sum(written.values())


async def test_absent_names_the_shards_not_held_in_order(harness: Harness) -> None:
    store = harness.store
    held = [header(STRIPE, shard=i) for i in range(3)]
    for h in held:
        await store.write(h, stream(pieces_for(h)))
    other = uuid.uuid4()
    keys = [(other, 1), (held[0].chunk_id, 0), (other, 0), (held[2].chunk_id, 2)]
    assert await store.absent(keys) == [(other, 1), (other, 0)]
    await store.delete(held[2].chunk_id, 2)
    assert await store.absent(keys) == [(other, 1), (other, 0), (held[2].chunk_id, 2)]
    assert await store.absent([]) == []


async def test_delete_with_expect_removes_only_the_file_it_names(harness: Harness) -> None:
    store = harness.store
    h = header(2 * STRIPE)
    await store.write(h, stream(pieces_for(h, seed=1)))
    listed = [i async for i in store.inventory()]
    first = await store.stat(h.chunk_id, 0)
    assert first is not None and listed == [first]
    await store.write(h, stream(pieces_for(h, seed=2)))  # a rewrite of the same size
    second = await store.stat(h.chunk_id, 0)
    assert second is not None and second.file_id != first.file_id
    assert await store.delete(h.chunk_id, 0, expect=first) is False
    assert await read_all(store, h.chunk_id, 0) == b"".join(pieces_for(h, seed=2))
    assert await store.delete(h.chunk_id, 0, expect=second) is True
    assert await store.stat(h.chunk_id, 0) is None
    assert await store.delete(h.chunk_id, 0, expect=second) is False
    assert (await store.space()).used_bytes == 0


async def test_disk_compare_and_delete_is_atomic_with_a_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rewrite that commits while a compare-and-delete is between its check and its
    unlink must survive: the rename waits for the unlink (the store's lock), so the unlink
    removes the old file, never the new one."""
    store = DiskShardStore(tmp_path / "disk", reserve_bytes=0)
    await store.start()
    h = header(2 * STRIPE)
    await store.write(h, stream(pieces_for(h, seed=1)))
    old = await store.stat(h.chunk_id, 0)
    assert old is not None
    loop = asyncio.get_running_loop()
    real_unlink = os.unlink
    rewrite: list[concurrent.futures.Future[object]] = []

    def unlink_after_a_racing_rewrite(path: str | os.PathLike[str]) -> None:
        if not rewrite and str(path) == str(store.shard_path(h.chunk_id, 0)):
            coro = store.write(h, stream(pieces_for(h, seed=2)))
            rewrite.append(asyncio.run_coroutine_threadsafe(coro, loop))
            with contextlib.suppress(concurrent.futures.TimeoutError):
                rewrite[0].result(timeout=0.3)  # done here only if the rename did not wait
        real_unlink(path)

    monkeypatch.setattr("chunkserver.store.disk.os.unlink", unlink_after_a_racing_rewrite)
    assert await store.delete(h.chunk_id, 0, expect=old) is True
    await asyncio.wrap_future(rewrite[0])
    assert await read_all(store, h.chunk_id, 0) == b"".join(pieces_for(h, seed=2))


async def test_overwrite_replaces(harness: Harness) -> None:
    store = harness.store
    cid = uuid.uuid4()
    h1 = header(3 * STRIPE, cid=cid)
    await store.write(h1, stream(pieces_for(h1, seed=1)))
    h2 = header(STRIPE + 1, cid=cid)
    await store.write(h2, stream(pieces_for(h2, seed=2)))
    assert await read_all(store, cid, 0) == b"".join(pieces_for(h2, seed=2))
    assert (await store.space()).used_bytes == file_length(h2)
    assert [i.size_bytes async for i in store.inventory()] == [file_length(h2)]


@pytest.mark.parametrize("extra", [-1, 1])
async def test_wrong_length_stream_leaves_nothing(harness: Harness, extra: int) -> None:
    h = header(2 * STRIPE + 3)
    data = b"".join(pieces_for(h))
    data = data[:-1] if extra < 0 else data + b"x"
    with pytest.raises(InvalidArgument):
        await harness.store.write(h, stream([data]))
    assert await harness.store.stat(h.chunk_id, 0) is None
    assert harness.tmp_files() == []
    assert (await harness.store.space()).used_bytes == 0


async def test_failing_stream_leaves_nothing(harness: Harness) -> None:
    h = header(4 * STRIPE)
    first = pieces_for(h)[0]

    async def broken() -> AsyncIterator[bytes]:
        yield first
        yield first
        raise ConnectionResetError("sender went away")

    with pytest.raises(ConnectionResetError):
        await harness.store.write(h, broken())
    assert await harness.store.stat(h.chunk_id, 0) is None
    assert harness.tmp_files() == []


async def test_corrupt_piece_fails_only_that_piece(harness: Harness) -> None:
    store = harness.store
    h = header(4 * STRIPE)  # pieces of 1024 bytes
    pieces = pieces_for(h)
    await store.write(h, stream(pieces))
    harness.corrupt(h.chunk_id, 0, piece_file_offset(h, 2) + 100)
    with pytest.raises(CorruptShard) as info:
        await read_all(store, h.chunk_id, 0, 2 * 1024 + 5, 10)
    assert info.value.details["stripe"] == "2"
    assert await read_all(store, h.chunk_id, 0, 0, 2048) == pieces[0] + pieces[1]
    assert await read_all(store, h.chunk_id, 0, 3072, 1024) == pieces[3]
    with pytest.raises(CorruptShard):
        await read_all(store, h.chunk_id, 0)


async def test_corrupt_header(harness: Harness) -> None:
    h = header(STRIPE)
    await harness.store.write(h, stream(pieces_for(h)))
    harness.corrupt(h.chunk_id, 0, 20)
    with pytest.raises(ShardFormatError):
        await read_all(harness.store, h.chunk_id, 0)


async def test_insufficient_space_memory() -> None:
    store = MemoryShardStore(capacity_bytes=70_000, reserve_bytes=30_000)
    h = header(16 * STRIPE)  # 16584 file bytes per shard
    await store.write(h, stream(pieces_for(h)))
    await store.write(header(16 * STRIPE), stream(pieces_for(h)))
    h3 = header(16 * STRIPE)
    with pytest.raises(InsufficientSpace, match="reserve of 30000 bytes") as info:
        await store.write(h3, stream(pieces_for(h3)))
    assert info.value.details["reserve_bytes"] == "30000"
    assert await store.stat(h3.chunk_id, 0) is None


async def test_random_byte_damage_never_serves_bad_bytes(harness: Harness) -> None:
    """Flip random bytes of stored shards: every read is either right or CorruptShard."""
    rng = random.Random(7)
    for round_ in range(30):
        h = header(rng.randrange(1, 5 * STRIPE), shard=round_ % 6)
        data = b"".join(pieces_for(h, seed=round_))
        await harness.store.write(h, stream([data]))
        for _ in range(rng.randint(1, 3)):
            harness.corrupt(h.chunk_id, h.shard_index, rng.randrange(file_length(h)))
        start = rng.randrange(len(data) + 1)
        length = rng.randrange(len(data) - start + 1)
        try:
            got = await read_all(harness.store, h.chunk_id, h.shard_index, start, length)
        except CorruptShard:
            continue
        assert got == data[start : start + length]


def _cid(prefix: str, rng: random.Random) -> uuid.UUID:
    """A chunk id whose hex starts with ``prefix`` (to share fan-out directories)."""
    tail = "".join(rng.choice("0123456789abcdef") for _ in range(32 - len(prefix)))
    return uuid.UUID(hex=prefix + tail)


async def _fill_for_paging(store: ShardStore) -> list[tuple[uuid.UUID, int]]:
    """Shards spread over shared and distinct fan-out directories, indexes 0..11."""
    rng = random.Random(7)
    prefixes = ["00", "0000", "0000", "00ff", "7f10", "7f10", "7f11", "ff", "ffff", "a"]
    keys: list[tuple[uuid.UUID, int]] = []
    for p in prefixes:
        cid = _cid(p, rng)
        for shard in [*rng.sample(range(12), 3), 10, 2]:  # "10" sorts before "2" as text
            if (cid, shard) in keys:
                continue
            h = ShardHeader(cid, shard, 8, 4, "zfec", STRIPE, 100 + shard)
            await store.write(h, stream(pieces_for(h)))
            keys.append((cid, shard))
    return sorted(keys, key=lambda k: (k[0].bytes, k[1]))


async def _all_pages(store: ShardStore, limit: int) -> list[tuple[uuid.UUID, int]]:
    out: list[tuple[uuid.UUID, int]] = []
    after: tuple[uuid.UUID, int] | None = None
    for _ in range(1000):
        page = await store.inventory_page(after, limit)
        assert len(page.shards) <= limit
        out.extend((i.chunk_id, i.shard_index) for i in page.shards)
        if not page.is_truncated:
            return out
        assert page.shards, "a truncated page must not be empty"
        after = (page.shards[-1].chunk_id, page.shards[-1].shard_index)
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 1000])
async def test_inventory_pages_in_order(harness: Harness, limit: int) -> None:
    store = harness.store
    want = await _fill_for_paging(store)
    assert await _all_pages(store, limit) == want
    # sizes come with the page
    page = await store.inventory_page(None, 1)
    assert page.shards[0].size_bytes == file_length(
        ShardHeader(want[0][0], want[0][1], 8, 4, "zfec", STRIPE, 100 + want[0][1])
    )


async def test_inventory_page_cursor_semantics(harness: Harness) -> None:
    store = harness.store
    want = await _fill_for_paging(store)
    # a cursor strictly excludes itself; index -1 includes every shard of that chunk
    for i, (cid, shard) in enumerate(want):
        page = await store.inventory_page((cid, shard), 2)
        assert [(s.chunk_id, s.shard_index) for s in page.shards] == want[i + 1 : i + 3]
        assert page.is_truncated == (i + 3 < len(want))
        page = await store.inventory_page((cid, -1), 1)
        assert (page.shards[0].chunk_id, page.shards[0].shard_index) == next(
            k for k in want if k[0] == cid
        )
    # a cursor that names a deleted shard still resumes in place
    cid, shard = want[4]
    assert await store.delete(cid, shard)
    page = await store.inventory_page((cid, shard), 1)
    assert (page.shards[0].chunk_id, page.shards[0].shard_index) == want[5]
    # past the end
    last = (uuid.UUID(hex="f" * 32), 255)
    assert await store.inventory_page(last, 5) == type(page)((), False)
    assert await store.inventory_page(None, 5) != type(page)((), False)


async def test_disk_inventory_page_walks_only_from_the_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page lists a few directories and never the whole store (no full scan + sort)."""
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    rng = random.Random(3)
    ids = sorted((_cid(f"{i:02x}", rng) for i in range(0, 256, 8)), key=lambda c: c.bytes)
    for cid in ids:
        h = header(10, cid=cid)
        await store.write(h, stream(pieces_for(h)))

    async def no_full_scan() -> AsyncIterator[object]:
        raise AssertionError("inventory_page must not list the whole store")
        yield  # pragma: no cover

    monkeypatch.setattr(store, "inventory", no_full_scan)
    listed: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: object) -> object:
        listed.append(str(path))
        return real_scandir(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", counting_scandir)
    page = await store.inventory_page((ids[10], 0), 1)
    assert [s.chunk_id for s in page.shards] == [ids[11]] and page.is_truncated
    # the shards root, then the top and leaf directories of the cursor, of the page's shard
    # and of the one after it (which tells the page is truncated): 7 of the store's 65
    assert len(listed) <= 7, listed
