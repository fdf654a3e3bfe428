"""One process's observability hub: its metrics registry, health checks and HTTP endpoints.

Every role process has one ``Observability`` (``process_observability()``), started by
``blobstore.cli.roles`` around the role's ``serve`` on the address ``http_address`` derives
from the role's ``listen`` and the ``http_listen`` setting:

* ``""`` (default): the role's listen host, port + 1000 (metadata 7001 -> 8001, chunkserver
  7101 -> 8101, gateway 9000 -> 10000);
* ``"off"``: no endpoints;
* ``HOST:PORT``: exactly there.

Endpoints (plain HTTP, no auth: bind them to a private address):

* ``GET /metrics``: Prometheus text format. The base registry is prometheus_client's default
  one (``process_*``, ``python_*``) or, when ``PROMETHEUS_MULTIPROC_DIR`` is set (the gateway
  with worker processes), the sum over the workers' files; the hub's own ``registry`` (role
  metrics and collectors attached by the role code) is appended.
* ``GET /health/live``: 200 while the event loop answers and every *live* check passes.
* ``GET /health/ready``: 200 when live and every *ready* check passes; 503 otherwise, also
  while no ready check is registered yet (the role is still starting).

Both health answers are small JSON documents naming each check, its verdict and why.
A check that raises or takes longer than ``check_timeout_s`` fails.

Must not import: role packages (metadata, chunkserver, gateway).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from blobstore.config import CommonConfig
from blobstore.errors import ConfigError
from blobstore.log import get_logger
from blobstore.obs.httpserver import HttpReply, ObsHttpServer
from blobstore.types import Address, parse_address

__all__ = [
    "HTTP_PORT_OFFSET",
    "MULTIPROC_ENV",
    "Check",
    "CheckFn",
    "Observability",
    "http_address",
    "observability",
    "process_observability",
]

log = get_logger(__name__)

HTTP_PORT_OFFSET = 1000
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# No ``*_created`` series: they double the output and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Check:
    """One health verdict."""

    name: str
    ok: bool
    detail: str = ""


CheckFn = Callable[[], Awaitable[Check]]
Kind = Literal["live", "ready"]
T = TypeVar("T")


def http_address(listen: Address, http_listen: str) -> Address | None:
    """Where a role with RPC/S3 address ``listen`` serves /metrics (None = off)."""
    if http_listen == "off":
        return None
    if http_listen:
        return parse_address(http_listen)
    port = listen.port + HTTP_PORT_OFFSET
    if not 0 < port < 65536:
        raise ConfigError(f"http_listen: port {listen.port}+{HTTP_PORT_OFFSET} is out of range")
    return Address(listen.host, port)


class Observability:
    """Registry, health checks and the HTTP server of one process."""

    def __init__(
        self,
        role: str = "",
        *,
        base: CollectorRegistry | None = REGISTRY,
        check_timeout_s: float = 2.0,
    ) -> None:
        self.role = role
        self.registry = CollectorRegistry(auto_describe=True)
        self._base = base
        self._check_timeout_s = check_timeout_s
        self._checks: dict[Kind, dict[str, CheckFn]] = {"live": {}, "ready": {}}
        self._pre_scrape: list[Callable[[], Awaitable[None]]] = []
        self._server: ObsHttpServer | None = None
        self._shared: dict[str, Any] = {}

    # -- registration --------------------------------------------------------------------
    def shared(self, key: str, factory: Callable[[Observability], T]) -> T:
        """The hub's one instance of ``key`` (metric sets live as long as the process)."""
        if key not in self._shared:
            self._shared[key] = factory(self)
        return self._shared[key]  # type: ignore[no-any-return]

    def add_check(self, kind: Kind, name: str, fn: CheckFn) -> Callable[[], None]:
        """Register a live or ready check; returns its remover."""
        self._checks[kind][name] = fn
        return lambda: self._remove_check(kind, name, fn)

    def _remove_check(self, kind: Kind, name: str, fn: CheckFn) -> None:
        if self._checks[kind].get(name) is fn:
            del self._checks[kind][name]

    def add_pre_scrape(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        """Run ``fn`` before each /metrics answer (refresh gauges that need I/O)."""
        self._pre_scrape.append(fn)
        return lambda: self._pre_scrape.remove(fn) if fn in self._pre_scrape else None

    # -- answers -------------------------------------------------------------------------
    def _base_registry(self) -> CollectorRegistry | None:
        path = os.environ.get(MULTIPROC_ENV)
        if path and os.path.isdir(path):
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=path)  # type: ignore[no-untyped-call]
            return merged
        return self._base

    async def metrics_text(self) -> bytes:
        """The Prometheus exposition of this process."""
        for hook in list(self._pre_scrape):
            try:
                async with asyncio.timeout(self._check_timeout_s):
                    await hook()
            except Exception as exc:  # stale gauges beat no metrics at all
                log.warning("metrics refresh failed", error=type(exc).__name__, detail=str(exc))
        base = self._base_registry()
        text = generate_latest(base) if base is not None else b""
        return text + generate_latest(self.registry)

    async def run_checks(self, kind: Kind) -> tuple[Check, ...]:
        """Run the live checks (and, for ``ready``, the ready checks too)."""
        fns = dict(self._checks["live"])
        if kind == "ready":
            fns.update(self._checks["ready"])
        results = await asyncio.gather(*(self._run(n, f) for n, f in fns.items()))
        return (Check("event_loop", True, "answering"), *results)

    async def _run(self, name: str, fn: CheckFn) -> Check:
        try:
            async with asyncio.timeout(self._check_timeout_s):
                return await fn()
        except TimeoutError:
            return Check(name, False, f"no answer within {self._check_timeout_s:g}s")
        except Exception as exc:
            return Check(name, False, f"{type(exc).__name__}: {exc}")

    async def health(self, kind: Kind) -> HttpReply:
        checks = await self.run_checks(kind)
        ok = all(c.ok for c in checks)
        if kind == "ready" and not self._checks["ready"]:
            ok = False
            checks = (*checks, Check("started", False, "role not started yet"))
        status = kind if ok else f"not {kind}"
        doc = {
            "status": status,
            "role": self.role,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        }
        return HttpReply(200 if ok else 503, "application/json", json.dumps(doc).encode() + b"\n")

    # -- server --------------------------------------------------------------------------
    def routes(self) -> dict[str, Callable[[], Awaitable[HttpReply]]]:
        async def metrics() -> HttpReply:
            return HttpReply(200, CONTENT_TYPE_LATEST, await self.metrics_text())

        async def live() -> HttpReply:
            return await self.health("live")

        async def ready() -> HttpReply:
            return await self.health("ready")

        return {"/metrics": metrics, "/health/live": live, "/health/ready": ready}

    @property
    def address(self) -> Address | None:
        return None if self._server is None else self._server.address

    async def start(self, addr: Address) -> Address:
        """Serve the endpoints on ``addr`` (OSError if it cannot be bound)."""
        server = ObsHttpServer(self.routes())
        actual = await server.start(addr)
        self._server = server
        return actual

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()


_PROCESS = Observability()


def process_observability() -> Observability:
    """This process's hub (what the role code attaches its metrics and checks to)."""
    return _PROCESS


@asynccontextmanager
async def observability(
    role: str, listen: Address, common: CommonConfig, hub: Observability | None = None
) -> AsyncIterator[Observability]:
    """Serve /metrics and /health/* for ``role`` while the block runs.

    A port that cannot be bound is logged as an error and the role runs on without the
    endpoints (an unscrapable target is visible in Prometheus; a storage node refusing to
    start over its metrics port would be worse)."""
    hub = hub or _PROCESS
    hub.role = role
    addr = http_address(listen, common.http_listen)
    if addr is not None:
        try:
            actual = await hub.start(addr)
            log.info("metrics and health serving", role=role, http=f"http://{actual}")
        except OSError as exc:
            log.error("cannot serve metrics and health", http=str(addr), error=str(exc))
    try:
        yield hub
    finally:
        await hub.stop()
