"""Registers the metadata service's wire types with the RPC codec (tags 100-1999).

Pure modules (``metadata/raft``, ``metadata/fsm``) must not import the codec, so their
message classes are registered here, once, by the processes that send them.
Tags are part of the wire format: never reuse or renumber one.
"""

from __future__ import annotations

from blobstore.rpc import codec
from metadata import api
from metadata.raft import messages as raft

__all__ = ["register_all"]

_RAFT: dict[int, type] = {
    100: raft.Message,
    101: raft.Entry,
    102: raft.HardState,
    103: raft.ConfState,
    104: raft.SnapshotMeta,
    105: raft.Snapshot,
}


_API: dict[int, type] = {
    1500: api.ProposeRequest,
    1501: api.ProposeResponse,
    1502: api.QueryRequest,
    1503: api.QueryResponse,
    1504: api.ClusterStatusQuery,
    1505: api.MemberStatus,
    1506: api.ClusterStatusResponse,
    1507: api.MembershipChangeRequest,
    1508: api.MembershipChangeResponse,
    1509: api.TransferLeaderRequest,
    1510: api.HeartbeatRequest,
    1520: api.GetBucketQuery,
    1521: api.ListBucketsQuery,
    1522: api.HeadObjectQuery,
    1523: api.ListObjectsQuery,
    1524: api.ListObjectsV2Query,
    1525: api.ListObjectVersionsQuery,
    1526: api.ListMultipartUploadsQuery,
    1527: api.ListPartsQuery,
    1528: api.GetAccessKeyQuery,
    1529: api.ListUsersQuery,
    1530: api.ListChunkserversQuery,
    1531: api.GetChunkQuery,
    1532: api.ListChunksQuery,
    1533: api.DeleteQueueQuery,
    1534: api.GetErasureProfileQuery,
    1535: api.RedundancyQuery,  # repair: 1535-1544
    1536: api.RepairStatusQuery,
    1545: api.ShardsOnServerQuery,  # GC: 1545-1554
    1546: api.PlacedShardsQuery,
    1555: api.BucketUsageQuery,  # console: 1555-1559
    1556: api.ListAccessKeysQuery,
}


def register_all() -> None:
    """Idempotent: register every metadata wire type."""
    for table in (_RAFT, _API):
        for tag, cls in table.items():
            codec.register(tag, cls)


register_all()
