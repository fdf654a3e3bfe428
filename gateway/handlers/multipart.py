"""Multipart upload handlers: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
ListMultipartUploads.

Parts are always stored as chunks (never inline: ``CommitPart`` carries chunks only). A
part is committed only after its body was fully verified; a failed commit (the upload was
aborted meanwhile) discards its data. Completion validation (order, ETags, EntityTooSmall,
InvalidPart, conditional writes) is atomic in the catalog; part checksums sent in the
CompleteMultipartUpload body are checked here against the ones recorded per part.
Every handler checks access with ``Services.object_bucket`` and names the checked bucket
incarnation in its catalog calls (``query_in`` / ``execute_in`` / ``commit_or_discard``).

Checksums (as S3): an upload created with ``x-amz-checksum-algorithm`` gets a checksum
type (``x-amz-checksum-type``; default COMPOSITE, CRC64NVME always FULL_OBJECT, SHA1/SHA256
never FULL_OBJECT -> InvalidRequest; see ``checksums.multipart_checksum_type``). Every
part's checksum in that algorithm is recorded (UploadPart and UploadPartCopy compute it).
CompleteMultipartUpload derives the object's checksum from the listed parts' ones:
COMPOSITE ``b64(H(d1 || ... || dN))-N`` or FULL_OBJECT, the CRC of the whole object
combined from the part CRCs (no ``-N``). The request's own ``x-amz-checksum-<alg>`` is
the client's expected value for the OBJECT (not the XML body, which is read with those
headers ignored): a different value, or an ``x-amz-checksum-type`` other than the
upload's, is 400 BadDigest and nothing is committed. On an upload created without an
algorithm, that header names the algorithm (its form -- ``-N`` or not -- the type) and is
checked when every listed part has a checksum in it; otherwise InvalidRequest. The value
is stored on the object (``ObjectRecord.checksums``; HEAD/GET in checksum mode,
GetObjectAttributes and the Complete response return it with its type), and so are the
listed parts' own checksums (``ObjectRecord.part_checksums``: GET/HEAD ``?partNumber=N``
in checksum mode, GetObjectAttributes ObjectParts). ListParts shows each part's checksum.
As S3 does, a Complete body for an upload created with a COMPOSITE algorithm must list
every part's checksum in it (InvalidRequest, naming the first part without one).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import quote

from starlette.responses import Response

from blobstore.errors import BadDigest
from gateway import operations as op
from gateway import xml
from gateway.checksums import (
    COMPOSITE,
    FULL_OBJECT,
    Checksum,
    ChecksumAlgorithm,
    Checksummer,
    composite_checksum,
    full_object_checksum,
    multipart_checksum_type,
)
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
from gateway.sigv4 import InvalidRequest
from gateway.storage import BodyPiece, StoredData
from metadata.api import ListMultipartUploadsQuery, ListPartsQuery
from metadata.fsm import commands as cmd
from metadata.fsm.records import BucketRecord, PartRecord, UploadRecord
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


async def _upload(
    sv: Services, ctx: RequestContext, rec: BucketRecord, key: str, upload_id: str
) -> UploadRecord:
    page = await sv.query_in(ctx, rec, ListPartsQuery(rec.name, key, upload_id, max_parts=0))
    assert isinstance(page, ListPartsPage)
    return page.upload


async def _all_parts(
    sv: Services, ctx: RequestContext, rec: BucketRecord, key: str, upload_id: str
) -> list[PartRecord]:
    parts: list[PartRecord] = []
    marker = 0
    while True:
        page = await sv.query_in(
            ctx,
            rec,
            ListPartsQuery(rec.name, key, upload_id, part_number_marker=marker, max_parts=1000),
        )
        assert isinstance(page, ListPartsPage)
        parts.extend(page.parts)
        if not page.is_truncated or page.next_part_number_marker is None:
            return parts
        marker = page.next_part_number_marker


async def create_multipart_upload(
    sv: Services, ctx: RequestContext, o: op.CreateMultipartUpload
) -> Response:
    algorithm = ChecksumAlgorithm.from_name(o.checksum_algorithm) if o.checksum_algorithm else None
    kind = multipart_checksum_type(algorithm, o.checksum_type)
    rec = await sv.object_bucket(ctx, o.bucket)
    upload_id = sv.new_id()
    await sv.execute_in(
        ctx,
        rec,
        cmd.CreateMultipartUpload(
            o.bucket,
            o.key,
            upload_id,
            ctx.owner,
            commit_headers(o.headers, o.tagging, o.storage_class),
            o.checksum_algorithm or "",
            kind,
        ),
    )
    headers: list[tuple[str, str]] = []
    if o.checksum_algorithm:
        headers.append(("x-amz-checksum-algorithm", o.checksum_algorithm))
        headers.append(("x-amz-checksum-type", kind))
    body = xml.initiate_multipart_upload_result(o.bucket, o.key, upload_id)
    return xml_response(body, headers=headers)


async def _commit_part(
    sv: Services,
    ctx: RequestContext,
    rec: BucketRecord,
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
    result = await commit_or_discard(sv, ctx, rec, stored, command)
    assert isinstance(result, PartCommitted)
    return result


async def upload_part(sv: Services, ctx: RequestContext, o: op.UploadPart) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    upload = await _upload(sv, ctx, rec, o.key, o.upload_id)
    compute = (
        (ChecksumAlgorithm.from_name(upload.checksum_algorithm),)
        if upload.checksum_algorithm
        else ()
    )
    stored, checksums = await store_body(
        sv, ctx, o.payload, sv.limits.max_part_bytes, compute, allow_inline=False
    )
    result = await _commit_part(sv, ctx, rec, o, stored, checksums)
    headers = [("ETag", xml.quote_etag(result.etag))]
    headers += [(f"x-amz-checksum-{a.lower()}", v) for a, v in checksums]
    return make_response(200, headers)


async def upload_part_copy(sv: Services, ctx: RequestContext, o: op.UploadPartCopy) -> Response:
    src = await lookup_object(sv, ctx, o.source.bucket, o.source.key, o.source.version_id)
    dest = await sv.object_bucket(ctx, o.bucket)
    upload = await _upload(sv, ctx, dest, o.key, o.upload_id)
    rec = src.record
    check_copy_source(o.source_conditions, rec.etag, timestamp(rec.last_modified_ms))
    if o.source_range is not None:
        first, last = resolve_copy_source_range(o.source_range, rec.size)
        length = last - first + 1
    else:
        first, length = 0, rec.size
    algorithms = (
        (ChecksumAlgorithm.from_name(upload.checksum_algorithm),)
        if upload.checksum_algorithm
        else ()
    )
    summer = Checksummer(algorithms)
    body = _summed(sv.store.read(src, first, length), summer)
    stored = await sv.store.write(body, length, allow_inline=False)
    checksums = tuple((c.algorithm.value.upper(), c.b64) for c in summer.digests())
    result = await _commit_part(sv, ctx, dest, o, stored, checksums)
    headers: list[tuple[str, str]] = []
    if rec.version_id != "null":
        headers.append(("x-amz-copy-source-version-id", rec.version_id))
    part_checksums = [op.ChecksumHeader(a, v) for a, v in checksums]
    body_xml = xml.copy_part_result(result.etag, sv.now(), part_checksums)
    return xml_response(body_xml, headers=headers)


_SUM_IN_THREAD_BYTES = 256 * 1024


async def _summed(
    source: AsyncIterator[BodyPiece], summer: Checksummer
) -> AsyncIterator[BodyPiece]:
    """``source`` unchanged, fed to ``summer`` on the way (large pieces off the loop)."""
    async for piece in source:
        if summer.algorithms:
            if len(piece) >= _SUM_IN_THREAD_BYTES:
                await asyncio.to_thread(summer.update, piece)
            else:
                summer.update(piece)
        yield piece


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


def _object_checksum(
    algorithm: str,
    kind: str,
    requested: tuple[xml.CompletedPart, ...],
    stored: dict[int, PartRecord],
) -> op.ChecksumHeader | None:
    """The object's checksum from the listed parts' ones; None if a part has none."""
    values: list[tuple[Checksum, int]] = []
    alg = ChecksumAlgorithm.from_name(algorithm)
    for part in requested:
        rec = stored.get(part.part_number)
        value = dict(rec.checksums).get(algorithm) if rec is not None else None
        if rec is None or value is None:
            return None
        values.append((Checksum(alg, base64.b64decode(value)), rec.size))
    if not values:
        return None
    if kind == FULL_OBJECT:
        return op.ChecksumHeader(algorithm, full_object_checksum(values).b64)
    return op.ChecksumHeader(algorithm, composite_checksum([c for c, _ in values]))


def _effective_checksum(upload: UploadRecord, o: op.CompleteMultipartUpload) -> tuple[str, str]:
    """(algorithm, type) the object's checksum is computed with; ("", "") for none."""
    want = o.object_checksum
    if upload.checksum_algorithm:
        algorithm, kind = upload.checksum_algorithm, upload.checksum_type or COMPOSITE
        if want is not None and want.algorithm != algorithm:
            raise InvalidRequest(
                f"Checksum Type mismatch occurred, expected checksum Type: {algorithm.lower()}, "
                f"actual checksum Type: {want.algorithm.lower()}"
            )
    elif want is not None:
        algorithm = want.algorithm
        implied = COMPOSITE if "-" in want.value else FULL_OBJECT
        kind = multipart_checksum_type(
            ChecksumAlgorithm.from_name(algorithm), o.checksum_type or implied
        )
    else:
        return "", ""
    if o.checksum_type and o.checksum_type != kind:
        raise BadDigest(
            f"The upload was created using the {kind} checksum mode. The complete request "
            f"must use the same checksum mode.",
            expected=o.checksum_type,
            calculated=kind,
        )
    return algorithm, kind


