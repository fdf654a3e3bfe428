"""Object handlers: Put/Get/Head/Delete/Copy, DeleteObjects, tagging, ACL, attributes.

Write path: bucket check -> (optional) cheap precondition check -> stream the verified body
into the ObjectStore -> drain (final checksum/signature checks) -> ONE catalog command
commits. Any failure before the commit discards the stored data, and so does a definite
refusal of the commit; when the commit's outcome is unknown (``Unavailable``) the data is
left for garbage collection. No half-written object is ever visible.

Read path: the bucket access check (``Services.object_bucket``: the per-process cache, or a
``GetBucketQuery``), then ``HeadObjectQuery`` naming the checked bucket incarnation (so a
stale cache cannot read a re-created bucket's objects, see ``gateway.context``), then
conditions, range/partNumber, and the body streamed from the ObjectStore (never buffered
whole). Checksum mode (``x-amz-checksum-mode: ENABLED``): the stored object checksum with
``x-amz-checksum-type`` on whole-object responses; on ``?partNumber=N`` of a multipart
object the part's own checksum (``ObjectRecord.part_checksums``); never on a range.
GetObjectAttributes lists parts with their checksums and gives a COMPOSITE object value
without its ``-N`` suffix, as S3 does.

Response headers are built here (ETag quoted, Last-Modified as an HTTP date, user
metadata, content headers, storage class when not STANDARD, tag count, version id).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime

from starlette.responses import Response

from blobstore.errors import BlobstoreError, NoSuchKey, Unavailable
from gateway import operations as op
from gateway import xml
from gateway.checksums import Checksum, ChecksumAlgorithm
from gateway.conditions import WriteConditions, check_copy_source, check_read, check_write
from gateway.context import (
    RequestContext,
    Services,
    body_stream,
    make_response,
    read_small_body,
    streaming_response,
    xml_response,
)
from gateway.errors import S3Error
from gateway.ranges import ByteRangeSpec, content_range, resolve_range
from gateway.storage import StoredData
from metadata.api import HeadObjectQuery
from metadata.fsm import commands as cmd
from metadata.fsm import records
from metadata.fsm.results import ObjectCommitted, ObjectDeleted, ObjectInfo, ObjectsDeleted

__all__ = [
    "checksum_type",
    "commit_headers",
    "commit_or_discard",
    "copy_object",
    "delete_object",
    "delete_object_tagging",
    "delete_objects",
    "extra_algorithms",
    "get_object",
    "get_object_acl",
    "get_object_attributes",
    "get_object_tagging",
    "head_object",
    "http_date",
    "lookup_object",
    "lookup_object_in",
    "object_checksum_pairs",
    "put_object",
    "put_object_acl",
    "put_object_tagging",
    "store_body",
    "timestamp",
]

_NULL = records.NULL_VERSION


# -- shared helpers -------------------------------------------------------------------------
def timestamp(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@functools.lru_cache(maxsize=4096)  # the same few Last-Modified values on hot objects
def http_date(ms: int) -> str:
    return format_datetime(timestamp(ms).replace(microsecond=0), usegmt=True)


def commit_headers(
    h: op.ObjectHeaders, tags: tuple[op.Tag, ...], storage_class: str
) -> records.ObjectHeaders:
    """The stored form of a request's representation headers, tags and storage class."""
    return records.ObjectHeaders(
        content_type=h.content_type or "binary/octet-stream",
        content_encoding=h.content_encoding or "",
        content_disposition=h.content_disposition or "",
        content_language=h.content_language or "",
        cache_control=h.cache_control or "",
        expires=h.expires or "",
        user_metadata=h.user_metadata,
        tags=tuple(sorted((t.key, t.value) for t in tags)),
        storage_class=storage_class,
    )


def extra_algorithms(payload: op.PayloadInfo) -> tuple[ChecksumAlgorithm, ...]:
    """Checksums to compute that no header announces (x-amz-sdk-checksum-algorithm only)."""
    if payload.sdk_checksum_algorithm and payload.checksum is None and payload.trailer is None:
        return (ChecksumAlgorithm.from_name(payload.sdk_checksum_algorithm),)
    return ()


def object_checksum_pairs(checksums: tuple[Checksum, ...]) -> records.Pairs:
    """Verified body checksums worth storing (everything but MD5, which is the ETag)."""
    return tuple(
        sorted(
            (c.algorithm.value.upper(), c.b64)
            for c in checksums
            if c.algorithm is not ChecksumAlgorithm.MD5
        )
    )


