"""A tiny HTTP/1.1 server for ``/metrics`` and ``/health/*`` (GET and HEAD only).

The metadata node and the chunkserver speak msgpack RPC, not HTTP, so each role process
runs this beside its RPC server, on the same event loop, on its own ``http_listen``
address. It answers one request per connection (``Connection: close``), reads at most
``max_request_bytes`` of request head within ``read_timeout_s``, ignores any body, and
never blocks the loop: routes are coroutines returning a complete ``HttpReply``.

Must not import: role packages (metadata, chunkserver, gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus

from blobstore.log import get_logger
from blobstore.types import Address

__all__ = ["HttpReply", "ObsHttpServer", "Route"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A complete response."""

    status: int
    content_type: str
    body: bytes


Route = Callable[[], Awaitable[HttpReply]]


def _plain(status: int, text: str) -> HttpReply:
    return HttpReply(status, "text/plain; charset=utf-8", text.encode())


class ObsHttpServer:
    """Serves ``routes`` (exact paths; the query string is ignored)."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        *,
        read_timeout_s: float = 10.0,
        max_request_bytes: int = 16 * 1024,
    ) -> None:
        self._routes = dict(routes)
        self._read_timeout_s = read_timeout_s
        self._max_request_bytes = max_request_bytes
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> Address | None:
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return Address(host, port)

    async def start(self, addr: Address) -> Address:
        """Listen on ``addr``; OSError if it cannot be bound."""
        self._server = await asyncio.start_server(
            self._accept, addr.host, addr.port, limit=self._max_request_bytes
        )
        actual = self.address
        assert actual is not None
        return actual

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._clients):
            task.cancel()
        for task in list(self._clients):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._client(reader, writer))
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(self._read_timeout_s):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            method, path = _request_line(head)
            reply = await self._dispatch(method, path)
            status = HTTPStatus(reply.status)
            headers = (
                f"HTTP/1.1 {status.value} {status.phrase}\r\n"
                f"Content-Type: {reply.content_type}\r\n"
                f"Content-Length: {len(reply.body)}\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(headers.encode("latin-1"))
            if method != "HEAD":
                writer.write(reply.body)
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the scraper went away
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _dispatch(self, method: str, path: str) -> HttpReply:
        if not method:
            return _plain(400, "malformed request\n")
        if method not in ("GET", "HEAD"):
            return _plain(405, "only GET and HEAD\n")
        route = self._routes.get(path)
        if route is None:
            return _plain(404, f"not found; try {', '.join(sorted(self._routes))}\n")
        try:
            return await route()
        except Exception as exc:  # a broken collector must not kill the server
            log.exception("observability endpoint failed", path=path, error=type(exc).__name__)
            return _plain(500, f"{type(exc).__name__}: {exc}\n")


def _request_line(head: bytes) -> tuple[str, str]:
    """Method and path (without query) of a request head; ("", "") if malformed."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return "", ""
    return parts[0].upper(), parts[1].split("?", 1)[0]
