"""S3 XML: response builders (string building) and hardened request-body parsers (pure).

Builders return UTF-8 bytes with an XML declaration, in the S3 namespace
``http://s3.amazonaws.com/doc/2006-03-01/``. Timestamps are ISO-8601 UTC with
milliseconds (``2026-11-26T09:10:44.000Z``); ETags are quoted (except in
GetObjectAttributes, where S3 returns them bare). ``encoding-type=url`` is applied only
when the request asked for it, to exactly the fields S3 encodes (Key, Prefix, Delimiter,
StartAfter, Marker, NextMarker, KeyMarker, NextKeyMarker, CommonPrefixes/Prefix), with
percent-encoding (``/`` kept), which boto3, minio-go and plain percent-decoders all read
back exactly. Characters XML 1.0 cannot carry are written as character references.

Parsers run the stdlib expat parser directly with: no DTD at all (any DOCTYPE or ENTITY
declaration is rejected, so no entity expansion or external fetches), parameter-entity
parsing off, a byte cap per document, a depth cap and an element-count cap. Namespaces
are tolerated: elements match on their local name, with or without the S3 namespace.
Anything malformed raises ``S3Error`` (MalformedXML, or the specific S3 error when the
document is well-formed but semantically invalid); nothing else escapes.

Must not import starlette or anything doing I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote
from xml.parsers import expat

from gateway import operations as op
from gateway.errors import S3Error

__all__ = [
    "NS",
    "AclGrant",
    "BucketEntry",
    "CompletedPart",
    "CorsConfiguration",
    "CorsRule",
    "DeleteError",
    "DeleteRequest",
    "DeletedEntry",
    "ListPage",
    "ObjectEntry",
    "ObjectIdentifier",
    "Owner",
    "PartEntry",
    "UploadEntry",
    "VersionEntry",
    "VersioningConfiguration",
    "access_control_policy",
    "complete_multipart_upload_result",
    "copy_object_result",
    "copy_part_result",
    "cors_configuration",
    "delete_result",
    "empty_configuration",
    "escape",
    "format_timestamp",
    "get_object_attributes_response",
    "initiate_multipart_upload_result",
    "list_all_my_buckets_result",
    "list_multipart_uploads_result",
    "list_objects_result",
    "list_objects_v2_result",
    "list_parts_result",
    "list_versions_result",
    "location_constraint",
    "parse_access_control_policy",
    "parse_complete_multipart_upload",
    "parse_cors_configuration",
    "parse_create_bucket_configuration",
    "parse_delete",
    "parse_tagging",
    "parse_versioning_configuration",
    "quote_etag",
    "tagging",
    "versioning_configuration",
]

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


# -- values ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class BucketEntry:
    name: str
    creation_date: datetime
    region: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    key: str
    last_modified: datetime
    etag: str  # quoted or bare; emitted quoted
    size: int
    storage_class: str = "STANDARD"
    owner: Owner | None = None
    checksum_algorithm: str | None = None


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """One ``<Version>`` (or, with ``is_delete_marker``, ``<DeleteMarker>``) entry."""

    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    last_modified: datetime
    etag: str = ""
    size: int = 0
    storage_class: str = "STANDARD"
    owner: Owner | None = None


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a listing; ``next_marker`` is NextMarker (v1), NextContinuationToken
    (v2) or NextKeyMarker (versions)."""

    contents: Sequence[ObjectEntry] = ()
    common_prefixes: Sequence[str] = ()
    is_truncated: bool = False
    next_marker: str | None = None


@dataclass(frozen=True, slots=True)
class UploadEntry:
    key: str
    upload_id: str
    initiated: datetime
    storage_class: str = "STANDARD"
    owner: Owner | None = None
    checksum_algorithm: str | None = None


@dataclass(frozen=True, slots=True)
class PartEntry:
    part_number: int
    last_modified: datetime
    etag: str
    size: int
    checksums: tuple[op.ChecksumHeader, ...] = ()


