"""Degraded reads, corruption, lost servers, hedging, write quorum and space errors."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from blobstore import errors
from blobstore.datapath import (
    BadShardReason,
    ChunkRef,
    ReadOptions,
    ServerHealth,
    ShardRef,
    Target,
    WriteOptions,
    read_range,
    rebuild_shard,
    write_object,
)
from blobstore.rpc import CallContext, RpcClient, StreamResponse
from chunkserver.messages import ReadShardRequest, WriteShardRequest
from chunkserver.service import Chunkserver
from chunkserver.shardfile import HEADER_BYTES
from tests.unit.datapath.conftest import (
    SECRET,
    SMALL,
    Cluster,
    Hang,
    payload,
    start_cluster,
    stream,
)


async def _read(c: Cluster, chunks, start=0, length=None, options=None) -> bytes:  # type: ignore[no-untyped-def]
    if length is None:
        length = sum(x.data_length for x in chunks) - start
    out = bytearray()
    async for block in read_range(
        chunks,
        start,
        length,
        directory=c.placement,
        transport=c.client,
        on_bad_shard=c.bad.append,
        options=options,
    ):
        out += block
    return bytes(out)


async def _write(c: Cluster, data: bytes, **kw):  # type: ignore[no-untyped-def]
    return await write_object(
        stream(data),
        layout=SMALL,
        placement=c.placement,
        transport=c.client,
        size_bytes=len(data),
        **kw,
    )


async def test_read_survives_m_lost_servers(cluster: Cluster) -> None:
    data = payload(2 * SMALL.chunk_bytes + 12345, 1)
    res = await _write(cluster, data)
    await cluster.stop_server(1)
    await cluster.stop_server(3)
    assert await _read(cluster, res.chunks) == data
    assert await _read(cluster, res.chunks, 5000, 40000) == data[5000:45000]
    # a refused port is retried by the RPC client until the deadline, so it shows as slow
    assert {b.reason for b in cluster.bad} <= {BadShardReason.UNREACHABLE, BadShardReason.SLOW}
    assert {b.server_id for b in cluster.bad} <= {1, 3} and cluster.bad


async def test_more_than_m_lost_fails_clearly(cluster: Cluster) -> None:
    data = payload(SMALL.chunk_bytes, 2)
    res = await _write(cluster, data)
    for sid in (1, 2, 3):
        await cluster.stop_server(sid)
    opts = ReadOptions(hedge_delay_s=0.1, call_timeout_s=1.0)
    with pytest.raises(errors.Unavailable, match="readable"):
        await _read(cluster, res.chunks, options=opts)


async def test_corrupt_piece_is_decoded_around_and_reported(cluster: Cluster) -> None:
    data = payload(SMALL.chunk_bytes + 999, 3)
    res = await _write(cluster, data)
    ref = res.chunks[0]
    victim = ref.shard(1)
    assert victim is not None
    # flip a byte inside the piece of stripe 2 of data shard 1
    plen = SMALL.piece_bytes
    cluster.store_of(victim.server_id).corrupt_byte(
        ref.chunk_id, 1, HEADER_BYTES + 2 * (plen + 8) + 17
    )
    assert await _read(cluster, res.chunks) == data
    corrupt = [b for b in cluster.bad if b.reason is BadShardReason.CORRUPT]
    assert [(b.chunk_id, b.shard_index) for b in corrupt] == [(ref.chunk_id, 1)]
    # the chunkserver reported it to its metadata link too
    link = cluster.links[victim.server_id - 1]
    assert [(r.chunk_id, r.shard_index) for r in link.bad_shards] == [(ref.chunk_id, 1)]


async def test_missing_shard_file_is_tolerated(cluster: Cluster) -> None:
    data = payload(30000, 4)
    res = await _write(cluster, data)
    ref = res.chunks[0]
    for idx in (0, 2):
        s = ref.shard(idx)
        assert s is not None
        await cluster.store_of(s.server_id).delete(ref.chunk_id, idx)
    assert await _read(cluster, res.chunks, 100, 20000) == data[100:20100]
    assert {b.reason for b in cluster.bad} == {BadShardReason.MISSING}


async def test_slow_data_shard_is_hedged_with_parity(cluster: Cluster) -> None:
    data = payload(SMALL.chunk_bytes, 5)
    res = await _write(cluster, data)
    ref = res.chunks[0]
    slow = ref.shard(0)
    assert slow is not None
    server = cluster.servers[slow.server_id - 1]
    release = asyncio.Event()
    original = server._read

    async def stalled(req: ReadShardRequest, ctx: CallContext) -> object:
        await release.wait()
        return await original(req, ctx)

    server.rpc.handle(ReadShardRequest, stalled)
    try:
        got = await _read(cluster, res.chunks, options=ReadOptions(hedge_delay_s=0.05))
    finally:
        release.set()
    assert got == data
    assert [(b.shard_index, b.reason) for b in cluster.bad] == [(0, BadShardReason.SLOW)]


async def test_hedge_races_the_slow_shard_instead_of_dropping_it(cluster: Cluster) -> None:
    """After the hedge delay a parity shard is asked too, and the slow data shard stays in
    the race: here both parity shards stall, so only the original can win."""
    data = payload(SMALL.chunk_bytes, 6)
    res = await _write(cluster, data)
    ref = res.chunks[0]
    asked = {i: asyncio.Event() for i in (0, 4, 5)}
    release = {i: asyncio.Event() for i in (0, 4, 5)}

    def stall(idx: int) -> None:
        shard = ref.shard(idx)
        assert shard is not None
        server = cluster.servers[shard.server_id - 1]
        original = server._read

        async def stalled(req: ReadShardRequest, ctx: CallContext) -> object:
            asked[idx].set()
            await release[idx].wait()
            return await original(req, ctx)

        server.rpc.handle(ReadShardRequest, stalled)

    for idx in asked:
        stall(idx)
    reading = asyncio.create_task(
        _read(cluster, res.chunks, options=ReadOptions(hedge_delay_s=0.05))
    )
    try:
        async with asyncio.timeout(30):
            await asked[4].wait()  # the hedge asked a parity shard...
            await asked[5].wait()  # ...and, the stripe still waiting, the other one
        assert not reading.done()
        release[0].set()  # the slow data shard answers at last: it wins the race
        async with asyncio.timeout(30):
            got = await reading
    finally:
        for e in release.values():
            e.set()
    assert got == data
    assert cluster.bad == []  # nobody was given up on: the hedges lost quietly


async def test_hedged_race_uses_whichever_k_pieces_arrive_first(cluster: Cluster) -> None:
    """A data shard that never answers: parity wins every stripe, the laggard is dropped
    as SLOW (once), and ranges inside the chunk still come back exact."""
    data = payload(2 * SMALL.chunk_bytes, 8)
    res = await _write(cluster, data)
    release = asyncio.Event()
    for ref in res.chunks:
        shard = ref.shard(1)
        assert shard is not None
        server = cluster.servers[shard.server_id - 1]
        original = server._read

        async def stalled(
            req: ReadShardRequest, ctx: CallContext, original: object = original
        ) -> object:
            if req.shard_index == 1:
                await release.wait()
            return await original(req, ctx)  # type: ignore[operator]

        server.rpc.handle(ReadShardRequest, stalled)
    try:
        opts = ReadOptions(hedge_delay_s=0.05)
        assert await _read(cluster, res.chunks, 3000, 100_000, options=opts) == data[3000:103_000]
    finally:
        release.set()
    assert {(b.shard_index, b.reason) for b in cluster.bad} == {(1, BadShardReason.SLOW)}


async def test_a_server_that_never_answers_costs_one_hedge_delay(cluster: Cluster) -> None:
    """Small reads finish from parity before the laggard is dropped; the shared health
    still learns of it, so the next read does not ask that server first (a paused or
    black-holed chunkserver: calls that neither answer nor fail)."""
    data = payload(20_000, 10)  # 3 stripes: each read ends before the laggard is dropped
    res = await _write(cluster, data)
    ref = res.chunks[0]
    hung = ref.shard(1)
    assert hung is not None
    hang = Hang()
    cluster.servers[hung.server_id - 1].rpc.handle(ReadShardRequest, hang)
    health = ServerHealth()
    opts = ReadOptions(hedge_delay_s=0.05)

    async def read() -> bytes:
        out = bytearray()
        async for block in read_range(
            res.chunks,
            0,
            len(data),
            directory=cluster.placement,
            transport=cluster.client,
            options=opts,
            health=health,
        ):
            out += block
        return bytes(out)

    try:
        assert await read() == data
        first = hang.calls  # the ranged call, then its whole pieces in the race
        assert first >= 1 and health.is_avoided(hung.server_id)
        for _ in range(3):
            assert await read() == data
        assert hang.calls == first  # read around it without asking it again
    finally:
        hang.release.set()


async def test_write_with_one_server_down_reports_the_missing_shard(cluster: Cluster) -> None:
    await cluster.stop_server(2)
    data = payload(SMALL.chunk_bytes + 1, 6)
    opts = WriteOptions(straggler_timeout_s=0.5, finish_grace_s=0.5)
    res = await _write(cluster, data, options=opts)
    assert len(res.missing) == len(res.chunks) == 2
    assert all(m.server_id == 2 for m in res.missing)
    assert all(len(c.shards) == SMALL.n - 1 for c in res.chunks)
    assert await _read(cluster, res.chunks) == data


async def test_a_server_that_takes_data_but_never_answers_costs_a_short_grace(
    cluster: Cluster,
) -> None:
    """After a quorum of receipts the rest get about as long as the quorum took (a paused
    chunkserver not yet marked suspect), not the whole ``finish_grace_s``."""
    hang = Hang()
    cluster.servers[2].rpc.handle(WriteShardRequest, hang)
    data = payload(3000, 11)
    opts = WriteOptions(finish_grace_min_s=0.05, finish_grace_s=600, straggler_timeout_s=600)
    try:
        async with asyncio.timeout(60):  # the old fixed grace: 600 s
            res = await _write(cluster, data, options=opts)
    finally:
        hang.release.set()
    assert [(m.server_id, m.error) for m in res.missing] == [
        (3, "DeadlineExceeded: no receipt within the grace period")
    ]
    assert await _read(cluster, res.chunks) == data


async def test_servers_that_take_all_data_but_never_answer_fail_the_write_in_bounded_time(
    cluster: Cluster,
) -> None:
    """Two servers go silent after taking their shards' data (paused mid-fsync, the
    connections up), so the write quorum (k+1) cannot be reached: the write fails once
    ``stall_timeout_s`` passed since their last bytes, not after the call timeout (an
    hour by default)."""
    hangs = [Hang(), Hang()]
    for server, hang in zip(cluster.servers[1:3], hangs, strict=True):
        server.rpc.handle(WriteShardRequest, hang)
    opts = WriteOptions(stall_timeout_s=0.5, straggler_timeout_s=600, finish_grace_s=600)
    try:
        with pytest.raises(errors.Unavailable, match=r"no receipt 0\.5 s after its data"):
            async with asyncio.timeout(60):  # before: the call timeout, an hour
                await _write(cluster, payload(3000, 13), options=opts)
    finally:
        for hang in hangs:
            hang.release.set()
    assert [h.calls for h in hangs] == [1, 1]


class _Healthy:
    """Placement that offers the first ``n`` servers not marked in ``health``."""

    def __init__(self, c: Cluster, health: ServerHealth) -> None:
        self.c, self.health = c, health

    async def allocate(self, chunk_index: int) -> list[Target]:
        ok = [t for t in self.c.targets if not self.health.is_avoided(t.server_id)]
        return ok[: SMALL.n]


async def test_a_missed_chunk_steers_the_later_chunks_of_the_write_away() -> None:
    """The write marks the server of a shard that missed its chunk as that chunk finishes,
    so a placement consulting the same health gives the object's later chunks to a spare
    server instead of paying the grace again for each."""
    c = await start_cluster(count=SMALL.n + 1)
    hang = Hang()
    c.servers[2].rpc.handle(WriteShardRequest, hang)
    health = ServerHealth()
    data = payload(5 * SMALL.chunk_bytes, 12)
    opts = WriteOptions(finish_grace_min_s=0.05, straggler_timeout_s=600)
    try:
        res = await write_object(
            stream(data),
            layout=SMALL,
            placement=_Healthy(c, health),
            transport=c.client,
            size_bytes=len(data),
            options=opts,
            health=health,
        )
        assert health.is_avoided(3)
        # chunk 1 is placed while chunk 0 is finishing; from chunk 2 on server 3 is skipped
        assert [(m.chunk_index, m.server_id) for m in res.missing] == [(0, 3), (1, 3)]
        assert hang.calls == 2
        for ch in res.chunks[2:]:
            assert sorted(s.server_id for s in ch.shards) == [1, 2, 4, 5, 6, 7]
        assert await _read(c, res.chunks) == data
    finally:
        hang.release.set()
        await c.client.close()
        for s in c.servers:
            await s.stop()


class _Short:
    """Placement that has only ``count`` servers to offer (the others down or full)."""

    def __init__(self, c: Cluster, count: int) -> None:
        self.c, self.count = c, count

    async def allocate(self, chunk_index: int) -> list[Target]:
        return (await self.c.placement.allocate(chunk_index))[: self.count]


async def test_a_short_placement_leaves_the_last_shards_for_repair(cluster: Cluster) -> None:
    data = payload(SMALL.chunk_bytes + 1, 9)
    res = await write_object(
        stream(data),
        layout=SMALL,
        placement=_Short(cluster, SMALL.n - 1),
        transport=cluster.client,
        size_bytes=len(data),
    )
    assert all(sorted(s.shard_index for s in c.shards) == [0, 1, 2, 3, 4] for c in res.chunks)
    assert [(m.shard_index, m.server_id) for m in res.missing] == [(5, 0), (5, 0)]
    assert await _read(cluster, res.chunks) == data


async def test_a_placement_below_the_write_quorum_fails_before_sending(cluster: Cluster) -> None:
    with pytest.raises(errors.Unavailable, match="a write needs 5"):
        await write_object(
            stream(payload(20000, 7)),
            layout=SMALL,
            placement=_Short(cluster, SMALL.k),
            transport=cluster.client,
        )
    assert not any(cluster.store_of(sid)._files for sid in range(1, SMALL.n + 1))


async def test_write_without_quorum_fails_and_cleans_up(cluster: Cluster) -> None:
    await cluster.stop_server(2)
    await cluster.stop_server(5)
    opts = WriteOptions(straggler_timeout_s=0.3)
    with pytest.raises(errors.Unavailable, match="quorum"):
        await _write(cluster, payload(20000, 7), options=opts)
    for sid in (1, 3, 4, 6):
        await asyncio.sleep(0)
        assert not cluster.store_of(sid)._files


async def test_full_disks_give_insufficient_space() -> None:
    c = await start_cluster()
    try:
        for s in c.stores:
            s._reserve = s._capacity
        with pytest.raises(errors.InsufficientSpace):
            await _write(c, payload(1000, 8))
    finally:
        await c.client.close()
        for s in c.servers:
            await s.stop()


async def test_a_lost_quorum_still_deletes_the_shards_that_were_fsyncing(
    cluster: Cluster,
) -> None:
    """One full disk makes a k+m quorum unreachable while the other shards are still
    being made durable: their files must not stay behind as orphans."""
    cluster.store_of(1)._reserve = cluster.store_of(1)._capacity
    for sid in range(2, 7):
        store = cluster.store_of(sid)
        durable = store.write

        async def slow_receipt(header, data, durable=durable):  # type: ignore[no-untyped-def]
            receipt = await durable(header, data)
            await asyncio.sleep(0.2)  # the file exists; its receipt is not back yet
            return receipt

        store.write = slow_receipt  # type: ignore[method-assign]
    with pytest.raises(errors.InsufficientSpace):
        await _write(cluster, payload(20000, 7), options=WriteOptions(write_quorum=6))
    assert all(not cluster.store_of(sid)._files for sid in range(1, 7))


async def test_rebuild_shard_restores_an_identical_shard() -> None:
    c = await start_cluster(count=7, n=6)  # server 7 holds nothing of chunk 0
    try:
        data = payload(SMALL.chunk_bytes - 3, 9)
        res = await _write(c, data)
        ref = res.chunks[0]
        spare = c.targets[6]
        assert spare.server_id not in {s.server_id for s in ref.shards}
        rebuilt = {}
        for lost in (5, 1):  # a parity shard, then a data shard
            old = ref.shard(lost)
            assert old is not None
            await c.store_of(old.server_id).delete(ref.chunk_id, lost)
            new = await rebuild_shard(ref, lost, spare, directory=c.placement, transport=c.client)
            assert new == ShardRef(spare.server_id, lost, old.checksum)
            rebuilt[lost] = new
        # read with shards 1 and 5 only on the spare and two other shards lost
        shards = tuple(rebuilt.get(s.shard_index, s) for s in ref.shards)
        moved = ChunkRef(
            ref.chunk_id, ref.coder, ref.k, ref.m, ref.stripe_bytes, ref.data_length, shards
        )
        for idx in (0, 2):
            s = ref.shard(idx)
            assert s is not None
            await c.store_of(s.server_id).delete(ref.chunk_id, idx)
        out = bytearray()
        async for b in read_range([moved], 0, len(data), directory=c.placement, transport=c.client):
            out += b
        assert bytes(out) == data
    finally:
        await c.client.close()
        for s in c.servers:
            await s.stop()


async def test_a_shard_lost_in_a_run_opened_ahead_is_read_around(cluster: Cluster) -> None:
    """Runs (and the next chunk's first run) are opened before they are read: a shard
    that fails in one of those still reads back exactly, and no call stays open."""
    from blobstore.testing.poll import eventually

    data = payload(3 * SMALL.chunk_bytes + 4321, 12)
    res = await _write(cluster, data)
    second, third = res.chunks[1], res.chunks[2]
    for ref, idx in ((second, 0), (third, 3)):  # first runs of chunks opened ahead
        s = ref.shard(idx)
        assert s is not None
        await cluster.store_of(s.server_id).delete(ref.chunk_id, idx)
    opts = ReadOptions(run_stripes=2)  # 4 runs per chunk
    assert await _read(cluster, res.chunks, options=opts) == data
    missing = {(b.chunk_id, b.shard_index) for b in cluster.bad}
    assert missing == {(second.chunk_id, 0), (third.chunk_id, 3)}
    assert {b.reason for b in cluster.bad} == {BadShardReason.MISSING}
    assert await _read(cluster, res.chunks, 5000, 150000, options=opts) == data[5000:155000]
    # a read abandoned with runs opened ahead: a window smaller than a call keeps every
    # server sending until its call is cancelled, so a call left open would show
    small = RpcClient(SECRET, stream_window=1024)
    try:
        gen = read_range(
            res.chunks, 0, len(data), directory=cluster.placement, transport=small, options=opts
        )
        got = bytearray()
        for _ in range(3 * 4 + 1):  # into the 4th chunk: past several prefetches
            got += await anext(gen)
        assert got == data[: len(got)]
        await gen.aclose()
        await eventually(lambda: all(s._reads == 0 for s in cluster.servers))
    finally:
        await small.close()


def _serve_altered(cluster: Cluster, server_id: int) -> None:
    """Server ``server_id`` flips a bit in the first block of every read it sends, after
    its store checked the piece (as a memory fault or a slicing bug would, not the disk)."""
    server = cluster.servers[server_id - 1]
    original = server._read

    async def altered(req: ReadShardRequest, ctx: CallContext) -> object:
        reply = await original(req, ctx)
        assert isinstance(reply, StreamResponse)

        async def body() -> AsyncIterator[bytes]:
            first = True
            async for block in reply.body:
                if first and len(block):
                    block = bytes([block[0] ^ 0x10]) + bytes(block[1:])
                first = False
                yield block

        return StreamResponse(reply.header, body())

    server.rpc.handle(ReadShardRequest, altered)


async def test_bytes_altered_after_the_servers_check_are_caught_on_arrival(
    cluster: Cluster,
) -> None:
    data = payload(SMALL.chunk_bytes + 999, 13)
    res = await _write(cluster, data)
    ref = res.chunks[0]
    victim = ref.shard(2)
    assert victim is not None
    _serve_altered(cluster, victim.server_id)
    assert await _read(cluster, res.chunks) == data
    # every shard the server sent (it may hold one of the second chunk too) was caught
    assert {(b.server_id, b.reason) for b in cluster.bad} == {
        (victim.server_id, BadShardReason.CORRUPT)
    }
    assert (ref.chunk_id, 2) in {(b.chunk_id, b.shard_index) for b in cluster.bad}
    assert all("on arrival" in b.error for b in cluster.bad)
    # without the end-to-end check the same bytes would have reached the caller
    cluster.bad.clear()
    unchecked = await _read(cluster, res.chunks, options=ReadOptions(checksums=False))
    assert unchecked != data and len(unchecked) == len(data)
    assert cluster.bad == []


def _predating_checksums(server: Chunkserver) -> None:
    """``server`` decodes ``checksums`` as an older chunkserver does: not at all."""
    original = server._read

    async def handler(req: ReadShardRequest, ctx: CallContext) -> object:
        return await original(dataclasses.replace(req, checksums=False), ctx)

    server.rpc.handle(ReadShardRequest, handler)


async def test_a_server_that_predates_checksums_is_read_plainly(cluster: Cluster) -> None:
    data = payload(SMALL.chunk_bytes + 4321, 14)
    res = await _write(cluster, data)
    for server in cluster.servers:
        _predating_checksums(server)
    assert await _read(cluster, res.chunks) == data
    assert await _read(cluster, res.chunks, 5000, 40000) == data[5000:45000]
    assert cluster.bad == []
