"""Elections: the election timer, PreVote and vote rounds, granting votes, the candidate.

Free functions over ``Raft`` (etcd's ``campaign``/``poll``/``stepCandidate``); ``core``
dispatches to them. Rules (Raft paper sections in brackets):
- randomized election timeout in [election_ticks, 2*election_ticks) (drawn in
  ``Raft._reset``) [§5.2]; only voters campaign, and not while a committed CONF_CHANGE is
  unapplied (the configuration we would campaign in may be stale);
- PreVote first [thesis §9.6]: a pre-candidate asks for votes in term+1 without changing
  its term or vote, and only a won PreVote round starts a real election; a leadership
  transfer skips PreVote and tags its requests ``CAMPAIGN_TRANSFER`` so voters ignore
  their leader lease;
- vote only for a log at least as up to date as ours [§5.4.1], at most once per term; the
  vote is reported in the HardState of the same Ready as the VOTE_RESP, so it is durable
  before the reply leaves;
- a candidate that hears from a leader of its term becomes its follower [§5.2].
Imports only the stdlib and this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metadata.raft.config import NONE
from metadata.raft.follower import handle_leader_message
from metadata.raft.messages import EntryType, Message, MessageType
from metadata.raft.quorum import VoteResult
from metadata.raft.ready import StateType
from metadata.raft.replication import bcast_append

if TYPE_CHECKING:
    from metadata.raft.core import Raft

__all__ = [
    "CAMPAIGN_TRANSFER",
    "campaign",
    "handle_vote_request",
    "hup",
    "poll",
    "step_candidate",
    "tick_election",
]

CAMPAIGN_TRANSFER = b"CampaignTransfer"  # vote context of a leadership transfer's election

_MT = MessageType


def tick_election(r: Raft) -> None:
    """Follower/candidate tick: campaign once the randomized timeout elapsed."""
    r.election_elapsed += 1
    if r.promotable() and r.election_elapsed >= r.randomized_election_timeout:
        r.election_elapsed = 0
        hup(r, transfer=False)


def _has_unapplied_conf_changes(r: Raft) -> bool:
    lo, hi = r.log.applied + 1, r.log.committed + 1
    if lo >= hi:
        return False
    ents = r.log.slice(lo, hi, None) or []
    return any(e.type == EntryType.CONF_CHANGE for e in ents)


def hup(r: Raft, transfer: bool) -> None:
    """Start an election (PreVote first unless ``transfer`` or pre_vote is off)."""
    if r.state == StateType.LEADER or not r.promotable():
        return
    if _has_unapplied_conf_changes(r):
        return  # the configuration we would campaign in may be stale
    if r.cfg.pre_vote and not transfer:
        campaign(r, pre=True, transfer=False)
    else:
        campaign(r, pre=False, transfer=transfer)


def campaign(r: Raft, pre: bool, transfer: bool) -> None:
    """Become (pre-)candidate and ask every other voter for its vote."""
    if pre:
        r.become_pre_candidate()
        vote_type, term = _MT.PRE_VOTE, r.term + 1
    else:
        r.become_candidate()
        vote_type, term = _MT.VOTE, r.term
    if poll(r, r.id, True) == VoteResult.WON:
        # Single voter: won outright.
        if pre:
            campaign(r, pre=False, transfer=transfer)
        else:
            r.become_leader()
        return
    last, last_term = r.log.last_index(), r.log.last_term()
    ctx = CAMPAIGN_TRANSFER if transfer else b""
    for v in sorted(r.trk.voters):
        if v != r.id:
            r.send(Message(vote_type, v, r.id, term, last_term, last, context=ctx))


def poll(r: Raft, node_id: int, granted: bool) -> VoteResult:
    """Record ``node_id``'s answer (first one counts) and tally the round."""
    r.trk.record_vote(node_id, granted)
    return r.trk.tally_votes()


def handle_vote_request(r: Raft, m: Message) -> None:
    """Answer a VOTE or PRE_VOTE that passed the term check (any role)."""
    can_vote = (
        r.vote == m.from_
        or (r.vote == NONE and r.lead == NONE)
        or (m.type == _MT.PRE_VOTE and m.term > r.term)
    )
    resp = _MT.VOTE_RESP if m.type == _MT.VOTE else _MT.PRE_VOTE_RESP
    if can_vote and r.log.is_up_to_date(m.index, m.log_term):
        # Reply in the candidate's term so a PreVote grant is not mistaken for stale.
        r.send(Message(resp, m.from_, r.id, m.term))
        if m.type == _MT.VOTE:
            r.election_elapsed = 0
            r.vote = m.from_
    else:
        r.send(Message(resp, m.from_, r.id, r.term, reject=True))


def step_candidate(r: Raft, m: Message) -> None:
    """Candidate and pre-candidate role: count votes, yield to a leader of our term."""
    t = m.type
    my_resp = _MT.PRE_VOTE_RESP if r.state == StateType.PRE_CANDIDATE else _MT.VOTE_RESP
    if t in (_MT.APP, _MT.HEARTBEAT, _MT.SNAP):
        r.become_follower(m.term, m.from_)
        handle_leader_message(r, m)
    elif t == my_resp:
        res = poll(r, m.from_, not m.reject)
        if res == VoteResult.WON:
            if r.state == StateType.PRE_CANDIDATE:
                campaign(r, pre=False, transfer=False)
            else:
                r.become_leader()
                bcast_append(r, send_if_empty=True)
        elif res == VoteResult.LOST:
            r.become_follower(r.term, NONE)
