"""DiskShardStore specifics: directory layout, crash leftovers, full disk, cancellation."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import shutil
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.errors import CorruptShard, InsufficientSpace, NoSuchShard
from chunkserver.shardfile import ShardHeader, file_length, piece_length
from chunkserver.store.disk import (
    TEMP_SUFFIX,
    DiskShardStore,
    _WrittenLately,
    parse_shard_name,
    shard_name,
)
from tests.unit.chunkserver.pagecache import (
    cached,
    drop,
    none_resident_past_first_page,
    require_droppable,
    resident_at,
)
from tests.unit.chunkserver.tempfiles import temp_files


@dataclass(frozen=True)
class FakeVfs:
    f_frsize: int
    f_blocks: int
    f_bavail: int


def hdr(data_length: int, shard: int = 0, stripe: int = 4096) -> ShardHeader:
    return ShardHeader(uuid.uuid4(), shard, 4, 2, "zfec", stripe, data_length)


def pieces(h: ShardHeader) -> list[bytes]:
    rng = random.Random(h.data_length)
    return [rng.randbytes(piece_length(h, s)) for s in range(h.stripe_count)]


async def stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


async def read_all(
    store: DiskShardStore, cid: uuid.UUID, shard: int, *, cache: bool = True
) -> bytes:
    return b"".join([b async for b in store.read(cid, shard, cache=cache)])


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_fan_out_layout(tmp_path: Path) -> None:
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    h = hdr(100, shard=5)
    await store.write(h, stream(pieces(h)))
    hexid = h.chunk_id.hex
    path = tmp_path / "shards" / hexid[:2] / hexid[2:4] / f"{hexid}.5"
    assert path.is_file()
    assert store.shard_path(h.chunk_id, 5) == path
    assert parse_shard_name(shard_name(h.chunk_id, 5)) == (h.chunk_id, 5)
    for bad in ("x.1", f"{hexid}", f"{hexid}.x", f"{hexid}.1.tmp", f"{'g' * 32}.1"):
        assert parse_shard_name(bad) is None


async def test_start_removes_crash_leftovers_and_recounts(tmp_path: Path) -> None:
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    h = hdr(3 * 4096 + 1)
    receipt = await store.write(h, stream(pieces(h)))
    # A crash mid-write: a half-written temp file beside its target, never renamed, and
    # one in tmp/, where earlier versions wrote.
    crashed = store.shard_path(uuid.uuid4(), 0)
    crashed.parent.mkdir(parents=True, exist_ok=True)
    crashed.with_name(f"{crashed.name}.abc{TEMP_SUFFIX}").write_bytes(b"partial")
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / f"{shard_name(uuid.uuid4(), 0)}.abc.tmp").write_bytes(b"partial")
    assert len(temp_files(tmp_path)) == 2
    # A stray file in a shard directory is ignored (and logged), not listed.
    (store.shard_path(h.chunk_id, 0).parent / "README").write_text("hi")
    again = DiskShardStore(tmp_path, 0)
    await again.start()
    assert temp_files(tmp_path) == []
    assert not (tmp_path / "tmp").exists()
    assert [(i.chunk_id, i.size_bytes) async for i in again.inventory()] == [
        (h.chunk_id, receipt.file_bytes)
    ]
    assert (await again.space()).used_bytes == receipt.file_bytes
    assert await read_all(again, h.chunk_id, 0) == b"".join(pieces(h))


async def test_full_disk_refuses_writes(tmp_path: Path) -> None:
    vfs = FakeVfs(f_frsize=4096, f_blocks=1000, f_bavail=300)  # 1228800 free
    store = DiskShardStore(tmp_path, reserve_bytes=1_200_000, statvfs=lambda _p: vfs)
    await store.start()
    small = hdr(4096)  # 72 + 1024 + 8 bytes: fits above the reserve
    await store.write(small, stream(pieces(small)))
    big = hdr(1 << 20, stripe=1 << 20)
    with pytest.raises(InsufficientSpace) as info:
        await store.write(big, stream(pieces(big)))
    msg = str(info.value)
    assert "1228800 bytes free" in msg
    assert "reserve of 1200000 bytes" in msg
    assert info.value.details["free_bytes"] == "1228800"
    assert await store.stat(big.chunk_id, 0) is None
    assert temp_files(tmp_path) == []
    space = await store.space()
    assert (space.capacity_bytes, space.free_bytes, space.writable_bytes) == (
        4096000,
        1228800,
        28800,
    )


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
async def test_a_disk_that_fills_up_during_a_write_answers_insufficient_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    # the reserve check passed (reserve 0), then the file system ran out of room
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    h = hdr(8 * 4096)
    real_writev = os.writev
    calls = 0

    def writev(fd: int, bufs: list[memoryview]) -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(code, os.strerror(code))
        return real_writev(fd, bufs[:1])  # a short first write, then the disk is full

    monkeypatch.setattr(os, "writev", writev)
    with pytest.raises(InsufficientSpace, match="is full"):
        await store.write(h, stream(pieces(h)))
    monkeypatch.undo()
    assert temp_files(tmp_path) == []
    assert await store.stat(h.chunk_id, 0) is None
    await store.write(h, stream(pieces(h)))  # room again: the same shard is written
    assert await read_all(store, h.chunk_id, 0) == b"".join(pieces(h))


async def test_other_write_errors_stay_what_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    h = hdr(4096)

    def fail(fd: int, bufs: list[memoryview]) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "writev", fail)
    with pytest.raises(OSError, match="Input/output"):
        await store.write(h, stream(pieces(h)))
    monkeypatch.undo()
    assert temp_files(tmp_path) == []


async def test_cancelled_write_leaves_nothing(tmp_path: Path) -> None:
    store = DiskShardStore(tmp_path, 0, batch_bytes=1)
    await store.start()
    h = hdr(8 * 4096)
    sent = asyncio.Event()
    fds = open_fds()

    async def stalls() -> AsyncIterator[bytes]:
        for p in pieces(h)[:3]:
            yield p
        sent.set()
        await asyncio.Event().wait()  # the sender hangs
        yield b""  # pragma: no cover

    task = asyncio.create_task(store.write(h, stalls()))
    await asyncio.wait_for(sent.wait(), 10)
    assert len(temp_files(tmp_path)) == 1  # the write is in progress, beside its target
    assert [i async for i in store.inventory()] == []  # and not a shard yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert temp_files(tmp_path) == []
    assert await store.stat(h.chunk_id, 0) is None
    assert open_fds() == fds


async def test_abandoned_read_closes_its_fd(tmp_path: Path) -> None:
    store = DiskShardStore(tmp_path, 0, batch_bytes=1, open_files=0)  # no files kept open
    await store.start()
    h = hdr(8 * 4096)
    await store.write(h, stream(pieces(h)))
    fds = open_fds()
    reader = store.read(h.chunk_id, 0)
    assert await anext(reader) == pieces(h)[0]
    assert open_fds() == fds + 1
    await reader.aclose()
    assert open_fds() == fds


def count_opens(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    opened: list[int] = []
    real_open = DiskShardStore._open_shard

    def counting(path: str, chunk_id: uuid.UUID, shard_index: int) -> object:
        opened.append(shard_index)
        return real_open(path, chunk_id, shard_index)

    monkeypatch.setattr(DiskShardStore, "_open_shard", staticmethod(counting))
    return opened


async def test_reads_keep_the_file_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    h = hdr(3 * 4096 + 5)
    await store.write(h, stream(pieces(h)))
    opened = count_opens(monkeypatch)
    fds = open_fds()
    for _ in range(3):
        assert await read_all(store, h.chunk_id, 0) == b"".join(pieces(h))
    assert opened == [0] and store.open_files == 1 and open_fds() == fds + 1
    store.close()
    assert store.open_files == 0 and open_fds() == fds


async def test_a_cached_file_deleted_or_replaced_behind_the_store_is_noticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    h = hdr(2 * 4096)
    await store.write(h, stream(pieces(h)))
    path = store.shard_path(h.chunk_id, 0)
    await read_all(store, h.chunk_id, 0)
    fds = open_fds()
    # replaced by another file (a new inode): reopened, the new bytes served
    other = DiskShardStore(tmp_path / "other", 0)
    await other.start()
    h2 = ShardHeader(h.chunk_id, 0, 4, 2, "zfec", 4096, h.data_length)
    new = [bytes(len(p)) for p in pieces(h)]
    await other.write(h2, stream(new))
    os.replace(other.shard_path(h.chunk_id, 0), path)
    opened = count_opens(monkeypatch)
    assert await read_all(store, h.chunk_id, 0) == b"".join(new)
    assert opened == [0] and open_fds() == fds  # the old fd closed, the new one kept
    # deleted: missing at once, although its fd was open
    os.unlink(path)
    with pytest.raises(NoSuchShard):
        await read_all(store, h.chunk_id, 0)
    assert store.open_files == 0 and open_fds() == fds - 1


async def test_delete_and_rewrite_drop_the_open_file(tmp_path: Path) -> None:
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    h = hdr(4096)
    await store.write(h, stream(pieces(h)))
    await read_all(store, h.chunk_id, 0)
    assert store.open_files == 1
    await store.write(h, stream(pieces(h)))  # rewritten (a repair onto this server)
    assert store.open_files == 0
    await read_all(store, h.chunk_id, 0)
    assert await store.delete(h.chunk_id, 0)
    assert store.open_files == 0


async def test_open_files_are_bounded_and_an_evicted_file_stays_open_for_its_reader(
    tmp_path: Path,
) -> None:
    store = DiskShardStore(tmp_path, 0, batch_bytes=1, open_files=1)
    await store.start()
    a, b = hdr(4 * 4096, shard=0), hdr(4 * 4096, shard=1)
    for h in (a, b):
        await store.write(h, stream(pieces(h)))
    fds = open_fds()
    reading = store.read(a.chunk_id, 0)
    first = await anext(reading)  # a is open and in use
    assert await read_all(store, b.chunk_id, 1) == b"".join(pieces(b))  # evicts a
    assert store.open_files == 1 and open_fds() == fds + 2
    rest = [bytes(x) async for x in reading]  # a's fd survived its eviction
    assert bytes(first) + b"".join(rest) == b"".join(pieces(a))
    assert open_fds() == fds + 1  # closed once its reader finished


async def test_misplaced_file_is_corrupt(tmp_path: Path) -> None:
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    h = hdr(500, shard=0)
    await store.write(h, stream(pieces(h)))
    wrong = store.shard_path(h.chunk_id, 1)
    shutil.copy(store.shard_path(h.chunk_id, 0), wrong)
    with pytest.raises(CorruptShard, match="holds chunk"):
        await read_all(store, h.chunk_id, 1)


async def test_default_stripes_multi_batch(tmp_path: Path) -> None:
    """1 MiB stripes (256 KiB pieces), written and read through several batches."""
    store = DiskShardStore(tmp_path, 0, batch_bytes=256 * 1024)  # a piece per read batch
    await store.start()
    h = hdr(9 * (1 << 20) + 1, shard=2, stripe=1 << 20)
    data = b"".join(pieces(h))
    await store.write(h, stream([data[i : i + 100_000] for i in range(0, len(data), 100_000)]))
    blocks = [b async for b in store.read(h.chunk_id, 2)]
    assert b"".join(blocks) == data
    assert len(blocks) >= 2


@settings(max_examples=60, deadline=None)
@given(data=st.data())
async def test_any_range_over_several_read_batches_is_exact(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Ranges that start inside a piece and span several read batches: each batch yields
    exactly its part of the range (a later batch once lost the first range offset's
    remainder within a piece: a short, shifted read)."""
    store = DiskShardStore(tmp_path_factory.mktemp("ranges"), 0, batch_bytes=3 * 4096)
    await store.start()
    h = hdr(40 * 4096 * 4 + 999, shard=1, stripe=4 * 4096)  # 41 pieces of up to 4 KiB
    shard_data = b"".join(pieces(h))
    await store.write(h, stream(pieces(h)))
    offset = data.draw(st.integers(0, len(shard_data) - 1))
    length = data.draw(st.integers(0, len(shard_data) - offset))
    got = b"".join([b async for b in store.read(h.chunk_id, 1, offset, length)])
    assert got == shard_data[offset : offset + length]


