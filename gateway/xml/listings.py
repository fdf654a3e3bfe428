"""S3 XML responses for listings: buckets, objects (v1, v2), versions, uploads and parts.

Owns the ``List*Result`` documents. ``encoding-type=url`` is applied only when the
request asked for it, to exactly the fields S3 encodes (Key, Prefix, Delimiter,
StartAfter, Marker, NextMarker, KeyMarker, NextKeyMarker, CommonPrefixes/Prefix), which
boto3, minio-go and plain percent-decoders all read back exactly. ETags are quoted.
ListObjects v1 always includes Owner; v2 only with ``fetch-owner=true``.

Pure: imports only the stdlib, ``gateway.operations`` and ``gateway.xml`` siblings. Must
not import starlette or anything doing I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from gateway import operations as op
from gateway.xml.values import (
    BucketEntry,
    ListPage,
    ObjectEntry,
    Owner,
    PartEntry,
    UploadEntry,
    VersionEntry,
)
from gateway.xml.writer import (
    checksums_el,
    document,
    el,
    escape,
    format_timestamp,
    owner_el,
    quote_etag,
    url_field,
    xml_bool,
)

__all__ = [
    "list_all_my_buckets_result",
    "list_multipart_uploads_result",
    "list_objects_result",
    "list_objects_v2_result",
    "list_parts_result",
    "list_versions_result",
]


def _prefixes(prefixes: Sequence[str], encode: bool) -> str:
    return "".join(
        f"<CommonPrefixes><Prefix>{escape(url_field(p, encode))}</Prefix></CommonPrefixes>"
        for p in prefixes
    )


def _contents(entry: ObjectEntry, encode: bool, owner: Owner | None) -> str:
    # the hot path of every listing: one f-string per entry
    key = escape(quote(entry.key, safe="/") if encode else entry.key)
    etag = escape(entry.etag.strip().strip('"'))
    extra = owner_el("Owner", owner) if owner is not None else ""
    if entry.checksum_algorithm:
        extra += el("ChecksumAlgorithm", entry.checksum_algorithm)
    return (
        f"<Contents><Key>{key}</Key>"
        f"<LastModified>{format_timestamp(entry.last_modified)}</LastModified>"
        f'<ETag>"{etag}"</ETag><Size>{entry.size}</Size>{extra}'
        f"<StorageClass>{escape(entry.storage_class)}</StorageClass></Contents>"
    )


def list_all_my_buckets_result(
    owner: Owner,
    buckets: Sequence[BucketEntry],
    *,
    prefix: str | None = None,
    continuation_token: str | None = None,
) -> bytes:
    """ListBuckets response."""
    body = [owner_el("Owner", owner), "<Buckets>"]
    for b in buckets:
        region = el("BucketRegion", b.region) if b.region else ""
        body.append(
            f"<Bucket>{el('Name', b.name)}"
            f"{el('CreationDate', format_timestamp(b.creation_date))}{region}</Bucket>"
        )
    body.append("</Buckets>")
    if prefix is not None:
        body.append(el("Prefix", prefix))
    if continuation_token:
        body.append(el("ContinuationToken", continuation_token))
    return document("ListAllMyBucketsResult", body)


def list_objects_result(req: op.ListObjects, page: ListPage, owner: Owner) -> bytes:
    """ListObjects (v1) response; Owner is always included, as S3 does for v1."""
    enc = req.encoding_type == "url"
    body = [
        el("Name", req.bucket),
        el("Prefix", url_field(req.prefix, enc)),
        el("Marker", url_field(req.marker, enc)),
        f"<MaxKeys>{req.max_keys}</MaxKeys>",
    ]
    if req.delimiter is not None:
        body.append(el("Delimiter", url_field(req.delimiter, enc)))
    body.append(f"<IsTruncated>{xml_bool(page.is_truncated)}</IsTruncated>")
    if page.is_truncated and page.next_marker is not None:
        body.append(el("NextMarker", url_field(page.next_marker, enc)))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    body.extend(_contents(e, enc, e.owner or owner) for e in page.contents)
    body.append(_prefixes(page.common_prefixes, enc))
    return document("ListBucketResult", body)


def list_objects_v2_result(req: op.ListObjectsV2, page: ListPage, owner: Owner) -> bytes:
    """ListObjectsV2 response; Owner only with fetch-owner=true."""
    enc = req.encoding_type == "url"
    body = [
        el("Name", req.bucket),
        el("Prefix", url_field(req.prefix, enc)),
        f"<MaxKeys>{req.max_keys}</MaxKeys>",
        f"<KeyCount>{len(page.contents) + len(page.common_prefixes)}</KeyCount>",
    ]
    if req.delimiter is not None:
        body.append(el("Delimiter", url_field(req.delimiter, enc)))
    body.append(f"<IsTruncated>{xml_bool(page.is_truncated)}</IsTruncated>")
    if req.continuation_token is not None:
        body.append(el("ContinuationToken", req.continuation_token))
    if page.is_truncated and page.next_marker is not None:
        body.append(el("NextContinuationToken", page.next_marker))
    if req.start_after:
        body.append(el("StartAfter", url_field(req.start_after, enc)))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    body.extend(
        _contents(e, enc, (e.owner or owner) if req.fetch_owner else None) for e in page.contents
    )
    body.append(_prefixes(page.common_prefixes, enc))
    return document("ListBucketResult", body)


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
        el("Name", req.bucket),
        el("Prefix", url_field(req.prefix, enc)),
        el("KeyMarker", url_field(req.key_marker, enc)),
        el("VersionIdMarker", req.version_id_marker),
        f"<MaxKeys>{req.max_keys}</MaxKeys>",
    ]
    if req.delimiter is not None:
        body.append(el("Delimiter", url_field(req.delimiter, enc)))
    body.append(f"<IsTruncated>{xml_bool(is_truncated)}</IsTruncated>")
    if is_truncated and next_key_marker is not None:
        body.append(el("NextKeyMarker", url_field(next_key_marker, enc)))
        body.append(el("NextVersionIdMarker", next_version_id_marker or "null"))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    for v in versions:
        head = (
            f"{el('Key', url_field(v.key, enc))}{el('VersionId', v.version_id)}"
            f"<IsLatest>{xml_bool(v.is_latest)}</IsLatest>"
            f"{el('LastModified', format_timestamp(v.last_modified))}"
        )
        who = owner_el("Owner", v.owner or owner)
        if v.is_delete_marker:
            body.append(f"<DeleteMarker>{head}{who}</DeleteMarker>")
        else:
            body.append(
                f"<Version>{head}{el('ETag', quote_etag(v.etag))}<Size>{v.size}</Size>"
                f"{who}{el('StorageClass', v.storage_class)}</Version>"
            )
    body.append(_prefixes(common_prefixes, enc))
    return document("ListVersionsResult", body)


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
        el("Bucket", req.bucket),
        el("KeyMarker", url_field(req.key_marker, enc)),
        el("UploadIdMarker", req.upload_id_marker),
    ]
    if next_key_marker is not None:
        body.append(el("NextKeyMarker", url_field(next_key_marker, enc)))
    if next_upload_id_marker is not None:
        body.append(el("NextUploadIdMarker", next_upload_id_marker))
    if req.delimiter is not None:
        body.append(el("Delimiter", url_field(req.delimiter, enc)))
    body.append(el("Prefix", url_field(req.prefix, enc)))
    body.append(f"<MaxUploads>{req.max_uploads}</MaxUploads>")
    body.append(f"<IsTruncated>{xml_bool(is_truncated)}</IsTruncated>")
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    for u in uploads:
        who = u.owner or owner
        algo = el("ChecksumAlgorithm", u.checksum_algorithm) if u.checksum_algorithm else ""
        body.append(
            f"<Upload>{el('Key', url_field(u.key, enc))}{el('UploadId', u.upload_id)}"
            f"{owner_el('Initiator', who)}{owner_el('Owner', who)}"
            f"{el('StorageClass', u.storage_class)}"
            f"{el('Initiated', format_timestamp(u.initiated))}{algo}</Upload>"
        )
    body.append(_prefixes(common_prefixes, enc))
    return document("ListMultipartUploadsResult", body)


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
        el("Bucket", req.bucket),
        el("Key", url_field(req.key, enc)),
        el("UploadId", req.upload_id),
        owner_el("Initiator", owner),
        owner_el("Owner", owner),
        el("StorageClass", storage_class),
        f"<PartNumberMarker>{req.part_number_marker}</PartNumberMarker>",
    ]
    if next_part_number_marker is not None:
        body.append(f"<NextPartNumberMarker>{next_part_number_marker}</NextPartNumberMarker>")
    body.append(f"<MaxParts>{req.max_parts}</MaxParts>")
    body.append(f"<IsTruncated>{xml_bool(is_truncated)}</IsTruncated>")
    if checksum_algorithm:
        body.append(el("ChecksumAlgorithm", checksum_algorithm))
        if checksum_type:
            body.append(el("ChecksumType", checksum_type))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    for p in parts:
        body.append(
            f"<Part><PartNumber>{p.part_number}</PartNumber>"
            f"{el('LastModified', format_timestamp(p.last_modified))}"
            f"{el('ETag', quote_etag(p.etag))}<Size>{p.size}</Size>"
            f"{checksums_el(p.checksums)}</Part>"
        )
    return document("ListPartsResult", body)
