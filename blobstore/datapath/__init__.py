"""The erasure-coded data-path client: write, read and repair objects on chunkservers.

Used by the gateway, the CLI and the repair scheduler. ``write_object`` streams an
object's bytes into k+m shards per chunk and returns the ``ChunkRef`` list to commit;
``read_range`` streams any byte range back (degraded reads and hedging included);
``rebuild_shard`` recreates one lost shard elsewhere. Placement and server addresses come
through small Protocols (``PlacementSource``, ``ServerDirectory``) so the metadata service
can provide them; ``StaticPlacement`` serves tests and benchmarks.

Must not import: gateway or metadata packages.
"""

from blobstore.datapath.health import ServerHealth
from blobstore.datapath.reader import (
    ChunkReader,
    OnBadShard,
    ReadOptions,
    object_size,
    read_range,
)
from blobstore.datapath.refs import (
    BadShard,
    BadShardReason,
    ChunkRef,
    MissingShard,
    PlacementSource,
    ServerDirectory,
    ShardRef,
    StaticPlacement,
    Target,
    WriteResult,
)
from blobstore.datapath.repair import rebuild_shard
from blobstore.datapath.stripes import encode_stripe
from blobstore.datapath.writer import WriteOptions, write_object

__all__ = [
    "BadShard",
    "BadShardReason",
    "ChunkReader",
    "ChunkRef",
    "MissingShard",
    "OnBadShard",
    "PlacementSource",
    "ReadOptions",
    "ServerDirectory",
    "ServerHealth",
    "ShardRef",
    "StaticPlacement",
    "Target",
    "WriteOptions",
    "WriteResult",
    "encode_stripe",
    "object_size",
    "read_range",
    "rebuild_shard",
    "write_object",
]
