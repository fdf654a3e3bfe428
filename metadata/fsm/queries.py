"""Read-only catalog queries (not commands): run directly against a ``KVReader``.

Each function reads the live map or a frozen snapshot and returns typed values; failures are
raised as ``blobstore.errors`` (NoSuchBucket, NoSuchKey, NoSuchUpload, AccessDenied, ...).
Listings live in ``listing.py``. Linearizability is the caller's business (ReadIndex before
reading the local state).
Pure: stdlib and sibling modules.
"""

from __future__ import annotations

from itertools import islice
from typing import cast

from blobstore.errors import (
    AccessDenied,
    BlobstoreError,
    InvalidArgument,
    NoSuchKey,
    NoSuchUpload,
)
from metadata.fsm import keyspace as ks
from metadata.fsm.kv import KVReader, prefix_end
from metadata.fsm.listing import MAX_KEYS
from metadata.fsm.objects import bucket_or_error, current, find_version, newest_noncurrent
from metadata.fsm.records import (
    AccessKeyRecord,
    BucketRecord,
    Chunk,
    ChunkRecord,
    ChunkserverRecord,
    ErasureProfile,
    ObjectRecord,
    PartRecord,
    ScrubProgressRecord,
    ShardDelete,
    ShardRef,
    UploadRecord,
    UserRecord,
)
from metadata.fsm.results import (
    AccessKeySummary,
    BucketUsage,
    DeleteQueuePage,
    ListPartsPage,
    ObjectInfo,
    PlacedShardsPage,
)

__all__ = [
    "bucket_usage",
    "delete_queue_page",
    "get_access_key",
    "get_bucket",
    "get_chunk",
    "get_erasure_profile",
    "get_user",
    "head_object",
    "list_access_keys",
    "list_buckets",
    "list_chunks",
    "list_chunkservers",
    "list_parts",
    "list_users",
    "placed_on_server",
    "shards_on_server",
]


def get_bucket(kv: KVReader, bucket: str, incarnation: int | None = None) -> BucketRecord:
    """The bucket record; NoSuchBucket if absent, or if ``incarnation`` is given and the
    bucket is another incarnation (replaced since the caller authorised against it)."""
    found = bucket_or_error(kv, bucket, incarnation)
    if isinstance(found, BlobstoreError):
        raise found
    return found


def list_buckets(kv: KVReader, owner: str | None = None) -> tuple[BucketRecord, ...]:
    """Buckets of ``owner`` (all buckets if None), by name."""
    if owner is None:
        return tuple(cast(BucketRecord, v) for _, v in kv.scan(ks.BUCKET, prefix_end(ks.BUCKET)))
    lo = ks.BUCKET_BY_OWNER + owner.encode("utf-8") + b"\0"
    names = [k[len(lo) :] for k, _ in kv.scan(lo, prefix_end(lo))]
    return tuple(cast(BucketRecord, kv.get(ks.BUCKET + n)) for n in names)


def _resolve(kv: KVReader, chunk_ids: tuple[str, ...]) -> tuple[Chunk, ...]:
    return tuple(cast(ChunkRecord, kv.get(ks.CHUNK + c.encode())).chunk for c in chunk_ids)


def head_object(
    kv: KVReader,
    bucket: str,
    key: str,
    version_id: str | None = None,
    incarnation: int | None = None,
) -> ObjectInfo:
    """An object version with its chunks (HEAD/GET). Without ``version_id``: the current
    version (NoSuchKey if none, also when the latest version is a delete marker). With
    it: that version, which may be a delete marker (``record.is_delete_marker``).
    ``incarnation``: as in ``get_bucket``."""
    get_bucket(kv, bucket, incarnation)
    cur = current(kv, bucket, key) if "\0" not in key else None
    if version_id is None:
        if cur is None:
            raise NoSuchKey(f"{key!r} does not exist", bucket=bucket, key=key)
        return ObjectInfo(bucket, key, cur, _resolve(kv, cur.chunk_ids), True)
    found = find_version(kv, bucket, key, version_id) if "\0" not in key + version_id else None
    if found is None:
        raise NoSuchKey(
            f"{key!r} has no version {version_id!r}",
            bucket=bucket,
            key=key,
            version_id=version_id,
        )
    rec, is_current = found
    is_latest = is_current
    if not is_current and cur is None:
        newest = newest_noncurrent(kv, bucket, key)
        is_latest = newest is not None and newest.version_id == rec.version_id
    return ObjectInfo(bucket, key, rec, _resolve(kv, rec.chunk_ids), is_latest)


