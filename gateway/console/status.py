"""What the console shows about the cluster: metadata nodes, chunkservers, redundancy.

``ClusterProbe`` is the console's only view of the processes behind the catalog:
``metadata_nodes()`` asks every configured metadata node for its ``ClusterStatusResponse``
(as ``blobstore admin status`` does), ``ping_chunkserver(addr)`` sends a ``GetSpaceRequest``
with a short deadline (a hung or dead chunkserver fails it at once, long before the
catalog's heartbeat-based state changes). ``RemoteProbe`` does both over the gateway's RPC
transport; tests pass their own.

``gather_cluster`` joins the probe with ``ListChunkserversQuery`` into a ``ClusterView``;
``gather_redundancy`` uses the catalog's own ``RedundancyQuery`` / ``RepairStatusQuery``
(``metadata.maintenance``) and, only if the catalog cannot answer them, classifies chunks
itself from ``ListChunksQuery`` pages (bounded by ``max_chunks``; then ``exact`` is False).

Chunk classes (exclusive, as in ``RedundancySummary``): *full* = all k+m shards good,
*degraded* = fewer but more than k, *at risk* = exactly k (one more loss and it is
unreadable), *lost* = fewer than k. In the console's own scan a shard is good when its
server's catalog state is up/draining and the server answers the probe.

Must not import starlette.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from blobstore.client.catalog import CatalogClient
from blobstore.errors import BlobstoreError
from blobstore.rpc.transport import Transport
from blobstore.types import Address
from chunkserver.messages import GetSpaceRequest
from metadata.api import (
    ClusterStatusQuery,
    ClusterStatusResponse,
    ListChunkserversQuery,
    ListChunksQuery,
    ReadMode,
    RedundancyQuery,
    RepairStatusQuery,
)
from metadata.fsm.records import ChunkRecord, ChunkserverRecord
from metadata.fsm.results import RedundancySummary, RepairStatus

__all__ = [
    "ChunkserverView",
    "ClusterProbe",
    "ClusterView",
    "MetaNodeView",
    "RedundancyView",
    "RemoteProbe",
    "RepairView",
    "classify_chunks",
    "gather_cluster",
    "gather_redundancy",
]

# the catalog's heartbeat time: the leader replicates a heartbeat at least every
# heartbeat_commit_s (10 s; metadata.maintenance.liveness), so older than this looks wrong
HEARTBEAT_STALE_S = 30.0


@dataclass(frozen=True, slots=True)
class MetaNodeView:
    """One metadata node as it answered (``reachable`` False: ``error`` says why)."""

    address: str
    reachable: bool
    node_id: int = 0
    role: str = ""
    term: int = 0
    leader_id: int = 0
    commit_index: int = 0
    applied_index: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class ChunkserverView:
    """A chunkserver: the catalog's record joined with a live probe.

    ``health``: ``ok`` | ``stale`` (heartbeat older than HEARTBEAT_STALE_S) |
    ``unreachable`` (the probe failed) | the catalog state when it is suspect/down/draining.
    """

    server_id: int
    address: str
    zone: str
    state: str
    health: str
    capacity_bytes: int
    free_bytes: int
    heartbeat_age_s: float | None
    probe_ms: float | None
    probe_error: str = ""

    @property
    def used_bytes(self) -> int:
        return max(0, self.capacity_bytes - self.free_bytes)

    @property
    def used_fraction(self) -> float:
        return self.used_bytes / self.capacity_bytes if self.capacity_bytes > 0 else 0.0

    @property
    def usable(self) -> bool:
        return self.state in ("up", "draining") and self.probe_error == ""


@dataclass(frozen=True, slots=True)
class ClusterView:
    meta: tuple[MetaNodeView, ...]
    chunkservers: tuple[ChunkserverView, ...]
    leader_id: int
    leader_address: str
    term: int
    catalog_error: str = ""

    @property
    def capacity_bytes(self) -> int:
        return sum(s.capacity_bytes for s in self.chunkservers)

    @property
    def free_bytes(self) -> int:
        return sum(s.free_bytes for s in self.chunkservers)

    @property
    def used_bytes(self) -> int:
        return sum(s.used_bytes for s in self.chunkservers)

    @property
    def healthy_servers(self) -> int:
        return sum(1 for s in self.chunkservers if s.health == "ok")


@dataclass(frozen=True, slots=True)
class RepairView:
    """The leader's repair driver (from the catalog's repair status query)."""

    backlog: int
    in_flight: int
    done: int
    failed: int
    bytes_repaired: int
    bytes_per_s: float
    passes: int


@dataclass(frozen=True, slots=True)
class RedundancyView:
    source: str  # "catalog" (metadata.maintenance) or "console scan"
    chunks_total: int
    full: int
    degraded: int
    at_risk: int
    lost: int
    exact: bool = True
    objects_total: int | None = None
    objects_degraded: int | None = None
    objects_at_risk: int | None = None
    objects_lost: int | None = None
    bad_shards: int | None = None
    repair_backlog: int | None = None
    repair: RepairView | None = None
    note: str = ""
    error: str = ""

    @property
    def healthy(self) -> bool:
        return self.degraded == 0 and self.at_risk == 0 and self.lost == 0 and not self.error


class ClusterProbe(Protocol):
    async def metadata_nodes(self) -> tuple[MetaNodeView, ...]:
        """Every configured metadata node's own view (unreachable ones included)."""
        ...

    async def ping_chunkserver(self, addr: Address) -> float:
        """Round trip in ms; raises (BlobstoreError, OSError, TimeoutError) on failure."""
        ...


