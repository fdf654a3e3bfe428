"""Value types of the data path: placements, chunk references, write results, reports.

``ChunkRef`` is what the catalog stores per chunk: enough to read it back (coder, k, m,
stripe size, length) and where its durable shards are (server id, shard index, checksum).
Object offsets of chunks are the running sum of their ``data_length`` (chunks of a
multipart object need not be equal), so a chunk list describes any object.

Pure values: no asyncio, no I/O. Must not import service packages.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from blobstore.codec.ranges import Layout, ceil_div
from blobstore.types import Address

__all__ = [
    "BadShard",
    "BadShardReason",
    "ChunkRef",
    "MissingShard",
    "PlacementSource",
    "ServerDirectory",
    "ShardRef",
    "StaticPlacement",
    "Target",
    "WriteResult",
]


@dataclass(frozen=True, slots=True)
class Target:
    """A chunkserver chosen to hold one shard."""

    server_id: int
    addr: Address


class PlacementSource(Protocol):
    """Chooses the chunkservers of each new chunk (the metadata service in production)."""

    async def allocate(self, chunk_index: int) -> list[Target]:
        """Up to k + m distinct targets; target i receives shard i.

        Fewer (down or full servers) leave the last shards unplaced, for repair; a write
        fails unless at least its write quorum of targets is returned.
        """
        ...


class ServerDirectory(Protocol):
    """Resolves a server id to its current address (None if unknown)."""

    def address_of(self, server_id: int) -> Address | None: ...


class StaticPlacement:
    """A fixed server list: chunk c goes to servers rotated by c (tests, benchmarks)."""

    def __init__(self, targets: list[Target], n: int, *, rotate: bool = True) -> None:
        if len(targets) < n:
            raise ValueError(f"need at least {n} servers, got {len(targets)}")
        if len({t.server_id for t in targets}) != len(targets):
            raise ValueError("server ids must be distinct")
        self._targets = list(targets)
        self._n = n
        self._rotate = rotate
        self._by_id = {t.server_id: t.addr for t in targets}

    async def allocate(self, chunk_index: int) -> list[Target]:
        start = chunk_index % len(self._targets) if self._rotate else 0
        ring = self._targets[start:] + self._targets[:start]
        return ring[: self._n]

    def address_of(self, server_id: int) -> Address | None:
        return self._by_id.get(server_id)


@dataclass(frozen=True, slots=True)
class ShardRef:
    """One durable shard of a chunk."""

    server_id: int
    shard_index: int
    checksum: int  # chunkserver.shardfile.shard_checksum of its piece checksums


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """A committed chunk: its coding and its durable shards (sorted by shard index)."""

    chunk_id: uuid.UUID
    coder: str
    k: int
    m: int
    stripe_bytes: int
    data_length: int
    shards: tuple[ShardRef, ...]

    @property
    def layout(self) -> Layout:
        """A layout whose chunk size covers this chunk (for ``blobstore.codec.ranges``)."""
        stripes = max(1, ceil_div(self.data_length, self.stripe_bytes))
        return Layout(stripes * self.stripe_bytes, self.stripe_bytes, self.k, self.m)

    def shard(self, index: int) -> ShardRef | None:
        """The durable shard with this index, if any."""
        for s in self.shards:
            if s.shard_index == index:
                return s
        return None


@dataclass(frozen=True, slots=True)
class MissingShard:
    """A shard the write could not make durable (repair should complete it)."""

    chunk_index: int
    chunk_id: uuid.UUID
    shard_index: int
    server_id: int  # 0: placement had no server for it
    error: str


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A finished write: ready to commit to the catalog."""

    size_bytes: int
    md5: bytes | None  # of the whole object (the S3 ETag); None if ``etag_md5`` was off
    chunks: tuple[ChunkRef, ...]
    missing: tuple[MissingShard, ...]

    @property
    def etag(self) -> str:
        """The hex MD5 (empty if it was not computed)."""
        return self.md5.hex() if self.md5 is not None else ""


class BadShardReason(Enum):
    CORRUPT = "corrupt"  # a checksum failed (the chunkserver reported CorruptShard)
    MISSING = "missing"  # NoSuchShard, or no address known for the server
    UNREACHABLE = "unreachable"  # connection failed or the call timed out
    SLOW = "slow"  # hedged: replaced by parity because it lagged


@dataclass(frozen=True, slots=True)
class BadShard:
    """A shard a reader had to do without."""

    chunk_id: uuid.UUID
    shard_index: int
    server_id: int
    reason: BadShardReason
    error: str
