"""TLS contexts for internal links, built from PEM files (mutual TLS with a cluster CA).

Must not import: service packages.
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["build_ssl_context", "internal_contexts"]


def build_ssl_context(
    *, cert: str | Path, key: str | Path, ca: str | Path, server_side: bool
) -> ssl.SSLContext:
    """A TLS 1.2+ context presenting ``cert``/``key`` and requiring peers signed by ``ca``."""
    purpose = ssl.Purpose.CLIENT_AUTH if server_side else ssl.Purpose.SERVER_AUTH
    ctx = ssl.create_default_context(purpose, cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    if not server_side:
        ctx.check_hostname = True
    return ctx


def internal_contexts(
    cert: str | Path | None, key: str | Path | None, ca: str | Path | None
) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """(server, client) contexts for internal links: mutual TLS when cert, key and CA are
    all given, plain TCP (HMAC-authenticated) when none is."""
    if cert is None or key is None or ca is None:
        return None, None
    return (
        build_ssl_context(cert=cert, key=key, ca=ca, server_side=True),
        build_ssl_context(cert=cert, key=key, ca=ca, server_side=False),
    )
