"""AWS Signature Version 4 for S3: verification (server side) and signing (client side).

This package re-exports its public API, so callers keep ``from gateway.sigv4 import ...``
and ``sigv4.verify(...)``. One concept per module:

=================  ===========================================================================
``canonical``      ``RequestParts``, canonical URI/query/headers/request, string to sign, dates
``keys``           ``CredentialScope``, signing-key derivation, ``SigningKeyCache``
``payload``        ``x-amz-content-sha256`` modes, ``PayloadHashVerifier``, chunk signatures
``authcontext``    ``AuthContext``, the outcome of a verification
``errors``         ``AuthError`` and its S3 codes
``parsing``        the Authorization header and presigned query parameters
``verification``   ``verify``: mechanism choice, clock checks, signature comparison
``v2``             legacy Signature Version 2 (header and query forms)
``signing``        client side: ``sign_request``, ``presign_url``
=================  ===========================================================================

Imports point one way: ``verification`` -> ``v2``/``parsing`` -> ``payload``/``keys`` ->
``canonical``/``errors``. Pure: no starlette, asyncio, sockets or clock reads (``now`` is
passed in); only the stdlib and ``blobstore.errors`` from outside the package.
"""

from __future__ import annotations

from gateway.sigv4.authcontext import AuthContext
from gateway.sigv4.canonical import (
    ALGORITHM,
    HeaderInput,
    RequestParts,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    format_amz_date,
    string_to_sign,
    uri_encode,
)
from gateway.sigv4.errors import (
    AuthError,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    IncompleteBody,
    InvalidAccessKeyId,
    InvalidDigest,
    InvalidRequest,
    MissingSecurityHeader,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    XAmzContentSHA256Mismatch,
)
from gateway.sigv4.keys import CredentialScope, SigningKeyCache, derive_signing_key
from gateway.sigv4.parsing import MAX_PRESIGN_EXPIRES_S
from gateway.sigv4.payload import (
    EMPTY_SHA256,
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    PayloadHashVerifier,
    PayloadMode,
    chunk_signature,
    payload_mode_of,
    trailer_signature,
)
from gateway.sigv4.signing import presign_url, sign_request
from gateway.sigv4.verification import MAX_SKEW, verify

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
