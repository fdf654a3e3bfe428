"""The catalog's commands: what a proposer may ask the replicated state machine to do.

Each command is a frozen, slotted dataclass with an imperative name. Commands are fully
decided by the proposer: ids (version ids, upload ids, chunk ids) are inside them, and the
time is the envelope's ``now_ms``. Commands that touch one object name ``bucket`` and
``key``; bucket-level ones name ``bucket`` (see ``command_scope``) so the key space can
later be split into ranges owned by separate Raft groups.

A command travels wrapped in a ``ClientCommand`` envelope: ``client_id`` and ``seq`` give
exactly-once semantics (a retried ``(client_id, seq)`` returns the remembered result without
re-applying), ``now_ms`` is the proposer's clock. An empty ``client_id`` opts out of
deduplication (internal commands such as heartbeats and the leader's no-op).

INCARNATION: commands that touch a bucket or its objects end with an optional
``incarnation`` (appended field, so entries logged before it decode with None): the
``BucketRecord.incarnation`` the proposer authorised the request against. When it is set
and the bucket now has another incarnation (deleted and re-created, maybe by another
user), the command fails with NoSuchBucket and changes nothing; None checks nothing.

Pure: imports only the stdlib, ``blobstore.types`` and sibling record types.
"""

from __future__ import annotations

from dataclasses import dataclass

from blobstore.types import Address
from metadata.fsm.records import (
    DEFAULT_HEADERS,
    Chunk,
    ChunkserverState,
    CorsRule,
    ErasureProfile,
    ObjectHeaders,
    Pairs,
    ScrubProgressRecord,
    ShardRef,
    VersioningState,
)

__all__ = [
    "AbortMultipartUpload",
    "AckShardDeletes",
    "ChunkserverHeartbeat",
    "ClearBadShards",
    "ClientCommand",
    "Command",
    "CommitObject",
    "CommitPart",
    "CompleteMultipartUpload",
    "CompletedPart",
    "CopyObject",
    "CreateBucket",
    "CreateMultipartUpload",
    "DeleteAccessKey",
    "DeleteBucket",
    "DeleteObject",
    "DeleteObjects",
    "DeleteUser",
    "FenceChunks",
    "FenceShards",
    "Noop",
    "ObjectIdentifier",
    "PutAccessKey",
    "PutBucketAcl",
    "PutBucketCors",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutObjectTagging",
    "PutUser",
    "RegisterChunkserver",
    "ReportBadShards",
    "SetChunkserverState",
    "SetErasureProfile",
    "ShardMove",
    "UpdatePlacement",
    "command_scope",
]


# -- buckets ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CreateBucket:
    """Create ``bucket`` owned by ``owner`` if absent (409 variants otherwise)."""

    bucket: str
    owner: str
    acl: str = "private"


@dataclass(frozen=True, slots=True)
class DeleteBucket:
    """Delete ``bucket`` if it holds no object versions; in-progress uploads are aborted."""

    bucket: str
    incarnation: int | None = None  # see INCARNATION above


@dataclass(frozen=True, slots=True)
class PutBucketVersioning:
    """Set the versioning state (``Enabled`` or ``Suspended``)."""

    bucket: str
    state: VersioningState
    incarnation: int | None = None  # see INCARNATION above


@dataclass(frozen=True, slots=True)
class PutBucketTagging:
    """Replace the bucket's tags; None deletes the tag set."""

    bucket: str
    tags: Pairs | None
    incarnation: int | None = None  # see INCARNATION above


@dataclass(frozen=True, slots=True)
class PutBucketCors:
    """Replace the bucket's CORS rules; None deletes the configuration."""

    bucket: str
    rules: tuple[CorsRule, ...] | None
    incarnation: int | None = None  # see INCARNATION above


@dataclass(frozen=True, slots=True)
class PutBucketAcl:
    """Set the bucket's canned ACL."""

    bucket: str
    acl: str
    incarnation: int | None = None  # see INCARNATION above


# -- objects ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CommitObject:
    """Make a new object version visible (PutObject after its shards are durable).

    ``chunks`` are new chunks (ids never seen before) or ``inline_data`` holds the bytes.
    ``if_match`` (an ETag or ``*``) / ``if_none_match`` (``*``) are checked atomically.
    ``version_id`` is used when the bucket has versioning enabled.
    """

    bucket: str
    key: str
    version_id: str
    owner: str
    size: int
    etag: str
    headers: ObjectHeaders = DEFAULT_HEADERS
    checksums: Pairs = ()
    chunks: tuple[Chunk, ...] = ()
    inline_data: bytes | None = None
    if_match: str | None = None
    if_none_match: bool = False
    incarnation: int | None = None  # see INCARNATION above


