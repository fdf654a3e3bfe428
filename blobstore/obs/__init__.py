"""Observability: Prometheus metrics, health endpoints and request-id logging per role.

* ``runtime``: the per-process hub (registry, live/ready checks, the ``/metrics``,
  ``/health/live``, ``/health/ready`` endpoints on ``http_listen``; default listen port+1000);
* ``httpserver``: the tiny asyncio HTTP server behind them (no extra process or thread);
* ``rpc``: ``ObservedRpcServer``, per-request-type RPC metrics;
* ``metadata``, ``chunkserver``, ``gateway``: each role's metrics and health checks;
* ``maintenance``: repair metrics read from the metadata maintenance driver's status.

Metric names follow Prometheus conventions: ``blobstore_`` prefix, ``_total`` counters,
``_seconds`` and ``_bytes`` units. Role objects are seen through Protocols: this package
imports no role package, except ``gateway`` (the readiness probe is a catalog client).
"""

from blobstore.obs.runtime import (
    HTTP_PORT_OFFSET,
    Check,
    Observability,
    http_address,
    observability,
    process_observability,
)

__all__ = [
    "HTTP_PORT_OFFSET",
    "Check",
    "Observability",
    "http_address",
    "observability",
    "process_observability",
]
