"""``RaftNode``'s metrics hooks fire for proposals and snapshots (one-node cluster)."""

from __future__ import annotations

import random
from collections.abc import Callable

from prometheus_client import generate_latest

from blobstore.obs.metadata import attach_metadata
from blobstore.obs.runtime import Observability
from blobstore.testing.poll import eventually
from blobstore.types import Address
from metadata.node import NodeOptions, RaftNode
from metadata.storage.memory import MemoryLogStore, MemorySnapshotStore


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def apply(self, index: int, data: bytes) -> object:
        self.n += 1
        return index

    def snapshot(self) -> Callable[[], bytes]:
        n = self.n
        return lambda: str(n).encode()

    def restore(self, data: bytes) -> None:
        self.n = int(data or b"0")


class NoTransport:
    async def call(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("a one-node cluster sends nothing")

    async def call_stream(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("a one-node cluster sends nothing")

    async def send(self, addr: Address, message: object) -> None:
        raise AssertionError("a one-node cluster sends nothing")

    async def close(self) -> None:
        pass


async def test_proposals_and_snapshots_reach_the_metrics() -> None:
    hub = Observability("metadata", base=None)
    options = NodeOptions(tick_s=0.01, election_ticks=5, snapshot_entries=4)
    node = RaftNode(
        1,
        {1: Address("127.0.0.1", 1)},
        MemoryLogStore(),
        MemorySnapshotStore(),
        Counter(),
        NoTransport(),  # type: ignore[arg-type]
        options=options,
        rng=random.Random(1),
    )
    detach = attach_metadata(node, None, hub)
    await node.start()
    try:
        await eventually(lambda: node.is_leader, timeout_s=30)
        for i in range(6):
            await node.propose(f"{i}".encode(), timeout_s=30)
        await eventually(
            lambda: (
                b'blobstore_raft_snapshot_seconds_count{kind="taken"} 1.0'
                in generate_latest(hub.registry)
            ),
            timeout_s=30,
        )
        text = generate_latest(hub.registry).decode()
        assert "blobstore_raft_proposal_seconds_count 6.0" in text
        assert 'blobstore_raft_proposals_total{outcome="ok"} 6.0' in text
        assert "blobstore_raft_is_leader 1.0" in text
    finally:
        detach()
        await node.stop()