def list_parts(
    kv: KVReader,
    bucket: str,
    key: str,
    upload_id: str,
    *,
    part_number_marker: int = 0,
    max_parts: int = MAX_KEYS,
    incarnation: int | None = None,
) -> ListPartsPage:
    """Parts of an upload with part number > ``part_number_marker`` (``incarnation``: as
    in ``get_bucket``)."""
    get_bucket(kv, bucket, incarnation)
    up = kv.get(ks.upload_key(bucket, key, upload_id)) if "\0" not in key + upload_id else None
    if up is None:
        raise NoSuchUpload(f"upload {upload_id!r} does not exist", upload_id=upload_id)
    if max_parts < 0 or not 0 <= part_number_marker < 1 << 32:
        raise InvalidArgument("max-parts and part-number-marker must be non-negative")
    limit = min(max_parts, MAX_KEYS)
    lo = ks.PART + ks.join(bucket, key, upload_id) + b"\0"
    start = lo + ks.u32(part_number_marker + 1) if part_number_marker < (1 << 32) - 1 else None
    got: list[PartRecord] = []
    if start is not None:
        got = [cast(PartRecord, v) for _, v in islice(kv.scan(start, prefix_end(lo)), limit + 1)]
    truncated = len(got) > limit
    got = got[:limit]
    nxt = got[-1].part_number if truncated and got else None
    return ListPartsPage(cast(UploadRecord, up), tuple(got), truncated, nxt)


def get_access_key(kv: KVReader, access_key_id: str) -> tuple[AccessKeyRecord, UserRecord]:
    """The access key and its user, for request authentication; AccessDenied if unknown."""
    rec = cast(AccessKeyRecord | None, kv.get(ks.ACCESS_KEY + access_key_id.encode("utf-8")))
    user = None if rec is None else kv.get(ks.USER + rec.user_name.encode("utf-8"))
    if rec is None or user is None:
        raise AccessDenied("unknown access key", code="InvalidAccessKeyId")
    return rec, cast(UserRecord, user)


def get_user(kv: KVReader, name: str) -> UserRecord | None:
    """A user record, or None."""
    return cast(UserRecord | None, kv.get(ks.USER + name.encode("utf-8")))


def list_users(kv: KVReader) -> tuple[UserRecord, ...]:
    """All users by name."""
    return tuple(cast(UserRecord, v) for _, v in kv.scan(ks.USER, prefix_end(ks.USER)))


def list_chunkservers(kv: KVReader) -> tuple[ChunkserverRecord, ...]:
    """All registered chunkservers by id."""
    rows = kv.scan(ks.CHUNKSERVER, prefix_end(ks.CHUNKSERVER))
    return tuple(cast(ChunkserverRecord, v) for _, v in rows)


def get_chunkserver(kv: KVReader, server_id: int) -> ChunkserverRecord | None:
    """One registered chunkserver, or None."""
    return cast(ChunkserverRecord | None, kv.get(ks.CHUNKSERVER + ks.u64(server_id)))


def get_scrub_progress(kv: KVReader, server_id: int) -> ScrubProgressRecord | None:
    """A chunkserver's scrub counters as of its last committed heartbeat, or None."""
    return cast(ScrubProgressRecord | None, kv.get(ks.SCRUB + ks.u64(server_id)))


def get_chunk(kv: KVReader, chunk_id: str) -> ChunkRecord | None:
    """A chunk's placement and reference count, or None."""
    return cast(ChunkRecord | None, kv.get(ks.CHUNK + chunk_id.encode("utf-8")))


def list_chunks(
    kv: KVReader, after: str | None = None, limit: int = MAX_KEYS
) -> tuple[ChunkRecord, ...]:
    """Chunks by id after ``after`` (repair scans the catalog in pages)."""
    start = ks.CHUNK if after is None else ks.CHUNK + after.encode("utf-8") + b"\0"
    rows = islice(kv.scan(start, prefix_end(ks.CHUNK)), max(0, limit))
    return tuple(cast(ChunkRecord, v) for _, v in rows)


def delete_queue_page(
    kv: KVReader,
    server_id: int | None = None,
    after: ShardRef | None = None,
    limit: int = MAX_KEYS,
) -> DeleteQueuePage:
    """Queued shard deletions (of one server, or all), ordered by server, chunk, index."""
    lo = ks.DELETE_QUEUE if server_id is None else ks.DELETE_QUEUE + ks.u64(server_id)
    start = lo
    if after is not None:
        key = ks.delete_key(after.server_id, after.chunk_id, after.shard_index)
        start = max(lo, key + b"\0")
    rows = [cast(ShardDelete, v) for _, v in islice(kv.scan(start, prefix_end(lo)), limit + 1)]
    truncated = len(rows) > limit
    rows = rows[:limit]
    return DeleteQueuePage(tuple(rows), rows[-1].shard if truncated and rows else None)


