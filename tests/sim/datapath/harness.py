"""Chunkservers, their disks and the network between them, simulated in one process.

Each ``SimServer`` is the real ``chunkserver.service.Chunkserver`` (WriteShard, ReadShard,
DeleteShard handlers, bad-shard reports, the scrubber) over a ``MemoryShardStore`` (the
exact on-disk shard format, in memory) and a ``SimTransport`` on a seeded ``SimNetwork``.
The data-path client (``write_object``, ``read_range``, ``rebuild_shard``) talks to them
through a ``SimTransport`` of its own. Time is the virtual time of
``blobstore.testing.virtual_loop``: run everything inside its ``run``.

With ``meta_options`` the servers also run as ``blobstore chunkserver`` does: a
``CatalogLink`` registering, heartbeating and reporting bad shards to the catalog, the
scrub loop, a ``ShardRepairer`` and a ``GarbageCollector``. The catalog is either
``SimMeta`` (in process, applied in order as the Raft log would, beside the leader's real
``MaintenanceDriver``, whose rebuild requests travel on the simulated network) or, with
``raft=True``, ``tests.sim.raft.raftmeta.RaftMeta``: three real metadata nodes (Raft
driver, catalog, maintenance driver, RPC service) that every component reaches over the
simulated network through its own ``RemoteCatalog``, as in production.

Faults: ``crash`` (the process dies: its in-flight handlers are cancelled, messages to
and from it are lost; its store survives, like a disk), ``restart`` (a new process over
the same store, or the network back after ``isolate``), ``isolate`` (the network only:
with the metadata side, its heartbeats still arrive), message loss, and the disk faults
of ``corrupt`` (flip one stored byte) and ``lose`` (the shard file disappears).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import cast

from blobstore.client.catalog import CatalogClient, LocalCatalog
from blobstore.datapath import ServerHealth, Target
from blobstore.rpc import RpcServer, SimNetwork, SimTransport
from blobstore.rpc.transport import Handler
from blobstore.testing.virtual_loop import LoopClock
from blobstore.types import Address
from chunkserver.gc import GarbageCollector, GcConfig
from chunkserver.metalink import CatalogLink
from chunkserver.repair import ShardRepairer
from chunkserver.service import (
    BadShardReport,
    Chunkserver,
    ChunkserverNode,
    ChunkserverStats,
    MetadataLink,
    NoopMetadataLink,
)
from chunkserver.store.base import SpaceInfo
from chunkserver.store.memory import MemoryShardStore
from metadata.api import ListChunkserversQuery, Query, ReadMode
from metadata.fsm.commands import ChunkserverHeartbeat, Command
from metadata.fsm.machine import decode_entry
from metadata.fsm.multipart import ApplyConfig
from metadata.fsm.state import Catalog
from metadata.maintenance.driver import MaintenanceDriver, MaintenanceOptions
from tests.sim.raft.raftmeta import RaftMeta

__all__ = ["CLIENT", "META", "PatientCatalog", "SimCluster", "SimMeta", "SimServer", "pieces"]

CLIENT = 0  # the data-path client's node id; servers are 1..n
META = 100  # the metadata leader's node id (its rebuild requests)


class _Leader:
    """A metadata leader that never loses its lead: proposals apply at once, in order."""

    def __init__(self, catalog: LocalCatalog) -> None:
        self._catalog = catalog

    @property
    def is_leader(self) -> bool:
        return True

    def current_term(self) -> int:
        return 1

    async def propose(self, data: bytes, timeout_s: float) -> object:
        return self._catalog.catalog.apply(decode_entry(data))


class SimMeta(LocalCatalog):
    """The catalog, as clients see it, with the leader's maintenance driver beside it."""

    def __init__(self, clock: LoopClock, rng: random.Random, options: MaintenanceOptions) -> None:
        # parts of any size: simulated objects are kilobytes, not the 5 MiB S3 minimum
        super().__init__(Catalog(config=ApplyConfig(min_part_size_bytes=0)), clock=clock)
        self.transport: SimTransport | None = None
        self.options = options
        self.rng = rng
        self.driver: MaintenanceDriver | None = None

    def attach(self, net: SimNetwork, addresses: dict[Address, int]) -> None:
        self.transport = SimTransport(net, META, addresses)
        self._start_driver()

    def _start_driver(self) -> None:
        assert self.transport is not None
        self.driver = MaintenanceDriver(
            _Leader(self),
            self.catalog,
            self.transport,
            self.options,
            clock=self._clock,
            rng=random.Random(self.rng.getrandbits(64)),
        )
        self.driver.start()

    async def failover(self) -> None:
        """A new leader takes over: the old driver stops (its rebuilds cancelled, its
        noted heartbeats forgotten) and a fresh one derives everything from the catalog."""
        if self.driver is not None:
            await self.driver.stop()
        self._start_driver()

    async def heartbeat(self, command: ChunkserverHeartbeat, *, timeout_s: float = 10.0) -> object:
        """As ``MetadataService.heartbeat``: noted by the leader, replicated when needed."""
        assert self.driver is not None
        noted = self.driver.note_heartbeat(command)
        return noted if noted is not None else await self.execute(command, timeout_s=timeout_s)

    async def stop(self) -> None:
        if self.driver is not None:
            await self.driver.stop()
        if self.transport is not None:
            await self.transport.close()


