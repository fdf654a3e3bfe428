"""Repair metrics, read at scrape time from the metadata node's maintenance driver.

``metadata.maintenance.driver.MaintenanceDriver.status()`` (a ``RepairStatus``) is read on
every scrape, so the driver keeps no metrics code of its own:

* ``blobstore_repair_active`` (1 on the leader, where the driver runs),
* ``blobstore_repair_backlog_chunks`` (chunks that need a repair, last assessment),
* ``blobstore_repairs_inflight``,
* ``blobstore_repairs_total{outcome}`` (``ok``, ``failed``, ``noop``; ``rate()`` of it is
  the repair rate), ``blobstore_repair_bytes_total``,
* ``blobstore_repair_bytes_per_second`` (the driver's own recent-window rate),
* ``blobstore_repair_passes_total``, ``blobstore_chunkservers_marked_total`` (state changes
  the failure detector proposed).

Counters count since this process started; the backlog and in-flight gauges are 0 on
followers. Redundancy levels (full/degraded/at risk/lost) need a catalog scan and are not
exported here (``blobstore admin status`` and the console show them).

The driver is seen through a Protocol: must not import the metadata package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from blobstore.obs.runtime import Observability, process_observability

__all__ = ["RepairSource", "RepairStatusView", "attach_repair"]


class RepairStatusView(Protocol):
    @property
    def is_leader(self) -> bool: ...
    @property
    def backlog(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def repairs_done(self) -> int: ...
    @property
    def repairs_failed(self) -> int: ...
    @property
    def repairs_noop(self) -> int: ...
    @property
    def bytes_repaired(self) -> int: ...
    @property
    def repair_bytes_s(self) -> float: ...
    @property
    def passes_completed(self) -> int: ...
    @property
    def servers_marked(self) -> int: ...


class RepairSource(Protocol):
    def status(self) -> RepairStatusView: ...


class _RepairCollector(Collector):
    def __init__(self, source: RepairSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        st = self._source.status()
        yield GaugeMetricFamily(
            "blobstore_repair_active",
            "1 where the repair driver runs (the metadata leader).",
            value=int(st.is_leader),
        )
        yield GaugeMetricFamily(
            "blobstore_repair_backlog_chunks",
            "Chunks that need a repair (last assessment).",
            value=st.backlog,
        )
        yield GaugeMetricFamily(
            "blobstore_repairs_inflight", "Shard rebuilds in progress.", value=st.in_flight
        )
        repairs = CounterMetricFamily(
            "blobstore_repairs", "Finished shard repairs by outcome.", labels=["outcome"]
        )
        repairs.add_metric(["ok"], st.repairs_done)
        repairs.add_metric(["failed"], st.repairs_failed)
        repairs.add_metric(["noop"], st.repairs_noop)
        yield repairs
        yield CounterMetricFamily(
            "blobstore_repair_bytes", "Bytes of shards rebuilt.", value=st.bytes_repaired
        )
        yield GaugeMetricFamily(
            "blobstore_repair_bytes_per_second",
            "Recent repair throughput (the driver's window).",
            value=st.repair_bytes_s,
        )
        yield CounterMetricFamily(
            "blobstore_repair_passes", "Completed backlog passes.", value=st.passes_completed
        )
        yield CounterMetricFamily(
            "blobstore_chunkservers_marked",
            "Chunkserver state changes proposed by the failure detector.",
            value=st.servers_marked,
        )


def attach_repair(source: RepairSource, hub: Observability | None = None) -> Callable[[], None]:
    """Export ``source.status()`` on ``hub``; returns the detacher."""
    hub = hub or process_observability()
    collector = _RepairCollector(source)
    hub.registry.register(collector)
    return lambda: hub.registry.unregister(collector)
