"""The catalog service's API: typed queries, RPC request/response messages, query dispatch.

Writes travel as ``ProposeRequest(entry)`` where ``entry`` is the catalog's own encoding of
a ``ClientCommand`` (``metadata.fsm.machine.encode_entry``): the leader appends those bytes
to the Raft log unchanged, so a command is encoded once, by its proposer. Results come
back as ``metadata.fsm.codec`` bytes (the catalog's value encoding, which already covers
every record, result and error type). Reads are typed ``*Query`` messages answered by
``run_query`` against the local catalog after a linearizable read barrier (``LINEARIZABLE``)
or directly (``LOCAL``, possibly stale; for status pages).

INCARNATION: the queries that read objects, uploads or listings of one bucket end with an
optional ``incarnation`` (appended field: older senders decode with None, and an older
service ignores it): the ``BucketRecord.incarnation`` the caller authorised against. When
set and the bucket has since been deleted and re-created, the answer is NoSuchBucket
rather than the new bucket's contents; None checks nothing.

Pure: stdlib and the catalog. Wire registration of these classes is in ``metadata.wire``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from metadata.fsm import queries
from metadata.fsm.results import RepairStatus
from metadata.fsm.state import Catalog
from metadata.maintenance.health import redundancy_summary

__all__ = [
    "BucketUsageQuery",
    "ClusterStatusQuery",
    "ClusterStatusResponse",
    "DeleteQueueQuery",
    "GetAccessKeyQuery",
    "GetBucketQuery",
    "GetChunkQuery",
    "GetErasureProfileQuery",
    "HeadObjectQuery",
    "HeartbeatRequest",
    "ListAccessKeysQuery",
    "ListBucketsQuery",
    "ListChunksQuery",
    "ListChunkserversQuery",
    "ListMultipartUploadsQuery",
    "ListObjectVersionsQuery",
    "ListObjectsQuery",
    "ListObjectsV2Query",
    "ListPartsQuery",
    "ListUsersQuery",
    "MemberStatus",
    "MembershipChangeRequest",
    "MembershipChangeResponse",
    "PlacedShardsQuery",
    "ProposeRequest",
    "ProposeResponse",
    "Query",
    "QueryRequest",
    "QueryResponse",
    "ReadMode",
    "RedundancyQuery",
    "RepairStatusQuery",
    "ShardsOnServerQuery",
    "TransferLeaderRequest",
    "run_query",
]


class ReadMode(IntEnum):
    LINEARIZABLE = 0  # ReadIndex on the leader: sees every write committed before the call
    LOCAL = 1  # this node's applied state, no barrier (may be stale)


# -- queries ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GetBucketQuery:
    bucket: str


@dataclass(frozen=True, slots=True)
class ListBucketsQuery:
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class HeadObjectQuery:
    bucket: str
    key: str
    version_id: str | None = None
    incarnation: int | None = None  # see INCARNATION in the module docstring


@dataclass(frozen=True, slots=True)
class ListObjectsQuery:
    bucket: str
    prefix: str = ""
    delimiter: str = ""
    marker: str = ""
    max_keys: int = 1000
    incarnation: int | None = None  # see INCARNATION in the module docstring


@dataclass(frozen=True, slots=True)
class ListObjectsV2Query:
    bucket: str
    prefix: str = ""
    delimiter: str = ""
    start_after: str = ""
    continuation_token: str | None = None
    max_keys: int = 1000
    incarnation: int | None = None  # see INCARNATION in the module docstring


@dataclass(frozen=True, slots=True)
class ListObjectVersionsQuery:
    bucket: str
    prefix: str = ""
    delimiter: str = ""
    key_marker: str = ""
    version_id_marker: str = ""
    max_keys: int = 1000
    incarnation: int | None = None  # see INCARNATION in the module docstring


@dataclass(frozen=True, slots=True)
class ListMultipartUploadsQuery:
    bucket: str
    prefix: str = ""
    delimiter: str = ""
    key_marker: str = ""
    upload_id_marker: str = ""
    max_uploads: int = 1000
    incarnation: int | None = None  # see INCARNATION in the module docstring


@dataclass(frozen=True, slots=True)
class ListPartsQuery:
    bucket: str
    key: str
    upload_id: str
    part_number_marker: int = 0
    max_parts: int = 1000
    incarnation: int | None = None  # see INCARNATION in the module docstring


@dataclass(frozen=True, slots=True)
class GetAccessKeyQuery:
    access_key_id: str


@dataclass(frozen=True, slots=True)
class ListUsersQuery:
    pass


@dataclass(frozen=True, slots=True)
class ListChunkserversQuery:
    pass


@dataclass(frozen=True, slots=True)
class GetChunkQuery:
    chunk_id: str


@dataclass(frozen=True, slots=True)
class ListChunksQuery:
    after: str | None = None
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class DeleteQueueQuery:
    server_id: int | None = None
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class GetErasureProfileQuery:
    pass


@dataclass(frozen=True, slots=True)
class ShardsOnServerQuery:
    """GC: which shards of ``chunk_ids`` the catalog places on ``server_id`` (answer:
    ``tuple[ShardRef, ...]``)."""

    server_id: int
    chunk_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlacedShardsQuery:
    """A chunkserver's reconciliation: the shards placed on ``server_id``, scanning at most
    ``max_scan`` chunks after ``after`` (answer: ``PlacedShardsPage``)."""

    server_id: int
    after: str | None = None
    max_scan: int = 10_000


@dataclass(frozen=True, slots=True)
class BucketUsageQuery:
    """Console: object counts/bytes per bucket of ``owner`` (all if None); an O(objects)
    scan bounded by ``max_scan`` records (answer: ``tuple[BucketUsage, ...]``)."""

    owner: str | None = None
    max_scan: int = 200_000


@dataclass(frozen=True, slots=True)
class ListAccessKeysQuery:
    """Console: access keys without secrets of ``user_name`` (all if None) (answer:
    ``tuple[AccessKeySummary, ...]``)."""

    user_name: str | None = None


@dataclass(frozen=True, slots=True)
class RedundancyQuery:
    """Redundancy of every chunk and object (answer: ``RedundancySummary``; O(catalog))."""


@dataclass(frozen=True, slots=True)
class RepairStatusQuery:
    """The leader's repair driver counters (answer: ``RepairStatus``)."""


