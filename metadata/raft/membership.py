"""Membership: the bootstrap configuration and applying single-server conf changes.

Free functions over ``Raft`` (etcd's ``Bootstrap`` and ``applyConfChange``) [thesis §4.1]:
- one server at a time: add a voter, remove a node, add a learner, promote a learner
  (ADD_NODE) or demote a voter (ADD_LEARNER_NODE); no joint consensus;
- a change takes effect when the driver APPLIES its CONF_CHANGE entry, not when it is
  appended; the leader proposes at most one unapplied change (``Raft.propose_conf_change``)
  and a node does not campaign while a committed change is unapplied (``election``);
- a leader that removed itself steps down (``step_down_on_removal``); otherwise the new
  quorum may commit at once, so the leader re-counts and tells peers;
- a new cluster logs its initial membership as committed CONF_CHANGE entries 1..n of term
  1 on every initial member, so servers added later learn it from the log.
The tracker side (``ProgressTracker.apply_conf``) is shared with snapshot restore.
Imports only the stdlib and this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metadata.raft.config import NONE
from metadata.raft.leader import maybe_commit, on_commit_advanced
from metadata.raft.messages import ConfChange, ConfChangeType, ConfState, Entry, EntryType
from metadata.raft.ready import StateType
from metadata.raft.replication import bcast_append

if TYPE_CHECKING:
    from metadata.raft.core import Raft

__all__ = ["apply_conf_change", "bootstrap_entries"]


def bootstrap_entries(conf: ConfState) -> list[Entry]:
    """The initial membership as CONF_CHANGE entries 1..n of term 1 (voters, then learners).

    Every initial member writes the same committed entries, so servers added later learn
    the full membership from the log (or from a snapshot's ConfState) instead of from
    their own configuration.
    """
    ents = [
        Entry(1, k + 1, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.ADD_NODE, v).encode())
        for k, v in enumerate(sorted(conf.voters))
    ]
    for v in sorted(conf.learners):
        cc = ConfChange(ConfChangeType.ADD_LEARNER_NODE, v)
        ents.append(Entry(1, len(ents) + 1, EntryType.CONF_CHANGE, cc.encode()))
    return ents


def apply_conf_change(r: Raft, cc: ConfChange) -> ConfState:
    """The driver applied a CONF_CHANGE entry: the new membership takes effect now."""
    voters, learners = set(r.trk.voters), set(r.trk.learners)
    n = cc.node_id
    if cc.type == ConfChangeType.ADD_NODE:
        learners.discard(n)
        voters.add(n)
    elif cc.type == ConfChangeType.ADD_LEARNER_NODE:
        voters.discard(n)
        learners.add(n)
    else:
        voters.discard(n)
        learners.discard(n)
    if not voters and r.trk.voters:
        raise ValueError("conf change would remove every voter")
    r.trk.apply_conf(
        ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners))),
        r.log.last_index() + 1,
    )
    if r.state == StateType.LEADER:
        if r.id not in voters:
            if r.cfg.step_down_on_removal:
                r.become_follower(r.term, NONE)
            return r.conf_state()
        if r.lead_transferee != NONE and r.lead_transferee not in voters:
            r.lead_transferee = NONE
        if maybe_commit(r):
            on_commit_advanced(r)
        else:
            bcast_append(r, send_if_empty=True)
    return r.conf_state()
