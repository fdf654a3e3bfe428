"""Shard stores: the ``ShardStore`` Protocol, in memory and on disk."""

from chunkserver.store.base import ShardInfo, ShardReceipt, ShardStore, SpaceInfo
from chunkserver.store.disk import DiskShardStore
from chunkserver.store.memory import MemoryShardStore

__all__ = [
    "DiskShardStore",
    "MemoryShardStore",
    "ShardInfo",
    "ShardReceipt",
    "ShardStore",
    "SpaceInfo",
]
