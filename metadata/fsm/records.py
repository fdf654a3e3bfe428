"""The catalog's stored records: the immutable values kept in the ordered key-value map.

Every record is a frozen, slotted dataclass of plain values (str, int, bool, bytes, None,
tuples and other records). Mappings are tuples of ``(name, value)`` pairs sorted by name
(``Pairs``), never dicts, so records are hashable and encode deterministically. Changing a
record means storing a new instance (``dataclasses.replace``); records are shared with
snapshots, so they must never be mutated.

Shard ownership: chunks live in their own table (``ChunkRecord``) with a reference count.
Object versions and multipart parts name their chunks by id; a server-side copy references
the source's chunk ids and increments their counts. A chunk's shards are queued for deletion
only when its count drops to zero, so deleting either side of a copy never frees the other's
data, and a repair (``UpdatePlacement``) updates one record whatever the number of copies.

Pure: imports only the stdlib and ``blobstore.types``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from blobstore.types import Address

__all__ = [
    "DEFAULT_HEADERS",
    "NULL_VERSION",
    "AccessKeyRecord",
    "BadShardRecord",
    "BucketRecord",
    "Chunk",
    "ChunkFence",
    "ChunkRecord",
    "ChunkserverRecord",
    "ChunkserverState",
    "CorsRule",
    "ErasureProfile",
    "MetaRecord",
    "ObjectHeaders",
    "ObjectRecord",
    "Pairs",
    "PartRecord",
    "ScrubProgressRecord",
    "SessionRecord",
    "ShardDelete",
    "ShardFence",
    "ShardPlacement",
    "ShardRef",
    "UploadRecord",
    "UserRecord",
    "VersioningState",
]

Pairs = tuple[tuple[str, str], ...]
VersioningState = Literal["Unversioned", "Enabled", "Suspended"]
# "drained": a draining server that no longer holds any shard (safe to remove)
ChunkserverState = Literal["up", "suspect", "down", "draining", "drained"]

NULL_VERSION = "null"


@dataclass(frozen=True, slots=True)
class ShardPlacement:
    """Shard ``shard_index`` of a chunk lives on chunkserver ``server_id``."""

    server_id: int
    shard_index: int
    checksum: str = ""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One erasure-coded chunk of object data and where its k+m shards are."""

    chunk_id: str
    coder: str
    k: int
    m: int
    stripe_size: int
    data_length: int
    shards: tuple[ShardPlacement, ...]


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A chunk plus the number of object versions / parts referencing it (>= 1)."""

    chunk: Chunk
    refs: int


@dataclass(frozen=True, slots=True)
class ObjectHeaders:
    """The client-supplied, stored-as-is metadata of an object."""

    content_type: str = "binary/octet-stream"
    content_encoding: str = ""
    content_disposition: str = ""
    content_language: str = ""
    cache_control: str = ""
    expires: str = ""
    user_metadata: Pairs = ()
    tags: Pairs = ()
    storage_class: str = "STANDARD"


DEFAULT_HEADERS = ObjectHeaders()


@dataclass(frozen=True, slots=True)
class CorsRule:
    """One bucket CORS rule."""

    allowed_origins: tuple[str, ...]
    allowed_methods: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_s: int | None = None
    rule_id: str = ""


@dataclass(frozen=True, slots=True)
class BucketRecord:
    """A bucket and its settings; ``tags``/``cors`` are None when never set (S3 404s).

    ``incarnation`` identifies this bucket among every bucket that ever had its name: a
    number drawn from the catalog-wide sequence (``MetaRecord.version_seq``) when the bucket
    is created, so it never repeats, even after a delete and a re-create in the same
    millisecond. Object commands and queries may name the incarnation their caller
    authorised against; a bucket that was replaced since then answers NoSuchBucket.
    Appended field: buckets created before it decode with 0 (never drawn from the sequence,
    whose first value is 1).
    """

    name: str
    owner: str
    created_ms: int
    versioning: VersioningState = "Unversioned"
    acl: str = "private"
    tags: Pairs | None = None
    cors: tuple[CorsRule, ...] | None = None
    incarnation: int = 0


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """One version of an object (or a delete marker). Bucket and key are in the KV key.

    Exactly one of ``chunk_ids`` / ``inline_data`` carries the bytes (an empty object has
    ``inline_data=b""``). ``seq`` is the catalog-wide version sequence (newer is larger).
    ``part_sizes`` is non-empty for a completed multipart upload. ``part_checksums`` is
    either empty or parallel to ``part_sizes``: each part's ``(ALGORITHM, b64)`` checksums
    as recorded at UploadPart (appended field: records encoded before it decode with ``()``).
    """

    version_id: str
    size: int
    etag: str
    last_modified_ms: int
    owner: str
    seq: int
    headers: ObjectHeaders = DEFAULT_HEADERS
    checksums: Pairs = ()
    chunk_ids: tuple[str, ...] = ()
    inline_data: bytes | None = None
    part_sizes: tuple[int, ...] = ()
    is_delete_marker: bool = False
    part_checksums: tuple[Pairs, ...] = ()


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """An in-progress multipart upload.

    ``checksum_type`` is "COMPOSITE", "FULL_OBJECT" or "" (no algorithm, or a record
    written before the field existed: treated as COMPOSITE)."""

    upload_id: str
    owner: str
    initiated_ms: int
    headers: ObjectHeaders = DEFAULT_HEADERS
    checksum_algorithm: str = ""
    checksum_type: str = ""


@dataclass(frozen=True, slots=True)
class PartRecord:
    """One uploaded part of a multipart upload."""

    part_number: int
    size: int
    etag: str
    last_modified_ms: int
    checksums: Pairs = ()
    chunk_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user account."""

    name: str
    is_admin: bool
    created_ms: int


