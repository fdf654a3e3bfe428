"""``parse_request``: method, raw path, raw query, headers and Host -> one ``S3Operation``.

Owns the entry point and the service-level decisions: header-section size, allowed
methods, ListBuckets, bucket-name and key-length checks, CORS preflight (``OPTIONS``);
bucket requests go to ``gateway.router.bucket``, object requests to
``gateway.router.objects``.

``parse_request`` is pure: it never reads the body, never does I/O and raises nothing but
``gateway.errors.S3Error``. The app calls it first and dispatches with one ``match``.
A header section larger than ``RouterLimits.max_header_bytes`` (8 KiB as S3) is 400
RequestHeaderSectionTooLarge.

Must not import starlette, asyncio or anything doing I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway import operations as op
from gateway.errors import S3Error
from gateway.router import params
from gateway.router.bucket import bucket_op
from gateway.router.objects import object_op
from gateway.router.request import (
    DEFAULT_LIMITS,
    Headers,
    RouterLimits,
    as_bytes,
    is_valid_bucket_name,
    parse_query,
    split_target,
)

__all__ = ["parse_request"]

_CORS_METHODS = frozenset({"GET", "PUT", "HEAD", "POST", "DELETE"})
_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"})


def parse_request(
    method: str,
    raw_path: str | bytes,
    query: str | bytes,
    headers: Headers | Iterable[tuple[str, str]],
    host: str | None,
    domain: str | None,
    *,
    limits: RouterLimits = DEFAULT_LIMITS,
) -> op.S3Operation:
    """Parse one HTTP request into its typed S3 operation.

    Raises:
        S3Error: any invalid request (and only that).
    """
    h = headers if isinstance(headers, Headers) else Headers(headers)
    size = h.size_bytes
    if size > limits.max_header_bytes:
        raise S3Error.request_header_section_too_large(size, limits.max_header_bytes)
    if method not in _METHODS:
        raise S3Error.method_not_allowed(method)
    q = parse_query(query)
    bucket, key = split_target(as_bytes(raw_path), host, domain)
    if bucket is None:
        if method == "GET":
            return op.ListBuckets(
                prefix=q.get("prefix"),
                continuation_token=q.get("continuation-token"),
                max_buckets=params.int_param(q, "max-buckets", 10000, 10000)
                if "max-buckets" in q
                else None,
            )
        raise S3Error.method_not_allowed(method, "SERVICE")
    if not is_valid_bucket_name(bucket):
        raise S3Error.invalid_bucket_name(bucket)
    if method == "OPTIONS":
        return _preflight(bucket, key, h)
    if key is None:
        return bucket_op(method, bucket, q, h)
    key_bytes = len(key.encode("utf-8"))
    if key_bytes > limits.max_key_bytes:
        raise S3Error.key_too_long(key_bytes, limits.max_key_bytes)
    return object_op(method, bucket, key, q, h, limits)


def _preflight(bucket: str, key: str | None, h: Headers) -> op.CorsPreflight:
    origin = h.get("origin")
    if not origin:
        raise S3Error.invalid_request("Insufficient information. Origin request header needed.")
    method = (h.get("access-control-request-method") or "").strip()
    if method not in _CORS_METHODS:
        raise S3Error.invalid_request(f"Invalid Access-Control-Request-Method: {method}")
    req_headers = h.get("access-control-request-headers") or ""
    return op.CorsPreflight(
        bucket=bucket,
        key=key,
        origin=origin,
        request_method=method,
        request_headers=tuple(x.strip().lower() for x in req_headers.split(",") if x.strip()),
    )
