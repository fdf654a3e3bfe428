"""The ``ShardStore`` Protocol and the values it exchanges.

A shard store keeps the shard files of one chunkserver disk (format:
``chunkserver.shardfile``). Implementations: ``MemoryShardStore`` (tests, simulation) and
``DiskShardStore`` (a directory on a local file system).

Contract (checked by ``tests/unit/chunkserver/test_store_contract.py`` on every
implementation):

* ``write`` consumes the shard's piece data (any slicing) and returns a receipt only once
  the shard is durable and visible; a failed, short, long or cancelled write leaves no
  visible shard (and, on disk, no temp file after the next start-up). Writing an
  existing (chunk, shard) replaces it atomically. A write that would take free space
  below the reserve raises ``InsufficientSpace`` before touching the disk.
* ``read`` yields verified bytes of a range of the shard's piece data; a corrupt piece
  raises ``CorruptShard`` (bytes of earlier good pieces may already have been yielded),
  a missing shard ``NoSuchShard`` (both on first iteration, not on the call).
* ``inventory`` lists every visible shard (for garbage collection against the catalog);
  ``inventory_page`` lists them in (chunk id, shard index) order, one page after a
  cursor, without listing or sorting the whole store; ``space`` reports capacity, free
  and used bytes.
* ``delete`` with ``expect`` is a compare-and-delete: it never removes a file written
  after the one ``expect`` describes (garbage collection relies on it, ``chunkserver.gc``).

Must not import network or gateway code.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chunkserver.shardfile import Buffer, ShardHeader, ShardReceipt

__all__ = [
    "InventoryCursor",
    "InventoryPage",
    "ShardInfo",
    "ShardReceipt",
    "ShardStore",
    "SpaceInfo",
]


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One stored shard, as ``stat`` and ``inventory`` see it (no file contents read)."""

    chunk_id: uuid.UUID
    shard_index: int
    size_bytes: int  # whole file
    mtime: float  # seconds since the epoch
    file_id: int = 0  # which file (disk: inode number); a rewrite makes a new one


InventoryCursor = tuple[uuid.UUID, int]
"""(chunk id, shard index): a page lists the shards strictly after it in that order."""


@dataclass(frozen=True, slots=True)
class InventoryPage:
    """Up to ``limit`` shards in (chunk id, shard index) order; more follow if truncated."""

    shards: tuple[ShardInfo, ...]
    is_truncated: bool


@dataclass(frozen=True, slots=True)
class SpaceInfo:
    """Free-space accounting of one store."""

    capacity_bytes: int
    free_bytes: int  # available to this process (statvfs f_bavail)
    used_bytes: int  # bytes of shard files held by this store
    reserve_bytes: int  # writes never take free_bytes below this

    @property
    def writable_bytes(self) -> int:
        """Bytes that can still be written before hitting the reserve."""
        return max(0, self.free_bytes - self.reserve_bytes)


@runtime_checkable
class ShardStore(Protocol):
    """Durable storage of shard files on one disk."""

    async def start(self) -> None:
        """Prepare the store (create directories, remove leftovers of crashed writes)."""
        ...

    async def write(
        self, header: ShardHeader, data: AsyncIterable[Buffer], *, cache: bool = True
    ) -> ShardReceipt:
        """Store a shard: ``header`` then the piece data from ``data``; durable on return.

        Buffers yielded by ``data`` must not be modified afterwards. ``cache=False`` is a
        hint that the shard will not be read soon (a repair's rebuilt shard): the store
        may drop its bytes from the OS page cache once they are durable.
        """
        ...

    def read(
        self,
        chunk_id: uuid.UUID,
        shard_index: int,
        offset: int = 0,
        length: int | None = None,
        *,
        cache: bool = True,
        checksums: bool = False,
    ) -> AsyncGenerator[Buffer, None]:
        """Verified piece-data bytes ``[offset, offset + length)`` (to the end if None).

        Blocks are bytes-like (``bytes`` or read-only-by-contract ``memoryview``s), in
        order; callers that keep them must not modify them. ``cache=False`` is a hint that
        the bytes are read once (a repair): the store may drop them from the OS page
        cache afterwards. ``checksums``: every piece the range covers whole is followed
        by its stored 8-byte checksum (``ShardReader.checksummed_views``).

        A reader that stops early should ``aclose()`` the generator (or use
        ``contextlib.aclosing``) so a disk store releases its file at once.
        """
        ...

    async def stat(self, chunk_id: uuid.UUID, shard_index: int) -> ShardInfo | None:
        """The shard's size and mtime, or None if it does not exist."""
        ...

    async def delete(
        self, chunk_id: uuid.UUID, shard_index: int, *, expect: ShardInfo | None = None
    ) -> bool:
        """Remove a shard; False if it did not exist.

        With ``expect`` (what ``stat`` or ``inventory`` said earlier), remove it only if it
        is still that very file (same ``file_id``, size and mtime), checked atomically with
        this store's writes: a rewrite since (a repair) is kept and answers False.
        """
        ...

    async def absent(self, keys: Sequence[tuple[uuid.UUID, int]]) -> list[tuple[uuid.UUID, int]]:
        """The (chunk id, shard index) of ``keys`` this store does not hold, in order (one
        batched check: a disk store stats them in a single worker-thread hop)."""
        ...

    def inventory(self) -> AsyncIterator[ShardInfo]:
        """Every stored shard, in no particular order."""
        ...

    async def inventory_page(self, after: InventoryCursor | None, limit: int) -> InventoryPage:
        """At most ``limit`` (>= 1) shards after ``after`` (None: from the start), in
        (chunk id, shard index) order; the cost follows the page, not the whole store."""
        ...

    async def space(self) -> SpaceInfo:
        """Capacity, free and used bytes."""
        ...
