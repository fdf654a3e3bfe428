"""The writer reads its input only as fast as the slowest shard takes it (bounded memory)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from blobstore.codec.ranges import Layout
from blobstore.datapath import write_object
from blobstore.rpc import CallContext
from blobstore.rpc.link import STREAM_WINDOW
from blobstore.testing.poll import eventually
from chunkserver.messages import WriteShardRequest
from tests.unit.datapath.conftest import Cluster

MiB = 1 << 20


class Producer:
    def __init__(self, total: int) -> None:
        self.total, self.produced = total, 0
        self.md5 = hashlib.md5()
        self.block = bytes(range(256)) * 1024  # 256 KiB

    async def __call__(self) -> AsyncIterator[bytes]:
        while self.produced < self.total:
            chunk = self.block[: self.total - self.produced]
            self.md5.update(chunk)
            self.produced += len(chunk)
            yield chunk


async def test_a_stalled_shard_stalls_the_input(cluster: Cluster) -> None:
    layout = Layout()  # 1 MiB stripes, 64 MiB chunks
    gate = asyncio.Event()
    slow = cluster.servers[3]
    original = slow._write

    async def gated(req: WriteShardRequest, ctx: CallContext) -> object:
        await gate.wait()
        return await original(req, ctx)

    slow.rpc.handle(WriteShardRequest, gated)
    producer = Producer(96 * MiB)
    task = asyncio.ensure_future(
        write_object(
            producer(),
            layout=layout,
            placement=cluster.placement,
            transport=cluster.client,
            size_bytes=producer.total,
        )
    )
    await eventually(lambda: producer.produced > 0)
    # wait until the input stops moving: the stalled shard's pipe and RPC window are full
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    last = -1
    while producer.produced != last:
        assert loop.time() < deadline, "the input never stopped: no back-pressure"
        last = producer.produced
        for _ in range(50):
            await asyncio.sleep(0.002)
    # one shard piece is 1/4 of a stripe: its 4 MiB RPC window holds 16 MiB of object data,
    # plus the pipe (4 stripes), the stripes being encoded (3) and one being read
    bound = 4 * STREAM_WINDOW + (4 + 3 + 2) * layout.stripe_bytes
    assert producer.produced <= bound < producer.total
    assert not task.done()
    gate.set()
    result = await task
    assert result.md5 == producer.md5.digest() and not result.missing
