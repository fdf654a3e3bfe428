"""Parsing of SigV4 credentials: the Authorization header and presigned query parameters.

Owns: ``ParsedAuth`` (credential scope, signed headers, signature, request time and, for
a presigned URL, its lifetime), ``parse_header_auth`` (``Authorization: AWS4-HMAC-SHA256
Credential=..., SignedHeaders=..., Signature=...`` plus ``x-amz-date`` or ``Date``),
``parse_presigned`` (``X-Amz-Algorithm`` ... ``X-Amz-Expires``) and ``query_params`` (the
decoded query, first occurrence wins).

Invariants: the service must be ``s3`` (any region is accepted), SignedHeaders must
include ``host``, the scope date must equal the date of X-Amz-Date, and a presigned URL
lives at most ``MAX_PRESIGN_EXPIRES_S`` (7 days). Nothing is checked against a secret or
the clock here.

Pure: imports only the stdlib, ``blobstore.errors`` and sibling ``gateway.sigv4`` modules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_to_bytes

from blobstore.errors import AccessDenied
from gateway.sigv4.canonical import (
    ALGORITHM,
    RequestParts,
    format_amz_date,
    parse_amz_date,
    query_pairs,
)
from gateway.sigv4.errors import (
    AuthError,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
)
from gateway.sigv4.keys import CredentialScope

__all__ = [
    "MAX_PRESIGN_EXPIRES_S",
    "ParsedAuth",
    "parse_credential",
    "parse_header_auth",
    "parse_presigned",
    "query_params",
    "split_signed_headers",
]

MAX_PRESIGN_EXPIRES_S = 7 * 24 * 3600
_DATE8 = re.compile(r"[0-9]{8}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # an HTTP header name (RFC 9110 token)


@dataclass(frozen=True, slots=True)
class ParsedAuth:
    """SigV4 credentials as parsed from a header or a presigned query (not yet verified)."""

    scope: CredentialScope
    signed_headers: tuple[str, ...]
    signed_headers_text: str
    signature: str
    amz_date: str
    when: datetime
    is_presigned: bool
    expires_s: int | None


def parse_credential(text: str, error: type[AuthError]) -> CredentialScope:
    """``AK/yyyymmdd/region/s3/aws4_request``; malformed parts raise ``error``."""
    parts = text.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        raise error(f"Error parsing the X-Amz-Credential parameter; malformed credential: {text}")
    access_key, date, region, service, terminator = parts
    if not _DATE8.fullmatch(date):
        raise error(f"Invalid credential date '{date}'. Date must be in yyyyMMdd format.")
    if not region:
        raise error("The authorization region is empty.")
    if service != "s3":
        raise error(f"The authorization service '{service}' is wrong; expecting 's3'.")
    if terminator != "aws4_request":
        raise error(f"Incorrect terminal '{terminator}'. This endpoint uses 'aws4_request'.")
    return CredentialScope(access_key, date, region, service)


def split_signed_headers(text: str, error: type[AuthError]) -> tuple[str, ...]:
    """The ``;``-separated SignedHeaders (lower-case tokens, ``host`` required)."""
    names = tuple(n.strip().lower() for n in text.split(";"))
    if not text or not all(_TOKEN.fullmatch(n) for n in names):
        raise error("SignedHeaders is empty or malformed.")
    if "host" not in names:
        raise error("SignedHeaders must include 'host'.")
    return names


def parse_header_auth(value: str, req: RequestParts) -> ParsedAuth:
    """Parse ``Authorization: AWS4-HMAC-SHA256 ...`` and the request's date header."""
    err = AuthorizationHeaderMalformed
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise err(f"The authorization header is malformed; unsupported algorithm '{algorithm}'.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if not sep:
            raise err(f"The authorization header is malformed; bad component '{part.strip()}'.")
        fields[name.strip()] = val.strip()
    missing = [f for f in ("Credential", "SignedHeaders", "Signature") if f not in fields]
    if missing:
        raise err(f"The authorization header is malformed; missing {', '.join(missing)}.")
    scope = parse_credential(fields["Credential"], err)
    signed = split_signed_headers(fields["SignedHeaders"], err)
    amz = req.header("x-amz-date")
    if amz is not None:
        when = parse_amz_date(amz.strip())
    else:
        date_header = req.header("date")
        if date_header is None:
            raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
        try:
            when = parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    if when is None:
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
    amz_date = amz.strip() if amz is not None else format_amz_date(when)
    if amz_date[:8] != scope.date:
        raise err("Invalid credential date. Date is not the same as X-Amz-Date.")
    return ParsedAuth(
        scope, signed, fields["SignedHeaders"], fields["Signature"], amz_date, when, False, None
    )


def query_params(raw_query: str | bytes) -> dict[str, str]:
    """Percent-decoded query parameters; the first occurrence of a name wins."""
    params: dict[str, str] = {}
    for key, value in query_pairs(raw_query):
        params.setdefault(
            unquote_to_bytes(key).decode("utf-8", "replace"),
            unquote_to_bytes(value).decode("utf-8", "replace"),
        )
    return params


def parse_presigned(params: Mapping[str, str]) -> ParsedAuth:
    """Parse the ``X-Amz-*`` parameters of a presigned URL."""
    err = AuthorizationQueryParametersError
    required = (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Expires",
    )
    if any(k not in params for k in required):
        raise err(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            "X-Amz-Expires parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise err('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    scope = parse_credential(params["X-Amz-Credential"], err)
    signed = split_signed_headers(params["X-Amz-SignedHeaders"], err)
    amz_date = params["X-Amz-Date"]
    when = parse_amz_date(amz_date)
    if when is None:
        raise err("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    if amz_date[:8] != scope.date:
        raise err("Invalid credential date. Date is not the same as X-Amz-Date.")
    expires_text = params["X-Amz-Expires"]
    if not expires_text.isdigit():
        raise err("X-Amz-Expires should be a number")
    expires = int(expires_text)
    if expires > MAX_PRESIGN_EXPIRES_S:
        raise err("X-Amz-Expires must be less than a week (in seconds) that is 604800")
    return ParsedAuth(
        scope,
        signed,
        params["X-Amz-SignedHeaders"],
        params["X-Amz-Signature"],
        amz_date,
        when,
        True,
        expires,
    )