def checksum_type(pairs: records.Pairs) -> str:
    """COMPOSITE for a multipart object's ``b64-N`` checksum, else FULL_OBJECT."""
    return "COMPOSITE" if any("-" in value for _alg, value in pairs) else "FULL_OBJECT"


def _checksum_headers(pairs: records.Pairs) -> list[tuple[str, str]]:
    return [(f"x-amz-checksum-{alg.lower()}", value) for alg, value in pairs]


def _version_headers(version_id: str | None) -> list[tuple[str, str]]:
    return [("x-amz-version-id", version_id)] if version_id else []


async def lookup_object_in(
    sv: Services, ctx: RequestContext, bucket: str, key: str, version_id: str | None
) -> tuple[records.BucketRecord, ObjectInfo]:
    """Bucket access check, then the object version (NoSuchKey if absent) read in the
    bucket incarnation that was checked; returns both.

    The access check decides first, so a stranger learns nothing about the object. With a
    fresh cached bucket record (the hot path) this is one catalog read."""

    async def head(b: records.BucketRecord) -> tuple[records.BucketRecord, object]:
        return b, await sv.catalog.query(HeadObjectQuery(bucket, key, version_id, b.incarnation))

    rec, info = await sv.in_bucket(ctx, await sv.object_bucket(ctx, bucket), head)
    assert isinstance(info, ObjectInfo)
    if info.record.is_delete_marker:
        raise S3Error(
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            405,
            headers=(("x-amz-delete-marker", "true"), ("x-amz-version-id", info.record.version_id)),
        )
    return rec, info


async def lookup_object(
    sv: Services, ctx: RequestContext, bucket: str, key: str, version_id: str | None
) -> ObjectInfo:
    """``lookup_object_in`` without the bucket record."""
    return (await lookup_object_in(sv, ctx, bucket, key, version_id))[1]


async def _current_etag(
    sv: Services, ctx: RequestContext, rec: records.BucketRecord, key: str
) -> str | None:
    try:
        info = await sv.query_in(ctx, rec, HeadObjectQuery(rec.name, key))
    except NoSuchKey:
        return None
    assert isinstance(info, ObjectInfo)
    return info.record.etag


def _write_condition_args(wc: WriteConditions) -> tuple[str | None, bool]:
    if_match = ",".join(wc.if_match) if wc.if_match is not None else None
    return if_match, wc.if_none_match_any


def _object_headers(rec: records.ObjectRecord) -> list[tuple[str, str]]:
    h = rec.headers
    out = [
        ("ETag", xml.quote_etag(rec.etag)),
        ("Last-Modified", http_date(rec.last_modified_ms)),
        ("Accept-Ranges", "bytes"),
        ("Content-Type", h.content_type or "binary/octet-stream"),
    ]
    for name, value in (
        ("Content-Encoding", h.content_encoding),
        ("Content-Disposition", h.content_disposition),
        ("Content-Language", h.content_language),
        ("Cache-Control", h.cache_control),
        ("Expires", h.expires),
    ):
        if value:
            out.append((name, value))
    out.extend((f"x-amz-meta-{k}", v) for k, v in h.user_metadata)
    if h.storage_class and h.storage_class != "STANDARD":
        out.append(("x-amz-storage-class", h.storage_class))
    if h.tags:
        out.append(("x-amz-tagging-count", str(len(h.tags))))
    if rec.version_id != _NULL:
        out.append(("x-amz-version-id", rec.version_id))
    return out


_OVERRIDES = (
    ("content_type", "Content-Type"),
    ("content_language", "Content-Language"),
    ("expires", "Expires"),
    ("cache_control", "Cache-Control"),
    ("content_disposition", "Content-Disposition"),
    ("content_encoding", "Content-Encoding"),
)


def _apply_overrides(
    headers: list[tuple[str, str]], overrides: op.ResponseOverrides
) -> list[tuple[str, str]]:
    if overrides.is_empty:
        return headers
    for attr, name in _OVERRIDES:
        value = getattr(overrides, attr)
        if value is not None:
            headers = [(k, v) for k, v in headers if k.lower() != name.lower()]
            headers.append((name, value))
    return headers


# -- PutObject ------------------------------------------------------------------------------
async def commit_or_discard(
    sv: Services,
    ctx: RequestContext,
    rec: records.BucketRecord,
    stored: StoredData,
    command: cmd.CommitObject | cmd.CommitPart,
) -> object:
    """Execute the command that makes ``stored`` visible, in the bucket incarnation ``rec``
    (``Services.execute_in``: a replaced bucket is re-checked, and the commit retried once
    if the principal may use the new one); discard the data if the catalog definitely
    refused it. On ``Unavailable`` (timeouts, lost quorum) or cancellation the outcome is
    unknown -- the command may have committed -- so the data is kept (an uncommitted write
    is garbage-collected later)."""
    try:
        return await sv.execute_in(ctx, rec, command)
    except BlobstoreError as exc:
        if not isinstance(exc, Unavailable):
            await sv.store.discard(stored)
        raise


