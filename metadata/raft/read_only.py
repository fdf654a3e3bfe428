"""Linearizable reads at the leader: ReadIndex [thesis §6.4] and opt-in lease reads.

``ReadOnly`` is etcd's ``readOnly`` (ReadOnlySafe mode): the pending ReadIndex requests.
A request is recorded with the leader's commit index *at arrival* and a unique context;
the leader then broadcasts a heartbeat carrying that context. Heartbeat responses echo it,
so an ack proves the responder still followed this leader *after* the read arrived (Raft
§8). Once a quorum acked, that request and every earlier one is released (earlier requests
are covered by the later heartbeat round).

The free functions over ``Raft`` are the leader's side of the protocol:
- a read is answered at once by a single-voter leader;
- until the leader committed an entry of its own term its commit index may be stale, so
  reads wait in ``Raft.pending_read_index`` and are replayed when that commit happens
  (``release_deferred``, thesis §6.4 step 1);
- with ``read_lease_based`` (requires CheckQuorum) the leader answers from its commit
  index without a heartbeat round, trusting its lease (clock-drift assumption);
- an answer goes to the local driver as a ``ReadState`` or back to the forwarding
  follower as READ_INDEX_RESP.
Imports only the stdlib and this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from metadata.raft.config import NONE
from metadata.raft.messages import Message, MessageType
from metadata.raft.quorum import VoteResult
from metadata.raft.ready import ReadState
from metadata.raft.replication import bcast_heartbeat

if TYPE_CHECKING:
    from metadata.raft.core import Raft

__all__ = [
    "ReadIndexStatus",
    "ReadOnly",
    "leader_read_index",
    "on_heartbeat_ack",
    "release_deferred",
]

_MT = MessageType


@dataclass(slots=True)
class ReadIndexStatus:
    """One pending read: the request, its read index and the heartbeat acks so far."""

    req: Message  # the READ_INDEX request (from_ = requester, context = ctx)
    index: int  # leader commit index when the request arrived
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    """Pending ReadIndex requests in arrival order, keyed by their context."""

    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, req: Message) -> bool:
        """Record a read; False if a request with the same context is already pending."""
        ctx = req.context
        if ctx in self.pending:
            return False
        self.pending[ctx] = ReadIndexStatus(req, index)
        self.queue.append(ctx)
        return True

    def recv_ack(self, node_id: int, ctx: bytes) -> set[int] | None:
        """Record a heartbeat ack for ``ctx``; the acks so far, or None if unknown."""
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks.add(node_id)
        return rs.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Release ``ctx`` and every request queued before it."""
        if ctx not in self.pending:
            return []
        n = self.queue.index(ctx) + 1
        out = [self.pending.pop(c) for c in self.queue[:n]]
        del self.queue[:n]
        return out

    def last_pending_ctx(self) -> bytes:
        """Context of the newest pending request (b"" if none): what heartbeats carry."""
        return self.queue[-1] if self.queue else b""


def _committed_entry_in_current_term(r: Raft) -> bool:
    return r.log.term(r.log.committed) == r.term


def leader_read_index(r: Raft, m: Message) -> None:
    """A READ_INDEX at the leader (local: ``from_`` is NONE or us; else forwarded)."""
    if r.trk.is_singleton():
        _respond_read(r, m, r.log.committed)
        return
    if not _committed_entry_in_current_term(r):
        # Our commit index may be stale until we commit in our term (thesis §6.4 step 1).
        r.pending_read_index.append(m)
        return
    if r.cfg.read_lease_based:
        _respond_read(r, m, r.log.committed)
        return
    if r.read_only.add_request(r.log.committed, m):
        r.read_only.recv_ack(r.id, m.context)
        bcast_heartbeat(r, m.context)


def release_deferred(r: Raft) -> None:
    """The commit index moved: serve the reads that waited for a commit in this term."""
    if r.pending_read_index and _committed_entry_in_current_term(r):
        pending, r.pending_read_index = r.pending_read_index, []
        for req in pending:
            leader_read_index(r, req)


def on_heartbeat_ack(r: Raft, m: Message) -> None:
    """Count a HEARTBEAT_RESP toward its read's quorum; answer the reads it completes."""
    if r.cfg.read_lease_based or not m.context:
        return
    acks = r.read_only.recv_ack(m.from_, m.context)
    if acks is None or r.trk.vote_result_of(acks) != VoteResult.WON:
        return
    for rs in r.read_only.advance(m.context):
        _respond_read(r, rs.req, rs.index)


def _respond_read(r: Raft, req: Message, index: int) -> None:
    if req.from_ in (NONE, r.id):
        r.read_states.append(ReadState(index, req.context))
    else:
        r.send(
            Message(
                _MT.READ_INDEX_RESP,
                req.from_,
                r.id,
                r.term,
                index=index,
                context=req.context,
            )
        )
