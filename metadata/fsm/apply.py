"""Command handlers: the deterministic transition function of the catalog.

``apply_command(kv, command, now_ms, config) -> Result`` validates a command against the
current state and, only if every check passes, writes its effects through the ordered KV.
It never raises for a bad command: domain failures come back as ``BlobstoreError`` values
(apply must be total, or one bad entry would wedge every replica). Exactly-once sessions and
the catalog clock are handled one level up, in ``state.Catalog``.

Handlers for buckets and objects live here; multipart uploads in ``multipart.py``, cluster
administration (users, chunkservers, placement, delete queue, EC profile) in ``admin.py``,
shared version/chunk bookkeeping in ``objects.py`` (including the bucket incarnation check
of every bucket and object command, see ``commands.py``), GC chunk fences in ``fences.py`` (a
commit naming a fenced chunk fails with ``ChunkFenced`` before anything else is checked).

Determinism: the result depends only on (state, command, now_ms, config). No time, I/O,
randomness, dict/set iteration order or ``hash()`` of strings leak into state.
Pure: stdlib (hashlib) plus ``blobstore.errors``/``blobstore.types`` and sibling modules.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from blobstore.errors import (
    BlobstoreError,
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidArgument,
    InvalidBucketName,
    NoSuchKey,
    PreconditionFailed,
)
from metadata.fsm import admin, fences, multipart
from metadata.fsm import keyspace as ks
from metadata.fsm.commands import (
    AbortMultipartUpload,
    AckShardDeletes,
    ChunkserverHeartbeat,
    ClearBadShards,
    CommitObject,
    CommitPart,
    CompleteMultipartUpload,
    CopyObject,
    CreateBucket,
    CreateMultipartUpload,
    DeleteAccessKey,
    DeleteBucket,
    DeleteObject,
    DeleteObjects,
    DeleteUser,
    FenceChunks,
    FenceShards,
    Noop,
    PutAccessKey,
    PutBucketAcl,
    PutBucketCors,
    PutBucketTagging,
    PutBucketVersioning,
    PutObjectTagging,
    PutUser,
    RegisterChunkserver,
    ReportBadShards,
    SetChunkserverState,
    SetErasureProfile,
    UpdatePlacement,
)
from metadata.fsm.kv import OrderedKV, prefix_end
from metadata.fsm.multipart import ApplyConfig, multipart_etag
from metadata.fsm.names import bucket_name_error, key_error
from metadata.fsm.objects import (
    add_chunks,
    bucket_or_error,
    chunk_error,
    committed,
    current,
    etag_matches,
    find_version,
    install_version,
    new_version_id,
    next_seq,
    normalize_etag,
    ref_chunks,
    release_chunks,
    remove_version,
    write_condition,
)
from metadata.fsm.records import NULL_VERSION, BucketRecord, ObjectRecord, PartRecord
from metadata.fsm.results import (
    BucketCreated,
    BucketDeleted,
    BucketUpdated,
    DeleteError,
    NoopApplied,
    ObjectDeleted,
    ObjectsDeleted,
    ObjectTagged,
    Result,
)

__all__ = ["ApplyConfig", "apply_command", "multipart_etag"]

MAX_DELETE_OBJECTS = 1000


def _bad(message: str, **details: str) -> InvalidArgument:
    return InvalidArgument(message, **details)


# -- buckets ----------------------------------------------------------------------------
def _create_bucket(kv: OrderedKV, cmd: CreateBucket, now_ms: int) -> Result:
    why = bucket_name_error(cmd.bucket)
    if why:
        return InvalidBucketName(why, bucket=str(cmd.bucket))
    if not cmd.owner or "\0" in cmd.owner:
        return _bad("bucket owner must be a non-empty name")
    existing = kv.get(ks.BUCKET + cmd.bucket.encode())
    if existing is not None:
        if cast(BucketRecord, existing).owner == cmd.owner:
            return BucketAlreadyOwnedByYou(f"you already own {cmd.bucket!r}", bucket=cmd.bucket)
        return BucketAlreadyExists(f"bucket {cmd.bucket!r} is taken", bucket=cmd.bucket)
    rec = BucketRecord(cmd.bucket, cmd.owner, now_ms, acl=cmd.acl, incarnation=next_seq(kv))
    kv.put(ks.BUCKET + cmd.bucket.encode(), rec)
    kv.put(ks.BUCKET_BY_OWNER + ks.join(cmd.owner, cmd.bucket), b"")
    return BucketCreated(cmd.bucket)


def _delete_bucket(kv: OrderedKV, cmd: DeleteBucket, now_ms: int) -> Result:
    b = bucket_or_error(kv, cmd.bucket, cmd.incarnation)
    if isinstance(b, BlobstoreError):
        return b
    for table in (ks.OBJECT, ks.VERSION):
        lo = ks.bucket_prefix(table, b.name)
        if next(kv.scan(lo, prefix_end(lo)), None) is not None:
            return BucketNotEmpty(f"bucket {b.name!r} is not empty", bucket=b.name)
    lo = ks.bucket_prefix(ks.UPLOAD, b.name)
    uploads = [k for k, _ in kv.scan(lo, prefix_end(lo))]
    for k in uploads:
        kv.delete(k)
    lo = ks.bucket_prefix(ks.PART, b.name)
    for k, part in list(kv.scan(lo, prefix_end(lo))):
        kv.delete(k)
        release_chunks(kv, cast(PartRecord, part).chunk_ids, now_ms)
    kv.delete(ks.BUCKET + b.name.encode())
    kv.delete(ks.BUCKET_BY_OWNER + ks.join(b.owner, b.name))
    return BucketDeleted(b.name, len(uploads))


def _update_bucket(
    kv: OrderedKV, bucket: str, incarnation: int | None, **changes: object
) -> Result:
    b = bucket_or_error(kv, bucket, incarnation)
    if isinstance(b, BlobstoreError):
        return b
    new = replace(b, **changes)  # type: ignore[arg-type]
    kv.put(ks.BUCKET + b.name.encode(), new)
    return BucketUpdated(new)


# -- objects ----------------------------------------------------------------------------
def _commit_object(kv: OrderedKV, cmd: CommitObject, now_ms: int) -> Result:
    b = bucket_or_error(kv, cmd.bucket, cmd.incarnation)
    if isinstance(b, BlobstoreError):
        return b
    why = key_error(cmd.key)
    if why:
        return _bad(why, key=str(cmd.key))
    if cmd.size < 0:
        return _bad("size must be >= 0")
    if cmd.chunks:
        if cmd.inline_data is not None:
            return _bad("an object has either chunks or inline data, not both")
        why = chunk_error(kv, cmd.chunks)
        if why:
            return _bad(why)
        if sum(c.data_length for c in cmd.chunks) != cmd.size:
            return _bad("chunk lengths do not add up to the object size")
    elif cmd.inline_data is None or len(cmd.inline_data) != cmd.size:
        return _bad("inline data must be present and exactly `size` bytes")
    cond = write_condition(kv, b.name, cmd.key, cmd.if_match, cmd.if_none_match)
    if cond:
        return cond
    vid = new_version_id(b, cmd.key, cmd.version_id, kv)
    if vid is None:
        return _bad("version id is malformed or already used", version_id=str(cmd.version_id))
    rec = ObjectRecord(
        version_id=vid,
        size=cmd.size,
        etag=normalize_etag(cmd.etag),
        last_modified_ms=now_ms,
        owner=cmd.owner,
        seq=next_seq(kv),
        headers=cmd.headers,
        checksums=cmd.checksums,
        chunk_ids=add_chunks(kv, cmd.chunks),
        inline_data=None if cmd.chunks else cmd.inline_data,
    )
    install_version(kv, b, cmd.key, rec, now_ms)
    return committed(b, cmd.key, rec)


def _copy_object(kv: OrderedKV, cmd: CopyObject, now_ms: int) -> Result:
    src_b = bucket_or_error(kv, cmd.src_bucket, cmd.src_incarnation)
    if isinstance(src_b, BlobstoreError):
        return src_b
    b = bucket_or_error(kv, cmd.bucket, cmd.incarnation)
    if isinstance(b, BlobstoreError):
        return b
    why = key_error(cmd.key)
    if why:
        return _bad(why, key=str(cmd.key))
    if cmd.src_version_id is None:
        src = current(kv, src_b.name, cmd.src_key)
    else:
        found = find_version(kv, src_b.name, cmd.src_key, cmd.src_version_id)
        src = None if found is None else found[0]
    if src is None or src.is_delete_marker:
        return NoSuchKey("copy source does not exist", bucket=src_b.name, key=cmd.src_key)
    if cmd.source_if_match is not None and not etag_matches(cmd.source_if_match, src.etag):
        return PreconditionFailed("x-amz-copy-source-if-match does not match")
    if cmd.source_if_none_match is not None and etag_matches(cmd.source_if_none_match, src.etag):
        return PreconditionFailed("x-amz-copy-source-if-none-match matches")
    cond = write_condition(kv, b.name, cmd.key, cmd.if_match, cmd.if_none_match)
    if cond:
        return cond
    vid = new_version_id(b, cmd.key, cmd.version_id, kv)
    if vid is None:
        return _bad("version id is malformed or already used", version_id=str(cmd.version_id))
    ref_chunks(kv, src.chunk_ids)  # before install: a self-copy must not free its chunks
    rec = replace(
        src,
        version_id=vid,
        last_modified_ms=now_ms,
        owner=cmd.owner,
        seq=next_seq(kv),
        headers=src.headers if cmd.headers is None else cmd.headers,
    )
    install_version(kv, b, cmd.key, rec, now_ms)
    src_vid = None if src_b.versioning == "Unversioned" else src.version_id
    return replace(committed(b, cmd.key, rec), copy_source_version_id=src_vid)


def _delete_one(
    kv: OrderedKV,
    b: BucketRecord,
    key: str,
    version_id: str | None,
    marker_version_id: str,
    if_match: str | None,
    now_ms: int,
) -> ObjectDeleted | BlobstoreError:
    why = key_error(key)
    if why:
        return _bad(why, key=str(key))
    if if_match is not None:
        cur = current(kv, b.name, key)
        if cur is None or not etag_matches(if_match, cur.etag):
            return PreconditionFailed("If-Match does not match", bucket=b.name, key=key)
    if version_id is not None:
        was_marker = remove_version(kv, b.name, key, version_id, now_ms)
        return ObjectDeleted(key, version_id, was_marker)
    if b.versioning == "Enabled":
        vid = new_version_id(b, key, marker_version_id, kv)
        if vid is None:
            return _bad("delete marker version id is malformed or already used")
    else:
        vid = NULL_VERSION
    if b.versioning == "Unversioned":
        cur = current(kv, b.name, key)
        if cur is not None:
            kv.delete(ks.object_key(b.name, key))
            release_chunks(kv, cur.chunk_ids, now_ms)
        return ObjectDeleted(key, None, False)
    marker = ObjectRecord(vid, 0, "", now_ms, b.owner, next_seq(kv), is_delete_marker=True)
    install_version(kv, b, key, marker, now_ms)
    return ObjectDeleted(key, vid, True)


def _delete_object(kv: OrderedKV, cmd: DeleteObject, now_ms: int) -> Result:
    b = bucket_or_error(kv, cmd.bucket, cmd.incarnation)
    if isinstance(b, BlobstoreError):
        return b
    return _delete_one(kv, b, cmd.key, cmd.version_id, cmd.marker_version_id, cmd.if_match, now_ms)


def _delete_objects(kv: OrderedKV, cmd: DeleteObjects, now_ms: int) -> Result:
    b = bucket_or_error(kv, cmd.bucket, cmd.incarnation)
    if isinstance(b, BlobstoreError):
        return b
    if len(cmd.objects) > MAX_DELETE_OBJECTS:
        return _bad(f"at most {MAX_DELETE_OBJECTS} keys per DeleteObjects")
    deleted: list[ObjectDeleted] = []
    errors: list[DeleteError] = []
    for o in cmd.objects:
        r = _delete_one(kv, b, o.key, o.version_id, o.marker_version_id, None, now_ms)
        if isinstance(r, BlobstoreError):
            errors.append(DeleteError(str(o.key), o.version_id, r.code, r.message))
        else:
            deleted.append(r)
    return ObjectsDeleted(tuple(deleted), tuple(errors))


def _put_object_tagging(kv: OrderedKV, cmd: PutObjectTagging) -> Result:
    b = bucket_or_error(kv, cmd.bucket, cmd.incarnation)
    if isinstance(b, BlobstoreError):
        return b
    if key_error(cmd.key):
        return NoSuchKey("no such key", bucket=b.name, key=str(cmd.key))
    if cmd.version_id is None:
        cur = current(kv, b.name, cmd.key)
        found = None if cur is None else (cur, True)
    else:
        found = find_version(kv, b.name, cmd.key, cmd.version_id)
    if found is None or found[0].is_delete_marker:
        return NoSuchKey(f"{cmd.key!r} does not exist", bucket=b.name, key=cmd.key)
    rec, is_current = found
    tags = cmd.tags or ()
    if len(tags) > 10:
        return _bad("an object may carry at most 10 tags", code="BadRequest")
    new = replace(rec, headers=replace(rec.headers, tags=tags))
    if is_current:
        kv.put(ks.object_key(b.name, cmd.key), new)
    else:
        kv.put(ks.version_key(b.name, cmd.key, rec.version_id), new)
    vid = None if b.versioning == "Unversioned" else rec.version_id
    return ObjectTagged(cmd.key, vid)


def apply_command(kv: OrderedKV, command: object, now_ms: int, config: ApplyConfig) -> Result:
    """Apply one (unwrapped) command; returns its result or a domain error. Never raises
    for a bad command (unexpected exceptions are the caller's last line of defence)."""
    fenced = fences.commit_error(kv, command)  # before any other check: see fences.py
    if fenced is not None:
        return fenced
    match command:
        case CommitObject():
            return _commit_object(kv, command, now_ms)
        case CommitPart():
            return multipart.commit_part(kv, command, now_ms)
        case DeleteObject():
            return _delete_object(kv, command, now_ms)
        case DeleteObjects():
            return _delete_objects(kv, command, now_ms)
        case CopyObject():
            return _copy_object(kv, command, now_ms)
        case PutObjectTagging():
            return _put_object_tagging(kv, command)
        case CreateMultipartUpload():
            return multipart.create_upload(kv, command, now_ms)
        case CompleteMultipartUpload():
            return multipart.complete_upload(kv, command, now_ms, config)
        case AbortMultipartUpload():
            return multipart.abort_upload(kv, command, now_ms)
        case CreateBucket():
            return _create_bucket(kv, command, now_ms)
        case DeleteBucket():
            return _delete_bucket(kv, command, now_ms)
        case PutBucketVersioning():
            if command.state not in ("Enabled", "Suspended"):
                return _bad("versioning state must be Enabled or Suspended")
            return _update_bucket(kv, command.bucket, command.incarnation, versioning=command.state)
        case PutBucketTagging():
            return _update_bucket(kv, command.bucket, command.incarnation, tags=command.tags)
        case PutBucketCors():
            return _update_bucket(kv, command.bucket, command.incarnation, cors=command.rules)
        case PutBucketAcl():
            return _update_bucket(kv, command.bucket, command.incarnation, acl=command.acl)
        case PutUser():
            return admin.put_user(kv, command, now_ms)
        case DeleteUser():
            return admin.delete_user(kv, command)
        case PutAccessKey():
            return admin.put_access_key(kv, command, now_ms)
        case DeleteAccessKey():
            return admin.delete_access_key(kv, command)
        case RegisterChunkserver():
            return admin.register_chunkserver(kv, command, now_ms)
        case ChunkserverHeartbeat():
            return admin.heartbeat(kv, command, now_ms)
        case SetChunkserverState():
            return admin.set_chunkserver_state(kv, command)
        case UpdatePlacement():
            return admin.update_placement(kv, command, now_ms)
        case AckShardDeletes():
            return admin.ack_shard_deletes(kv, command)
        case ReportBadShards():
            return admin.report_bad_shards(kv, command, now_ms)
        case ClearBadShards():
            return admin.clear_bad_shards(kv, command)
        case FenceChunks():
            return fences.fence_chunks(kv, command, now_ms)
        case FenceShards():
            return fences.fence_shards(kv, command, now_ms)
        case SetErasureProfile():
            return admin.set_erasure_profile(kv, command)
        case Noop():
            return NoopApplied()
        case _:
            return _bad(f"unknown command type {type(command).__name__}")
