"""Object-version bookkeeping shared by the command handlers: chunks, versions, conditions.

Owns the rules that keep shard ownership right:
- ``add_chunks`` registers brand-new chunks with one reference each; ``ref_chunks`` adds a
  reference to existing ones (server-side copy); ``release_chunks`` drops references and
  queues every shard of a chunk whose count reaches zero on the delete queue.
- ``install_version`` puts a new current version in place following the bucket's versioning
  state (Unversioned: the old version is released; Enabled: it becomes noncurrent; Suspended:
  the ``null`` version is replaced). ``remove_version`` deletes one version and promotes the
  newest remaining one. Callers take references for the new version *before* installing it,
  so replacing an object by a copy of itself never frees its chunks.
It also holds the checks every object-writing handler shares (``bucket_or_error``, which
also refuses a command naming a bucket incarnation that is no longer current,
``write_condition`` for If-Match / If-None-Match, ``new_version_id``, ``committed``).
Handlers validate everything first and only then call these mutators (apply must not leave a
half-applied command behind).
Pure: no I/O, time or randomness.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from blobstore.errors import BlobstoreError, NoSuchBucket, NoSuchKey, PreconditionFailed
from metadata.fsm import keyspace as ks
from metadata.fsm.kv import KVReader, OrderedKV, prefix_end
from metadata.fsm.names import id_error
from metadata.fsm.records import (
    NULL_VERSION,
    BucketRecord,
    Chunk,
    ChunkRecord,
    MetaRecord,
    ObjectRecord,
    ShardDelete,
    ShardRef,
)
from metadata.fsm.results import ObjectCommitted

__all__ = [
    "add_chunks",
    "bucket_or_error",
    "chunk_error",
    "committed",
    "current",
    "etag_matches",
    "find_version",
    "install_version",
    "new_version_id",
    "newest_noncurrent",
    "next_seq",
    "normalize_etag",
    "ref_chunks",
    "release_chunks",
    "remove_version",
    "write_condition",
]


def normalize_etag(etag: str) -> str:
    """Strip the weak prefix and quotes: ``W/"abc"`` -> ``abc``."""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def etag_matches(condition: str, etag: str) -> bool:
    """If-Match semantics: ``*`` or any of a comma-separated list of ETags."""
    want = normalize_etag(etag)
    return any(c.strip() == "*" or normalize_etag(c) == want for c in condition.split(","))


def next_seq(kv: OrderedKV) -> int:
    """Allocate the next catalog-wide version sequence number."""
    meta = cast(MetaRecord, kv.get(ks.META) or MetaRecord())
    seq = meta.version_seq + 1
    kv.put(ks.META, replace(meta, version_seq=seq))
    return seq


def chunk_error(kv: OrderedKV, chunks: tuple[Chunk, ...]) -> str | None:
    """Why ``chunks`` cannot be registered as new chunks, or None."""
    seen: set[str] = set()
    for c in chunks:
        if type(c) is not Chunk:
            return "chunk list holds a non-chunk"
        cid = c.chunk_id
        if not cid or "\0" in cid or len(cid) > 128:
            return "chunk id must be 1..128 characters without NUL"
        if cid in seen or kv.get(ks.CHUNK + cid.encode()) is not None:
            return f"chunk id {cid!r} is already in use"
        seen.add(cid)
        width = c.k + c.m
        if c.k < 1 or c.m < 0 or width > 256 or c.stripe_size < 1 or c.data_length < 0:
            return f"chunk {cid!r} has an invalid coding profile"
        if not c.shards or len(c.shards) > width:
            return f"chunk {cid!r} needs 1..k+m shards"
        indexes = 0
        servers: set[int] = set()
        for s in c.shards:
            i = s.shard_index
            if not 0 <= i < width or indexes >> i & 1 or not 0 < s.server_id < 1 << 64:
                return f"chunk {cid!r} has a bad or repeated shard index or server id"
            indexes |= 1 << i
            servers.add(s.server_id)
        if len(servers) != len(c.shards):
            return f"chunk {cid!r} places two shards on one chunkserver"
    return None


def add_chunks(kv: OrderedKV, chunks: tuple[Chunk, ...]) -> tuple[str, ...]:
    """Register validated new chunks (one reference each); return their ids."""
    for c in chunks:
        kv.put(ks.CHUNK + c.chunk_id.encode(), ChunkRecord(c, 1))
    return tuple(c.chunk_id for c in chunks)


def ref_chunks(kv: OrderedKV, chunk_ids: tuple[str, ...]) -> None:
    """Add one reference to each (existing) chunk."""
    for cid in chunk_ids:
        k = ks.CHUNK + cid.encode()
        rec = cast(ChunkRecord, kv.get(k))
        kv.put(k, ChunkRecord(rec.chunk, rec.refs + 1))


def release_chunks(kv: OrderedKV, chunk_ids: tuple[str, ...], now_ms: int) -> int:
    """Drop one reference from each chunk; queue shards of unreferenced chunks. Returns
    the number of shards queued."""
    queued = 0
    for cid in chunk_ids:
        k = ks.CHUNK + cid.encode()
        rec = cast(ChunkRecord | None, kv.get(k))
        if rec is None:
            continue
        if rec.refs > 1:
            kv.put(k, ChunkRecord(rec.chunk, rec.refs - 1))
            continue
        kv.delete(k)
        for s in rec.chunk.shards:
            ref = ShardRef(cid, s.server_id, s.shard_index)
            kv.put(ks.delete_key(s.server_id, cid, s.shard_index), ShardDelete(ref, now_ms))
            queued += 1
    return queued


def current(kv: KVReader, bucket: str, key: str) -> ObjectRecord | None:
    """The current (non-delete-marker) version of ``key``."""
    return cast(ObjectRecord | None, kv.get(ks.object_key(bucket, key)))


def _noncurrent(kv: KVReader, bucket: str, key: str) -> list[tuple[bytes, ObjectRecord]]:
    lo = ks.VERSION + ks.join(bucket, key) + b"\0"
    return [(k, cast(ObjectRecord, v)) for k, v in kv.scan(lo, prefix_end(lo))]


def newest_noncurrent(kv: KVReader, bucket: str, key: str) -> ObjectRecord | None:
    """The newest version in the noncurrent table (may be a delete marker)."""
    versions = _noncurrent(kv, bucket, key)
    return max((v for _, v in versions), key=lambda r: r.seq, default=None)


def find_version(
    kv: KVReader, bucket: str, key: str, version_id: str
) -> tuple[ObjectRecord, bool] | None:
    """``(record, is_current_table)`` of a version, or None."""
    cur = current(kv, bucket, key)
    if cur is not None and cur.version_id == version_id:
        return cur, True
    rec = cast(ObjectRecord | None, kv.get(ks.version_key(bucket, key, version_id)))
    return None if rec is None else (rec, False)


def _drop_null_noncurrent(kv: OrderedKV, bucket: str, key: str, now_ms: int) -> None:
    vk = ks.version_key(bucket, key, NULL_VERSION)
    old = cast(ObjectRecord | None, kv.get(vk))
    if old is not None:
        kv.delete(vk)
        release_chunks(kv, old.chunk_ids, now_ms)


def install_version(
    kv: OrderedKV, bucket: BucketRecord, key: str, new: ObjectRecord, now_ms: int
) -> None:
    """Make ``new`` (whose chunk references are already taken) the current version, or
    the latest delete marker when ``new.is_delete_marker``."""
    name = bucket.name
    ok = ks.object_key(name, key)
    old = current(kv, name, key)
    if bucket.versioning == "Unversioned":
        if old is not None:
            release_chunks(kv, old.chunk_ids, now_ms)
        if new.is_delete_marker:
            kv.delete(ok)
        else:
            kv.put(ok, new)
        return
    if old is not None:
        if bucket.versioning == "Suspended" and old.version_id == NULL_VERSION:
            release_chunks(kv, old.chunk_ids, now_ms)
        else:
            kv.put(ks.version_key(name, key, old.version_id), old)
    if new.version_id == NULL_VERSION:
        _drop_null_noncurrent(kv, name, key, now_ms)
    if new.is_delete_marker:
        kv.delete(ok)
        kv.put(ks.version_key(name, key, new.version_id), new)
    else:
        kv.put(ok, new)


def remove_version(kv: OrderedKV, bucket: str, key: str, version_id: str, now_ms: int) -> bool:
    """Permanently delete one version; promote the newest remaining one if it is an
    object. Returns whether the removed version was a delete marker."""
    found = find_version(kv, bucket, key, version_id)
    if found is None:
        return False
    rec, is_current = found
    if is_current:
        kv.delete(ks.object_key(bucket, key))
    else:
        kv.delete(ks.version_key(bucket, key, version_id))
    release_chunks(kv, rec.chunk_ids, now_ms)
    if current(kv, bucket, key) is None:
        newest = newest_noncurrent(kv, bucket, key)
        if newest is not None and not newest.is_delete_marker:
            kv.delete(ks.version_key(bucket, key, newest.version_id))
            kv.put(ks.object_key(bucket, key), newest)
    return rec.is_delete_marker


def bucket_or_error(
    kv: KVReader, name: str, incarnation: int | None = None
) -> BucketRecord | BlobstoreError:
    """The bucket, or NoSuchBucket as a value; also NoSuchBucket when ``incarnation`` is
    given and the bucket is another incarnation (deleted and re-created since the caller
    authorised against it)."""
    rec = kv.get(ks.BUCKET + name.encode("utf-8")) if isinstance(name, str) else None
    if rec is None:
        return NoSuchBucket(f"bucket {name!r} does not exist", bucket=str(name))
    b = cast(BucketRecord, rec)
    if incarnation is not None and b.incarnation != incarnation:
        return NoSuchBucket(
            f"bucket {name!r} was deleted and re-created since it was checked", bucket=name
        )
    return b


def write_condition(
    kv: KVReader, bucket: str, key: str, if_match: str | None, if_none_match: bool
) -> BlobstoreError | None:
    """Check If-Match / If-None-Match: * against the current version of ``key``."""
    cur = current(kv, bucket, key)
    if if_match is not None:
        if cur is None:
            return NoSuchKey(f"{key!r} does not exist (If-Match)", bucket=bucket, key=key)
        if not etag_matches(if_match, cur.etag):
            return PreconditionFailed("If-Match does not match", bucket=bucket, key=key)
    if if_none_match and cur is not None:
        return PreconditionFailed("If-None-Match: * but the key exists", bucket=bucket, key=key)
    return None


def new_version_id(bucket: BucketRecord, key: str, proposed: str, kv: OrderedKV) -> str | None:
    """The version id a new version gets, or None if the proposed id is unusable."""
    if bucket.versioning != "Enabled":
        return NULL_VERSION
    if id_error("version id", proposed) or proposed == NULL_VERSION:
        return None
    if find_version(kv, bucket.name, key, proposed) is not None:
        return None
    return proposed


def committed(bucket: BucketRecord, key: str, rec: ObjectRecord) -> ObjectCommitted:
    """The result of making ``rec`` visible (no version id in unversioned buckets)."""
    vid = None if bucket.versioning == "Unversioned" else rec.version_id
    return ObjectCommitted(bucket.name, key, vid, rec.etag, rec.size, rec.last_modified_ms)
