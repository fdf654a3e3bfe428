"""``chunkserver.repair.ShardRepairer`` over in-process chunkservers (memory stores):
identical rebuilds, in-place rewrite of a corrupt copy, checksum mismatch, shared work."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from blobstore import errors
from blobstore.datapath import ChunkRef, write_object
from blobstore.rpc import CallContext
from chunkserver.repair import RepairShardRequest, RepairSource, ShardRepairer
from tests.unit.datapath.conftest import SMALL, Cluster, payload, start_cluster, stream


def _request(c: Cluster, ref: ChunkRef, index: int, expected: int) -> RepairShardRequest:
    addrs = {t.server_id: str(t.addr) for t in c.targets}
    return RepairShardRequest(
        ref.chunk_id.bytes, index, ref.k, ref.m, ref.coder, ref.stripe_bytes, ref.data_length,
        tuple(RepairSource(s.server_id, s.shard_index, s.checksum, addrs[s.server_id])
              for s in ref.shards),
        expected,
    )  # fmt: skip


async def _setup() -> tuple[Cluster, ChunkRef]:
    c = await start_cluster(count=7, n=6)
    data = payload(SMALL.chunk_bytes - 5, 3)
    res = await write_object(
        stream(data), layout=SMALL, placement=c.placement, transport=c.client,
        size_bytes=len(data),
    )  # fmt: skip
    return c, res.chunks[0]


async def _teardown(c: Cluster) -> None:
    await c.client.close()
    for s in c.servers:
        await s.stop()


async def test_rebuild_on_a_spare_and_in_place() -> None:
    c, ref = await _setup()
    try:
        repaired: list[Any] = []
        hints: list[bool] = []
        for sid in range(1, 7):  # record the cache hint of every read the repairs make
            store = c.store_of(sid)

            def recording(*a: Any, _read: Any = store.read, **kw: Any) -> Any:
                hints.append(kw.get("cache", True))
                return _read(*a, **kw)

            store.read = recording  # type: ignore[method-assign]
        spare = ShardRepairer(c.store_of(7), c.client, on_repaired=lambda *a: repaired.append(a))
        for lost in (5, 0):  # parity, then data
            old = ref.shard(lost)
            assert old is not None
            await c.store_of(old.server_id).delete(ref.chunk_id, lost)
            reply = await spare.repair(_request(c, ref, lost, old.checksum))
            assert reply.checksum == old.checksum and reply.shard_index == lost
            assert await c.store_of(7).stat(ref.chunk_id, lost) is not None
            assert c.store_of(7).cache_hints[(ref.chunk_id, lost)] is False  # not read soon
        assert repaired == [(ref.chunk_id, 5), (ref.chunk_id, 0)]
        assert hints and not any(hints)  # sources read once: not to be kept in cache
        moved = tuple(replace(s, server_id=7) if s.shard_index in (0, 5) else s for s in ref.shards)
        ref = replace(ref, shards=moved)
        # a corrupt copy rewritten in place on its own server
        victim = ref.shard(2)
        assert victim is not None
        store = c.store_of(victim.server_id)
        store.corrupt_byte(ref.chunk_id, 2, 200)
        here = ShardRepairer(store, c.client)
        reply = await here.repair(_request(c, ref, 2, victim.checksum))
        assert reply.checksum == victim.checksum
        assert b"".join([b async for b in store.read(ref.chunk_id, 2)])  # verifies again
    finally:
        await _teardown(c)


async def test_checksum_mismatch_deletes_the_rebuilt_shard() -> None:
    c, ref = await _setup()
    try:
        spare = ShardRepairer(c.store_of(7), c.client)
        with pytest.raises(errors.CorruptShard):
            await spare.repair(_request(c, ref, 1, 0x1234))
        assert await c.store_of(7).stat(ref.chunk_id, 1) is None
        too_few = _request(c, ref, 1, 0)
        too_few = replace(too_few, sources=too_few.sources[:3])
        with pytest.raises(errors.Unavailable):
            await spare.repair(too_few)
    finally:
        await _teardown(c)


async def test_concurrent_requests_share_one_rebuild() -> None:
    c, ref = await _setup()
    try:
        spare = ShardRepairer(c.store_of(7), c.client)
        s4 = ref.shard(4)
        assert s4 is not None
        req = _request(c, ref, 4, s4.checksum)
        ctx: CallContext = None  # type: ignore[assignment]
        a, b = await asyncio.gather(spare.handle(req, ctx), spare.handle(req, ctx))
        assert a == b and spare.repairs_done == 1
    finally:
        await _teardown(c)
