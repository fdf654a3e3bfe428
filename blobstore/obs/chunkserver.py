"""Metrics and health of a chunkserver.

Shard I/O, from the RPC handlers (``ChunkserverMetrics`` is the ``RpcObserver`` of the
chunkserver's ``ObservedRpcServer``): ``blobstore_chunkserver_shard_write_bytes_total`` and
``..._read_bytes_total``, ``blobstore_chunkserver_shard_write_seconds`` (request to durable
receipt) and ``..._read_seconds`` (request to the last byte streamed), both histograms;
``blobstore_chunkserver_shard_errors_total{op,outcome}``; and the generic
``blobstore_rpc_server_*`` for every request type.

At scrape time (``attach_chunkserver``): ``blobstore_chunkserver_disk_capacity_bytes``,
``..._disk_free_bytes``, ``..._disk_used_bytes`` (shard files), ``..._disk_reserve_bytes``,
``blobstore_chunkserver_shards`` (counted by an inventory walk at most every
``shard_count_every_s``), ``blobstore_chunkserver_registered``, and the scrubber's
``blobstore_scrub_shards_total``, ``blobstore_scrub_bytes_total``,
``blobstore_scrub_passes_total``, ``blobstore_scrub_pass`` and
``blobstore_chunkserver_corrupt_shards_found_total{source}`` (``scrub``; ``read`` counts
reads that hit a checksum mismatch).

Health: ready = registered with the metadata service and the data directory writable (a
small file written, fsynced and removed in a worker thread, at most every
``disk_probe_every_s``; the last verdict is reused in between).

The chunkserver is seen through Protocols: must not import the chunkserver package.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from blobstore.log import get_logger
from blobstore.obs.rpc import LATENCY_BUCKETS_S, rpc_metrics
from blobstore.obs.runtime import Check, Observability, process_observability

__all__ = [
    "ChunkserverMetrics",
    "ChunkserverView",
    "DiskProbe",
    "attach_chunkserver",
    "chunkserver_metrics",
]

log = get_logger(__name__)

WRITE = "WriteShardRequest"
READ = "ReadShardRequest"


class SpaceView(Protocol):
    @property
    def capacity_bytes(self) -> int: ...
    @property
    def free_bytes(self) -> int: ...
    @property
    def used_bytes(self) -> int: ...
    @property
    def reserve_bytes(self) -> int: ...


class StoreView(Protocol):
    async def space(self) -> SpaceView: ...
    def inventory(self) -> AsyncIterator[object]: ...


class ScrubProgressView(Protocol):
    @property
    def pass_number(self) -> int: ...
    @property
    def passes_completed(self) -> int: ...
    @property
    def shards_scrubbed(self) -> int: ...
    @property
    def bytes_scrubbed(self) -> int: ...
    @property
    def corrupt_found(self) -> int: ...


class ScrubberView(Protocol):
    def progress(self) -> ScrubProgressView: ...


class GcStatsView(Protocol):
    @property
    def queue_drained(self) -> int: ...
    @property
    def queue_bytes_reclaimed(self) -> int: ...
    @property
    def orphans_removed(self) -> int: ...
    @property
    def orphan_bytes_reclaimed(self) -> int: ...
    @property
    def breaker_trips(self) -> int: ...
    @property
    def errors(self) -> int: ...


class GcView(Protocol):
    def stats(self) -> GcStatsView: ...


class ChunkserverView(Protocol):
    """What the metrics read from ``chunkserver.service.Chunkserver``."""

    @property
    def store(self) -> StoreView: ...
    @property
    def scrubber(self) -> ScrubberView | None: ...
    @property
    def registered(self) -> bool: ...


class ChunkserverMetrics:
    """Shard I/O metrics; also the ``RpcObserver`` of the chunkserver's RPC server."""

    def __init__(self, hub: Observability) -> None:
        self.hub = hub
        self.rpc = rpc_metrics(hub)
        reg = hub.registry
        self.write_bytes = Counter(
            "blobstore_chunkserver_shard_write_bytes",
            "Shard data bytes made durable.",
            registry=reg,
        )
        self.read_bytes = Counter(
            "blobstore_chunkserver_shard_read_bytes",
            "Verified shard bytes streamed to readers.",
            registry=reg,
        )
        self.write_seconds = Histogram(
            "blobstore_chunkserver_shard_write_seconds",
            "WriteShard: request to durable receipt (fsync + rename).",
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.read_seconds = Histogram(
            "blobstore_chunkserver_shard_read_seconds",
            "ReadShard: request to the last byte streamed.",
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.errors = Counter(
            "blobstore_chunkserver_shard_errors",
            "Failed shard reads and writes by outcome (error class).",
            ["op", "outcome"],
            registry=reg,
        )
        self.corrupt_reads = 0

    def observe_call(
        self, method: str, outcome: str, seconds: float, result: object, sent_bytes: int
    ) -> None:
        self.rpc.observe_call(method, outcome, seconds, result, sent_bytes)
        if method == WRITE:
            if outcome == "ok":
                self.write_seconds.observe(seconds)
                self.write_bytes.inc(int(getattr(result, "data_bytes", 0)))
            else:
                self.errors.labels("write", outcome).inc()
        elif method == READ:
            self.read_bytes.inc(sent_bytes)
            if outcome == "ok":
                self.read_seconds.observe(seconds)
            else:
                self.errors.labels("read", outcome).inc()
                if outcome == "CorruptShard":
                    self.corrupt_reads += 1


def chunkserver_metrics(hub: Observability | None = None) -> ChunkserverMetrics:
    """``hub``'s (default: this process's) chunkserver metrics."""
    return (hub or process_observability()).shared("chunkserver", ChunkserverMetrics)


class DiskProbe:
    """Is ``directory`` writable? (write + fsync + unlink a small file, cached)."""

    def __init__(self, directory: Path, *, every_s: float = 10.0) -> None:
        self._dir = Path(directory)
        self._every_s = every_s
        self._last: Check | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def check(self) -> Check:
        async with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._at >= self._every_s:
                self._last = await asyncio.to_thread(self._probe)
                self._at = time.monotonic()
            return self._last

    def _probe(self) -> Check:
        path = self._dir / f".health-probe-{os.getpid()}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"ok\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.unlink(path)
        except OSError as exc:
            return Check("disk", False, f"{self._dir} not writable: {exc.strerror or exc}")
        return Check("disk", True, f"{self._dir} writable")


class _ChunkserverCollector(Collector):
    def __init__(
        self, server: ChunkserverView, metrics: ChunkserverMetrics, gc: GcView | None = None
    ) -> None:
        self._server = server
        self._metrics = metrics
        self._gc = gc
        self.space: SpaceView | None = None
        self.shards: int | None = None

    def collect(self) -> Iterator[Metric]:
        s = self.space
        if s is not None:
            for name, help_text, value in (
                ("capacity", "Size of the data directory's file system.", s.capacity_bytes),
                ("free", "Bytes free for this process (statvfs f_bavail).", s.free_bytes),
                ("used", "Bytes of shard files held.", s.used_bytes),
                ("reserve", "Free bytes that writes never take.", s.reserve_bytes),
            ):
                yield GaugeMetricFamily(
                    f"blobstore_chunkserver_disk_{name}_bytes", help_text, value=value
                )
        if self.shards is not None:
            yield GaugeMetricFamily(
                "blobstore_chunkserver_shards", "Shard files held (last count).", value=self.shards
            )
        yield GaugeMetricFamily(
            "blobstore_chunkserver_registered",
            "1 once registered with the metadata service.",
            value=int(self._server.registered),
        )
        scrubber = self._server.scrubber
        p = scrubber.progress() if scrubber is not None else None
        corrupt = CounterMetricFamily(
            "blobstore_chunkserver_corrupt_shards_found",
            "Corrupt shards found, by who found them (scrub, read).",
            labels=["source"],
        )
        corrupt.add_metric(["read"], self._metrics.corrupt_reads)
        corrupt.add_metric(["scrub"], p.corrupt_found if p is not None else 0)
        yield corrupt
        if self._gc is not None:
            yield from _gc_metrics(self._gc.stats())
        if p is None:
            return
        yield CounterMetricFamily(
            "blobstore_scrub_shards", "Shards verified by the scrubber.", value=p.shards_scrubbed
        )
        yield CounterMetricFamily(
            "blobstore_scrub_bytes", "Bytes verified by the scrubber.", value=p.bytes_scrubbed
        )
        yield CounterMetricFamily(
            "blobstore_scrub_passes", "Completed scrub passes.", value=p.passes_completed
        )
        yield GaugeMetricFamily(
            "blobstore_scrub_pass", "Number of the current scrub pass.", value=p.pass_number
        )


def _gc_metrics(g: GcStatsView) -> Iterator[Metric]:
    for name, help_text, value in (
        ("queue_deletes", "Delete-queue entries removed and acked.", g.queue_drained),
        ("queue_reclaimed_bytes", "Bytes freed by delete-queue entries.", g.queue_bytes_reclaimed),
        ("orphans_removed", "Unreferenced shard files removed.", g.orphans_removed),
        ("orphan_reclaimed_bytes", "Bytes freed by removing orphans.", g.orphan_bytes_reclaimed),
        ("breaker_trips", "GC rounds refused: too many shards looked orphaned.", g.breaker_trips),
        ("errors", "GC rounds or deletes that failed (retried).", g.errors),
    ):
        yield CounterMetricFamily(f"blobstore_gc_{name}", help_text, value=value)


def attach_chunkserver(
    server: ChunkserverView,
    data_dir: Path,
    metrics: ChunkserverMetrics | None = None,
    *,
    gc: GcView | None = None,
    shard_count_every_s: float = 60.0,
    disk_probe_every_s: float = 10.0,
) -> Callable[[], None]:
    """Expose ``server``'s gauges and health on ``metrics.hub``; returns the detacher."""
    metrics = metrics or chunkserver_metrics()
    hub = metrics.hub
    collector = _ChunkserverCollector(server, metrics, gc)
    hub.registry.register(collector)
    probe = DiskProbe(data_dir, every_s=disk_probe_every_s)
    counted_at = -shard_count_every_s
    counting: asyncio.Task[None] | None = None

    async def count_shards() -> None:
        n = 0
        try:
            async for _ in server.store.inventory():
                n += 1
        except Exception as exc:  # keep the last count
            log.warning("shard count failed", error=type(exc).__name__, detail=str(exc))
            return
        collector.shards = n

    async def refresh() -> None:
        nonlocal counted_at, counting
        collector.space = await server.store.space()
        now = time.monotonic()
        if (counting is None or counting.done()) and now - counted_at >= shard_count_every_s:
            counted_at = now
            counting = asyncio.create_task(count_shards())  # result shows on a later scrape
            if collector.shards is None:
                await asyncio.shield(counting)

    async def ready_registered() -> Check:
        if server.registered:
            return Check("registered", True, "registered with the metadata service")
        return Check("registered", False, "not yet registered with the metadata service")

    removers = [
        hub.add_pre_scrape(refresh),
        hub.add_check("ready", "disk", probe.check),
        hub.add_check("ready", "registered", ready_registered),
    ]

    def detach() -> None:
        if counting is not None:
            counting.cancel()
        for remove in removers:
            remove()
        hub.registry.unregister(collector)

    return detach
