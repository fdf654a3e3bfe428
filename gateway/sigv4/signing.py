"""Client-side SigV4: sign a request's headers or presign a URL.

Owns: ``sign_request`` (adds x-amz-date, x-amz-content-sha256 and Authorization) and
``presign_url`` (the query-string form, only ``host`` signed, UNSIGNED-PAYLOAD). Both are
built on the same canonicalisation the verifier uses (one implementation, two
directions), so a round trip through ``verify`` is exact. Used by the unit-test clients.

Pure: no clock reads (``now`` is passed in). Imports only the stdlib and sibling
``gateway.sigv4`` modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.sigv4.canonical import (
    ALGORITHM,
    RequestParts,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    format_amz_date,
    string_to_sign,
    uri_encode,
)
from gateway.sigv4.keys import CredentialScope, derive_signing_key, hmac_hex
from gateway.sigv4.parsing import MAX_PRESIGN_EXPIRES_S
from gateway.sigv4.payload import UNSIGNED_PAYLOAD

__all__ = ["presign_url", "sign_request"]


def sign_request(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Sequence[tuple[str, str]],
    *,
    access_key: str,
    secret: str,
    region: str,
    now: datetime,
    payload_hash: str = UNSIGNED_PAYLOAD,
    service: str = "s3",
) -> list[tuple[str, str]]:
    """Return ``headers`` plus x-amz-date, x-amz-content-sha256 and Authorization.

    ``raw_path``/``query_string`` are as they will be sent (already percent-encoded, e.g.
    with ``uri_encode(key, keep_slash=True)``). ``headers`` must include ``host``; every
    header given is signed. ``payload_hash`` is a hex sha256 or a mode keyword.
    """
    amz_date = format_amz_date(now)
    out = [
        (k, v)
        for k, v in headers
        if k.lower() not in ("x-amz-date", "authorization", "x-amz-content-sha256")
    ]
    out.append(("x-amz-date", amz_date))
    if service == "s3":
        out.append(("x-amz-content-sha256", payload_hash))
    scope = CredentialScope(access_key, amz_date[:8], region, service)
    req = RequestParts.build(method, raw_path, query_string, out)
    signed = tuple(sorted({name for name, _ in req.headers}))
    signed_text = ";".join(signed)
    creq = canonical_request(
        req.method,
        canonical_uri(raw_path),
        canonical_query(query_string),
        canonical_headers(req.headers, signed),
        signed_text,
        payload_hash,
    )
    key = derive_signing_key(secret, scope.date, region, service)
    signature = hmac_hex(key, string_to_sign(amz_date, scope.scope, creq))
    out.append(
        (
            "Authorization",
            f"{ALGORITHM} Credential={scope.credential}, SignedHeaders={signed_text}, "
            f"Signature={signature}",
        )
    )
    return out


def presign_url(
    method: str,
    raw_path: str,
    query_string: str,
    host: str,
    *,
    access_key: str,
    secret: str,
    region: str,
    now: datetime,
    expires_s: int = 3600,
) -> str:
    """Return the full query string (operation params, auth params, X-Amz-Signature last).

    Only ``host`` is signed; the payload is UNSIGNED-PAYLOAD.
    """
    if not 1 <= expires_s <= MAX_PRESIGN_EXPIRES_S:
        raise ValueError("expires_s must be within 1..604800")
    amz_date = format_amz_date(now)
    scope = CredentialScope(access_key, amz_date[:8], region)
    auth_params = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", scope.credential),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires_s)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    auth_query = "&".join(f"{k}={uri_encode(v, keep_slash=False)}" for k, v in auth_params)
    full_query = f"{query_string}&{auth_query}" if query_string else auth_query
    creq = canonical_request(
        method.upper(),
        canonical_uri(raw_path),
        canonical_query(full_query),
        canonical_headers([("host", host.encode("utf-8"))], ("host",)),
        "host",
        UNSIGNED_PAYLOAD,
    )
    key = derive_signing_key(secret, scope.date, region)
    signature = hmac_hex(key, string_to_sign(amz_date, scope.scope, creq))
    return f"{full_query}&X-Amz-Signature={signature}"
