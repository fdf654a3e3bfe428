"""``MemoryShardStore``: shard files held as bytes in a dict (tests and simulation).

Stores the exact bytes of the on-disk format (``chunkserver.shardfile``) so reads verify
checksums the same way; ``corrupt_byte`` flips a stored byte to exercise that path.
Capacity is a fixed number; mtime comes from an injected clock, and each write gets a new
``file_id`` (as a rewritten file gets a new inode on disk).
Must not touch the file system or the network.
"""

from __future__ import annotations

import bisect
import itertools
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Sequence
from typing import NamedTuple

from blobstore.errors import InsufficientSpace, NoSuchShard
from chunkserver.shardfile import (
    Buffer,
    ShardEncoder,
    ShardHeader,
    ShardReader,
    ShardReceipt,
    check_identity,
    file_length,
)
from chunkserver.store.base import InventoryCursor, InventoryPage, ShardInfo, SpaceInfo

__all__ = ["MemoryShardStore"]

_Key = tuple[uuid.UUID, int]


class _File(NamedTuple):
    blob: bytes
    mtime: float
    file_id: int  # one per write, like an inode number

    def info(self, key: _Key) -> ShardInfo:
        return ShardInfo(key[0], key[1], len(self.blob), self.mtime, self.file_id)


class MemoryShardStore:
    """A ``ShardStore`` in memory, with a fixed capacity and a free-space reserve."""

    def __init__(
        self,
        capacity_bytes: int = 1 << 30,
        reserve_bytes: int = 0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._capacity = capacity_bytes
        self._reserve = reserve_bytes
        self._clock = clock
        self._files: dict[_Key, _File] = {}
        self._file_ids = itertools.count(1)
        self._order: list[tuple[bytes, int]] = []  # sorted (chunk id bytes, shard index)
        self._used = 0
        self.cache_hints: dict[_Key, bool] = {}  # each shard's last write's ``cache`` hint

    async def start(self) -> None:
        """Nothing to prepare."""

    async def write(
        self, header: ShardHeader, data: AsyncIterable[Buffer], *, cache: bool = True
    ) -> ShardReceipt:
        key = (header.chunk_id, header.shard_index)
        old = len(self._files[key].blob) if key in self._files else 0
        needed = file_length(header) - old
        free = self._capacity - self._used
        if free - needed < self._reserve:
            raise InsufficientSpace(
                f"memory store: {free} bytes free, writing {needed} more would go below the "
                f"reserve of {self._reserve} bytes",
                free_bytes=str(free),
                reserve_bytes=str(self._reserve),
                needed_bytes=str(needed),
            )
        enc = ShardEncoder(header)
        out = bytearray()
        for buf in enc.start():
            out += buf
        async for chunk in data:
            for buf in enc.feed(chunk):
                out += buf
        receipt = enc.finish()
        self.cache_hints[key] = cache
        old = len(self._files[key].blob) if key in self._files else 0  # may have changed
        if key not in self._files:
            bisect.insort(self._order, (key[0].bytes, key[1]))
        self._files[key] = _File(bytes(out), self._clock(), next(self._file_ids))
        self._used += len(out) - old
        return receipt

    async def read(
        self,
        chunk_id: uuid.UUID,
        shard_index: int,
        offset: int = 0,
        length: int | None = None,
        *,
        cache: bool = True,
        checksums: bool = False,
    ) -> AsyncGenerator[bytes, None]:
        entry = self._files.get((chunk_id, shard_index))
        if entry is None:
            raise NoSuchShard(
                f"no shard {shard_index} of chunk {chunk_id}",
                chunk_id=str(chunk_id),
                shard=str(shard_index),
            )
        reader = ShardReader.from_bytes(entry[0])
        check_identity(reader.header, chunk_id, shard_index)
        for block in reader.iter_range(offset, length, checksums=checksums):
            yield block

    async def stat(self, chunk_id: uuid.UUID, shard_index: int) -> ShardInfo | None:
        entry = self._files.get((chunk_id, shard_index))
        return None if entry is None else entry.info((chunk_id, shard_index))

    async def delete(
        self, chunk_id: uuid.UUID, shard_index: int, *, expect: ShardInfo | None = None
    ) -> bool:
        key = (chunk_id, shard_index)
        entry = self._files.get(key)
        if entry is None or (expect is not None and entry.info(key) != expect):
            return False
        del self._files[key]
        at = bisect.bisect_left(self._order, (chunk_id.bytes, shard_index))
        del self._order[at]
        self._used -= len(entry[0])
        return True

    async def absent(self, keys: Sequence[_Key]) -> list[_Key]:
        return [k for k in keys if k not in self._files]

    async def inventory(self) -> AsyncIterator[ShardInfo]:
        for key, entry in list(self._files.items()):
            yield entry.info(key)

    async def inventory_page(self, after: InventoryCursor | None, limit: int) -> InventoryPage:
        start = 0 if after is None else bisect.bisect_right(self._order, (after[0].bytes, after[1]))
        keys = self._order[start : start + max(1, limit) + 1]
        shards = []
        for raw, idx in keys[: max(1, limit)]:
            key = (uuid.UUID(bytes=raw), idx)
            shards.append(self._files[key].info(key))
        return InventoryPage(tuple(shards), len(keys) > max(1, limit))

    async def space(self) -> SpaceInfo:
        return SpaceInfo(self._capacity, self._capacity - self._used, self._used, self._reserve)

    # -- test hooks (not part of ShardStore) -------------------------------------------
    def corrupt_byte(self, chunk_id: uuid.UUID, shard_index: int, file_offset: int) -> None:
        """Flip every bit of one stored byte (simulates silent disk corruption)."""
        entry = self._files[(chunk_id, shard_index)]
        damaged = bytearray(entry.blob)
        damaged[file_offset] ^= 0xFF
        self._files[(chunk_id, shard_index)] = entry._replace(blob=bytes(damaged))

    def raw_bytes(self, chunk_id: uuid.UUID, shard_index: int) -> bytes:
        """The stored file bytes of a shard."""
        return self._files[(chunk_id, shard_index)].blob