@dataclass(frozen=True, slots=True)
class AccessKeyRecord:
    """An S3 access key pair belonging to ``user_name``."""

    access_key_id: str
    secret: str
    user_name: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class ChunkserverRecord:
    """A chunkserver as the catalog knows it (``last_heartbeat_ms`` is the committed one)."""

    server_id: int
    addr: Address
    zone: str
    capacity_bytes: int
    free_bytes: int
    state: ChunkserverState
    last_heartbeat_ms: int
    registered_ms: int


@dataclass(frozen=True, slots=True)
class ShardRef:
    """Names one shard file: shard ``shard_index`` of ``chunk_id`` on ``server_id``."""

    chunk_id: str
    server_id: int
    shard_index: int


@dataclass(frozen=True, slots=True)
class ShardDelete:
    """A delete-queue entry: remove this shard; the chunkserver acks when done."""

    shard: ShardRef
    enqueued_ms: int


@dataclass(frozen=True, slots=True)
class BadShardRecord:
    """A shard reported corrupt or missing (by a read or a scrub) and not yet repaired.

    Keyed by (chunk, shard index); ``shard.server_id`` names the copy found bad, so a
    report about a copy that has since moved is recognisably stale."""

    shard: ShardRef
    reason: str
    reported_ms: int


@dataclass(frozen=True, slots=True)
class ScrubProgressRecord:
    """A chunkserver's scrub counters as of its last heartbeat (``updated_ms``)."""

    server_id: int
    pass_number: int
    passes_completed: int
    shards_scrubbed: int
    bytes_scrubbed: int
    corrupt_found: int
    updated_ms: int = 0


@dataclass(frozen=True, slots=True)
class ErasureProfile:
    """The erasure-coding parameters for new chunks.

    ``coder`` names a registered coder, or "auto": each writer then uses the preferred
    coder it has (ISA-L's Cauchy code where libisal loads, zfec otherwise); a chunk
    always records the coder that actually wrote it."""

    coder: str = "auto"
    k: int = 4
    m: int = 2
    stripe_size_bytes: int = 1 << 20
    chunk_size_bytes: int = 64 << 20


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """Exactly-once state of one client: its last applied sequence and that result."""

    client_id: str
    last_seq: int
    last_active_ms: int
    result: object


@dataclass(frozen=True, slots=True)
class MetaRecord:
    """Catalog-wide counters: the proposer clock high-water mark and the version sequence
    (object versions' ``seq`` and buckets' ``incarnation`` are drawn from it)."""

    now_ms: int = 0
    version_seq: int = 0


@dataclass(frozen=True, slots=True)
class ChunkFence:
    """GC fenced this unreferenced chunk id at ``fenced_ms`` (``server_id`` asked): commits
    naming it fail until the fence expires (see ``fences.py``)."""

    chunk_id: str
    fenced_ms: int
    server_id: int = 0


@dataclass(frozen=True, slots=True)
class ShardFence:
    """GC fenced ``shard``, a copy of a referenced chunk that the catalog does not place on
    its server, at ``fenced_ms``, before deleting the file: a repair planned at or before
    that time can no longer place the shard there (see ``fences.py``)."""

    shard: ShardRef
    fenced_ms: int