def _require_part_checksums(
    upload: UploadRecord, kind: str, requested: tuple[xml.CompletedPart, ...]
) -> None:
    """S3's rule: an upload created with a COMPOSITE checksum algorithm is completed only by
    a body that lists each part's checksum in that algorithm (FULL_OBJECT ones need not)."""
    algorithm = upload.checksum_algorithm
    if not algorithm or kind != COMPOSITE:
        return
    for part in requested:
        if not any(c.algorithm == algorithm for c in part.checksums):
            raise InvalidRequest(
                f"The upload was created using a {algorithm.lower()} checksum. The complete "
                "request must include the checksum for each part. It was missing for part "
                f"{part.part_number} in the request."
            )


def _check_object_checksum(want: op.ChecksumHeader, got: op.ChecksumHeader | None) -> None:
    """BadDigest unless the Complete request's expected object checksum is ``got``."""
    if got is None:
        raise InvalidRequest(
            f"The {want.algorithm.lower()} checksum of the object cannot be verified: "
            "a listed part was uploaded without it."
        )
    same = want.value == got.value
    if not same and "-" not in want.value and "-" in got.value:
        same = want.value == got.value.partition("-")[0]  # COMPOSITE value without its -N
    if not same:
        raise BadDigest(
            f"The {want.algorithm} you specified did not match the calculated checksum.",
            expected=want.value,
            calculated=got.value,
        )


