"""Metadata node metrics and health, from a fake Raft node."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from blobstore.obs.metadata import attach_metadata
from blobstore.obs.runtime import Observability


@dataclass(frozen=True)
class FakeStatus:
    term: int
    commit: int
    applied: int


@dataclass
class FakeServer:
    state: str
    capacity_bytes: int = 100
    free_bytes: int = 40


@dataclass
class FakeCatalog:
    servers: list[FakeServer] = field(default_factory=list)

    def list_chunkservers(self) -> list[FakeServer]:
        return self.servers


@dataclass
class FakeNode:
    term: int = 3
    commit: int = 10
    applied: int = 9
    leader_changes: int = 2
    failed: bool = False
    is_leader: bool = False
    leader_id: int = 2
    started: bool = True
    on_proposal: Callable[[float, bool], None] | None = None
    on_snapshot: Callable[[str, float, int], None] | None = None

    def status(self) -> FakeStatus:
        if not self.started:
            raise RuntimeError("node not started")
        return FakeStatus(self.term, self.commit, self.applied)


async def test_scrape_reads_raft_state_and_catalog() -> None:
    hub = Observability("metadata", base=None)
    node = FakeNode()
    catalog = FakeCatalog([FakeServer("up"), FakeServer("up"), FakeServer("down")])
    attach_metadata(node, catalog, hub)
    text = (await hub.metrics_text()).decode()
    for line in (
        "blobstore_raft_term 3.0",
        "blobstore_raft_commit_index 10.0",
        "blobstore_raft_applied_index 9.0",
        "blobstore_raft_is_leader 0.0",
        "blobstore_raft_leader_id 2.0",
        "blobstore_raft_leader_changes_total 2.0",
        'blobstore_catalog_chunkservers{state="up"} 2.0',
        'blobstore_catalog_chunkservers{state="down"} 1.0',
        "blobstore_catalog_capacity_bytes 300.0",
        "blobstore_catalog_free_bytes 120.0",
    ):
        assert line in text, line
    node.term, node.is_leader = 4, True
    text = (await hub.metrics_text()).decode()
    assert "blobstore_raft_term 4.0" in text
    assert "blobstore_raft_is_leader 1.0" in text


async def test_hooks_feed_histograms() -> None:
    hub = Observability("metadata", base=None)
    node = FakeNode()
    attach_metadata(node, None, hub)
    assert node.on_proposal is not None and node.on_snapshot is not None
    node.on_proposal(0.003, True)
    node.on_proposal(0.5, False)
    node.on_snapshot("taken", 1.5, 4096)
    text = (await hub.metrics_text()).decode()
    assert "blobstore_raft_proposal_seconds_count 2.0" in text
    assert 'blobstore_raft_proposals_total{outcome="ok"} 1.0' in text
    assert 'blobstore_raft_proposals_total{outcome="failed"} 1.0' in text
    assert 'blobstore_raft_snapshot_seconds_count{kind="taken"} 1.0' in text
    assert "blobstore_raft_snapshot_bytes 4096.0" in text


async def test_not_started_node_exports_no_raft_state() -> None:
    hub = Observability("metadata", base=None)
    attach_metadata(FakeNode(started=False), None, hub)
    assert b"blobstore_raft_term" not in await hub.metrics_text()


async def test_ready_follows_leader_and_live_follows_failure() -> None:
    hub = Observability("metadata", base=None)
    node = FakeNode()
    detach = attach_metadata(node, None, hub)
    assert (await hub.health("ready")).status == 200
    node.leader_id = 0
    reply = await hub.health("ready")
    assert reply.status == 503
    assert "no leader" in json.loads(reply.body)["checks"][-1]["detail"]
    node.failed = True
    assert (await hub.health("live")).status == 503
    detach()
    assert node.on_proposal is None
    assert b"blobstore_raft_term" not in await hub.metrics_text()
    attach_metadata(node, None, hub)  # re-attaching after detach works (shared metrics)
