"""The chunkserver process: shard RPC handlers over a ``ShardStore``, heartbeat and scrub.

``Chunkserver`` wires one store to an authenticated ``RpcServer`` (handlers for the
messages of ``chunkserver.messages``), a heartbeat loop calling a ``MetadataLink`` every
``heartbeat_s``, and a background ``Scrubber``. ``serve(config)`` is the process entry
point used by ``blobstore chunkserver``: a ``DiskShardStore`` under ``<data>``, the cluster
secret from ``secret_file`` (default ``<data>/cluster.secret``, hex text), and a graceful
stop on SIGTERM/SIGINT.

Invariants:
* A WriteShard is answered only after the store returned its receipt (fsync + rename).
* Stopping first refuses new writes (``Unavailable``), gives in-flight ones
  ``drain_timeout_s`` to finish, then cancels the rest; a cancelled write leaves at most
  a temp file, which the store removes on the next start. Never a partial visible shard.
* Corruption found by reads or by the scrubber is reported through the link, at most once
  per shard every ``REPORT_AGAIN_S`` until it is rewritten or deleted. Reports are queued
  and may be lost (a full queue, a long leaderless spell); a shard still bad that long
  after is reported again (``ReportBadShards`` is idempotent).

The metadata link is a Protocol with a no-op implementation (``NoopMetadataLink``); the
real one (registration, heartbeats and bad-shard reports to the metadata service) drops in
through ``Chunkserver(link=...)`` / ``serve(config, link_factory=...)``.

Must not import: gateway code.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from blobstore import errors
from blobstore.client.catalog import RemoteCatalog
from blobstore.clock import Clock, SystemClock
from blobstore.config import ChunkserverConfig, load_secret
from blobstore.log import get_logger
from blobstore.obs.chunkserver import attach_chunkserver, chunkserver_metrics
from blobstore.obs.rpc import ObservedRpcServer
from blobstore.rpc import CallContext, RpcClient, RpcServer, StreamResponse
from blobstore.rpc.tls import internal_contexts
from blobstore.types import Address, is_unspecified
from chunkserver.messages import (
    DeleteShardRequest,
    DeleteShardResponse,
    GetSpaceRequest,
    GetSpaceResponse,
    ListInventoryRequest,
    ListInventoryResponse,
    ReadShardRequest,
    ReadShardResponse,
    ShardStat,
    StatShardRequest,
    StatShardResponse,
    WriteShardRequest,
    WriteShardResponse,
)
from chunkserver.scrub import CorruptShardReport, Scrubber, ScrubProgress
from chunkserver.shardfile import Buffer
from chunkserver.store.base import ShardInfo, ShardStore, SpaceInfo
from chunkserver.store.disk import DiskShardStore

__all__ = [
    "BadShardReport",
    "Chunkserver",
    "ChunkserverNode",
    "ChunkserverStats",
    "MetadataLink",
    "NoopMetadataLink",
    "serve",
]

log = get_logger(__name__)

REPORT_AGAIN_S = 600.0  # a bad shard still bad this long after its report: report again

MAX_INVENTORY_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class ChunkserverNode:
    """What a chunkserver tells the metadata service about itself when registering."""

    addr: Address
    zone: str
    data_dir: str
    server_id: int = 0  # 0 = never registered (the metadata service assigns one)


@dataclass(frozen=True, slots=True)
class ChunkserverStats:
    """One heartbeat's payload."""

    server_id: int
    space: SpaceInfo
    inflight_writes: int
    inflight_reads: int
    scrub: ScrubProgress | None


@dataclass(frozen=True, slots=True)
class BadShardReport:
    """A shard found corrupt or unreadable on this server."""

    chunk_id: uuid.UUID
    shard_index: int
    reason: str


class MetadataLink(Protocol):
    """The chunkserver's view of the metadata service."""

    async def register(self, node: ChunkserverNode, space: SpaceInfo) -> int:
        """Register (or re-register) this server; returns its server id."""
        ...

    async def heartbeat(self, stats: ChunkserverStats) -> None:
        """Periodic liveness and capacity report."""
        ...

    async def report_bad_shards(self, shards: Sequence[BadShardReport]) -> None:
        """Shards that need repair."""
        ...


class NoopMetadataLink:
    """A ``MetadataLink`` that talks to nobody (standalone chunkservers, tests)."""

    def __init__(self, server_id: int = 0) -> None:
        self.server_id = server_id
        self.heartbeats = 0
        self.bad_shards: list[BadShardReport] = []

    async def register(self, node: ChunkserverNode, space: SpaceInfo) -> int:
        return node.server_id or self.server_id

    async def heartbeat(self, stats: ChunkserverStats) -> None:
        self.heartbeats += 1

    async def report_bad_shards(self, shards: Sequence[BadShardReport]) -> None:
        self.bad_shards.extend(shards)


