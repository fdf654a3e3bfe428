"""In-process chunkservers (MemoryShardStore behind a real RpcServer on 127.0.0.1:0)."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from blobstore import errors
from blobstore.codec.ranges import Layout
from blobstore.datapath import BadShard, StaticPlacement, Target
from blobstore.rpc import CallContext, RpcClient
from blobstore.types import Address
from chunkserver.service import Chunkserver, NoopMetadataLink
from chunkserver.store.memory import MemoryShardStore

SECRET = b"datapath-test-secret-0123456789"
SMALL = Layout(chunk_bytes=64 * 1024, stripe_bytes=8 * 1024, k=4, m=2)


class Hang:
    """A chunkserver RPC handler that takes every call and answers none (a paused or
    black-holed server) until ``release`` is set; counts the calls. Install it with
    ``server.rpc.handle(RequestType, hang)`` and set ``release`` when done."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self, req: object, ctx: CallContext) -> object:
        self.calls += 1
        await self.release.wait()
        raise errors.Unavailable("released at the end of the test")


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def stream(data: bytes, piece: int = 5000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


@dataclass
class Cluster:
    servers: list[Chunkserver]
    stores: list[MemoryShardStore]
    links: list[NoopMetadataLink]
    targets: list[Target]
    client: RpcClient
    placement: StaticPlacement
    bad: list[BadShard] = field(default_factory=list)

    def store_of(self, server_id: int) -> MemoryShardStore:
        return self.stores[server_id - 1]

    async def stop_server(self, server_id: int) -> None:
        await self.servers[server_id - 1].rpc.stop()


async def start_cluster(count: int = 6, n: int = 6) -> Cluster:
    servers, stores, links, targets = [], [], [], []
    for i in range(count):
        store = MemoryShardStore()
        link = NoopMetadataLink(i + 1)
        cs = Chunkserver(store, SECRET, link=link, heartbeat_s=0.05)
        addr = await cs.start(Address("127.0.0.1", 0))
        servers.append(cs)
        stores.append(store)
        links.append(link)
        targets.append(Target(i + 1, addr))
    client = RpcClient(SECRET, backoff_max_s=0.1)
    return Cluster(servers, stores, links, targets, client, StaticPlacement(targets, n))


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = await start_cluster()
    yield c
    await c.client.close()
    for s in c.servers:
        await s.stop()


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()