@dataclass(frozen=True, slots=True)
class CopyObject:
    """Server-side copy: the destination references the source's chunks (refcounted).

    ``headers=None`` copies the source's headers (MetadataDirective COPY). ``source_if_*``
    are the x-amz-copy-source-if-match / -none-match conditions; ``if_match`` /
    ``if_none_match`` apply to the destination.
    """

    src_bucket: str
    src_key: str
    bucket: str
    key: str
    version_id: str
    owner: str
    src_version_id: str | None = None
    headers: ObjectHeaders | None = None
    source_if_match: str | None = None
    source_if_none_match: str | None = None
    if_match: str | None = None
    if_none_match: bool = False
    src_incarnation: int | None = None  # of ``src_bucket``; see INCARNATION above
    incarnation: int | None = None  # of ``bucket``


@dataclass(frozen=True, slots=True)
class DeleteObject:
    """Delete ``key`` (a delete marker in a versioned bucket) or one version of it.

    ``marker_version_id`` is the proposer-chosen id of the delete marker created when the
    bucket has versioning Enabled (required then; ignored otherwise)."""

    bucket: str
    key: str
    version_id: str | None = None
    marker_version_id: str = ""
    if_match: str | None = None
    incarnation: int | None = None  # see INCARNATION above


@dataclass(frozen=True, slots=True)
class ObjectIdentifier:
    """One entry of a DeleteObjects request."""

    key: str
    version_id: str | None = None
    marker_version_id: str = ""


@dataclass(frozen=True, slots=True)
class DeleteObjects:
    """Delete up to 1000 keys of one bucket; per-key outcomes."""

    bucket: str
    objects: tuple[ObjectIdentifier, ...]
    incarnation: int | None = None  # see INCARNATION above


@dataclass(frozen=True, slots=True)
class PutObjectTagging:
    """Replace the tags of one object version (None or () deletes them); the version's
    LastModified and ETag are unchanged, as in S3."""

    bucket: str
    key: str
    tags: Pairs | None
    version_id: str | None = None
    incarnation: int | None = None  # see INCARNATION above


# -- multipart --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CreateMultipartUpload:
    """Start a multipart upload with proposer-chosen ``upload_id``."""

    bucket: str
    key: str
    upload_id: str
    owner: str
    headers: ObjectHeaders = DEFAULT_HEADERS
    checksum_algorithm: str = ""
    checksum_type: str = ""  # "COMPOSITE" | "FULL_OBJECT" | "" (appended field, #5)
    incarnation: int | None = None  # see INCARNATION above


@dataclass(frozen=True, slots=True)
class CommitPart:
    """Record part ``part_number`` (1..10000), replacing any earlier upload of it."""

    bucket: str
    key: str
    upload_id: str
    part_number: int
    size: int
    etag: str
    chunks: tuple[Chunk, ...] = ()
    checksums: Pairs = ()
    incarnation: int | None = None  # see INCARNATION above


@dataclass(frozen=True, slots=True)
class CompletedPart:
    """One ``<Part>`` of a CompleteMultipartUpload request."""

    part_number: int
    etag: str


@dataclass(frozen=True, slots=True)
class CompleteMultipartUpload:
    """Assemble the listed parts into a new object version."""

    bucket: str
    key: str
    upload_id: str
    parts: tuple[CompletedPart, ...]
    version_id: str
    if_match: str | None = None
    if_none_match: bool = False
    # the object's checksums as the gateway computed them from the parts' ones: COMPOSITE
    # (ALGORITHM, "b64-N") or FULL_OBJECT (ALGORITHM, "b64"), stored on the object (#5)
    checksums: Pairs = ()
    # copy each listed part's checksums onto the object (``ObjectRecord.part_checksums``);
    # appended field, False for entries logged before it existed, so replay is unchanged
    keep_part_checksums: bool = False
    incarnation: int | None = None  # see INCARNATION above


@dataclass(frozen=True, slots=True)
class AbortMultipartUpload:
    """Drop an upload and queue its parts' shards for deletion."""

    bucket: str
    key: str
    upload_id: str
    incarnation: int | None = None  # see INCARNATION above


# -- users ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PutUser:
    """Create or update a user."""

    name: str
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class DeleteUser:
    """Delete a user and all its access keys."""

    name: str


@dataclass(frozen=True, slots=True)
class PutAccessKey:
    """Create or replace an access key of an existing user."""

    access_key_id: str
    secret: str
    user_name: str


@dataclass(frozen=True, slots=True)
class DeleteAccessKey:
    """Delete an access key."""

    access_key_id: str


# -- chunkservers and data placement ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class RegisterChunkserver:
    """Add (or re-address) a chunkserver; it starts ``up``."""

    server_id: int
    addr: Address
    zone: str
    capacity_bytes: int
    free_bytes: int