async def store_body(
    sv: Services,
    ctx: RequestContext,
    payload: op.PayloadInfo,
    cap_bytes: int,
    compute: tuple[ChecksumAlgorithm, ...] = (),
    *,
    allow_inline: bool = True,
) -> tuple[StoredData, records.Pairs]:
    """Stream the verified body into the store; (stored data, checksums to record)."""
    body = body_stream(ctx, cap_bytes, compute + extra_algorithms(payload))
    # a body that announced Content-MD5 is hashed by its verifier: the ETag comes from
    # there rather than from a second MD5 pass in the store
    verifier_md5 = ChecksumAlgorithm.MD5 in body.algorithms
    stored = await sv.store.write(
        body, payload.object_size, allow_inline=allow_inline, md5=not verifier_md5
    )
    try:
        await body.drain()
    except BaseException:
        await sv.store.discard(stored)
        raise
    if verifier_md5:
        md5 = next(c.digest for c in body.checksums if c.algorithm is ChecksumAlgorithm.MD5)
        stored = replace(stored, md5_hex=md5.hex())
    return stored, object_checksum_pairs(body.checksums)


async def put_object(sv: Services, ctx: RequestContext, o: op.PutObject) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    if_match, if_none_match = _write_condition_args(o.write_conditions)
    if if_match is not None or if_none_match:
        check_write(o.write_conditions, o.key, await _current_etag(sv, ctx, rec, o.key))
    stored, checksums = await store_body(sv, ctx, o.payload, sv.limits.max_object_bytes)
    command = cmd.CommitObject(
        bucket=o.bucket,
        key=o.key,
        version_id=sv.new_id(),
        owner=ctx.owner,
        size=stored.size,
        etag=stored.md5_hex,
        headers=commit_headers(o.headers, o.tagging, o.storage_class),
        checksums=checksums,
        chunks=stored.chunks,
        inline_data=stored.inline,
        if_match=if_match,
        if_none_match=if_none_match,
    )
    result = await commit_or_discard(sv, ctx, rec, stored, command)
    assert isinstance(result, ObjectCommitted)
    headers = [("ETag", xml.quote_etag(result.etag)), *_checksum_headers(checksums)]
    headers += _version_headers(result.version_id)
    return make_response(200, headers)


# -- GetObject / HeadObject -------------------------------------------------------------------
def _select(
    rec: records.ObjectRecord,
    range_spec: ByteRangeSpec | None,
    part_number: int | None,
) -> tuple[int, int, int, list[tuple[str, str]]]:
    """(status, start, length, extra headers) of a GET/HEAD."""
    size = rec.size
    if part_number is not None:
        sizes = rec.part_sizes or (size,)
        if part_number > len(sizes):
            raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", 416)
        if not rec.part_sizes:
            return 200, 0, size, []
        start = sum(sizes[: part_number - 1])
        length = sizes[part_number - 1]
        extra = [("x-amz-mp-parts-count", str(len(sizes)))]
        if length:
            extra.append(("Content-Range", content_range(start, start + length - 1, size)))
        return 206, start, length, extra
    if range_spec is not None:
        first, last = resolve_range(range_spec, size)
        return 206, first, last - first + 1, [("Content-Range", content_range(first, last, size))]
    return 200, 0, size, []


def _read_checksum_headers(
    rec: records.ObjectRecord, status: int, part_number: int | None
) -> list[tuple[str, str]]:
    """Checksum headers of a GET/HEAD in checksum mode: the object's on a whole-object
    response (a multipart object's COMPOSITE ``b64-N`` or FULL_OBJECT value), the part's
    own on ``?partNumber=N`` of a multipart object, none on a range."""
    if status == 200 and rec.checksums:
        pairs = rec.checksums
    elif part_number is not None and rec.part_sizes and len(rec.part_checksums) >= part_number:
        pairs = rec.part_checksums[part_number - 1]
    else:
        return []
    if not pairs:
        return []
    kind = checksum_type(rec.checksums) if rec.checksums else "FULL_OBJECT"
    return [*_checksum_headers(pairs), ("x-amz-checksum-type", kind)]


