"""Raft's value types: log entries, persistent state, snapshots, and messages.

Pure: stdlib only. ``Message``/``MessageType`` are the Raft RPCs (one flat dataclass, like
etcd's ``raftpb.Message``); ``ConfChange`` is the payload of a CONF_CHANGE entry.

ConfChange byte layout (``ConfChange.encode``), big-endian::

    magic  b"RCC" (3 bytes) | version u8 = 1 | type u8 | node_id u64 | context (rest)
 These types cross three boundaries (core <-> storage, core <-> network,
core <-> state machine), so their fields are the contract between them; the wire and disk
encodings live elsewhere (``blobstore/rpc/codec.py``, ``metadata/storage/disk.py``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Entry",
    "EntryType",
    "HardState",
    "Message",
    "MessageType",
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


class MessageType(IntEnum):
    """Raft RPC kinds (the network-visible subset of etcd's ``raftpb.MessageType``)."""

    APP = 1  # AppendEntries: index/log_term = previous entry, entries, commit
    APP_RESP = 2  # index = last matching index; reject + reject_hint/log_term on mismatch
    VOTE = 3  # RequestVote: index/log_term = candidate's last entry
    VOTE_RESP = 4
    PRE_VOTE = 5  # term = the term the candidate *would* campaign in
    PRE_VOTE_RESP = 6
    HEARTBEAT = 7  # commit = min(follower match, leader commit); context = ReadIndex ctx
    HEARTBEAT_RESP = 8
    SNAP = 9  # one InstallSnapshot chunk: snapshot.data[offset:...], done on the last one
    SNAP_RESP = 10  # chunk ack: reject_hint = bytes received so far (reject: restart there)
    TRANSFER_LEADER = 11  # follower -> leader forward; from_ = the transferee
    TIMEOUT_NOW = 12  # leader -> transferee: campaign now, ignoring leases
    READ_INDEX = 13  # follower -> leader forward of a read request; context = ctx
    READ_INDEX_RESP = 14  # index = read index, context = ctx


@dataclass(frozen=True, slots=True)
class Message:
    """One Raft message. Fields unused by a type keep their defaults."""

    type: MessageType
    to: int
    from_: int
    term: int  # 0 only for forwarded TRANSFER_LEADER / READ_INDEX (local, not term-checked)
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None  # SNAP: full meta, ``data`` = this chunk only
    offset: int = 0  # SNAP: byte offset of this chunk in the whole snapshot data
    done: bool = False  # SNAP: last chunk
    context: bytes = b""


class ConfChangeType(IntEnum):
    ADD_NODE = 0  # add a voter, or promote a learner
    REMOVE_NODE = 1
    ADD_LEARNER_NODE = 2  # add a learner, or demote a voter


_CC_HEADER = struct.Struct(">3sBBQ")
_CC_MAGIC = b"RCC"
_CC_VERSION = 1


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single-server membership change, carried in a CONF_CHANGE entry's data."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def encode(self) -> bytes:
        return _CC_HEADER.pack(_CC_MAGIC, _CC_VERSION, int(self.type), self.node_id) + (
            self.context
        )

    @staticmethod
    def decode(data: bytes) -> ConfChange:
        """Parse ``encode``'s output; raises ValueError on a bad magic/version/type."""
        if len(data) < _CC_HEADER.size:
            raise ValueError("conf change too short")
        magic, version, typ, node_id = _CC_HEADER.unpack_from(data)
        if magic != _CC_MAGIC or version != _CC_VERSION:
            raise ValueError("bad conf change magic/version")
        return ConfChange(ConfChangeType(typ), node_id, bytes(data[_CC_HEADER.size :]))
