"""Multipart-upload handlers: create, commit a part, complete, abort.

Complete validates atomically: at least one part, part numbers strictly ascending
(InvalidPartOrder), every listed part uploaded with the listed ETag (InvalidPart), every part
but the last at least ``ApplyConfig.min_part_size_bytes`` (InvalidArgument with
``details["code"] == "EntityTooSmall"``), then the destination's If-Match / If-None-Match.
Only then are the listed parts' chunk references moved to the new object version, the
unlisted parts' chunks released (their shards queued for deletion) and the upload removed.
The object ETag is S3's: md5 of the concatenated binary part MD5s, then ``-N``.
Checksums: the object's checksums come computed in the command (the gateway derives them
from the parts'); with ``keep_part_checksums`` the listed parts' own checksums are copied
onto the object (``ObjectRecord.part_checksums``, for GET ?partNumber and
GetObjectAttributes). The upload's ``checksum_type`` is stored as given.
Pure: stdlib (hashlib) and sibling modules.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import pairwise
from typing import cast

from blobstore.errors import (
    BlobstoreError,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
)
from metadata.fsm import keyspace as ks
from metadata.fsm.commands import (
    AbortMultipartUpload,
    CommitPart,
    CompleteMultipartUpload,
    CreateMultipartUpload,
)
from metadata.fsm.kv import OrderedKV, prefix_end
from metadata.fsm.names import id_error, key_error
from metadata.fsm.objects import (
    add_chunks,
    bucket_or_error,
    chunk_error,
    committed,
    install_version,
    new_version_id,
    next_seq,
    normalize_etag,
    release_chunks,
    write_condition,
)
from metadata.fsm.records import BucketRecord, ObjectRecord, Pairs, PartRecord, UploadRecord
from metadata.fsm.results import PartCommitted, Result, UploadAborted, UploadCreated

__all__ = [
    "MAX_PART_NUMBER",
    "ApplyConfig",
    "abort_upload",
    "commit_part",
    "complete_upload",
    "create_upload",
    "multipart_etag",
]

MAX_PART_NUMBER = 10_000


@dataclass(frozen=True, slots=True)
class ApplyConfig:
    """Replica-wide constants; every replica must use the same values."""

    min_part_size_bytes: int = 5 << 20


def multipart_etag(part_etags: list[str]) -> str:
    """S3 multipart ETag: md5 of the concatenated binary part MD5s, then ``-N``."""
    digest = hashlib.md5(b"".join(bytes.fromhex(e) for e in part_etags), usedforsecurity=False)
    return f"{digest.hexdigest()}-{len(part_etags)}"


def _upload(
    kv: OrderedKV, bucket: str, key: str, upload_id: str, incarnation: int | None
) -> tuple[BucketRecord, UploadRecord] | BlobstoreError:
    b = bucket_or_error(kv, bucket, incarnation)
    if isinstance(b, BlobstoreError):
        return b
    if key_error(key) or id_error("upload id", upload_id):
        return NoSuchUpload("no such upload", upload_id=str(upload_id))
    up = kv.get(ks.upload_key(bucket, key, upload_id))
    if up is None:
        return NoSuchUpload(f"upload {upload_id!r} does not exist", upload_id=upload_id)
    return b, cast(UploadRecord, up)


def _parts(kv: OrderedKV, bucket: str, key: str, upload_id: str) -> list[tuple[bytes, PartRecord]]:
    lo = ks.PART + ks.join(bucket, key, upload_id) + b"\0"
    return [(k, cast(PartRecord, v)) for k, v in kv.scan(lo, prefix_end(lo))]


def create_upload(kv: OrderedKV, cmd: CreateMultipartUpload, now_ms: int) -> Result:
    b = bucket_or_error(kv, cmd.bucket, cmd.incarnation)
    if isinstance(b, BlobstoreError):
        return b
    why = key_error(cmd.key) or id_error("upload id", cmd.upload_id)
    if why:
        return InvalidArgument(why)
    uk = ks.upload_key(b.name, cmd.key, cmd.upload_id)
    if kv.get(uk) is not None:
        return InvalidArgument("upload id already in use", upload_id=cmd.upload_id)
    kv.put(
        uk,
        UploadRecord(
            cmd.upload_id,
            cmd.owner,
            now_ms,
            cmd.headers,
            cmd.checksum_algorithm,
            cmd.checksum_type,
        ),
    )
    return UploadCreated(b.name, cmd.key, cmd.upload_id)


def commit_part(kv: OrderedKV, cmd: CommitPart, now_ms: int) -> Result:
    found = _upload(kv, cmd.bucket, cmd.key, cmd.upload_id, cmd.incarnation)
    if isinstance(found, BlobstoreError):
        return found
    if not 1 <= cmd.part_number <= MAX_PART_NUMBER:
        return InvalidArgument(
            f"part number must be 1..{MAX_PART_NUMBER}", part_number=str(cmd.part_number)
        )
    why = chunk_error(kv, cmd.chunks)
    if why:
        return InvalidArgument(why)
    if cmd.size < 0 or sum(c.data_length for c in cmd.chunks) != cmd.size:
        return InvalidArgument("chunk lengths do not add up to the part size")
    pk = ks.part_key(cmd.bucket, cmd.key, cmd.upload_id, cmd.part_number)
    old = cast(PartRecord | None, kv.get(pk))
    etag = normalize_etag(cmd.etag)
    rec = PartRecord(
        cmd.part_number, cmd.size, etag, now_ms, cmd.checksums, add_chunks(kv, cmd.chunks)
    )
    kv.put(pk, rec)
    if old is not None:
        release_chunks(kv, old.chunk_ids, now_ms)
    return PartCommitted(cmd.upload_id, cmd.part_number, etag)


def complete_upload(
    kv: OrderedKV, cmd: CompleteMultipartUpload, now_ms: int, config: ApplyConfig
) -> Result:
    found = _upload(kv, cmd.bucket, cmd.key, cmd.upload_id, cmd.incarnation)
    if isinstance(found, BlobstoreError):
        return found
    b, up = found
    if not cmd.parts:
        return InvalidArgument("CompleteMultipartUpload needs at least one part")
    numbers = [p.part_number for p in cmd.parts]
    if any(x >= y for x, y in pairwise(numbers)):
        return InvalidPartOrder("parts must be listed in ascending order", upload_id=up.upload_id)
    stored = {rec.part_number: (k, rec) for k, rec in _parts(kv, b.name, cmd.key, up.upload_id)}
    chosen: list[PartRecord] = []
    for i, p in enumerate(cmd.parts):
        hit = stored.get(p.part_number)
        if hit is None or normalize_etag(p.etag) != hit[1].etag:
            return InvalidPart(
                f"part {p.part_number} was not uploaded or its ETag differs",
                part_number=str(p.part_number),
            )
        part = hit[1]
        if i < len(cmd.parts) - 1 and part.size < config.min_part_size_bytes:
            return InvalidArgument(
                f"part {p.part_number} is smaller than the minimum part size",
                code="EntityTooSmall",
                part_number=str(p.part_number),
                min_size_bytes=str(config.min_part_size_bytes),
            )
        chosen.append(part)
    try:
        etag = multipart_etag([p.etag for p in chosen])
    except ValueError:
        return InvalidPart("a part ETag is not an MD5 hex digest", upload_id=up.upload_id)
    cond = write_condition(kv, b.name, cmd.key, cmd.if_match, cmd.if_none_match)
    if cond:
        return cond
    vid = new_version_id(b, cmd.key, cmd.version_id, kv)
    if vid is None:
        return InvalidArgument(
            "version id is malformed or already used", version_id=str(cmd.version_id)
        )
    listed = {p.part_number for p in chosen}
    for pn, (k, rec) in sorted(stored.items()):
        kv.delete(k)
        if pn not in listed:
            release_chunks(kv, rec.chunk_ids, now_ms)
    kv.delete(ks.upload_key(b.name, cmd.key, up.upload_id))
    obj = ObjectRecord(
        version_id=vid,
        size=sum(p.size for p in chosen),
        etag=etag,
        last_modified_ms=now_ms,
        owner=up.owner,
        seq=next_seq(kv),
        headers=up.headers,
        checksums=cmd.checksums,
        chunk_ids=tuple(c for p in chosen for c in p.chunk_ids),
        part_sizes=tuple(p.size for p in chosen),
        part_checksums=_part_checksums(chosen) if cmd.keep_part_checksums else (),
    )
    install_version(kv, b, cmd.key, obj, now_ms)
    return committed(b, cmd.key, obj)


def _part_checksums(chosen: list[PartRecord]) -> tuple[Pairs, ...]:
    """Each chosen part's checksums, or () when no part has any (nothing worth storing)."""
    if not any(p.checksums for p in chosen):
        return ()
    return tuple(p.checksums for p in chosen)


def abort_upload(kv: OrderedKV, cmd: AbortMultipartUpload, now_ms: int) -> Result:
    found = _upload(kv, cmd.bucket, cmd.key, cmd.upload_id, cmd.incarnation)
    if isinstance(found, BlobstoreError):
        return found
    parts = _parts(kv, cmd.bucket, cmd.key, cmd.upload_id)
    for k, rec in parts:
        kv.delete(k)
        release_chunks(kv, rec.chunk_ids, now_ms)
    kv.delete(ks.upload_key(cmd.bucket, cmd.key, cmd.upload_id))
    return UploadAborted(cmd.upload_id, len(parts))
