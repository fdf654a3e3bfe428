"""The one place that maps errors to S3 error codes, HTTP statuses and error XML (pure).

Three kinds of error reach the gateway's edge:

* ``S3Error`` -- gateway-level S3 errors raised by the router, XML parsers, range and
  condition evaluation (and handlers). They already carry code, message and status.
* ``blobstore.errors.BlobstoreError`` -- domain errors raised by services; mapped through
  ``_DOMAIN`` below (``InvalidArgument`` may name a more precise S3 code in
  ``details['code']``, e.g. ``EntityTooSmall``). Their message is never shown: the client
  gets S3's standard message for the code, plus the request-derived details as fields.
* Anything with a string ``.code`` attribute naming a known S3 code -- duck-typed so that
  ``gateway/sigv4.AuthError`` (``SignatureDoesNotMatch`` ...) maps without an import.

Everything else is a 500 ``InternalError`` whose text is never shown to the client.
Quorum loss, leader changes and deadlines (``Unavailable`` and subclasses) answer 503
``ServiceUnavailable`` so that clients retry.

Invariants: every status is a valid HTTP status; HEAD and 304 responses carry no body.
Must not import starlette, asyncio or anything doing I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from blobstore import errors as domain

__all__ = [
    "S3_CODE_STATUS",
    "ErrorResponse",
    "S3Error",
    "resolve",
    "to_response",
]

# Status of every S3 error code we emit or accept from collaborators (AWS values).
S3_CODE_STATUS: Mapping[str, int] = {
    # 400
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BadRequest": 400,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "ExpiredToken": 400,
    "IncompleteBody": 400,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidEncryptionAlgorithmError": 400,
    "InvalidLocationConstraint": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidRequest": 400,
    "InvalidStorageClass": 400,
    "InvalidTag": 400,
    "InvalidURI": 400,
    "KeyTooLongError": 400,
    "MalformedXML": 400,
    "MalformedPOSTRequest": 400,
    "MetadataTooLarge": 400,
    "MissingRequestBodyError": 400,
    "MissingSecurityHeader": 400,
    "RequestHeaderSectionTooLarge": 400,
    "RequestTimeout": 400,
    "TooManyParts": 400,
    "UnexpectedContent": 400,
    "XAmzContentSHA256Mismatch": 400,
    "InvalidChecksum": 400,
    # 403
    "AccessDenied": 403,
    "InvalidAccessKeyId": 403,
    "InvalidSecurity": 403,
    "RequestTimeTooSkewed": 403,
    "SignatureDoesNotMatch": 403,
    # 404
    "NoSuchBucket": 404,
    "NoSuchBucketPolicy": 404,
    "NoSuchCORSConfiguration": 404,
    "NoSuchKey": 404,
    "NoSuchLifecycleConfiguration": 404,
    "NoSuchPublicAccessBlockConfiguration": 404,
    "NoSuchTagSet": 404,
    "NoSuchUpload": 404,
    "NoSuchVersion": 404,
    "NoSuchWebsiteConfiguration": 404,
    "ObjectLockConfigurationNotFoundError": 404,
    "OwnershipControlsNotFoundError": 404,
    "ReplicationConfigurationNotFoundError": 404,
    "ServerSideEncryptionConfigurationNotFoundError": 404,
    # others
    "NotModified": 304,
    "MethodNotAllowed": 405,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "OperationAborted": 409,
    "MissingContentLength": 411,
    "PreconditionFailed": 412,
    "InvalidRange": 416,
    "InternalError": 500,
    "NotImplemented": 501,
    "ServiceUnavailable": 503,
    "SlowDown": 503,
    "StorageFull": 507,
}

_DEFAULT_MESSAGES: Mapping[str, str] = {
    "AccessDenied": "Access Denied",
    "BadDigest": "The Content-MD5 or checksum you specified did not match what we received.",
    "BucketAlreadyExists": "The requested bucket name is not available. The bucket "
    "namespace is shared by all users of the system. Please select a different name "
    "and try again.",
    "BucketAlreadyOwnedByYou": "Your previous request to create the named bucket "
    "succeeded and you already own it.",
    "BucketNotEmpty": "The bucket you tried to delete is not empty",
    "EntityTooLarge": "Your proposed upload exceeds the maximum allowed size",
    "EntityTooSmall": "Your proposed upload is smaller than the minimum allowed object size.",
    "InternalError": "We encountered an internal error. Please try again.",
    "InvalidArgument": "Invalid Argument",
    "InvalidBucketName": "The specified bucket is not valid.",
    "InvalidPart": "One or more of the specified parts could not be found. The part may "
    "not have been uploaded, or the specified entity tag may not match the part's "
    "entity tag.",
    "InvalidPartOrder": "The list of parts was not in ascending order. Parts must be "
    "ordered by part number.",
    "InvalidRange": "The requested range is not satisfiable",
    "InvalidRequest": "Invalid Request",
    "InvalidStorageClass": "The storage class you specified is not valid",
    "NoSuchVersion": "The specified version does not exist.",
    "TooManyParts": "You have attempted to upload more than the maximum number of parts.",
    "NoSuchBucket": "The specified bucket does not exist",
    "NoSuchKey": "The specified key does not exist.",
    "NoSuchUpload": "The specified upload does not exist. The upload ID may be invalid, "
    "or the upload may have been aborted or completed.",
    "PreconditionFailed": "At least one of the pre-conditions you specified did not hold",
    "ServiceUnavailable": "Please reduce your request rate.",
    "SlowDown": "Please reduce your request rate.",
    "StorageFull": "Storage backend has reached its minimum free drive threshold. "
    "Please delete a few objects to proceed.",
}


class S3Error(Exception):
    """An S3 error: code, message and HTTP status, plus optional extra XML fields/headers.

    ``fields`` become extra child elements of ``<Error>`` (e.g. ``BucketName``,
    ``Condition``, ``ActualObjectSize``); ``headers`` are added to the response (e.g.
    ``Content-Range: bytes */123`` for 416).
    """

    def __init__(
        self,
        code: str,
        message: str = "",
        status: int | None = None,
        *,
        fields: tuple[tuple[str, str], ...] = (),
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.code = code
        self.message = message or _DEFAULT_MESSAGES.get(code, code)
        self.status = status if status is not None else S3_CODE_STATUS.get(code, 400)
        self.fields = fields
        self.headers = headers
        super().__init__(f"{code}: {self.message}")

    def __repr__(self) -> str:
        return f"S3Error({self.code!r}, {self.message!r}, {self.status})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Error) and (
            self.code,
            self.message,
            self.status,
            self.fields,
            self.headers,
        ) == (other.code, other.message, other.status, other.fields, other.headers)

    def __hash__(self) -> int:
        return hash((self.code, self.message, self.status))

    # -- constructors (gateway-level errors) ---------------------------------------------
    @classmethod
    def malformed_xml(cls, detail: str = "") -> S3Error:
        msg = (
            "The XML you provided was not well-formed or did not validate against "
            "our published schema"
        )
        return cls("MalformedXML", msg if not detail else f"{msg} ({detail})")

    @classmethod
    def invalid_request(cls, message: str) -> S3Error:
        return cls("InvalidRequest", message)

    @classmethod
    def invalid_argument(
        cls, message: str, name: str | None = None, value: str | None = None
    ) -> S3Error:
        fields: tuple[tuple[str, str], ...] = ()
        if name is not None:
            fields = (("ArgumentName", name), ("ArgumentValue", value or ""))
        return cls("InvalidArgument", message, fields=fields)

    @classmethod
    def invalid_uri(cls) -> S3Error:
        return cls("InvalidURI", "Couldn't parse the specified URI.")

    @classmethod
    def not_implemented(cls, what: str = "") -> S3Error:
        msg = "A header you provided implies functionality that is not implemented"
        return cls("NotImplemented", f"{msg} ({what})" if what else msg, 501)

    @classmethod
    def method_not_allowed(cls, method: str, resource_type: str = "") -> S3Error:
        fields: tuple[tuple[str, str], ...] = (("Method", method),)
        if resource_type:
            fields += (("ResourceType", resource_type),)
        return cls(
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            405,
            fields=fields,
        )

    @classmethod
    def entity_too_large(cls, size: int, max_size: int) -> S3Error:
        return cls(
            "EntityTooLarge",
            fields=(("ProposedSize", str(size)), ("MaxSizeAllowed", str(max_size))),
        )

    @classmethod
    def entity_too_small(cls) -> S3Error:
        return cls("EntityTooSmall")

    @classmethod
    def key_too_long(cls, size: int, max_size: int = 1024) -> S3Error:
        return cls(
            "KeyTooLongError",
            "Your key is too long",
            fields=(("Size", str(size)), ("MaxSizeAllowed", str(max_size))),
        )

    @classmethod
    def metadata_too_large(cls, size: int, max_size: int) -> S3Error:
        return cls(
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size.",
            fields=(("Size", str(size)), ("MaxSizeAllowed", str(max_size))),
        )

    @classmethod
    def invalid_storage_class(cls, value: str) -> S3Error:
        return cls(
            "InvalidStorageClass",
            "The storage class you specified is not valid",
            fields=(("StorageClassRequested", value),),
        )

    @classmethod
    def invalid_bucket_name(cls, name: str) -> S3Error:
        return cls("InvalidBucketName", fields=(("BucketName", name),))

    @classmethod
    def invalid_tag(cls, message: str) -> S3Error:
        return cls("InvalidTag", message)

    @classmethod
    def invalid_digest(
        cls, message: str = "The Content-MD5 you specified is not valid."
    ) -> S3Error:
        return cls("InvalidDigest", message)

    @classmethod
    def invalid_part_order(cls) -> S3Error:
        return cls("InvalidPartOrder")

    @classmethod
    def missing_content_length(cls) -> S3Error:
        return cls("MissingContentLength", "You must provide the Content-Length HTTP header.")

    @classmethod
    def request_header_section_too_large(cls, size: int, max_size: int) -> S3Error:
        return cls(
            "RequestHeaderSectionTooLarge",
            "Your request header section exceeds the maximum allowed size.",
            fields=(("MaxSizeAllowed", str(max_size)), ("Size", str(size))),
        )

    @classmethod
    def no_such_bucket_policy(cls, bucket: str) -> S3Error:
        return cls(
            "NoSuchBucketPolicy",
            "The bucket policy does not exist",
            fields=(("BucketName", bucket),),
        )

    @classmethod
    def no_such_cors_configuration(cls, bucket: str) -> S3Error:
        return cls(
            "NoSuchCORSConfiguration",
            "The CORS configuration does not exist",
            fields=(("BucketName", bucket),),
        )

    @classmethod
    def no_such_tag_set(cls, bucket: str) -> S3Error:
        return cls("NoSuchTagSet", "The TagSet does not exist", fields=(("BucketName", bucket),))

    @classmethod
    def not_configured(cls, code: str, message: str, bucket: str) -> S3Error:
        """A 404 "no such configuration" error (lifecycle, encryption, website ...)."""
        return cls(code, message, 404, fields=(("BucketName", bucket),))

    @classmethod
    def not_modified(cls, headers: tuple[tuple[str, str], ...] = ()) -> S3Error:
        """304: the handler passes ETag / Last-Modified to echo; the response has no body."""
        return cls("NotModified", "Not Modified", 304, headers=headers)

    @classmethod
    def precondition_failed(cls, condition: str) -> S3Error:
        return cls("PreconditionFailed", fields=(("Condition", condition),))

    @classmethod
    def invalid_range(cls, size: int, requested: str = "") -> S3Error:
        fields: tuple[tuple[str, str], ...] = (("ActualObjectSize", str(size)),)
        if requested:
            fields = (("RangeRequested", requested), *fields)
        return cls("InvalidRange", fields=fields, headers=(("Content-Range", f"bytes */{size}"),))

    @classmethod
    def no_such_key(cls, key: str) -> S3Error:
        return cls("NoSuchKey", fields=(("Key", key),))


class ErrorResponse(NamedTuple):
    """What ``to_response`` produces (unpacks as ``status, headers, body``).

    ``body`` is empty for HEAD and 304.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


