"""One chaos run: a real cluster, a mixed S3 workload, a seeded fault schedule, then checks.

``run_chaos(root, ChaosSpec(...))`` starts a ``ChaosCluster``, drives a ``Workload`` while
the schedule's faults are injected, heals every fault, and asserts (each with a deadline):

1. no reader ever received wrong bytes (every GET body hashes to a body written there);
2. every acknowledged write is readable byte-exact and every acknowledged delete is gone:
   a final GET of every key joins the history, which must be linearizable (the register
   checker of ``blobstore.testing.linearizability``), and LIST agrees with those reads;
3. orphan space returns to zero after the GC grace period: every shard file on every
   chunkserver is placed there by the catalog, and the delete queue is empty;
4. every chunk returns to k+m good shards (placed on ``up`` servers, present and verified
   on disk) -- enforced when the repair driver (``metadata.maintenance.driver``) exists or
   ``BLOBSTORE_CHAOS_REQUIRE_REPAIR=1``; otherwise the shortfall is printed.

On failure the seed, the schedule (replay: ``BLOBSTORE_CHAOS_SEED``), the faults as
executed and the processes' log tails are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from blobstore.client.catalog import RemoteCatalog
from blobstore.errors import BlobstoreError
from blobstore.rpc import RpcClient
from blobstore.testing.linearizability import Budget, check
from blobstore.testing.poll import until_ok
from chunkserver.gc import GarbageCollector, GcConfig, GetGcStatsRequest, GetGcStatsResponse
from chunkserver.store.disk import DiskShardStore, parse_shard_name
from metadata.api import DeleteQueueQuery, ListChunkserversQuery, ListChunksQuery
from metadata.fsm.records import ChunkRecord, ChunkserverRecord
from metadata.fsm.results import DeleteQueuePage
from tests.chaos.harness import ChaosCluster
from tests.chaos.schedule import EPISODES, Fault, describe, make_schedule
from tests.chaos.workload import Workload

__all__ = ["SEED_ENV", "ChaosSpec", "run_chaos", "seed_from_env"]

SEED_ENV = "BLOBSTORE_CHAOS_SEED"
BUCKET = "chaos"


def seed_from_env(default: int) -> int:
    raw = os.environ.get(SEED_ENV, "")
    return int(raw) if raw.strip() else default


@dataclass(frozen=True, slots=True)
class ChaosSpec:
    seed: int
    duration_s: float = 20.0
    chunkservers: int = 7
    max_chunk_down: int = 2
    workers: int = 3
    kinds: tuple[str, ...] = EPISODES
    gc_grace_s: float = 12.0  # > the gateway's prepare->commit window (catalog timeout 10 s)
    heal_timeout_s: float = 120.0
    redundancy_timeout_s: float = 90.0


def repair_available() -> bool:
    if os.environ.get("BLOBSTORE_CHAOS_REQUIRE_REPAIR", "") == "1":
        return True
    return importlib.util.find_spec("metadata.maintenance.driver") is not None


class _Faults:
    """Executes a schedule against a cluster; remembers what it actually did."""

    def __init__(self, cluster: ChaosCluster) -> None:
        self.cluster = cluster
        self.log: list[str] = []
        self._leaders: dict[int, int] = {}  # episode -> killed leader
        self._damaged: set[uuid.UUID] = set()  # chunks with a damaged shard (<= 1 each)
        self._t0 = 0.0

    def note(self, text: str) -> None:
        self.log.append(f"t={time.monotonic() - self._t0:7.2f}s {text}")

    async def run(self, schedule: tuple[Fault, ...]) -> None:
        self._t0 = time.monotonic()
        for f in schedule:
            delay = self._t0 + f.at_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule's own timeline
            try:
                await self.apply(f)
            except Exception as exc:  # a fault that could not be injected is noted, not fatal
                self.note(f"{f.phase} {f.kind} target={f.target} FAILED: {exc!r}")

    async def apply(self, f: Fault) -> None:
        c = self.cluster
        start = f.phase == "start"
        what = f"{f.phase} {f.kind} target={f.target}"
        match f.kind:
            case "chunk_kill":
                c.kill_chunk(f.target) if start else c.start_chunk(f.target)
            case "chunk_partition":
                c.partition_chunk(f.target) if start else c.heal_chunk(f.target)
            case "meta_kill_leader":
                if start:
                    leader = await c.kill_meta_leader()
                    self._leaders[f.episode] = leader
                    what += f" (leader {leader})"
                else:
                    leader = self._leaders.pop(f.episode)
                    c.restart_meta(leader)
                    what += f" (node {leader})"
            case "meta_pause":
                c.meta.pause(f.target) if start else c.meta.resume(f.target)
            case "meta_partition":
                c.partition_meta(f.target) if start else c.heal_meta(f.target)
            case "gateway_kill":
                c.kill_gateway() if start else c.start_gateway()
            case "shard_flip" | "shard_truncate" | "shard_delete":
                what += " " + self._damage(f)
        self.note(what)

    def _damage(self, f: Fault) -> str:
        rng = random.Random(f.pick)
        files = []
        for path in self.cluster.shard_files(f.target):
            parsed = parse_shard_name(path.name)
            if parsed is not None and parsed[0] not in self._damaged:
                files.append((path, parsed[0]))
        if not files:
            return "(no shard file to damage)"
        path, cid = rng.choice(files)
        self._damaged.add(cid)
        size = path.stat().st_size
        if f.kind == "shard_delete":
            path.unlink()
            return f"deleted {path.name}"
        if f.kind == "shard_truncate":
            cut = rng.randrange(0, max(1, size))
            os.truncate(path, cut)
            return f"truncated {path.name} {size}->{cut}"
        offset = rng.randrange(size)
        with open(path, "r+b") as fh:
            fh.seek(offset)
            byte = fh.read(1)
            fh.seek(offset)
            fh.write(bytes([byte[0] ^ (1 << rng.randrange(8))]))
        return f"flipped a bit of {path.name} at {offset}"

    def heal_everything(self) -> None:
        c = self.cluster
        for node_id, proc in c.meta.procs.items():
            if proc.poll() is None:
                c.meta.resume(node_id)
            else:
                c.restart_meta(node_id)
            c.heal_meta(node_id)
        for i in c.chunk_procs:
            c.heal_chunk(i)
            if not c.chunk_alive(i):
                c.start_chunk(i)
        if c.gateway_proc is None or c.gateway_proc.poll() is not None:
            c.start_gateway()


async def _final_reads(cluster: ChaosCluster, wl: Workload, timeout_s: float) -> dict[str, bool]:
    """GET every key until it answers (recorded in the history); key -> exists."""
    present: dict[str, bool] = {}
    client = cluster.s3()
    try:
        for key in wl.keys:
            deadline = time.monotonic() + timeout_s
            while True:
                op = await asyncio.to_thread(wl.get, client, 999, key)
                if op is not None:
                    present[key] = op.result is not None
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"final GET of {key} kept failing")
                await asyncio.sleep(0.3)  # retry interval, bounded by the deadline
    finally:
        client.close()
    return present


async def _orphans(
    cluster: ChaosCluster, catalog: RemoteCatalog, grace_s: float
) -> tuple[bool, str]:
    problems = []
    for i in cluster.chunk_procs:
        store = DiskShardStore(cluster.chunk_dir(i), 0)
        gc = GarbageCollector(store, catalog, lambda i=i: i, GcConfig(grace_s=grace_s))  # type: ignore[misc]
        found = await gc.scan(include_young=True)
        unref = found.unreferenced_old + found.unreferenced_young
        if unref:
            size = sum(s.size_bytes for s in unref)
            problems.append(f"server {i}: {len(unref)} unreferenced shards ({size} bytes)")
        page = await catalog.query(DeleteQueueQuery(server_id=i))
        assert isinstance(page, DeleteQueuePage)
        if page.entries:
            problems.append(f"server {i}: {len(page.entries)} queued deletes")
    return not problems, "; ".join(problems)


async def _redundancy(cluster: ChaosCluster, catalog: RemoteCatalog) -> tuple[bool, str]:
    servers = await catalog.query(ListChunkserversQuery())
    assert isinstance(servers, tuple)
    state = {s.server_id: s.state for s in servers if isinstance(s, ChunkserverRecord)}
    stores = {i: DiskShardStore(cluster.chunk_dir(i), 0) for i in cluster.chunk_procs}
    short: list[str] = []
    after: str | None = None
    while True:
        page = await catalog.query(ListChunksQuery(after=after, limit=500))
        assert isinstance(page, tuple)
        if not page:
            break
        for rec in page:
            assert isinstance(rec, ChunkRecord)
            c = rec.chunk
            good = 0
            for s in c.shards:
                store = stores.get(s.server_id)
                if store is None or state.get(s.server_id) != "up":
                    continue
                try:
                    async with contextlib.aclosing(
                        store.read(uuid.UUID(c.chunk_id), s.shard_index)
                    ) as blocks:
                        async for _ in blocks:
                            pass
                except (BlobstoreError, OSError, ValueError):
                    continue
                good += 1
            if good < c.k + c.m:
                short.append(f"{c.chunk_id}: {good}/{c.k + c.m}")
        after = page[-1].chunk.chunk_id
    return not short, f"{len(short)} chunks below k+m: {short[:5]}"


async def _gc_totals(cluster: ChaosCluster, transport: RpcClient) -> dict[str, int]:
    """GC counters summed over the chunkservers (since each one's last restart)."""
    totals: dict[str, int] = {}
    for addr in cluster.addresses().values():
        got = await transport.call(addr, GetGcStatsRequest(), timeout_s=10)
        assert isinstance(got, GetGcStatsResponse)
        for name in ("queue_drained", "orphans_found", "orphans_removed", "breaker_trips"):
            totals[name] = totals.get(name, 0) + getattr(got.stats, name)
        totals["bytes_reclaimed"] = totals.get("bytes_reclaimed", 0) + (
            got.stats.queue_bytes_reclaimed + got.stats.orphan_bytes_reclaimed
        )
    return totals


async def run_chaos(root: Path, spec: ChaosSpec) -> dict[str, object]:
    """Run one chaos scenario; raises AssertionError (with seed and schedule) on a violation."""
    schedule = make_schedule(
        random.Random(spec.seed),
        duration_s=spec.duration_s,
        chunkservers=spec.chunkservers,
        max_chunk_down=spec.max_chunk_down,
        kinds=spec.kinds,
    )
    print(describe(spec.seed, schedule))
    cluster = ChaosCluster(
        root,
        spec.chunkservers,
        gc_env={
            "BLOBSTORE_GC_GRACE_S": str(spec.gc_grace_s),
            "BLOBSTORE_GC_ORPHAN_INTERVAL_S": "1",
            "BLOBSTORE_GC_FULL_SWEEP_INTERVAL_S": "3",  # incremental rounds in between
            "BLOBSTORE_GC_QUEUE_INTERVAL_S": "0.5",
            "BLOBSTORE_GC_MAX_BACKOFF_S": "2",
        },
        meta_env={  # failure detection / repair knobs (metadata config)
            "BLOBSTORE_SUSPECT_AFTER_S": "2",
            "BLOBSTORE_DOWN_AFTER_S": "5",
            "BLOBSTORE_MAINTENANCE_INTERVAL_S": "0.5",
        },
    )
    faults = _Faults(cluster)
    figures: dict[str, object] = {"seed": spec.seed}
    t_start = time.monotonic()
    try:
        await cluster.start()
        figures["startup_s"] = round(time.monotonic() - t_start, 1)
        client = cluster.s3()
        await asyncio.to_thread(client.create_bucket, Bucket=BUCKET)
        client.close()
        wl = Workload(cluster.s3, BUCKET, spec.seed)
        stop = threading.Event()
        threads = wl.run(spec.workers, stop)
        try:
            await faults.run(schedule)
            remaining = spec.duration_s - (time.monotonic() - faults._t0)
            if remaining > 0:
                await asyncio.sleep(remaining)  # the workload's fixed duration
        finally:
            stop.set()
            for t in threads:
                await asyncio.to_thread(t.join, 60)
        faults.heal_everything()
        faults.note("all faults healed")
        await cluster.wait_writable(spec.heal_timeout_s)
        figures["ops"] = dict(wl.counts)
        present = await _final_reads(cluster, wl, spec.heal_timeout_s)
        assert not wl.violations, f"wrong bytes served: {wl.violations[:5]}"
        # chunkserver 1 is dialled at its advertised address: the proxy a partition cuts
        assert cluster.data_proxy is not None and cluster.data_proxy.forwarded_bytes > 0
        ops = wl.recorder.operations()
        budget = Budget(clock=time.monotonic, timeout_s=60)
        verdict = await asyncio.to_thread(check, ops, budget)  # off the proxies' loop
        assert verdict.ok, verdict.explain()
        listing = cluster.s3()
        try:
            got = await asyncio.to_thread(listing.list_objects_v2, Bucket=BUCKET)
        finally:
            listing.close()
        listed = {o["Key"] for o in got.get("Contents", [])}
        assert listed == {k for k, v in present.items() if v}, (listed, present)
        catalog, transport = cluster.catalog()
        try:
            await until_ok(
                lambda: _orphans(cluster, catalog, spec.gc_grace_s),
                spec.gc_grace_s + 60,
                "zero orphan shards and an empty delete queue",
            )
            figures["orphans_zero_after_s"] = round(time.monotonic() - t_start, 1)
            figures["gc"] = await _gc_totals(cluster, transport)
            if repair_available():
                await until_ok(
                    lambda: _redundancy(cluster, catalog),
                    spec.redundancy_timeout_s,
                    "every chunk at k+m good shards",
                )
                figures["redundancy"] = "full"
            else:
                ok, why = await _redundancy(cluster, catalog)
                figures["redundancy"] = "full" if ok else f"not checked (no repair): {why}"
        finally:
            await transport.close()
        figures["total_s"] = round(time.monotonic() - t_start, 1)
        print("faults as executed:\n  " + "\n  ".join(faults.log))
        print("chaos figures:", figures)
        return figures
    except BaseException:
        print(describe(spec.seed, schedule))
        print("faults as executed:\n  " + "\n  ".join(faults.log))
        print(cluster.logs())
        raise
    finally:
        with contextlib.suppress(Exception):
            await cluster.stop()
