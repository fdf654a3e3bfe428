"""AWS Signature Version 4 for S3: verification (server side) and signing (client side).

Owns: parsing of the ``Authorization: AWS4-HMAC-SHA256 ...`` header and of presigned query
parameters, the canonical request exactly as S3 builds it, signing-key derivation (cached),
the payload mode announced by ``x-amz-content-sha256``, the streaming verifier for a
signed (hex sha256) payload, the chunk/trailer string-to-sign used by ``gateway/chunked``,
and the client-side ``sign_request`` / ``presign_url`` built on the same canonicalisation
(one implementation, two directions). Also the S3 auth error types (``AuthError``).

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

If the normalised form does not match, the raw path and the raw (sorted, not re-encoded)
query are tried once more, which accepts clients whose wire encoding differs from the
canonical one only in which characters they escape.

Decisions (documented, tested):
- Any region is accepted; the service must be ``s3``.
- A header-signed request without ``x-amz-content-sha256`` is verified as the generic
  SigV4 would: the payload hash is sha256("") and the body must then be empty
  (``PayloadMode.SHA256``), so GET/HEAD/DELETE from minimal signers work and nothing
  unsigned can slip through. botocore always sends the header.
- The clock skew window is 15 minutes (``RequestTimeTooSkewed``); a presigned URL is valid
  from X-Amz-Date (minus the skew) to X-Amz-Date + X-Amz-Expires (at most 7 days).
- Legacy Signature Version 2 (``Authorization: AWS AK:sig`` and ``?AWSAccessKeyId=&
  Signature=&Expires=``) is verified too: boto3 still presigns with it by default for
  us-east-1. Such a context has ``signature_version == 2``, no scope/signing key, and
  ``PayloadMode.UNSIGNED`` (SigV2 does not cover the body).
- Errors: ``AuthError`` subclasses carry the S3 ``code``, a ``message`` and ``details``
  (capitalised keys become XML fields); AccessDenied and InvalidArgument come from
  ``blobstore.errors``.

Pure: no starlette, asyncio, sockets or clock reads (``now`` is passed in). Imports only the
stdlib and ``blobstore.errors``.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import ClassVar
from urllib.parse import quote, unquote_to_bytes

from blobstore.errors import AccessDenied, InvalidArgument

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "MAX_PRESIGN_EXPIRES_S",
    "MAX_SKEW",
    "STREAMING_SIGNED",
    "STREAMING_SIGNED_TRAILER",
    "STREAMING_UNSIGNED_TRAILER",
    "UNSIGNED_PAYLOAD",
    "AuthContext",
    "AuthError",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "CredentialScope",
    "HeaderInput",
    "IncompleteBody",
    "InvalidAccessKeyId",
    "InvalidDigest",
    "InvalidRequest",
    "MissingSecurityHeader",
    "PayloadHashVerifier",
    "PayloadMode",
    "RequestParts",
    "RequestTimeTooSkewed",
    "SignatureDoesNotMatch",
    "SigningKeyCache",
    "XAmzContentSHA256Mismatch",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "chunk_signature",
    "derive_signing_key",
    "format_amz_date",
    "payload_mode_of",
    "presign_url",
    "sign_request",
    "string_to_sign",
    "trailer_signature",
    "uri_encode",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
MAX_PRESIGN_EXPIRES_S = 7 * 24 * 3600
MAX_SKEW = timedelta(minutes=15)
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SIG_RE = re.compile(r"[0-9a-f]{64}")
_DATE8 = re.compile(r"[0-9]{8}")
_PLAIN = re.compile(rb"[A-Za-z0-9._~-]*")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # an HTTP header name (RFC 9110 token)
_PLAIN_PATH = re.compile(rb"[A-Za-z0-9._~/-]*")
_AMZ_DATE_RE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")


# -- errors -------------------------------------------------------------------------------
class AuthError(Exception):
    """An S3 authentication/request-framing failure; ``code`` is the S3 error code."""

    code: ClassVar[str] = "AccessDenied"

    def __init__(self, message: str = "", **details: str) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details: dict[str, str] = dict(details)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class SignatureDoesNotMatch(AuthError):
    code = "SignatureDoesNotMatch"


class InvalidAccessKeyId(AuthError):
    code = "InvalidAccessKeyId"


class AuthorizationHeaderMalformed(AuthError):
    code = "AuthorizationHeaderMalformed"


class AuthorizationQueryParametersError(AuthError):
    code = "AuthorizationQueryParametersError"


class RequestTimeTooSkewed(AuthError):
    code = "RequestTimeTooSkewed"


class XAmzContentSHA256Mismatch(AuthError):
    code = "XAmzContentSHA256Mismatch"


class MissingSecurityHeader(AuthError):
    code = "MissingSecurityHeader"


class IncompleteBody(AuthError):
    code = "IncompleteBody"


class InvalidDigest(AuthError):
    code = "InvalidDigest"


class InvalidRequest(AuthError):
    code = "InvalidRequest"


# -- values -------------------------------------------------------------------------------
class PayloadMode(enum.Enum):
    """How the body is protected, from ``x-amz-content-sha256`` (never Content-Encoding)."""

    SHA256 = "sha256"  # hex digest announced: verify the body against it
    UNSIGNED = UNSIGNED_PAYLOAD
    STREAMING_SIGNED = STREAMING_SIGNED
    STREAMING_UNSIGNED_TRAILER = STREAMING_UNSIGNED_TRAILER
    STREAMING_SIGNED_TRAILER = STREAMING_SIGNED_TRAILER

    @property
    def is_aws_chunked(self) -> bool:
        """True when the body is aws-chunked framing that must be decoded."""
        return self in _CHUNKED_MODES

    @property
    def has_chunk_signatures(self) -> bool:
        return self in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER)

    @property
    def has_trailer(self) -> bool:
        return self in (
            PayloadMode.STREAMING_UNSIGNED_TRAILER,
            PayloadMode.STREAMING_SIGNED_TRAILER,
        )


_CHUNKED_MODES = frozenset(
    {
        PayloadMode.STREAMING_SIGNED,
        PayloadMode.STREAMING_UNSIGNED_TRAILER,
        PayloadMode.STREAMING_SIGNED_TRAILER,
    }
)

HeaderInput = Sequence[tuple[str | bytes, str | bytes]] | Mapping[str, str]


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _as_str(value: str | bytes) -> str:
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
        norm = tuple((_as_str(k).lower(), _as_bytes(v)) for k, v in items)
        return cls(method.upper(), raw_path, query_string, norm)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), latin-1 decoded, or None."""
        for k, v in self.headers:
            if k == name:
                return v.decode("latin-1")
        return None


