"""Chunkserver RPC handlers, secret loading, heartbeats and graceful stop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blobstore import errors
from blobstore.clock import SystemClock
from blobstore.rpc import RpcClient
from blobstore.testing.poll import eventually
from blobstore.types import Address
from chunkserver.messages import (
    DeleteShardRequest,
    DeleteShardResponse,
    GetSpaceRequest,
    GetSpaceResponse,
    ListInventoryRequest,
    ListInventoryResponse,
    ReadShardRequest,
    StatShardRequest,
    StatShardResponse,
    WriteShardRequest,
    WriteShardResponse,
)
from chunkserver.service import REPORT_AGAIN_S, Chunkserver, NoopMetadataLink
from chunkserver.shardfile import ShardHeader, piece_checksum, shard_checksum
from chunkserver.store.disk import DiskShardStore
from chunkserver.store.memory import MemoryShardStore
from tests.unit.chunkserver.tempfiles import temp_files
from tests.unit.datapath.conftest import SECRET

LOOP = Address("127.0.0.1", 0)


def _header(cid: uuid.UUID, idx: int = 0, length: int = 10_000) -> ShardHeader:
    return ShardHeader(cid, idx, 2, 1, "zfec", 4096, length)


async def _body(data: bytes, step: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i : i + step]


async def _serve(
    store: object, clock: SystemClock | None = None
) -> tuple[Chunkserver, Address, RpcClient, NoopMetadataLink]:
    link = NoopMetadataLink(7)
    cs = Chunkserver(store, SECRET, link=link, heartbeat_s=0.01, clock=clock)  # type: ignore[arg-type]
    addr = await cs.start(LOOP)
    return cs, addr, RpcClient(SECRET), link


async def test_write_read_stat_delete_inventory_space() -> None:
    cs, addr, client, link = await _serve(MemoryShardStore())
    try:
        await eventually(lambda: link.heartbeats >= 2)  # registered in the background first
        assert cs.server_id == 7
        data = (bytes(range(256)) * 20)[:5000]  # pieces 2048 + 2048 + 904 (10_000-byte chunk)
        ids = sorted(uuid.uuid4() for _ in range(5))
        for cid in ids:
            h = _header(cid)
            reply = await client.call(
                addr, WriteShardRequest.from_header(h), timeout_s=5, body=_body(data)
            )
            assert isinstance(reply, WriteShardResponse)
            want = shard_checksum(
                [
                    piece_checksum(data[:2048]),
                    piece_checksum(data[2048:4096]),
                    piece_checksum(data[4096:]),
                ]
            )
            assert reply.checksum == want and reply.data_bytes == len(data)
        _, body = await client.call_stream(
            addr, ReadShardRequest(ids[0].bytes, 0, 100, 3000), timeout_s=5
        )
        got = b"".join([bytes(b) async for b in body])
        assert got == data[100:3100]
        stat = await client.call(addr, StatShardRequest(ids[1].bytes, 0), timeout_s=5)
        assert isinstance(stat, StatShardResponse) and stat.shard is not None
        pages: list[bytes] = []
        after, after_idx = b"", -1
        while True:
            page = await client.call(addr, ListInventoryRequest(after, after_idx, 2), timeout_s=5)
            assert isinstance(page, ListInventoryResponse)
            pages.extend(s.chunk_id for s in page.shards)
            if not page.is_truncated:
                break
            after, after_idx = page.shards[-1].chunk_id, page.shards[-1].shard_index
        assert pages == [c.bytes for c in ids]
        gone = await client.call(addr, DeleteShardRequest(ids[0].bytes, 0), timeout_s=5)
        assert gone == DeleteShardResponse(True)
        assert await client.call(addr, DeleteShardRequest(ids[0].bytes, 0), timeout_s=5) == (
            DeleteShardResponse(False)
        )
        with pytest.raises(errors.NoSuchShard):
            await client.call_stream(addr, ReadShardRequest(ids[0].bytes, 0, 0, 10), timeout_s=5)
        space = await client.call(addr, GetSpaceRequest(), timeout_s=5)
        assert isinstance(space, GetSpaceResponse) and space.used_bytes > 0
        with pytest.raises(errors.InvalidArgument):
            await client.call(
                addr,
                WriteShardRequest(ids[0].bytes, 9, 2, 1, "zfec", 4096, 10),
                timeout_s=5,
                body=_body(b"x"),
            )
    finally:
        await client.close()
        await cs.stop()


async def test_corrupt_read_is_a_typed_error_and_reported() -> None:
    store = MemoryShardStore()
    cs, addr, client, link = await _serve(store)
    try:
        cid = uuid.uuid4()
        data = bytes(5000)
        await client.call(
            addr, WriteShardRequest.from_header(_header(cid)), timeout_s=5, body=_body(data)
        )
        store.corrupt_byte(cid, 0, 72 + 2048 + 8 + 5)  # stripe 1
        # the bad piece is in the first block read: the reply itself is the error
        with pytest.raises(errors.CorruptShard):
            await client.call_stream(
                addr, ReadShardRequest(cid.bytes, 0, 0, len(data)), timeout_s=5
            )
        await eventually(lambda: len(link.bad_shards) == 1)
        assert link.bad_shards[0].chunk_id == cid
    finally:
        await client.close()
        await cs.stop()


class _Clock(SystemClock):
    """Real sleeps; a monotonic clock the test moves forward."""

    def __init__(self) -> None:
        self.skew = 0.0

    def monotonic(self) -> float:
        return super().monotonic() + self.skew


async def test_a_bad_shard_is_reported_again_if_it_stays_bad() -> None:
    """Reports can be lost on the way (the real link queues them): the same bad shard is
    not re-sent on every read, but it is once REPORT_AGAIN_S have passed."""
    store = MemoryShardStore()
    clock = _Clock()
    cs, addr, client, link = await _serve(store, clock)
    try:
        cid = uuid.uuid4()
        data = bytes(5000)
        await client.call(
            addr, WriteShardRequest.from_header(_header(cid)), timeout_s=5, body=_body(data)
        )
        store.corrupt_byte(cid, 0, 72 + 5)

        async def read() -> None:
            with pytest.raises(errors.CorruptShard):
                await client.call_stream(addr, ReadShardRequest(cid.bytes, 0, 0, 5000), timeout_s=5)

        for _ in range(3):
            await read()
        await eventually(lambda: len(link.bad_shards) == 1)
        clock.skew += REPORT_AGAIN_S + 1
        await read()
        await eventually(lambda: len(link.bad_shards) == 2)
        await read()
        assert len(link.bad_shards) == 2
    finally:
        await client.close()
        await cs.stop()


async def test_a_background_task_that_ends_marks_the_server_failed() -> None:
    """A registration refused for good ends the heartbeat loop: the server says so (and
    ``serve`` exits non-zero) instead of serving on, unregistered, looking alive."""

    class Refusing(NoopMetadataLink):
        async def register(self, node: object, space: object) -> int:
            raise errors.InvalidArgument("address taken by another chunkserver")

    cs = Chunkserver(MemoryShardStore(), SECRET, link=Refusing(7))
    await cs.start(LOOP)
    try:
        await asyncio.wait_for(cs.failure.wait(), 5)
        assert isinstance(cs.failed, errors.InvalidArgument)
    finally:
        await cs.stop()  # does not raise the task's error again


async def test_stop_aborts_inflight_writes_leaving_no_shard(tmp_path: Path) -> None:
    store = DiskShardStore(tmp_path, 0)
    cs = Chunkserver(store, SECRET, drain_timeout_s=0.2)
    addr = await cs.start(LOOP)
    client = RpcClient(SECRET)
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        started.set()
        await asyncio.Event().wait()

    cid = uuid.uuid4()
    call = asyncio.ensure_future(
        client.call(addr, WriteShardRequest.from_header(_header(cid)), timeout_s=30, body=endless())
    )
    await started.wait()
    await eventually(lambda: cs._writes == 1)
    await cs.stop()
    with pytest.raises(errors.BlobstoreError):
        await call
    await client.close()
    assert await store.stat(cid, 0) is None
    assert temp_files(tmp_path) == []


async def test_scrubber_reports_corruption_through_the_link() -> None:
    store = MemoryShardStore()
    link = NoopMetadataLink(3)
    cs = Chunkserver(store, SECRET, link=link, scrub_mb_s=1000.0)
    addr = await cs.start(LOOP)
    client = RpcClient(SECRET)
    try:
        cid = uuid.uuid4()
        await client.call(
            addr, WriteShardRequest.from_header(_header(cid)), timeout_s=5, body=_body(bytes(5000))
        )
        store.corrupt_byte(cid, 0, 72 + 10)
        assert cs.scrubber is not None
        progress = await cs.scrubber.scrub_pass()
        assert progress.corrupt_found == 1
        assert [(r.chunk_id, r.reason) for r in link.bad_shards] == [(cid, "piece_checksum")]
    finally:
        await client.close()
        await cs.stop()
