"""The follower role: take the leader's appends and heartbeats, forward local requests.

Free functions over ``Raft`` (etcd's ``stepFollower``, ``handleAppendEntries``,
``handleHeartbeat``). Rules (Raft paper sections in brackets):
- any APP/HEARTBEAT/SNAP of the current term resets the election timer and names the
  leader [§5.2];
- AppendEntries consistency check; the log is truncated only on a term conflict [§5.3];
  a rejection carries etcd's hint (``find_conflict_by_term``: the largest index at or
  below the probe whose term is at most the leader's) so the leader skips a whole term
  per round trip;
- an append below our commit index is answered with the commit index (those entries are
  already known to match);
- acks are queued now but sent by the driver only after the Ready holding the entries was
  persisted (contract in ``ready.py``), so an ack never vouches for a volatile entry;
- TIMEOUT_NOW (leadership transfer) starts an election at once, skipping PreVote;
  TRANSFER_LEADER and READ_INDEX requests are forwarded to the leader.
Imports only the stdlib and this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metadata.raft.config import NONE
from metadata.raft.messages import Message, MessageType
from metadata.raft.ready import ReadState
from metadata.raft.snapshot import handle_snapshot_chunk

if TYPE_CHECKING:
    from metadata.raft.core import Raft

__all__ = ["handle_append", "handle_leader_message", "step_follower"]

_MT = MessageType


def step_follower(r: Raft, m: Message) -> None:
    """Follower role: a message that passed the term check."""
    t = m.type
    if t in (_MT.APP, _MT.HEARTBEAT, _MT.SNAP):
        r.election_elapsed = 0
        r.lead = m.from_
        handle_leader_message(r, m)
    elif t == _MT.TIMEOUT_NOW:
        r.hup(transfer=True)
    elif t in (_MT.TRANSFER_LEADER, _MT.READ_INDEX):
        if r.lead != NONE:
            r.send(Message(t, r.lead, m.from_, 0, context=m.context))
    elif t == _MT.READ_INDEX_RESP:
        r.read_states.append(ReadState(m.index, m.context))


def handle_leader_message(r: Raft, m: Message) -> None:
    """An APP, HEARTBEAT or SNAP from the leader of our term."""
    if m.type == _MT.APP:
        handle_append(r, m)
    elif m.type == _MT.HEARTBEAT:
        r.log.commit_to(m.commit)
        r.send(Message(_MT.HEARTBEAT_RESP, m.from_, r.id, r.term, context=m.context))
    else:
        handle_snapshot_chunk(r, m)


def handle_append(r: Raft, m: Message) -> None:
    """AppendEntries receiver: append and ack, or reject with a back-off hint."""
    if m.index < r.log.committed:
        r.send(Message(_MT.APP_RESP, m.from_, r.id, r.term, index=r.log.committed))
        return
    last = r.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
    if last is not None:
        r.send(Message(_MT.APP_RESP, m.from_, r.id, r.term, index=last))
        return
    hint_index = min(m.index, r.log.last_index())
    hint_index, hint_term = r.log.find_conflict_by_term(hint_index, m.log_term)
    r.send(
        Message(
            _MT.APP_RESP,
            m.from_,
            r.id,
            r.term,
            hint_term,
            m.index,
            reject=True,
            reject_hint=hint_index,
        )
    )
