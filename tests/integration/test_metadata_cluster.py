"""Real metadata processes under faults; the recorded history must be linearizable.

Clients run get/put/cas/delete on a few keys through ``RemoteCatalog`` (objects whose
ETag is the register value) while a seeded fault schedule kills -9 and restarts the
leader, SIGSTOPs a node past the election timeout, and cuts one node off through
per-link proxies. Every operation is recorded (call/return time, result, or unknown on
timeout) and checked with the linearizability checker; with BLOBSTORE_HISTORY_DIR set,
the history is also written there as JSON lines.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blobstore.client.catalog import RemoteCatalog
from blobstore.errors import (
    BlobstoreError,
    DeadlineExceeded,
    NoSuchKey,
    PreconditionFailed,
    Unavailable,
)
from blobstore.testing.history import HistoryRecorder, write_if_requested
from blobstore.testing.linearizability import Verdict, check
from metadata.api import HeadObjectQuery
from metadata.fsm.commands import CommitObject, CreateBucket, DeleteObject
from metadata.fsm.results import ObjectInfo
from tests.integration.metacluster import MetaCluster

pytestmark = pytest.mark.integration

BUCKET = "lin-bucket"
SEED = int(os.environ.get("BLOBSTORE_SEED", "0")) or random.randrange(1, 1 << 30)


@pytest.fixture
async def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[MetaCluster]:
    size, proxied = request.param if hasattr(request, "param") else (3, True)
    c = MetaCluster(tmp_path, size=size, proxied=proxied)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def _put(cat: RemoteCatalog, key: str, value: str, if_match: str | None = None) -> None:
    await cat.execute(
        CommitObject(
            bucket=BUCKET, key=key, version_id="", owner="t", size=len(value),
            etag=value, inline_data=value.encode(), if_match=if_match,
        ),
        timeout_s=3,
    )  # fmt: skip


async def _workload(
    cat: RemoteCatalog, rec: HistoryRecorder, client: int, rng: random.Random, until: float
) -> None:
    n = 0
    while time.monotonic() < until:
        n += 1
        key = f"k{rng.randrange(4)}"
        roll = rng.random()
        value = f"c{client}-{n}"
        if roll < 0.4:
            token = rec.invoke(client, "get", key)
            try:
                info = await cat.query(HeadObjectQuery(BUCKET, key), timeout_s=3)
                assert isinstance(info, ObjectInfo)
                rec.complete(token, info.record.etag, "ok")
            except NoSuchKey:
                rec.complete(token, None, "ok")
            except (DeadlineExceeded, Unavailable):
                rec.complete(token, None, "fail")  # a read that did not answer had no effect
        elif roll < 0.7:
            token = rec.invoke(client, "put", key, value=value)
            try:
                await _put(cat, key, value)
                rec.complete(token, None, "ok")
            except (DeadlineExceeded, Unavailable):
                rec.complete(token, None, "info")
        elif roll < 0.9:
            expected = f"c{rng.randrange(8)}-{rng.randrange(1, max(2, n))}"
            token = rec.invoke(client, "cas", key, value=value, expected=expected)
            try:
                await _put(cat, key, value, if_match=expected)
                rec.complete(token, True, "ok")
            except (PreconditionFailed, NoSuchKey):
                rec.complete(token, False, "ok")
            except (DeadlineExceeded, Unavailable):
                rec.complete(token, None, "info")
        else:
            token = rec.invoke(client, "delete", key)
            try:
                await cat.execute(DeleteObject(bucket=BUCKET, key=key), timeout_s=3)
                rec.complete(token, None, "ok")
            except (DeadlineExceeded, Unavailable):
                rec.complete(token, None, "info")


async def _faults(cluster: MetaCluster, rng: random.Random, until: float) -> list[str]:
    schedule: list[str] = []
    loop = asyncio.get_running_loop()

    async def pause_for(seconds: float) -> None:
        await asyncio.sleep(seconds)  # the fault's duration is the point, not a readiness wait

    step = 0
    while time.monotonic() < until - 2.0:
        step += 1
        leader = await cluster.leader()
        fault = ("kill-leader", "pause", "partition")[step % 3]
        victim = (
            leader
            if fault != "partition" or rng.random() < 0.5
            else rng.choice([i for i in range(1, cluster.size + 1) if i != leader])
        )
        schedule.append(f"t={loop.time():.1f} {fault} node {victim}")
        if fault == "kill-leader":
            cluster.kill(victim)
            await pause_for(1.0)
            cluster.restart(victim)
        elif fault == "pause":
            cluster.pause(victim)
            await pause_for(1.5)  # past the 0.5 s election timeout
            cluster.resume(victim)
        else:
            links = [p for (i, j), p in cluster.proxies.items() if victim in (i, j)]
            for proxy in links:
                proxy.blackhole()
            await pause_for(1.5)
            for proxy in links:
                proxy.heal()
        await cluster.leader()
    return schedule


async def _run(cluster: MetaCluster, seconds: float, clients: int, name: str) -> None:
    rng = random.Random(SEED)
    cat, transport = cluster.client(slots=clients)
    await cat.execute(CreateBucket(BUCKET, "t"), timeout_s=20)
    rec = HistoryRecorder(time.monotonic)
    until = time.monotonic() + seconds
    rngs = [random.Random(rng.random()) for _ in range(clients)]
    try:
        results = await asyncio.gather(
            _faults(cluster, random.Random(rng.random()), until),
            *(_workload(cat, rec, c, rngs[c], until) for c in range(clients)),
        )
    finally:
        await transport.close()
    ops = rec.operations()
    write_if_requested(ops, name)
    verdict = check(ops)
    schedule = results[0]
    print(f"seed {SEED}: {len(ops)} ops, faults: {schedule}")
    ok_ops = sum(1 for op in ops if op.status == "ok")
    assert ok_ops > 50, f"too little progress ({ok_ops} ok ops); seed {SEED}"
    assert verdict.verdict != Verdict.NOT_LINEARIZABLE, (
        f"seed {SEED}; faults {schedule}\n{verdict.explain()}"
    )
    assert verdict.verdict == Verdict.LINEARIZABLE, f"checker budget ran out; seed {SEED}"


async def test_linearizable_under_kill_pause_partition(cluster: MetaCluster) -> None:
    """Short seeded chaos run in the default suite (BLOBSTORE_SEED=N replays)."""
    await _run(cluster, seconds=8.0, clients=6, name=f"meta3-{SEED}")


async def test_whole_cluster_restart_keeps_committed_writes(cluster: MetaCluster) -> None:
    cat, transport = cluster.client()
    try:
        await cat.execute(CreateBucket(BUCKET, "t"), timeout_s=20)
        for i in range(50):
            await _put(cat, f"r{i}", f"v{i}")
    finally:
        await transport.close()
    for node_id in range(1, cluster.size + 1):
        cluster.kill(node_id)
    for node_id in range(1, cluster.size + 1):
        cluster.restart(node_id)
    await cluster.leader()
    cat, transport = cluster.client()
    try:
        for i in range(50):
            info = await cat.query(HeadObjectQuery(BUCKET, f"r{i}"), timeout_s=20)
            assert isinstance(info, ObjectInfo) and info.record.etag == f"v{i}"
    except BlobstoreError as e:  # pragma: no cover - a lost write is the failure we test for
        raise AssertionError(f"committed write lost after restart: {e!r}") from e
    finally:
        await transport.close()


@pytest.mark.slow
@pytest.mark.parametrize("cluster", [(5, True)], indirect=True)
async def test_linearizable_five_nodes_long(cluster: MetaCluster) -> None:
    await _run(cluster, seconds=40.0, clients=10, name=f"meta5-{SEED}")