@dataclass(frozen=True, slots=True)
class CredentialScope:
    """``AK/yyyymmdd/region/service/aws4_request`` from a credential."""

    access_key: str
    date: str
    region: str
    service: str = "s3"

    @property
    def scope(self) -> str:
        """The scope without the access key, as used in the string to sign."""
        return f"{self.date}/{self.region}/{self.service}/aws4_request"

    @property
    def credential(self) -> str:
        return f"{self.access_key}/{self.scope}"


@dataclass(frozen=True, slots=True)
class AuthContext:
    """A verified request: who signed it and what is needed to check its body."""

    access_key: str
    region: str
    date: str  # yyyymmdd of the scope
    amz_date: str  # yyyymmddTHHMMSSZ used in the string to sign
    scope: str  # yyyymmdd/region/s3/aws4_request
    signing_key: bytes
    seed_signature: str  # the request signature: previous-signature of the first chunk
    payload_mode: PayloadMode
    payload_sha256: str | None  # lower-case hex when payload_mode is SHA256
    is_presigned: bool
    signed_headers: tuple[str, ...]
    signature_version: int = 4  # 2: legacy HMAC-SHA1 (no scope, key or payload hash)

    def payload_verifier(self) -> PayloadHashVerifier | None:
        """A verifier for SHA256 mode (None for other modes)."""
        if self.payload_mode is PayloadMode.SHA256 and self.payload_sha256 is not None:
            return PayloadHashVerifier(self.payload_sha256)
        return None


class PayloadHashVerifier:
    """Streaming check of a body against its announced hex sha256.

    Feed every body byte to ``update`` (hashlib releases the GIL above 2 KiB, so large
    buffers may be passed through ``asyncio.to_thread``), then call ``finish``.
    """

    __slots__ = ("_expected", "_hash", "_size")

    def __init__(self, expected_hex: str) -> None:
        self._expected = expected_hex.lower()
        self._hash = hashlib.sha256()
        self._size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self._size += len(data)

    @property
    def size_bytes(self) -> int:
        return self._size

    def finish(self) -> None:
        """Raise XAmzContentSHA256Mismatch unless the body hashed to the announced value."""
        actual = self._hash.hexdigest()
        if not hmac.compare_digest(actual, self._expected):
            raise XAmzContentSHA256Mismatch(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                ClientComputedContentSHA256=self._expected,
                S3ComputedContentSHA256=actual,
            )