async def _read(
    sv: Services, ctx: RequestContext, o: op.GetObject | op.HeadObject
) -> tuple[ObjectInfo, int, int, int, list[tuple[str, str]]]:
    info = await lookup_object(sv, ctx, o.bucket, o.key, o.version_id)
    rec = info.record
    headers = _object_headers(rec)
    check_read(
        o.conditions,
        rec.etag,
        timestamp(rec.last_modified_ms),
        (("ETag", xml.quote_etag(rec.etag)), ("Last-Modified", http_date(rec.last_modified_ms))),
    )
    status, start, length, extra = _select(rec, o.range, o.part_number)
    headers.extend(extra)
    if o.checksum_mode:
        headers.extend(_read_checksum_headers(rec, status, o.part_number))
    headers = _apply_overrides(headers, o.overrides)
    return info, status, start, length, headers


async def get_object(sv: Services, ctx: RequestContext, o: op.GetObject) -> Response:
    info, status, start, length, headers = await _read(sv, ctx, o)
    inline = info.record.inline_data
    if not info.chunks and inline is not None and start + length <= len(inline):
        # inline (small) objects: one plain response, no streaming machinery per request
        data = inline[start : start + length]
        content_type = next((v for k, v in headers if k == "Content-Type"), None)
        rest = [(k, v) for k, v in headers if k != "Content-Type"]
        return make_response(status, rest, data, content_type=content_type)
    return streaming_response(status, headers, sv.store.read(info, start, length), length)


async def head_object(sv: Services, ctx: RequestContext, o: op.HeadObject) -> Response:
    _info, status, _start, length, headers = await _read(sv, ctx, o)
    content_type = next((v for k, v in headers if k == "Content-Type"), None)
    headers = [(k, v) for k, v in headers if k != "Content-Type"]
    return make_response(status, headers, content_type=content_type, content_length=length)


# -- DeleteObject(s) ----------------------------------------------------------------------------
async def delete_object(sv: Services, ctx: RequestContext, o: op.DeleteObject) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    if_match = ",".join(o.write_conditions.if_match) if o.write_conditions.if_match else None
    result = await sv.execute_in(
        ctx, rec, cmd.DeleteObject(o.bucket, o.key, o.version_id, sv.new_id(), if_match)
    )
    assert isinstance(result, ObjectDeleted)
    headers: list[tuple[str, str]] = []
    if result.delete_marker:
        headers.append(("x-amz-delete-marker", "true"))
    headers += _version_headers(result.version_id)
    return make_response(204, headers)


async def delete_objects(sv: Services, ctx: RequestContext, o: op.DeleteObjects) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    request = xml.parse_delete(await read_small_body(ctx))
    result = await sv.execute_in(
        ctx,
        rec,
        cmd.DeleteObjects(
            o.bucket,
            tuple(
                cmd.ObjectIdentifier(obj.key, obj.version_id, sv.new_id())
                for obj in request.objects
            ),
        ),
    )
    assert isinstance(result, ObjectsDeleted)
    deleted = [xml.DeletedEntry(d.key, d.version_id) for d in result.deleted]
    errors = [xml.DeleteError(e.key, e.code, e.message, e.version_id) for e in result.errors]
    return xml_response(xml.delete_result(deleted, errors, quiet=request.quiet))


# -- CopyObject -----------------------------------------------------------------------------
async def copy_object(sv: Services, ctx: RequestContext, o: op.CopyObject) -> Response:
    src_bucket, src = await lookup_object_in(
        sv, ctx, o.source.bucket, o.source.key, o.source.version_id
    )
    dest = await sv.object_bucket(ctx, o.bucket)
    rec = src.record
    check_copy_source(o.source_conditions, rec.etag, timestamp(rec.last_modified_ms))
    headers: records.ObjectHeaders | None = None
    storage_class = o.storage_class if o.storage_class_given else rec.headers.storage_class
    tags = (
        tuple(op.Tag(k, v) for k, v in rec.headers.tags)
        if o.tagging_directive == "COPY"
        else o.tagging
    )
    if o.metadata_directive == "REPLACE":
        headers = commit_headers(o.headers, tags, storage_class)
    elif o.tagging_directive == "REPLACE" or o.storage_class_given:
        headers = replace(
            rec.headers,
            tags=tuple(sorted((t.key, t.value) for t in tags)),
            storage_class=storage_class,
        )
    if_match, if_none_match = _write_condition_args(o.write_conditions)
    result = await sv.execute_in(
        ctx,
        dest,
        cmd.CopyObject(
            src_bucket=o.source.bucket,
            src_key=o.source.key,
            bucket=o.bucket,
            key=o.key,
            version_id=sv.new_id(),
            owner=ctx.owner,
            src_version_id=o.source.version_id,
            headers=headers,
            source_if_match=rec.etag,  # copy exactly the version the conditions were checked on
            if_match=if_match,
            if_none_match=if_none_match,
            src_incarnation=src_bucket.incarnation,
        ),
    )
    assert isinstance(result, ObjectCommitted)
    out = _version_headers(result.version_id)
    if result.copy_source_version_id:
        out.append(("x-amz-copy-source-version-id", result.copy_source_version_id))
    checksums = [op.ChecksumHeader(a, v) for a, v in rec.checksums]
    body = xml.copy_object_result(result.etag, timestamp(result.last_modified_ms), checksums)
    return xml_response(body, headers=out)


