"""Routing of object-level requests (bucket and key) to their typed S3 operations.

Owns: GET/HEAD (object, ACL, tagging, attributes, ListParts), PUT (object, part, copy,
part copy, ACL, tagging), POST (create / complete multipart upload) and DELETE (object,
tagging, abort upload), and the object sub-resources we do not support.

Decisions (documented S3 behaviour):

* ``PUT ?uploadId`` without ``partNumber`` (or the reverse) is 400 InvalidArgument rather
  than silently writing a whole object.
* Copying an object onto itself with the COPY directive and no storage class or tagging
  change is 400 InvalidRequest (as S3).
* On CompleteMultipartUpload ``x-amz-checksum-<alg>`` is the expected checksum of the
  whole object (``b64``, or COMPOSITE ``b64-N``), not of the XML body: it goes to
  ``object_checksum`` and the body's ``PayloadInfo.checksum`` stays None.
* ``Range`` together with ``partNumber`` is 400 InvalidRequest; SSE-C reads are 501.

Pure: raises only ``gateway.errors.S3Error``. Must not import starlette, asyncio or
anything doing I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway import operations as op
from gateway.conditions import WriteConditions, parse_etag_list
from gateway.errors import S3Error
from gateway.ranges import parse_copy_source_range, parse_range
from gateway.router import body, params
from gateway.router.request import Headers, RouterLimits

__all__ = ["object_op"]

_OBJECT_ATTRIBUTES = frozenset({"ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"})
_OBJECT_UNSUPPORTED = ("torrent", "retention", "legal-hold", "restore", "select", "renameObject")


def object_op(
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
            params.reject_unsupported_features(h)
            return op.CreateMultipartUpload(
                bucket=bucket,
                key=key,
                headers=params.object_headers(h, limits),
                tagging=params.tagging(h),
                acl=params.acl(h),
                storage_class=params.storage_class(h),
                checksum_algorithm=body.checksum_algorithm(
                    h.get("x-amz-checksum-algorithm"), "x-amz-checksum-algorithm"
                ),
                checksum_type=body.checksum_type(h),
            )
        if "uploadId" in q:
            return op.CompleteMultipartUpload(
                bucket=bucket,
                key=key,
                upload_id=params.upload_id(q),
                payload=body.payload_info(
                    h, 64 * 1024 * 1024, body_required=False, body_checksum=False
                ),
                write_conditions=params.write_conditions(h),
                object_checksum=body.checksum_header(h, part_count_suffix=True),
                checksum_type=body.checksum_type(h),
            )
        return op.Unsupported(name="POST object", bucket=bucket, key=key)
    # DELETE
    if "uploadId" in q:
        return op.AbortMultipartUpload(bucket=bucket, key=key, upload_id=params.upload_id(q))
    if "tagging" in q:
        return op.DeleteObjectTagging(bucket=bucket, key=key, version_id=params.version_id(q))
    return op.DeleteObject(
        bucket=bucket,
        key=key,
        version_id=params.version_id(q),
        write_conditions=WriteConditions(if_match=parse_etag_list(h.get("if-match"))),
    )


def _read_object(
    method: str, bucket: str, key: str, q: Mapping[str, str], h: Headers
) -> op.S3Operation:
    version_id = params.version_id(q)
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
                upload_id=params.upload_id(q),
                max_parts=params.int_param(q, "max-parts", 1000, 1000),
                part_number_marker=params.int_param(q, "part-number-marker", 0, params.MAX_INT32),
                encoding_type=params.encoding_type(q),
            )
    if "x-amz-server-side-encryption-customer-algorithm" in h:
        raise S3Error.not_implemented("x-amz-server-side-encryption-customer-algorithm")
    range_spec = parse_range(h.get("range"))
    part_number: int | None = None
    if "partNumber" in q:
        part_number = params.part_number(q["partNumber"])
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
        conditions=params.conditions(h),
        overrides=params.overrides(q, h),
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
        max_parts=params.int_param(hq, "x-amz-max-parts", 1000, 1000),
        part_number_marker=params.int_param(hq, "x-amz-part-number-marker", 0, params.MAX_INT32),
    )


def _put_object(
    bucket: str, key: str, q: Mapping[str, str], h: Headers, limits: RouterLimits
) -> op.S3Operation:
    params.reject_unsupported_features(h)
    if "acl" in q:
        return op.PutObjectAcl(
            bucket=bucket, key=key, version_id=params.version_id(q), acl=params.acl(h)
        )
    if "tagging" in q:
        return op.PutObjectTagging(
            bucket=bucket,
            key=key,
            version_id=params.version_id(q),
            content_md5=body.content_md5(h),
        )
    has_copy = h.get("x-amz-copy-source") is not None
    if "uploadId" in q or "partNumber" in q:
        upload_id = params.upload_id(q)
        part_number = params.part_number(q.get("partNumber"))
        if has_copy:
            raw_range = h.get("x-amz-copy-source-range")
            return op.UploadPartCopy(
                bucket=bucket,
                key=key,
                upload_id=upload_id,
                part_number=part_number,
                source=params.copy_source(h),
                source_range=parse_copy_source_range(raw_range) if raw_range is not None else None,
                source_conditions=params.conditions(h, "x-amz-copy-source-"),
            )
        return op.UploadPart(
            bucket=bucket,
            key=key,
            upload_id=upload_id,
            part_number=part_number,
            payload=body.payload_info(h, limits.max_part_bytes, body_required=True),
        )
    if has_copy:
        return _copy_object(bucket, key, h, limits)
    return op.PutObject(
        bucket=bucket,
        key=key,
        headers=params.object_headers(h, limits),
        payload=body.payload_info(h, limits.max_object_bytes, body_required=True),
        tagging=params.tagging(h),
        acl=params.acl(h),
        storage_class=params.storage_class(h),
        write_conditions=params.write_conditions(h),
    )


def _copy_object(bucket: str, key: str, h: Headers, limits: RouterLimits) -> op.CopyObject:
    source = params.copy_source(h)
    metadata_directive = params.directive(h, "x-amz-metadata-directive")
    tagging_directive = params.directive(h, "x-amz-tagging-directive")
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
        source_conditions=params.conditions(h, "x-amz-copy-source-"),
        metadata_directive=metadata_directive,
        tagging_directive=tagging_directive,
        headers=params.object_headers(h, limits),
        tagging=params.tagging(h),
        acl=params.acl(h),
        storage_class=params.storage_class(h),
        storage_class_given=storage_class_given,
        write_conditions=params.write_conditions(h),
        checksum_algorithm=body.checksum_algorithm(
            h.get("x-amz-checksum-algorithm"), "x-amz-checksum-algorithm"
        ),
    )
