"""Metrics and health of a metadata (Raft) node.

Read at scrape time from the node (no bookkeeping on the hot path):
``blobstore_raft_term``, ``blobstore_raft_commit_index``, ``blobstore_raft_applied_index``,
``blobstore_raft_is_leader``, ``blobstore_raft_leader_id`` (0 = none known),
``blobstore_raft_leader_changes_total``, and from the local catalog replica
``blobstore_catalog_chunkservers{state}``, ``blobstore_catalog_capacity_bytes`` and
``blobstore_catalog_free_bytes`` (the committed heartbeats' figures); with ``repair=``
the maintenance driver's ``blobstore_repair_*`` (``blobstore.obs.maintenance``).

Observed by the node through its ``on_proposal`` / ``on_snapshot`` hooks:
``blobstore_raft_proposal_seconds`` (histogram: propose -> applied here),
``blobstore_raft_proposals_total{outcome}``, ``blobstore_raft_snapshot_seconds{kind}``
(histogram; ``taken`` = serialize + save + compact, ``installed`` = from the leader) and
``blobstore_raft_snapshot_bytes`` (the last one's size).

Health: live = the Raft loop has not stopped on a storage failure; ready = a leader is
known (this node or another; a node cut off from the quorum forgets its leader at its
next election timeout, PreVote included).

The node and catalog are seen through Protocols: must not import the metadata package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from blobstore.obs.maintenance import RepairSource, attach_repair
from blobstore.obs.rpc import LATENCY_BUCKETS_S
from blobstore.obs.runtime import Check, Observability, process_observability

__all__ = ["MetadataMetrics", "RaftNodeView", "attach_metadata"]

CHUNKSERVER_STATES = ("up", "suspect", "down", "draining", "drained")


class RaftStatusView(Protocol):
    @property
    def term(self) -> int: ...
    @property
    def commit(self) -> int: ...
    @property
    def applied(self) -> int: ...


class RaftNodeView(Protocol):
    """What the metrics read from ``metadata.node.RaftNode``."""

    on_proposal: Callable[[float, bool], None] | None
    on_snapshot: Callable[[str, float, int], None] | None

    @property
    def leader_changes(self) -> int: ...
    @property
    def failed(self) -> bool: ...
    @property
    def is_leader(self) -> bool: ...
    @property
    def leader_id(self) -> int: ...
    def status(self) -> RaftStatusView: ...


class ChunkserverRecordView(Protocol):
    @property
    def state(self) -> str: ...
    @property
    def capacity_bytes(self) -> int: ...
    @property
    def free_bytes(self) -> int: ...


class CatalogView(Protocol):
    def list_chunkservers(self) -> Iterable[ChunkserverRecordView]: ...


class _RaftCollector(Collector):
    def __init__(self, node: RaftNodeView, catalog: CatalogView | None) -> None:
        self._node = node
        self._catalog = catalog

    def collect(self) -> Iterator[Metric]:
        node = self._node
        try:
            st = node.status()
        except RuntimeError:  # not started yet
            return
        yield GaugeMetricFamily("blobstore_raft_term", "Current Raft term.", value=st.term)
        yield GaugeMetricFamily(
            "blobstore_raft_commit_index", "Highest log index known committed.", value=st.commit
        )
        yield GaugeMetricFamily(
            "blobstore_raft_applied_index", "Highest log index applied here.", value=st.applied
        )
        yield GaugeMetricFamily(
            "blobstore_raft_is_leader", "1 if this node is the leader.", value=int(node.is_leader)
        )
        yield GaugeMetricFamily(
            "blobstore_raft_leader_id", "Leader's node id (0: none known).", value=node.leader_id
        )
        yield CounterMetricFamily(
            "blobstore_raft_leader_changes",
            "Times this node saw the leader change (since start).",
            value=node.leader_changes,
        )
        if self._catalog is not None:
            yield from self._catalog_metrics(self._catalog)

    @staticmethod
    def _catalog_metrics(catalog: CatalogView) -> Iterator[Metric]:
        servers = list(catalog.list_chunkservers())
        by_state = GaugeMetricFamily(
            "blobstore_catalog_chunkservers",
            "Registered chunkservers by state (this replica's catalog).",
            labels=["state"],
        )
        for state in CHUNKSERVER_STATES:
            by_state.add_metric([state], sum(1 for s in servers if s.state == state))
        yield by_state
        yield GaugeMetricFamily(
            "blobstore_catalog_capacity_bytes",
            "Sum of chunkserver disk capacity (last committed heartbeats).",
            value=sum(s.capacity_bytes for s in servers),
        )
        yield GaugeMetricFamily(
            "blobstore_catalog_free_bytes",
            "Sum of chunkserver free bytes (last committed heartbeats).",
            value=sum(s.free_bytes for s in servers),
        )


class MetadataMetrics:
    """The observed (event) metrics of one metadata node."""

    def __init__(self, hub: Observability) -> None:
        reg = hub.registry
        self.proposal_seconds = Histogram(
            "blobstore_raft_proposal_seconds",
            "Time from propose to applied on this leader.",
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.proposals = Counter(
            "blobstore_raft_proposals_total",
            "Proposals on this node by outcome (ok, failed).",
            ["outcome"],
            registry=reg,
        )
        self.snapshot_seconds = Histogram(
            "blobstore_raft_snapshot_seconds",
            "Snapshot duration (taken: serialize+save+compact; installed: from the leader).",
            ["kind"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
            registry=reg,
        )
        self.snapshot_bytes = Gauge(
            "blobstore_raft_snapshot_bytes",
            "Size of the last snapshot taken or installed.",
            registry=reg,
        )

    def observe_proposal(self, seconds: float, ok: bool) -> None:
        self.proposal_seconds.observe(seconds)
        self.proposals.labels("ok" if ok else "failed").inc()

    def observe_snapshot(self, kind: str, seconds: float, size_bytes: int) -> None:
        self.snapshot_seconds.labels(kind).observe(seconds)
        self.snapshot_bytes.set(size_bytes)


def attach_metadata(
    node: RaftNodeView,
    catalog: CatalogView | None = None,
    hub: Observability | None = None,
    *,
    repair: RepairSource | None = None,
) -> Callable[[], None]:
    """Expose ``node``'s (and the repair driver's) metrics and health on ``hub``;
    returns the detacher."""
    hub = hub or process_observability()
    detach_repair = attach_repair(repair, hub) if repair is not None else None
    metrics = hub.shared("metadata", MetadataMetrics)
    collector = _RaftCollector(node, catalog)
    hub.registry.register(collector)
    node.on_proposal = metrics.observe_proposal
    node.on_snapshot = metrics.observe_snapshot

    async def live() -> Check:
        if node.failed:
            return Check("raft", False, "the Raft loop stopped on a storage failure")
        return Check("raft", True, "running")

    async def ready() -> Check:
        lead = node.leader_id
        if lead == 0:
            return Check("leader", False, "no leader known (is a quorum of metadata nodes up?)")
        role = "this node" if node.is_leader else f"node {lead}"
        return Check("leader", True, f"leader is {role}, term {node.status().term}")

    removers = [hub.add_check("live", "raft", live), hub.add_check("ready", "leader", ready)]

    def detach() -> None:
        node.on_proposal = None
        node.on_snapshot = None
        for remove in removers:
            remove()
        hub.registry.unregister(collector)
        if detach_repair is not None:
            detach_repair()

    return detach
