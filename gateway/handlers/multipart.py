"""Multipart upload handlers: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
ListMultipartUploads.

Parts are always stored as chunks (never inline: ``CommitPart`` carries chunks only). A
part is committed only after its body was fully verified; a failed commit (the upload was
aborted meanwhile) discards its data. Completion validation (order, ETags, EntityTooSmall,
InvalidPart, conditional writes) is atomic in the catalog; part checksums sent in the
CompleteMultipartUpload body are checked here against the ones recorded per part.

Checksums (as S3 for ``x-amz-checksum-type: COMPOSITE``): when the upload was created with
an algorithm, every part's checksum is recorded; CompleteMultipartUpload computes the
composite ``b64(H(d1 || ... || dN))-N`` and stores it on the object (``ObjectRecord.
checksums``), where HEAD/GET (checksum mode, whole object), GetObjectAttributes and the
Complete response return it with type COMPOSITE. ListParts shows each part's checksum.
FULL_OBJECT multipart checksums (CRC combination) are not implemented: such uploads get a
COMPOSITE checksum.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from starlette.responses import Response

from gateway import operations as op
from gateway import xml
from gateway.checksums import Checksum, ChecksumAlgorithm, composite_checksum
from gateway.conditions import check_copy_source
from gateway.context import RequestContext, Services, make_response, read_small_body, xml_response
from gateway.errors import S3Error
from gateway.handlers.object import (
    commit_headers,
    commit_or_discard,
    lookup_object,
    store_body,
    timestamp,
)
from gateway.ranges import resolve_copy_source_range
from gateway.storage import StoredData
from metadata.api import ListMultipartUploadsQuery, ListPartsQuery
from metadata.fsm import commands as cmd
from metadata.fsm.records import PartRecord, UploadRecord
from metadata.fsm.results import ListPartsPage, ListUploadsPage, ObjectCommitted, PartCommitted

__all__ = [
    "abort_multipart_upload",
    "complete_multipart_upload",
    "create_multipart_upload",
    "list_multipart_uploads",
    "list_parts",
    "upload_part",
    "upload_part_copy",
]


async def _upload(sv: Services, bucket: str, key: str, upload_id: str) -> UploadRecord:
    page = await sv.catalog.query(ListPartsQuery(bucket, key, upload_id, max_parts=0))
    assert isinstance(page, ListPartsPage)
    return page.upload


async def _all_parts(sv: Services, bucket: str, key: str, upload_id: str) -> list[PartRecord]:
    parts: list[PartRecord] = []
    marker = 0
    while True:
        page = await sv.catalog.query(
            ListPartsQuery(bucket, key, upload_id, part_number_marker=marker, max_parts=1000)
        )
        assert isinstance(page, ListPartsPage)
        parts.extend(page.parts)
        if not page.is_truncated or page.next_part_number_marker is None:
            return parts
        marker = page.next_part_number_marker


async def create_multipart_upload(
    sv: Services, ctx: RequestContext, o: op.CreateMultipartUpload
) -> Response:
    await sv.bucket(ctx, o.bucket)
    upload_id = sv.new_id()
    await sv.catalog.execute(
        cmd.CreateMultipartUpload(
            o.bucket,
            o.key,
            upload_id,
            ctx.owner,
            commit_headers(o.headers, o.tagging, o.storage_class),
            o.checksum_algorithm or "",
        )
    )
    headers: list[tuple[str, str]] = []
    if o.checksum_algorithm:
        headers.append(("x-amz-checksum-algorithm", o.checksum_algorithm))
        headers.append(("x-amz-checksum-type", o.checksum_type or "COMPOSITE"))
    body = xml.initiate_multipart_upload_result(o.bucket, o.key, upload_id)
    return xml_response(body, headers=headers)


async def _commit_part(
    sv: Services,
    o: op.UploadPart | op.UploadPartCopy,
    stored: StoredData,
    checksums: tuple[tuple[str, str], ...],
) -> PartCommitted:
    command = cmd.CommitPart(
        o.bucket,
        o.key,
        o.upload_id,
        o.part_number,
        stored.size,
        stored.md5_hex,
        stored.chunks,
        checksums,
    )
    result = await commit_or_discard(sv, stored, command)
    assert isinstance(result, PartCommitted)
    return result


async def upload_part(sv: Services, ctx: RequestContext, o: op.UploadPart) -> Response:
    await sv.object_bucket(ctx, o.bucket)
    upload = await _upload(sv, o.bucket, o.key, o.upload_id)
    compute = (
        (ChecksumAlgorithm.from_name(upload.checksum_algorithm),)
        if upload.checksum_algorithm
        else ()
    )
    stored, checksums = await store_body(
        sv, ctx, o.payload, sv.limits.max_part_bytes, compute, allow_inline=False
    )
    result = await _commit_part(sv, o, stored, checksums)
    headers = [("ETag", xml.quote_etag(result.etag))]
    headers += [(f"x-amz-checksum-{a.lower()}", v) for a, v in checksums]
    return make_response(200, headers)


async def upload_part_copy(sv: Services, ctx: RequestContext, o: op.UploadPartCopy) -> Response:
    src = await lookup_object(sv, ctx, o.source.bucket, o.source.key, o.source.version_id)
    await sv.bucket(ctx, o.bucket)
    await _upload(sv, o.bucket, o.key, o.upload_id)
    rec = src.record
    check_copy_source(o.source_conditions, rec.etag, timestamp(rec.last_modified_ms))
    if o.source_range is not None:
        first, last = resolve_copy_source_range(o.source_range, rec.size)
        length = last - first + 1
    else:
        first, length = 0, rec.size
    stored = await sv.store.write(sv.store.read(src, first, length), length, allow_inline=False)
    result = await _commit_part(sv, o, stored, ())
    headers: list[tuple[str, str]] = []
    if rec.version_id != "null":
        headers.append(("x-amz-copy-source-version-id", rec.version_id))
    return xml_response(xml.copy_part_result(result.etag, sv.now()), headers=headers)


def _check_part_checksums(
    requested: tuple[xml.CompletedPart, ...], stored: dict[int, PartRecord]
) -> None:
    for part in requested:
        rec = stored.get(part.part_number)
        if rec is None:
            continue  # the catalog answers InvalidPart
        have = dict(rec.checksums)
        for c in part.checksums:
            if c.algorithm in have and have[c.algorithm] != c.value:
                raise S3Error(
                    "InvalidPart",
                    f"The {c.algorithm} checksum of part {part.part_number} does not match.",
                )


def _composite(
    algorithm: str, requested: tuple[xml.CompletedPart, ...], stored: dict[int, PartRecord]
) -> op.ChecksumHeader | None:
    values: list[Checksum] = []
    alg = ChecksumAlgorithm.from_name(algorithm)
    for part in requested:
        rec = stored.get(part.part_number)
        value = dict(rec.checksums).get(algorithm) if rec is not None else None
        if value is None:
            return None
        values.append(Checksum(alg, base64.b64decode(value)))
    return op.ChecksumHeader(algorithm, composite_checksum(values)) if values else None


async def complete_multipart_upload(
    sv: Services, ctx: RequestContext, o: op.CompleteMultipartUpload
) -> Response:
    await sv.bucket(ctx, o.bucket)
    requested = xml.parse_complete_multipart_upload(await read_small_body(ctx))
    upload = await _upload(sv, o.bucket, o.key, o.upload_id)
    checksum: op.ChecksumHeader | None = None
    if upload.checksum_algorithm or any(p.checksums for p in requested):
        stored = {p.part_number: p for p in await _all_parts(sv, o.bucket, o.key, o.upload_id)}
        _check_part_checksums(requested, stored)
        if upload.checksum_algorithm:
            checksum = _composite(upload.checksum_algorithm, requested, stored)
    wc = o.write_conditions
    result = await sv.catalog.execute(
        cmd.CompleteMultipartUpload(
            o.bucket,
            o.key,
            o.upload_id,
            tuple(cmd.CompletedPart(p.part_number, p.etag) for p in requested),
            sv.new_id(),
            ",".join(wc.if_match) if wc.if_match is not None else None,
            wc.if_none_match_any,
            ((checksum.algorithm, checksum.value),) if checksum is not None else (),
        )
    )
    assert isinstance(result, ObjectCommitted)
    location = f"{ctx.scheme}://{ctx.host}/{o.bucket}/{quote(o.key, safe='/')}"
    body = xml.complete_multipart_upload_result(
        location,
        o.bucket,
        o.key,
        result.etag,
        [checksum] if checksum is not None else [],
        "COMPOSITE" if checksum is not None else None,
    )
    headers = [("x-amz-version-id", result.version_id)] if result.version_id else []
    return xml_response(body, headers=headers)


async def abort_multipart_upload(
    sv: Services, ctx: RequestContext, o: op.AbortMultipartUpload
) -> Response:
    await sv.bucket(ctx, o.bucket)
    await sv.catalog.execute(cmd.AbortMultipartUpload(o.bucket, o.key, o.upload_id))
    return make_response(204)


async def list_parts(sv: Services, ctx: RequestContext, o: op.ListParts) -> Response:
    await sv.bucket(ctx, o.bucket)
    page = await sv.catalog.query(
        ListPartsQuery(
            o.bucket,
            o.key,
            o.upload_id,
            part_number_marker=o.part_number_marker,
            max_parts=o.max_parts,
        )
    )
    assert isinstance(page, ListPartsPage)
    owner = xml.Owner(page.upload.owner, page.upload.owner)
    parts = [
        xml.PartEntry(
            p.part_number,
            timestamp(p.last_modified_ms),
            p.etag,
            p.size,
            tuple(op.ChecksumHeader(a, v) for a, v in p.checksums),
        )
        for p in page.parts
    ]
    body = xml.list_parts_result(
        o,
        parts,
        is_truncated=page.is_truncated,
        next_part_number_marker=page.next_part_number_marker,
        owner=owner,
        storage_class=page.upload.headers.storage_class or "STANDARD",
        checksum_algorithm=page.upload.checksum_algorithm or None,
        checksum_type="COMPOSITE" if page.upload.checksum_algorithm else None,
    )
    return xml_response(body)


async def list_multipart_uploads(
    sv: Services, ctx: RequestContext, o: op.ListMultipartUploads
) -> Response:
    await sv.bucket(ctx, o.bucket)
    page = await sv.catalog.query(
        ListMultipartUploadsQuery(
            o.bucket,
            prefix=o.prefix,
            delimiter=o.delimiter or "",
            key_marker=o.key_marker,
            upload_id_marker=o.upload_id_marker,
            max_uploads=o.max_uploads,
        )
    )
    assert isinstance(page, ListUploadsPage)
    uploads = [
        xml.UploadEntry(
            u.key,
            u.upload.upload_id,
            timestamp(u.upload.initiated_ms),
            u.upload.headers.storage_class or "STANDARD",
            xml.Owner(u.upload.owner, u.upload.owner),
            u.upload.checksum_algorithm or None,
        )
        for u in page.uploads
    ]
    body = xml.list_multipart_uploads_result(
        o,
        uploads,
        page.common_prefixes,
        is_truncated=page.is_truncated,
        next_key_marker=page.next_key_marker,
        next_upload_id_marker=page.next_upload_id_marker,
        owner=xml.Owner(ctx.owner, ctx.owner),
    )
    return xml_response(body)
