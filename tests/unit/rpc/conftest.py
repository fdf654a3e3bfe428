"""Shared fixtures for the RPC tests: a loopback server with echo-ish handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import pytest

from blobstore.rpc import CallContext, RpcClient, RpcServer
from blobstore.types import Address
from tests.unit.rpc.fixture_messages import Echo

SECRET = b"cluster-secret-for-tests"
LOOPBACK = Address("127.0.0.1", 0)


async def echo(req: Echo, ctx: CallContext) -> Echo:
    return Echo(req.seq, req.text + "!")


@dataclass
class Served:
    server: RpcServer
    addr: Address
    client: RpcClient


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    server = RpcServer(SECRET)
    server.handle(Echo, echo)
    addr = await server.start(LOOPBACK)
    client = RpcClient(SECRET)
    yield Served(server, addr, client)
    await client.close()
    await server.stop()


def run_soon(aw: Awaitable[object]) -> asyncio.Future[object]:
    return asyncio.ensure_future(aw)