# Domain error class -> (S3 code, status). Looked up along the MRO, so subclasses of
# Unavailable (NotLeader, DeadlineExceeded) inherit 503.
_DOMAIN: Mapping[type[domain.BlobstoreError], tuple[str, int]] = {
    domain.NoSuchBucket: ("NoSuchBucket", 404),
    domain.NoSuchKey: ("NoSuchKey", 404),
    domain.NoSuchUpload: ("NoSuchUpload", 404),
    domain.BucketAlreadyExists: ("BucketAlreadyExists", 409),
    domain.BucketAlreadyOwnedByYou: ("BucketAlreadyOwnedByYou", 409),
    domain.BucketNotEmpty: ("BucketNotEmpty", 409),
    domain.InvalidBucketName: ("InvalidBucketName", 400),
    domain.PreconditionFailed: ("PreconditionFailed", 412),
    domain.InvalidPart: ("InvalidPart", 400),
    domain.InvalidPartOrder: ("InvalidPartOrder", 400),
    domain.InvalidArgument: ("InvalidArgument", 400),
    domain.InvalidRange: ("InvalidRange", 416),
    domain.BadDigest: ("BadDigest", 400),
    domain.AccessDenied: ("AccessDenied", 403),
    domain.AuthenticationFailed: ("AccessDenied", 403),
    domain.Unavailable: ("ServiceUnavailable", 503),
    domain.InsufficientSpace: ("StorageFull", 507),
    # GC fenced a chunk of a write slower than the grace period: nothing was committed and
    # every S3 SDK retries 503 SlowDown (with backoff), re-uploading under fresh chunk ids
    domain.ChunkFenced: ("SlowDown", 503),
}

