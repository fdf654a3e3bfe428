"""The S3 gateway ASGI application and ``serve`` (the ``blobstore gateway`` process).

Request flow (one place, no middleware): new request id (also the log trace id) ->
authenticate (SigV4 / presigned / SigV2; anonymous refused; OPTIONS preflight excepted) ->
``parse_request`` -> ``gateway.handlers.dispatch`` (one ``match``) -> response. Every
response carries ``x-amz-request-id`` and ``x-amz-id-2``; every error becomes HTTP only
through ``gateway.errors.to_response`` (domain ``Unavailable`` / deadlines -> 503).
Bodies stream in (``gateway.context.body_stream``) and out (``gateway.context.BodyStreamResponse``);
``Expect: 100-continue`` is answered by uvicorn when a handler first reads the body.

``serve(config)`` wires the production services (``RemoteCatalog`` + ``ClusterObjectStore``
over one ``RpcClient``), bootstraps the root user from ``BLOBSTORE_ROOT_ACCESS_KEY`` /
``BLOBSTORE_ROOT_SECRET_KEY`` and runs uvicorn (httptools / uvloop when importable) in this
process; with ``workers > 1`` it binds the socket once and runs that many worker processes
on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from typing import Any

import uvicorn
from starlette.responses import Response

from blobstore.client.catalog import CatalogClient, RemoteCatalog
from blobstore.config import GatewayConfig, load_secret
from blobstore.errors import AccessDenied
from blobstore.log import configure_logging, get_logger, new_trace_id, trace_context
from blobstore.obs.gateway import OPERATION_KEY, ObservedGateway, prepare_multiprocess
from blobstore.rawbuf import tune_allocator
from blobstore.rpc import RpcClient, StreamBudget
from blobstore.rpc.tls import internal_contexts
from blobstore.supervisor import die_with_parent
from gateway import operations as op
from gateway.auth import Authenticator
from gateway.context import RequestContext, Services, make_response
from gateway.errors import resolve, to_response
from gateway.handlers import dispatch
from gateway.handlers.bucket import cors_headers
from gateway.router import Headers, RouterLimits, parse_request
from gateway.sigv4 import RequestParts
from gateway.storage import ClusterObjectStore, ObjectStore
from metadata.api import GetAccessKeyQuery
from metadata.fsm.commands import PutAccessKey, PutUser

__all__ = ["GatewayApp", "create_app", "ensure_root_user", "serve", "server_options"]

log = get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ROOT_USER = "root"


class GatewayApp:
    """The ASGI callable."""

    def __init__(
        self,
        services: Services,
        authenticator: Authenticator,
        *,
        domain: str | None = None,
        host_id: str | None = None,
    ) -> None:
        self.services = services
        self.authenticator = authenticator
        self.domain = domain or None
        self.host_id = host_id or new_trace_id()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = new_trace_id()
        with trace_context(request_id):
            started = time.monotonic()
            response = await self._handle(scope, receive, request_id)
            try:
                await response(scope, receive, send)
            except Exception as exc:  # mid-stream failure: the status line is already sent
                log.warning("response aborted", error=type(exc).__name__, detail=str(exc)[:200])
            log.debug(
                "request",
                method=scope.get("method", ""),
                path=scope.get("path", ""),
                status=response.status_code,
                ms=round((time.monotonic() - started) * 1000, 1),
            )

    def _virtual_host_bucket(self, host: str) -> str | None:
        if not self.domain:
            return None
        name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
        suffix = "." + self.domain.lower().strip(".")
        return name[: -len(suffix)] if name.endswith(suffix) and name != suffix[1:] else None

    async def _handle(self, scope: Scope, receive: Receive, request_id: str) -> Response:
        method = str(scope["method"]).upper()
        raw_path: bytes = scope.get("raw_path") or str(scope["path"]).encode("utf-8")
        query: bytes = scope.get("query_string", b"")
        raw_headers = scope.get("headers", [])
        headers = Headers.from_raw(raw_headers)
        host = headers.get("host") or ""
        ctx = RequestContext(
            request_id=request_id,
            method=method,
            raw_path=raw_path,
            headers=headers,
            parts=RequestParts.build(method, raw_path, query, raw_headers),
            receive=receive,
            host=host,
            scheme=str(scope.get("scheme", "http")),
        )
        sv = self.services
        operation: op.S3Operation | None = None
        try:
            if method != "OPTIONS":
                ctx.auth, ctx.principal = await self.authenticator.authenticate(
                    ctx.parts, sv.now(), virtual_host_bucket=self._virtual_host_bucket(host)
                )
            operation = parse_request(
                method, raw_path, query, headers, host, self.domain, limits=sv.limits
            )
            scope[OPERATION_KEY] = type(operation).__name__  # metrics label
            if ctx.principal is None and method != "OPTIONS":
                raise AccessDenied("Anonymous access is not allowed")
            response = await dispatch(sv, ctx, operation)
            origin = headers.get("origin")
            if origin and method != "OPTIONS" and isinstance(operation, op.BucketOperation):
                cors = await cors_headers(sv, operation.bucket, origin, method)
                response.raw_headers.extend(
                    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in cors
                )
        except Exception as exc:
            response = self._error(exc, scope, request_id, method)
            origin = headers.get("origin")
            if origin and method != "OPTIONS":
                await self._error_cors(
                    response, operation, origin, method, raw_path, query, headers
                )
        else:
            response.raw_headers.append((b"x-amz-request-id", request_id.encode("ascii")))
            response.raw_headers.append((b"x-amz-id-2", self.host_id.encode("ascii")))
        if ctx.has_body and not ctx.body_done:
            # the body was not read (early error, or a handler that needs none): the
            # connection cannot carry another request after it
            response.raw_headers.append((b"connection", b"close"))
        return response

    async def _error_cors(
        self,
        response: Response,
        operation: op.S3Operation | None,
        origin: str,
        method: str,
        raw_path: bytes,
        query: bytes,
        headers: Headers,
    ) -> None:
        """CORS headers on an error response when a rule of the bucket matches (as S3
        does, so a browser can read the error); best effort, never a second error."""
        if operation is None:  # refused before parsing (e.g. authentication)
            try:
                operation = parse_request(
                    method,
                    raw_path,
                    query,
                    headers,
                    headers.get("host") or "",
                    self.domain,
                    limits=self.services.limits,
                )
            except Exception:
                return
        if not isinstance(operation, op.BucketOperation):
            return
        try:
            cors = await cors_headers(self.services, operation.bucket, origin, method)
        except Exception:
            return
        response.raw_headers.extend(
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in cors
        )

    def _error(self, exc: Exception, scope: Scope, request_id: str, method: str) -> Response:
        s3 = resolve(exc)
        if s3.status >= 500:
            log.error(
                "request failed",
                code=s3.code,
                error=type(exc).__name__,
                detail=str(exc)[:300],
                method=method,
                path=str(scope.get("path", "")),
            )
            if s3.code == "InternalError":
                log.exception("unexpected error", error=type(exc).__name__)
        else:
            log.debug("request refused", code=s3.code, method=method, detail=str(exc)[:200])
        status, headers, body = to_response(
            exc, str(scope.get("path", "/")), request_id, self.host_id, is_head=method == "HEAD"
        )
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
        rest = [(k, v) for k, v in headers if k.lower() != "content-type"]
        return make_response(status, rest, body, content_type=content_type)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(
    catalog: CatalogClient,
    store: ObjectStore,
    *,
    region: str = "us-east-1",
    domain: str | None = None,
    max_object_bytes: int = 5 * 1024**4,
    max_part_bytes: int = 5 * 1024**3,
    auth_ttl_s: float = 5.0,
    host_id: str | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> GatewayApp:
    """Build the gateway ASGI app over a catalog client and an object store."""
    limits = RouterLimits(max_object_bytes=max_object_bytes, max_part_bytes=max_part_bytes)
    services = Services(catalog, store, region=region, limits=limits, wall_clock=wall_clock)
    return GatewayApp(
        services,
        Authenticator(catalog, ttl_s=auth_ttl_s),
        domain=domain,
        host_id=host_id,
    )


async def ensure_root_user(
    catalog: CatalogClient, env: Mapping[str, str] | None = None, *, timeout_s: float = 60.0
) -> bool:
    """Create/refresh admin user ``root`` with the env's key pair (idempotent).

    Returns False when ``BLOBSTORE_ROOT_ACCESS_KEY`` / ``BLOBSTORE_ROOT_SECRET_KEY`` are not
    both set. Retries while the catalog is unavailable, up to ``timeout_s``.
    """
    env = os.environ if env is None else env
    access_key = env.get("BLOBSTORE_ROOT_ACCESS_KEY", "")
    secret = env.get("BLOBSTORE_ROOT_SECRET_KEY", "")
    if not access_key or not secret:
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            try:
                found = await catalog.query(GetAccessKeyQuery(access_key))
            except AccessDenied:
                found = None
            if (
                isinstance(found, tuple)
                and found[0].secret == secret
                and found[0].user_name == ROOT_USER
                and found[1].is_admin
            ):
                return True
            await catalog.execute(PutUser(ROOT_USER, is_admin=True))
            await catalog.execute(PutAccessKey(access_key, secret, ROOT_USER))
            log.info("root user ensured", access_key=access_key)
            return True
        except Exception as exc:
            if loop.time() >= deadline or not getattr(exc, "retryable", False):
                raise
            log.warning("catalog not ready for root bootstrap", error=type(exc).__name__)
            await asyncio.sleep(0.5)


def server_options() -> dict[str, str]:
    """uvicorn ``http`` / ``loop`` implementations: the fast ones when importable."""
    return {
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
    }


def _uvicorn_config(config: GatewayConfig, app: GatewayApp) -> uvicorn.Config:
    tls: dict[str, Any] = {}
    if config.https_pair is not None:
        cert, key = config.https_pair
        tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    return uvicorn.Config(
        ObservedGateway(app),  # metrics + per-request access line (blobstore.obs.gateway)
        host=config.listen.host,
        port=config.listen.port,
        http=server_options()["http"],
        lifespan="off",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # client addresses are not used; skip the per-request middleware
        log_config=None,
        timeout_keep_alive=30,
        **tls,
    )


class _SignalOwner:
    """SIGTERM/SIGINT of a process whose one worker serves on its own loop (``serve``):
    before uvicorn serves they cancel the start-up; while it serves they ask it to finish
    the requests in flight and stop (a second SIGINT: at once), as uvicorn itself does in
    a worker process."""

    def __init__(self) -> None:
        self.task: asyncio.Future[None] | None = None
        self.server: uvicorn.Server | None = None
        self.cancelled_start = False

    def on_signal(self, sig: int) -> None:
        server = self.server
        if server is None:
            if self.task is not None and not self.task.done():
                self.cancelled_start = True
                self.task.cancel()
        elif sig == signal.SIGINT and server.should_exit:
            server.force_exit = True
        else:
            server.should_exit = True


class _OwnedServer(uvicorn.Server):
    """uvicorn in a process whose signals ``_SignalOwner`` handles (uvicorn would take them
    over while serving, then raise them again once stopped)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_one(
    config: GatewayConfig, sockets: list[socket.socket] | None, owner: _SignalOwner | None = None
) -> None:
    common = config.common
    _server_tls, client_tls = internal_contexts(common.tls_cert, common.tls_key, common.tls_ca)
    # fail_fast: a dead metadata node or chunkserver fails its call at once, so the catalog
    # client tries the next node and reads go to parity instead of waiting out deadlines.
    # The budget bounds what concurrent GETs buffer: 16 slow 256 MiB downloads held ~40
    # MiB each with fixed 8 MiB windows (worker peak RSS 729 MiB).
    transport = RpcClient(
        load_secret(common),
        ssl_context=client_tls,
        fail_fast=True,
        stream_budget=StreamBudget(config.read_buffer_bytes),
    )
    catalog = RemoteCatalog(list(config.meta), transport)
    store = ClusterObjectStore(catalog, transport)
    try:
        await ensure_root_user(catalog)
        app = create_app(
            catalog,
            store,
            region=config.region,
            domain=config.domain or None,
            max_object_bytes=config.max_object_bytes,
        )
        from gateway.console.mount import mount_console  # web console (imports this module)

        app = mount_console(app, secret=load_secret(common), meta=config.meta, transport=transport)
        server = (uvicorn.Server if owner is None else _OwnedServer)(_uvicorn_config(config, app))
        if owner is not None:
            owner.server = server
        log.info(
            "gateway serving",
            listen=str(config.listen),
            http=server_options()["http"],
            loop=type(asyncio.get_running_loop()).__module__,
        )
        await server.serve(sockets=sockets)
    finally:
        await transport.close()