class RemoteProbe:
    """``ClusterProbe`` over the internal RPC transport."""

    def __init__(
        self, meta: Sequence[Address], transport: Transport, *, timeout_s: float = 1.5
    ) -> None:
        self._meta = tuple(meta)
        self._transport = transport
        self._timeout = timeout_s

    async def _one(self, addr: Address) -> MetaNodeView:
        try:
            st = await self._transport.call(addr, ClusterStatusQuery(), timeout_s=self._timeout)
        except (BlobstoreError, OSError, TimeoutError) as e:
            return MetaNodeView(str(addr), False, error=getattr(e, "message", "") or str(e))
        if not isinstance(st, ClusterStatusResponse):
            return MetaNodeView(str(addr), False, error=f"unexpected reply {type(st).__name__}")
        return MetaNodeView(
            str(addr), True, st.node_id, st.role, st.term, st.leader_id,
            st.commit_index, st.applied_index,
        )  # fmt: skip

    async def metadata_nodes(self) -> tuple[MetaNodeView, ...]:
        return tuple(await asyncio.gather(*(self._one(a) for a in self._meta)))

    async def ping_chunkserver(self, addr: Address) -> float:
        started = time.monotonic()
        await self._transport.call(addr, GetSpaceRequest(), timeout_s=self._timeout)
        return (time.monotonic() - started) * 1000


def _health(rec: ChunkserverRecord, age_s: float | None, probe_error: str) -> str:
    if rec.state in ("suspect", "down"):
        return str(rec.state)
    if probe_error:
        return "unreachable"
    if age_s is not None and age_s > HEARTBEAT_STALE_S:
        return "stale"
    return "ok" if rec.state == "up" else str(rec.state)


async def _probe(probe: ClusterProbe, rec: ChunkserverRecord, now_ms: float) -> ChunkserverView:
    error = ""
    latency: float | None = None
    try:
        latency = await probe.ping_chunkserver(rec.addr)
    except (BlobstoreError, OSError, TimeoutError) as e:
        error = getattr(e, "message", "") or type(e).__name__
    age = (now_ms - rec.last_heartbeat_ms) / 1000 if rec.last_heartbeat_ms else None
    return ChunkserverView(
        rec.server_id, str(rec.addr), rec.zone, str(rec.state), _health(rec, age, error),
        rec.capacity_bytes, rec.free_bytes, age, latency, error,
    )  # fmt: skip


