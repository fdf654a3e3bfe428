"""The link proxy forwards, black-holes and resets exactly one link."""

from __future__ import annotations

import asyncio

import pytest

from blobstore.testing.netproxy import LinkProxy
from blobstore.types import Address

pytestmark = pytest.mark.integration


async def _echo_server() -> tuple[asyncio.Server, Address]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, Address("127.0.0.1", server.sockets[0].getsockname()[1])


async def _roundtrip(addr: Address, payload: bytes, timeout_s: float) -> bytes:
    reader, writer = await asyncio.open_connection(addr.host, addr.port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), timeout_s)
    finally:
        writer.close()


async def test_forward_blackhole_reset_heal() -> None:
    server, target = await _echo_server()
    proxy = LinkProxy(target)
    addr = await proxy.start()
    try:
        assert await _roundtrip(addr, b"x" * 100_000, 5) == b"x" * 100_000
        proxy.blackhole()
        with pytest.raises(TimeoutError):
            await _roundtrip(addr, b"held", 0.3)
        # a connection open across the partition gets its bytes, in order, once healed
        reader, writer = await asyncio.open_connection(addr.host, addr.port)
        writer.write(b"before-")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(7), 0.3)
        proxy.heal()
        writer.write(b"after")
        assert await asyncio.wait_for(reader.readexactly(12), 5) == b"before-after"
        proxy.blackhole()
        writer.close()
        proxy.reset()
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await _roundtrip(addr, b"refused", 5)
        proxy.heal()
        assert await _roundtrip(addr, b"back", 5) == b"back"
    finally:
        await proxy.stop()
        server.close()
        await server.wait_closed()
