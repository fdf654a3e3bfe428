"""The Raft consensus state machine (etcd's ``raft.go``): one node's state and its inputs.

Driven only through ``step`` (a message), ``tick`` (one logical time unit), ``propose*``,
``read_index``, ``transfer_leader`` and ``apply_conf_change``; it produces outgoing
messages in ``msgs`` and state changes in its ``RaftLog``, which ``RawNode`` packages into
a ``Ready``. No I/O, clock or global randomness: the election jitter comes from an
injected ``random.Random``.

This module owns the node's state (``Raft``), its construction and restart, the role
transitions (``become_*``), the term check every message passes first (``step``) and the
proposal path. The rules live in one module each, as free functions over ``Raft`` (etcd's
``stepFunc`` seam; Raft paper sections in brackets there):

- ``election``: randomized timeouts, PreVote, campaigns, votes, the candidate role;
- ``leader``: the leader role: acks, commit, CheckQuorum, heartbeats, leadership transfer;
- ``follower``: the follower role: AppendEntries and heartbeats from the leader;
- ``replication``: what the leader sends: pipelined, batched MsgApps and heartbeats;
- ``snapshot``: the chunked InstallSnapshot stream, both ends, and restoring from it;
- ``membership``: bootstrap membership and applying single-server conf changes;
- ``read_only``: ReadIndex (and opt-in lease) reads.

Invariants kept here: a (pre)vote request from a newer term is ignored while a live
leader's lease holds (CheckQuorum) unless it comes from a leadership transfer; a message
from an older term is dropped, answered only so a stale leader or pre-candidate learns
the current term [thesis §9.6]; a PreVote never changes the term. One proposal path
appends entries in the leader's term and flags a batched broadcast (``flush``); at most
one conf change is pending (unapplied) at a time [thesis §4.1].
``Config`` and ``NONE`` live in ``config`` and are re-exported here (callers import them
from ``metadata.raft.core``). Imports only the stdlib and this package (plus the storage
protocol it reads).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from metadata.raft import election, follower, leader, membership, replication, snapshot
from metadata.raft.config import NONE, Config
from metadata.raft.log import RaftLog, SnapshotSource
from metadata.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
)
from metadata.raft.progress import ProgressState, ProgressTracker
from metadata.raft.read_only import ReadOnly, leader_read_index
from metadata.raft.ready import ReadState, StateType
from metadata.storage.base import LogStore

__all__ = ["NONE", "Config", "ProposalDropped", "Raft"]

_MT = MessageType
_VOTE_TYPES = (_MT.VOTE, _MT.PRE_VOTE)


class ProposalDropped(Exception):
    """The proposal was not appended: not leader, transfer in progress, or conf pending."""

    def __init__(self, reason: str, leader: int = NONE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.leader = leader


class Raft:
    """One node's Raft state machine. Use through ``RawNode``."""

    def __init__(
        self,
        cfg: Config,
        storage: LogStore,
        snapshots: SnapshotSource | None,
        rng: random.Random,
    ) -> None:
        cfg.validate()
        self.cfg = cfg
        self.id = cfg.id
        self.rng = rng
        self.log = RaftLog(storage, snapshots, cfg.max_committed_bytes_per_ready)
        self.trk = ProgressTracker(cfg.max_inflight_msgs, cfg.max_inflight_bytes)
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.state = StateType.FOLLOWER
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = cfg.election_ticks
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.pending_read_index: list[Message] = []
        self.bcast_pending = False
        self.snap_buf: snapshot.SnapBuffer | None = None

        snap = snapshots.load() if snapshots is not None else None
        if cfg.conf is not None:
            conf = cfg.conf
        elif snap is not None:
            conf = snap.meta.conf
        else:
            conf = ConfState(voters=cfg.voters, learners=cfg.learners)
        self.trk.apply_conf(conf, self.log.last_index() + 1)
        hs = storage.hard_state()
        if hs != HardState():
            if not self.log.committed <= hs.commit <= self.log.last_index():
                raise RuntimeError(f"hard state commit {hs.commit} out of range")
            self.log.committed = hs.commit
            self.term, self.vote = hs.term, hs.vote
        elif cfg.log_bootstrap and snap is None and storage.last_index() == 0 and cfg.voters:
            ents = membership.bootstrap_entries(conf)
            self.log.append(ents)
            self.log.committed = len(ents)
            self.term = 1
        if cfg.applied > 0:
            # Applied entries were committed even if the commit-only HardState write that
            # said so was not synced before a crash.
            applied = min(cfg.applied, self.log.last_index())
            self.log.committed = max(self.log.committed, applied)
            self.log.applied_to(applied)
        self.become_follower(self.term, NONE)

    # -- small accessors ----------------------------------------------------------------
    def hard_state(self) -> HardState:
        """Term, vote and commit index: what must be durable."""
        return HardState(self.term, self.vote, self.log.committed)

    def conf_state(self) -> ConfState:
        """The membership in force."""
        return ConfState(
            voters=tuple(sorted(self.trk.voters)), learners=tuple(sorted(self.trk.learners))
        )

    def promotable(self) -> bool:
        """Whether this node is a voter (only voters campaign)."""
        return self.id in self.trk.voters

    def send(self, m: Message) -> None:
        """Queue ``m`` for the next Ready."""
        self.msgs.append(m)

    # -- state transitions --------------------------------------------------------------
    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.cfg.election_ticks + self.rng.randrange(
            self.cfg.election_ticks
        )
        self.lead_transferee = NONE
        self.trk.reset_votes()
        last = self.log.last_index()
        for i, old in list(self.trk.progress.items()):
            pr = self.trk.new_progress(last + 1, old.is_learner)
            if i == self.id:
                pr.match = self.log.persisted_index()
            self.trk.progress[i] = pr
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.pending_read_index = []
        self.bcast_pending = False

    def become_follower(self, term: int, lead: int) -> None:
        """Follow ``lead`` (NONE: unknown) in ``term``."""
        self._reset(term)
        self.lead = lead
        self.state = StateType.FOLLOWER

    def become_candidate(self) -> None:
        """Start a real election: next term, vote for ourselves."""
        assert self.state != StateType.LEADER, "leader cannot become candidate"
        self._reset(self.term + 1)
        self.vote = self.id
        self.state = StateType.CANDIDATE

    def become_pre_candidate(self) -> None:
        """Start a PreVote round (term and vote unchanged)."""
        assert self.state != StateType.LEADER, "leader cannot become pre-candidate"
        # Neither term nor vote changes: a PreVote round is not an election.
        self.trk.reset_votes()
        self.lead = NONE
        self.state = StateType.PRE_CANDIDATE

    def become_leader(self) -> None:
        """Lead this term: replicate from our last index, append the term's no-op entry."""
        assert self.state != StateType.FOLLOWER, "follower cannot become leader"
        self._reset(self.term)
        self.lead = self.id
        self.state = StateType.LEADER
        pr = self.trk.progress.get(self.id)
        if pr is not None:
            pr.become_replicate()
            pr.match = self.log.persisted_index()
            pr.recent_active = True
        # Conservatively forbid conf changes until everything before this term is applied.
        self.pending_conf_index = self.log.last_index()
        self._append_entry([Entry(0, 0)])

    # -- inputs ---------------------------------------------------------------------------
    def tick(self) -> None:
        """One logical time unit: heartbeat (leader) or election timer (others)."""
        if self.state == StateType.LEADER:
            leader.tick_heartbeat(self)
        else:
            election.tick_election(self)

    def hup(self, transfer: bool) -> None:
        """Start an election (PreVote first unless ``transfer`` or pre_vote is off)."""
        election.hup(self, transfer)

    def step(self, m: Message) -> None:
        """Process one message: check its term, then hand it to the current role."""
        if m.term == 0:
            pass  # forwarded local request (TRANSFER_LEADER, READ_INDEX)
        elif m.term > self.term:
            if m.type in _VOTE_TYPES:
                force = m.context == election.CAMPAIGN_TRANSFER
                in_lease = (
                    self.cfg.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.cfg.election_ticks
                )
                if in_lease and not force:
                    return  # we heard from a live leader recently: do not disrupt it
            if m.type == _MT.PRE_VOTE or (m.type == _MT.PRE_VOTE_RESP and not m.reject):
                pass  # a PreVote never changes our term
            elif m.type in (_MT.APP, _MT.HEARTBEAT, _MT.SNAP):
                self.become_follower(m.term, m.from_)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (
                _MT.HEARTBEAT,
                _MT.APP,
            ):
                # A stale leader (e.g. back from a partition): tell it our term so it steps
                # down, instead of letting it disrupt us with elections.
                self.send(Message(_MT.APP_RESP, m.from_, self.id, self.term))
            elif m.type == _MT.PRE_VOTE:
                self.send(Message(_MT.PRE_VOTE_RESP, m.from_, self.id, self.term, reject=True))
            return

        if m.type in _VOTE_TYPES:
            election.handle_vote_request(self, m)
        elif self.state == StateType.LEADER:
            leader.step_leader(self, m)
        elif self.state == StateType.FOLLOWER:
            follower.step_follower(self, m)
        else:
            election.step_candidate(self, m)

    def restore(self, snap: Snapshot) -> bool:
        """Install a leader's snapshot (follower). False if it is stale or redundant."""
        return snapshot.restore(self, snap)

    def on_persisted(self) -> None:
        """The driver persisted a Ready: the leader may now count its own log."""
        leader.on_persisted(self)

    def flush(self) -> None:
        """Send the appends that proposals made necessary (batched per Ready)."""
        replication.flush(self)

    # -- proposals ----------------------------------------------------------------------------
    def _append_entry(self, ents: Sequence[Entry]) -> int:
        li = self.log.last_index()
        out = [Entry(self.term, li + 1 + n, e.type, e.data) for n, e in enumerate(ents)]
        self.log.append(out)
        self.bcast_pending = True
        return li + len(out)

    def _check_can_propose(self) -> None:
        if self.state != StateType.LEADER:
            raise ProposalDropped("not leader", self.lead)
        if self.id not in self.trk.progress:
            raise ProposalDropped("leader was removed from the configuration")
        if self.lead_transferee != NONE:
            raise ProposalDropped("leadership transfer in progress", self.lead_transferee)

    def propose(self, datas: Sequence[bytes]) -> int:
        """Append normal entries; returns the index of the last one."""
        self._check_can_propose()
        return self._append_entry([Entry(0, 0, EntryType.NORMAL, d) for d in datas])

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Append a membership change; returns its index. One may be pending at a time."""
        self._check_can_propose()
        if self.pending_conf_index > self.log.applied:
            raise ProposalDropped("a configuration change is still pending", self.lead)
        voters, learners = self.trk.voters, self.trk.learners
        if cc.type == ConfChangeType.REMOVE_NODE and cc.node_id in voters and len(voters) == 1:
            raise ProposalDropped("cannot remove the last voter", self.lead)
        if cc.type == ConfChangeType.ADD_NODE and cc.node_id in voters:
            raise ProposalDropped("already a voter", self.lead)
        if cc.type == ConfChangeType.ADD_LEARNER_NODE and cc.node_id in learners:
            raise ProposalDropped("already a learner", self.lead)
        idx = self._append_entry([Entry(0, 0, EntryType.CONF_CHANGE, cc.encode())])
        self.pending_conf_index = idx
        return idx

    # -- driver-facing requests -----------------------------------------------------------
    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """The driver applied a CONF_CHANGE entry: the new membership takes effect now."""
        return membership.apply_conf_change(self, cc)

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read; a ReadState with ``ctx`` appears later."""
        req = Message(_MT.READ_INDEX, self.id, NONE, 0, context=ctx)
        if self.state == StateType.LEADER:
            leader_read_index(self, req)
        elif self.state == StateType.FOLLOWER and self.lead != NONE:
            self.send(Message(_MT.READ_INDEX, self.lead, self.id, 0, context=ctx))
        # otherwise dropped: no known leader; the caller retries

    def transfer_leader(self, target: int) -> None:
        """Hand leadership to ``target`` (forwarded to the leader if we are not it)."""
        if self.state == StateType.LEADER:
            leader.leader_transfer(self, target)
        elif self.lead != NONE:
            self.send(Message(_MT.TRANSFER_LEADER, self.lead, target, 0))

    def report_unreachable(self, node_id: int) -> None:
        """The transport failed to reach ``node_id``: stop pipelining to it."""
        if self.state != StateType.LEADER:
            return
        pr = self.trk.progress.get(node_id)
        if pr is not None and pr.state == ProgressState.REPLICATE:
            pr.become_probe()