def get_erasure_profile(kv: KVReader) -> ErasureProfile:
    """The profile for new chunks (the default 4+2 zfec, 1 MiB stripes, until set)."""
    return cast(ErasureProfile | None, kv.get(ks.PROFILE)) or ErasureProfile()


def shards_on_server(
    kv: KVReader, server_id: int, chunk_ids: tuple[str, ...]
) -> tuple[ShardRef, ...]:
    """Every shard of the named chunks that the catalog places on ``server_id``, in request
    order (GC: a chunkserver's local shard not named here is unreferenced). Unknown chunk
    ids and ids of other servers' shards yield nothing."""
    found: list[ShardRef] = []
    for cid in dict.fromkeys(chunk_ids):
        rec = cast(ChunkRecord | None, kv.get(ks.CHUNK + cid.encode("utf-8")))
        if rec is None:
            continue
        found.extend(
            ShardRef(cid, s.server_id, s.shard_index)
            for s in rec.chunk.shards
            if s.server_id == server_id
        )
    return tuple(found)


def placed_on_server(
    kv: KVReader, server_id: int, after: str | None = None, max_scan: int = 10_000
) -> PlacedShardsPage:
    """The shards placed on ``server_id`` among at most ``max_scan`` chunks after ``after``
    (a chunkserver pages through this to find shards it should hold but has lost).

    O(chunks) over all pages: the catalog keeps no per-server index of shards."""
    start = ks.CHUNK if after is None else ks.CHUNK + after.encode("utf-8") + b"\0"
    found: list[ShardRef] = []
    last: str | None = None
    scanned = 0
    for _, value in islice(kv.scan(start, prefix_end(ks.CHUNK)), max(1, max_scan)):
        rec = cast(ChunkRecord, value)
        last = rec.chunk.chunk_id
        scanned += 1
        found.extend(
            ShardRef(last, s.server_id, s.shard_index)
            for s in rec.chunk.shards
            if s.server_id == server_id
        )
    return PlacedShardsPage(tuple(found), last if scanned >= max(1, max_scan) else None)


# -- console --------------------------------------------------------------------------------
def bucket_usage(
    kv: KVReader, owner: str | None = None, max_scan: int = 200_000
) -> tuple[BucketUsage, ...]:
    """Object counts and bytes of the buckets of ``owner`` (all if None), by name.

    O(objects): scans every version record of each bucket, at most ``max_scan`` records
    in all; buckets past the budget are reported with ``exact=False`` (lower bounds)."""
    budget = max(0, max_scan)
    out: list[BucketUsage] = []
    for b in list_buckets(kv, owner):
        counts = [0, 0, 0, 0]  # objects, bytes, noncurrent, noncurrent bytes
        exact = True
        for slot, table in ((0, ks.OBJECT), (2, ks.VERSION)):
            lo = ks.bucket_prefix(table, b.name)
            for _, v in islice(kv.scan(lo, prefix_end(lo)), budget + 1):
                if budget == 0:
                    exact = False
                    break
                budget -= 1
                counts[slot] += 1
                counts[slot + 1] += cast(ObjectRecord, v).size
        objects, size, noncurrent, noncurrent_size = counts
        out.append(
            BucketUsage(b.name, b.owner, b.created_ms, objects, size, noncurrent,
                        noncurrent_size, exact)
        )  # fmt: skip
    return tuple(out)


def list_access_keys(kv: KVReader, user_name: str | None = None) -> tuple[AccessKeySummary, ...]:
    """Access keys (without secrets) of ``user_name`` (all if None), by key id."""
    if user_name is None:
        rows = kv.scan(ks.ACCESS_KEY, prefix_end(ks.ACCESS_KEY))
        recs = [cast(AccessKeyRecord, v) for _, v in rows]
    else:
        lo = ks.USER_KEYS + user_name.encode("utf-8") + b"\0"
        ids = [k[len(lo) :] for k, _ in kv.scan(lo, prefix_end(lo))]
        found = (kv.get(ks.ACCESS_KEY + i) for i in ids)
        recs = sorted((cast(AccessKeyRecord, r) for r in found if r is not None),
                      key=lambda r: r.access_key_id)  # fmt: skip
    return tuple(AccessKeySummary(r.access_key_id, r.user_name, r.created_ms) for r in recs)