class PatientCatalog:
    """A catalog client whose calls all wait up to ``patience_s`` (virtual seconds): a test's
    own calls then ride out any failover, so their outcome is never unknown (a
    ``RemoteCatalog`` retries the same session entry, which applies once)."""

    def __init__(self, inner: CatalogClient, patience_s: float) -> None:
        self._inner = inner
        self._patience_s = patience_s

    async def execute(self, command: Command, *, timeout_s: float = 0.0) -> object:
        return await self._inner.execute(command, timeout_s=self._patience_s)

    async def query(
        self, q: Query, *, mode: ReadMode = ReadMode.LINEARIZABLE, timeout_s: float = 0.0
    ) -> object:
        return await self._inner.query(q, mode=mode, timeout_s=self._patience_s)

    async def heartbeat(self, command: ChunkserverHeartbeat, *, timeout_s: float = 0.0) -> object:
        return await self._inner.heartbeat(command, timeout_s=self._patience_s)


class _RecordingLink:
    """A ``MetadataLink`` that also keeps every bad-shard report (for the checks)."""

    def __init__(self, inner: MetadataLink, record: NoopMetadataLink) -> None:
        self._inner, self._record = inner, record

    async def register(self, node: ChunkserverNode, space: SpaceInfo) -> int:
        return await self._inner.register(node, space)

    async def heartbeat(self, stats: ChunkserverStats) -> None:
        await self._inner.heartbeat(stats)

    async def report_bad_shards(self, shards: Sequence[BadShardReport]) -> None:
        await self._record.report_bad_shards(shards)
        await self._inner.report_bad_shards(shards)


SECRET = b"s" * 32


