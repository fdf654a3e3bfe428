"""The ``Transport`` Protocol every RPC caller codes against, and the server-side call types.

Implementations: ``blobstore.rpc.client.RpcClient`` (TCP) and ``blobstore.rpc.sim.SimTransport``
(simulated network). Handlers receive a ``CallContext`` and may return a ``StreamResponse``
to stream a bulk body back.

Contract:
* ``call``: unary reply; a ``BlobstoreError`` raised by the handler is raised here with
  the same type; any other handler failure arrives as ``InternalError``. Past ``timeout_s``
  it raises ``DeadlineExceeded`` and a late answer is dropped. An unreachable peer raises
  ``Unavailable`` (or ``DeadlineExceeded`` if the deadline ran out while reconnecting).
* ``call_stream``: reply header plus an async iterator over the bulk body; reading slowly
  stalls the sender (flow control); the body must be read before the deadline.
  Call ``aclose()`` on the iterator (if it has one) to abandon a body early.
* ``send``: one-way, best effort, never blocks for long: drops when the peer is unreachable
  or its bounded queue is full.
* Body chunks handed to the transport must not be mutated afterwards.

Must not import: sockets or service packages.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from blobstore.types import Address

__all__ = [
    "BodyChunk",
    "CallContext",
    "Handler",
    "MessageHandler",
    "StreamResponse",
    "Transport",
    "empty_body",
]

BodyChunk = bytes | bytearray | memoryview


@runtime_checkable
class Transport(Protocol):
    """Typed request/response, bulk streams and one-way messages to a peer."""

    async def call(
        self,
        addr: Address,
        request: object,
        *,
        timeout_s: float,
        body: AsyncIterable[BodyChunk] | None = None,
    ) -> object:
        """Send ``request`` (and optional streamed ``body``); return the reply."""
        ...

    async def call_stream(
        self, addr: Address, request: object, *, timeout_s: float
    ) -> tuple[object, AsyncIterator[memoryview]]:
        """Send ``request``; return the reply header and its streamed bulk body."""
        ...

    async def send(self, addr: Address, message: object) -> None:
        """One-way, best effort; drops instead of blocking."""
        ...

    async def close(self) -> None:
        """Close every connection; pending calls fail with Unavailable."""
        ...


class _EmptyBody:
    """An exhausted body; stateless, so one instance serves every call."""

    __slots__ = ()

    def __aiter__(self) -> _EmptyBody:
        return self

    async def __anext__(self) -> memoryview:
        raise StopAsyncIteration


_EMPTY = _EmptyBody()


def empty_body() -> AsyncIterator[memoryview]:
    """A bulk body with no bytes."""
    return _EMPTY


@dataclass(slots=True)
class CallContext:
    """What a handler knows about its call."""

    peer: str
    trace_id: str
    deadline: float  # event-loop time (loop.time()) past which the call is cancelled
    body: AsyncIterator[memoryview] = field(default_factory=empty_body)


@dataclass(frozen=True, slots=True)
class StreamResponse:
    """Returned by a handler to send ``header`` followed by the bulk ``body``."""

    header: object
    body: AsyncIterable[BodyChunk]


Handler = Callable[[Any, CallContext], Awaitable[object]]
MessageHandler = Callable[[Any], Awaitable[None] | None]