async def test_read_cancelled_while_opening_closes_its_fd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    h = hdr(4096)
    await store.write(h, stream(pieces(h)))
    fds = open_fds()
    entered, proceed = threading.Event(), threading.Event()
    real_open = DiskShardStore._open_shard

    def slow_open(path: Path, chunk_id: uuid.UUID, shard_index: int) -> object:
        entered.set()
        proceed.wait(30)
        return real_open(path, chunk_id, shard_index)

    monkeypatch.setattr(DiskShardStore, "_open_shard", staticmethod(slow_open))
    task = asyncio.ensure_future(anext(store.read(h.chunk_id, 0)))
    await asyncio.to_thread(entered.wait, 30)
    task.cancel()
    proceed.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert open_fds() == fds


async def test_a_write_without_cache_leaves_the_page_cache(tmp_path: Path) -> None:
    require_droppable(tmp_path)
    store = DiskShardStore(tmp_path / "store", 0)
    await store.start()
    kept, dropped = hdr(1 << 20, shard=0), hdr(1 << 20, shard=1)
    await store.write(kept, stream(pieces(kept)))
    await store.write(dropped, stream(pieces(dropped)), cache=False)
    assert cached(store.shard_path(kept.chunk_id, 0))
    assert not cached(store.shard_path(dropped.chunk_id, 1))
    assert await read_all(store, dropped.chunk_id, 1) == b"".join(pieces(dropped))


