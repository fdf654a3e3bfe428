"""S3 XML responses other than listings: multipart, copy, delete, configuration, ACL, attributes.

Owns the result documents of CreateMultipartUpload, CompleteMultipartUpload, CopyObject,
UploadPartCopy, DeleteObjects, GetBucketLocation, GetBucketVersioning, Get*Tagging,
GetBucketCors, Get*Acl, never-configured sub-resources and GetObjectAttributes. ETags are
quoted, except in GetObjectAttributes, where S3 returns them bare.

Pure: imports only the stdlib, ``gateway.operations`` and ``gateway.xml`` siblings. Must
not import starlette or anything doing I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway import operations as op
from gateway.xml.values import CorsConfiguration, DeletedEntry, DeleteError, Owner, PartEntry
from gateway.xml.writer import (
    DECL,
    NS,
    bare_etag,
    checksums_el,
    document,
    el,
    escape,
    format_timestamp,
    owner_el,
    quote_etag,
    xml_bool,
)

__all__ = [
    "access_control_policy",
    "complete_multipart_upload_result",
    "copy_object_result",
    "copy_part_result",
    "cors_configuration",
    "delete_result",
    "empty_configuration",
    "get_object_attributes_response",
    "initiate_multipart_upload_result",
    "location_constraint",
    "tagging",
    "versioning_configuration",
]

_XSI = "http://www.w3.org/2001/XMLSchema-instance"


def initiate_multipart_upload_result(bucket: str, key: str, upload_id: str) -> bytes:
    return document(
        "InitiateMultipartUploadResult",
        [el("Bucket", bucket), el("Key", key), el("UploadId", upload_id)],
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
        el("Location", location),
        el("Bucket", bucket),
        el("Key", key),
        el("ETag", quote_etag(etag)),
        checksums_el(checksums),
    ]
    if checksum_type:
        body.append(el("ChecksumType", checksum_type))
    return document("CompleteMultipartUploadResult", body)


def _copy_result(
    root: str, etag: str, last_modified: datetime, checksums: Sequence[op.ChecksumHeader]
) -> bytes:
    return document(
        root,
        [
            el("LastModified", format_timestamp(last_modified)),
            el("ETag", quote_etag(etag)),
            checksums_el(checksums),
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
            vid = el("VersionId", d.version_id) if d.version_id else ""
            body.append(f"<Deleted>{el('Key', d.key)}{vid}</Deleted>")
    for e in errors:
        vid = el("VersionId", e.version_id) if e.version_id else ""
        body.append(
            f"<Error>{el('Key', e.key)}{vid}{el('Code', e.code)}{el('Message', e.message)}</Error>"
        )
    return document("DeleteResult", body)


def location_constraint(region: str) -> bytes:
    """GetBucketLocation: an empty element for us-east-1 (and for an empty region)."""
    if region in ("", "us-east-1"):
        return (DECL + f'<LocationConstraint xmlns="{NS}"/>').encode()
    return document("LocationConstraint", [escape(region)])


def versioning_configuration(status: str | None, mfa_delete: str | None = None) -> bytes:
    """GetBucketVersioning: empty for a bucket that never had versioning configured."""
    body = []
    if status:
        body.append(el("Status", status))
    if mfa_delete:
        body.append(el("MfaDelete", mfa_delete))
    return document("VersioningConfiguration", body)


def tagging(tags: Sequence[op.Tag]) -> bytes:
    body = ["<TagSet>"]
    body.extend(f"<Tag>{el('Key', t.key)}{el('Value', t.value)}</Tag>" for t in tags)
    body.append("</TagSet>")
    return document("Tagging", body)


def cors_configuration(config: CorsConfiguration) -> bytes:
    body: list[str] = []
    for r in config.rules:
        body.append("<CORSRule>")
        if r.id:
            body.append(el("ID", r.id))
        body.extend(el("AllowedHeader", v) for v in r.allowed_headers)
        body.extend(el("AllowedMethod", v) for v in r.allowed_methods)
        body.extend(el("AllowedOrigin", v) for v in r.allowed_origins)
        body.extend(el("ExposeHeader", v) for v in r.expose_headers)
        if r.max_age_seconds is not None:
            body.append(f"<MaxAgeSeconds>{r.max_age_seconds}</MaxAgeSeconds>")
        body.append("</CORSRule>")
    return document("CORSConfiguration", body)


def access_control_policy(owner: Owner) -> bytes:
    """GetBucketAcl / GetObjectAcl: the owner has FULL_CONTROL (our only grant)."""
    grantee = (
        f'<Grantee xmlns:xsi="{_XSI}" xsi:type="CanonicalUser">'
        f"<ID>{escape(owner.id)}</ID>"
        + (f"<DisplayName>{escape(owner.display_name)}</DisplayName>" if owner.display_name else "")
        + "</Grantee>"
    )
    return document(
        "AccessControlPolicy",
        [
            owner_el("Owner", owner),
            f"<AccessControlList><Grant>{grantee}<Permission>FULL_CONTROL</Permission>"
            "</Grant></AccessControlList>",
        ],
    )


def empty_configuration(root: str) -> bytes:
    """200 answer for a never-configured sub-resource (logging, notification, ...)."""
    if root == "RequestPaymentConfiguration":
        return document(root, ["<Payer>BucketOwner</Payer>"])
    return (DECL + f'<{escape(root)} xmlns="{NS}"/>').encode()


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
        body.append(el("ETag", bare_etag(etag)))
    if "Checksum" in want and checksums:
        kind = el("ChecksumType", checksum_type) if checksum_type else ""
        body.append(f"<Checksum>{checksums_el(checksums)}{kind}</Checksum>")
    if "ObjectParts" in want and parts is not None:
        body.append(f"<ObjectParts><PartsCount>{total_parts}</PartsCount>")
        body.append(f"<PartNumberMarker>{req.part_number_marker}</PartNumberMarker>")
        if next_part_number_marker is not None:
            body.append(f"<NextPartNumberMarker>{next_part_number_marker}</NextPartNumberMarker>")
        body.append(f"<MaxParts>{req.max_parts}</MaxParts>")
        body.append(f"<IsTruncated>{xml_bool(parts_truncated)}</IsTruncated>")
        body.extend(
            f"<Part><PartNumber>{p.part_number}</PartNumber><Size>{p.size}</Size>"
            f"{checksums_el(p.checksums)}</Part>"
            for p in parts
        )
        body.append("</ObjectParts>")
    if "StorageClass" in want:
        body.append(el("StorageClass", storage_class))
    if "ObjectSize" in want:
        body.append(f"<ObjectSize>{size}</ObjectSize>")
    return document("GetObjectAttributesResponse", body)
