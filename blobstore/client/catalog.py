"""The catalog client: find the leader, follow redirects, retry within a deadline, once.

``CatalogClient`` is what the gateway, chunkservers and the CLI use to read and change the
catalog. ``RemoteCatalog`` speaks to the metadata service over RPC; ``LocalCatalog`` wraps
an in-process ``Catalog`` (unit tests and the single-process simulation).

Exactly-once: every command is sent in a ``ClientCommand`` envelope from a *session slot*
(``<client id>/<slot>``, one command in flight per slot, its ``seq`` increasing). A retry
after a timeout or a leader change re-sends the same ``(client id, seq)``, and the catalog
returns the remembered result instead of applying it twice. Slots are pooled, so any
number of concurrent callers share a bounded number of catalog sessions.

Errors: a command's domain error (``NoSuchBucket``, ``PreconditionFailed``...) is raised to
the caller; ``Unavailable`` / ``DeadlineExceeded`` mean the outcome is unknown past the
deadline (the caller may retry the whole operation). ``ChunkFenced`` (a commit naming a chunk
that garbage collection fenced, see ``metadata/fsm/fences.py``) is definite: nothing was
applied, and only a new write under fresh chunk ids can succeed, so it is never re-sent here.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from blobstore.clock import Clock, SystemClock
from blobstore.errors import (
    BlobstoreError,
    DeadlineExceeded,
    NotLeader,
    Unavailable,
)
from blobstore.log import get_logger
from blobstore.rpc.transport import Transport
from blobstore.types import Address, parse_address
from metadata import wire
from metadata.api import (
    ClusterStatusQuery,
    ClusterStatusResponse,
    HeartbeatRequest,
    MembershipChangeRequest,
    MembershipChangeResponse,
    ProposeRequest,
    ProposeResponse,
    Query,
    QueryRequest,
    QueryResponse,
    ReadMode,
    TransferLeaderRequest,
    run_query,
)
from metadata.fsm.codec import decode_value
from metadata.fsm.commands import ChunkserverHeartbeat, ClientCommand, Command
from metadata.fsm.machine import encode_entry
from metadata.fsm.state import Catalog

__all__ = ["CatalogClient", "LocalCatalog", "RemoteCatalog"]

log = get_logger(__name__)


class CatalogClient(Protocol):
    async def execute(self, command: Command, *, timeout_s: float = 10.0) -> object:
        """Replicate ``command``; return its result or raise its domain error."""
        ...

    async def query(
        self, q: Query, *, mode: ReadMode = ReadMode.LINEARIZABLE, timeout_s: float = 10.0
    ) -> object:
        """Answer a catalog query (linearizable unless ``mode`` says otherwise)."""
        ...

    async def heartbeat(self, command: ChunkserverHeartbeat, *, timeout_s: float = 10.0) -> object:
        """A chunkserver's heartbeat: like ``execute``, but the leader replicates it only
        when the catalog must learn something (``metadata.maintenance.liveness``)."""
        ...


def _raise_if_error(value: object) -> object:
    if isinstance(value, BlobstoreError):
        raise value
    return value


@dataclass(slots=True)
class _Slot:
    client_id: str
    seq: int = 0


class _SessionPool:
    def __init__(self, base_id: str, slots: int) -> None:
        self._free: asyncio.Queue[_Slot] = asyncio.Queue()
        for n in range(slots):
            self._free.put_nowait(_Slot(f"{base_id}/{n}"))

    async def acquire(self) -> _Slot:
        return await self._free.get()

    def release(self, slot: _Slot) -> None:
        self._free.put_nowait(slot)


class LocalCatalog:
    """A ``CatalogClient`` over an in-process catalog (no replication)."""

    def __init__(self, catalog: Catalog | None = None, clock: Clock | None = None) -> None:
        self.catalog = catalog if catalog is not None else Catalog()
        self._clock = clock or SystemClock()
        self._seq = itertools.count(1)

    async def execute(self, command: Command, *, timeout_s: float = 10.0) -> object:
        entry = ClientCommand("local", next(self._seq), int(self._clock.time() * 1000), command)
        return _raise_if_error(self.catalog.apply(entry))

    async def query(
        self, q: Query, *, mode: ReadMode = ReadMode.LINEARIZABLE, timeout_s: float = 10.0
    ) -> object:
        return run_query(self.catalog, q)

    async def heartbeat(self, command: ChunkserverHeartbeat, *, timeout_s: float = 10.0) -> object:
        return await self.execute(command, timeout_s=timeout_s)  # no leader to note it


class RemoteCatalog:
    """A ``CatalogClient`` over the metadata service's RPC."""

    def __init__(
        self,
        addrs: Sequence[Address],
        transport: Transport,
        *,
        client_id: str | None = None,
        slots: int = 64,
        clock: Clock | None = None,
        attempt_timeout_s: float = 2.0,
    ) -> None:
        if not addrs:
            raise ValueError("need at least one metadata address")
        wire.register_all()
        self._addrs = list(addrs)
        self._transport = transport
        self._clock = clock or SystemClock()
        self._pool = _SessionPool(client_id or secrets.token_hex(8), slots)
        self._leader: Address | None = None
        self._attempt_timeout_s = attempt_timeout_s
        self._next = 0

    async def _call(self, request: object, timeout_s: float) -> object:
        """Send to the leader (found by redirects), retrying until the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        backoff = 0.02
        last: BlobstoreError = Unavailable("no metadata node answered")
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DeadlineExceeded(f"catalog call timed out: {last.message}")
            addr = self._leader or self._addrs[self._next % len(self._addrs)]
            try:
                return await self._transport.call(
                    addr, request, timeout_s=min(remaining, self._attempt_timeout_s)
                )
            except NotLeader as e:
                last = e
                hint = e.details.get("leader", "")
                if hint:
                    try:
                        self._leader = parse_address(hint)
                        continue  # go straight to the named leader
                    except ValueError:
                        pass
                self._leader = None
                self._next += 1
            except (Unavailable, DeadlineExceeded) as e:
                last = e
                self._leader = None
                self._next += 1
            await asyncio.sleep(min(backoff, max(0.0, deadline - loop.time())))
            backoff = min(backoff * 2, 0.5)

    async def execute(self, command: Command, *, timeout_s: float = 10.0) -> object:
        return await self._propose(command, ProposeRequest, timeout_s)

    async def heartbeat(self, command: ChunkserverHeartbeat, *, timeout_s: float = 10.0) -> object:
        return await self._propose(command, HeartbeatRequest, timeout_s)

    async def _propose(
        self, command: Command, request: Callable[[bytes], object], timeout_s: float
    ) -> object:
        slot = await self._pool.acquire()
        try:
            slot.seq += 1
            entry = ClientCommand(slot.client_id, slot.seq, int(self._clock.time() * 1000), command)
            reply = await self._call(request(encode_entry(entry)), timeout_s)
        finally:
            self._pool.release(slot)
        assert isinstance(reply, ProposeResponse)
        return _raise_if_error(decode_value(reply.result))

    async def query(
        self, q: Query, *, mode: ReadMode = ReadMode.LINEARIZABLE, timeout_s: float = 10.0
    ) -> object:
        reply = await self._call(QueryRequest(q, mode), timeout_s)
        assert isinstance(reply, QueryResponse)
        return _raise_if_error(decode_value(reply.result))

    async def status(self, addr: Address | None = None, timeout_s: float = 5.0) -> object:
        """One node's view of the cluster (the leader's when ``addr`` is None)."""
        if addr is None:
            return await self._call(ClusterStatusQuery(), timeout_s)
        reply = await self._transport.call(addr, ClusterStatusQuery(), timeout_s=timeout_s)
        assert isinstance(reply, ClusterStatusResponse)
        return reply

    async def change_membership(
        self, action: str, node_id: int, address: str = "", timeout_s: float = 30.0
    ) -> MembershipChangeResponse:
        reply = await self._call(MembershipChangeRequest(action, node_id, address), timeout_s)
        assert isinstance(reply, MembershipChangeResponse)
        return reply

    async def transfer_leader(self, node_id: int, timeout_s: float = 10.0) -> object:
        return await self._call(TransferLeaderRequest(node_id), timeout_s)
