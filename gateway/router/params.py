"""Header and query parameters of an S3 request, parsed into typed values.

Owns: one function per parameter family -- integers and part numbers, encoding-type,
version and upload ids, object headers and user metadata, tagging, canned ACLs, storage
classes, conditional headers, ``response-*`` overrides, ``x-amz-copy-source`` and the
copy directives -- each raising ``S3Error`` for an invalid value. The body's framing and
checksums are ``gateway.router.body``.

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
* ``x-amz-copy-source`` is form-decoded (``+`` is a space), as S3 and MinIO do.
* SSE-C, SSE-KMS and object-lock headers on writes are 501 (they would silently not
  apply); user metadata over ``RouterLimits.max_metadata_bytes`` (2 KiB) is 400
  MetadataTooLarge.

Pure: raises only ``gateway.errors.S3Error``. Must not import starlette, asyncio or
anything doing I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway import operations as op
from gateway.conditions import Conditions, WriteConditions, parse_conditions, parse_etag_list
from gateway.errors import S3Error
from gateway.router.request import (
    Headers,
    RouterLimits,
    as_bytes,
    is_valid_bucket_name,
    parse_query,
    pct_decode,
)

__all__ = [
    "CANNED_ACLS",
    "MAX_INT32",
    "acl",
    "conditions",
    "copy_source",
    "delimiter",
    "directive",
    "encoding_type",
    "int_param",
    "object_headers",
    "overrides",
    "part_number",
    "reject_unsupported_features",
    "storage_class",
    "tagging",
    "upload_id",
    "version_id",
    "write_conditions",
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
MAX_INT32 = 2**31 - 1
_INT_RE = re.compile(r"-?[0-9]+")


def int_param(q: Mapping[str, str], name: str, default: int, cap: int) -> int:
    raw = q.get(name)
    if raw is None:
        return default
    if not _INT_RE.fullmatch(raw) or not 0 <= int(raw) <= MAX_INT32:
        raise S3Error.invalid_argument(
            f"Argument {name} must be an integer between 0 and {MAX_INT32}", name, raw
        )
    return min(int(raw), cap)


def part_number(raw: str | None, name: str = "partNumber") -> int:
    if raw is None or not _INT_RE.fullmatch(raw) or not 1 <= int(raw) <= 10000:
        raise S3Error.invalid_argument(
            "Part number must be an integer between 1 and 10000, inclusive", name, raw
        )
    return int(raw)


def encoding_type(q: Mapping[str, str]) -> str | None:
    raw = q.get("encoding-type")
    if not raw:
        return None
    if raw.lower() != "url":
        raise S3Error.invalid_argument(
            "Invalid Encoding Method specified in Request", "encoding-type", raw
        )
    return "url"


def delimiter(q: Mapping[str, str]) -> str | None:
    return q.get("delimiter") or None


def version_id(q: Mapping[str, str]) -> str | None:
    raw = q.get("versionId")
    if raw is None:
        return None
    if not raw:
        raise S3Error.invalid_argument("Version id cannot be the empty string", "versionId", raw)
    return raw


def upload_id(q: Mapping[str, str]) -> str:
    raw = q.get("uploadId", "")
    if not raw:
        raise S3Error.invalid_argument("Upload id cannot be the empty string", "uploadId", raw)
    return raw


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


def object_headers(h: Headers, limits: RouterLimits) -> op.ObjectHeaders:
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


def tagging(h: Headers) -> tuple[op.Tag, ...]:
    raw = h.get("x-amz-tagging")
    if not raw:
        return ()
    tags: list[op.Tag] = []
    for part in as_bytes(raw).split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        tags.append(
            op.Tag(pct_decode(name, plus_is_space=True), pct_decode(value, plus_is_space=True))
        )
    return op.validate_tags(tags, 10)


def acl(h: Headers) -> str | None:
    raw = h.get("x-amz-acl")
    if raw is None:
        return None
    acl = raw.strip()
    if acl not in CANNED_ACLS:
        raise S3Error.invalid_argument("Invalid canned ACL", "x-amz-acl", raw)
    return acl


def storage_class(h: Headers) -> str:
    raw = h.get("x-amz-storage-class")
    if raw is None:
        return "STANDARD"
    if raw.strip() not in _STORAGE_CLASSES:
        raise S3Error.invalid_storage_class(raw)
    return raw.strip()


def write_conditions(h: Headers) -> WriteConditions:
    inm = h.get("if-none-match")
    if inm is not None and inm.strip() != "*":
        raise S3Error.not_implemented("If-None-Match supports only '*' on writes")
    return WriteConditions(
        if_none_match_any=inm is not None, if_match=parse_etag_list(h.get("if-match"))
    )


def conditions(h: Headers, prefix: str = "") -> Conditions:
    return parse_conditions(
        h.get(prefix + "if-match"),
        h.get(prefix + "if-none-match"),
        h.get(prefix + "if-modified-since"),
        h.get(prefix + "if-unmodified-since"),
    )


def _is_signed(h: Headers, q: Mapping[str, str]) -> bool:
    return "authorization" in h or "X-Amz-Signature" in q or "Signature" in q


def overrides(q: Mapping[str, str], h: Headers) -> op.ResponseOverrides:
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


def copy_source(h: Headers) -> op.CopySource:
    raw = h.get("x-amz-copy-source") or ""
    raw_b = as_bytes(raw.strip())
    path, _, query = raw_b.partition(b"?")
    version_id: str | None = None
    if query:
        version_id = parse_query(query).get("versionId")
        if version_id == "":
            raise S3Error.invalid_argument("Version id cannot be the empty string")
    # form-decoded like S3 and MinIO: a literal '+' is a space (clients send %2B for '+')
    decoded = pct_decode(path, plus_is_space=True)
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


def reject_unsupported_features(h: Headers) -> None:
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


def directive(h: Headers, name: str) -> str:
    raw = h.get(name)
    if raw is None:
        return "COPY"
    value = raw.strip().upper()
    if value not in ("COPY", "REPLACE"):
        raise S3Error.invalid_argument(f"Unknown {name} value", name, raw)
    return value
