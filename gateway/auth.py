"""Request authentication and bucket ownership checks for the S3 gateway.

``Authenticator.authenticate`` finds the access key a request names (Authorization
header, presigned SigV4 query, or SigV2), looks its secret and user up in the catalog
(``GetAccessKeyQuery``, cached for ``ttl_s``; unknown keys for ``negative_ttl_s``), then runs
``gateway.sigv4.verify``. Anonymous requests are refused (``verify`` raises AccessDenied),
except that an unsigned ``POST`` with a ``multipart/form-data`` body -- S3's POST Object
(browser form upload, authenticated by a signed policy inside the form) -- is answered
501 NotImplemented, so a client learns the operation is unsupported rather than that its
credentials are wrong.
``authorize_bucket``: a user reaches only the buckets it owns, unless it is an admin.

Catalog failures (quorum loss, timeouts) propagate unchanged (503 at the edge); only an
unknown key becomes ``InvalidAccessKeyId``.

Must not import starlette.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from blobstore.client.catalog import CatalogClient
from blobstore.errors import AccessDenied
from gateway.errors import S3Error
from gateway.router import parse_query
from gateway.sigv4 import AuthContext, RequestParts, SigningKeyCache, verify
from metadata.api import GetAccessKeyQuery
from metadata.fsm.records import AccessKeyRecord, BucketRecord, UserRecord

__all__ = [
    "Authenticator",
    "Principal",
    "access_key_of",
    "authorize_bucket",
    "refuse_form_post",
]

_V4_CREDENTIAL = re.compile(r"Credential\s*=\s*([^/,\s]+)/")
_V2_HEADER = re.compile(r"AWS\s+([^:\s]+):")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated user behind a request."""

    user: str
    is_admin: bool
    access_key: str


def access_key_of(req: RequestParts) -> str | None:
    """The access key id a request claims (not yet verified), or None."""
    authorization = req.header("authorization")
    if authorization is not None:
        m = _V4_CREDENTIAL.search(authorization) or _V2_HEADER.match(authorization.strip())
        return m.group(1) if m else None
    if not req.query_string:
        return None
    try:
        params = parse_query(req.query_string)
    except Exception:
        return None
    credential = params.get("X-Amz-Credential")
    if credential:
        return credential.split("/", 1)[0] or None
    return params.get("AWSAccessKeyId") or None


def refuse_form_post(req: RequestParts) -> None:
    """501 NotImplemented for an unsigned multipart/form-data POST (S3 POST Object)."""
    if req.method.upper() != "POST" or access_key_of(req) is not None:
        return
    content_type = (req.header("content-type") or "").strip().lower()
    if content_type.startswith("multipart/form-data"):
        raise S3Error(
            "NotImplemented",
            "POST Object (browser form upload with a POST policy) is not implemented; "
            "use PutObject or a presigned PUT URL.",
            501,
        )


@dataclass(slots=True)
class _Entry:
    found: tuple[AccessKeyRecord, UserRecord] | None
    expires_at: float


class Authenticator:
    """SigV4/SigV2 verification with a short-lived access-key cache."""

    def __init__(
        self,
        catalog: CatalogClient,
        *,
        ttl_s: float = 5.0,
        negative_ttl_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._catalog = catalog
        self._ttl = ttl_s
        self._negative_ttl = negative_ttl_s
        self._monotonic = monotonic
        self._max = max_entries
        self._cache: dict[str, _Entry] = {}
        self._keys = SigningKeyCache()

    async def _lookup(self, access_key: str) -> tuple[AccessKeyRecord, UserRecord] | None:
        now = self._monotonic()
        entry = self._cache.get(access_key)
        if entry is not None and entry.expires_at > now:
            return entry.found
        try:
            result = await self._catalog.query(GetAccessKeyQuery(access_key))
        except AccessDenied:
            found = None
        else:
            assert isinstance(result, tuple)
            found = (result[0], result[1])
        if len(self._cache) >= self._max:
            self._cache.clear()
        ttl = self._ttl if found is not None else self._negative_ttl
        self._cache[access_key] = _Entry(found, now + ttl)
        return found

    async def authenticate(
        self, req: RequestParts, now: datetime, *, virtual_host_bucket: str | None = None
    ) -> tuple[AuthContext, Principal]:
        """Verify the request's signature; raises AuthError / AccessDenied subclasses."""
        refuse_form_post(req)
        claimed = access_key_of(req)
        found = await self._lookup(claimed) if claimed else None

        def lookup_secret(access_key: str) -> str | None:
            if found is None or access_key != found[0].access_key_id:
                return None
            return found[0].secret

        ctx = verify(
            req,
            lookup_secret,
            now,
            key_cache=self._keys,
            virtual_host_bucket=virtual_host_bucket,
        )
        assert found is not None  # verify succeeded, so the secret was known
        key, user = found
        return ctx, Principal(user.name, user.is_admin, key.access_key_id)


def authorize_bucket(principal: Principal, bucket: BucketRecord) -> None:
    """Raise AccessDenied unless ``principal`` owns ``bucket`` or is an admin."""
    if principal.is_admin or bucket.owner == principal.user:
        return
    raise AccessDenied("Access Denied", bucket=bucket.name)
