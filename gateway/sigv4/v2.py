"""Legacy Signature Version 2 verification (boto3 still presigns with it for us-east-1).

Owns: ``verify_v2`` for ``Authorization: AWS AK:signature`` and for the query form
``?AWSAccessKeyId=&Signature=&Expires=``: the string to sign (method, Content-MD5,
Content-Type, Date or Expires, the ``x-amz-*`` headers, the CanonicalizedResource with its
S3 sub-resources) and base64 HMAC-SHA1 comparison.

Invariants: the CanonicalizedResource always starts with ``/bucket`` (taken from the Host
header for virtual-hosted requests); both the raw and the normalised path, with and
without ``=`` on empty sub-resource values, are tried. The resulting ``AuthContext`` has
``signature_version == 2`` and ``PayloadMode.UNSIGNED``: SigV2 does not cover the body.

Pure: imports only the stdlib, ``blobstore.errors`` and sibling ``gateway.sigv4`` modules.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_to_bytes

from blobstore.errors import AccessDenied, InvalidArgument
from gateway.sigv4.authcontext import AuthContext
from gateway.sigv4.canonical import (
    RequestParts,
    as_bytes,
    as_str,
    canonical_uri,
    format_amz_date,
    parse_amz_date,
)
from gateway.sigv4.errors import (
    AuthorizationQueryParametersError,
    InvalidAccessKeyId,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
)
from gateway.sigv4.payload import PayloadMode

__all__ = ["verify_v2"]

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
    for item in as_bytes(req.query_string).split(b"&") if req.query_string else ():
        key, sep, value = item.partition(b"=")
        name = key.decode("latin-1")
        if name in _V2_SUBRESOURCES:
            subs.append((name, unquote_to_bytes(value) if sep else None))
    subs.sort(key=lambda kv: kv[0])
    with_eq = "&".join(k if v is None else f"{k}={v.decode('utf-8', 'replace')}" for k, v in subs)
    no_eq = "&".join(k if not v else f"{k}={v.decode('utf-8', 'replace')}" for k, v in subs)
    out: list[str] = []
    prefix = f"/{bucket}" if bucket else ""
    for path in (as_str(req.raw_path) or "/", canonical_uri(req.raw_path)):
        path = prefix + path
        for sub in (with_eq, no_eq):
            resource = f"{path}?{sub}" if sub else path
            if resource not in out:
                out.append(resource)
    return out


def _parse_http_or_amz_date(text: str) -> datetime | None:
    when = parse_amz_date(text.strip())
    if when is not None:
        return when
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def verify_v2(
    req: RequestParts,
    params: Mapping[str, str],
    authorization: str | None,
    lookup_secret: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta,
    bucket: str | None,
) -> AuthContext:
    """Authenticate a SigV2 request (header when ``authorization`` is given, else query)."""
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