def payload_mode_of(value: str | None, *, is_presigned: bool) -> tuple[PayloadMode, str]:
    """Payload mode and the payload-hash line of the canonical request for a header value.

    Raises InvalidArgument for a value that is neither a known keyword nor a hex sha256.
    """
    if value is None:
        if is_presigned:
            return PayloadMode.UNSIGNED, UNSIGNED_PAYLOAD
        return PayloadMode.SHA256, EMPTY_SHA256
    for mode in PayloadMode:
        if mode is not PayloadMode.SHA256 and value == mode.value:
            return mode, value
    if _HEX64.fullmatch(value):
        return PayloadMode.SHA256, value
    raise InvalidArgument(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or "
        "a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=value,
    )


# -- canonicalisation ---------------------------------------------------------------------
def uri_encode(data: str | bytes, *, keep_slash: bool) -> str:
    """AWS UriEncode: every byte except A-Za-z0-9 '-._~' (and '/' if kept) becomes %XX."""
    return quote(_as_bytes(data), safe="/~" if keep_slash else "~")


def _reencode(raw: bytes, *, keep_slash: bool) -> str:
    """Percent-decode once, then URI-encode; fast path for already-canonical text."""
    if b"%" not in raw and (_PLAIN_PATH if keep_slash else _PLAIN).fullmatch(raw):
        return raw.decode("ascii")
    return uri_encode(unquote_to_bytes(raw), keep_slash=keep_slash)


def canonical_uri(raw_path: str | bytes) -> str:
    """The S3 canonical URI of a raw path: decoded once, re-encoded once, never normalised."""
    return _reencode(_as_bytes(raw_path) or b"/", keep_slash=True)


def _query_pairs(raw_query: str | bytes, *, keep_empty: bool = False) -> list[tuple[bytes, bytes]]:
    pairs: list[tuple[bytes, bytes]] = []
    raw = _as_bytes(raw_query)
    for item in raw.split(b"&") if raw else ():
        if not item and not keep_empty:
            continue
        key, _, value = item.partition(b"=")
        pairs.append((key, value))
    return pairs


def canonical_query(raw_query: str | bytes, *, exclude_signature: bool = False) -> str:
    """The canonical query string of a raw query (decoded, re-encoded, sorted)."""
    out: list[tuple[str, str]] = []
    for key, value in _query_pairs(raw_query):
        k = _reencode(key, keep_slash=False)
        if exclude_signature and k == "X-Amz-Signature":
            continue
        out.append((k, _reencode(value, keep_slash=False)))
    out.sort()
    return "&".join(f"{k}={v}" for k, v in out)


def _raw_canonical_query(raw_query: str | bytes, *, exclude_signature: bool) -> str:
    out = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in _query_pairs(raw_query, keep_empty=True)
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
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical).hexdigest()}"


def derive_signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")."""
    key = hmac.new(b"AWS4" + secret.encode("utf-8"), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _hmac_hex(key: bytes, msg: str) -> str:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).hexdigest()


def chunk_signature(
    signing_key: bytes, amz_date: str, scope: str, previous: str, data_sha256_hex: str
) -> str:
    """Signature of one aws-chunked chunk, given the hex sha256 of its data."""
    sts = f"{ALGORITHM}-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{data_sha256_hex}"
    return _hmac_hex(signing_key, sts)


def trailer_signature(
    signing_key: bytes, amz_date: str, scope: str, previous: str, canonical_trailers: bytes
) -> str:
    """Signature of the trailer section (``name:value\\n`` per trailer, in sent order)."""
    digest = hashlib.sha256(canonical_trailers).hexdigest()
    return _hmac_hex(signing_key, f"{ALGORITHM}-TRAILER\n{amz_date}\n{scope}\n{previous}\n{digest}")


def format_amz_date(when: datetime) -> str:
    """``yyyymmddTHHMMSSZ`` in UTC."""
    return when.astimezone(UTC).strftime(_AMZ_DATE_FORMAT)