def _stat(info: ShardInfo) -> ShardStat:
    return ShardStat(info.chunk_id.bytes, info.shard_index, info.size_bytes, info.mtime)


def _chunk_id(raw: bytes) -> uuid.UUID:
    if len(raw) != 16:
        raise errors.InvalidArgument(f"chunk id must be 16 bytes, got {len(raw)}")
    return uuid.UUID(bytes=raw)


class Chunkserver:
    """One chunkserver: RPC handlers, heartbeat loop and scrubber over a ``ShardStore``."""

    def __init__(
        self,
        store: ShardStore,
        secret: bytes,
        *,
        link: MetadataLink | None = None,
        zone: str = "",
        data_dir: str = "",
        heartbeat_s: float = 1.0,
        scrub_mb_s: float = 0.0,
        clock: Clock | None = None,
        drain_timeout_s: float = 5.0,
        server_id: int = 0,
        rpc: RpcServer | None = None,
    ) -> None:
        self.store = store
        self.link: MetadataLink = link or NoopMetadataLink()
        self.rpc = rpc or RpcServer(secret)
        self._zone = zone
        self._data_dir = data_dir
        self._heartbeat_s = heartbeat_s
        self._clock = clock or SystemClock()
        self._drain_timeout_s = drain_timeout_s
        self.server_id = server_id
        self.scrubber = (
            Scrubber(store, rate_mb_s=scrub_mb_s, on_corrupt=self._scrub_found, clock=self._clock)
            if scrub_mb_s > 0
            else None
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.failure = asyncio.Event()  # a background task died: ``serve`` exits non-zero
        self.failed: BaseException | None = None
        self._stopping = False
        self._writes = 0
        self._reads = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._reported: dict[tuple[uuid.UUID, int], float] = {}  # -> when (monotonic)
        self.address: Address | None = None
        self.registered = False  # the metadata service accepted us (readiness, blobstore.obs)
        for cls, handler in (
            (WriteShardRequest, self._write),
            (ReadShardRequest, self._read),
            (DeleteShardRequest, self._delete),
            (StatShardRequest, self._stat),
            (ListInventoryRequest, self._inventory),
            (GetSpaceRequest, self._space),
        ):
            self.rpc.handle(cls, handler)

    # -- life cycle ---------------------------------------------------------------------
    async def start(self, listen: Address, advertise: Address | None = None) -> Address:
        """Start the store, listen, register with the metadata service, start loops.

        The metadata service records ``advertise`` (default: see ``advertised_address``)
        as where this chunkserver is dialled; the bound address is returned.
        """
        await self.store.start()
        self.address = await self.rpc.start(listen)
        dial = advertised_address(self.address, advertise)
        node = ChunkserverNode(dial, self._zone, self._data_dir, self.server_id)
        # Registration may wait for the metadata service; shard I/O is served meanwhile.
        self._background(self._heartbeat_loop(node), "heartbeat")
        if self.scrubber is not None:
            self._background(self.scrubber.run(), "scrub")
        log.info(
            "chunkserver started",
            addr=str(self.address),
            advertised=str(dial),
            server_id=self.server_id,
        )
        return self.address

    def _background(self, job: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``job`` for the server's life; if it ever ends, that is a failure.

        The loops handle their expected errors themselves. One that still ends (a
        registration refused for good, a store whose inventory cannot be listed) would
        otherwise leave a process that serves shards but never heartbeats or scrubs
        again, looking alive; ``serve`` exits non-zero instead, for the supervisor.
        """
        task = asyncio.create_task(job, name=name)

        def ended(t: asyncio.Task[None]) -> None:
            if t.cancelled() or self._stopping:
                return
            self.failed = t.exception() or RuntimeError(f"the {name} task ended")
            log.error("chunkserver background task failed", task=name, error=repr(self.failed))
            self.failure.set()

        task.add_done_callback(ended)
        self._tasks.append(task)

    async def stop(self) -> None:
        """Refuse new writes, let in-flight ones finish (bounded), then shut down."""
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._drain_timeout_s):
                await self._idle.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)  # a failed one: logged
        self._tasks.clear()
        await self.rpc.stop()
        log.info("chunkserver stopped", addr=str(self.address))

    async def _heartbeat_loop(self, node: ChunkserverNode) -> None:
        self.server_id = await self.link.register(node, await self.store.space())
        self.registered = True
        while True:
            try:
                await self._heartbeat_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the link may be down; keep beating
                log.warning("heartbeat failed", error=str(exc))
            await self._clock.sleep(self._heartbeat_s)

    async def _heartbeat_once(self) -> None:
        stats = ChunkserverStats(
            server_id=self.server_id,
            space=await self.store.space(),
            inflight_writes=self._writes,
            inflight_reads=self._reads,
            scrub=self.scrubber.progress() if self.scrubber is not None else None,
        )
        await self.link.heartbeat(stats)

    async def _report(self, reports: Sequence[BadShardReport]) -> None:
        now = self._clock.monotonic()
        again = now - REPORT_AGAIN_S
        fresh = [
            r for r in reports if self._reported.get((r.chunk_id, r.shard_index), again) <= again
        ]
        if not fresh:
            return
        for r in fresh:
            self._reported[(r.chunk_id, r.shard_index)] = now
        try:
            await self.link.report_bad_shards(fresh)
        except Exception as exc:
            log.warning("bad shard report failed", error=str(exc))
            for r in fresh:
                self._reported.pop((r.chunk_id, r.shard_index), None)

    def rearm_report(self, chunk_id: uuid.UUID, shard_index: int) -> None:
        """The shard was rewritten (e.g. rebuilt): report it at once if it goes bad again."""
        self._reported.pop((chunk_id, shard_index), None)

    async def report_missing(self, shards: Sequence[tuple[uuid.UUID, int]]) -> None:
        """Shards the catalog places here that the store lacks (GC's reconciliation)."""
        await self._report([BadShardReport(cid, index, "missing") for cid, index in shards])

    async def _scrub_found(self, report: CorruptShardReport) -> None:
        await self._report([BadShardReport(report.chunk_id, report.shard_index, report.reason)])

    # -- handlers -----------------------------------------------------------------------
    def _enter(self) -> None:
        self._idle.clear()

    def _leave(self) -> None:
        if self._writes == 0 and self._reads == 0:
            self._idle.set()

    async def _write(self, req: WriteShardRequest, ctx: CallContext) -> WriteShardResponse:
        if self._stopping:
            raise errors.Unavailable("chunkserver is stopping")
        try:
            header = req.to_header()
        except ValueError as exc:
            raise errors.InvalidArgument(f"bad shard header: {exc}") from None
        self._writes += 1
        self._enter()
        try:
            receipt = await self.store.write(header, ctx.body)
        finally:
            self._writes -= 1
            self._leave()
        self.rearm_report(header.chunk_id, header.shard_index)
        return WriteShardResponse(
            receipt.chunk_id.bytes,
            receipt.shard_index,
            receipt.file_bytes,
            receipt.data_bytes,
            receipt.checksum,
        )

    async def _read(self, req: ReadShardRequest, ctx: CallContext) -> StreamResponse:
        cid = _chunk_id(req.chunk_id)
        if req.offset < 0 or req.length < 0:
            raise errors.InvalidArgument(f"bad range {req.offset}+{req.length}")
        blocks = self.store.read(
            cid, req.shard_index, req.offset, req.length, cache=req.cache, checksums=req.checksums
        )
        try:
            first = await anext(blocks, None)  # NoSuchShard / CorruptShard surface here
        except errors.CorruptShard as exc:
            await blocks.aclose()
            await self._report([BadShardReport(cid, req.shard_index, _reason(exc))])
            raise
        except errors.NoSuchShard:  # placed here but gone: repair (stale reports are ignored)
            await blocks.aclose()
            await self._report([BadShardReport(cid, req.shard_index, "missing")])
            raise
        except BaseException:
            await blocks.aclose()
            raise
        header = ReadShardResponse(req.length, req.checksums)
        return StreamResponse(header, self._body(cid, req, first, blocks))

    async def _body(
        self,
        cid: uuid.UUID,
        req: ReadShardRequest,
        first: Buffer | None,
        blocks: AsyncIterator[Buffer],
    ) -> AsyncIterator[Buffer]:
        self._reads += 1
        self._enter()
        try:
            if first is not None:
                yield first
            async for block in blocks:
                yield block
        except errors.CorruptShard as exc:
            await self._report([BadShardReport(cid, req.shard_index, _reason(exc))])
            raise
        finally:
            aclose = getattr(blocks, "aclose", None)
            if aclose is not None:
                await aclose()
            self._reads -= 1
            self._leave()

    async def _delete(self, req: DeleteShardRequest, ctx: CallContext) -> DeleteShardResponse:
        cid = _chunk_id(req.chunk_id)
        existed = await self.store.delete(cid, req.shard_index)
        self.rearm_report(cid, req.shard_index)
        return DeleteShardResponse(existed)

    async def _stat(self, req: StatShardRequest, ctx: CallContext) -> StatShardResponse:
        info = await self.store.stat(_chunk_id(req.chunk_id), req.shard_index)
        return StatShardResponse(None if info is None else _stat(info))

    async def _inventory(
        self, req: ListInventoryRequest, ctx: CallContext
    ) -> ListInventoryResponse:
        limit = max(1, min(req.limit, MAX_INVENTORY_PAGE))
        after = (
            (_chunk_id(req.after_chunk_id), req.after_shard_index) if req.after_chunk_id else None
        )
        page = await self.store.inventory_page(after, limit)
        return ListInventoryResponse(tuple(_stat(i) for i in page.shards), page.is_truncated)

    async def _space(self, req: GetSpaceRequest, ctx: CallContext) -> GetSpaceResponse:
        s = await self.store.space()
        return GetSpaceResponse(s.capacity_bytes, s.free_bytes, s.used_bytes, s.reserve_bytes)


def advertised_address(bound: Address, advertise: Address | None) -> Address:
    """Where others dial a chunkserver bound to ``bound``: ``advertise`` when given; else
    the bound address, with this host's name in place of a wildcard (0.0.0.0, ::) host,
    which others cannot dial."""
    if advertise is not None:
        return advertise
    if is_unspecified(bound.host):
        return Address(socket.gethostname(), bound.port)
    return bound


def _reason(exc: errors.CorruptShard) -> str:
    return exc.details.get("reason", "corrupt")


LinkFactory = Callable[[ChunkserverConfig], MetadataLink]


async def serve(config: ChunkserverConfig, *, link_factory: LinkFactory | None = None) -> None:
    """Run a chunkserver until SIGTERM/SIGINT (the ``blobstore chunkserver`` command)."""
    data = config.common.data
    common = config.common
    secret = load_secret(common)
    if common.tls_cert is not None and common.tls_ca is None:
        raise errors.ConfigError("tls_ca: required with tls_cert (mutual TLS between roles)")
    ssl_context, client_ssl = internal_contexts(common.tls_cert, common.tls_key, common.tls_ca)
    store = DiskShardStore(data, config.reserve_bytes, write_cache_bytes=config.write_cache_bytes)
    transport: RpcClient | None = None
    if link_factory is not None:
        link: MetadataLink = link_factory(config)
    else:
        from chunkserver.metalink import CatalogLink, load_or_create_server_id

        transport = RpcClient(secret, ssl_context=client_ssl, fail_fast=True)
        link = CatalogLink(
            RemoteCatalog(config.meta, transport), load_or_create_server_id(Path(data))
        )
    server = Chunkserver(
        store,
        secret,
        link=link,
        zone=config.zone,
        data_dir=str(data),
        heartbeat_s=config.heartbeat_s,
        scrub_mb_s=config.scrub_mb_s,
        rpc=ObservedRpcServer(secret, observer=chunkserver_metrics(), ssl_context=ssl_context),
    )
    from chunkserver.repair import ShardRepairer  # rebuilds asked by the leader (#7)

    repair_transport = RpcClient(secret, ssl_context=client_ssl, fail_fast=True)
    # a rebuilt shard may be reported again if it rots
    ShardRepairer(store, repair_transport, on_repaired=server.rearm_report).install(server.rpc)
    from chunkserver.gc import GarbageCollector, GcConfig  # GC of shards (#7)

    gc = None
    if transport is not None:
        gc = GarbageCollector.for_server(
            server, RemoteCatalog(config.meta, transport), GcConfig.from_config(config)
        )
    # /metrics, /health/* (blobstore.obs)
    detach_obs = attach_chunkserver(server, Path(data), gc=gc)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start(config.listen, config.advertise)
        if gc is not None:
            gc.start()
        waiter = asyncio.create_task(stop.wait())
        watchdog = asyncio.create_task(server.failure.wait())
        await asyncio.wait({waiter, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, watchdog):
            task.cancel()
        await asyncio.gather(waiter, watchdog, return_exceptions=True)
    finally:
        detach_obs()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if gc is not None:
            await gc.stop()
        await server.stop()
        store.close()
        await repair_transport.close()
        if transport is not None:
            await transport.close()
    if server.failed is not None:
        raise SystemExit(1)
