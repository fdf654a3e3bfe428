"""Mounting the console into the S3 gateway: requests under ``/_console`` go to it.

``ConsoleGateway`` is a ``GatewayApp`` whose ``__call__`` sends ``/_console`` and
``/_console/...`` to the console's Starlette app and everything else to the S3 path
unchanged. (``_console`` is not a valid S3 bucket name, so no path-style S3 request is
shadowed; a virtual-hosted request -- Host ``<bucket>.<domain>`` -- always goes to S3.)
``with_console(app, secret=..., probe=...)`` builds it from a finished gateway app; the
production wiring (``mount_console``) derives the cookie key from the cluster secret and
probes the cluster over the gateway's own RPC transport.

If jinja2 is not installed the console answers 503 with the reason; the S3 gateway is
unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.responses import PlainTextResponse

from blobstore.log import get_logger
from blobstore.rpc.transport import Transport
from blobstore.types import Address
from gateway.app import GatewayApp, Receive, Scope, Send
from gateway.console.auth import ConsoleAuth
from gateway.console.session import SessionSigner, derive_session_key
from gateway.console.status import ClusterProbe, RemoteProbe

__all__ = ["ConsoleGateway", "is_console_path", "mount_console", "with_console"]

log = get_logger(__name__)

PREFIX = "/_console"


def is_console_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


class _Unavailable:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = PlainTextResponse(f"web console unavailable: {self.reason}", 503)
        await response(scope, receive, send)


class ConsoleGateway(GatewayApp):
    """The S3 gateway plus the web console under ``/_console``."""

    def __init__(self, inner: GatewayApp, console: Any) -> None:
        super().__init__(
            inner.services, inner.authenticator, domain=inner.domain, host_id=inner.host_id
        )
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and is_console_path(str(scope.get("path", "")))
            and self._virtual_host_bucket(_host(scope)) is None  # else: an S3 object key
        ):
            await self.console(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _host(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return bytes(value).decode("latin-1")
    return ""


def with_console(
    app: GatewayApp,
    *,
    secret: bytes,
    probe: ClusterProbe,
    ttl_s: float = 2.0,
    scan_ttl_s: float = 4.0,
) -> ConsoleGateway:
    """``app`` with the console mounted; cookies signed with a key derived from ``secret``.

    ``ttl_s``: how long a looked-up access key is trusted; ``scan_ttl_s``: how long
    redundancy / bucket-usage scans are shared between polls."""
    try:
        from gateway.console.web import build_console  # needs jinja2

        signer = SessionSigner(derive_session_key(secret))
        auth = ConsoleAuth(app.services.catalog, signer, ttl_s=ttl_s,
                           wall_clock=app.services.wall_clock)  # fmt: skip
        console: Any = build_console(app.services, auth, probe, scan_ttl_s=scan_ttl_s)
    except (ImportError, AssertionError) as e:  # starlette asserts jinja2 is installed
        log.warning("web console disabled", reason=str(e) or type(e).__name__)
        console = _Unavailable(f"{type(e).__name__}: {e} (install jinja2)")
    return ConsoleGateway(app, console)


def mount_console(
    app: GatewayApp, *, secret: bytes, meta: Sequence[Address], transport: Transport
) -> ConsoleGateway:
    """Production wiring: probe the metadata nodes ``meta`` and the chunkservers over
    ``transport`` (the gateway's RPC client)."""
    return with_console(app, secret=secret, probe=RemoteProbe(meta, transport))
