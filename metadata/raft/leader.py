"""The leader role: peers' acks, commit, heartbeats, CheckQuorum and leadership transfer.

Free functions over ``Raft`` (etcd's ``stepLeader``, ``tickHeartbeat``, ``maybeCommit``).
Rules (Raft paper sections in brackets):
- an APP_RESP moves the peer's ``Progress`` (PROBE -> REPLICATE once it matched, back to
  PROBE on a rejection, using the reject hint to skip a term at a time) [§5.3];
- commit by counting replicas only for entries of the current term [§5.4.2, Figure 8];
  the leader counts its OWN log only up to ``RaftLog.persisted_index`` (advanced by
  ``RawNode.advance``, then ``on_persisted``), so an entry counts toward commit only
  once the leader's copy is durable;
- heartbeats every ``heartbeat_ticks``; a heartbeat ack unpauses a probe, unsticks a
  full pipeline whose acks were lost, resumes a stalled snapshot stream and counts
  toward pending ReadIndex rounds;
- CheckQuorum [thesis §6.2, §9.6]: every election timeout the leader steps down unless
  a quorum was recently active;
- leadership transfer [thesis §3.10]: catch the transferee up, then TIMEOUT_NOW; proposals
  are refused meanwhile, and the transfer is aborted after an election timeout.
Imports only the stdlib and this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metadata.raft.config import NONE
from metadata.raft.messages import Message, MessageType
from metadata.raft.progress import Progress, ProgressState
from metadata.raft.read_only import leader_read_index, on_heartbeat_ack, release_deferred
from metadata.raft.ready import StateType
from metadata.raft.replication import (
    bcast_append,
    bcast_heartbeat,
    maybe_send_append,
    send_append,
)
from metadata.raft.snapshot import handle_snap_resp, on_heartbeat_resp

if TYPE_CHECKING:
    from metadata.raft.core import Raft

__all__ = [
    "check_quorum",
    "leader_transfer",
    "maybe_commit",
    "on_commit_advanced",
    "on_persisted",
    "step_leader",
    "tick_heartbeat",
]

_MT = MessageType


def tick_heartbeat(r: Raft) -> None:
    """Leader tick: CheckQuorum and transfer timeout per election timeout, heartbeats."""
    r.heartbeat_elapsed += 1
    r.election_elapsed += 1
    if r.election_elapsed >= r.cfg.election_ticks:
        r.election_elapsed = 0
        if r.cfg.check_quorum:
            check_quorum(r)
        if r.state == StateType.LEADER and r.lead_transferee != NONE:
            r.lead_transferee = NONE  # transfer timed out
    if r.state != StateType.LEADER:
        return
    if r.heartbeat_elapsed >= r.cfg.heartbeat_ticks:
        r.heartbeat_elapsed = 0
        bcast_heartbeat(r, r.read_only.last_pending_ctx())


def check_quorum(r: Raft) -> None:
    """Step down unless a quorum was active since the last check; start a new period."""
    if not r.trk.quorum_active(r.id):
        r.become_follower(r.term, NONE)
    for i, pr in r.trk.progress.items():
        if i != r.id:
            pr.recent_active = False


def step_leader(r: Raft, m: Message) -> None:
    """Leader role: a message that passed the term check."""
    t = m.type
    if t == _MT.READ_INDEX:
        leader_read_index(r, m)
        return
    if t == _MT.TRANSFER_LEADER:
        leader_transfer(r, m.from_)
        return
    pr = r.trk.progress.get(m.from_)
    if pr is None:
        return
    if t == _MT.APP_RESP:
        pr.recent_active = True
        _handle_app_resp(r, m, pr)
    elif t == _MT.HEARTBEAT_RESP:
        pr.recent_active = True
        _handle_heartbeat_resp(r, m, pr)
    elif t == _MT.SNAP_RESP:
        pr.recent_active = True
        handle_snap_resp(r, m, pr)


def _handle_app_resp(r: Raft, m: Message, pr: Progress) -> None:
    if m.reject:
        hint = m.reject_hint
        if m.log_term > 0:
            hint, _ = r.log.find_conflict_by_term(m.reject_hint, m.log_term)
        if pr.maybe_decr_to(m.index, hint):
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
            send_append(r, m.from_, pr)
        return
    if not (pr.maybe_update(m.index) or (pr.match == m.index and pr.state == ProgressState.PROBE)):
        return
    if pr.state == ProgressState.PROBE:
        pr.become_replicate()
    elif pr.state == ProgressState.SNAPSHOT and (
        pr.match >= pr.pending_snapshot or pr.match + 1 >= r.log.first_index()
    ):
        pr.become_probe()
        if pr.match + 1 >= r.log.first_index():
            pr.become_replicate()
    elif pr.state == ProgressState.REPLICATE:
        pr.inflights.free_le(m.index)
    if maybe_commit(r):
        on_commit_advanced(r)
    elif pr.can_bump_commit(r.log.committed):
        send_append(r, m.from_, pr)
    while maybe_send_append(r, m.from_, pr, send_if_empty=False):
        pass
    if m.from_ == r.lead_transferee and pr.match == r.log.last_index():
        _send_timeout_now(r, m.from_)


def _handle_heartbeat_resp(r: Raft, m: Message, pr: Progress) -> None:
    pr.msg_app_flow_paused = False
    if pr.state == ProgressState.SNAPSHOT:
        on_heartbeat_resp(r, m.from_, pr)
    else:
        if pr.state == ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first_one()  # unstick a pipeline whose acks were lost
        if pr.match < r.log.last_index() or pr.can_bump_commit(r.log.committed):
            send_append(r, m.from_, pr)
    on_heartbeat_ack(r, m)


def maybe_commit(r: Raft) -> bool:
    """Advance the commit index to what a quorum holds (current-term entries only)."""
    return r.log.maybe_commit(r.trk.committed(), r.term)


def on_commit_advanced(r: Raft) -> None:
    """Release reads waiting for a commit in this term; tell peers the new commit index."""
    release_deferred(r)
    bcast_append(r, send_if_empty=True)


def on_persisted(r: Raft) -> None:
    """The driver persisted a Ready: the leader may now count its own log."""
    if r.state != StateType.LEADER:
        return
    pr = r.trk.progress.get(r.id)
    if pr is not None and pr.maybe_update(r.log.persisted_index()) and maybe_commit(r):
        on_commit_advanced(r)


def _send_timeout_now(r: Raft, to: int) -> None:
    r.send(Message(_MT.TIMEOUT_NOW, to, r.id, r.term))


def leader_transfer(r: Raft, transferee: int) -> None:
    """Start handing leadership to ``transferee`` (a voter other than us)."""
    pr = r.trk.progress.get(transferee)
    if pr is None or pr.is_learner or transferee == r.id:
        return
    if r.lead_transferee == transferee:
        return
    r.lead_transferee = transferee
    r.election_elapsed = 0  # the transfer must finish within an election timeout
    if pr.match == r.log.last_index():
        _send_timeout_now(r, transferee)
    else:
        send_append(r, transferee, pr)
