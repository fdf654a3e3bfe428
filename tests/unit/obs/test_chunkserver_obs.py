"""Chunkserver metrics and health, from fakes and a memory store."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from blobstore.obs.chunkserver import DiskProbe, attach_chunkserver, chunkserver_metrics
from blobstore.obs.runtime import Observability


@dataclass(frozen=True)
class Space:
    capacity_bytes: int = 1000
    free_bytes: int = 600
    used_bytes: int = 300
    reserve_bytes: int = 50


class Store:
    def __init__(self, shards: int) -> None:
        self.shards = shards

    async def space(self) -> Space:
        return Space()

    async def inventory(self) -> AsyncIterator[object]:
        for i in range(self.shards):
            yield i


@dataclass(frozen=True)
class Progress:
    pass_number: int = 2
    passes_completed: int = 1
    shards_scrubbed: int = 7
    bytes_scrubbed: int = 7000
    corrupt_found: int = 1


class Scrubber:
    def progress(self) -> Progress:
        return Progress()


@dataclass
class Server:
    store: Store
    scrubber: Scrubber | None
    registered: bool = False


@dataclass(frozen=True)
class WriteReceipt:
    data_bytes: int


async def test_shard_io_is_counted_from_rpc_calls() -> None:
    hub = Observability("chunkserver", base=None)
    m = chunkserver_metrics(hub)
    m.observe_call("WriteShardRequest", "ok", 0.01, WriteReceipt(1000), 0)
    m.observe_call("WriteShardRequest", "InsufficientSpace", 0.001, None, 0)
    m.observe_call("ReadShardRequest", "ok", 0.002, None, 4096)
    m.observe_call("ReadShardRequest", "CorruptShard", 0.002, None, 0)
    m.observe_call("StatShardRequest", "ok", 0.0001, None, 0)
    text = (await hub.metrics_text()).decode()
    for line in (
        "blobstore_chunkserver_shard_write_bytes_total 1000.0",
        "blobstore_chunkserver_shard_read_bytes_total 4096.0",
        "blobstore_chunkserver_shard_write_seconds_count 1.0",
        "blobstore_chunkserver_shard_read_seconds_count 1.0",
        'blobstore_chunkserver_shard_errors_total{op="write",outcome="InsufficientSpace"} 1.0',
        'blobstore_chunkserver_shard_errors_total{op="read",outcome="CorruptShard"} 1.0',
        'blobstore_rpc_server_requests_total{method="StatShardRequest",outcome="ok"} 1.0',
    ):
        assert line in text, line
    assert m.corrupt_reads == 1


async def test_scrape_reads_disk_shards_scrub_and_registration(tmp_path: Path) -> None:
    hub = Observability("chunkserver", base=None)
    server = Server(Store(shards=5), Scrubber())
    attach_chunkserver(server, tmp_path, chunkserver_metrics(hub))
    text = (await hub.metrics_text()).decode()
    for line in (
        "blobstore_chunkserver_disk_capacity_bytes 1000.0",
        "blobstore_chunkserver_disk_free_bytes 600.0",
        "blobstore_chunkserver_disk_used_bytes 300.0",
        "blobstore_chunkserver_shards 5.0",
        "blobstore_chunkserver_registered 0.0",
        'blobstore_chunkserver_corrupt_shards_found_total{source="scrub"} 1.0',
        "blobstore_scrub_shards_total 7.0",
        "blobstore_scrub_bytes_total 7000.0",
        "blobstore_scrub_passes_total 1.0",
        "blobstore_scrub_pass 2.0",
    ):
        assert line in text, line


async def test_gc_counters_are_scraped_from_the_collector(tmp_path: Path) -> None:
    from chunkserver.gc import GcStats

    class Gc:
        def stats(self) -> GcStats:
            return GcStats(queue_drained=3, queue_bytes_reclaimed=300, orphans_removed=2,
                           orphan_bytes_reclaimed=20, breaker_trips=1, errors=4)  # fmt: skip

    hub = Observability("chunkserver", base=None)
    attach_chunkserver(Server(Store(0), None), tmp_path, chunkserver_metrics(hub), gc=Gc())
    text = (await hub.metrics_text()).decode()
    for line in (
        "blobstore_gc_queue_deletes_total 3.0",
        "blobstore_gc_queue_reclaimed_bytes_total 300.0",
        "blobstore_gc_orphans_removed_total 2.0",
        "blobstore_gc_orphan_reclaimed_bytes_total 20.0",
        "blobstore_gc_breaker_trips_total 1.0",
        "blobstore_gc_errors_total 4.0",
    ):
        assert line in text, line


async def test_ready_needs_registration_and_a_writable_disk(tmp_path: Path) -> None:
    hub = Observability("chunkserver", base=None)
    server = Server(Store(shards=0), None)
    detach = attach_chunkserver(server, tmp_path, chunkserver_metrics(hub))
    reply = await hub.health("ready")
    assert reply.status == 503
    checks = {c["name"]: c["ok"] for c in json.loads(reply.body)["checks"]}
    assert checks == {"event_loop": True, "disk": True, "registered": False}
    server.registered = True
    assert (await hub.health("ready")).status == 200
    assert not any(p.name.startswith(".health-probe") for p in os.scandir(tmp_path))
    detach()
    assert (await hub.health("ready")).status == 503  # nothing attached any more


async def test_disk_probe_fails_on_a_missing_directory(tmp_path: Path) -> None:
    probe = DiskProbe(tmp_path / "gone", every_s=0)
    check = await probe.check()
    assert not check.ok
    assert "not writable" in check.detail


async def test_disk_probe_caches_its_verdict(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    probe = DiskProbe(target, every_s=3600)
    assert (await probe.check()).ok
    target.rmdir()
    assert (await probe.check()).ok  # cached: probing costs an fsync
