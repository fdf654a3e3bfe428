"""Shard repair on the receiving chunkserver: rebuild one shard from its peers, locally.

The metadata leader's repair driver sends ``RepairShardRequest`` to the chosen target. The
target pulls k good shards from the listed peers (``blobstore.datapath.rebuilt_pieces``:
data shards first, any failure replaced by another source, decoded on the loop or in a
worker thread by piece size), streams the rebuilt pieces straight into its own
``ShardStore`` (temp -> fsync -> rename) and answers with the new shard's checksum. The
leader then commits the new placement; until that commit the file is an unplaced copy,
which GC may fence and remove once it is older than the grace period (the commit then
fails and the repair runs again: ``metadata/fsm/fences.py``).

Invariants: coding is deterministic, so when the catalog recorded a checksum for that
shard index (``expected_checksum`` != 0) the rebuilt shard must match it; otherwise it is
deleted and ``CorruptShard`` is raised (a source lied). Concurrent requests for the same
(chunk, shard) share one rebuild. At most ``max_concurrent`` rebuilds run at once; more
wait (the leader also bounds its fan-out).

Wire tags 2013-2015 (chunkserver range given to repair: 2013-2029).
Must not import: gateway or metadata packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from blobstore import errors
from blobstore.datapath import BadShard, ChunkRef, ReadOptions, ShardRef
from blobstore.datapath.repair import rebuilt_pieces
from blobstore.log import get_logger
from blobstore.rpc import CallContext, RpcServer
from blobstore.rpc.codec import register
from blobstore.rpc.transport import Transport
from blobstore.types import Address, parse_address
from chunkserver.shardfile import ShardHeader
from chunkserver.store.base import ShardStore

__all__ = ["RepairShardRequest", "RepairShardResponse", "RepairSource", "ShardRepairer"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RepairSource:
    """A good copy the target may read: shard ``shard_index`` on ``addr`` (HOST:PORT)."""

    server_id: int
    shard_index: int
    checksum: int
    addr: str


@dataclass(frozen=True, slots=True)
class RepairShardRequest:
    """Rebuild shard ``shard_index`` of a chunk here, from ``sources``."""

    chunk_id: bytes
    shard_index: int
    k: int
    m: int
    coder: str
    stripe_bytes: int
    data_length: int
    sources: tuple[RepairSource, ...]
    expected_checksum: int = 0  # 0: the catalog recorded none


@dataclass(frozen=True, slots=True)
class RepairShardResponse:
    """The rebuilt shard is durable here."""

    chunk_id: bytes
    shard_index: int
    checksum: int
    data_bytes: int
    file_bytes: int


register(2013, RepairSource)
register(2014, RepairShardRequest)
register(2015, RepairShardResponse)


class _Directory:
    def __init__(self, sources: tuple[RepairSource, ...]) -> None:
        self._addrs: dict[int, Address] = {}
        for s in sources:
            with contextlib.suppress(ValueError):
                self._addrs[s.server_id] = parse_address(s.addr)

    def address_of(self, server_id: int) -> Address | None:
        return self._addrs.get(server_id)


OnBadSource = Callable[[BadShard], None]
OnRepaired = Callable[[uuid.UUID, int], None]


class ShardRepairer:
    """Serves ``RepairShardRequest`` over a store, reading peers through ``transport``."""

    def __init__(
        self,
        store: ShardStore,
        transport: Transport,
        *,
        max_concurrent: int = 2,
        read_options: ReadOptions | None = None,
        on_bad_source: OnBadSource | None = None,
        on_repaired: OnRepaired | None = None,
    ) -> None:
        self._store = store
        self._transport = transport
        self._slots = asyncio.Semaphore(max(1, max_concurrent))
        # the sources' shards are read once here: what they fetch from disk is not kept
        self._options = read_options or ReadOptions(
            hedge_delay_s=5.0, call_timeout_s=300.0, cache=False
        )
        self._on_bad_source = on_bad_source
        self._on_repaired = on_repaired  # e.g. re-arm the server's bad-shard reporting
        self._running: dict[tuple[bytes, int], asyncio.Future[RepairShardResponse]] = {}
        self.repairs_done = 0
        self.bytes_written = 0

    def install(self, server: RpcServer) -> None:
        server.handle(RepairShardRequest, self.handle)

    async def handle(self, req: RepairShardRequest, ctx: CallContext) -> RepairShardResponse:
        key = (req.chunk_id, req.shard_index)
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        fut: asyncio.Future[RepairShardResponse] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._running[key] = fut
        try:
            async with self._slots:
                reply = await self.repair(req)
            fut.set_result(reply)
            return reply
        except BaseException as e:
            if not fut.done():
                if isinstance(e, Exception):
                    fut.set_exception(e)
                else:
                    fut.cancel()
            raise
        finally:
            self._running.pop(key, None)

    async def repair(self, req: RepairShardRequest) -> RepairShardResponse:
        """Rebuild the shard into the local store; its receipt as a response."""
        if len(req.chunk_id) != 16:
            raise errors.InvalidArgument("chunk id must be 16 bytes")
        cid = uuid.UUID(bytes=req.chunk_id)
        try:
            header = ShardHeader(
                chunk_id=cid,
                shard_index=req.shard_index,
                k=req.k,
                m=req.m,
                coder=req.coder,
                stripe_bytes=req.stripe_bytes,
                data_length=req.data_length,
            )
        except ValueError as e:
            raise errors.InvalidArgument(f"bad shard header: {e}") from None
        ref = ChunkRef(
            cid,
            req.coder,
            req.k,
            req.m,
            req.stripe_bytes,
            req.data_length,
            tuple(
                ShardRef(s.server_id, s.shard_index, s.checksum)
                for s in sorted(req.sources, key=lambda s: s.shard_index)
                if s.shard_index != req.shard_index
            ),
        )
        if len(ref.shards) < req.k:
            raise errors.Unavailable(f"only {len(ref.shards)} sources for a k={req.k} chunk")
        pieces = rebuilt_pieces(
            ref,
            req.shard_index,
            directory=_Directory(req.sources),
            transport=self._transport,
            options=self._options,
            on_bad_shard=self._on_bad_source,
        )
        async with contextlib.aclosing(pieces):
            receipt = await self._store.write(header, pieces, cache=False)
        if req.expected_checksum and receipt.checksum != req.expected_checksum:
            with contextlib.suppress(errors.BlobstoreError):
                await self._store.delete(cid, req.shard_index)
            raise errors.CorruptShard(
                f"rebuilt shard {req.shard_index} of chunk {cid} has checksum "
                f"{receipt.checksum:#x}, the catalog recorded {req.expected_checksum:#x}",
                chunk_id=str(cid),
                shard=str(req.shard_index),
            )
        if self._on_repaired is not None:
            self._on_repaired(cid, req.shard_index)
        self.repairs_done += 1
        self.bytes_written += receipt.file_bytes
        log.info(
            "shard repaired here",
            chunk_id=str(cid),
            shard=req.shard_index,
            bytes=receipt.data_bytes,
        )
        return RepairShardResponse(
            req.chunk_id, req.shard_index, receipt.checksum, receipt.data_bytes, receipt.file_bytes
        )