def _parse_amz_date(text: str) -> datetime | None:
    m = _AMZ_DATE_RE.fullmatch(text)
    if m is None:
        return None
    try:
        y, mo, d, h, mi, sec = (int(g) for g in m.groups())
        return datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
    except ValueError:
        return None


class SigningKeyCache:
    """Bounded LRU of derived signing keys per (access key, date, region, service).

    The secret is stored with the key so a rotated secret is never served from the cache.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str, str, str], tuple[str, bytes]] = OrderedDict()

    def get(self, access_key: str, secret: str, date: str, region: str, service: str) -> bytes:
        slot = (access_key, date, region, service)
        hit = self._entries.get(slot)
        if hit is not None and hit[0] == secret:
            self._entries.move_to_end(slot)
            return hit[1]
        key = derive_signing_key(secret, date, region, service)
        self._entries[slot] = (secret, key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return key

    def __len__(self) -> int:
        return len(self._entries)


_DEFAULT_CACHE = SigningKeyCache()


# -- parsing ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Parsed:
    scope: CredentialScope
    signed_headers: tuple[str, ...]
    signed_headers_text: str
    signature: str
    amz_date: str
    when: datetime
    is_presigned: bool
    expires_s: int | None


def _parse_credential(text: str, error: type[AuthError]) -> CredentialScope:
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


def _split_signed_headers(text: str, error: type[AuthError]) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in text.split(";"))
    if not text or not all(_TOKEN.fullmatch(n) for n in names):
        raise error("SignedHeaders is empty or malformed.")
    if "host" not in names:
        raise error("SignedHeaders must include 'host'.")
    return names


def _parse_header_auth(value: str, req: RequestParts) -> _Parsed:
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
    scope = _parse_credential(fields["Credential"], err)
    signed = _split_signed_headers(fields["SignedHeaders"], err)
    amz = req.header("x-amz-date")
    if amz is not None:
        when = _parse_amz_date(amz.strip())
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
    return _Parsed(
        scope, signed, fields["SignedHeaders"], fields["Signature"], amz_date, when, False, None
    )


def _query_params(raw_query: str | bytes) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in _query_pairs(raw_query):
        params.setdefault(
            unquote_to_bytes(key).decode("utf-8", "replace"),
            unquote_to_bytes(value).decode("utf-8", "replace"),
        )
    return params


def _parse_presigned(params: Mapping[str, str]) -> _Parsed:
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
    scope = _parse_credential(params["X-Amz-Credential"], err)
    signed = _split_signed_headers(params["X-Amz-SignedHeaders"], err)
    amz_date = params["X-Amz-Date"]
    when = _parse_amz_date(amz_date)
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
    return _Parsed(
        scope,
        signed,
        params["X-Amz-SignedHeaders"],
        params["X-Amz-Signature"],
        amz_date,
        when,
        True,
        expires,
    )


# -- verification -------------------------------------------------------------------------
def verify(
    req: RequestParts,
    lookup_secret: Callable[[str], str | None],
    now: datetime,
    *,
    key_cache: SigningKeyCache | None = None,
    max_skew: timedelta = MAX_SKEW,
    virtual_host_bucket: str | None = None,
) -> AuthContext:
    """Authenticate a SigV4 request (Authorization header or presigned query).

    ``virtual_host_bucket`` (the bucket taken from the Host header for virtual-hosted
    requests) is only needed for SigV2, whose resource always starts with ``/bucket``.

    Raises AuthError subclasses, AccessDenied (anonymous, missing date, expired presigned
    URL) or InvalidArgument (unknown x-amz-content-sha256 value, two auth mechanisms).
    The body is NOT checked here: read it through ``gateway.chunked.VerifiedBody`` (or
    ``AuthContext.payload_verifier()`` / ``AwsChunkedDecoder`` directly).
    """
    authorization = req.header("authorization")
    params = _query_params(req.query_string) if req.query_string else {}
    # X-Amz-Signature alone is an ordinary parameter of a header-signed request.
    is_presigned = "X-Amz-Algorithm" in params or (
        "X-Amz-Signature" in params and authorization is None
    )
    if authorization is not None and is_presigned:
        raise InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm "
            "query parameter or the Authorization header should be specified"
        )
    if (authorization is not None and authorization.startswith("AWS ")) or (
        authorization is None and not is_presigned and "Signature" in params
    ):
        return _verify_v2(
            req, params, authorization, lookup_secret, now, max_skew, virtual_host_bucket
        )
    if authorization is not None:
        parsed = _parse_header_auth(authorization, req)
    elif is_presigned:
        parsed = _parse_presigned(params)
    else:
        raise AccessDenied("Anonymous access is not allowed")

    scope = parsed.scope
    secret = lookup_secret(scope.access_key)
    if secret is None:
        raise InvalidAccessKeyId(
            "The AWS Access Key Id you provided does not exist in our records.",
            AWSAccessKeyId=scope.access_key,
        )
    _check_time(parsed, now, max_skew)

    content_sha = req.header("x-amz-content-sha256")
    if content_sha is None and parsed.is_presigned:
        content_sha = params.get("X-Amz-Content-Sha256")
    mode, payload_hash = payload_mode_of(
        content_sha.strip() if content_sha is not None else None, is_presigned=parsed.is_presigned
    )

    cache = key_cache if key_cache is not None else _DEFAULT_CACHE
    signing_key = cache.get(scope.access_key, secret, scope.date, scope.region, scope.service)
    headers_block = canonical_headers(req.headers, parsed.signed_headers)
    given = parsed.signature.encode("utf-8", "replace")
    first_sts = ""
    first_creq = b""
    for cand_uri, cand_query in _uri_query_candidates(req, parsed.is_presigned):
        creq = canonical_request(
            req.method,
            cand_uri,
            cand_query,
            headers_block,
            parsed.signed_headers_text,
            payload_hash,
        )
        sts = string_to_sign(parsed.amz_date, scope.scope, creq)
        expected = _hmac_hex(signing_key, sts)
        if hmac.compare_digest(expected.encode("ascii"), given):
            return AuthContext(
                access_key=scope.access_key,
                region=scope.region,
                date=scope.date,
                amz_date=parsed.amz_date,
                scope=scope.scope,
                signing_key=signing_key,
                seed_signature=expected,
                payload_mode=mode,
                payload_sha256=payload_hash.lower() if mode is PayloadMode.SHA256 else None,
                is_presigned=parsed.is_presigned,
                signed_headers=parsed.signed_headers,
            )
        if not first_sts:
            first_sts, first_creq = sts, creq
    raise SignatureDoesNotMatch(
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        AWSAccessKeyId=scope.access_key,
        StringToSign=first_sts,
        CanonicalRequest=first_creq.decode("utf-8", "replace"),
        SignatureProvided=parsed.signature,
    )


def _uri_query_candidates(req: RequestParts, is_presigned: bool) -> Iterator[tuple[str, str]]:
    """The normalised (URI, query) pair, then -- computed only if needed -- the raw one."""
    uri = canonical_uri(req.raw_path)
    query = canonical_query(req.query_string, exclude_signature=is_presigned)
    yield uri, query
    raw_uri = _as_str(req.raw_path) or "/"
    raw_query = _raw_canonical_query(req.query_string, exclude_signature=is_presigned)
    if (raw_uri, raw_query) != (uri, query) and raw_uri.isascii() and raw_query.isascii():
        yield raw_uri, raw_query


def _check_time(parsed: _Parsed, now: datetime, max_skew: timedelta) -> None:
    when = parsed.when
    if parsed.is_presigned:
        if when - now > max_skew:
            raise AccessDenied("Request is not valid yet")
        if parsed.expires_s is not None and now > when + timedelta(seconds=parsed.expires_s):
            raise AccessDenied(
                "Request has expired",
                Expires=format_amz_date(when + timedelta(seconds=parsed.expires_s)),
                ServerTime=format_amz_date(now),
            )
        return
    if abs(now - when) > max_skew:
        raise RequestTimeTooSkewed(
            "The difference between the request time and the current time is too large.",
            RequestTime=parsed.amz_date,
            ServerTime=format_amz_date(now),
            MaxAllowedSkewMilliseconds=str(int(max_skew.total_seconds() * 1000)),
        )


# -- signing (client side) ----------------------------------------------------------------
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
    signature = _hmac_hex(key, string_to_sign(amz_date, scope.scope, creq))
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
    signature = _hmac_hex(key, string_to_sign(amz_date, scope.scope, creq))
    return f"{full_query}&X-Amz-Signature={signature}"


# -- legacy Signature Version 2 (boto3 still presigns with it for us-east-1) --------------
_V2_SUBRESOURCES = frozenset(
    [
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "defaultObjectAcl",
        "delete",
        "inventory",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "select",
        "select-type",
        "storageClass",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    ]
)


def _v2_resources(req: RequestParts, bucket: str | None) -> list[str]:
    """Candidate CanonicalizedResource strings (raw and normalised path/sub-resources)."""
    subs: list[tuple[str, bytes | None]] = []
    for item in _as_bytes(req.query_string).split(b"&") if req.query_string else ():
        key, sep, value = item.partition(b"=")
        name = key.decode("latin-1")
        if name in _V2_SUBRESOURCES:
            subs.append((name, unquote_to_bytes(value) if sep else None))
    subs.sort(key=lambda kv: kv[0])
    with_eq = "&".join(k if v is None else f"{k}={v.decode('utf-8', 'replace')}" for k, v in subs)
    no_eq = "&".join(k if not v else f"{k}={v.decode('utf-8', 'replace')}" for k, v in subs)
    out: list[str] = []
    prefix = f"/{bucket}" if bucket else ""
    for path in (_as_str(req.raw_path) or "/", canonical_uri(req.raw_path)):
        path = prefix + path
        for sub in (with_eq, no_eq):
            resource = f"{path}?{sub}" if sub else path
            if resource not in out:
                out.append(resource)
    return out


def _parse_http_or_amz_date(text: str) -> datetime | None:
    when = _parse_amz_date(text.strip())
    if when is not None:
        return when
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _verify_v2(
    req: RequestParts,
    params: Mapping[str, str],
    authorization: str | None,
    lookup_secret: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta,
    bucket: str | None,
) -> AuthContext:
    when: datetime | None = None
    if authorization is not None:
        access_key, sep, signature = authorization[4:].strip().rpartition(":")
        if not sep or not access_key or not signature:
            raise InvalidArgument(
                "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature"
            )
        amz_date = req.header("x-amz-date")
        date_text = amz_date if amz_date is not None else req.header("date")
        when = _parse_http_or_amz_date(date_text) if date_text is not None else None
        if when is None:
            raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
        date_line = "" if amz_date is not None else (date_text or "")
    else:
        access_key = params.get("AWSAccessKeyId", "")
        signature = params.get("Signature", "")
        date_line = params.get("Expires", "")
        if not access_key or not signature or not date_line.isdigit():
            raise AuthorizationQueryParametersError(
                "Query-string authentication requires the Signature, Expires and "
                "AWSAccessKeyId parameters"
            )
    secret = lookup_secret(access_key)
    if secret is None:
        raise InvalidAccessKeyId(
            "The AWS Access Key Id you provided does not exist in our records.",
            AWSAccessKeyId=access_key,
        )
    if authorization is None:
        if now.timestamp() > int(date_line):
            raise AccessDenied("Request has expired", ServerTime=format_amz_date(now))
    elif when is not None and abs(now - when) > max_skew:
        raise RequestTimeTooSkewed(
            "The difference between the request time and the current time is too large.",
            ServerTime=format_amz_date(now),
            MaxAllowedSkewMilliseconds=str(int(max_skew.total_seconds() * 1000)),
        )
    amz: dict[str, list[str]] = {}
    for name, value in req.headers:
        if name.startswith("x-amz-"):
            amz.setdefault(name, []).append(value.decode("utf-8", "replace").strip())
    amz_block = "".join(f"{k}:{','.join(amz[k])}\n" for k in sorted(amz))
    head = "\n".join(
        [
            req.method,
            (req.header("content-md5") or "").strip(),
            (req.header("content-type") or "").strip(),
            date_line,
            amz_block,
        ]
    )
    given = signature.encode("utf-8", "replace")
    for resource in _v2_resources(req, bucket):
        mac = hmac.new(secret.encode("utf-8"), (head + resource).encode("utf-8"), hashlib.sha1)
        expected = base64.b64encode(mac.digest())
        if hmac.compare_digest(expected, given):
            return AuthContext(
                access_key=access_key,
                region="",
                date="",
                amz_date="",
                scope="",
                signing_key=b"",
                seed_signature=signature,
                payload_mode=PayloadMode.UNSIGNED,
                payload_sha256=None,
                is_presigned=authorization is None,
                signed_headers=(),
                signature_version=2,
            )
    raise SignatureDoesNotMatch(
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        AWSAccessKeyId=access_key,
        StringToSign=head + _v2_resources(req, bucket)[0],
        SignatureProvided=signature,
    )