async def gather_cluster(
    catalog: CatalogClient, probe: ClusterProbe, *, now_ms: float | None = None
) -> ClusterView:
    """Metadata nodes and chunkservers, probed concurrently."""
    now = time.time() * 1000 if now_ms is None else now_ms
    meta_task = asyncio.ensure_future(probe.metadata_nodes())
    catalog_error = ""
    servers: tuple[ChunkserverRecord, ...] = ()
    try:
        got = await catalog.query(ListChunkserversQuery(), mode=ReadMode.LOCAL, timeout_s=3.0)
        assert isinstance(got, tuple)
        servers = got
    except BlobstoreError as e:
        catalog_error = e.message or type(e).__name__
    views = await asyncio.gather(*(_probe(probe, s, now) for s in servers))
    meta = await meta_task
    leader = next((n for n in meta if n.reachable and n.role == "leader"), None)
    if leader is None:  # no node says it leads: take the newest term's opinion
        known = [n for n in meta if n.reachable and n.leader_id]
        best = max(known, key=lambda n: n.term, default=None)
        leader_id = best.leader_id if best else 0
        addr = next((n.address for n in meta if n.node_id == leader_id and leader_id), "")
        term = max((n.term for n in meta if n.reachable), default=0)
    else:
        leader_id, addr, term = leader.node_id, leader.address, leader.term
    return ClusterView(meta, tuple(views), leader_id, addr, term, catalog_error)


def classify_chunks(
    chunks: Iterable[ChunkRecord], usable: set[int]
) -> tuple[int, int, int, int, int]:
    """(total, full, degraded, at risk, lost) of ``chunks`` given the usable server ids.

    The classes are exclusive, as in ``RedundancySummary``: degraded = below k+m but
    above k good shards, at risk = exactly k (m > 0), lost = below k."""
    total = full = degraded = at_risk = lost = 0
    for rec in chunks:
        c = rec.chunk
        total += 1
        good = sum(1 for s in c.shards if s.server_id in usable)
        if good >= c.k + c.m:
            full += 1
        elif good < c.k:
            lost += 1
        elif good == c.k:
            at_risk += 1
        else:
            degraded += 1
    return total, full, degraded, at_risk, lost


async def _catalog_redundancy(catalog: CatalogClient) -> RedundancyView | None:
    """The catalog's own summary (``metadata.maintenance``); None if it cannot answer."""
    try:
        s = await catalog.query(RedundancyQuery(), mode=ReadMode.LOCAL, timeout_s=5.0)
    except BlobstoreError:
        return None
    if not isinstance(s, RedundancySummary):
        return None
    repair: RepairView | None = None
    try:
        r = await catalog.query(RepairStatusQuery(), timeout_s=3.0)
    except BlobstoreError:
        r = None
    if isinstance(r, RepairStatus) and r.is_leader:
        repair = RepairView(
            r.backlog, r.in_flight, r.repairs_done, r.repairs_failed, r.bytes_repaired,
            r.repair_bytes_s, r.passes_completed,
        )  # fmt: skip
    return RedundancyView(
        "catalog", s.chunks_total, s.chunks_full, s.chunks_degraded, s.chunks_at_risk,
        s.chunks_lost, True, s.objects_total, s.objects_degraded, s.objects_at_risk,
        s.objects_lost, s.bad_shards, s.repair_backlog, repair,
        note="" if repair is not None else "the repair driver's status is not available",
    )  # fmt: skip


async def gather_redundancy(
    catalog: CatalogClient, cluster: ClusterView, *, max_chunks: int = 20_000, page: int = 1000
) -> RedundancyView:
    """Redundancy and repair progress (catalog summary if available, else a console scan)."""
    from_catalog = await _catalog_redundancy(catalog)
    if from_catalog is not None:
        return from_catalog
    usable = {s.server_id for s in cluster.chunkservers if s.usable}
    seen: list[ChunkRecord] = []
    after: str | None = None
    exact = True
    try:
        while True:
            got = await catalog.query(
                ListChunksQuery(after, page), mode=ReadMode.LOCAL, timeout_s=5.0
            )
            assert isinstance(got, tuple)
            seen.extend(got)
            if len(got) < page:
                break
            if len(seen) >= max_chunks:
                exact = False
                break
            after = got[-1].chunk.chunk_id
    except BlobstoreError as e:
        return RedundancyView("console scan", 0, 0, 0, 0, 0, False, error=e.message)
    total, full, degraded, at_risk, lost = classify_chunks(seen, usable)
    note = "computed by the console from chunk placement and live probes; "
    note += "repair progress needs the catalog's repair status (not in this build)"
    if not exact:
        note += f"; only the first {len(seen)} chunks were scanned"
    return RedundancyView("console scan", total, full, degraded, at_risk, lost, exact, note=note)
