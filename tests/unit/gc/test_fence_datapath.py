"""The GC fence end to end in one process: S3 gateway app -> real data-path writer ->
in-process chunkservers (memory stores) -> catalog, with every chunkserver's collector.

A "slow writer" is simulated by running a full GC round on every chunkserver between the
writer's prepare (shards durable) and its commit, with a zero grace period: GC fences the
write's chunk ids and deletes its shards, the commit then fails with ChunkFenced, the
gateway answers 503 SlowDown (which S3 clients retry), nothing is visible, and no shard of
the write is left behind. A retry under fresh chunk ids succeeds, and GC keeps committed
shards.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from blobstore.client.catalog import LocalCatalog
from chunkserver.gc import GarbageCollector, GcConfig
from gateway.app import create_app
from gateway.storage import ClusterObjectStore
from metadata.fsm.commands import (
    Command,
    CommitObject,
    CommitPart,
    RegisterChunkserver,
    SetErasureProfile,
)
from metadata.fsm.records import ErasureProfile
from tests.unit.datapath.conftest import Cluster, start_cluster
from tests.unit.gateway.test_app_support import Gateway, make_gateway

pytestmark = pytest.mark.timeout(120)


class SlowWriterCatalog(LocalCatalog):
    """Runs ``before_commit`` (a GC round) right before applying each chunk commit."""

    collectors: list[GarbageCollector]
    slow = False
    refused = 0

    async def execute(self, command: Command, *, timeout_s: float = 10.0) -> object:
        if self.slow and isinstance(command, CommitObject | CommitPart) and command.chunks:
            for gc in self.collectors:
                await gc.collect_orphans()
        return await super().execute(command, timeout_s=timeout_s)


@dataclass
class Rig:
    gw: Gateway
    catalog: SlowWriterCatalog
    cluster: Cluster

    async def shard_count(self) -> int:
        return sum([len([i async for i in s.inventory()]) for s in self.cluster.stores])


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with contextlib.AsyncExitStack() as stack:
        catalog = SlowWriterCatalog()
        base = await make_gateway(catalog=catalog)
        stack.push_async_callback(base.client.aclose)
        cluster = await start_cluster(count=6)
        stack.push_async_callback(cluster.client.close)
        for cs in cluster.servers:
            stack.push_async_callback(cs.stop)
        for t in cluster.targets:
            await catalog.execute(RegisterChunkserver(t.server_id, t.addr, "z", 1 << 30, 1 << 29))
        await catalog.execute(SetErasureProfile(ErasureProfile("zfec", 4, 2, 8192, 65536)))
        config = GcConfig(grace_s=0.0, breaker_min_shards=1 << 30)
        catalog.collectors = [
            GarbageCollector(store, catalog, functools.partial(int, t.server_id), config)
            for store, t in zip(cluster.stores, cluster.targets, strict=True)
        ]
        store = ClusterObjectStore(catalog, cluster.client, inline_threshold_bytes=1024)
        app = create_app(catalog, store, auth_ttl_s=0.0)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
        stack.push_async_callback(client.aclose)
        gw = Gateway(app, catalog, base.store, client)
        assert (await gw.request("PUT", "/bkt")).status_code == 200
        yield Rig(gw, catalog, cluster)


async def test_a_put_slower_than_gc_fails_cleanly_and_a_retry_succeeds(rig: Rig) -> None:
    gw, catalog = rig.gw, rig.catalog
    kept = random.Random(1).randbytes(100_000)
    assert (await gw.put("bkt", "kept", kept)).status_code == 200
    committed_shards = await rig.shard_count()
    assert committed_shards == 2 * 6  # two 64 KiB chunks, 4+2 shards each

    data = random.Random(2).randbytes(150_000)
    catalog.slow = True
    slow = await gw.put("bkt", "slow", data)
    assert slow.status_code == 503, slow.text
    assert "<Code>SlowDown</Code>" in slow.text
    assert (await gw.get("bkt", "slow")).status_code == 404
    assert await rig.shard_count() == committed_shards  # the slow write's shards are gone
    fenced = sum(gc.stats().chunks_fenced for gc in catalog.collectors)
    assert fenced == 6 * 3  # every server fenced the write's 3 chunk ids
    assert (await gw.get("bkt", "kept")).content == kept  # GC kept the committed object

    catalog.slow = False
    again = await gw.put("bkt", "slow", data)  # what an S3 client does after a 503
    assert again.status_code == 200, again.text
    assert (await gw.get("bkt", "slow")).content == data
    for gc in catalog.collectors:
        assert await gc.collect_orphans() == 0  # everything left is referenced
    assert (await gw.get("bkt", "slow")).content == data


async def test_an_upload_part_slower_than_gc_fails_cleanly(rig: Rig) -> None:
    gw, catalog = rig.gw, rig.catalog
    create = await gw.request("POST", "/bkt/mp", "uploads")
    upload_id = create.text.split("<UploadId>")[1].split("</UploadId>")[0]
    catalog.slow = True
    part = await gw.request("PUT", "/bkt/mp", f"partNumber=1&uploadId={upload_id}", body=b"p" * 9)
    assert part.status_code == 503 and "<Code>SlowDown</Code>" in part.text
    assert await rig.shard_count() == 0
    listed = await gw.request("GET", "/bkt/mp", f"uploadId={upload_id}")
    assert listed.status_code == 200 and "<Part>" not in listed.text
    catalog.slow = False
    part = await gw.request("PUT", "/bkt/mp", f"partNumber=1&uploadId={upload_id}", body=b"p" * 9)
    assert part.status_code == 200, part.text  # the client's retry: fresh chunk ids
    listed = await gw.request("GET", "/bkt/mp", f"uploadId={upload_id}")
    assert listed.text.count("<Part>") == 1 and part.headers["etag"] in listed.text
    assert await rig.shard_count() == 3  # one stripe's worth: coded with k = 1, 1 + 2 shards
    for gc in catalog.collectors:
        assert await gc.collect_orphans() == 0  # the part's chunk is referenced
