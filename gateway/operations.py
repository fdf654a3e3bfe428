"""Typed S3 operations: what ``gateway.router.parse_request`` turns every request into.

Each class keeps its AWS name and carries the parsed, validated parameters its handler
needs; the app dispatches with one ``match`` over ``S3Operation``. Request bodies are NOT
parsed here (the router never reads the body): handlers of operations with an XML body
(``CompleteMultipartUpload``, ``DeleteObjects``, ``Put*Tagging``, ``PutBucketCors``,
``PutBucketVersioning``, ``CreateBucket``, ``Put*Acl``) call the parsers in
``gateway.xml``.

Invariants (enforced by the router): bucket names are valid S3 names; keys are the raw
path percent-decoded exactly once, non-empty, at most 1,024 UTF-8 bytes and never
normalised; part numbers are in 1..10000; ``max_*`` values are in 0..1000.

Must not import starlette or anything doing I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.conditions import Conditions, WriteConditions
from gateway.errors import S3Error
from gateway.ranges import ByteRangeSpec

__all__ = [
    "AbortMultipartUpload",
    "BucketOperation",
    "ChecksumHeader",
    "CompleteMultipartUpload",
    "CopyObject",
    "CopySource",
    "CorsPreflight",
    "CreateBucket",
    "CreateMultipartUpload",
    "DeleteBucket",
    "DeleteBucketCors",
    "DeleteBucketLifecycle",
    "DeleteBucketPolicy",
    "DeleteBucketTagging",
    "DeleteObject",
    "DeleteObjectTagging",
    "DeleteObjects",
    "GetBucketAcl",
    "GetBucketConfiguration",
    "GetBucketCors",
    "GetBucketLocation",
    "GetBucketPolicy",
    "GetBucketTagging",
    "GetBucketVersioning",
    "GetObject",
    "GetObjectAcl",
    "GetObjectAttributes",
    "GetObjectTagging",
    "HeadBucket",
    "HeadObject",
    "ListBuckets",
    "ListMultipartUploads",
    "ListObjectVersions",
    "ListObjects",
    "ListObjectsV2",
    "ListParts",
    "ObjectHeaders",
    "ObjectOperation",
    "PayloadInfo",
    "PutBucketAcl",
    "PutBucketCors",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutObject",
    "PutObjectAcl",
    "PutObjectTagging",
    "ResponseOverrides",
    "S3Operation",
    "Tag",
    "Unsupported",
    "UploadPart",
    "UploadPartCopy",
    "validate_tags",
]

MAX_TAG_KEY_CHARS = 128
MAX_TAG_VALUE_CHARS = 256


# -- shared value types -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Tag:
    key: str
    value: str


def validate_tags(tags: Iterable[Tag], max_count: int) -> tuple[Tag, ...]:
    """Check S3 tag limits (count, key 1..128 chars, value 0..256 chars, unique keys).

    ``max_count`` is 10 for objects and 50 for buckets. Raises S3Error InvalidTag.
    """
    result = tuple(tags)
    if len(result) > max_count:
        what = "Object" if max_count <= 10 else "Bucket"
        raise S3Error.invalid_tag(f"{what} tags cannot be greater than {max_count}")
    seen: set[str] = set()
    for tag in result:
        if not tag.key or len(tag.key) > MAX_TAG_KEY_CHARS:
            raise S3Error.invalid_tag("The TagKey you have provided is invalid")
        if len(tag.value) > MAX_TAG_VALUE_CHARS:
            raise S3Error.invalid_tag("The TagValue you have provided is invalid")
        if tag.key in seen:
            raise S3Error.invalid_tag("Cannot provide multiple Tags with the same key")
        seen.add(tag.key)
    return result


@dataclass(frozen=True, slots=True)
class ChecksumHeader:
    """One ``x-amz-checksum-<algorithm>`` value (base64, length-checked)."""

    algorithm: str  # CRC32 | CRC32C | CRC64NVME | SHA1 | SHA256
    value: str


@dataclass(frozen=True, slots=True)
class ObjectHeaders:
    """Stored representation headers and user metadata of an object.

    ``content_encoding`` has ``aws-chunked`` removed (it is framing, not content).
    ``user_metadata`` holds ``(name, value)`` with the ``x-amz-meta-`` prefix removed and
    the name lowercased, sorted by name; values are kept as received.
    """

    content_type: str | None = None
    content_encoding: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    cache_control: str | None = None
    expires: str | None = None
    user_metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PayloadInfo:
    """How the request body is framed and what it claims (verified by the body reader).

    ``content_length`` is the HTTP Content-Length (None with Transfer-Encoding: chunked);
    ``decoded_content_length`` is ``x-amz-decoded-content-length`` (aws-chunked bodies);
    ``object_size`` is the size the stored object will have when known.
    """

    content_length: int | None = None
    decoded_content_length: int | None = None
    content_sha256: str | None = None  # x-amz-content-sha256, as sent
    is_chunked_transfer: bool = False
    content_md5: bytes | None = None  # the 16 decoded bytes of Content-MD5
    checksum: ChecksumHeader | None = None  # x-amz-checksum-* header
    sdk_checksum_algorithm: str | None = None  # x-amz-sdk-checksum-algorithm, uppercased
    trailer: str | None = None  # x-amz-trailer, lowercased
    expect_continue: bool = False

    @property
    def object_size(self) -> int | None:
        if self.decoded_content_length is not None:
            return self.decoded_content_length
        if self.is_chunked_transfer:
            return None
        return self.content_length


@dataclass(frozen=True, slots=True)
class ResponseOverrides:
    """``response-*`` query parameters of GetObject (signed requests only)."""

    content_type: str | None = None
    content_language: str | None = None
    expires: str | None = None
    cache_control: str | None = None
    content_disposition: str | None = None
    content_encoding: str | None = None

    @property
    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.content_type,
                self.content_language,
                self.expires,
                self.cache_control,
                self.content_disposition,
                self.content_encoding,
            )
        )


@dataclass(frozen=True, slots=True)
class CopySource:
    """The decoded ``x-amz-copy-source``: bucket, key and optional version id."""

    bucket: str
    key: str
    version_id: str | None = None


# -- operation hierarchy ----------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class S3Operation:
    """Base of every parsed request."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketOperation(S3Operation):
    bucket: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectOperation(BucketOperation):
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsupported(S3Operation):
    """A request we recognise as S3 but do not implement: answer 501 NotImplemented."""

    name: str  # AWS operation name when known, else "METHOD ?subresource"
    bucket: str | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListBuckets(S3Operation):
    prefix: str | None = None
    continuation_token: str | None = None
    max_buckets: int | None = None


