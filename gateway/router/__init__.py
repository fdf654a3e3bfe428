"""Request routing: every HTTP request parsed into one typed ``S3Operation`` (pure).

This package re-exports its public API, so callers keep ``from gateway.router import
parse_request, Headers, RouterLimits, parse_query, is_valid_bucket_name``. Modules:

=============  =================================================================================
``request``    ``Headers``, ``RouterLimits``, percent-decoding, ``parse_query``, addressing
``body``       the body's framing, size limits and integrity claims (``op.PayloadInfo``)
``params``     other header and query parameters -> typed values (ACLs, conditions, ...)
``bucket``     bucket-level routing tables (sub-resources per method, listings)
``objects``    object-level routing (reads, writes, copies, multipart, deletes)
``parse``      ``parse_request``: the entry point and service-level checks
=============  =================================================================================

Imports point one way: ``parse`` -> ``bucket``/``objects`` -> ``body``/``params`` -> ``request``.
Everything raises only ``gateway.errors.S3Error``. Must not import starlette, asyncio or
anything doing I/O.
"""

from __future__ import annotations

from gateway.router.body import CHECKSUM_ALGORITHMS
from gateway.router.params import CANNED_ACLS
from gateway.router.parse import parse_request
from gateway.router.request import (
    DEFAULT_LIMITS,
    Headers,
    RouterLimits,
    is_valid_bucket_name,
    parse_query,
)

__all__ = [
    "CANNED_ACLS",
    "CHECKSUM_ALGORITHMS",
    "DEFAULT_LIMITS",
    "Headers",
    "RouterLimits",
    "is_valid_bucket_name",
    "parse_query",
    "parse_request",
]