_COMBINE_IN_THREAD_PARTS = 500  # ~10 us per part (FULL_OBJECT CRC combination)
_OBJECT_CHECKSUM_HEADERS = frozenset(
    a.header_name for a in ChecksumAlgorithm if a is not ChecksumAlgorithm.MD5
)


async def _read_complete_body(ctx: RequestContext) -> bytes:
    """The Complete XML, verified without x-amz-checksum-<alg> (the object's checksum,
    not the body's; Content-MD5 and trailing checksums still apply)."""
    parts = ctx.parts
    kept = tuple((k, v) for k, v in parts.headers if k.lower() not in _OBJECT_CHECKSUM_HEADERS)
    ctx.parts = replace(parts, headers=kept)
    try:
        return await read_small_body(ctx)
    finally:
        ctx.parts = parts


async def complete_multipart_upload(
    sv: Services, ctx: RequestContext, o: op.CompleteMultipartUpload
) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    requested = xml.parse_complete_multipart_upload(await _read_complete_body(ctx))
    upload = await _upload(sv, ctx, rec, o.key, o.upload_id)
    algorithm, kind = _effective_checksum(upload, o)
    _require_part_checksums(upload, kind, requested)
    checksum: op.ChecksumHeader | None = None
    if algorithm or any(p.checksums for p in requested):
        parts = await _all_parts(sv, ctx, rec, o.key, o.upload_id)
        stored = {p.part_number: p for p in parts}
        _check_part_checksums(requested, stored)
        if algorithm and len(requested) >= _COMBINE_IN_THREAD_PARTS:
            checksum = await asyncio.to_thread(_object_checksum, algorithm, kind, requested, stored)
        elif algorithm:
            checksum = _object_checksum(algorithm, kind, requested, stored)
        if o.object_checksum is not None:
            _check_object_checksum(o.object_checksum, checksum)
    wc = o.write_conditions
    result = await sv.execute_in(
        ctx,
        rec,
        cmd.CompleteMultipartUpload(
            o.bucket,
            o.key,
            o.upload_id,
            tuple(cmd.CompletedPart(p.part_number, p.etag) for p in requested),
            sv.new_id(),
            ",".join(wc.if_match) if wc.if_match is not None else None,
            wc.if_none_match_any,
            ((checksum.algorithm, checksum.value),) if checksum is not None else (),
            keep_part_checksums=True,
        ),
    )
    assert isinstance(result, ObjectCommitted)
    location = f"{ctx.scheme}://{ctx.host}/{o.bucket}/{quote(o.key, safe='/')}"
    body = xml.complete_multipart_upload_result(
        location,
        o.bucket,
        o.key,
        result.etag,
        [checksum] if checksum is not None else [],
        kind if checksum is not None else None,
    )
    headers = [("x-amz-version-id", result.version_id)] if result.version_id else []
    return xml_response(body, headers=headers)


async def abort_multipart_upload(
    sv: Services, ctx: RequestContext, o: op.AbortMultipartUpload
) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    await sv.execute_in(ctx, rec, cmd.AbortMultipartUpload(o.bucket, o.key, o.upload_id))
    return make_response(204)


async def list_parts(sv: Services, ctx: RequestContext, o: op.ListParts) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    page = await sv.query_in(
        ctx,
        rec,
        ListPartsQuery(
            o.bucket,
            o.key,
            o.upload_id,
            part_number_marker=o.part_number_marker,
            max_parts=o.max_parts,
        ),
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
        checksum_type=(page.upload.checksum_type or COMPOSITE)
        if page.upload.checksum_algorithm
        else None,
    )
    return xml_response(body)


async def list_multipart_uploads(
    sv: Services, ctx: RequestContext, o: op.ListMultipartUploads
) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    page = await sv.query_in(
        ctx,
        rec,
        ListMultipartUploadsQuery(
            o.bucket,
            prefix=o.prefix,
            delimiter=o.delimiter or "",
            key_marker=o.key_marker,
            upload_id_marker=o.upload_id_marker,
            max_uploads=o.max_uploads,
        ),
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
