"""The metadata service as ``blobstore metadata`` runs it, three nodes on the simulated network.

Each ``MetaNode`` is the production stack of one metadata process: the asyncio Raft driver
(``metadata.node.RaftNode``: group commit, the leader's sends before its fsync, ReadIndex
reads, snapshots), the catalog state machine, the leader's ``MaintenanceDriver`` and the
``MetadataService`` RPC handlers, over a ``MemoryLogStore`` whose ``crash`` loses what was
never synced, on a ``SimTransport``. Clients (the gateway's store, each chunkserver's
``CatalogLink`` and garbage collector) reach it through ``RemoteCatalog``, as in
production: leader discovery by ``NotLeader`` redirects, retries under one exactly-once
session per slot.

Faults: ``crash`` (kill -9: the process and its unsynced log tail are gone, its synced
log and snapshot remain), ``restart``, ``isolate``/``partition``/``rejoin`` (a network
partition of one node), ``pause`` (SIGSTOP, then SIGCONT: the node's Raft ticks and
maintenance rounds stop and its traffic waits, as a stopped process's would; a leader
paused past the election timeout wakes up believing it still leads).
Run inside ``blobstore.testing.virtual_loop.run``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from blobstore.client.catalog import RemoteCatalog
from blobstore.rpc import SimNetwork, SimTransport
from blobstore.testing.virtual_loop import LoopClock
from blobstore.types import Address
from metadata import wire
from metadata.fsm.machine import CatalogStateMachine
from metadata.fsm.multipart import ApplyConfig
from metadata.fsm.state import Catalog
from metadata.maintenance.driver import MaintenanceDriver, MaintenanceOptions, RaftLeader
from metadata.node import NodeOptions, RaftNode
from metadata.service import MetadataService
from metadata.storage.memory import MemoryLogStore, MemorySnapshotStore

__all__ = ["FAULTS", "META_IDS", "MetaNode", "RaftMeta"]

META_IDS = (101, 102, 103)
# ``RaftMeta.inject``: kill -9 of the leader, a restart, one node cut off from everyone or
# from the other metadata nodes only, one node stopped (SIGSTOP) for 0.5-5 s
FAULTS = ("failover", "restart", "isolate", "partition", "pause")
# the production defaults (50 ms ticks, elections after 10), small snapshots so that
# followers that were away catch up by snapshot as well as by log
OPTIONS = NodeOptions(snapshot_entries=300)


class ProcessClock:
    """One process's view of the loop clock: its sleeps do not end while it is paused."""

    def __init__(self, clock: LoopClock) -> None:
        self._clock = clock
        self._running = asyncio.Event()
        self._running.set()

    def time(self) -> float:
        return self._clock.time()

    def monotonic(self) -> float:
        return self._clock.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._clock.sleep(seconds)
        await self._running.wait()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()


@dataclass
class MetaNode:
    """One metadata node: its disk (log and snapshot stores) outlives its processes."""

    node_id: int
    addr: Address
    log: MemoryLogStore = field(default_factory=MemoryLogStore)
    snapshots: MemorySnapshotStore = field(default_factory=MemorySnapshotStore)
    fsm: CatalogStateMachine | None = None
    raft: RaftNode | None = None
    driver: MaintenanceDriver | None = None
    transport: SimTransport | None = None
    clock: ProcessClock | None = None


