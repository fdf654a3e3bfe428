"""The leader's view of each follower: match/next, flow control and the snapshot stream.

Mirrors etcd's ``tracker`` package. A ``Progress`` is in one of three states:
- PROBE: next is a guess; at most one MsgApp in flight (``msg_app_flow_paused`` after a send)
  until the follower answers (Raft §5.3 back-off, accelerated by reject hints);
- REPLICATE: next is optimistic; MsgApps are pipelined, bounded by ``Inflights`` (count and
  bytes), freed by acks;
- SNAPSHOT: the follower needs a snapshot; the chunk stream is tracked by
  ``snap_sent``/``snap_acked`` (bytes) with at most ``snap_window`` chunks unacknowledged.
Invariants: ``match < next``; in REPLICATE ``inflights`` holds strictly increasing last
indexes of unacknowledged MsgApps. ``ProgressTracker`` also holds the membership in force
(``apply_conf``, etcd's ``confchange.Restore``) and tallies votes and acks through
``quorum``. Imports only the stdlib, ``messages`` and ``quorum``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from enum import IntEnum

from metadata.raft.messages import ConfState, Snapshot
from metadata.raft.quorum import VoteResult, committed_index, vote_result

__all__ = ["Inflights", "Progress", "ProgressState", "ProgressTracker"]


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """A bounded FIFO of (last index, bytes) of MsgApps not yet acknowledged."""

    __slots__ = ("_bytes", "_q", "max_bytes", "max_count")

    def __init__(self, max_count: int, max_bytes: int = 0) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes  # 0 = unlimited
        self._q: deque[tuple[int, int]] = deque()
        self._bytes = 0

    def add(self, index: int, size: int) -> None:
        self._q.append((index, size))
        self._bytes += size

    def free_le(self, index: int) -> None:
        """Forget every message whose last index is <= ``index`` (acknowledged)."""
        q = self._q
        while q and q[0][0] <= index:
            self._bytes -= q.popleft()[1]

    def free_first_one(self) -> None:
        if self._q:
            self._bytes -= self._q.popleft()[1]

    def full(self) -> bool:
        return len(self._q) >= self.max_count or (
            self.max_bytes > 0 and self._bytes >= self.max_bytes
        )

    def count(self) -> int:
        return len(self._q)

    def reset(self) -> None:
        self._q.clear()
        self._bytes = 0


class Progress:
    """Replication state of one peer, as seen by the leader."""

    __slots__ = (
        "inflights",
        "is_learner",
        "match",
        "msg_app_flow_paused",
        "next",
        "pending_snapshot",
        "recent_active",
        "sent_commit",
        "snap",
        "snap_acked",
        "snap_acked_at_beat",
        "snap_done_sent",
        "snap_sent",
        "state",
    )

    def __init__(self, next_index: int, inflights: Inflights, is_learner: bool) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.msg_app_flow_paused = False
        self.inflights = inflights
        self.is_learner = is_learner
        self.recent_active = False
        self.pending_snapshot = 0
        self.sent_commit = 0
        self.snap: Snapshot | None = None
        self.snap_sent = 0
        self.snap_acked = 0
        self.snap_acked_at_beat = -1
        self.snap_done_sent = False

    def _reset_state(self, state: ProgressState) -> None:
        self.msg_app_flow_paused = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()
        self.snap = None
        self.snap_sent = self.snap_acked = 0
        self.snap_acked_at_beat = -1
        self.snap_done_sent = False

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1
        self.sent_commit = min(self.sent_commit, self.next - 1)

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot: Snapshot) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot.meta.index
        self.snap = snapshot

    def update_on_entries_send(self, n_entries: int, size: int, next_index: int) -> None:
        """Account a MsgApp carrying ``n_entries`` starting at ``next_index``."""
        if self.state == ProgressState.REPLICATE:
            if n_entries > 0:
                last = next_index + n_entries - 1
                self.next = last + 1
                self.inflights.add(last, size)
        else:  # PROBE: one probe at a time
            self.msg_app_flow_paused = True

    def maybe_update(self, n: int) -> bool:
        """An ack for ``n`` arrived; False if it is stale."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.msg_app_flow_paused = False
        self.next = max(self.next, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A MsgApp at ``rejected`` was refused; back ``next`` off. False if stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.msg_app_flow_paused = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.msg_app_flow_paused
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def can_bump_commit(self, commit: int) -> bool:
        """Whether an (empty) MsgApp would move the follower's known commit index."""
        return commit > self.sent_commit and self.sent_commit < self.next - 1

    def __repr__(self) -> str:
        return (
            f"Progress(state={self.state.name}, match={self.match}, next={self.next}, "
            f"inflight={self.inflights.count()}, pending_snap={self.pending_snapshot})"
        )


class ProgressTracker:
    """All peers' progress plus the membership (voters, learners) and the vote tally."""

    def __init__(self, max_inflight_msgs: int, max_inflight_bytes: int) -> None:
        self.max_inflight_msgs = max_inflight_msgs
        self.max_inflight_bytes = max_inflight_bytes
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self._match: dict[int, int] = {}

    def new_progress(self, next_index: int, is_learner: bool) -> Progress:
        return Progress(
            next_index, Inflights(self.max_inflight_msgs, self.max_inflight_bytes), is_learner
        )

    def apply_conf(self, conf: ConfState, next_index: int) -> None:
        """Make ``conf`` the membership: new peers start probing at ``next_index``.

        Peers that stay keep their progress (only their learner flag follows ``conf``);
        peers that left are forgotten. Joint configurations are rejected.
        """
        if conf.voters_outgoing:
            raise NotImplementedError("joint consensus is not supported")
        self.voters = set(conf.voters)
        self.learners = set(conf.learners)
        for i in (*conf.voters, *conf.learners):
            pr = self.progress.get(i)
            if pr is None:
                pr = self.progress[i] = self.new_progress(next_index, i in self.learners)
            pr.is_learner = i in self.learners
        for i in list(self.progress):
            if i not in self.voters and i not in self.learners:
                del self.progress[i]

    def ids(self) -> list[int]:
        return sorted(self.progress)

    def items(self) -> Iterator[tuple[int, Progress]]:
        return iter(sorted(self.progress.items()))

    def is_singleton(self) -> bool:
        return len(self.voters) == 1

    def committed(self) -> int:
        match = self._match
        match.clear()
        for v in self.voters:
            pr = self.progress.get(v)
            match[v] = pr.match if pr is not None else 0
        return committed_index(self.voters, match)

    def record_vote(self, node_id: int, granted: bool) -> None:
        self.votes.setdefault(node_id, granted)

    def reset_votes(self) -> None:
        self.votes = {}

    def tally_votes(self) -> VoteResult:
        return vote_result(self.voters, self.votes)

    def vote_result_of(self, acks: Iterable[int]) -> VoteResult:
        return vote_result(self.voters, dict.fromkeys(acks, True))

    def quorum_active(self, self_id: int) -> bool:
        active = {i: True for i, pr in self.progress.items() if pr.recent_active or i == self_id}
        return vote_result(self.voters, active) == VoteResult.WON
