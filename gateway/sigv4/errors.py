"""S3 authentication and request-framing errors raised by SigV4/SigV2 verification.

Owns: ``AuthError`` and its subclasses. Each carries the S3 ``code`` (a class attribute), a
``message`` and ``details`` (capitalised keys become XML fields of the error document).
``gateway/errors.py`` maps them by duck typing (``.code``), without importing this module.
AccessDenied and InvalidArgument are not here: they come from ``blobstore.errors``.

Must not import anything but the stdlib.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthError",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "IncompleteBody",
    "InvalidAccessKeyId",
    "InvalidDigest",
    "InvalidRequest",
    "MissingSecurityHeader",
    "RequestTimeTooSkewed",
    "SignatureDoesNotMatch",
    "XAmzContentSHA256Mismatch",
]


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