class RaftMeta:
    """Three metadata nodes; ``client(...)`` gives a component its own ``RemoteCatalog``."""

    def __init__(
        self,
        net: SimNetwork,
        clock: LoopClock,
        rng: random.Random,
        options: MaintenanceOptions,
        addresses: Mapping[Address, int],
    ) -> None:
        wire.register_all()
        self.net, self.clock, self.rng, self.options = net, clock, rng, options
        self.nodes = {
            i: MetaNode(i, Address("127.0.0.1", 9000 + n)) for n, i in enumerate(META_IDS)
        }
        self.peers = {i: node.addr for i, node in self.nodes.items()}
        self.addresses = {**addresses, **{n.addr: i for i, n in self.nodes.items()}}
        self.clients = 0
        self.isolated: set[int] = set()
        self.paused: set[int] = set()
        self._pauses: dict[int, object] = {}  # node -> the token of its current pause

    @property
    def meta_addrs(self) -> list[Address]:
        return [n.addr for n in self.nodes.values()]

    async def start(self) -> None:
        for node_id in self.nodes:
            await self.restart(node_id)

    async def restart(self, node_id: int) -> None:
        """Start (again) the process of ``node_id`` over its surviving stores."""
        node = self.nodes[node_id]
        if node.raft is not None:
            return
        node.fsm = CatalogStateMachine(Catalog(config=ApplyConfig(min_part_size_bytes=0)))
        node.transport = SimTransport(self.net, node_id, self.addresses)
        node.clock = ProcessClock(self.clock)
        node.raft = RaftNode(
            node_id,
            self.peers,
            node.log,
            node.snapshots,
            node.fsm,
            node.transport,
            options=OPTIONS,
            rng=random.Random(self.rng.getrandbits(64)),
            clock=node.clock,
        )
        node.driver = MaintenanceDriver(
            RaftLeader(node.raft),
            node.fsm.catalog,
            node.transport,
            self.options,
            clock=node.clock,
            rng=random.Random(self.rng.getrandbits(64)),
        )
        MetadataService(node.raft, node.fsm, node.driver).install(node.transport)  # type: ignore[arg-type]
        self.net.restart(node_id)
        await node.raft.start()
        node.driver.start()

    async def crash(self, node_id: int) -> None:
        """kill -9: the process dies; the log keeps only what was synced."""
        node = self.nodes[node_id]
        if node.raft is None:
            return
        self.net.crash(node_id)
        assert node.driver is not None and node.transport is not None
        await node.driver.stop()
        await node.raft.stop()
        await node.transport.close()
        node.log.crash()
        node.raft = node.driver = node.transport = node.fsm = node.clock = None
        self.paused.discard(node_id)
        self._pauses.pop(node_id, None)

    async def inject(self, fault: str, rng: random.Random) -> int | None:
        """One fault of ``FAULTS``, at most one node away at a time; its victim (None: the
        fault did not apply now). Cut-offs and pauses hit the leader most often: the case
        ReadIndex is for. "isolate" and "partition" rejoin a node already cut off."""
        if fault == "failover":
            return await self.failover()
        if fault == "restart":
            return await self.restart_one()
        if fault in ("isolate", "partition") and self.isolated:
            victim = min(self.isolated)
            self.rejoin(victim)
            return victim
        if fault not in ("isolate", "partition", "pause") or self.away():
            return None
        leader = self.leader()
        victim = leader.node_id if leader and rng.random() < 0.7 else rng.choice(list(self.nodes))
        if fault == "pause":
            self.pause(victim, rng.uniform(0.5, 5.0))
        else:
            (self.isolate if fault == "isolate" else self.partition)(victim)
        return victim

    def away(self) -> set[int]:
        """The nodes crashed or cut off."""
        return {i for i, n in self.nodes.items() if n.raft is None} | self.isolated | self.paused

    async def failover(self) -> int | None:
        """kill -9 of the leader while no node is away (a new one is elected); its id."""
        leader = self.leader()
        if leader is None or self.away():
            return None
        await self.crash(leader.node_id)
        return leader.node_id

    def isolate(self, node_id: int) -> None:
        """A network partition around one node: nobody reaches it."""
        self.net.isolate(node_id)
        self.isolated.add(node_id)

    def partition(self, node_id: int) -> None:
        """Cut one node off from the other metadata nodes only: clients and chunkservers
        still reach it (a leader cut off this way keeps answering until it steps down)."""
        for peer in self.nodes:
            if peer != node_id:
                self.net.block(node_id, peer)
                self.net.block(peer, node_id)
        self.isolated.add(node_id)

    def pause(self, node_id: int, for_s: float) -> None:
        """SIGSTOP now, SIGCONT ``for_s`` later."""
        node = self.nodes[node_id]
        assert node.clock is not None, "only a running node can be paused"
        node.clock.pause()
        self.net.pause(node_id)
        self.paused.add(node_id)
        token = self._pauses[node_id] = object()
        self.clock.call_later(for_s, lambda: self._resume_if(node_id, token))

    def _resume_if(self, node_id: int, token: object) -> None:
        """The timer of one pause: not of a later one (after a resume or a crash)."""
        if self._pauses.get(node_id) is token:
            self.resume(node_id)

    def resume(self, node_id: int) -> None:
        node = self.nodes[node_id]
        self._pauses.pop(node_id, None)
        if node_id not in self.paused or node.clock is None:
            return  # crashed (and maybe restarted) meanwhile: nothing to continue
        self.paused.discard(node_id)
        self.net.resume(node_id)
        node.clock.resume()

    def rejoin(self, node_id: int) -> None:
        """Undo ``isolate`` or ``partition``."""
        self.net.rejoin(node_id)
        for peer in self.nodes:
            self.net.unblock(node_id, peer)
            self.net.unblock(peer, node_id)
        self.isolated.discard(node_id)

    async def restart_one(self) -> int | None:
        """Restart a crashed node, if any; its id."""
        down = sorted(i for i, n in self.nodes.items() if n.raft is None)
        if not down:
            return None
        await self.restart(down[0])
        return down[0]

    async def heal(self) -> None:
        """Every node running and reachable."""
        for node_id in sorted(self.isolated):
            self.rejoin(node_id)
        for node_id in sorted(self.paused):
            self.resume(node_id)
        while await self.restart_one() is not None:
            pass

    def running(self) -> list[MetaNode]:
        return [n for n in self.nodes.values() if n.raft is not None]

    def leader(self) -> MetaNode | None:
        """The one node that leads, among those not paused (a paused leader may still
        believe it leads: it cannot know until it runs again)."""
        leaders = [
            n
            for n in self.running()
            if n.raft is not None and n.raft.is_leader and n.node_id not in self.paused
        ]
        return leaders[0] if len(leaders) == 1 else None

    @property
    def catalog(self) -> Catalog:
        """The leader's catalog (for checks: read it once the cluster has settled)."""
        leader = self.leader()
        assert leader is not None and leader.fsm is not None, "no single leader"
        return leader.fsm.catalog

    def client(self, transport: SimTransport, name: str) -> RemoteCatalog:
        """A ``RemoteCatalog`` for one component (a fresh session per process start)."""
        self.clients += 1
        return RemoteCatalog(
            self.meta_addrs, transport, client_id=f"{name}-{self.clients}", clock=self.clock
        )

    async def stop(self) -> None:
        for node_id in list(self.nodes):
            await self.crash(node_id)

    async def settle(self, timeout_s: float = 30.0) -> MetaNode:
        """Wait for one leader whose log every running node has applied."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            leader = self.leader()
            if leader is not None and leader.raft is not None:
                applied = {n.raft.applied_index for n in self.running() if n.raft is not None}
                if len(applied) == 1:
                    return leader
            assert loop.time() < deadline, "the metadata nodes did not settle"
            await asyncio.sleep(0.1)
