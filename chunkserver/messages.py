"""Shard RPC messages between data-path clients and chunkservers (codec tags 2000-2099).

Tag map: 2000-2001 WriteShard, 2002-2003 ReadShard, 2004-2005 DeleteShard, 2006-2008
StatShard, 2009-2010 ListInventory, 2011-2012 GetSpace. Tags are never reused.

Chunk ids travel as the 16 raw UUID bytes (the codec has no UUID type). Bulk bytes never
travel inside these messages: a ``WriteShardRequest`` is followed by a streamed request
body (the shard's piece data, any slicing) and a ``ReadShardRequest`` is answered with a
``ReadShardResponse`` header plus a streamed body of verified piece-data bytes (with the
stored piece checksums, when asked). Errors are the domain errors of ``blobstore.errors``
(``NoSuchShard``, ``CorruptShard``, ``InsufficientSpace``, ``InvalidArgument``), carried
by the RPC layer as themselves.

Must not import: asyncio, sockets, service code (pure values).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from blobstore.rpc.codec import register
from chunkserver.shardfile import ShardHeader

__all__ = [
    "DeleteShardRequest",
    "DeleteShardResponse",
    "GetSpaceRequest",
    "GetSpaceResponse",
    "ListInventoryRequest",
    "ListInventoryResponse",
    "ReadShardRequest",
    "ReadShardResponse",
    "ShardStat",
    "StatShardRequest",
    "StatShardResponse",
    "WriteShardRequest",
    "WriteShardResponse",
]


@dataclass(frozen=True, slots=True)
class WriteShardRequest:
    """Store shard ``shard_index`` of a chunk; the piece data follows as the request body.

    The fields are those of ``ShardHeader``; the reply comes only once the shard is durable
    (temp file fsynced and renamed into place).
    """

    chunk_id: bytes
    shard_index: int
    k: int
    m: int
    coder: str
    stripe_bytes: int
    data_length: int

    @classmethod
    def from_header(cls, header: ShardHeader) -> WriteShardRequest:
        return cls(
            header.chunk_id.bytes,
            header.shard_index,
            header.k,
            header.m,
            header.coder,
            header.stripe_bytes,
            header.data_length,
        )

    def to_header(self) -> ShardHeader:
        """The shard header (``ValueError`` if the fields are inconsistent)."""
        return ShardHeader(
            chunk_id=uuid.UUID(bytes=self.chunk_id),
            shard_index=self.shard_index,
            k=self.k,
            m=self.m,
            coder=self.coder,
            stripe_bytes=self.stripe_bytes,
            data_length=self.data_length,
        )


@dataclass(frozen=True, slots=True)
class WriteShardResponse:
    """The durable shard's receipt: its checksum is ``shardfile.shard_checksum``."""

    chunk_id: bytes
    shard_index: int
    file_bytes: int
    data_bytes: int
    checksum: int


@dataclass(frozen=True, slots=True)
class ReadShardRequest:
    """Verified piece-data bytes ``[offset, offset + length)`` of one shard.

    ``cache=False``: the caller reads these bytes once (a repair); they leave the
    chunkserver's page cache again once read. ``checksums``: the caller checks pieces
    again on arrival (end to end); see ``ReadShardResponse``.
    """

    chunk_id: bytes
    shard_index: int
    offset: int
    length: int
    cache: bool = True
    checksums: bool = False


@dataclass(frozen=True, slots=True)
class ReadShardResponse:
    """Header of a ReadShard reply; the ``length`` asked-for bytes follow unless it fails.

    ``checksums`` (granted when asked): every piece the range covers whole is followed in
    the body by its stored checksum, 8 bytes (u64 little-endian xxh3-64), as in the shard
    file; the partial pieces at the range's ends carry none. A chunkserver that predates
    the field answers without it, which decodes as False: a plain body.
    """

    length: int
    checksums: bool = False


@dataclass(frozen=True, slots=True)
class DeleteShardRequest:
    chunk_id: bytes
    shard_index: int


@dataclass(frozen=True, slots=True)
class DeleteShardResponse:
    existed: bool


@dataclass(frozen=True, slots=True)
class ShardStat:
    """One stored shard (file size and modification time; contents not read)."""

    chunk_id: bytes
    shard_index: int
    size_bytes: int
    mtime: float


@dataclass(frozen=True, slots=True)
class StatShardRequest:
    chunk_id: bytes
    shard_index: int


@dataclass(frozen=True, slots=True)
class StatShardResponse:
    shard: ShardStat | None


@dataclass(frozen=True, slots=True)
class ListInventoryRequest:
    """One page of the inventory, in (chunk id, shard index) order, after the cursor.

    ``after_chunk_id`` empty means from the start; ``limit`` is capped by the server.
    """

    after_chunk_id: bytes = b""
    after_shard_index: int = -1
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class ListInventoryResponse:
    shards: tuple[ShardStat, ...]
    is_truncated: bool


@dataclass(frozen=True, slots=True)
class GetSpaceRequest:
    pass


@dataclass(frozen=True, slots=True)
class GetSpaceResponse:
    capacity_bytes: int
    free_bytes: int
    used_bytes: int
    reserve_bytes: int


register(2000, WriteShardRequest)
register(2001, WriteShardResponse)
register(2002, ReadShardRequest)
register(2003, ReadShardResponse)
register(2004, DeleteShardRequest)
register(2005, DeleteShardResponse)
register(2006, ShardStat)
register(2007, StatShardRequest)
register(2008, StatShardResponse)
register(2009, ListInventoryRequest)
register(2010, ListInventoryResponse)
register(2011, GetSpaceRequest)
register(2012, GetSpaceResponse)