async def pieces(data: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    """``data`` as a request body arrives: in pieces of random sizes."""
    at = 0
    while at < len(data):
        n = rng.randint(1, 9000)
        yield data[at : at + n]
        at += n
        await asyncio.sleep(0)


class _SimRpc:
    """The slice of ``RpcServer`` a ``Chunkserver`` uses, over a ``SimTransport``."""

    def __init__(self, transport: SimTransport) -> None:
        self.transport = transport

    def handle(self, request_cls: type, handler: Handler) -> None:
        self.transport.handle(request_cls, handler)

    async def start(self, listen: Address) -> Address:
        return listen

    async def stop(self) -> None:
        await self.transport.close()


@dataclass
class SimServer:
    """One chunkserver: its disk outlives its processes."""

    server_id: int
    addr: Address
    store: MemoryShardStore
    link: NoopMetadataLink  # collects the bad-shard reports of every incarnation
    process: Chunkserver | None = None
    transport: SimTransport | None = None
    gc: GarbageCollector | None = None
    catalog: CatalogClient | None = None  # the process's catalog client
    starting: asyncio.Task[Address] | None = None  # the process's start (a reference kept)

    @property
    def target(self) -> Target:
        return Target(self.server_id, self.addr)


@dataclass
class SimCluster:
    """``n`` chunkservers and one client on a seeded network (create inside the loop)."""

    n: int
    rng: random.Random
    meta_options: MaintenanceOptions | None = None  # set: run the metadata side too
    gc_config: GcConfig = field(default_factory=GcConfig)
    raft: bool = False  # the metadata side as three Raft nodes (RaftMeta), not SimMeta
    clock: LoopClock = field(init=False)
    meta: SimMeta | RaftMeta | None = field(init=False, default=None)
    catalog: CatalogClient | None = field(init=False, default=None)  # the gateway's
    net: SimNetwork = field(init=False)
    servers: dict[int, SimServer] = field(init=False, default_factory=dict)
    client: SimTransport = field(init=False)
    down: set[int] = field(init=False, default_factory=set)  # crashed or isolated

    def __post_init__(self) -> None:
        self.clock = LoopClock(epoch=1_800_000_000.0)
        self.net = SimNetwork(random.Random(self.rng.getrandbits(64)), self.clock)
        self.net.configure(min_delay_s=0.0005, max_delay_s=0.005)
        addresses = {Address("127.0.0.1", 7000 + i): i for i in range(1, self.n + 1)}
        self.addresses = addresses  # the chunkservers'
        self.routes = dict(addresses)  # every node's
        if self.meta_options is not None and self.raft:
            self.meta = RaftMeta(
                self.net, self.clock, random.Random(self.rng.getrandbits(64)),
                self.meta_options, addresses,
            )  # fmt: skip
            self.routes = self.meta.addresses
        elif self.meta_options is not None:
            self.meta = SimMeta(self.clock, self.rng, self.meta_options)
            self.meta.attach(self.net, addresses)
        for addr, i in addresses.items():
            store = MemoryShardStore(64 << 20, clock=self.clock.time)
            self.servers[i] = SimServer(i, addr, store, NoopMetadataLink(i))
            self._boot(self.servers[i])
        self._gateways: list[SimTransport] = []
        self.client, self.catalog = self.gateway(CLIENT)
        for server in self.servers.values():
            self._start(server)

    def gateway(self, node_id: int) -> tuple[SimTransport, CatalogClient | None]:
        """One more gateway process (its node id must be free): its transport and catalog."""
        transport = SimTransport(self.net, node_id, self.routes)
        self._gateways.append(transport)
        return transport, self._catalog_for(transport, f"gateway-{node_id}")

    def _catalog_for(self, transport: SimTransport, name: str) -> CatalogClient | None:
        """The catalog as one process reaches it (None: no metadata side)."""
        if isinstance(self.meta, RaftMeta):
            return self.meta.client(transport, name)
        return self.meta

    def _boot(self, server: SimServer) -> None:
        transport = SimTransport(self.net, server.server_id, self.routes)
        server.transport = transport
        server.catalog = self._catalog_for(transport, f"chunkserver-{server.server_id}")
        link: MetadataLink = server.link
        if server.catalog is not None:
            link = _RecordingLink(CatalogLink(server.catalog, server.server_id), server.link)
        server.process = Chunkserver(
            server.store,
            SECRET,
            link=link,
            clock=self.clock,
            server_id=server.server_id,
            drain_timeout_s=0.0,  # a crash: nothing in flight gets to finish
            # without the metadata side the scrubber is driven by hand (scrub_pass)
            scrub_mb_s=1000.0 if self.meta is None else 1.0,
            rpc=cast(RpcServer, _SimRpc(transport)),
        )

    def _start(self, server: SimServer) -> None:
        """With the metadata side: start the process's loops, repairer and GC."""
        if server.catalog is None or server.process is None or server.transport is None:
            return
        process = server.process
        ShardRepairer(server.store, server.transport, on_repaired=process.rearm_report).install(
            process.rpc
        )
        server.gc = GarbageCollector(
            server.store,
            server.catalog,
            lambda: process.server_id,
            self.gc_config,
            clock=self.clock,
            rng=random.Random(self.rng.getrandbits(64)),
            report=process.report_missing,
        )
        server.starting = asyncio.get_running_loop().create_task(process.start(server.addr))
        server.gc.start()

    def targets(self) -> list[Target]:
        return [s.target for s in self.servers.values()]

    def address_of(self, server_id: int) -> Address | None:
        server = self.servers.get(server_id)
        return server.addr if server is not None else None

    def health(self) -> ServerHealth:
        return ServerHealth(clock=self.clock.monotonic)

    # -- faults --------------------------------------------------------------------------
    async def crash(self, server_id: int) -> None:
        """kill -9: in-flight requests die with the process; the store (disk) remains."""
        server = self.servers[server_id]
        self.net.crash(server_id)
        if server.gc is not None:
            await server.gc.stop()
        if server.process is not None:
            await server.process.stop()  # no drain (drain_timeout_s=0): its loops die with it
        if server.transport is not None:
            await server.transport.close()  # cancels the handlers still running
        server.process = server.transport = server.gc = server.catalog = None
        self.down.add(server_id)

    def restart(self, server_id: int) -> None:
        server = self.servers[server_id]
        if server.process is None:
            self._boot(server)
            self.net.restart(server_id)
            self._start(server)
        self.net.rejoin(server_id)
        self.down.discard(server_id)

    def isolate(self, server_id: int) -> None:
        self.net.isolate(server_id)
        self.down.add(server_id)

    async def start(self, timeout_s: float = 300.0) -> CatalogClient:
        """Start the metadata side (with ``raft``, its nodes) and wait, up to ``timeout_s``
        of virtual time, until every chunkserver has registered; the gateway's catalog as
        a ``PatientCatalog``."""
        assert self.catalog is not None, "no metadata side"
        if isinstance(self.meta, RaftMeta):
            await self.meta.start()
        catalog = PatientCatalog(self.catalog, timeout_s)
        deadline = self.clock.now + timeout_s
        while len(cast(tuple[object, ...], await catalog.query(ListChunkserversQuery()))) < self.n:
            assert self.clock.now < deadline, "the chunkservers did not register"
            await asyncio.sleep(0.1)
        return catalog

    async def heal(self) -> None:
        """Every server running and reachable, no message loss."""
        self.net.heal()
        self.net.configure(drop_prob=0.0)
        if isinstance(self.meta, RaftMeta):
            await self.meta.heal()
        for server_id in sorted(self.down):
            self.restart(server_id)
        await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """Stop every process, the metadata side and the client."""
        for server_id in sorted(set(self.servers) - self.down):
            await self.crash(server_id)
        if self.meta is not None:
            await self.meta.stop()
        for transport in self._gateways:
            await transport.close()

    def corrupt(self, chunk_id: uuid.UUID, shard_index: int, server_id: int) -> int:
        """Flip one random stored byte of a shard file (header or piece); its offset."""
        store = self.servers[server_id].store
        offset = self.rng.randrange(len(store.raw_bytes(chunk_id, shard_index)))
        store.corrupt_byte(chunk_id, shard_index, offset)
        return offset

    async def lose(self, chunk_id: uuid.UUID, shard_index: int, server_id: int) -> None:
        """The shard file disappears from the disk."""
        await self.servers[server_id].store.delete(chunk_id, shard_index)