# details key -> Error XML element, for domain errors that carry them.
_DETAIL_FIELDS: Mapping[str, str] = {
    "bucket": "BucketName",
    "key": "Key",
    "upload_id": "UploadId",
    "condition": "Condition",
    "part_number": "PartNumber",
    "etag": "ETag",
}


def _from_domain(error: domain.BlobstoreError) -> S3Error:
    for cls in type(error).__mro__:
        spec = _DOMAIN.get(cls)
        if spec is not None:
            break
    else:
        return S3Error("InternalError", status=500)
    code, status = spec
    if isinstance(error, domain.InvalidArgument) and error.details.get("code"):
        code = error.details["code"]
        status = S3_CODE_STATUS.get(code, 400)
    # S3's standard text for the code: a domain message names internals (node addresses,
    # chunk ids, FSM wording) and is for our logs, never for clients. What a client may
    # act on travels in the structured fields below (BucketName, Key, UploadId ...).
    message = _DEFAULT_MESSAGES.get(code, "")
    fields = tuple(
        (element, error.details[name])
        for name, element in _DETAIL_FIELDS.items()
        if name in error.details
    )
    headers: tuple[tuple[str, str], ...] = ()
    if isinstance(error, domain.InvalidRange) and error.details.get("size", "").isdigit():
        size = error.details["size"]
        headers = (("Content-Range", f"bytes */{size}"),)
        fields += (("ActualObjectSize", size),)
    return S3Error(code, message, status, fields=fields, headers=headers)


