"""Background scrubbing: re-verify every piece of every shard at a bounded rate.

A ``Scrubber`` walks the store's inventory pass after pass. For each shard it opens a
``ShardReader`` (through a ``ShardOpener``, so any store can be scrubbed) and runs
``ShardReader.verify`` in a worker thread; a shard with a bad header or any bad piece is
reported through the ``on_corrupt`` callback as a ``CorruptShardReport``. Read bandwidth
is bounded by a ``TokenBucket`` (bytes per second, burst of one shard at most) driven by
an injected ``Clock``, so tests run in virtual time.

A shard whose first page was not in the page cache when the scrub opened it is dropped
from the cache again once verified (``POSIX_FADV_DONTNEED``): a pass over a whole disk
would otherwise replace the cache's hot shards with cold ones (and, on VMs that hand idle
memory back to the host, pay for fresh pages all along). Cached shards are left alone.

Invariants: a shard deleted during the pass is skipped, never reported; the rate limit
holds on average over any window longer than one shard's verification; progress
counters only grow (``ScrubProgress`` snapshots).

Must not import: network or gateway code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from blobstore.clock import Clock, SystemClock
from blobstore.errors import CorruptShard
from blobstore.log import get_logger
from chunkserver.shardfile import HEADER_BYTES, ShardReader, file_length
from chunkserver.store.base import ShardStore
from chunkserver.store.disk import DiskShardStore
from chunkserver.store.memory import MemoryShardStore
from chunkserver.store.pagecache import drop, resident

__all__ = [
    "CorruptShardReport",
    "ScrubProgress",
    "Scrubber",
    "ShardOpener",
    "TokenBucket",
    "opener_for",
]

log = get_logger(__name__)

MB = 1_000_000


class ShardOpener(Protocol):
    """Opens a verified reader on one stored shard; ``None`` if it does not exist."""

    def __call__(
        self, chunk_id: uuid.UUID, shard_index: int
    ) -> contextlib.AbstractContextManager[ShardReader | None]: ...


def opener_for(store: ShardStore) -> ShardOpener:
    """A ``ShardOpener`` for the built-in stores (``TypeError`` for others)."""
    if isinstance(store, DiskShardStore):
        disk = store

        @contextlib.contextmanager
        def open_disk(chunk_id: uuid.UUID, shard_index: int) -> Iterator[ShardReader | None]:
            try:
                fd = os.open(disk.shard_path(chunk_id, shard_index), os.O_RDONLY)
            except FileNotFoundError:
                yield None
                return
            cold = False
            try:
                cold = resident(fd) is False  # its first page, without reading it
                yield ShardReader.from_fd(fd)
            finally:
                if cold:  # read for the scrub only: do not let it push out what is used
                    drop(fd)
                os.close(fd)

        return open_disk
    if isinstance(store, MemoryShardStore):
        mem = store

        @contextlib.contextmanager
        def open_mem(chunk_id: uuid.UUID, shard_index: int) -> Iterator[ShardReader | None]:
            try:
                raw = mem.raw_bytes(chunk_id, shard_index)
            except KeyError:
                yield None
                return
            yield ShardReader.from_bytes(raw)

        return open_mem
    raise TypeError(f"no shard opener for {type(store).__name__}")


class TokenBucket:
    """Byte-rate limiter: ``take(n)`` waits until ``n`` bytes fit the rate (debt allowed).

    A take larger than the burst is allowed and paid back by waiting afterwards, so a
    single shard bigger than the burst still passes; the average rate holds.
    """

    def __init__(self, rate_bytes_s: float, burst_bytes: int, clock: Clock) -> None:
        if rate_bytes_s <= 0:
            raise ValueError(f"rate must be positive, got {rate_bytes_s}")
        self._rate = rate_bytes_s
        self._burst = max(1, burst_bytes)
        self._clock = clock
        self._tokens = float(self._burst)
        self._stamp = clock.monotonic()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    async def take(self, n: int) -> None:
        """Account ``n`` bytes; sleep as long as the bucket is in debt."""
        self._refill()
        self._tokens -= n
        if self._tokens < 0:
            await self._clock.sleep(-self._tokens / self._rate)
            self._refill()


@dataclass(frozen=True, slots=True)
class CorruptShardReport:
    """A shard that failed verification (``stripes`` empty if its header is bad)."""

    chunk_id: uuid.UUID
    shard_index: int
    stripes: tuple[int, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class ScrubProgress:
    """Counters since start; ``pass_number`` counts started passes (1 = first)."""

    pass_number: int
    passes_completed: int
    shards_scrubbed: int
    bytes_scrubbed: int
    corrupt_found: int


OnCorrupt = Callable[[CorruptShardReport], Awaitable[None]]


class Scrubber:
    """Verifies every stored shard, pass after pass, at ``rate_mb_s`` (MB = 10**6 bytes)."""

    def __init__(
        self,
        store: ShardStore,
        *,
        rate_mb_s: float,
        on_corrupt: OnCorrupt,
        clock: Clock | None = None,
        opener: ShardOpener | None = None,
        pass_interval_s: float = 60.0,
        burst_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._store = store
        self._clock = clock or SystemClock()
        self._bucket = TokenBucket(max(rate_mb_s, 1e-9) * MB, burst_bytes, self._clock)
        self._on_corrupt = on_corrupt
        self._opener = opener or opener_for(store)
        self._pass_interval = pass_interval_s
        self._pass = 0
        self._completed = 0
        self._shards = 0
        self._bytes = 0
        self._corrupt = 0

    def progress(self) -> ScrubProgress:
        """A snapshot of the counters."""
        return ScrubProgress(self._pass, self._completed, self._shards, self._bytes, self._corrupt)

    async def run(self) -> None:
        """Scrub forever (cancel to stop); waits ``pass_interval_s`` between passes. A
        pass that fails (the inventory cannot be listed) is logged and tried again then."""
        while True:
            try:
                await self.scrub_pass()
            except Exception:
                log.exception("scrub pass failed; the next one starts after the interval")
            await self._clock.sleep(self._pass_interval)

    async def scrub_pass(self) -> ScrubProgress:
        """One pass over the current inventory; returns the counters afterwards."""
        self._pass += 1
        shards = [info async for info in self._store.inventory()]
        for info in shards:
            try:
                await self.scrub_shard(info.chunk_id, info.shard_index)
            except Exception:  # one shard's surprise must not end scrubbing of the disk
                log.exception(
                    "scrubbing a shard failed", chunk_id=str(info.chunk_id), shard=info.shard_index
                )
        self._completed += 1
        log.info("scrub pass done", pass_number=self._pass, **_fields(self.progress()))
        return self.progress()

    async def scrub_shard(self, chunk_id: uuid.UUID, shard_index: int) -> bool:
        """Verify one shard (rate-limited); False if it was found corrupt."""
        result = await asyncio.to_thread(self._verify, chunk_id, shard_index)
        if result is None:  # deleted meanwhile
            return True
        size, bad = result
        self._shards += 1
        self._bytes += size
        await self._bucket.take(size)
        if bad is None:
            return True
        self._corrupt += 1
        log.warning(
            "scrub found a corrupt shard",
            chunk_id=str(chunk_id),
            shard=shard_index,
            reason=bad.reason,
            stripes=len(bad.stripes),
        )
        await self._on_corrupt(bad)
        return False

    def _verify(
        self, chunk_id: uuid.UUID, shard_index: int
    ) -> tuple[int, CorruptShardReport | None] | None:
        try:
            with self._opener(chunk_id, shard_index) as reader_or_none:
                if reader_or_none is None:
                    return None
                return self._check(reader_or_none, chunk_id, shard_index)
        except CorruptShard as exc:  # unreadable header: the whole shard is lost
            reason = exc.details.get("reason", "format")
            return HEADER_BYTES, CorruptShardReport(chunk_id, shard_index, (), reason)

    @staticmethod
    def _check(
        reader: ShardReader, chunk_id: uuid.UUID, shard_index: int
    ) -> tuple[int, CorruptShardReport | None]:
        size = file_length(reader.header)
        h = reader.header
        if h.chunk_id != chunk_id or h.shard_index != shard_index:
            return size, CorruptShardReport(chunk_id, shard_index, (), "misplaced")
        reasons: set[str] = set()
        bad = reader.verify(reasons)
        if bad:  # a disk read error says more than a checksum (the disk may be failing)
            reason = "io_error" if "io_error" in reasons else "piece_checksum"
            return size, CorruptShardReport(chunk_id, shard_index, bad, reason)
        return size, None


def _fields(p: ScrubProgress) -> dict[str, int]:
    return {
        "shards": p.shards_scrubbed,
        "bytes": p.bytes_scrubbed,
        "corrupt": p.corrupt_found,
    }