# -- tagging, ACL, attributes ------------------------------------------------------------------
async def get_object_tagging(sv: Services, ctx: RequestContext, o: op.GetObjectTagging) -> Response:
    info = await lookup_object(sv, ctx, o.bucket, o.key, o.version_id)
    tags = [op.Tag(k, v) for k, v in info.record.headers.tags]
    vid = info.record.version_id
    return xml_response(xml.tagging(tags), headers=_version_headers(vid if vid != _NULL else None))


async def put_object_tagging(sv: Services, ctx: RequestContext, o: op.PutObjectTagging) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    tags = xml.parse_tagging(await read_small_body(ctx), 10)
    result = await sv.execute_in(
        ctx,
        rec,
        cmd.PutObjectTagging(
            o.bucket, o.key, tuple(sorted((t.key, t.value) for t in tags)), o.version_id
        ),
    )
    vid = getattr(result, "version_id", None)
    return make_response(200, _version_headers(vid))


async def delete_object_tagging(
    sv: Services, ctx: RequestContext, o: op.DeleteObjectTagging
) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    result = await sv.execute_in(
        ctx, rec, cmd.PutObjectTagging(o.bucket, o.key, None, o.version_id)
    )
    vid = getattr(result, "version_id", None)
    return make_response(204, _version_headers(vid))


async def get_object_acl(sv: Services, ctx: RequestContext, o: op.GetObjectAcl) -> Response:
    info = await lookup_object(sv, ctx, o.bucket, o.key, o.version_id)
    owner = xml.Owner(info.record.owner, info.record.owner)
    return xml_response(xml.access_control_policy(owner))


async def put_object_acl(sv: Services, ctx: RequestContext, o: op.PutObjectAcl) -> Response:
    await lookup_object(sv, ctx, o.bucket, o.key, o.version_id)
    body = await read_small_body(ctx, 1024 * 1024)
    if body.strip():
        xml.parse_access_control_policy(body)  # validated, then ignored: owner-only ACLs
    return make_response(200)


async def get_object_attributes(
    sv: Services, ctx: RequestContext, o: op.GetObjectAttributes
) -> Response:
    info = await lookup_object(sv, ctx, o.bucket, o.key, o.version_id)
    rec = info.record
    parts: list[xml.PartEntry] | None = None
    truncated = False
    next_marker: int | None = None
    if rec.part_sizes:
        numbered = list(enumerate(rec.part_sizes, 1))[o.part_number_marker :]
        truncated = len(numbered) > o.max_parts
        numbered = numbered[: o.max_parts]
        part_sums = rec.part_checksums
        parts = [
            xml.PartEntry(
                n,
                timestamp(rec.last_modified_ms),
                "",
                size,
                tuple(op.ChecksumHeader(a, v) for a, v in part_sums[n - 1])
                if n <= len(part_sums)
                else (),
            )
            for n, size in numbered
        ]
        next_marker = numbered[-1][0] if truncated and numbered else None
    body = xml.get_object_attributes_response(
        o,
        etag=rec.etag,
        size=rec.size,
        storage_class=rec.headers.storage_class or "STANDARD",
        # S3 gives a COMPOSITE value here without its "-N" (the type says what it is)
        checksums=[op.ChecksumHeader(a, v.partition("-")[0]) for a, v in rec.checksums],
        checksum_type=checksum_type(rec.checksums) if rec.checksums else None,
        parts=parts,
        total_parts=len(rec.part_sizes),
        parts_truncated=truncated,
        next_part_number_marker=next_marker,
    )
    headers = [("Last-Modified", http_date(rec.last_modified_ms))]
    headers += _version_headers(rec.version_id if rec.version_id != _NULL else None)
    return xml_response(body, headers=headers)
