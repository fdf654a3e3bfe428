"""Request parsing: method, raw path, raw query, headers and Host -> one ``S3Operation``.

``parse_request`` is pure: it never reads the body, never does I/O and raises nothing but
``gateway.errors.S3Error``. The app calls it first and dispatches with one ``match``.

Addressing: when a virtual-host ``domain`` is configured and ``Host`` (port stripped,
case-folded) is ``<bucket>.<domain>``, the bucket comes from the host and the whole path
is the key; anything else (IPs, ``localhost``, the bare domain) is path-style
``/<bucket>/<key>``.

Keys are opaque: the raw path (pass ASGI ``scope["raw_path"]`` bytes; a ``str`` is taken
as its UTF-8 encoding) is percent-decoded exactly once and decoded as strict UTF-8, never
normalised (``../``, ``//``, ``+``, spaces and ``%`` survive). A malformed escape or invalid
UTF-8 is 400 InvalidURI. Query strings use form decoding (``+`` is a space).

Decisions (documented S3 / MinIO behaviour):

* Storage class: the classes AWS serves online, with millisecond reads and no restore
  step -- ``STANDARD``, ``REDUCED_REDUNDANCY``, ``STANDARD_IA``, ``ONEZONE_IA``,
  ``INTELLIGENT_TIERING``, ``GLACIER_IR`` -- are accepted, stored and echoed (HEAD/GET
  ``x-amz-storage-class`` when not STANDARD, listings, ListParts, GetObjectAttributes);
  the data is stored the same way for all of them (no tiering, no minimum-duration or
  retrieval charges). ``GLACIER`` / ``DEEP_ARCHIVE`` are 400 InvalidStorageClass: they
  would promise archive semantics (GET refused with InvalidObjectState until a
  RestoreObject) that we do not implement; so are the infrastructure-bound classes
  (``OUTPOSTS``, ``SNOW``, ``EXPRESS_ONEZONE``, ``FSX_*``) and unknown values.
* ``response-*`` overrides on an unsigned GET/HEAD are 400 InvalidRequest (as S3).
* ``If-None-Match`` on writes supports only ``*`` (other values 501, as S3).
* ``PUT ?uploadId`` without ``partNumber`` (or the reverse) is 400 InvalidArgument rather
  than silently writing a whole object.
* Copying an object onto itself with the COPY directive and no storage class or tagging
  change is 400 InvalidRequest (as S3).
* ``x-amz-copy-source`` is form-decoded (``+`` is a space), as S3 and MinIO do.
* On CompleteMultipartUpload ``x-amz-checksum-<alg>`` is the expected checksum of the
  whole object (``b64``, or COMPOSITE ``b64-N``), not of the XML body: it goes to
  ``object_checksum`` and the body's ``PayloadInfo.checksum`` stays None.
* Header section larger than ``RouterLimits.max_header_bytes`` (8 KiB as S3) is 400
  RequestHeaderSectionTooLarge; user metadata over 2 KiB is 400 MetadataTooLarge.

Must not import starlette, asyncio or anything doing I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from gateway import operations as op
from gateway.conditions import Conditions, WriteConditions, parse_conditions, parse_etag_list
from gateway.errors import S3Error
from gateway.ranges import parse_copy_source_range, parse_range

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

CANNED_ACLS = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "aws-exec-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
        "log-delivery-write",
    }
)
# algorithm -> decoded digest length in bytes
CHECKSUM_ALGORITHMS: Mapping[str, int] = {
    "CRC32": 4,
    "CRC32C": 4,
    "CRC64NVME": 8,
    "SHA1": 20,
    "SHA256": 32,
}
_STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER_IR",
    }
)
_OBJECT_ATTRIBUTES = frozenset({"ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"})
_CORS_METHODS = frozenset({"GET", "PUT", "HEAD", "POST", "DELETE"})
_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"})
_MAX_INT32 = 2**31 - 1


@dataclass(frozen=True, slots=True)
class RouterLimits:
    max_header_bytes: int = 8 * 1024
    max_metadata_bytes: int = 2 * 1024
    max_key_bytes: int = 1024
    max_object_bytes: int = 5 * 1024**3  # single PutObject
    max_part_bytes: int = 5 * 1024**3


DEFAULT_LIMITS = RouterLimits()


class Headers:
    """Case-insensitive, order-preserving multi-map of request headers."""

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple((str(n), str(v)) for n, v in items)
        index: dict[str, list[str]] = {}
        for name, value in self._items:
            index.setdefault(name.lower(), []).append(value)
        self._index = index

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """From ASGI ``scope["headers"]`` (bytes pairs, decoded as latin-1 like HTTP)."""
        return cls((n.decode("latin-1"), v.decode("latin-1")) for n, v in raw)

    def get(self, name: str) -> str | None:
        """All values of ``name`` joined with ``,`` (RFC 7230), or None when absent."""
        values = self._index.get(name.lower())
        if values is None:
            return None
        return values[0] if len(values) == 1 else ",".join(values)

    def get_all(self, name: str) -> tuple[str, ...]:
        return tuple(self._index.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def items(self) -> tuple[tuple[str, str], ...]:
        return self._items

    def lower_names(self) -> Iterable[str]:
        return self._index.keys()

    @property
    def size_bytes(self) -> int:
        """Approximate size of the header section on the wire (``name: value\\r\\n``)."""
        return sum(len(n) + len(v) + 4 for n, v in self._items)


# -- decoding ---------------------------------------------------------------------------
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _as_bytes(raw: str | bytes) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")


def _pct_decode(raw: bytes, *, plus_is_space: bool) -> str:
    if plus_is_space:
        raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        if _BAD_ESCAPE.search(raw):
            raise S3Error.invalid_uri()
        raw = unquote_to_bytes(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error.invalid_uri() from None


def parse_query(query: str | bytes) -> dict[str, str]:
    """Form-decode a raw query string; the first occurrence of a name wins."""
    result: dict[str, str] = {}
    raw = _as_bytes(query)
    if not raw:
        return result
    for part in raw.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        key = _pct_decode(name, plus_is_space=True)
        if key not in result:
            result[key] = _pct_decode(value, plus_is_space=True)
    return result


_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_RE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")
_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def is_valid_bucket_name(name: str) -> bool:
    """S3 bucket naming rules (the current, strict set)."""
    return (
        _BUCKET_RE.fullmatch(name) is not None
        and ".." not in name
        and ".-" not in name
        and "-." not in name
        and _IPV4_RE.fullmatch(name) is None
        and not name.startswith(_BAD_PREFIXES)
        and not name.endswith(_BAD_SUFFIXES)
    )


def _strip_port(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host  # IPv6 literal: never a virtual host
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name
    return host


def _split_target(
    raw_path: bytes, host: str | None, domain: str | None
) -> tuple[str | None, str | None]:
    """(bucket, key) from the addressing style; key None for bucket/service requests."""
    if not raw_path.startswith(b"/"):
        raise S3Error.invalid_uri()
    if domain and host:
        h, d = _strip_port(host), _strip_port(domain).strip(".")
        if d and h.endswith("." + d) and len(h) > len(d) + 1:
            bucket = h[: -len(d) - 1]
            key = _pct_decode(raw_path[1:], plus_is_space=False)
            return bucket, key or None
    rest = raw_path[1:]
    if not rest:
        return None, None
    bucket_raw, sep, key_raw = rest.partition(b"/")
    bucket = _pct_decode(bucket_raw, plus_is_space=False)
    key = _pct_decode(key_raw, plus_is_space=False) if sep else ""
    return bucket, key or None


# -- parameter helpers --------------------------------------------------------------------
_INT_RE = re.compile(r"-?[0-9]+")


def _int_param(q: Mapping[str, str], name: str, default: int, cap: int) -> int:
    raw = q.get(name)
    if raw is None:
        return default
    if not _INT_RE.fullmatch(raw) or not 0 <= int(raw) <= _MAX_INT32:
        raise S3Error.invalid_argument(
            f"Argument {name} must be an integer between 0 and {_MAX_INT32}", name, raw
        )
    return min(int(raw), cap)


def _part_number(raw: str | None, name: str = "partNumber") -> int:
    if raw is None or not _INT_RE.fullmatch(raw) or not 1 <= int(raw) <= 10000:
        raise S3Error.invalid_argument(
            "Part number must be an integer between 1 and 10000, inclusive", name, raw
        )
    return int(raw)


def _encoding_type(q: Mapping[str, str]) -> str | None:
    raw = q.get("encoding-type")
    if not raw:
        return None
    if raw.lower() != "url":
        raise S3Error.invalid_argument(
            "Invalid Encoding Method specified in Request", "encoding-type", raw
        )
    return "url"


def _delimiter(q: Mapping[str, str]) -> str | None:
    return q.get("delimiter") or None


def _version_id(q: Mapping[str, str]) -> str | None:
    raw = q.get("versionId")
    if raw is None:
        return None
    if not raw:
        raise S3Error.invalid_argument("Version id cannot be the empty string", "versionId", raw)
    return raw


def _upload_id(q: Mapping[str, str]) -> str:
    raw = q.get("uploadId", "")
    if not raw:
        raise S3Error.invalid_argument("Upload id cannot be the empty string", "uploadId", raw)
    return raw


def _content_md5(h: Headers) -> bytes | None:
    raw = h.get("content-md5")
    if raw is None:
        return None
    try:
        digest = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise S3Error.invalid_digest() from None
    if len(digest) != 16:
        raise S3Error.invalid_digest()
    return digest


def _algorithm(raw: str | None, header: str) -> str | None:
    if raw is None:
        return None
    algo = raw.strip().upper()
    if algo not in CHECKSUM_ALGORITHMS:
        raise S3Error.invalid_request(f"Value for {header} header is invalid.")
    return algo


def _checksum(h: Headers, *, part_count_suffix: bool = False) -> op.ChecksumHeader | None:
    """The single x-amz-checksum-<alg> header; with ``part_count_suffix`` a COMPOSITE
    multipart value ``b64-N`` is accepted too (CompleteMultipartUpload)."""
    found: list[op.ChecksumHeader] = []
    for algo, size in CHECKSUM_ALGORITHMS.items():
        header = f"x-amz-checksum-{algo.lower()}"
        raw = h.get(header)
        if raw is None:
            continue
        digest, dash, count = raw.strip().partition("-")
        if not part_count_suffix or not dash:
            digest = raw.strip()
        elif not (count.isascii() and count.isdigit() and 0 < int(count) <= 10_000):
            raise S3Error.invalid_request(f"Value for {header} header is invalid.")
        try:
            ok = len(base64.b64decode(digest, validate=True)) == size
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise S3Error.invalid_request(f"Value for {header} header is invalid.")
        found.append(op.ChecksumHeader(algo, raw.strip()))
    if len(found) > 1:
        raise S3Error.invalid_request(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    return found[0] if found else None


def _length(h: Headers, name: str) -> int | None:
    raw = h.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit():
        raise S3Error.invalid_argument(f"{name} must be a non-negative integer", name, raw)
    return int(raw)


def _payload(
    h: Headers, max_size: int, *, body_required: bool, body_checksum: bool = True
) -> op.PayloadInfo:
    """The body's framing and claims; ``body_checksum=False`` when x-amz-checksum-<alg>
    describes something else than the body (CompleteMultipartUpload: the object)."""
    content_length = _length(h, "content-length")
    decoded = _length(h, "x-amz-decoded-content-length")
    chunked = "chunked" in (h.get("transfer-encoding") or "").lower()
    if body_required and content_length is None and decoded is None and not chunked:
        raise S3Error.missing_content_length()
    checksum = _checksum(h) if body_checksum else None
    sdk_algo = _algorithm(h.get("x-amz-sdk-checksum-algorithm"), "x-amz-sdk-checksum-algorithm")
    if checksum is not None and sdk_algo is not None and sdk_algo != checksum.algorithm:
        raise S3Error.invalid_request("Value for x-amz-sdk-checksum-algorithm header is invalid.")
    trailer = h.get("x-amz-trailer")
    payload = op.PayloadInfo(
        content_length=content_length,
        decoded_content_length=decoded,
        content_sha256=h.get("x-amz-content-sha256"),
        is_chunked_transfer=chunked,
        content_md5=_content_md5(h),
        checksum=checksum,
        sdk_checksum_algorithm=sdk_algo,
        trailer=trailer.strip().lower() if trailer else None,
        expect_continue=(h.get("expect") or "").strip().lower() == "100-continue",
    )
    size = payload.object_size
    if size is not None and size > max_size:
        raise S3Error.entity_too_large(size, max_size)
    return payload


def _strip_aws_chunked(value: str | None) -> str | None:
    if value is None:
        return None
    kept = [t.strip() for t in value.split(",") if t.strip() and t.strip().lower() != "aws-chunked"]
    return ",".join(kept) or None


def _byte_len(text: str) -> int:
    try:
        return len(text.encode("latin-1"))
    except UnicodeEncodeError:
        return len(text.encode("utf-8", "surrogatepass"))


def _object_headers(h: Headers, limits: RouterLimits) -> op.ObjectHeaders:
    meta: dict[str, str] = {}
    for name in h.lower_names():
        if name.startswith("x-amz-meta-") and len(name) > len("x-amz-meta-"):
            meta[name[len("x-amz-meta-") :]] = ",".join(h.get_all(name))
    size = sum(_byte_len(k) + _byte_len(v) for k, v in meta.items())
    if size > limits.max_metadata_bytes:
        raise S3Error.metadata_too_large(size, limits.max_metadata_bytes)
    return op.ObjectHeaders(
        content_type=h.get("content-type"),
        content_encoding=_strip_aws_chunked(h.get("content-encoding")),
        content_disposition=h.get("content-disposition"),
        content_language=h.get("content-language"),
        cache_control=h.get("cache-control"),
        expires=h.get("expires"),
        user_metadata=tuple(sorted(meta.items())),
    )


def _tagging(h: Headers) -> tuple[op.Tag, ...]:
    raw = h.get("x-amz-tagging")
    if not raw:
        return ()
    tags: list[op.Tag] = []
    for part in _as_bytes(raw).split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        tags.append(
            op.Tag(_pct_decode(name, plus_is_space=True), _pct_decode(value, plus_is_space=True))
        )
    return op.validate_tags(tags, 10)


def _acl(h: Headers) -> str | None:
    raw = h.get("x-amz-acl")
    if raw is None:
        return None
    acl = raw.strip()
    if acl not in CANNED_ACLS:
        raise S3Error.invalid_argument("Invalid canned ACL", "x-amz-acl", raw)
    return acl


def _storage_class(h: Headers) -> str:
    raw = h.get("x-amz-storage-class")
    if raw is None:
        return "STANDARD"
    if raw.strip() not in _STORAGE_CLASSES:
        raise S3Error.invalid_storage_class(raw)
    return raw.strip()


def _write_conditions(h: Headers) -> WriteConditions:
    inm = h.get("if-none-match")
    if inm is not None and inm.strip() != "*":
        raise S3Error.not_implemented("If-None-Match supports only '*' on writes")
    return WriteConditions(
        if_none_match_any=inm is not None, if_match=parse_etag_list(h.get("if-match"))
    )


def _conditions(h: Headers, prefix: str = "") -> Conditions:
    return parse_conditions(
        h.get(prefix + "if-match"),
        h.get(prefix + "if-none-match"),
        h.get(prefix + "if-modified-since"),
        h.get(prefix + "if-unmodified-since"),
    )


def _is_signed(h: Headers, q: Mapping[str, str]) -> bool:
    return "authorization" in h or "X-Amz-Signature" in q or "Signature" in q


def _overrides(q: Mapping[str, str], h: Headers) -> op.ResponseOverrides:
    o = op.ResponseOverrides(
        content_type=q.get("response-content-type"),
        content_language=q.get("response-content-language"),
        expires=q.get("response-expires"),
        cache_control=q.get("response-cache-control"),
        content_disposition=q.get("response-content-disposition"),
        content_encoding=q.get("response-content-encoding"),
    )
    if not o.is_empty and not _is_signed(h, q):
        raise S3Error.invalid_request(
            "Request specific response headers cannot be used for anonymous GET requests."
        )
    return o


def _copy_source(h: Headers) -> op.CopySource:
    raw = h.get("x-amz-copy-source") or ""
    raw_b = _as_bytes(raw.strip())
    path, _, query = raw_b.partition(b"?")
    version_id: str | None = None
    if query:
        version_id = parse_query(query).get("versionId")
        if version_id == "":
            raise S3Error.invalid_argument("Version id cannot be the empty string")
    # form-decoded like S3 and MinIO: a literal '+' is a space (clients send %2B for '+')
    decoded = _pct_decode(path, plus_is_space=True)
    bucket, _, key = decoded.removeprefix("/").partition("/")
    if not bucket or not key:
        raise S3Error.invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            "x-amz-copy-source",
            raw,
        )
    if not is_valid_bucket_name(bucket):
        raise S3Error.invalid_bucket_name(bucket)
    return op.CopySource(bucket, key, version_id)


_UNSUPPORTED_WRITE_HEADERS = (
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-copy-source-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
)


def _reject_unsupported_features(h: Headers) -> None:
    """SSE-C, SSE-KMS and object lock would silently not apply: answer 501 instead.

    ``x-amz-server-side-encryption: AES256`` (SSE-S3) is accepted and ignored, like a
    server whose disks are encrypted at rest; ``aws:kms`` is not.
    """
    for name in _UNSUPPORTED_WRITE_HEADERS:
        if name in h:
            raise S3Error.not_implemented(name)
    sse = h.get("x-amz-server-side-encryption")
    if sse is not None and sse.strip() != "AES256":
        raise S3Error.not_implemented("x-amz-server-side-encryption")


def _directive(h: Headers, name: str) -> str:
    raw = h.get(name)
    if raw is None:
        return "COPY"
    value = raw.strip().upper()
    if value not in ("COPY", "REPLACE"):
        raise S3Error.invalid_argument(f"Unknown {name} value", name, raw)
    return value


# -- dispatch -------------------------------------------------------------------------------
# GET of bucket sub-resources we never configure: AWS name, 404 code + message, or None
# and the root element of the empty 200 document.
_UNCONFIGURED: Mapping[str, tuple[str, str | None, str]] = {
    "lifecycle": (
        "GetBucketLifecycleConfiguration",
        "NoSuchLifecycleConfiguration",
        "The lifecycle configuration does not exist",
    ),
    "encryption": (
        "GetBucketEncryption",
        "ServerSideEncryptionConfigurationNotFoundError",
        "The server side encryption configuration was not found",
    ),
    "website": (
        "GetBucketWebsite",
        "NoSuchWebsiteConfiguration",
        "The specified bucket does not have a website configuration",
    ),
    "replication": (
        "GetBucketReplication",
        "ReplicationConfigurationNotFoundError",
        "The replication configuration was not found",
    ),
    "object-lock": (
        "GetObjectLockConfiguration",
        "ObjectLockConfigurationNotFoundError",
        "Object Lock configuration does not exist for this bucket",
    ),
    "ownershipControls": (
        "GetBucketOwnershipControls",
        "OwnershipControlsNotFoundError",
        "The bucket ownership controls were not found",
    ),
    "publicAccessBlock": (
        "GetPublicAccessBlock",
        "NoSuchPublicAccessBlockConfiguration",
        "The public access block configuration was not found",
    ),
    "policyStatus": (
        "GetBucketPolicyStatus",
        "NoSuchBucketPolicy",
        "The bucket policy does not exist",
    ),
    "logging": ("GetBucketLogging", None, "BucketLoggingStatus"),
    "notification": ("GetBucketNotificationConfiguration", None, "NotificationConfiguration"),
    "requestPayment": ("GetBucketRequestPayment", None, "RequestPaymentConfiguration"),
    "accelerate": ("GetBucketAccelerateConfiguration", None, "AccelerateConfiguration"),
}
_BUCKET_UNSUPPORTED = (
    "analytics",
    "metrics",
    "inventory",
    "intelligent-tiering",
    "session",
    "metadataTable",
    "metadataConfiguration",
)
_PUT_BUCKET_UNSUPPORTED = (
    "policy",
    "lifecycle",
    "encryption",
    "website",
    "replication",
    "object-lock",
    "ownershipControls",
    "publicAccessBlock",
    "logging",
    "notification",
    "requestPayment",
    "accelerate",
    *_BUCKET_UNSUPPORTED,
)
_OBJECT_UNSUPPORTED = ("torrent", "retention", "legal-hold", "restore", "select", "renameObject")


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
    bucket, key = _split_target(_as_bytes(raw_path), host, domain)
    if bucket is None:
        if method == "GET":
            return op.ListBuckets(
                prefix=q.get("prefix"),
                continuation_token=q.get("continuation-token"),
                max_buckets=_int_param(q, "max-buckets", 10000, 10000)
                if "max-buckets" in q
                else None,
            )
        raise S3Error.method_not_allowed(method, "SERVICE")
    if not is_valid_bucket_name(bucket):
        raise S3Error.invalid_bucket_name(bucket)
    if method == "OPTIONS":
        return _preflight(bucket, key, h)
    if key is None:
        return _bucket_op(method, bucket, q, h)
    key_bytes = len(key.encode("utf-8"))
    if key_bytes > limits.max_key_bytes:
        raise S3Error.key_too_long(key_bytes, limits.max_key_bytes)
    return _object_op(method, bucket, key, q, h, limits)


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


def _bucket_op(method: str, bucket: str, q: Mapping[str, str], h: Headers) -> op.S3Operation:
    if method == "HEAD":
        return op.HeadBucket(bucket=bucket)
    if method == "GET":
        return _get_bucket(bucket, q)
    if method == "PUT":
        if "versioning" in q:
            return op.PutBucketVersioning(bucket=bucket)
        if "tagging" in q:
            return op.PutBucketTagging(bucket=bucket, content_md5=_content_md5(h))
        if "cors" in q:
            return op.PutBucketCors(bucket=bucket, content_md5=_content_md5(h))
        if "acl" in q:
            return op.PutBucketAcl(bucket=bucket, acl=_acl(h))
        for sub in _PUT_BUCKET_UNSUPPORTED:
            if sub in q:
                return op.Unsupported(name=f"PUT ?{sub}", bucket=bucket)
        lock = (h.get("x-amz-bucket-object-lock-enabled") or "").strip().lower() == "true"
        return op.CreateBucket(
            bucket=bucket, acl=_acl(h), object_lock_enabled=lock, content_md5=_content_md5(h)
        )
    if method == "DELETE":
        if "tagging" in q:
            return op.DeleteBucketTagging(bucket=bucket)
        if "cors" in q:
            return op.DeleteBucketCors(bucket=bucket)
        if "policy" in q:
            return op.DeleteBucketPolicy(bucket=bucket)
        if "lifecycle" in q:
            return op.DeleteBucketLifecycle(bucket=bucket)
        for sub in _PUT_BUCKET_UNSUPPORTED:
            if sub in q:
                return op.Unsupported(name=f"DELETE ?{sub}", bucket=bucket)
        return op.DeleteBucket(bucket=bucket)
    # POST
    if "delete" in q:
        payload = _payload(h, 64 * 1024 * 1024, body_required=False)
        if not _has_integrity_check(payload):
            # S3 requires Content-MD5 or an x-amz-checksum-* (header or trailer) here
            raise S3Error.invalid_request(
                "Missing required header for this request: Content-MD5 OR x-amz-checksum-*"
            )
        return op.DeleteObjects(bucket=bucket, payload=payload)
    return op.Unsupported(name="PostObject", bucket=bucket)


def _has_integrity_check(payload: op.PayloadInfo) -> bool:
    """Content-MD5, an x-amz-checksum-* header or a trailing x-amz-checksum-* announced."""
    trailer = payload.trailer or ""
    return (
        payload.content_md5 is not None
        or payload.checksum is not None
        or trailer.startswith("x-amz-checksum-")
    )


def _get_bucket(bucket: str, q: Mapping[str, str]) -> op.S3Operation:
    if "location" in q:
        return op.GetBucketLocation(bucket=bucket)
    if "versioning" in q:
        return op.GetBucketVersioning(bucket=bucket)
    if "tagging" in q:
        return op.GetBucketTagging(bucket=bucket)
    if "cors" in q:
        return op.GetBucketCors(bucket=bucket)
    if "acl" in q:
        return op.GetBucketAcl(bucket=bucket)
    if "policy" in q:
        return op.GetBucketPolicy(bucket=bucket)
    for sub, (name, code, text) in _UNCONFIGURED.items():
        if sub in q:
            if code is None:
                return op.GetBucketConfiguration(
                    bucket=bucket, name=name, subresource=sub, empty_document=text
                )
            return op.GetBucketConfiguration(
                bucket=bucket, name=name, subresource=sub, error_code=code, error_message=text
            )
    for sub in _BUCKET_UNSUPPORTED:
        if sub in q:
            return op.Unsupported(name=f"GET ?{sub}", bucket=bucket)
    if "uploads" in q:
        return op.ListMultipartUploads(
            bucket=bucket,
            prefix=q.get("prefix", ""),
            delimiter=_delimiter(q),
            key_marker=q.get("key-marker", ""),
            upload_id_marker=q.get("upload-id-marker", ""),
            max_uploads=_int_param(q, "max-uploads", 1000, 1000),
            encoding_type=_encoding_type(q),
        )
    if "versions" in q:
        return op.ListObjectVersions(
            bucket=bucket,
            prefix=q.get("prefix", ""),
            delimiter=_delimiter(q),
            key_marker=q.get("key-marker", ""),
            version_id_marker=q.get("version-id-marker", ""),
            max_keys=_int_param(q, "max-keys", 1000, 1000),
            encoding_type=_encoding_type(q),
        )
    list_type = q.get("list-type")
    if list_type is None:
        return op.ListObjects(
            bucket=bucket,
            prefix=q.get("prefix", ""),
            delimiter=_delimiter(q),
            marker=q.get("marker", ""),
            max_keys=_int_param(q, "max-keys", 1000, 1000),
            encoding_type=_encoding_type(q),
        )
    if list_type != "2":
        raise S3Error.invalid_argument("Invalid list type specified", "list-type", list_type)
    token = q.get("continuation-token")
    if token == "":
        raise S3Error.invalid_argument(
            "The continuation token provided is incorrect", "continuation-token", token
        )
    return op.ListObjectsV2(
        bucket=bucket,
        prefix=q.get("prefix", ""),
        delimiter=_delimiter(q),
        max_keys=_int_param(q, "max-keys", 1000, 1000),
        continuation_token=token,
        start_after=q.get("start-after", ""),
        fetch_owner=q.get("fetch-owner", "").lower() == "true",
        encoding_type=_encoding_type(q),
    )


def _object_op(
    method: str, bucket: str, key: str, q: Mapping[str, str], h: Headers, limits: RouterLimits
) -> op.S3Operation:
    for sub in _OBJECT_UNSUPPORTED:
        if sub in q:
            return op.Unsupported(name=f"{method} ?{sub}", bucket=bucket, key=key)
    if method in ("GET", "HEAD"):
        return _read_object(method, bucket, key, q, h)
    if method == "PUT":
        return _put_object(bucket, key, q, h, limits)
    if method == "POST":
        if "uploads" in q:
            _reject_unsupported_features(h)
            return op.CreateMultipartUpload(
                bucket=bucket,
                key=key,
                headers=_object_headers(h, limits),
                tagging=_tagging(h),
                acl=_acl(h),
                storage_class=_storage_class(h),
                checksum_algorithm=_algorithm(
                    h.get("x-amz-checksum-algorithm"), "x-amz-checksum-algorithm"
                ),
                checksum_type=_checksum_type(h),
            )
        if "uploadId" in q:
            return op.CompleteMultipartUpload(
                bucket=bucket,
                key=key,
                upload_id=_upload_id(q),
                payload=_payload(h, 64 * 1024 * 1024, body_required=False, body_checksum=False),
                write_conditions=_write_conditions(h),
                object_checksum=_checksum(h, part_count_suffix=True),
                checksum_type=_checksum_type(h),
            )
        return op.Unsupported(name="POST object", bucket=bucket, key=key)
    # DELETE
    if "uploadId" in q:
        return op.AbortMultipartUpload(bucket=bucket, key=key, upload_id=_upload_id(q))
    if "tagging" in q:
        return op.DeleteObjectTagging(bucket=bucket, key=key, version_id=_version_id(q))
    return op.DeleteObject(
        bucket=bucket,
        key=key,
        version_id=_version_id(q),
        write_conditions=WriteConditions(if_match=parse_etag_list(h.get("if-match"))),
    )


def _checksum_type(h: Headers) -> str | None:
    raw = h.get("x-amz-checksum-type")
    if raw is None:
        return None
    value = raw.strip().upper()
    if value not in ("COMPOSITE", "FULL_OBJECT"):
        raise S3Error.invalid_request("Value for x-amz-checksum-type header is invalid.")
    return value


def _read_object(
    method: str, bucket: str, key: str, q: Mapping[str, str], h: Headers
) -> op.S3Operation:
    version_id = _version_id(q)
    if method == "GET":
        if "acl" in q:
            return op.GetObjectAcl(bucket=bucket, key=key, version_id=version_id)
        if "tagging" in q:
            return op.GetObjectTagging(bucket=bucket, key=key, version_id=version_id)
        if "attributes" in q:
            return _get_object_attributes(bucket, key, version_id, h)
        if "uploadId" in q:
            return op.ListParts(
                bucket=bucket,
                key=key,
                upload_id=_upload_id(q),
                max_parts=_int_param(q, "max-parts", 1000, 1000),
                part_number_marker=_int_param(q, "part-number-marker", 0, _MAX_INT32),
                encoding_type=_encoding_type(q),
            )
    if "x-amz-server-side-encryption-customer-algorithm" in h:
        raise S3Error.not_implemented("x-amz-server-side-encryption-customer-algorithm")
    range_spec = parse_range(h.get("range"))
    part_number: int | None = None
    if "partNumber" in q:
        part_number = _part_number(q["partNumber"])
        if h.get("range") is not None:
            raise S3Error.invalid_request(
                "Cannot specify both Range header and partNumber query parameter"
            )
    cls = op.GetObject if method == "GET" else op.HeadObject
    return cls(
        bucket=bucket,
        key=key,
        version_id=version_id,
        range=range_spec,
        part_number=part_number,
        conditions=_conditions(h),
        overrides=_overrides(q, h),
        checksum_mode=(h.get("x-amz-checksum-mode") or "").strip().upper() == "ENABLED",
    )


def _get_object_attributes(
    bucket: str, key: str, version_id: str | None, h: Headers
) -> op.GetObjectAttributes:
    raw = h.get("x-amz-object-attributes") or ""
    attrs = tuple(dict.fromkeys(a.strip() for a in raw.split(",") if a.strip()))
    if not attrs or any(a not in _OBJECT_ATTRIBUTES for a in attrs):
        raise S3Error.invalid_argument(
            "Invalid attribute name specified", "x-amz-object-attributes", raw
        )
    hq = {
        name: value
        for name in ("x-amz-max-parts", "x-amz-part-number-marker")
        if (value := h.get(name)) is not None
    }
    return op.GetObjectAttributes(
        bucket=bucket,
        key=key,
        version_id=version_id,
        attributes=attrs,
        max_parts=_int_param(hq, "x-amz-max-parts", 1000, 1000),
        part_number_marker=_int_param(hq, "x-amz-part-number-marker", 0, _MAX_INT32),
    )


def _put_object(
    bucket: str, key: str, q: Mapping[str, str], h: Headers, limits: RouterLimits
) -> op.S3Operation:
    _reject_unsupported_features(h)
    if "acl" in q:
        return op.PutObjectAcl(bucket=bucket, key=key, version_id=_version_id(q), acl=_acl(h))
    if "tagging" in q:
        return op.PutObjectTagging(
            bucket=bucket, key=key, version_id=_version_id(q), content_md5=_content_md5(h)
        )
    has_copy = h.get("x-amz-copy-source") is not None
    if "uploadId" in q or "partNumber" in q:
        upload_id = _upload_id(q)
        part_number = _part_number(q.get("partNumber"))
        if has_copy:
            raw_range = h.get("x-amz-copy-source-range")
            return op.UploadPartCopy(
                bucket=bucket,
                key=key,
                upload_id=upload_id,
                part_number=part_number,
                source=_copy_source(h),
                source_range=parse_copy_source_range(raw_range) if raw_range is not None else None,
                source_conditions=_conditions(h, "x-amz-copy-source-"),
            )
        return op.UploadPart(
            bucket=bucket,
            key=key,
            upload_id=upload_id,
            part_number=part_number,
            payload=_payload(h, limits.max_part_bytes, body_required=True),
        )
    if has_copy:
        return _copy_object(bucket, key, h, limits)
    return op.PutObject(
        bucket=bucket,
        key=key,
        headers=_object_headers(h, limits),
        payload=_payload(h, limits.max_object_bytes, body_required=True),
        tagging=_tagging(h),
        acl=_acl(h),
        storage_class=_storage_class(h),
        write_conditions=_write_conditions(h),
    )


def _copy_object(bucket: str, key: str, h: Headers, limits: RouterLimits) -> op.CopyObject:
    source = _copy_source(h)
    metadata_directive = _directive(h, "x-amz-metadata-directive")
    tagging_directive = _directive(h, "x-amz-tagging-directive")
    storage_class_given = h.get("x-amz-storage-class") is not None
    if (
        source.bucket == bucket
        and source.key == key
        and source.version_id is None
        and metadata_directive == "COPY"
        and tagging_directive == "COPY"
        and not storage_class_given
    ):
        raise S3Error.invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect "
            "location or encryption attributes."
        )
    return op.CopyObject(
        bucket=bucket,
        key=key,
        source=source,
        source_conditions=_conditions(h, "x-amz-copy-source-"),
        metadata_directive=metadata_directive,
        tagging_directive=tagging_directive,
        headers=_object_headers(h, limits),
        tagging=_tagging(h),
        acl=_acl(h),
        storage_class=_storage_class(h),
        storage_class_given=storage_class_given,
        write_conditions=_write_conditions(h),
        checksum_algorithm=_algorithm(
            h.get("x-amz-checksum-algorithm"), "x-amz-checksum-algorithm"
        ),
    )