Query = (
    GetBucketQuery
    | ListBucketsQuery
    | HeadObjectQuery
    | ListObjectsQuery
    | ListObjectsV2Query
    | ListObjectVersionsQuery
    | ListMultipartUploadsQuery
    | ListPartsQuery
    | GetAccessKeyQuery
    | ListUsersQuery
    | ListChunkserversQuery
    | GetChunkQuery
    | ListChunksQuery
    | DeleteQueueQuery
    | GetErasureProfileQuery
    | RedundancyQuery
    | RepairStatusQuery
    | BucketUsageQuery
    | ListAccessKeysQuery
    | ShardsOnServerQuery
    | PlacedShardsQuery
)


def run_query(catalog: Catalog, q: Query) -> object:
    """Answer ``q`` from ``catalog``; raises the catalog's domain errors."""
    match q:
        case GetBucketQuery():
            return catalog.get_bucket(q.bucket)
        case ListBucketsQuery():
            return catalog.list_buckets(q.owner)
        case HeadObjectQuery():
            return catalog.head_object(q.bucket, q.key, q.version_id, incarnation=q.incarnation)
        case ListObjectsQuery():
            return catalog.list_objects(
                q.bucket, prefix=q.prefix, delimiter=q.delimiter, marker=q.marker,
                max_keys=q.max_keys, incarnation=q.incarnation,
            )  # fmt: skip
        case ListObjectsV2Query():
            return catalog.list_objects_v2(
                q.bucket, prefix=q.prefix, delimiter=q.delimiter, start_after=q.start_after,
                continuation_token=q.continuation_token, max_keys=q.max_keys,
                incarnation=q.incarnation,
            )  # fmt: skip
        case ListObjectVersionsQuery():
            return catalog.list_object_versions(
                q.bucket, prefix=q.prefix, delimiter=q.delimiter, key_marker=q.key_marker,
                version_id_marker=q.version_id_marker, max_keys=q.max_keys,
                incarnation=q.incarnation,
            )  # fmt: skip
        case ListMultipartUploadsQuery():
            return catalog.list_multipart_uploads(
                q.bucket, prefix=q.prefix, delimiter=q.delimiter, key_marker=q.key_marker,
                upload_id_marker=q.upload_id_marker, max_uploads=q.max_uploads,
                incarnation=q.incarnation,
            )  # fmt: skip
        case ListPartsQuery():
            return catalog.list_parts(
                q.bucket, q.key, q.upload_id, part_number_marker=q.part_number_marker,
                max_parts=q.max_parts, incarnation=q.incarnation,
            )  # fmt: skip
        case GetAccessKeyQuery():
            return catalog.get_access_key(q.access_key_id)
        case ListUsersQuery():
            return catalog.list_users()
        case ListChunkserversQuery():
            return catalog.list_chunkservers()
        case GetChunkQuery():
            return catalog.get_chunk(q.chunk_id)
        case ListChunksQuery():
            return catalog.list_chunks(q.after, q.limit)
        case DeleteQueueQuery():
            return catalog.delete_queue_page(q.server_id, None, q.limit)
        case GetErasureProfileQuery():
            return catalog.get_erasure_profile()
        case RedundancyQuery():
            return redundancy_summary(catalog.kv)
        case RepairStatusQuery():  # the metadata service answers from its driver
            return RepairStatus(False, 0, 0, 0, 0, 0, 0, 0.0, 0, 0)
        case ShardsOnServerQuery():
            return queries.shards_on_server(catalog.kv, q.server_id, q.chunk_ids)
        case PlacedShardsQuery():
            return queries.placed_on_server(
                catalog.kv, q.server_id, q.after, min(max(1, q.max_scan), 100_000)
            )
        case BucketUsageQuery():
            return queries.bucket_usage(catalog.kv, q.owner, q.max_scan)
        case ListAccessKeysQuery():
            return queries.list_access_keys(catalog.kv, q.user_name)
    raise TypeError(f"unknown query {type(q).__name__}")  # pragma: no cover