def resolve(error: BaseException) -> S3Error:
    """Map any exception to the S3Error the client sees (the single mapping function)."""
    if isinstance(error, S3Error):
        return error
    if isinstance(error, domain.BlobstoreError):
        return _from_domain(error)
    code = getattr(error, "code", None)
    if isinstance(code, str) and code in S3_CODE_STATUS and code != "InternalError":
        # duck-typed collaborator errors, e.g. gateway.sigv4.AuthError
        message = getattr(error, "message", None)
        if not isinstance(message, str):
            message = str(error) if error.args else ""
        fields: tuple[tuple[str, str], ...] = ()
        details = getattr(error, "details", None)
        if isinstance(details, Mapping):
            fields = tuple(
                (str(k), str(v))
                for k, v in details.items()
                if isinstance(k, str) and k[:1].isupper()
            )
        return S3Error(code, message, S3_CODE_STATUS[code], fields=fields)
    return S3Error("InternalError", status=500)


# XML 1.0 cannot carry most C0 controls; they are written as character references
# (what S3 does) so the document stays parseable by lenient parsers and never breaks framing.
_ESCAPES: dict[int, str] = {c: f"&#x{c:X};" for c in range(0x20) if c not in (0x09, 0x0A)}
_ESCAPES.update({ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", 0xFFFE: "", 0xFFFF: ""})


def _escape(text: str) -> str:
    return text.translate(_ESCAPES)


def to_response(
    error: BaseException,
    resource: str,
    request_id: str,
    host_id: str = "",
    *,
    is_head: bool = False,
) -> ErrorResponse:
    """Status, headers and S3 Error XML for ``error`` (no body for HEAD or 304)."""
    s3 = resolve(error)
    headers: list[tuple[str, str]] = [("x-amz-request-id", request_id)]
    if host_id:
        headers.append(("x-amz-id-2", host_id))
    headers.extend(s3.headers)
    if is_head or s3.status == 304:
        return ErrorResponse(s3.status, tuple(headers), b"")
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>',
        _escape(s3.code),
        "</Code><Message>",
        _escape(s3.message),
        "</Message>",
    ]
    for name, value in s3.fields:
        parts.append(f"<{name}>{_escape(value)}</{name}>")
    parts.append(f"<Resource>{_escape(resource)}</Resource>")
    parts.append(f"<RequestId>{_escape(request_id)}</RequestId>")
    if host_id:
        parts.append(f"<HostId>{_escape(host_id)}</HostId>")
    parts.append("</Error>")
    headers.append(("Content-Type", "application/xml"))
    body = "".join(parts).encode("utf-8", "surrogatepass")
    return ErrorResponse(s3.status, tuple(headers), body)
