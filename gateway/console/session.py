"""Console sessions: signed, stateless session cookies and CSRF tokens.

Cookie value (ASCII)::

    base64url(payload) + "." + base64url(HMAC-SHA256(session_key, payload))
    payload = "v1|" + access_key_id + "|" + issued_s + "|" + expires_s + "|" + nonce
              + "|" + secret_tag

``session_key`` = HMAC-SHA256(cluster secret, b"blobstore-console-session-v1"), so every
gateway of a cluster (and every worker process) accepts the cookies of the others and a
new cluster secret invalidates all sessions. ``secret_tag`` is the first 8 bytes (hex) of
HMAC(session_key, "key|" + access key secret): changing or deleting the key ends the
session. The user and its admin flag are NOT in the cookie; the console looks the key up in
the catalog on every request.

CSRF token of a session = base64url(HMAC(session_key, "csrf|" + nonce)); state-changing
requests must carry it (form field ``csrf`` or header ``X-CSRF-Token``). The login form
uses a double-submit token (cookie + field) since no session exists yet.

Pure: stdlib only (no starlette, no clock: callers pass ``now_s``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = [
    "SESSION_TTL_S",
    "Session",
    "SessionSigner",
    "derive_session_key",
]

SESSION_TTL_S = 12 * 3600
_VERSION = "v1"


def derive_session_key(cluster_secret: bytes) -> bytes:
    """The console's cookie-signing key, derived from the cluster secret."""
    return hmac.new(cluster_secret, b"blobstore-console-session-v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    """A verified session cookie (still to be checked against the catalog)."""

    access_key_id: str
    issued_s: int
    expires_s: int
    nonce: str
    secret_tag: str


class SessionSigner:
    """Issues and verifies session cookies and CSRF tokens with one key."""

    def __init__(self, key: bytes, *, ttl_s: int = SESSION_TTL_S) -> None:
        if len(key) < 16:
            raise ValueError("session key too short")
        self._key = key
        self.ttl_s = ttl_s

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def secret_tag(self, secret: str) -> str:
        """Binds a session to the access key's current secret."""
        return self._mac(b"key|" + secret.encode("utf-8"))[:8].hex()

    def issue(self, access_key_id: str, secret: str, now_s: float) -> tuple[str, Session]:
        """(cookie value, session) for a freshly verified login."""
        if "|" in access_key_id:
            raise ValueError("access key id must not contain '|'")
        issued = int(now_s)
        session = Session(
            access_key_id, issued, issued + self.ttl_s, secrets.token_hex(16),
            self.secret_tag(secret),
        )  # fmt: skip
        payload = "|".join(
            (_VERSION, access_key_id, str(issued), str(session.expires_s), session.nonce,
             session.secret_tag)
        ).encode("utf-8")  # fmt: skip
        return f"{_b64(payload)}.{_b64(self._mac(payload))}", session

    def verify(self, cookie: str | None, now_s: float) -> Session | None:
        """The session a cookie carries, or None (bad signature, malformed, expired)."""
        if not cookie or len(cookie) > 1024 or cookie.count(".") != 1:
            return None
        body, mac = cookie.split(".", 1)
        try:
            payload = _unb64(body)
            given = _unb64(mac)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(given, self._mac(payload)):
            return None
        try:
            version, key_id, issued, expires, nonce, tag = payload.decode("utf-8").split("|")
            session = Session(key_id, int(issued), int(expires), nonce, tag)
        except ValueError:
            return None
        if version != _VERSION or not session.issued_s <= now_s < session.expires_s:
            return None
        return session

    def csrf_token(self, session: Session) -> str:
        """The CSRF token that state-changing requests of ``session`` must carry."""
        return _b64(self._mac(b"csrf|" + session.nonce.encode("ascii")))

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(
            (token or "").encode("ascii", "replace"), self.csrf_token(session).encode("ascii")
        )

    def login_token(self) -> tuple[str, str]:
        """(cookie value, form value) of a pre-login double-submit token."""
        raw = secrets.token_hex(16)
        return raw, _b64(self._mac(b"login|" + raw.encode("ascii")))

    def check_login_token(self, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field or len(cookie) > 64:
            return False
        expected = _b64(self._mac(b"login|" + cookie.encode("ascii", "replace")))
        return hmac.compare_digest(field.encode("ascii", "replace"), expected.encode("ascii"))
