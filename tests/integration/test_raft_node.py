"""The asyncio Raft driver over real TCP RPC: election, replication, reads, failover,
snapshots and restart from disk (several nodes in one event loop, real sockets)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from blobstore.errors import NotLeader
from blobstore.rpc import RpcClient, RpcServer
from blobstore.types import Address
from metadata import wire
from metadata.node import NodeOptions, RaftNode
from metadata.raft.messages import Message
from metadata.storage.disk import DiskLogStore, DiskSnapshotStore

pytestmark = pytest.mark.integration

SECRET = b"k" * 32


class KV:
    """A tiny deterministic state machine: ``key=value`` sets, results are the index."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def apply(self, index: int, data: bytes) -> object:
        key, _, value = data.partition(b"=")
        self.data[key] = value
        return index

    def snapshot(self) -> Callable[[], bytes]:
        frozen = dict(self.data)
        return lambda: b"\n".join(k + b"=" + v for k, v in sorted(frozen.items()))

    def restore(self, data: bytes) -> None:
        self.data = dict(line.partition(b"=")[::2] for line in data.split(b"\n") if line)


@dataclass
class Member:
    node_id: int
    directory: Path
    server: RpcServer = field(default_factory=lambda: RpcServer(SECRET))
    node: RaftNode | None = None
    fsm: KV = field(default_factory=KV)
    log: DiskLogStore | None = None


class Cluster:
    def __init__(self, root: Path, size: int, options: NodeOptions) -> None:
        self.members = {i: Member(i, root / f"n{i}") for i in range(1, size + 1)}
        self.addrs: dict[int, Address] = {}
        self.options = options

    async def start(self) -> None:
        for m in self.members.values():
            self.addrs[m.node_id] = await m.server.start(Address("127.0.0.1", 0))
        for m in self.members.values():
            await self.start_node(m.node_id)

    async def start_node(self, node_id: int) -> None:
        m = self.members[node_id]
        if m.server.address is None:
            m.server = RpcServer(SECRET)
            await m.server.start(self.addrs[node_id])
        m.directory.mkdir(parents=True, exist_ok=True)
        m.log = DiskLogStore(m.directory)
        m.fsm = KV()
        m.node = RaftNode(
            node_id,
            self.addrs,
            m.log,
            DiskSnapshotStore(m.directory),
            m.fsm,
            RpcClient(SECRET),
            options=self.options,
            rng=random.Random(node_id),
        )
        m.server.on_message(Message, m.node.step)
        await m.node.start()

    async def stop_node(self, node_id: int) -> None:
        m = self.members[node_id]
        assert m.node is not None and m.log is not None
        await m.node.stop()
        await m.server.stop()
        m.log.close()
        m.node = None

    def running(self) -> list[RaftNode]:
        return [m.node for m in self.members.values() if m.node is not None]

    async def leader(self, timeout_s: float = 10.0) -> RaftNode:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            leaders = [n for n in self.running() if n.is_leader]
            if len(leaders) == 1:
                return leaders[0]
            assert loop.time() < deadline, "no single leader before the deadline"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        for node_id, m in self.members.items():
            if m.node is not None:
                await self.stop_node(node_id)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    wire.register_all()
    c = Cluster(tmp_path, 3, NodeOptions(tick_s=0.01, snapshot_entries=200))
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def test_replicate_read_failover_restart(cluster: Cluster) -> None:
    leader = await cluster.leader()
    results = await asyncio.gather(
        *(leader.propose(f"k{i}=v{i}".encode(), timeout_s=10) for i in range(500))
    )
    assert len(set(results)) == 500  # every proposal got its own applied index
    await leader.read_barrier(timeout_s=10)
    for node in cluster.running():
        await node.wait_applied(max(results), timeout_s=10)  # type: ignore[type-var]
        assert cluster.members[node.id].fsm.data[b"k499"] == b"v499"

    follower = next(n for n in cluster.running() if not n.is_leader)
    with pytest.raises(NotLeader) as info:
        await follower.propose(b"x=1", timeout_s=1)
    assert info.value.details["leader_id"] == str(leader.id)

    old = leader.id
    await cluster.stop_node(old)
    new_leader = await cluster.leader()
    assert new_leader.id != old
    await new_leader.propose(b"after=failover", timeout_s=10)

    await cluster.start_node(old)  # restarts from its WAL and snapshot
    rejoined = cluster.members[old].node
    assert rejoined is not None
    await new_leader.read_barrier(timeout_s=10)
    await rejoined.wait_applied(new_leader.applied_index, timeout_s=10)
    assert cluster.members[old].fsm.data[b"after"] == b"failover"
    assert cluster.members[old].fsm.data[b"k0"] == b"v0"
    # A snapshot was taken (200-entry threshold) and the log was compacted behind it.
    log = cluster.members[new_leader.id].log
    assert log is not None and log.first_index() > 1
