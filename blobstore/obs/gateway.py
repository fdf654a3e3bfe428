"""Metrics, health and request-id logging of the S3 gateway.

``ObservedGateway`` wraps the gateway's ASGI app (it observes, it never changes a
response) and records per request, labelled by S3 operation (the ``S3Operation`` class
name the app stores in ``scope["blobstore.operation"]``; ``Console`` under ``/_console``;
``Unknown`` when the request failed before it was parsed, e.g. a bad signature or bucket
name -- authentication runs before parsing) and HTTP status:

* ``blobstore_s3_requests_total{operation,status}``
* ``blobstore_s3_request_seconds{operation}`` (histogram, to the last body byte sent)
* ``blobstore_s3_received_bytes_total{operation}``, ``blobstore_s3_sent_bytes_total{operation}``
  (HTTP body bytes as they cross the ASGI boundary)
* ``blobstore_s3_requests_inflight``

It also writes one log line per request carrying ``request_id`` (the ``x-amz-request-id``
the client got; the line's ``trace_id`` is the same id, as on every other line the request
logged here and on the metadata nodes and chunkservers it called): at ``info`` for failed
requests (status >= 400), at ``debug`` otherwise.

Worker processes: ``prepare_multiprocess(data)`` (called by the gateway's parent before it
spawns workers) empties ``<data>/metrics-mp`` and points ``PROMETHEUS_MULTIPROC_DIR`` there;
the workers inherit it, so prometheus_client keeps their values in per-process files, and
the parent's ``/metrics`` (``blobstore.obs.runtime``) sums them. One gateway per data dir.

``GatewayProbe`` (readiness; run by the process that serves ``/health``): every
``every_s`` it asks the metadata service (linearizable, so only a leader can answer) for
the chunkservers and the erasure profile. Ready = the last probe succeeded, is fresh, and
at least the write quorum (k+1) of chunkservers is ``up`` with a heartbeat committed in
the last ``heartbeat_stale_s``. Gauges: ``blobstore_gateway_metadata_reachable``,
``blobstore_gateway_chunkservers_up``, ``blobstore_gateway_write_quorum``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from blobstore.client.catalog import CatalogClient, RemoteCatalog
from blobstore.config import GatewayConfig, load_secret
from blobstore.errors import BlobstoreError
from blobstore.log import get_logger, trace_context
from blobstore.obs.runtime import MULTIPROC_ENV, Check, Observability, process_observability
from blobstore.rpc import RpcClient
from blobstore.rpc.tls import internal_contexts
from metadata.api import GetErasureProfileQuery, ListChunkserversQuery

__all__ = [
    "OPERATION_KEY",
    "GatewayMetrics",
    "GatewayProbe",
    "ObservedGateway",
    "ProbeResult",
    "gateway_metrics",
    "gateway_probe",
    "prepare_multiprocess",
]

log = get_logger("gateway.access")
_ACCESS_DEBUG = logging.getLogger("gateway.access")

OPERATION_KEY = "blobstore.operation"
MULTIPROC_SUBDIR = "metrics-mp"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

S3_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
)  # fmt: skip


class GatewayMetrics:
    """Per-request S3 metrics (values are per-process files in worker mode)."""

    def __init__(self, hub: Observability) -> None:
        reg = hub.registry
        self.requests = Counter(
            "blobstore_s3_requests_total",
            "S3 requests by operation and HTTP status.",
            ["operation", "status"],
            registry=reg,
        )
        self.seconds = Histogram(
            "blobstore_s3_request_seconds",
            "S3 request latency, to the last body byte sent.",
            ["operation"],
            buckets=S3_BUCKETS_S,
            registry=reg,
        )
        self.received = Counter(
            "blobstore_s3_received_bytes_total",
            "HTTP request body bytes received.",
            ["operation"],
            registry=reg,
        )
        self.sent = Counter(
            "blobstore_s3_sent_bytes_total",
            "HTTP response body bytes sent.",
            ["operation"],
            registry=reg,
        )
        self.inflight = Gauge(
            "blobstore_s3_requests_inflight",
            "S3 requests being served.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, int], tuple[Any, Any, Any, Any]] = {}

    def observe(
        self, operation: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        """Count one finished request (labelled children cached: ``labels()`` is slow)."""
        key = (operation, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(operation, str(status)),
                self.seconds.labels(operation),
                self.received.labels(operation),
                self.sent.labels(operation),
            )
            self._children[key] = children
        requests, latency, received_bytes, sent_bytes = children
        requests.inc()
        latency.observe(seconds)
        if received:
            received_bytes.inc(received)
        if sent:
            sent_bytes.inc(sent)


def gateway_metrics(hub: Observability | None = None) -> GatewayMetrics:
    """``hub``'s (default: this process's) ``GatewayMetrics``."""
    return (hub or process_observability()).shared("gateway", GatewayMetrics)


def prepare_multiprocess(data: Path) -> Path:
    """Empty ``<data>/metrics-mp`` and export it as ``PROMETHEUS_MULTIPROC_DIR``."""
    path = Path(data).resolve() / MULTIPROC_SUBDIR
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


class ObservedGateway:
    """ASGI wrapper: metrics and an access line per request; behaviour unchanged."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics or gateway_metrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        received = 0
        sent = 0
        status = 0
        request_id = ""

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal sent, status, request_id
            kind = message.get("type")
            if kind == "http.response.start":
                status = int(message.get("status", 0))
                request_id = _header(message, b"x-amz-request-id")
            elif kind == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        m = self.metrics
        m.inflight.inc()
        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            m.inflight.dec()
            seconds = time.perf_counter() - started
            operation = str(scope.get(OPERATION_KEY) or _unparsed(scope))
            m.observe(operation, status, seconds, received, sent)
            _access_log(scope, request_id, operation, status, seconds, received, sent)