@dataclass(frozen=True, slots=True)
class ChunkserverHeartbeat:
    """Record a heartbeat (time = envelope ``now_ms``); revives suspect/down servers.

    ``scrub`` (optional, appended later) carries the server's scrub counters."""

    server_id: int
    capacity_bytes: int
    free_bytes: int
    scrub: ScrubProgressRecord | None = None


@dataclass(frozen=True, slots=True)
class SetChunkserverState:
    """Leader's failure detector / operator: set up, suspect, down, draining or drained."""

    server_id: int
    state: ChunkserverState


@dataclass(frozen=True, slots=True)
class ShardMove:
    """Shard ``shard_index`` moves from ``from_server`` to ``to_server`` (rebuilt there).

    ``from_server=0`` places a shard that has no home yet (written below k+m)."""

    shard_index: int
    from_server: int
    to_server: int
    checksum: str = ""


@dataclass(frozen=True, slots=True)
class UpdatePlacement:
    """Repair: commit new homes for shards of one chunk; the old copies are queued for
    deletion. Fails with PreconditionFailed if any ``from_server`` is no longer current.

    ``started_ms``: catalog time (``Catalog.now_ms``) read before the rebuild began. A move
    onto a copy GC fenced at or after that time fails (``ShardFenced``: GC may have deleted
    the rebuilt file), as does a repair planned longer ago than a fence lives (see
    ``fences.py``). 0 (entries from before the field) skips both checks."""

    chunk_id: str
    moves: tuple[ShardMove, ...]
    started_ms: int = 0


@dataclass(frozen=True, slots=True)
class AckShardDeletes:
    """A chunkserver deleted these shards: remove them from the delete queue."""

    shards: tuple[ShardRef, ...]


@dataclass(frozen=True, slots=True)
class ReportBadShards:
    """A read or a scrub found these shard copies corrupt or missing: record them so the
    leader repairs them. Idempotent; reports about copies no longer placed are ignored."""

    shards: tuple[ShardRef, ...]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ClearBadShards:
    """Forget bad-shard records that are stale (their copy moved or the chunk is gone)."""

    shards: tuple[ShardRef, ...]


@dataclass(frozen=True, slots=True)
class FenceChunks:
    """GC, before deleting orphan shards: fence every id no version or part references (later
    commits naming it fail with ChunkFenced); answers ``ChunksFenced`` (see fences.py)."""

    chunk_ids: tuple[str, ...]
    server_id: int = 0


@dataclass(frozen=True, slots=True)
class FenceShards:
    """GC, before deleting copies of referenced chunks that seem not to be placed on their
    server: fence every copy the catalog does not place there (a later ``UpdatePlacement``
    of a repair planned before the fence cannot place it); answers ``ShardsFenced``."""

    shards: tuple[ShardRef, ...]


@dataclass(frozen=True, slots=True)
class SetErasureProfile:
    """Set the erasure-coding profile for new chunks."""

    profile: ErasureProfile


@dataclass(frozen=True, slots=True)
class Noop:
    """Does nothing (a new leader's first entry; also advances the catalog clock)."""


Command = (
    CreateBucket
    | DeleteBucket
    | PutBucketVersioning
    | PutBucketTagging
    | PutBucketCors
    | PutBucketAcl
    | CommitObject
    | CopyObject
    | DeleteObject
    | DeleteObjects
    | PutObjectTagging
    | CreateMultipartUpload
    | CommitPart
    | CompleteMultipartUpload
    | AbortMultipartUpload
    | PutUser
    | DeleteUser
    | PutAccessKey
    | DeleteAccessKey
    | RegisterChunkserver
    | ChunkserverHeartbeat
    | SetChunkserverState
    | UpdatePlacement
    | AckShardDeletes
    | ReportBadShards
    | ClearBadShards
    | FenceChunks
    | FenceShards
    | SetErasureProfile
    | Noop
)


@dataclass(frozen=True, slots=True)
class ClientCommand:
    """The envelope of every log entry: exactly-once identity and the proposer's clock."""

    client_id: str
    seq: int
    now_ms: int
    command: Command


def command_scope(command: Command) -> tuple[str, str | None] | None:
    """``(bucket, key)`` a command touches (key None: bucket-wide); None: cluster-wide."""
    match command:
        case CopyObject():
            return (command.bucket, command.key)
        case (
            CommitObject()
            | DeleteObject()
            | PutObjectTagging()
            | CreateMultipartUpload()
            | CommitPart()
            | CompleteMultipartUpload()
            | AbortMultipartUpload()
        ):
            return (command.bucket, command.key)
        case (
            CreateBucket()
            | DeleteBucket()
            | PutBucketVersioning()
            | PutBucketTagging()
            | PutBucketCors()
            | PutBucketAcl()
            | DeleteObjects()
        ):
            return (command.bucket, None)
        case _:
            return None