@dataclass(frozen=True, slots=True)
class DeletedEntry:
    key: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteError:
    key: str
    code: str
    message: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class CompletedPart:
    part_number: int
    etag: str  # bare (quotes removed)
    checksums: tuple[op.ChecksumHeader, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectIdentifier:
    key: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    objects: tuple[ObjectIdentifier, ...]
    quiet: bool = False


@dataclass(frozen=True, slots=True)
class CorsRule:
    allowed_methods: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int | None = None
    id: str | None = None


def _wildcard_match(pattern: str, value: str) -> bool:
    """S3 CORS patterns: at most one ``*``, matching any run of characters."""
    head, star, tail = pattern.partition("*")
    if not star:
        return pattern == value
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


@dataclass(frozen=True, slots=True)
class CorsConfiguration:
    rules: tuple[CorsRule, ...]

    def find_rule(
        self, origin: str, method: str, request_headers: Sequence[str] = ()
    ) -> CorsRule | None:
        """The first rule allowing ``origin``, ``method`` and every requested header."""
        for rule in self.rules:
            if method not in rule.allowed_methods:
                continue
            if not any(_wildcard_match(o, origin) for o in rule.allowed_origins):
                continue
            allowed = [h.lower() for h in rule.allowed_headers]
            if all(any(_wildcard_match(a, h.lower()) for a in allowed) for h in request_headers):
                return rule
        return None


@dataclass(frozen=True, slots=True)
class VersioningConfiguration:
    status: str | None = None  # Enabled | Suspended | None (never configured)
    mfa_delete: str | None = None


@dataclass(frozen=True, slots=True)
class AclGrant:
    grantee_type: str  # CanonicalUser | Group | AmazonCustomerByEmail
    grantee: str  # ID, URI or email
    permission: str


# -- output helpers ---------------------------------------------------------------------
_NEEDS_ESCAPE = re.compile(r"[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]")
_ESCAPES: dict[int, str] = {c: f"&#x{c:X};" for c in range(0x20) if c not in (0x09, 0x0A)}
_ESCAPES.update({ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;"})
_ESCAPES.update({0xFFFE: "&#xFFFE;", 0xFFFF: "&#xFFFF;"})


def escape(text: str) -> str:
    """Escape text content (fast path when nothing needs escaping)."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return text.translate(_ESCAPES)


def format_timestamp(t: datetime) -> str:
    """``2026-11-26T09:10:44.000Z`` (naive datetimes are taken as UTC)."""
    if t.tzinfo is not None:
        if t.utcoffset():
            t = t.astimezone(UTC)
        t = t.replace(tzinfo=None)
    return t.isoformat(timespec="milliseconds") + "Z"


def quote_etag(etag: str) -> str:
    """Return the ETag with exactly one pair of surrounding double quotes."""
    return f'"{etag.strip().strip(chr(34))}"'


def _bare_etag(etag: str) -> str:
    return etag.strip().strip('"')


def _url(value: str, encode: bool) -> str:
    return quote(value, safe="/") if encode else value


def _el(name: str, value: str) -> str:
    return f"<{name}>{escape(value)}</{name}>"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _doc(root: str, body: Sequence[str]) -> bytes:
    return (_DECL + f'<{root} xmlns="{NS}">' + "".join(body) + f"</{root}>").encode(
        "utf-8", "surrogatepass"
    )


def _owner(tag: str, owner: Owner) -> str:
    name = f"<DisplayName>{escape(owner.display_name)}</DisplayName>" if owner.display_name else ""
    return f"<{tag}><ID>{escape(owner.id)}</ID>{name}</{tag}>"


def _checksums(checksums: Sequence[op.ChecksumHeader]) -> str:
    return "".join(_el(f"Checksum{c.algorithm}", c.value) for c in checksums)


def _prefixes(prefixes: Sequence[str], encode: bool) -> str:
    return "".join(
        f"<CommonPrefixes><Prefix>{escape(_url(p, encode))}</Prefix></CommonPrefixes>"
        for p in prefixes
    )


def _contents(entry: ObjectEntry, encode: bool, owner: Owner | None) -> str:
    # the hot path of every listing: one f-string per entry
    key = escape(quote(entry.key, safe="/") if encode else entry.key)
    etag = escape(entry.etag.strip().strip('"'))
    extra = _owner("Owner", owner) if owner is not None else ""
    if entry.checksum_algorithm:
        extra += _el("ChecksumAlgorithm", entry.checksum_algorithm)
    return (
        f"<Contents><Key>{key}</Key>"
        f"<LastModified>{format_timestamp(entry.last_modified)}</LastModified>"
        f'<ETag>"{etag}"</ETag><Size>{entry.size}</Size>{extra}'
        f"<StorageClass>{escape(entry.storage_class)}</StorageClass></Contents>"
    )


# -- builders ---------------------------------------------------------------------------
def list_all_my_buckets_result(
    owner: Owner,
    buckets: Sequence[BucketEntry],
    *,
    prefix: str | None = None,
    continuation_token: str | None = None,
) -> bytes:
    """ListBuckets response."""
    body = [_owner("Owner", owner), "<Buckets>"]
    for b in buckets:
        region = _el("BucketRegion", b.region) if b.region else ""
        body.append(
            f"<Bucket>{_el('Name', b.name)}"
            f"{_el('CreationDate', format_timestamp(b.creation_date))}{region}</Bucket>"
        )
    body.append("</Buckets>")
    if prefix is not None:
        body.append(_el("Prefix", prefix))
    if continuation_token:
        body.append(_el("ContinuationToken", continuation_token))
    return _doc("ListAllMyBucketsResult", body)


def list_objects_result(req: op.ListObjects, page: ListPage, owner: Owner) -> bytes:
    """ListObjects (v1) response; Owner is always included, as S3 does for v1."""
    enc = req.encoding_type == "url"
    body = [
        _el("Name", req.bucket),
        _el("Prefix", _url(req.prefix, enc)),
        _el("Marker", _url(req.marker, enc)),
        f"<MaxKeys>{req.max_keys}</MaxKeys>",
    ]
    if req.delimiter is not None:
        body.append(_el("Delimiter", _url(req.delimiter, enc)))
    body.append(f"<IsTruncated>{_bool(page.is_truncated)}</IsTruncated>")
    if page.is_truncated and page.next_marker is not None:
        body.append(_el("NextMarker", _url(page.next_marker, enc)))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    body.extend(_contents(e, enc, e.owner or owner) for e in page.contents)
    body.append(_prefixes(page.common_prefixes, enc))
    return _doc("ListBucketResult", body)


def list_objects_v2_result(req: op.ListObjectsV2, page: ListPage, owner: Owner) -> bytes:
    """ListObjectsV2 response; Owner only with fetch-owner=true."""
    enc = req.encoding_type == "url"
    body = [
        _el("Name", req.bucket),
        _el("Prefix", _url(req.prefix, enc)),
        f"<MaxKeys>{req.max_keys}</MaxKeys>",
        f"<KeyCount>{len(page.contents) + len(page.common_prefixes)}</KeyCount>",
    ]
    if req.delimiter is not None:
        body.append(_el("Delimiter", _url(req.delimiter, enc)))
    body.append(f"<IsTruncated>{_bool(page.is_truncated)}</IsTruncated>")
    if req.continuation_token is not None:
        body.append(_el("ContinuationToken", req.continuation_token))
    if page.is_truncated and page.next_marker is not None:
        body.append(_el("NextContinuationToken", page.next_marker))
    if req.start_after:
        body.append(_el("StartAfter", _url(req.start_after, enc)))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    body.extend(
        _contents(e, enc, (e.owner or owner) if req.fetch_owner else None) for e in page.contents
    )
    body.append(_prefixes(page.common_prefixes, enc))
    return _doc("ListBucketResult", body)


def list_versions_result(
    req: op.ListObjectVersions,
    versions: Sequence[VersionEntry],
    common_prefixes: Sequence[str],
    *,
    is_truncated: bool,
    next_key_marker: str | None,
    next_version_id_marker: str | None,
    owner: Owner,
) -> bytes:
    """ListObjectVersions with real version ids and delete markers (any bucket)."""
    enc = req.encoding_type == "url"
    body = [
        _el("Name", req.bucket),
        _el("Prefix", _url(req.prefix, enc)),
        _el("KeyMarker", _url(req.key_marker, enc)),
        _el("VersionIdMarker", req.version_id_marker),
        f"<MaxKeys>{req.max_keys}</MaxKeys>",
    ]
    if req.delimiter is not None:
        body.append(_el("Delimiter", _url(req.delimiter, enc)))
    body.append(f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>")
    if is_truncated and next_key_marker is not None:
        body.append(_el("NextKeyMarker", _url(next_key_marker, enc)))
        body.append(_el("NextVersionIdMarker", next_version_id_marker or "null"))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    for v in versions:
        head = (
            f"{_el('Key', _url(v.key, enc))}{_el('VersionId', v.version_id)}"
            f"<IsLatest>{_bool(v.is_latest)}</IsLatest>"
            f"{_el('LastModified', format_timestamp(v.last_modified))}"
        )
        who = _owner("Owner", v.owner or owner)
        if v.is_delete_marker:
            body.append(f"<DeleteMarker>{head}{who}</DeleteMarker>")
        else:
            body.append(
                f"<Version>{head}{_el('ETag', quote_etag(v.etag))}<Size>{v.size}</Size>"
                f"{who}{_el('StorageClass', v.storage_class)}</Version>"
            )
    body.append(_prefixes(common_prefixes, enc))
    return _doc("ListVersionsResult", body)


def list_multipart_uploads_result(
    req: op.ListMultipartUploads,
    uploads: Sequence[UploadEntry],
    common_prefixes: Sequence[str],
    *,
    is_truncated: bool,
    next_key_marker: str | None,
    next_upload_id_marker: str | None,
    owner: Owner,
) -> bytes:
    """ListMultipartUploads response."""
    enc = req.encoding_type == "url"
    body = [
        _el("Bucket", req.bucket),
        _el("KeyMarker", _url(req.key_marker, enc)),
        _el("UploadIdMarker", req.upload_id_marker),
    ]
    if next_key_marker is not None:
        body.append(_el("NextKeyMarker", _url(next_key_marker, enc)))
    if next_upload_id_marker is not None:
        body.append(_el("NextUploadIdMarker", next_upload_id_marker))
    if req.delimiter is not None:
        body.append(_el("Delimiter", _url(req.delimiter, enc)))
    body.append(_el("Prefix", _url(req.prefix, enc)))
    body.append(f"<MaxUploads>{req.max_uploads}</MaxUploads>")
    body.append(f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>")
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    for u in uploads:
        who = u.owner or owner
        algo = _el("ChecksumAlgorithm", u.checksum_algorithm) if u.checksum_algorithm else ""
        body.append(
            f"<Upload>{_el('Key', _url(u.key, enc))}{_el('UploadId', u.upload_id)}"
            f"{_owner('Initiator', who)}{_owner('Owner', who)}"
            f"{_el('StorageClass', u.storage_class)}"
            f"{_el('Initiated', format_timestamp(u.initiated))}{algo}</Upload>"
        )
    body.append(_prefixes(common_prefixes, enc))
    return _doc("ListMultipartUploadsResult", body)


def list_parts_result(
    req: op.ListParts,
    parts: Sequence[PartEntry],
    *,
    is_truncated: bool,
    next_part_number_marker: int | None,
    owner: Owner,
    storage_class: str = "STANDARD",
    checksum_algorithm: str | None = None,
    checksum_type: str | None = None,
) -> bytes:
    """ListParts response."""
    enc = req.encoding_type == "url"
    body = [
        _el("Bucket", req.bucket),
        _el("Key", _url(req.key, enc)),
        _el("UploadId", req.upload_id),
        _owner("Initiator", owner),
        _owner("Owner", owner),
        _el("StorageClass", storage_class),
        f"<PartNumberMarker>{req.part_number_marker}</PartNumberMarker>",
    ]
    if next_part_number_marker is not None:
        body.append(f"<NextPartNumberMarker>{next_part_number_marker}</NextPartNumberMarker>")
    body.append(f"<MaxParts>{req.max_parts}</MaxParts>")
    body.append(f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>")
    if checksum_algorithm:
        body.append(_el("ChecksumAlgorithm", checksum_algorithm))
        if checksum_type:
            body.append(_el("ChecksumType", checksum_type))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    for p in parts:
        body.append(
            f"<Part><PartNumber>{p.part_number}</PartNumber>"
            f"{_el('LastModified', format_timestamp(p.last_modified))}"
            f"{_el('ETag', quote_etag(p.etag))}<Size>{p.size}</Size>"
            f"{_checksums(p.checksums)}</Part>"
        )
    return _doc("ListPartsResult", body)


def initiate_multipart_upload_result(bucket: str, key: str, upload_id: str) -> bytes:
    return _doc(
        "InitiateMultipartUploadResult",
        [_el("Bucket", bucket), _el("Key", key), _el("UploadId", upload_id)],
    )


def complete_multipart_upload_result(
    location: str,
    bucket: str,
    key: str,
    etag: str,
    checksums: Sequence[op.ChecksumHeader] = (),
    checksum_type: str | None = None,
) -> bytes:
    body = [
        _el("Location", location),
        _el("Bucket", bucket),
        _el("Key", key),
        _el("ETag", quote_etag(etag)),
        _checksums(checksums),
    ]
    if checksum_type:
        body.append(_el("ChecksumType", checksum_type))
    return _doc("CompleteMultipartUploadResult", body)


def _copy_result(
    root: str, etag: str, last_modified: datetime, checksums: Sequence[op.ChecksumHeader]
) -> bytes:
    return _doc(
        root,
        [
            _el("LastModified", format_timestamp(last_modified)),
            _el("ETag", quote_etag(etag)),
            _checksums(checksums),
        ],
    )


def copy_object_result(
    etag: str, last_modified: datetime, checksums: Sequence[op.ChecksumHeader] = ()
) -> bytes:
    return _copy_result("CopyObjectResult", etag, last_modified, checksums)


def copy_part_result(
    etag: str, last_modified: datetime, checksums: Sequence[op.ChecksumHeader] = ()
) -> bytes:
    return _copy_result("CopyPartResult", etag, last_modified, checksums)


def delete_result(
    deleted: Sequence[DeletedEntry], errors: Sequence[DeleteError], *, quiet: bool
) -> bytes:
    """DeleteObjects response; quiet mode lists only the errors."""
    body: list[str] = []
    if not quiet:
        for d in deleted:
            vid = _el("VersionId", d.version_id) if d.version_id else ""
            body.append(f"<Deleted>{_el('Key', d.key)}{vid}</Deleted>")
    for e in errors:
        vid = _el("VersionId", e.version_id) if e.version_id else ""
        body.append(
            f"<Error>{_el('Key', e.key)}{vid}{_el('Code', e.code)}"
            f"{_el('Message', e.message)}</Error>"
        )
    return _doc("DeleteResult", body)


def location_constraint(region: str) -> bytes:
    """GetBucketLocation: an empty element for us-east-1 (and for an empty region)."""
    if region in ("", "us-east-1"):
        return (_DECL + f'<LocationConstraint xmlns="{NS}"/>').encode()
    return _doc("LocationConstraint", [escape(region)])


def versioning_configuration(status: str | None, mfa_delete: str | None = None) -> bytes:
    """GetBucketVersioning: empty for a bucket that never had versioning configured."""
    body = []
    if status:
        body.append(_el("Status", status))
    if mfa_delete:
        body.append(_el("MfaDelete", mfa_delete))
    return _doc("VersioningConfiguration", body)


def tagging(tags: Sequence[op.Tag]) -> bytes:
    body = ["<TagSet>"]
    body.extend(f"<Tag>{_el('Key', t.key)}{_el('Value', t.value)}</Tag>" for t in tags)
    body.append("</TagSet>")
    return _doc("Tagging", body)


def cors_configuration(config: CorsConfiguration) -> bytes:
    body: list[str] = []
    for r in config.rules:
        body.append("<CORSRule>")
        if r.id:
            body.append(_el("ID", r.id))
        body.extend(_el("AllowedHeader", v) for v in r.allowed_headers)
        body.extend(_el("AllowedMethod", v) for v in r.allowed_methods)
        body.extend(_el("AllowedOrigin", v) for v in r.allowed_origins)
        body.extend(_el("ExposeHeader", v) for v in r.expose_headers)
        if r.max_age_seconds is not None:
            body.append(f"<MaxAgeSeconds>{r.max_age_seconds}</MaxAgeSeconds>")
        body.append("</CORSRule>")
    return _doc("CORSConfiguration", body)


def access_control_policy(owner: Owner) -> bytes:
    """GetBucketAcl / GetObjectAcl: the owner has FULL_CONTROL (our only grant)."""
    grantee = (
        f'<Grantee xmlns:xsi="{_XSI}" xsi:type="CanonicalUser">'
        f"<ID>{escape(owner.id)}</ID>"
        + (f"<DisplayName>{escape(owner.display_name)}</DisplayName>" if owner.display_name else "")
        + "</Grantee>"
    )
    return _doc(
        "AccessControlPolicy",
        [
            _owner("Owner", owner),
            f"<AccessControlList><Grant>{grantee}<Permission>FULL_CONTROL</Permission>"
            "</Grant></AccessControlList>",
        ],
    )


def empty_configuration(root: str) -> bytes:
    """200 answer for a never-configured sub-resource (logging, notification, ...)."""
    if root == "RequestPaymentConfiguration":
        return _doc(root, ["<Payer>BucketOwner</Payer>"])
    return (_DECL + f'<{escape(root)} xmlns="{NS}"/>').encode()


def get_object_attributes_response(
    req: op.GetObjectAttributes,
    *,
    etag: str,
    size: int,
    storage_class: str = "STANDARD",
    checksums: Sequence[op.ChecksumHeader] = (),
    checksum_type: str | None = None,
    parts: Sequence[PartEntry] | None = None,
    total_parts: int = 0,
    parts_truncated: bool = False,
    next_part_number_marker: int | None = None,
) -> bytes:
    """GetObjectAttributes: only the requested attributes; the ETag is bare (as S3)."""
    want = set(req.attributes)
    body: list[str] = []
    if "ETag" in want:
        body.append(_el("ETag", _bare_etag(etag)))
    if "Checksum" in want and checksums:
        kind = _el("ChecksumType", checksum_type) if checksum_type else ""
        body.append(f"<Checksum>{_checksums(checksums)}{kind}</Checksum>")
    if "ObjectParts" in want and parts is not None:
        body.append(f"<ObjectParts><PartsCount>{total_parts}</PartsCount>")
        body.append(f"<PartNumberMarker>{req.part_number_marker}</PartNumberMarker>")
        if next_part_number_marker is not None:
            body.append(f"<NextPartNumberMarker>{next_part_number_marker}</NextPartNumberMarker>")
        body.append(f"<MaxParts>{req.max_parts}</MaxParts>")
        body.append(f"<IsTruncated>{_bool(parts_truncated)}</IsTruncated>")
        body.extend(
            f"<Part><PartNumber>{p.part_number}</PartNumber><Size>{p.size}</Size>"
            f"{_checksums(p.checksums)}</Part>"
            for p in parts
        )
        body.append("</ObjectParts>")
    if "StorageClass" in want:
        body.append(_el("StorageClass", storage_class))
    if "ObjectSize" in want:
        body.append(f"<ObjectSize>{size}</ObjectSize>")
    return _doc("GetObjectAttributesResponse", body)


# -- hardened parsing -------------------------------------------------------------------
MAX_XML_BYTES = 1024 * 1024
MAX_LIST_XML_BYTES = 8 * 1024 * 1024  # CompleteMultipartUpload (10,000 parts), Delete (1,000)
_MAX_DEPTH = 16
_MAX_ELEMENTS = 200_000


class _Rejected(Exception):
    pass


class _Node:
    __slots__ = ("attrs", "children", "name", "text")

    def __init__(self, name: str, attrs: dict[str, str]) -> None:
        self.name = name
        self.attrs = attrs
        self.children: list[_Node] = []
        self.text: list[str] = []

    def all(self, name: str) -> list[_Node]:
        return [c for c in self.children if c.name == name]

    def first(self, name: str) -> _Node | None:
        for c in self.children:
            if c.name == name:
                return c
        return None

    def value(self) -> str:
        return "".join(self.text)

    def text_of(self, name: str, *, strip: bool = True) -> str | None:
        node = self.first(name)
        if node is None:
            return None
        text = node.value()
        return text.strip() if strip else text


def _local(name: str) -> str:
    return name.rpartition(" ")[2]


def _reject(*_args: object) -> None:
    raise _Rejected("DTDs and entity declarations are not allowed")


def _parse(body: bytes, root: str, max_bytes: int = MAX_XML_BYTES) -> _Node:
    if len(body) > max_bytes:
        raise S3Error.malformed_xml(f"document larger than {max_bytes} bytes")
    if not body.strip():
        raise S3Error.malformed_xml("empty document")
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _reject
    parser.EntityDeclHandler = _reject
    parser.UnparsedEntityDeclHandler = _reject
    parser.ExternalEntityRefHandler = _reject  # type: ignore[assignment]
    stack: list[_Node] = []
    result: list[_Node] = []
    count = 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal count
        count += 1
        if len(stack) >= _MAX_DEPTH or count > _MAX_ELEMENTS:
            raise _Rejected("document too deep or too large")
        node = _Node(_local(name), {_local(k): v for k, v in attrs.items()} if attrs else {})
        if stack:
            stack[-1].children.append(node)
        else:
            result.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def data(text: str) -> None:
        if stack:
            stack[-1].text.append(text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    try:
        parser.Parse(body, True)
    except (expat.ExpatError, _Rejected, ValueError, UnicodeError) as exc:
        raise S3Error.malformed_xml() from exc
    if not result or result[0].name != root:
        raise S3Error.malformed_xml(f"expected root element {root}")
    return result[0]


_PART_RE = re.compile(r"[0-9]{1,5}")
_PART_CHECKSUMS = frozenset(
    f"Checksum{a}" for a in ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
)


def parse_complete_multipart_upload(body: bytes) -> tuple[CompletedPart, ...]:
    """CompleteMultipartUpload body -> parts in strictly ascending part-number order.

    Raises:
        S3Error: MalformedXML; InvalidArgument (part number out of 1..10000);
            InvalidPartOrder (not strictly ascending).
    """
    root = _parse(body, "CompleteMultipartUpload", MAX_LIST_XML_BYTES)
    nodes = root.all("Part")
    if not nodes or len(nodes) > 10000:
        raise S3Error.malformed_xml("between 1 and 10000 parts required")
    parts: list[CompletedPart] = []
    for node in nodes:
        fields = {c.name: c.value() for c in reversed(node.children)}  # first one wins
        number = fields.get("PartNumber")
        etag = fields.get("ETag")
        if number is None or etag is None:
            raise S3Error.malformed_xml("Part needs PartNumber and ETag")
        number = number.strip()
        if not _PART_RE.fullmatch(number) or not 1 <= int(number) <= 10000:
            raise S3Error.invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
                "PartNumber",
                number,
            )
        checksums = tuple(
            op.ChecksumHeader(name[8:], text.strip())
            for name, text in fields.items()
            if name in _PART_CHECKSUMS and text.strip()
        )
        part = CompletedPart(int(number), _bare_etag(etag), checksums)
        if parts and part.part_number <= parts[-1].part_number:
            raise S3Error.invalid_part_order()
        parts.append(part)
    return tuple(parts)


def parse_delete(body: bytes, max_objects: int = 1000) -> DeleteRequest:
    """DeleteObjects body -> keys (verbatim, not stripped) and the Quiet flag."""
    root = _parse(body, "Delete", MAX_LIST_XML_BYTES)
    nodes = root.all("Object")
    if not nodes or len(nodes) > max_objects:
        raise S3Error.malformed_xml(f"between 1 and {max_objects} objects required")
    objects: list[ObjectIdentifier] = []
    for node in nodes:
        key = node.text_of("Key", strip=False)
        if key is None:
            raise S3Error.malformed_xml("Object needs a Key")
        objects.append(ObjectIdentifier(key, node.text_of("VersionId") or None))
    quiet = (root.text_of("Quiet") or "").lower() == "true"
    return DeleteRequest(tuple(objects), quiet)


def parse_tagging(body: bytes, max_tags: int = 10) -> tuple[op.Tag, ...]:
    """Tagging body -> tags (10 for objects, 50 for buckets); InvalidTag on limits."""
    root = _parse(body, "Tagging")
    tag_set = root.first("TagSet")
    if tag_set is None:
        raise S3Error.malformed_xml("TagSet required")
    tags: list[op.Tag] = []
    for node in tag_set.all("Tag"):
        key = node.text_of("Key", strip=False)
        if key is None:
            raise S3Error.malformed_xml("Tag needs a Key")
        tags.append(op.Tag(key, node.text_of("Value", strip=False) or ""))
    return op.validate_tags(tags, max_tags)


_CORS_METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")


def parse_cors_configuration(body: bytes) -> CorsConfiguration:
    """CORSConfiguration body (1..100 rules, each with methods and origins)."""
    root = _parse(body, "CORSConfiguration")
    nodes = root.all("CORSRule")
    if not nodes or len(nodes) > 100:
        raise S3Error.malformed_xml("between 1 and 100 CORSRule required")
    rules: list[CorsRule] = []
    for node in nodes:
        methods = tuple(c.value().strip() for c in node.all("AllowedMethod"))
        origins = tuple(c.value().strip() for c in node.all("AllowedOrigin"))
        if not methods or not origins:
            raise S3Error.malformed_xml("CORSRule needs AllowedMethod and AllowedOrigin")
        for m in methods:
            if m not in _CORS_METHODS:
                raise S3Error.invalid_request(
                    f"Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                )
        for o in origins:
            if o.count("*") > 1:
                raise S3Error.invalid_request(
                    f'AllowedOrigin "{o}" can not have more than one wildcard.'
                )
        max_age_text = node.text_of("MaxAgeSeconds")
        max_age: int | None = None
        if max_age_text is not None:
            if not max_age_text.isascii() or not max_age_text.isdigit() or len(max_age_text) > 10:
                raise S3Error.malformed_xml("MaxAgeSeconds must be an integer")
            max_age = int(max_age_text)
        rules.append(
            CorsRule(
                allowed_methods=methods,
                allowed_origins=origins,
                allowed_headers=tuple(c.value().strip() for c in node.all("AllowedHeader")),
                expose_headers=tuple(c.value().strip() for c in node.all("ExposeHeader")),
                max_age_seconds=max_age,
                id=node.text_of("ID") or None,
            )
        )
    return CorsConfiguration(tuple(rules))


def parse_versioning_configuration(body: bytes) -> VersioningConfiguration:
    """VersioningConfiguration body; Status must be Enabled or Suspended when present."""
    root = _parse(body, "VersioningConfiguration")
    status = root.text_of("Status")
    mfa = root.text_of("MfaDelete")
    if status is not None and status not in ("Enabled", "Suspended"):
        raise S3Error.malformed_xml("Status must be Enabled or Suspended")
    if mfa is not None and mfa not in ("Enabled", "Disabled"):
        raise S3Error.malformed_xml("MfaDelete must be Enabled or Disabled")
    return VersioningConfiguration(status or None, mfa or None)


def parse_create_bucket_configuration(body: bytes) -> str | None:
    """CreateBucket body -> LocationConstraint (None for an empty body or element)."""
    if not body.strip():
        return None
    root = _parse(body, "CreateBucketConfiguration")
    return root.text_of("LocationConstraint") or None


_PERMISSIONS = frozenset({"FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP"})


def parse_access_control_policy(body: bytes) -> tuple[AclGrant, ...]:
    """AccessControlPolicy body (PutBucketAcl / PutObjectAcl) -> its grants."""
    root = _parse(body, "AccessControlPolicy")
    acl = root.first("AccessControlList")
    if acl is None:
        raise S3Error.malformed_xml("AccessControlList required")
    grants: list[AclGrant] = []
    for node in acl.all("Grant"):
        grantee = node.first("Grantee")
        permission = node.text_of("Permission")
        if grantee is None or permission not in _PERMISSIONS or permission is None:
            raise S3Error.malformed_xml("Grant needs a Grantee and a valid Permission")
        kind = grantee.attrs.get("type", "")
        who = (
            grantee.text_of("ID") or grantee.text_of("URI") or grantee.text_of("EmailAddress") or ""
        )
        if kind not in ("CanonicalUser", "Group", "AmazonCustomerByEmail") or not who:
            raise S3Error.malformed_xml("Grantee needs xsi:type and an ID, URI or EmailAddress")
        grants.append(AclGrant(kind, who, permission))
    return tuple(grants)