def _worker_main(config: GatewayConfig, sock: socket.socket, parent_pid: int) -> None:
    die_with_parent(signal.SIGTERM, parent_pid)  # no orphan worker after a kill -9 of serve()
    tune_allocator()  # a spawned interpreter: not through blobstore.cli.main
    configure_logging(config.common.log_format, config.common.log_level)
    runner_kwargs: dict[str, Any] = {}
    if server_options()["loop"] == "uvloop":
        runner_kwargs["loop_factory"] = importlib.import_module("uvloop").new_event_loop
    with asyncio.Runner(**runner_kwargs) as runner:
        runner.run(_serve_one(config, [sock]))


async def serve(config: GatewayConfig) -> None:
    """Run the S3 gateway until SIGTERM/SIGINT (``blobstore gateway``).

    One worker (the default) serves in this process, on the caller's event loop (the
    role runner's: uvloop when installed). ``workers > 1`` binds the socket once and runs
    that many worker processes on it, whose metrics this process's /metrics sums. One
    worker used to be a child process too: its parent and multiprocessing's resource
    tracker held ~64 MiB of the gateway's RSS, and every metric update paid the
    multiprocess mode's mmap write and pid check."""
    if config.workers <= 1:
        loop = asyncio.get_running_loop()
        owner = _SignalOwner()
        owner.task = task = asyncio.ensure_future(_serve_one(config, None, owner))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, owner.on_signal, sig)
        try:
            await task
        except asyncio.CancelledError:
            if not owner.cancelled_start:  # this call was cancelled, not stopped by a signal
                raise
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return
    sock = socket.socket(socket.AF_INET6 if ":" in config.listen.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.listen.host, config.listen.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    prepare_multiprocess(config.common.data)  # workers' metrics summed by /metrics
    spawn = multiprocessing.get_context("spawn")
    procs = [
        spawn.Process(target=_worker_main, args=(config, sock, os.getpid()), name=f"gateway-{i}")
        for i in range(max(1, config.workers))
    ]
    for p in procs:
        p.start()
    log.info("gateway workers started", workers=len(procs), listen=str(config.listen))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set() and any(p.is_alive() for p in procs):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            await asyncio.to_thread(p.join, 10)
        sock.close()
