"""Results of catalog commands and queries.

``apply`` returns ``Result``: one of the command results below or a ``BlobstoreError``
(returned, never raised: apply is total). Queries return the page/info types below and raise
``BlobstoreError`` subclasses (NoSuchBucket, NoSuchKey, ...). All are frozen dataclasses.

Pure: imports only the stdlib, ``blobstore.errors`` and sibling record types.
"""

from __future__ import annotations

from dataclasses import dataclass

from blobstore.errors import BlobstoreError
from metadata.fsm.records import (
    BucketRecord,
    Chunk,
    ChunkserverRecord,
    ErasureProfile,
    ObjectRecord,
    PartRecord,
    ScrubProgressRecord,
    ShardDelete,
    ShardRef,
    UploadRecord,
)

__all__ = [
    "AccessKeyDeleted",
    "AccessKeyPut",
    "AccessKeySummary",
    "BadShardsCleared",
    "BadShardsReported",
    "BucketCreated",
    "BucketDeleted",
    "BucketUpdated",
    "BucketUsage",
    "ChunksFenced",
    "ChunkserverUpdated",
    "CommandResult",
    "DeleteError",
    "DeleteQueuePage",
    "ErasureProfileSet",
    "ListObjectsPage",
    "ListPartsPage",
    "ListUploadsPage",
    "ListVersionsPage",
    "NoopApplied",
    "ObjectCommitted",
    "ObjectDeleted",
    "ObjectInfo",
    "ObjectSummary",
    "ObjectTagged",
    "ObjectsDeleted",
    "PartCommitted",
    "PlacedShardsPage",
    "PlacementUpdated",
    "RedundancySummary",
    "RepairStatus",
    "Result",
    "ShardDeletesAcked",
    "ShardsFenced",
    "UploadAborted",
    "UploadCreated",
    "UploadSummary",
    "UserDeleted",
    "UserPut",
    "VersionSummary",
]


# -- command results --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BucketCreated:
    bucket: str


@dataclass(frozen=True, slots=True)
class BucketDeleted:
    bucket: str
    aborted_uploads: int


@dataclass(frozen=True, slots=True)
class BucketUpdated:
    """A bucket setting was changed; carries the new record."""

    bucket: BucketRecord


@dataclass(frozen=True, slots=True)
class ObjectCommitted:
    """A new object version is visible. ``version_id`` is None in unversioned buckets."""

    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int
    last_modified_ms: int
    copy_source_version_id: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectDeleted:
    """Outcome of deleting one key (also for a key that did not exist, as S3 does)."""

    key: str
    version_id: str | None
    delete_marker: bool


@dataclass(frozen=True, slots=True)
class ObjectTagged:
    """PutObjectTagging succeeded; ``version_id`` None in unversioned buckets."""

    key: str
    version_id: str | None


@dataclass(frozen=True, slots=True)
class DeleteError:
    """A per-key failure inside DeleteObjects."""

    key: str
    version_id: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ObjectsDeleted:
    deleted: tuple[ObjectDeleted, ...]
    errors: tuple[DeleteError, ...]


@dataclass(frozen=True, slots=True)
class UploadCreated:
    bucket: str
    key: str
    upload_id: str


@dataclass(frozen=True, slots=True)
class PartCommitted:
    upload_id: str
    part_number: int
    etag: str


@dataclass(frozen=True, slots=True)
class UploadAborted:
    upload_id: str
    parts: int


@dataclass(frozen=True, slots=True)
class UserPut:
    name: str


@dataclass(frozen=True, slots=True)
class UserDeleted:
    name: str
    access_keys: int


@dataclass(frozen=True, slots=True)
class AccessKeyPut:
    access_key_id: str


@dataclass(frozen=True, slots=True)
class AccessKeyDeleted:
    access_key_id: str


@dataclass(frozen=True, slots=True)
class ChunkserverUpdated:
    """Register / heartbeat / state change: the chunkserver's new record."""

    server: ChunkserverRecord


@dataclass(frozen=True, slots=True)
class PlacementUpdated:
    chunk: Chunk
    queued_deletes: int


@dataclass(frozen=True, slots=True)
class ShardDeletesAcked:
    removed: int


@dataclass(frozen=True, slots=True)
class BadShardsReported:
    """``recorded`` reports were new; the rest were duplicates or stale."""

    recorded: int


@dataclass(frozen=True, slots=True)
class BadShardsCleared:
    removed: int


@dataclass(frozen=True, slots=True)
class ChunksFenced:
    """``fenced``: ids GC may now delete (commits naming them fail); ``live``: referenced ids
    (keep); ``purged``: expired fences dropped by this command."""

    fenced: tuple[str, ...]
    live: tuple[str, ...]
    purged: int = 0


@dataclass(frozen=True, slots=True)
class ShardsFenced:
    """``fenced``: copies GC may now delete (no repair planned before can place them);
    ``placed``: copies the catalog places on their server (keep); ``purged``: expired
    fences dropped by this command."""

    fenced: tuple[ShardRef, ...]
    placed: tuple[ShardRef, ...]
    purged: int = 0