def _unparsed(scope: Scope) -> str:
    """The label of a request the S3 router never parsed."""
    return "Console" if str(scope.get("path", "")).startswith("/_console") else "Unknown"


def _header(message: Message, name: bytes) -> str:
    for key, value in message.get("headers", ()):
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def _access_log(
    scope: Scope,
    request_id: str,
    operation: str,
    status: int,
    seconds: float,
    received: int,
    sent: int,
) -> None:
    failed = status >= 400 or status == 0
    if not failed and not _ACCESS_DEBUG.isEnabledFor(logging.DEBUG):
        return
    fields: dict[str, Any] = {
        "request_id": request_id,
        "operation": operation,
        "status": status,
        "method": scope.get("method", ""),
        "path": str(scope.get("path", ""))[:256],
        "ms": round(seconds * 1000, 1),
        "received": received,
        "sent": sent,
    }
    with trace_context(request_id or None):
        if failed:
            log.info("s3 request failed", **fields)
        else:
            log.debug("s3 request", **fields)


# -- readiness ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One look at the cluster from this gateway."""

    reachable: bool  # a metadata leader answered
    up: int  # chunkservers up with a fresh heartbeat
    write_quorum: int  # k + 1 of the erasure profile
    error: str = ""
    at: float = 0.0  # time.monotonic() of the probe

    @property
    def is_ready(self) -> bool:
        return self.reachable and self.up >= self.write_quorum


class GatewayProbe(Collector):
    """Periodic readiness probe of the metadata service and chunkservers."""

    def __init__(
        self,
        catalog: CatalogClient,
        *,
        every_s: float = 2.0,
        timeout_s: float = 2.0,
        heartbeat_stale_s: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalog = catalog
        self._every_s = every_s
        self._timeout_s = timeout_s
        self._stale_ms = int(heartbeat_stale_s * 1000)
        self._wall = wall_clock
        self.last: ProbeResult | None = None
        self._quorum = 0

    async def probe_once(self) -> ProbeResult:
        try:
            if not self._quorum:
                profile = await self._catalog.query(
                    GetErasureProfileQuery(), timeout_s=self._timeout_s
                )
                self._quorum = int(cast(Any, profile).k) + 1
            servers = await self._catalog.query(ListChunkserversQuery(), timeout_s=self._timeout_s)
            now_ms = int(self._wall() * 1000)
            up = sum(
                1
                for s in cast(tuple[Any, ...], servers)
                if s.state == "up" and now_ms - s.last_heartbeat_ms <= self._stale_ms
            )
            result = ProbeResult(True, up, self._quorum, at=time.monotonic())
        except (BlobstoreError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            result = ProbeResult(False, 0, self._quorum, error, time.monotonic())
        self.last = result
        return result

    async def run(self) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(self._every_s)  # the probe period

    async def check(self) -> Check:
        r = self.last
        if r is None:
            return Check("cluster", False, "not probed yet")
        if time.monotonic() - r.at > 3 * self._every_s + self._timeout_s:
            return Check("cluster", False, "the last probe is stale")
        if not r.reachable:
            return Check("cluster", False, f"no metadata leader answered: {r.error}")
        verdict = f"metadata leader answered; {r.up} chunkservers up, write quorum {r.write_quorum}"
        return Check("cluster", r.is_ready, verdict)

    def collect(self) -> Iterator[Metric]:
        r = self.last
        if r is None:
            return
        yield GaugeMetricFamily(
            "blobstore_gateway_metadata_reachable",
            "1 if the metadata leader answered the last probe.",
            value=int(r.reachable),
        )
        yield GaugeMetricFamily(
            "blobstore_gateway_chunkservers_up",
            "Chunkservers up with a fresh heartbeat (last probe).",
            value=r.up,
        )
        yield GaugeMetricFamily(
            "blobstore_gateway_write_quorum",
            "Shards per chunk a write needs (k+1).",
            value=r.write_quorum,
        )


@contextlib.asynccontextmanager
async def gateway_probe(
    config: GatewayConfig, hub: Observability | None = None, *, every_s: float = 2.0
) -> AsyncIterator[GatewayProbe]:
    """Run a ``GatewayProbe`` for ``config``'s cluster, as ``hub``'s ready check."""
    hub = hub or process_observability()
    common = config.common
    _server_tls, client_tls = internal_contexts(common.tls_cert, common.tls_key, common.tls_ca)
    transport = RpcClient(load_secret(common), ssl_context=client_tls, fail_fast=True)
    probe = GatewayProbe(RemoteCatalog(list(config.meta), transport, slots=1), every_s=every_s)
    hub.registry.register(probe)
    remove = hub.add_check("ready", "cluster", probe.check)
    task = asyncio.create_task(probe.run(), name="gateway-probe")
    try:
        yield probe
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        remove()
        hub.registry.unregister(probe)
        await transport.close()
