"""Scrubber: finds corruption, reports it, and keeps to its rate in virtual time."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chunkserver.scrub import CorruptShardReport, Scrubber, TokenBucket, opener_for
from chunkserver.shardfile import HEADER_BYTES, ShardHeader
from chunkserver.store.disk import DiskShardStore
from chunkserver.store.memory import MemoryShardStore
from tests.unit.chunkserver.pagecache import cached, drop, require_droppable


class FakeClock:
    """Virtual time: sleeping advances it at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _fill(store: object, count: int, length: int = 40_000) -> list[uuid.UUID]:
    ids = []
    for i in range(count):
        cid = uuid.uuid4()
        h = ShardHeader(cid, i % 3, 2, 1, "zfec", 8192, length)
        await store.write(h, _one(bytes([i]) * h.shard_data_length))  # type: ignore[attr-defined]
        ids.append(cid)
    return ids


@pytest.mark.parametrize("kind", ["memory", "disk"])
async def test_scrub_pass_finds_and_reports_corruption(kind: str, tmp_path: Path) -> None:
    store: MemoryShardStore | DiskShardStore
    store = MemoryShardStore() if kind == "memory" else DiskShardStore(tmp_path, 0)
    await store.start()
    ids = await _fill(store, 6)
    victims = {(ids[1], 1): HEADER_BYTES + 3 * (4096 + 8) + 1, (ids[4], 1): 40}  # piece 3; header
    for (cid, idx), off in victims.items():
        if isinstance(store, MemoryShardStore):
            store.corrupt_byte(cid, idx, off)
        else:
            path = store.shard_path(cid, idx)
            raw = bytearray(path.read_bytes())
            raw[off] ^= 0xFF
            path.write_bytes(bytes(raw))
    found: list[CorruptShardReport] = []

    async def report(r: CorruptShardReport) -> None:
        found.append(r)

    clock = FakeClock()
    scrubber = Scrubber(store, rate_mb_s=1.0, on_corrupt=report, clock=clock, burst_bytes=1)
    p = await scrubber.scrub_pass()
    assert {(r.chunk_id, r.shard_index) for r in found} == set(victims)
    by_id = {r.chunk_id: r for r in found}
    assert by_id[ids[1]].stripes == (3,)
    assert by_id[ids[4]].reason == "header_checksum"
    assert p.pass_number == 1 and p.shards_scrubbed == 6 and p.corrupt_found == 2
    # 1 MB/s: the virtual time slept matches the bytes read
    assert clock.slept == pytest.approx(p.bytes_scrubbed / 1e6, rel=0.01)
    p2 = await scrubber.scrub_pass()
    assert p2.pass_number == 2 and p2.bytes_scrubbed == 2 * p.bytes_scrubbed


async def test_token_bucket_allows_burst_then_paces() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000.0, 500, clock)
    await bucket.take(500)
    assert clock.slept == 0
    await bucket.take(1000)
    assert clock.slept == pytest.approx(1.0)
    clock.now += 10  # idle time refills only up to the burst
    await bucket.take(600)
    assert clock.slept == pytest.approx(1.1)


async def test_scrub_leaves_cold_shards_out_of_the_page_cache(tmp_path: Path) -> None:
    """A shard the scrub had to read from the disk is dropped again once verified; one
    that was cached (in use) stays cached."""
    require_droppable(tmp_path)
    store = DiskShardStore(tmp_path / "store", 0)
    await store.start()
    cold, hot = await _fill(store, 2, length=400_000)
    drop(store.shard_path(cold, 0))
    assert cached(store.shard_path(hot, 1)) and not cached(store.shard_path(cold, 0))
    found: list[CorruptShardReport] = []

    async def report(r: CorruptShardReport) -> None:
        found.append(r)

    scrubber = Scrubber(store, rate_mb_s=1000.0, on_corrupt=report, clock=FakeClock())
    p = await scrubber.scrub_pass()
    assert p.shards_scrubbed == 2 and p.corrupt_found == 0
    assert not cached(store.shard_path(cold, 0))
    assert cached(store.shard_path(hot, 1))


async def test_an_unreadable_shard_is_reported_and_the_pass_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DiskShardStore(tmp_path, 0)
    await store.start()
    ids = await _fill(store, 4)
    victim = str(store.shard_path(ids[2], 2))
    real_pread = os.pread

    def pread(fd: int, n: int, off: int) -> bytes:
        if os.readlink(f"/proc/self/fd/{fd}") == victim and off > 0:  # a bad sector
            raise OSError(errno.EIO, "Input/output error")
        return real_pread(fd, n, off)

    monkeypatch.setattr(os, "pread", pread)
    found: list[CorruptShardReport] = []

    async def report(r: CorruptShardReport) -> None:
        found.append(r)

    scrubber = Scrubber(store, rate_mb_s=1000.0, on_corrupt=report, clock=FakeClock())
    p = await scrubber.scrub_pass()
    assert [(r.chunk_id, r.shard_index) for r in found] == [(ids[2], 2)]
    assert found[0].stripes  # every stripe it could not read
    assert found[0].reason == "io_error"
    assert p.shards_scrubbed == 4 and p.corrupt_found == 1


async def test_a_failing_shard_does_not_end_the_pass() -> None:
    store = MemoryShardStore()
    ids = await _fill(store, 3)
    opener = opener_for(store)

    def flaky(chunk_id: uuid.UUID, shard_index: int) -> Any:
        if chunk_id == ids[0]:
            raise RuntimeError("surprise")
        return opener(chunk_id, shard_index)

    async def report(r: CorruptShardReport) -> None:
        raise AssertionError(r)

    scrubber = Scrubber(store, rate_mb_s=1000.0, on_corrupt=report, clock=FakeClock(), opener=flaky)
    p = await scrubber.scrub_pass()
    assert p.pass_number == 1 and p.passes_completed == 1 and p.shards_scrubbed == 2
