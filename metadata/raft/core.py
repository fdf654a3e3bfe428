"""The Raft consensus state machine (etcd's ``raft.go``): election, replication, commit.

Driven only through ``step`` (a message), ``tick`` (one logical time unit), ``propose*``,
``read_index``, ``transfer_leader`` and ``apply_conf_change``; it produces outgoing
messages in ``msgs`` and state changes in its ``RaftLog``, which ``RawNode`` packages into
a ``Ready``. No I/O, clock or global randomness: the election jitter comes from an
injected ``random.Random``.

Rules implemented (Raft paper sections in brackets):
- randomized election timeout in [election_ticks, 2*election_ticks) [§5.2]; PreVote and
  CheckQuorum [thesis §9.6]; a follower that heard from a leader within the election timeout
  ignores (Pre)Vote requests when check_quorum is on, unless the candidate was told to
  campaign by a leadership transfer;
- vote only for a log at least as up to date [§5.4.1]; a vote is reported in the HardState
  of the same Ready as the VOTE_RESP, so it is durable before the reply leaves;
- AppendEntries consistency check and truncation on term conflict only [§5.3], with
  etcd's reject hint (findConflictByTerm) for fast back-off;
- the leader appends an empty entry on election and commits by counting replicas only for
  entries of its current term [§5.4.2, Figure 8];
- persistence: the leader counts its OWN log toward commit only up to
  ``RaftLog.persisted_index`` (advanced by ``RawNode.advance``); followers' acks are sent
  after the Ready holding the entries was persisted (driver contract in ``ready.py``);
- snapshots are streamed in chunks of ``max_snapshot_chunk_bytes`` with a window of
  ``max_snapshot_inflight_chunks`` [§7];
- membership: single-server changes (add/remove voter, add/promote/demote learner) that
  take effect when APPLIED, one pending at a time [thesis §4.1];
- leadership transfer with TIMEOUT_NOW, aborted after an election timeout [thesis §3.10];
- ReadIndex reads with a heartbeat quorum round after the read arrived, deferred until
  the leader committed an entry of its term; lease reads only if opted in [thesis §6.4].
Imports only the stdlib and this package (plus the storage protocol it reads).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

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
from metadata.raft.progress import Progress, ProgressState, ProgressTracker
from metadata.raft.quorum import VoteResult
from metadata.raft.read_only import ReadOnly
from metadata.raft.ready import ReadState, StateType
from metadata.storage.base import LogStore

__all__ = ["NONE", "Config", "ProposalDropped", "Raft"]

NONE = 0  # "no node": node ids are positive
CAMPAIGN_TRANSFER = b"CampaignTransfer"

_MT = MessageType
_VOTE_TYPES = (_MT.VOTE, _MT.PRE_VOTE)


class ProposalDropped(Exception):
    """The proposal was not appended: not leader, transfer in progress, or conf pending."""

    def __init__(self, reason: str, leader: int = NONE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.leader = leader


@dataclass(frozen=True, slots=True)
class Config:
    """Static parameters of one Raft node."""

    id: int
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    voters: tuple[int, ...] = ()  # bootstrap membership, used only without a snapshot
    learners: tuple[int, ...] = ()
    applied: int = 0  # last index the state machine already holds (restart)
    # Membership as of ``applied`` (restart of a driver with a persistent state machine).
    # None: the latest snapshot's ConfState, else voters/learners above; the driver then
    # re-applies the CONF_CHANGE entries after that point as it re-applies the log.
    conf: ConfState | None = None
    max_size_per_msg_bytes: int = 1 << 20  # entry data per MsgApp (at least one entry)
    max_inflight_msgs: int = 256  # pipelined MsgApps per follower
    max_inflight_bytes: int = 0  # 0 = unlimited
    max_committed_bytes_per_ready: int = 0  # 0 = unlimited
    max_snapshot_chunk_bytes: int = 1 << 20
    max_snapshot_inflight_chunks: int = 4
    check_quorum: bool = True
    pre_vote: bool = True
    read_lease_based: bool = False  # opt-in lease reads; requires check_quorum
    step_down_on_removal: bool = True
    # Fresh storage + voters: write the initial membership as committed CONF_CHANGE entries
    # 1..n of term 1 (etcd's Bootstrap), so servers added later learn it from the log.
    # Off: the membership lives only in this Config (fine for fixed clusters and tests).
    log_bootstrap: bool = True

    def validate(self) -> None:
        if self.id <= NONE:
            raise ValueError("node id must be positive")
        if self.heartbeat_ticks <= 0 or self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("need 0 < heartbeat_ticks < election_ticks")
        if self.max_inflight_msgs <= 0 or self.max_snapshot_inflight_chunks <= 0:
            raise ValueError("in-flight limits must be positive")
        if self.max_snapshot_chunk_bytes <= 0:
            raise ValueError("max_snapshot_chunk_bytes must be positive")
        if self.read_lease_based and not self.check_quorum:
            raise ValueError("lease-based reads require check_quorum")


@dataclass(slots=True)
class _SnapBuffer:
    """A snapshot being received chunk by chunk (follower side)."""

    snapshot: Snapshot  # meta + first chunk (meta identifies the stream)
    parts: list[bytes]
    size: int


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
        self._snap_buf: _SnapBuffer | None = None

        snap = snapshots.load() if snapshots is not None else None
        if cfg.conf is not None:
            conf = cfg.conf
        elif snap is not None:
            conf = snap.meta.conf
        else:
            conf = ConfState(voters=cfg.voters, learners=cfg.learners)
        self._apply_conf_state(conf)
        hs = storage.hard_state()
        if hs != HardState():
            if not self.log.committed <= hs.commit <= self.log.last_index():
                raise RuntimeError(f"hard state commit {hs.commit} out of range")
            self.log.committed = hs.commit
            self.term, self.vote = hs.term, hs.vote
        elif cfg.log_bootstrap and snap is None and storage.last_index() == 0 and cfg.voters:
            self._bootstrap(conf)
        if cfg.applied > 0:
            # Applied entries were committed even if the commit-only HardState write that
            # said so was not synced before a crash.
            applied = min(cfg.applied, self.log.last_index())
            self.log.committed = max(self.log.committed, applied)
            self.log.applied_to(applied)
        self.become_follower(self.term, NONE)

    def _bootstrap(self, conf: ConfState) -> None:
        """A brand-new cluster member: log the initial membership (etcd's Bootstrap).

        Every initial member writes the same committed CONF_CHANGE entries at indexes
        1..n in term 1, so servers added later learn the full membership from the log
        (or from a snapshot's ConfState) instead of from their own configuration.
        """
        ents = [
            Entry(1, k + 1, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.ADD_NODE, v).encode())
            for k, v in enumerate(sorted(conf.voters))
        ]
        for v in sorted(conf.learners):
            cc = ConfChange(ConfChangeType.ADD_LEARNER_NODE, v)
            ents.append(Entry(1, len(ents) + 1, EntryType.CONF_CHANGE, cc.encode()))
        self.log.append(ents)
        self.log.committed = len(ents)
        self.term = 1

    # -- small accessors ----------------------------------------------------------------
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def conf_state(self) -> ConfState:
        return ConfState(
            voters=tuple(sorted(self.trk.voters)), learners=tuple(sorted(self.trk.learners))
        )

    def promotable(self) -> bool:
        return self.id in self.trk.voters

    def _send(self, m: Message) -> None:
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
        self._reset(term)
        self.lead = lead
        self.state = StateType.FOLLOWER

    def become_candidate(self) -> None:
        assert self.state != StateType.LEADER, "leader cannot become candidate"
        self._reset(self.term + 1)
        self.vote = self.id
        self.state = StateType.CANDIDATE

    def become_pre_candidate(self) -> None:
        assert self.state != StateType.LEADER, "leader cannot become pre-candidate"
        # Neither term nor vote changes: a PreVote round is not an election.
        self.trk.reset_votes()
        self.lead = NONE
        self.state = StateType.PRE_CANDIDATE

    def become_leader(self) -> None:
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

    # -- ticks ----------------------------------------------------------------------------
    def tick(self) -> None:
        if self.state == StateType.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.hup(transfer=False)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_ticks:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                self._check_quorum()
            if self.state == StateType.LEADER and self.lead_transferee != NONE:
                self.lead_transferee = NONE  # transfer timed out
        if self.state != StateType.LEADER:
            return
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat(self.read_only.last_pending_ctx())

    def _check_quorum(self) -> None:
        if not self.trk.quorum_active(self.id):
            self.become_follower(self.term, NONE)
        for i, pr in self.trk.progress.items():
            if i != self.id:
                pr.recent_active = False

    # -- elections ------------------------------------------------------------------------
    def _has_unapplied_conf_changes(self) -> bool:
        lo, hi = self.log.applied + 1, self.log.committed + 1
        if lo >= hi:
            return False
        ents = self.log.slice(lo, hi, None) or []
        return any(e.type == EntryType.CONF_CHANGE for e in ents)

    def hup(self, transfer: bool) -> None:
        """Start an election (PreVote first unless ``transfer`` or pre_vote is off)."""
        if self.state == StateType.LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_changes():
            return  # the configuration we would campaign in may be stale
        if self.cfg.pre_vote and not transfer:
            self._campaign(pre=True, transfer=False)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self.become_pre_candidate()
            vote_type, term = _MT.PRE_VOTE, self.term + 1
        else:
            self.become_candidate()
            vote_type, term = _MT.VOTE, self.term
        if self._poll(self.id, True) == VoteResult.WON:
            # Single voter: won outright.
            if pre:
                self._campaign(pre=False, transfer=transfer)
            else:
                self.become_leader()
            return
        last, last_term = self.log.last_index(), self.log.last_term()
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        for v in sorted(self.trk.voters):
            if v != self.id:
                self._send(Message(vote_type, v, self.id, term, last_term, last, context=ctx))

    def _poll(self, node_id: int, granted: bool) -> VoteResult:
        self.trk.record_vote(node_id, granted)
        return self.trk.tally_votes()

    # -- the message entry point ------------------------------------------------------------
    def step(self, m: Message) -> None:
        if m.term == 0:
            pass  # forwarded local request (TRANSFER_LEADER, READ_INDEX)
        elif m.term > self.term:
            if m.type in _VOTE_TYPES:
                force = m.context == CAMPAIGN_TRANSFER
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
                self._send(Message(_MT.APP_RESP, m.from_, self.id, self.term))
            elif m.type == _MT.PRE_VOTE:
                self._send(Message(_MT.PRE_VOTE_RESP, m.from_, self.id, self.term, reject=True))
            return

        if m.type in _VOTE_TYPES:
            self._handle_vote_request(m)
        elif self.state == StateType.LEADER:
            self._step_leader(m)
        elif self.state == StateType.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.from_
            or (self.vote == NONE and self.lead == NONE)
            or (m.type == _MT.PRE_VOTE and m.term > self.term)
        )
        resp = _MT.VOTE_RESP if m.type == _MT.VOTE else _MT.PRE_VOTE_RESP
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            # Reply in the candidate's term so a PreVote grant is not mistaken for stale.
            self._send(Message(resp, m.from_, self.id, m.term))
            if m.type == _MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.from_
        else:
            self._send(Message(resp, m.from_, self.id, self.term, reject=True))

    # -- leader ---------------------------------------------------------------------------
    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == _MT.READ_INDEX:
            self._leader_read_index(m)
            return
        if t == _MT.TRANSFER_LEADER:
            self._leader_transfer(m.from_)
            return
        pr = self.trk.progress.get(m.from_)
        if pr is None:
            return
        if t == _MT.APP_RESP:
            pr.recent_active = True
            self._handle_app_resp(m, pr)
        elif t == _MT.HEARTBEAT_RESP:
            pr.recent_active = True
            self._handle_heartbeat_resp(m, pr)
        elif t == _MT.SNAP_RESP:
            pr.recent_active = True
            self._handle_snap_resp(m, pr)

    def _handle_app_resp(self, m: Message, pr: Progress) -> None:
        if m.reject:
            hint = m.reject_hint
            if m.log_term > 0:
                hint, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, hint):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.from_, pr)
            return
        if not (
            pr.maybe_update(m.index) or (pr.match == m.index and pr.state == ProgressState.PROBE)
        ):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and (
            pr.match >= pr.pending_snapshot or pr.match + 1 >= self.log.first_index()
        ):
            pr.become_probe()
            if pr.match + 1 >= self.log.first_index():
                pr.become_replicate()
        elif pr.state == ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._on_commit_advanced()
        elif pr.can_bump_commit(self.log.committed):
            self._send_append(m.from_, pr)
        while self._maybe_send_append(m.from_, pr, send_if_empty=False):
            pass
        if m.from_ == self.lead_transferee and pr.match == self.log.last_index():
            self._send_timeout_now(m.from_)

    def _handle_heartbeat_resp(self, m: Message, pr: Progress) -> None:
        pr.msg_app_flow_paused = False
        if pr.state == ProgressState.SNAPSHOT:
            if pr.snap_acked == pr.snap_acked_at_beat:
                # No chunk acked since the last beat: go back N (lost chunk or final ack).
                pr.snap_sent = pr.snap_acked
                pr.snap_done_sent = False
                self._send_snapshot_chunks(m.from_, pr)
            pr.snap_acked_at_beat = pr.snap_acked
        else:
            if pr.state == ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first_one()  # unstick a pipeline whose acks were lost
            if pr.match < self.log.last_index() or pr.can_bump_commit(self.log.committed):
                self._send_append(m.from_, pr)
        if self.cfg.read_lease_based or not m.context:
            return
        acks = self.read_only.recv_ack(m.from_, m.context)
        if acks is None or self.trk.vote_result_of(acks) != VoteResult.WON:
            return
        for rs in self.read_only.advance(m.context):
            self._respond_read(rs.req, rs.index)

    def _handle_snap_resp(self, m: Message, pr: Progress) -> None:
        if pr.state != ProgressState.SNAPSHOT or pr.snap is None:
            return
        if m.index != pr.snap.meta.index:
            return
        if m.reject:
            pr.snap_sent = pr.snap_acked = min(m.reject_hint, len(pr.snap.data))
            pr.snap_done_sent = False
        else:
            pr.snap_acked = max(pr.snap_acked, min(m.reject_hint, pr.snap_sent))
        self._send_snapshot_chunks(m.from_, pr)

    def _maybe_commit(self) -> bool:
        return self.log.maybe_commit(self.trk.committed(), self.term)

    def _committed_entry_in_current_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def _on_commit_advanced(self) -> None:
        if self.pending_read_index and self._committed_entry_in_current_term():
            pending, self.pending_read_index = self.pending_read_index, []
            for req in pending:
                self._leader_read_index(req)
        self._bcast_append(send_if_empty=True)

    def on_persisted(self) -> None:
        """The driver persisted a Ready: the leader may now count its own log."""
        if self.state != StateType.LEADER:
            return
        pr = self.trk.progress.get(self.id)
        if pr is not None and pr.maybe_update(self.log.persisted_index()) and self._maybe_commit():
            self._on_commit_advanced()

    def _bcast_append(self, send_if_empty: bool) -> None:
        self.bcast_pending = False
        for i, pr in self.trk.progress.items():
            if i != self.id and self._maybe_send_append(i, pr, send_if_empty):
                # Pipeline: keep sending while the follower's window has room.
                while self._maybe_send_append(i, pr, send_if_empty=False):
                    pass

    def flush(self) -> None:
        """Send the appends that proposals made necessary (batched per Ready)."""
        if self.bcast_pending and self.state == StateType.LEADER:
            self._bcast_append(send_if_empty=False)
        self.bcast_pending = False

    def _bcast_heartbeat(self, ctx: bytes) -> None:
        committed = self.log.committed
        for i, pr in self.trk.progress.items():
            if i != self.id:
                self._send(
                    Message(
                        _MT.HEARTBEAT,
                        i,
                        self.id,
                        self.term,
                        commit=min(pr.match, committed),
                        context=ctx,
                    )
                )

    def _send_append(self, to: int, pr: Progress) -> None:
        self._maybe_send_append(to, pr, send_if_empty=True)

    def _maybe_send_append(self, to: int, pr: Progress, send_if_empty: bool) -> bool:
        if pr.is_paused():
            return False
        prev = pr.next - 1
        prev_term = self.log.term(prev)
        last = self.log.last_index()
        ents: list[Entry] | None = []
        if pr.next <= last:
            ents = self.log.slice(pr.next, last + 1, self.cfg.max_size_per_msg_bytes)
        if prev_term is None or ents is None:
            return self._send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        commit = self.log.committed
        self._send(Message(_MT.APP, to, self.id, self.term, prev_term, prev, tuple(ents), commit))
        pr.update_on_entries_send(len(ents), sum(len(e.data) for e in ents) if ents else 0, pr.next)
        pr.sent_commit = max(pr.sent_commit, min(commit, prev + len(ents)))
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False  # don't ship a snapshot to a node that may be down
        snap = self.log.snapshot()
        if snap is None:
            return False  # compacted but no snapshot available yet: retry later
        pr.become_snapshot(snap)
        self._send_snapshot_chunks(to, pr)
        return True

    def _send_snapshot_chunks(self, to: int, pr: Progress) -> None:
        snap = pr.snap
        if snap is None:
            return
        data = snap.data
        chunk = self.cfg.max_snapshot_chunk_bytes
        window = chunk * self.cfg.max_snapshot_inflight_chunks
        total = len(data)
        while not pr.snap_done_sent and pr.snap_sent - pr.snap_acked < window:
            off = pr.snap_sent
            end = min(off + chunk, total)
            part = Snapshot(snap.meta, bytes(data[off:end]))
            self._send(
                Message(
                    _MT.SNAP,
                    to,
                    self.id,
                    self.term,
                    snap.meta.term,
                    snap.meta.index,
                    snapshot=part,
                    offset=off,
                    done=end >= total,
                )
            )
            pr.snap_sent = end
            pr.snap_done_sent = end >= total

    def _send_timeout_now(self, to: int) -> None:
        self._send(Message(_MT.TIMEOUT_NOW, to, self.id, self.term))

    def _leader_transfer(self, transferee: int) -> None:
        pr = self.trk.progress.get(transferee)
        if pr is None or pr.is_learner or transferee == self.id:
            return
        if self.lead_transferee == transferee:
            return
        self.lead_transferee = transferee
        self.election_elapsed = 0  # the transfer must finish within an election timeout
        if pr.match == self.log.last_index():
            self._send_timeout_now(transferee)
        else:
            self._send_append(transferee, pr)

    # -- reads ------------------------------------------------------------------------------
    def _leader_read_index(self, m: Message) -> None:
        if self.trk.is_singleton():
            self._respond_read(m, self.log.committed)
            return
        if not self._committed_entry_in_current_term():
            # Our commit index may be stale until we commit in our term (thesis §6.4 step 1).
            self.pending_read_index.append(m)
            return
        if self.cfg.read_lease_based:
            self._respond_read(m, self.log.committed)
            return
        if self.read_only.add_request(self.log.committed, m):
            self.read_only.recv_ack(self.id, m.context)
            self._bcast_heartbeat(m.context)

    def _respond_read(self, req: Message, index: int) -> None:
        if req.from_ in (NONE, self.id):
            self.read_states.append(ReadState(index, req.context))
        else:
            self._send(
                Message(
                    _MT.READ_INDEX_RESP,
                    req.from_,
                    self.id,
                    self.term,
                    index=index,
                    context=req.context,
                )
            )

    # -- follower and candidates -----------------------------------------------------------
    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t in (_MT.APP, _MT.HEARTBEAT, _MT.SNAP):
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_leader_message(m)
        elif t == _MT.TIMEOUT_NOW:
            self.hup(transfer=True)
        elif t in (_MT.TRANSFER_LEADER, _MT.READ_INDEX):
            if self.lead != NONE:
                self._send(Message(t, self.lead, m.from_, 0, context=m.context))
        elif t == _MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = _MT.PRE_VOTE_RESP if self.state == StateType.PRE_CANDIDATE else _MT.VOTE_RESP
        if t in (_MT.APP, _MT.HEARTBEAT, _MT.SNAP):
            self.become_follower(m.term, m.from_)
            self._handle_leader_message(m)
        elif t == my_resp:
            res = self._poll(m.from_, not m.reject)
            if res == VoteResult.WON:
                if self.state == StateType.PRE_CANDIDATE:
                    self._campaign(pre=False, transfer=False)
                else:
                    self.become_leader()
                    self._bcast_append(send_if_empty=True)
            elif res == VoteResult.LOST:
                self.become_follower(self.term, NONE)

    def _handle_leader_message(self, m: Message) -> None:
        if m.type == _MT.APP:
            self._handle_append(m)
        elif m.type == _MT.HEARTBEAT:
            self.log.commit_to(m.commit)
            self._send(Message(_MT.HEARTBEAT_RESP, m.from_, self.id, self.term, context=m.context))
        else:
            self._handle_snapshot_chunk(m)

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(Message(_MT.APP_RESP, m.from_, self.id, self.term, index=self.log.committed))
            return
        last = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last is not None:
            self._send(Message(_MT.APP_RESP, m.from_, self.id, self.term, index=last))
            return
        hint_index = min(m.index, self.log.last_index())
        hint_index, hint_term = self.log.find_conflict_by_term(hint_index, m.log_term)
        self._send(
            Message(
                _MT.APP_RESP,
                m.from_,
                self.id,
                self.term,
                hint_term,
                m.index,
                reject=True,
                reject_hint=hint_index,
            )
        )

    def _handle_snapshot_chunk(self, m: Message) -> None:
        part = m.snapshot
        if part is None:
            return
        meta = part.meta
        buf = self._snap_buf
        if m.offset == 0:
            if meta.index <= self.log.committed:
                # Already have it all: skip the transfer.
                self._snap_buf = None
                self._send(
                    Message(_MT.APP_RESP, m.from_, self.id, self.term, index=self.log.committed)
                )
                return
            buf = self._snap_buf = _SnapBuffer(part, [part.data], len(part.data))
        elif buf is None or buf.snapshot.meta != meta or m.offset != buf.size:
            same = buf is not None and buf.snapshot.meta == meta
            have = buf.size if buf is not None and same else 0
            # Duplicate of something we have: ack; otherwise ask to restart at ``have``.
            dup = same and m.offset < have
            self._send(
                Message(
                    _MT.SNAP_RESP,
                    m.from_,
                    self.id,
                    self.term,
                    index=meta.index,
                    reject=not dup,
                    reject_hint=have,
                )
            )
            return
        else:
            buf.parts.append(part.data)
            buf.size += len(part.data)
        if not m.done:
            self._send(
                Message(
                    _MT.SNAP_RESP,
                    m.from_,
                    self.id,
                    self.term,
                    index=meta.index,
                    reject_hint=buf.size,
                )
            )
            return
        self._snap_buf = None
        full = Snapshot(meta, b"".join(buf.parts))
        if self.restore(full):
            self._send(
                Message(_MT.APP_RESP, m.from_, self.id, self.term, index=self.log.last_index())
            )
        else:
            self._send(Message(_MT.APP_RESP, m.from_, self.id, self.term, index=self.log.committed))

    def restore(self, snap: Snapshot) -> bool:
        """Install a leader's snapshot (follower). False if it is stale or redundant."""
        meta = snap.meta
        if meta.index <= self.log.committed:
            return False
        conf = meta.conf
        # Unlike etcd we accept a snapshot whose configuration does not list us yet: a
        # server added after the leader's last snapshot gets that snapshot and then learns
        # of its own addition from the log (etcd servers build a fresh snapshot instead).
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)  # fast-forward: our log already matches
            return False
        self.log.restore(snap)
        self.trk.progress.clear()
        self._apply_conf_state(conf)
        return True

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

    # -- membership -----------------------------------------------------------------------
    def _apply_conf_state(self, conf: ConfState) -> None:
        if conf.voters_outgoing:
            raise NotImplementedError("joint consensus is not supported")
        self.trk.voters = set(conf.voters)
        self.trk.learners = set(conf.learners)
        last = self.log.last_index()
        for i in (*conf.voters, *conf.learners):
            pr = self.trk.progress.get(i)
            if pr is None:
                pr = self.trk.progress[i] = self.trk.new_progress(last + 1, i in self.trk.learners)
            pr.is_learner = i in self.trk.learners
        for i in list(self.trk.progress):
            if i not in self.trk.voters and i not in self.trk.learners:
                del self.trk.progress[i]

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """The driver applied a CONF_CHANGE entry: the new membership takes effect now."""
        voters, learners = set(self.trk.voters), set(self.trk.learners)
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
        if not voters and self.trk.voters:
            raise ValueError("conf change would remove every voter")
        self._apply_conf_state(
            ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))
        )
        if self.state == StateType.LEADER:
            if self.id not in voters:
                if self.cfg.step_down_on_removal:
                    self.become_follower(self.term, NONE)
                return self.conf_state()
            if self.lead_transferee != NONE and self.lead_transferee not in voters:
                self.lead_transferee = NONE
            if self._maybe_commit():
                self._on_commit_advanced()
            else:
                self._bcast_append(send_if_empty=True)
        return self.conf_state()

    # -- driver-facing requests -----------------------------------------------------------
    def read_index(self, ctx: bytes) -> None:
        req = Message(_MT.READ_INDEX, self.id, NONE, 0, context=ctx)
        if self.state == StateType.LEADER:
            self._leader_read_index(req)
        elif self.state == StateType.FOLLOWER and self.lead != NONE:
            self._send(Message(_MT.READ_INDEX, self.lead, self.id, 0, context=ctx))
        # otherwise dropped: no known leader; the caller retries

    def transfer_leader(self, target: int) -> None:
        if self.state == StateType.LEADER:
            self._leader_transfer(target)
        elif self.lead != NONE:
            self._send(Message(_MT.TRANSFER_LEADER, self.lead, target, 0))

    def report_unreachable(self, node_id: int) -> None:
        if self.state != StateType.LEADER:
            return
        pr = self.trk.progress.get(node_id)
        if pr is not None and pr.state == ProgressState.REPLICATE:
            pr.become_probe()
