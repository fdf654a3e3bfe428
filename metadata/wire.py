"""Registers the metadata service's wire types with the RPC codec (tags 100-1999).

Pure modules (``metadata/raft``, ``metadata/fsm``) must not import the codec, so their
message classes are registered here, once, by the processes that send them.
Tags are part of the wire format: never reuse or renumber one.
"""

from __future__ import annotations

from blobstore.rpc import codec
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


def register_all() -> None:
    """Idempotent: register every metadata wire type."""
    for tag, cls in _RAFT.items():
        codec.register(tag, cls)
