"""Console login, session checks, CSRF and form parsing (starlette side of ``session``).

``ConsoleAuth.viewer(request)`` turns the session cookie into a ``Viewer`` (the user, its
admin flag, the CSRF token) after re-reading the access key from the catalog (cached for
``ttl_s``), so a deleted key, a changed secret or a demoted user takes effect within
``ttl_s``. ``login`` checks an access key id + secret exactly as the S3 authenticator
would: the key must exist with that secret (constant-time compare) and belong to a user.
Repeated failures from one client address are slowed down (a bounded in-memory map).

State-changing requests pass ``check_mutation``: the session's CSRF token (form field
``csrf`` or header ``X-CSRF-Token``) and, when the browser sends one, an ``Origin``
matching the request's own scheme://host.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request

from blobstore.client.catalog import CatalogClient
from blobstore.errors import AccessDenied
from gateway.auth import Principal
from gateway.console.session import Session, SessionSigner
from metadata.api import GetAccessKeyQuery
from metadata.fsm.records import AccessKeyRecord, UserRecord

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "ConsoleAuth",
    "FormError",
    "Viewer",
    "read_form",
]

COOKIE = "bs_console"
LOGIN_COOKIE = "bs_console_login"
MAX_FORM_BYTES = 64 * 1024


class FormError(Exception):
    """A malformed or oversized form, or a failed CSRF/origin check (-> 400/403)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Viewer:
    """The logged-in user of one request."""

    principal: Principal
    session: Session
    csrf: str

    @property
    def user(self) -> str:
        return self.principal.user

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (at most MAX_FORM_BYTES), first
    value of each field. (Parsed here: starlette's parser needs python-multipart.)"""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise FormError("expected a form (application/x-www-form-urlencoded)", 415)
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_FORM_BYTES:
            raise FormError("form too large", 413)
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as e:
        raise FormError(f"malformed form: {e}") from None
    return {k: v[0] for k, v in fields.items()}


class ConsoleAuth:
    def __init__(
        self,
        catalog: CatalogClient,
        signer: SessionSigner,
        *,
        ttl_s: float = 2.0,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self.signer = signer
        self._ttl = ttl_s
        self._wall = wall_clock
        self._mono = monotonic
        self._cache: dict[str, tuple[float, tuple[AccessKeyRecord, UserRecord] | None]] = {}
        self._failures: dict[str, tuple[int, float]] = {}

    def now(self) -> float:
        return self._wall()

    async def _lookup(self, access_key_id: str) -> tuple[AccessKeyRecord, UserRecord] | None:
        hit = self._cache.get(access_key_id)
        now = self._mono()
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            got = await self._catalog.query(GetAccessKeyQuery(access_key_id))
        except AccessDenied:
            found = None
        else:
            assert isinstance(got, tuple)
            found = (got[0], got[1])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[access_key_id] = (now + self._ttl, found)
        return found

    def forget(self, access_key_id: str | None = None) -> None:
        """Drop cached keys (after the console itself changed users or keys)."""
        if access_key_id is None:
            self._cache.clear()
        else:
            self._cache.pop(access_key_id, None)

    async def viewer(self, request: Request) -> Viewer | None:
        """The logged-in user, or None (no/invalid/expired cookie, key gone or changed)."""
        session = self.signer.verify(request.cookies.get(COOKIE), self._wall())
        if session is None:
            return None
        found = await self._lookup(session.access_key_id)
        if found is None:
            return None
        key, user = found
        if not hmac.compare_digest(self.signer.secret_tag(key.secret), session.secret_tag):
            return None
        principal = Principal(user.name, user.is_admin, key.access_key_id)
        return Viewer(principal, session, self.signer.csrf_token(session))

    async def login(self, client: str, access_key_id: str, secret: str) -> str | None:
        """The session cookie value for valid credentials, else None (after a delay that
        grows with the client's recent failures)."""
        count, last = self._failures.get(client, (0, 0.0))
        now = self._mono()
        if now - last > 300:
            count = 0
        if count:
            await asyncio.sleep(min(2.0, 0.1 * 2 ** min(count, 5)))
        found = await self._lookup(access_key_id) if access_key_id and secret else None
        ok = found is not None and hmac.compare_digest(
            found[0].secret.encode("utf-8"), secret.encode("utf-8")
        )
        if not ok or found is None or "|" in access_key_id:
            if len(self._failures) > 10_000:
                self._failures.clear()
            self._failures[client] = (count + 1, now)
            return None
        self._failures.pop(client, None)
        cookie, _ = self.signer.issue(access_key_id, found[0].secret, self._wall())
        return cookie

    def check_mutation(self, request: Request, viewer: Viewer, token: str | None) -> None:
        """CSRF token + same-origin check for a state-changing request."""
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            own = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if origin.rstrip("/") != own:
                raise FormError("cross-origin request refused", 403)
        elif origin == "null":
            raise FormError("cross-origin request refused", 403)
        if not self.signer.check_csrf(viewer.session, token):
            raise FormError("missing or wrong CSRF token (reload the page)", 403)
