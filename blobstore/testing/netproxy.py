"""A per-link TCP proxy for partition tests: forward, black-hole, or reset one link.

Multi-process tests give each node a proxy address for each peer (link i->j), so cutting
one proxy partitions exactly that link. ``blackhole()`` keeps connections open but holds
the bytes both ways until ``heal()`` (what a real partition looks like: timeouts, not
errors; and, as TCP retransmits across a healed partition, nothing in a connection is
lost or reordered, so a framed protocol never sees a stream with a hole in it);
``reset()`` closes every connection and refuses new ones; ``heal()`` forwards again.
Runs inside the test's event loop; binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum

from blobstore.types import Address

__all__ = ["LinkProxy", "LinkState"]

_BUF = 256 * 1024


class LinkState(enum.Enum):
    FORWARD = "forward"
    BLACKHOLE = "blackhole"
    RESET = "reset"


class LinkProxy:
    """Listens on 127.0.0.1:<port> and forwards to ``target`` according to its state."""

    def __init__(self, target: Address, listen_port: int = 0) -> None:
        self.target = target
        self._listen_port = listen_port
        self.state = LinkState.FORWARD
        self.forwarded_bytes = 0  # both ways, all connections
        self._flowing = asyncio.Event()  # set unless black-holed
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.address = Address("127.0.0.1", listen_port)

    async def start(self) -> Address:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._listen_port)
        port = self._server.sockets[0].getsockname()[1]
        self.address = Address("127.0.0.1", int(port))
        return self.address

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._close_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def blackhole(self) -> None:
        self.state = LinkState.BLACKHOLE
        self._flowing.clear()

    def reset(self) -> None:
        self.state = LinkState.RESET
        self._flowing.set()
        self._close_all()

    def heal(self) -> None:
        self.state = LinkState.FORWARD
        self._flowing.set()

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.state is LinkState.RESET:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target.host, self.target.port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(_BUF):
                await self._flowing.wait()  # black-holed: hold it (and stop reading)
                if self.state is LinkState.RESET:
                    break
                dst.write(data)
                self.forwarded_bytes += len(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.close()
            self._writers.discard(dst)