async def test_only_the_newest_written_bytes_stay_in_the_page_cache(tmp_path: Path) -> None:
    """With a budget of ~2.5 files, each write past it drops the oldest files' pages (and
    only those); a deleted file stops counting; the data stays readable."""
    require_droppable(tmp_path)
    one = hdr(1 << 20)
    store = DiskShardStore(tmp_path / "store", 0, write_cache_bytes=5 * file_length(one) // 2)
    await store.start()
    written = [hdr(1 << 20, shard=i) for i in range(4)]
    paths = [store.shard_path(h.chunk_id, h.shard_index) for h in written]
    for h in written[:2]:
        await store.write(h, stream(pieces(h)))
    assert all(cached(p) for p in paths[:2])
    await store.write(written[2], stream(pieces(written[2])))  # 3 files > 2.5: drop the first
    assert [cached(p) for p in paths[:3]] == [False, True, True]
    await store.delete(written[1].chunk_id, 1)  # no longer counts: the next write fits
    await store.write(written[3], stream(pieces(written[3])))
    assert [cached(p) for p in (paths[2], paths[3])] == [True, True]
    assert await read_all(store, written[0].chunk_id, 0) == b"".join(pieces(written[0]))


def test_written_lately_keeps_the_newest_bytes_within_the_budget() -> None:
    w = _WrittenLately(100)
    a, b, c = ((uuid.uuid4(), 0) for _ in range(3))
    assert w.admit(a, 60) == [] and w.admit(b, 30) == []
    assert w.admit(a, 60) == []  # a rewrite moves to the newest place, counted once
    assert w.admit(c, 50) == [b, a] and w.bytes == 50  # oldest first, the new file stays
    assert w.admit(a, 500) == [c] and w.bytes == 500  # bigger than the budget: kept alone
    w.forget(a)
    assert w.bytes == 0 and _WrittenLately(0).admit(a, 1) == []


@pytest.mark.parametrize("batch_bytes", [4 << 20, 1 << 20])  # read batches either side of 2 MiB
async def test_a_read_without_cache_leaves_the_page_cache(tmp_path: Path, batch_bytes: int) -> None:
    require_droppable(tmp_path)
    store = DiskShardStore(tmp_path / "store", 0, batch_bytes=batch_bytes)
    await store.start()
    cold, hot = hdr(20 << 20, shard=0), hdr(20 << 20, shard=1)  # 5 MiB shard files
    for h in (cold, hot):
        await store.write(h, stream(pieces(h)))
    cold_path = store.shard_path(cold.chunk_id, 0)
    drop(cold_path)
    assert await read_all(store, cold.chunk_id, 0, cache=False) == b"".join(pieces(cold))
    assert none_resident_past_first_page(cold_path)
    assert await read_all(store, hot.chunk_id, 1, cache=False) == b"".join(pieces(hot))
    assert none_resident_past_first_page(store.shard_path(hot.chunk_id, 1))
    assert await read_all(store, cold.chunk_id, 0) == b"".join(pieces(cold))
    size = cold_path.stat().st_size
    assert resident_at(cold_path, 4096, size - 4096)  # an ordinary read keeps what it read


async def test_a_media_error_reads_as_a_lost_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EIO from the disk is a CorruptShard (reason io_error: the service reports it and
    readers decode around it), not an internal error."""
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    h = hdr(40_000)
    await store.write(h, stream(pieces(h)))

    def eio(*args: object) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "preadv", eio)
    with pytest.raises(CorruptShard) as caught:
        await read_all(store, h.chunk_id, 0)
    assert caught.value.details["reason"] == "io_error"
    monkeypatch.undo()
    assert await read_all(store, h.chunk_id, 0) == b"".join(pieces(h))

    def ebadf(*args: object) -> int:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(os, "preadv", ebadf)
    with pytest.raises(OSError, match="Bad file"):  # a bug stays a bug
        await read_all(store, h.chunk_id, 0)
