"""SigV4 verification (server side): one request in, an ``AuthContext`` or an error out.

Owns: ``verify`` (choosing the mechanism: Authorization header, presigned query, or a
legacy SigV2 form handed to ``gateway.sigv4.v2``), the clock checks and the signature
comparison over the canonical request.

Decisions (documented, tested):
- The clock skew window is 15 minutes (``RequestTimeTooSkewed``); a presigned URL is valid
  from X-Amz-Date (minus the skew) to X-Amz-Date + X-Amz-Expires (at most 7 days).
- If the normalised canonical form does not match, the raw path and the raw (sorted, not
  re-encoded) query are tried once more, which accepts clients whose wire encoding differs
  from the canonical one only in which characters they escape.
- ``X-Amz-Signature`` alone is an ordinary parameter of a header-signed request; an
  Authorization header together with ``X-Amz-Algorithm`` is InvalidArgument.
- Signatures are compared in constant time (``hmac.compare_digest``).

The body is NOT checked here: read it through ``gateway.chunked.VerifiedBody``.

Pure: no starlette, asyncio, sockets or clock reads (``now`` is passed in). Imports only
the stdlib, ``blobstore.errors`` and sibling ``gateway.sigv4`` modules.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from blobstore.errors import AccessDenied, InvalidArgument
from gateway.sigv4.authcontext import AuthContext
from gateway.sigv4.canonical import (
    RequestParts,
    as_str,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    format_amz_date,
    raw_canonical_query,
    string_to_sign,
)
from gateway.sigv4.errors import InvalidAccessKeyId, RequestTimeTooSkewed, SignatureDoesNotMatch
from gateway.sigv4.keys import DEFAULT_KEY_CACHE, SigningKeyCache, hmac_hex
from gateway.sigv4.parsing import ParsedAuth, parse_header_auth, parse_presigned, query_params
from gateway.sigv4.payload import PayloadMode, payload_mode_of
from gateway.sigv4.v2 import verify_v2

__all__ = ["MAX_SKEW", "verify"]

MAX_SKEW = timedelta(minutes=15)


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
    params = query_params(req.query_string) if req.query_string else {}
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
        return verify_v2(
            req, params, authorization, lookup_secret, now, max_skew, virtual_host_bucket
        )
    if authorization is not None:
        parsed = parse_header_auth(authorization, req)
    elif is_presigned:
        parsed = parse_presigned(params)
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

    cache = key_cache if key_cache is not None else DEFAULT_KEY_CACHE
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
        expected = hmac_hex(signing_key, sts)
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
    raw_uri = as_str(req.raw_path) or "/"
    raw_query = raw_canonical_query(req.query_string, exclude_signature=is_presigned)
    if (raw_uri, raw_query) != (uri, query) and raw_uri.isascii() and raw_query.isascii():
        yield raw_uri, raw_query


def _check_time(parsed: ParsedAuth, now: datetime, max_skew: timedelta) -> None:
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
