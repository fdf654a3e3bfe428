"""Metrics of the internal RPC servers: ``ObservedRpcServer`` times every handler.

``ObservedRpcServer`` is an ``RpcServer`` whose ``handle`` wraps each handler so that an
``RpcObserver`` hears, per call: the request type, the outcome (``ok`` or the domain
error's class name, ``cancelled``, ``InternalError``), the seconds from the handler's start
to its answer -- for a streamed answer, to the end of the stream -- the answer, and the bytes
streamed out. ``RpcServerMetrics`` is the generic observer:

* ``blobstore_rpc_server_requests_total{method,outcome}``
* ``blobstore_rpc_server_request_seconds{method}`` (histogram)
* ``blobstore_rpc_server_sent_bytes_total{method}`` (streamed bodies)

One-way messages (Raft traffic) are not wrapped.
Must not import: role packages.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from blobstore import errors
from blobstore.obs.runtime import Observability, process_observability
from blobstore.rpc import CallContext, Handler, RpcServer, StreamResponse

__all__ = [
    "LATENCY_BUCKETS_S",
    "ObservedRpcServer",
    "RpcObserver",
    "RpcServerMetrics",
    "observed",
    "outcome_of",
    "rpc_metrics",
]

# 100 us .. 60 s: loopback RPCs take ~0.1 ms, fsynced shard writes ~10-100 ms, big
# streams seconds.
LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class RpcObserver(Protocol):
    """Hears about every finished call."""

    def observe_call(
        self, method: str, outcome: str, seconds: float, result: object, sent_bytes: int
    ) -> None: ...


def outcome_of(exc: BaseException) -> str:
    """The ``outcome`` label for a call that ended with ``exc``."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, errors.BlobstoreError):
        return type(exc).__name__
    return "InternalError"


class RpcServerMetrics:
    """The generic ``RpcObserver``: calls, latency and streamed bytes per request type."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "blobstore_rpc_server_requests_total",
            "RPC requests handled, by request type and outcome.",
            ["method", "outcome"],
            registry=registry,
        )
        self.seconds = Histogram(
            "blobstore_rpc_server_request_seconds",
            "Time from handler start to its answer (end of stream for streamed answers).",
            ["method"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.sent_bytes = Counter(
            "blobstore_rpc_server_sent_bytes_total",
            "Bytes of streamed RPC answers.",
            ["method"],
            registry=registry,
        )

        # labelled children by (method, outcome): ``labels()`` costs more than the update
        self._children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    def observe_call(
        self, method: str, outcome: str, seconds: float, result: object, sent_bytes: int
    ) -> None:
        key = (method, outcome)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, outcome),
                self.seconds.labels(method),
                self.sent_bytes.labels(method),
            )
            self._children[key] = children
        requests, seconds_hist, sent = children
        requests.inc()
        seconds_hist.observe(seconds)
        if sent_bytes:
            sent.inc(sent_bytes)


def rpc_metrics(hub: Observability | None = None) -> RpcServerMetrics:
    """``hub``'s (default: this process's) generic RPC metrics."""
    hub = hub or process_observability()
    return hub.shared("rpc", lambda h: RpcServerMetrics(h.registry))


class ObservedRpcServer(RpcServer):
    """An ``RpcServer`` that reports every handled call to ``observer``."""

    def __init__(
        self,
        secret: bytes,
        *,
        observer: RpcObserver,
        ssl_context: ssl.SSLContext | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(secret, ssl_context=ssl_context, **kwargs)
        self.observer = observer

    def handle(self, request_cls: type, handler: Handler) -> None:
        super().handle(request_cls, observed(request_cls.__name__, handler, self.observer))


def observed(method: str, handler: Handler, observer: RpcObserver) -> Handler:
    """``handler`` wrapped to report each call to ``observer``."""

    async def run(request: Any, ctx: CallContext) -> object:
        started = time.perf_counter()
        try:
            result = await handler(request, ctx)
        except BaseException as exc:
            observer.observe_call(method, outcome_of(exc), time.perf_counter() - started, None, 0)
            raise
        if isinstance(result, StreamResponse):
            body = _counted(method, result, observer, started)
            return StreamResponse(result.header, body)
        observer.observe_call(method, "ok", time.perf_counter() - started, result, 0)
        return result

    return run


async def _counted(
    method: str, result: StreamResponse, observer: RpcObserver, started: float
) -> AsyncIterator[Any]:
    inner: AsyncIterable[Any] = result.body
    sent = 0
    outcome = "ok"
    try:
        async for chunk in inner:
            sent += chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
            yield chunk
    except BaseException as exc:
        outcome = "cancelled" if isinstance(exc, GeneratorExit) else outcome_of(exc)
        raise
    finally:
        aclose = getattr(inner, "aclose", None)
        if aclose is not None:
            await aclose()
        observer.observe_call(method, outcome, time.perf_counter() - started, result, sent)
