"""The SigV4 canonical request and string to sign, exactly as S3 builds them.

Owns: ``RequestParts`` (the signed parts of a request as received on the wire), the
canonical URI / query / headers, the canonical request bytes, the string to sign and the
``x-amz-date`` format. Used in both directions: verification and client-side signing.

Canonical request (bytes, ``\\n``-separated)::

    METHOD
    canonical URI      each path segment URI-encoded once (RFC 3986 unreserved kept, '/'
                       kept); S3 does NOT normalise ('//', '../' stay) and does not
                       double-encode: the raw path is percent-decoded and re-encoded.
    canonical query    pairs decoded then URI-encoded ('/' encoded too), sorted by key then
                       value; 'a' -> 'a='; X-Amz-Signature dropped (presigned)
    canonical headers  'name:value\\n' per signed header, names lower-case and sorted,
                       values trimmed with inner whitespace runs collapsed, repeated
                       headers joined with ','
    signed headers     the SignedHeaders list, ';'-joined
    payload hash       x-amz-content-sha256 (or UNSIGNED-PAYLOAD for presigned)

``raw_canonical_query`` is the fallback form (sorted, not re-encoded) that verification
tries once when the normalised form does not match.

Pure: must not import anything but the stdlib (no starlette, asyncio, sockets or clock).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote_to_bytes

__all__ = [
    "ALGORITHM",
    "HeaderInput",
    "RequestParts",
    "as_bytes",
    "as_str",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "format_amz_date",
    "parse_amz_date",
    "query_pairs",
    "raw_canonical_query",
    "string_to_sign",
    "uri_encode",
]

ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_PLAIN = re.compile(rb"[A-Za-z0-9._~-]*")
_PLAIN_PATH = re.compile(rb"[A-Za-z0-9._~/-]*")
_AMZ_DATE_RE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")

HeaderInput = Sequence[tuple[str | bytes, str | bytes]] | Mapping[str, str]


def as_bytes(value: str | bytes) -> bytes:
    """str values are UTF-8 encoded; bytes pass through."""
    return value if isinstance(value, bytes) else value.encode("utf-8")


def as_str(value: str | bytes) -> str:
    """bytes values are latin-1 decoded (one char per byte); str passes through."""
    return value if isinstance(value, str) else value.decode("latin-1")


@dataclass(frozen=True, slots=True)
class RequestParts:
    """The parts of an HTTP request that SigV4 covers, as received on the wire.

    ``raw_path`` excludes the query; ``query_string`` excludes the '?'. Header values given
    as bytes are used as is; str values are UTF-8 encoded. Names are case-insensitive.
    From ASGI, pass the raw bytes: ``RequestParts.build(scope["method"], scope["raw_path"],
    scope["query_string"], scope["headers"])`` (never latin-1-decoded str values).
    """

    method: str
    raw_path: str | bytes
    query_string: str | bytes
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def build(
        cls,
        method: str,
        raw_path: str | bytes,
        query_string: str | bytes,
        headers: HeaderInput,
    ) -> RequestParts:
        """Normalise headers (list of pairs or mapping) into lower-case name, bytes value."""
        items: Iterable[tuple[str | bytes, str | bytes]] = (
            headers.items() if isinstance(headers, Mapping) else headers
        )
        norm = tuple((as_str(k).lower(), as_bytes(v)) for k, v in items)
        return cls(method.upper(), raw_path, query_string, norm)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), latin-1 decoded, or None."""
        for k, v in self.headers:
            if k == name:
                return v.decode("latin-1")
        return None


def uri_encode(data: str | bytes, *, keep_slash: bool) -> str:
    """AWS UriEncode: every byte except A-Za-z0-9 '-._~' (and '/' if kept) becomes %XX."""
    return quote(as_bytes(data), safe="/~" if keep_slash else "~")


def _reencode(raw: bytes, *, keep_slash: bool) -> str:
    """Percent-decode once, then URI-encode; fast path for already-canonical text."""
    if b"%" not in raw and (_PLAIN_PATH if keep_slash else _PLAIN).fullmatch(raw):
        return raw.decode("ascii")
    return uri_encode(unquote_to_bytes(raw), keep_slash=keep_slash)


def canonical_uri(raw_path: str | bytes) -> str:
    """The S3 canonical URI of a raw path: decoded once, re-encoded once, never normalised."""
    return _reencode(as_bytes(raw_path) or b"/", keep_slash=True)


def query_pairs(raw_query: str | bytes, *, keep_empty: bool = False) -> list[tuple[bytes, bytes]]:
    """Raw (still percent-encoded) ``(key, value)`` pairs of a query, in order."""
    pairs: list[tuple[bytes, bytes]] = []
    raw = as_bytes(raw_query)
    for item in raw.split(b"&") if raw else ():
        if not item and not keep_empty:
            continue
        key, _, value = item.partition(b"=")
        pairs.append((key, value))
    return pairs


def canonical_query(raw_query: str | bytes, *, exclude_signature: bool = False) -> str:
    """The canonical query string of a raw query (decoded, re-encoded, sorted)."""
    out: list[tuple[str, str]] = []
    for key, value in query_pairs(raw_query):
        k = _reencode(key, keep_slash=False)
        if exclude_signature and k == "X-Amz-Signature":
            continue
        out.append((k, _reencode(value, keep_slash=False)))
    out.sort()
    return "&".join(f"{k}={v}" for k, v in out)


def raw_canonical_query(raw_query: str | bytes, *, exclude_signature: bool) -> str:
    """The fallback canonical query: raw pairs sorted, not re-encoded."""
    out = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in query_pairs(raw_query, keep_empty=True)
        if not (exclude_signature and k == b"X-Amz-Signature")
    ]
    out.sort()
    return "&".join(f"{k}={v}" for k, v in out)


def canonical_headers(headers: Sequence[tuple[str, bytes]], signed: Sequence[str]) -> bytes:
    """``name:value\\n`` for each signed header (sorted); repeats joined with ','."""
    wanted = set(signed)
    values: dict[str, list[bytes]] = {}
    for name, value in headers:
        if name in wanted:
            values.setdefault(name, []).append(b" ".join(value.split()))
    return b"".join(
        name.encode("ascii") + b":" + b",".join(values.get(name, [])) + b"\n"
        for name in sorted(wanted)
    )


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers_block: bytes,
    signed_headers: str,
    payload_hash: str,
) -> bytes:
    """Assemble the canonical request bytes."""
    return b"\n".join(
        [
            method.encode("ascii"),
            uri.encode("ascii"),
            query.encode("ascii"),
            headers_block,
            signed_headers.encode("ascii"),
            payload_hash.encode("ascii"),
        ]
    )


def string_to_sign(amz_date: str, scope: str, canonical: bytes) -> str:
    """``AWS4-HMAC-SHA256\\n<amz_date>\\n<scope>\\n<hex sha256(canonical)>``."""
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical).hexdigest()}"


def format_amz_date(when: datetime) -> str:
    """``yyyymmddTHHMMSSZ`` in UTC."""
    return when.astimezone(UTC).strftime(_AMZ_DATE_FORMAT)


def parse_amz_date(text: str) -> datetime | None:
    """``yyyymmddTHHMMSSZ`` as an aware UTC datetime, or None if malformed."""
    m = _AMZ_DATE_RE.fullmatch(text)
    if m is None:
        return None
    try:
        y, mo, d, h, mi, sec = (int(g) for g in m.groups())
        return datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
    except ValueError:
        return None