@dataclass(frozen=True, slots=True)
class ErasureProfileSet:
    profile: ErasureProfile


@dataclass(frozen=True, slots=True)
class NoopApplied:
    pass


CommandResult = (
    BucketCreated
    | BucketDeleted
    | BucketUpdated
    | ObjectCommitted
    | ObjectDeleted
    | ObjectsDeleted
    | ObjectTagged
    | UploadCreated
    | PartCommitted
    | UploadAborted
    | UserPut
    | UserDeleted
    | AccessKeyPut
    | AccessKeyDeleted
    | ChunkserverUpdated
    | PlacementUpdated
    | ShardDeletesAcked
    | BadShardsReported
    | BadShardsCleared
    | ChunksFenced
    | ShardsFenced
    | ErasureProfileSet
    | NoopApplied
)
Result = CommandResult | BlobstoreError


# -- query results ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """An object version with its chunks resolved (what GET/HEAD need)."""

    bucket: str
    key: str
    record: ObjectRecord
    chunks: tuple[Chunk, ...]
    is_latest: bool


@dataclass(frozen=True, slots=True)
class ObjectSummary:
    """One ``<Contents>`` entry of a listing."""

    key: str
    size: int
    etag: str
    last_modified_ms: int
    storage_class: str
    owner: str


@dataclass(frozen=True, slots=True)
class ListObjectsPage:
    """A ListObjects (v1) / ListObjectsV2 page.

    ``next_marker`` is the last returned entry (key or common prefix) when truncated (v1);
    ``next_continuation_token`` is its opaque v2 form.
    """

    contents: tuple[ObjectSummary, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_marker: str | None
    next_continuation_token: str | None

    @property
    def key_count(self) -> int:
        return len(self.contents) + len(self.common_prefixes)


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """One ``<Version>`` / ``<DeleteMarker>`` entry of ListObjectVersions."""

    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    size: int
    etag: str
    last_modified_ms: int
    storage_class: str
    owner: str


@dataclass(frozen=True, slots=True)
class ListVersionsPage:
    """A ListObjectVersions page: versions newest first within each key."""

    versions: tuple[VersionSummary, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_key_marker: str | None
    next_version_id_marker: str | None


@dataclass(frozen=True, slots=True)
class UploadSummary:
    key: str
    upload: UploadRecord


@dataclass(frozen=True, slots=True)
class ListUploadsPage:
    uploads: tuple[UploadSummary, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


@dataclass(frozen=True, slots=True)
class ListPartsPage:
    upload: UploadRecord
    parts: tuple[PartRecord, ...]
    is_truncated: bool
    next_part_number_marker: int | None


@dataclass(frozen=True, slots=True)
class DeleteQueuePage:
    """Shards to delete, ordered by (server, chunk, shard index); ``next_after`` resumes."""

    entries: tuple[ShardDelete, ...]
    next_after: ShardRef | None


@dataclass(frozen=True, slots=True)
class PlacedShardsPage:
    """Shards the catalog places on one server, from a bounded scan of the chunk table;
    ``next_after`` (a chunk id) resumes the scan, None once it reached the end."""

    shards: tuple[ShardRef, ...]
    next_after: str | None


@dataclass(frozen=True, slots=True)
class RedundancySummary:
    """Redundancy of the whole catalog (one full scan; ``metadata.maintenance.health``).

    A chunk is *full* with k+m good shards, *degraded* below that, *at risk* with at most
    k good shards (one more loss makes it unreadable), *lost* below k. An object counts as
    its worst chunk (inline objects are always full). ``repair_backlog`` = chunks that need
    a repair or a move (degraded, lost, or with a shard on a draining server).
    """

    chunks_total: int
    chunks_full: int
    chunks_degraded: int
    chunks_at_risk: int
    chunks_lost: int
    objects_total: int
    objects_full: int
    objects_degraded: int
    objects_at_risk: int
    objects_lost: int
    bad_shards: int
    repair_backlog: int
    scrub: tuple[ScrubProgressRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class RepairStatus:
    """The leader's repair driver: counters since it became leader (``is_leader`` False
    means no driver runs on the answering node)."""

    is_leader: bool
    backlog: int
    in_flight: int
    repairs_done: int
    repairs_failed: int
    repairs_noop: int
    bytes_repaired: int
    repair_bytes_s: float
    passes_completed: int
    servers_marked: int


# -- console query answers (codec tags 143-149) --------------------------------------------
@dataclass(frozen=True, slots=True)
class BucketUsage:
    """Object count and bytes of one bucket (``queries.bucket_usage``; an O(objects) scan).

    ``objects``/``bytes`` are current versions; ``noncurrent``/``noncurrent_bytes`` older
    versions and delete markers. ``exact`` is False when the scan stopped at its budget
    (the counts are then lower bounds)."""

    bucket: str
    owner: str
    created_ms: int
    objects: int
    bytes: int
    noncurrent: int
    noncurrent_bytes: int
    exact: bool


@dataclass(frozen=True, slots=True)
class AccessKeySummary:
    """An access key without its secret (``queries.list_access_keys``)."""

    access_key_id: str
    user_name: str
    created_ms: int