# -- RPC messages ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProposeRequest:
    """Replicate one catalog command (``entry`` = encoded ``ClientCommand``)."""

    entry: bytes


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    """A chunkserver's heartbeat: ``entry`` encodes a ``ClientCommand`` whose command is a
    ``ChunkserverHeartbeat``. The leader notes it and replicates it only when the catalog
    must learn something (``metadata.maintenance.liveness``); answered with a
    ``ProposeResponse`` either way."""

    entry: bytes


@dataclass(frozen=True, slots=True)
class ProposeResponse:
    result: bytes  # metadata.fsm.codec encoding of the Result (a value or an error)
    index: int


@dataclass(frozen=True, slots=True)
class QueryRequest:
    query: object  # one of ``Query``
    mode: ReadMode = ReadMode.LINEARIZABLE


@dataclass(frozen=True, slots=True)
class QueryResponse:
    result: bytes  # metadata.fsm.codec encoding of the answer


@dataclass(frozen=True, slots=True)
class ClusterStatusQuery:
    pass


@dataclass(frozen=True, slots=True)
class MemberStatus:
    node_id: int
    address: str
    match_index: int
    is_learner: bool
    recent_active: bool


@dataclass(frozen=True, slots=True)
class ClusterStatusResponse:
    node_id: int
    leader_id: int
    leader_address: str
    term: int
    commit_index: int
    applied_index: int
    role: str
    members: tuple[MemberStatus, ...]


@dataclass(frozen=True, slots=True)
class MembershipChangeRequest:
    action: str  # "add", "add-learner", "remove"
    node_id: int
    address: str = ""


@dataclass(frozen=True, slots=True)
class MembershipChangeResponse:
    voters: tuple[int, ...]
    learners: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TransferLeaderRequest:
    node_id: int
