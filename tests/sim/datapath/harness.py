"""Chunkservers, their disks and the network between them, simulated in one process.

Each ``SimServer`` is the real ``chunkserver.service.Chunkserver`` (WriteShard, ReadShard,
DeleteShard handlers, bad-shard reports, the scrubber) over a ``MemoryShardStore`` (the
exact on-disk shard format, in memory) and a ``SimTransport`` on a seeded ``SimNetwork``.
The data-path client (``write_object``, ``read_range``, ``rebuild_shard``) talks to them
through a ``SimTransport`` of its own. Time is the virtual time of
``blobstore.testing.virtual_loop``: run everything inside its ``run``.

Faults: ``crash`` (the process dies: its in-flight handlers are cancelled, messages to
and from it are lost; its store survives, like a disk), ``restart`` (a new process over
the same store), ``isolate``/``heal`` (network only), message loss, and the disk faults
of ``corrupt`` (flip one stored byte) and ``lose`` (the shard file disappears).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from typing import cast

from blobstore.datapath import ServerHealth, Target
from blobstore.rpc import RpcServer, SimNetwork, SimTransport
from blobstore.rpc.transport import Handler
from blobstore.testing.virtual_loop import LoopClock
from blobstore.types import Address
from chunkserver.service import Chunkserver, NoopMetadataLink
from chunkserver.store.memory import MemoryShardStore

__all__ = ["CLIENT", "SimCluster", "SimServer"]

CLIENT = 0  # the data-path client's node id; servers are 1..n
SECRET = b"s" * 32


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

    @property
    def target(self) -> Target:
        return Target(self.server_id, self.addr)


@dataclass
class SimCluster:
    """``n`` chunkservers and one client on a seeded network (create inside the loop)."""

    n: int
    rng: random.Random
    clock: LoopClock = field(init=False)
    net: SimNetwork = field(init=False)
    servers: dict[int, SimServer] = field(init=False, default_factory=dict)
    client: SimTransport = field(init=False)
    down: set[int] = field(init=False, default_factory=set)  # crashed or isolated

    def __post_init__(self) -> None:
        self.clock = LoopClock(epoch=1_800_000_000.0)
        self.net = SimNetwork(random.Random(self.rng.getrandbits(64)), self.clock)
        self.net.configure(min_delay_s=0.0005, max_delay_s=0.005)
        addresses = {Address("127.0.0.1", 7000 + i): i for i in range(1, self.n + 1)}
        for addr, i in addresses.items():
            store = MemoryShardStore(64 << 20, clock=self.clock.time)
            self.servers[i] = SimServer(i, addr, store, NoopMetadataLink(i))
            self._boot(self.servers[i], addresses)
        self.addresses = addresses
        self.client = SimTransport(self.net, CLIENT, addresses)

    def _boot(self, server: SimServer, addresses: dict[Address, int]) -> None:
        transport = SimTransport(self.net, server.server_id, addresses)
        server.transport = transport
        server.process = Chunkserver(
            server.store,
            SECRET,
            link=server.link,
            clock=self.clock,
            server_id=server.server_id,
            scrub_mb_s=1000.0,  # the scrubber is driven by hand (scrub_pass), not started
            rpc=cast(RpcServer, _SimRpc(transport)),
        )

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
        if server.transport is not None:
            await server.transport.close()  # cancels the handlers still running
        server.process = server.transport = None
        self.down.add(server_id)

    def restart(self, server_id: int) -> None:
        server = self.servers[server_id]
        if server.process is None:
            self._boot(server, self.addresses)
            self.net.restart(server_id)
        self.down.discard(server_id)

    def isolate(self, server_id: int) -> None:
        self.net.isolate(server_id)
        self.down.add(server_id)

    async def heal(self) -> None:
        """Every server running and reachable, no message loss."""
        self.net.heal()
        self.net.configure(drop_prob=0.0)
        for server_id in sorted(self.down):
            self.restart(server_id)
        await asyncio.sleep(0.1)

    def corrupt(self, chunk_id: uuid.UUID, shard_index: int, server_id: int) -> int:
        """Flip one random stored byte of a shard file (header or piece); its offset."""
        store = self.servers[server_id].store
        offset = self.rng.randrange(len(store.raw_bytes(chunk_id, shard_index)))
        store.corrupt_byte(chunk_id, shard_index, offset)
        return offset

    async def lose(self, chunk_id: uuid.UUID, shard_index: int, server_id: int) -> None:
        """The shard file disappears from the disk."""
        await self.servers[server_id].store.delete(chunk_id, shard_index)
