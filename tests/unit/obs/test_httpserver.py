"""The tiny observability HTTP server: routing, methods, malformed input, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from blobstore.obs.httpserver import HttpReply, ObsHttpServer
from blobstore.types import Address


async def _ok() -> HttpReply:
    return HttpReply(200, "text/plain", b"hello")


async def _boom() -> HttpReply:
    raise RuntimeError("collector broke")


async def _raw(addr: Address, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(addr.host, addr.port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


@pytest.fixture
async def server() -> AsyncIterator[Address]:
    srv = ObsHttpServer({"/ok": _ok, "/boom": _boom}, read_timeout_s=2.0)
    addr = await srv.start(Address("127.0.0.1", 0))
    yield addr
    await srv.stop()


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def test_get_route_returns_body_with_length(server: Address) -> None:
    resp = await _raw(server, b"GET /ok?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert _status(resp) == 200
    head, body = resp.split(b"\r\n\r\n", 1)
    assert body == b"hello"
    assert b"Content-Length: 5" in head
    assert b"Connection: close" in head


async def test_head_has_no_body(server: Address) -> None:
    resp = await _raw(server, b"HEAD /ok HTTP/1.1\r\n\r\n")
    assert _status(resp) == 200
    assert resp.split(b"\r\n\r\n", 1)[1] == b""


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /nope HTTP/1.1\r\n\r\n", 404),
        (b"POST /ok HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"garbage\r\n\r\n", 400),
        (b"GET /boom HTTP/1.1\r\n\r\n", 500),
    ],
)
async def test_errors(server: Address, request_bytes: bytes, status: int) -> None:
    assert _status(await _raw(server, request_bytes)) == status


async def test_truncated_request_is_dropped_and_server_keeps_serving(server: Address) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /ok HTT")
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    assert _status(await _raw(server, b"GET /ok HTTP/1.1\r\n\r\n")) == 200


async def test_stop_is_idempotent() -> None:
    srv = ObsHttpServer({"/ok": _ok})
    await srv.start(Address("127.0.0.1", 0))
    assert srv.address is not None
    await srv.stop()
    await srv.stop()
    assert srv.address is None
