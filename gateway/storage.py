"""Object bytes for the S3 handlers: the ``ObjectStore`` Protocol and its implementations.

The handlers never talk to chunkservers directly: they stream a (verified) request body
into ``ObjectStore.write`` and get back a ``StoredData`` -- size, MD5 (the single-part
ETag) and either the catalog's chunk records or, at or below ``inline_threshold_bytes``,
the bytes themselves for inline storage in the catalog. ``read`` streams any byte range of
a committed object (``ObjectInfo``) back.

Implementations:

* ``MemoryObjectStore`` -- bytes in a dict keyed by chunk id (unit and e2e tests).
* ``ClusterObjectStore`` -- erasure-coded chunks on chunkservers through
  ``blobstore.datapath``; placement from ``ListChunkserversQuery`` (cached about 1 s) and
  the pure policy in ``metadata.placement``. Converts between the datapath's ``ChunkRef``
  (uuid ids, int checksums) and the catalog's ``Chunk`` record (str ids, hex checksums).
  A body that fits in one stripe is coded with k = 1: m + 1 shards, each as big as the body
  (copies, or a multiple in GF(2^8) for some coders), so the same losses are survived and a
  GET is one shard read instead of k, at up to twice the raw bytes of k + m coding for
  those objects (measured effect: NOTES.md, session 10).

Invariants: ``write`` consumes ``body`` to its end (so a verifying body runs its final
checks) or raises; nothing it stored becomes visible until the caller commits it to the
catalog; ``discard`` releases data of a write that will never be committed (best effort).
Memory per write is bounded by the inline threshold plus what the data path buffers.

Must not import starlette.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from blobstore.client.catalog import CatalogClient
from blobstore.clock import Clock, SystemClock
from blobstore.codec.ranges import Layout
from blobstore.datapath import (
    ChunkRef,
    ServerHealth,
    Target,
    WriteOptions,
    read_range,
    write_object,
)
from blobstore.datapath import ShardRef as DataShardRef
from blobstore.errors import InsufficientSpace, InvalidRange, NoSuchShard
from blobstore.rpc.transport import Transport
from blobstore.types import Address
from metadata.api import DeleteQueueQuery, GetErasureProfileQuery, ListChunkserversQuery
from metadata.fsm.commands import AckShardDeletes
from metadata.fsm.records import Chunk, ChunkserverRecord, ErasureProfile, ShardPlacement
from metadata.fsm.results import DeleteQueuePage, ObjectInfo
from metadata.placement import choose_servers

__all__ = [
    "DEFAULT_INLINE_THRESHOLD_BYTES",
    "BodyPiece",
    "ClusterObjectStore",
    "MemoryObjectStore",
    "ObjectStore",
    "StoredData",
]

DEFAULT_INLINE_THRESHOLD_BYTES = 4 * 1024
_SEND_BLOCK = 1024 * 1024  # bytes per block handed to the HTTP server when streaming a GET
_SEND_DIRECT = 64 * 1024  # a received view at least this big is handed on as is

# A piece of an object body, read or written; never mutated. Narrower than codec's Buffer:
# no bytearray, which Starlette's StreamingResponse (the console's downloads) cannot send.
BodyPiece: TypeAlias = bytes | memoryview


@dataclass(frozen=True, slots=True)
class StoredData:
    """Bytes made durable by ``ObjectStore.write``, ready to commit.

    Exactly one of ``chunks`` (non-empty) / ``inline`` (not None) carries the bytes.
    """

    size: int
    md5_hex: str
    chunks: tuple[Chunk, ...] = ()
    inline: bytes | None = None


class ObjectStore(Protocol):
    """Where object bytes live (the catalog holds only their description)."""

    async def write(
        self,
        body: AsyncIterable[BodyPiece],
        size_hint: int | None,
        *,
        allow_inline: bool = True,
        md5: bool = True,
    ) -> StoredData:
        """Store every byte of ``body`` (consumed to its end); raise on any failure.

        ``allow_inline=False`` (multipart parts) always produces chunks. ``md5=False``: the
        caller hashes the body itself, and ``md5_hex`` comes back empty."""
        ...

    def read(self, obj: ObjectInfo, start: int, length: int) -> AsyncIterator[BodyPiece]:
        """The bytes ``[start, start + length)`` of a committed object, in order."""
        ...

    async def discard(self, data: StoredData) -> None:
        """Forget data that will never be committed (best effort)."""
        ...


async def _peek(
    body: AsyncIterable[BodyPiece], limit: int, head: list[BodyPiece] | None = None
) -> tuple[int | None, list[BodyPiece], AsyncIterator[BodyPiece]]:
    """Read until ``limit + 1`` bytes are in ``head`` (pieces already read, appended to):
    (the body's size if it ended by then, head, rest). ``limit < 0`` reads nothing."""
    it = aiter(body)
    head = [] if head is None else head
    have = sum(len(p) for p in head)
    while have <= limit:
        try:
            piece = await anext(it)
        except StopAsyncIteration:
            return have, head, it
        if piece:
            head.append(piece)
            have += len(piece)
    return None, head, it


def _inline(head: Sequence[BodyPiece], md5: bool) -> StoredData:
    data = b"".join(head)
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest() if md5 else ""
    return StoredData(len(data), digest, inline=data)


async def _chain(head: list[BodyPiece], rest: AsyncIterator[BodyPiece]) -> AsyncIterator[BodyPiece]:
    """``head`` then ``rest``; ``head`` is emptied as it goes (a peeked stripe is not held
    for the rest of a long upload)."""
    head.reverse()
    while head:
        yield head.pop()
    async for piece in rest:
        yield piece


def _inline_slice(obj: ObjectInfo, start: int, length: int) -> bytes:
    data = obj.record.inline_data or b""
    if start < 0 or length < 0 or start + length > len(data):
        raise InvalidRange(f"range {start}+{length} outside an object of {len(data)} bytes")
    return data[start : start + length]


# -- memory -------------------------------------------------------------------------------
class MemoryObjectStore:
    """Keeps chunk bytes in a dict (tests). Chunks are cut at ``chunk_bytes``."""

    def __init__(
        self,
        *,
        inline_threshold_bytes: int = DEFAULT_INLINE_THRESHOLD_BYTES,
        chunk_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.inline_threshold_bytes = inline_threshold_bytes
        self.chunk_bytes = chunk_bytes
        self.chunks: dict[str, bytes] = {}
        self.writes = 0

    async def write(
        self,
        body: AsyncIterable[BodyPiece],
        size_hint: int | None,
        *,
        allow_inline: bool = True,
        md5: bool = True,
    ) -> StoredData:
        threshold = self.inline_threshold_bytes if allow_inline else -1
        size, head, rest = await _peek(body, threshold)
        if size is not None:
            return _inline(head, md5)
        digest = hashlib.md5(usedforsecurity=False)
        made: list[Chunk] = []
        buf = bytearray()
        size = 0
        try:
            async for piece in _chain(head, rest):
                if md5:
                    digest.update(piece)
                size += len(piece)
                buf += piece
                while len(buf) >= self.chunk_bytes:
                    made.append(self._put(bytes(buf[: self.chunk_bytes])))
                    del buf[: self.chunk_bytes]
            if buf or not made:
                made.append(self._put(bytes(buf)))
        except BaseException:
            for c in made:
                self.chunks.pop(c.chunk_id, None)
            raise
        self.writes += 1
        return StoredData(size, digest.hexdigest() if md5 else "", chunks=tuple(made))

    def _put(self, data: bytes) -> Chunk:
        cid = uuid.uuid4().hex
        self.chunks[cid] = data
        return Chunk(cid, "memory", 1, 0, max(1, len(data)), len(data), (ShardPlacement(1, 0),))

    async def read(self, obj: ObjectInfo, start: int, length: int) -> AsyncIterator[BodyPiece]:
        if not obj.chunks:
            yield _inline_slice(obj, start, length)
            return
        end = start + length
        offset = 0
        for c in obj.chunks:
            c0, c1 = offset, offset + c.data_length
            offset = c1
            if c1 <= start or c0 >= end:
                continue
            data = self.chunks.get(c.chunk_id)
            if data is None:
                raise NoSuchShard(f"chunk {c.chunk_id} is gone", chunk=c.chunk_id)
            yield data[max(start, c0) - c0 : min(end, c1) - c0]
            await asyncio.sleep(0)

    async def discard(self, data: StoredData) -> None:
        for c in data.chunks:
            self.chunks.pop(c.chunk_id, None)

    async def collect_garbage(self, catalog: CatalogClient) -> int:
        """Drop the chunks the catalog queued for deletion (deleted/overwritten objects,
        aborted uploads) and acknowledge them; returns how many were dropped."""
        dropped = 0
        while True:
            page = await catalog.query(DeleteQueueQuery(server_id=1, limit=1000))
            assert isinstance(page, DeleteQueuePage)
            if not page.entries:
                return dropped
            for entry in page.entries:
                if self.chunks.pop(entry.shard.chunk_id, None) is not None:
                    dropped += 1
            await catalog.execute(AckShardDeletes(tuple(e.shard for e in page.entries)))


# -- cluster ------------------------------------------------------------------------------
class ClusterObjectStore:
    """Erasure-coded chunks on chunkservers through ``blobstore.datapath``.

    ``catalog`` answers ``ListChunkserversQuery`` / ``GetErasureProfileQuery`` (cached for
    ``placement_ttl_s``); ``transport`` carries shard traffic. ``replicate_single_stripe``:
    a body of at most one stripe is coded with k = 1 (see the module docstring). ``clock``
    and ``rng`` (placement keys, chunk ids) are for deterministic simulations.
    """

    def __init__(
        self,
        catalog: CatalogClient,
        transport: Transport,
        *,
        inline_threshold_bytes: int = DEFAULT_INLINE_THRESHOLD_BYTES,
        replicate_single_stripe: bool = True,
        placement_ttl_s: float = 1.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._rng = rng  # placement keys and chunk ids (None: os.urandom, uuid4)
        self._catalog = catalog
        self._transport = transport
        self.inline_threshold_bytes = inline_threshold_bytes
        self.replicate_single_stripe = replicate_single_stripe
        self._ttl = placement_ttl_s
        self._servers: tuple[ChunkserverRecord, ...] = ()
        self._addrs: dict[int, Address] = {}
        self._profile = ErasureProfile()
        self._fetched_at = -1e9
        self._lock = asyncio.Lock()
        # servers that were slow or unreachable lately (a read's hedge, a write's missed
        # grace), shared by all requests: a chunkserver that stops answering costs one
        # hedge delay, not one per GET, and gets no new shards while others can take them
        self._health = ServerHealth(clock=self._clock.monotonic)

    async def _refresh(self) -> tuple[tuple[ChunkserverRecord, ...], ErasureProfile]:
        async with self._lock:
            now = self._clock.monotonic()
            if now - self._fetched_at > self._ttl:
                servers = await self._catalog.query(ListChunkserversQuery())
                profile = await self._catalog.query(GetErasureProfileQuery())
                assert isinstance(servers, tuple)
                assert isinstance(profile, ErasureProfile)
                self._servers, self._profile = servers, profile
                self._addrs = {s.server_id: s.addr for s in servers}
                self._fetched_at = now
            return self._servers, self._profile

    def _new_chunk_id(self) -> uuid.UUID:
        if self._rng is None:
            return uuid.uuid4()
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)

    def address_of(self, server_id: int) -> Address | None:
        """``ServerDirectory``: the address the catalog last reported (cached)."""
        return self._addrs.get(server_id)

    async def write(
        self,
        body: AsyncIterable[BodyPiece],
        size_hint: int | None,
        *,
        allow_inline: bool = True,
        md5: bool = True,
    ) -> StoredData:
        threshold = self.inline_threshold_bytes if allow_inline else -1
        size, head, rest = await _peek(body, threshold)
        if size is not None:
            return _inline(head, md5)
        _servers, profile = await self._refresh()
        # a body that fits in one stripe is coded with k = 1: as many losses survived as
        # with k + m, and a read is one shard read instead of k
        if self.replicate_single_stripe and profile.stripe_size_bytes > threshold:
            size, head, rest = await _peek(rest, profile.stripe_size_bytes, head)
        k = 1 if size is not None else profile.k
        layout = Layout(profile.chunk_size_bytes, profile.stripe_size_bytes, k, profile.m)
        options = WriteOptions(coder=profile.coder, etag_md5=md5)
        quorum = options.quorum(layout.k, layout.m)
        store = self

        class _Placement:
            async def allocate(self, chunk_index: int) -> list[Target]:
                current, _ = await store._refresh()
                # fewer than n when servers are down or full: the writer then leaves the
                # last shards for repair, or fails if a write quorum is not reached
                # servers that just failed or lagged (reads' and writes' marks) go last
                avoid = store._health.avoided(s.server_id for s in current)
                key = os.urandom(16) if store._rng is None else store._rng.randbytes(16)
                chosen = choose_servers(current, layout.n, key=key, avoid=avoid)
                up = sum(1 for s in current if s.state == "up")
                if len(chosen) < quorum <= up:  # enough servers, not enough room: say so
                    raise InsufficientSpace(
                        f"only {len(chosen)} of {up} up chunkservers have room; "
                        f"a write needs {quorum}"
                    )
                return [Target(s.server_id, s.addr) for s in chosen]

        result = await write_object(
            _chain(head, rest),
            layout=layout,
            placement=_Placement(),
            transport=self._transport,
            size_bytes=size_hint,
            options=options,
            health=self._health,
            new_chunk_id=self._new_chunk_id,
        )
        chunks = tuple(
            Chunk(
                str(ref.chunk_id),
                ref.coder,
                ref.k,
                ref.m,
                ref.stripe_bytes,
                ref.data_length,
                tuple(
                    ShardPlacement(s.server_id, s.shard_index, f"{s.checksum:x}")
                    for s in ref.shards
                ),
            )
            for ref in result.chunks
        )
        return StoredData(result.size_bytes, result.etag, chunks=chunks)

    async def read(self, obj: ObjectInfo, start: int, length: int) -> AsyncIterator[BodyPiece]:
        if not obj.chunks:
            yield _inline_slice(obj, start, length)
            return
        await self._refresh()
        refs = [
            ChunkRef(
                uuid.UUID(c.chunk_id),
                c.coder,
                c.k,
                c.m,
                c.stripe_size,
                c.data_length,
                tuple(
                    DataShardRef(s.server_id, s.shard_index, int(s.checksum or "0", 16))
                    for s in sorted(c.shards, key=lambda s: s.shard_index)
                ),
            )
            for c in obj.chunks
        ]
        # read_range yields views of received frames (a shard slice each): big ones go to
        # the HTTP server as they are (no copy); small ones are joined into ~_SEND_BLOCK
        parts: list[memoryview] = []
        pending = 0
        async for view in read_range(
            refs,
            start,
            length,
            directory=self,
            transport=self._transport,
            health=self._health,
        ):
            if len(view) >= _SEND_DIRECT:
                if parts:
                    yield b"".join(parts)
                    parts, pending = [], 0
                yield view
                continue
            parts.append(view)
            pending += len(view)
            if pending >= _SEND_BLOCK:
                yield b"".join(parts)
                parts, pending = [], 0
        if parts:
            yield b"".join(parts)

    async def discard(self, data: StoredData) -> None:
        # Unreferenced shards are garbage-collected by the chunkservers' reconciliation.
        return None
