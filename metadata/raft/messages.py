"""Raft's value types: log entries, persistent state, snapshots, and messages.

Pure: stdlib only. These types cross three boundaries (core <-> storage, core <-> network,
core <-> state machine), so their fields are the contract between them; the wire and disk
encodings live elsewhere (``blobstore/rpc/codec.py``, ``metadata/storage/disk.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "ConfState",
    "Entry",
    "EntryType",
    "HardState",
    "Snapshot",
    "SnapshotMeta",
]


class EntryType(IntEnum):
    NORMAL = 0  # data is an encoded state-machine command (empty: leader's no-op)
    CONF_CHANGE = 1  # data is an encoded membership change


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. ``index`` starts at 1; ``term`` is the leader's term when proposed."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before a node answers a vote or acks an append (Raft §5)."""

    term: int = 0
    vote: int = 0  # 0 = voted for nobody in ``term``
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership in force: voters, learners, and (during joint consensus) old voters."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()
    voters_outgoing: tuple[int, ...] = ()  # non-empty only in a joint configuration
    auto_leave: bool = False


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Which prefix of the log a snapshot replaces, and the membership at its end."""

    index: int = 0
    term: int = 0
    conf: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A state-machine snapshot: ``data`` is the state machine's own serialization."""

    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""