# -- bucket operations ------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class CreateBucket(BucketOperation):
    acl: str | None = None
    object_lock_enabled: bool = False
    content_md5: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadBucket(BucketOperation):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteBucket(BucketOperation):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class GetBucketLocation(BucketOperation):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class GetBucketVersioning(BucketOperation):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class PutBucketVersioning(BucketOperation):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class GetBucketTagging(BucketOperation):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class PutBucketTagging(BucketOperation):
    content_md5: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteBucketTagging(BucketOperation):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class GetBucketCors(BucketOperation):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class PutBucketCors(BucketOperation):
    content_md5: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteBucketCors(BucketOperation):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class GetBucketAcl(BucketOperation):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class PutBucketAcl(BucketOperation):
    acl: str | None = None  # canned ACL header; the body (if any) is an AccessControlPolicy


@dataclass(frozen=True, slots=True, kw_only=True)
class GetBucketPolicy(BucketOperation):
    """Answered 404 NoSuchBucketPolicy (we have no policies)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteBucketPolicy(BucketOperation):
    """Answered 204 (nothing to delete)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteBucketLifecycle(BucketOperation):
    """Answered 204 (nothing to delete)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GetBucketConfiguration(BucketOperation):
    """GET of a bucket sub-resource we never configure (lifecycle, encryption, ...).

    ``name`` is the AWS operation (e.g. ``GetBucketEncryption``). When ``error_code`` is
    set the answer is that 404 error (``error_message`` as message); otherwise it is 200
    with ``empty_document`` (e.g. an empty ``BucketLoggingStatus``) -- see
    ``gateway.xml.empty_configuration``.
    """

    name: str
    subresource: str
    error_code: str | None = None
    error_message: str = ""
    empty_document: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListObjects(BucketOperation):
    prefix: str = ""
    delimiter: str | None = None
    marker: str = ""
    max_keys: int = 1000
    encoding_type: str | None = None  # "url" or None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListObjectsV2(BucketOperation):
    prefix: str = ""
    delimiter: str | None = None
    max_keys: int = 1000
    continuation_token: str | None = None
    start_after: str = ""
    fetch_owner: bool = False
    encoding_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListObjectVersions(BucketOperation):
    prefix: str = ""
    delimiter: str | None = None
    key_marker: str = ""
    version_id_marker: str = ""
    max_keys: int = 1000
    encoding_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListMultipartUploads(BucketOperation):
    prefix: str = ""
    delimiter: str | None = None
    key_marker: str = ""
    upload_id_marker: str = ""
    max_uploads: int = 1000
    encoding_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteObjects(BucketOperation):
    """POST ?delete; the body is parsed with ``gateway.xml.parse_delete``."""

    payload: PayloadInfo = field(default_factory=PayloadInfo)


@dataclass(frozen=True, slots=True, kw_only=True)
class CorsPreflight(S3Operation):
    """OPTIONS on a bucket or object."""

    bucket: str
    key: str | None
    origin: str
    request_method: str
    request_headers: tuple[str, ...] = ()  # lowercased


# -- object operations ------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class PutObject(ObjectOperation):
    headers: ObjectHeaders = field(default_factory=ObjectHeaders)
    payload: PayloadInfo = field(default_factory=PayloadInfo)
    tagging: tuple[Tag, ...] = ()
    acl: str | None = None
    storage_class: str = "STANDARD"
    write_conditions: WriteConditions = field(default_factory=WriteConditions)


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyObject(ObjectOperation):
    source: CopySource
    source_conditions: Conditions = field(default_factory=Conditions)
    metadata_directive: str = "COPY"  # COPY | REPLACE
    tagging_directive: str = "COPY"  # COPY | REPLACE
    headers: ObjectHeaders = field(default_factory=ObjectHeaders)  # used when REPLACE
    tagging: tuple[Tag, ...] = ()  # used when tagging_directive is REPLACE
    acl: str | None = None
    storage_class: str = "STANDARD"
    storage_class_given: bool = False
    write_conditions: WriteConditions = field(default_factory=WriteConditions)
    checksum_algorithm: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetObject(ObjectOperation):
    version_id: str | None = None
    range: ByteRangeSpec | None = None
    part_number: int | None = None
    conditions: Conditions = field(default_factory=Conditions)
    overrides: ResponseOverrides = field(default_factory=ResponseOverrides)
    checksum_mode: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadObject(ObjectOperation):
    version_id: str | None = None
    range: ByteRangeSpec | None = None
    part_number: int | None = None
    conditions: Conditions = field(default_factory=Conditions)
    overrides: ResponseOverrides = field(default_factory=ResponseOverrides)
    checksum_mode: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteObject(ObjectOperation):
    version_id: str | None = None
    write_conditions: WriteConditions = field(default_factory=WriteConditions)


@dataclass(frozen=True, slots=True, kw_only=True)
class GetObjectAcl(ObjectOperation):
    version_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PutObjectAcl(ObjectOperation):
    version_id: str | None = None
    acl: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetObjectTagging(ObjectOperation):
    version_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PutObjectTagging(ObjectOperation):
    version_id: str | None = None
    content_md5: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteObjectTagging(ObjectOperation):
    version_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetObjectAttributes(ObjectOperation):
    version_id: str | None = None
    attributes: tuple[str, ...]  # subset of ETag, Checksum, ObjectParts, StorageClass, ObjectSize
    max_parts: int = 1000
    part_number_marker: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateMultipartUpload(ObjectOperation):
    headers: ObjectHeaders = field(default_factory=ObjectHeaders)
    tagging: tuple[Tag, ...] = ()
    acl: str | None = None
    storage_class: str = "STANDARD"
    checksum_algorithm: str | None = None  # x-amz-checksum-algorithm, uppercased
    checksum_type: str | None = None  # x-amz-checksum-type: COMPOSITE | FULL_OBJECT


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadPart(ObjectOperation):
    upload_id: str
    part_number: int
    payload: PayloadInfo = field(default_factory=PayloadInfo)


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadPartCopy(ObjectOperation):
    upload_id: str
    part_number: int
    source: CopySource
    source_range: tuple[int, int] | None = None  # (first, last) inclusive, unchecked vs size
    source_conditions: Conditions = field(default_factory=Conditions)


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteMultipartUpload(ObjectOperation):
    """POST ?uploadId; the body is parsed with ``gateway.xml.parse_complete_multipart_upload``."""

    upload_id: str
    payload: PayloadInfo = field(default_factory=PayloadInfo)  # its ``checksum`` is None
    write_conditions: WriteConditions = field(default_factory=WriteConditions)
    # the expected checksum of the whole OBJECT (not of the XML body): "b64" or, COMPOSITE,
    # "b64-N"; the b64 part is length-checked
    object_checksum: ChecksumHeader | None = None
    checksum_type: str | None = None  # x-amz-checksum-type: COMPOSITE | FULL_OBJECT


@dataclass(frozen=True, slots=True, kw_only=True)
class AbortMultipartUpload(ObjectOperation):
    upload_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListParts(ObjectOperation):
    upload_id: str
    max_parts: int = 1000
    part_number_marker: int = 0
    encoding_type: str | None = None
