"""Deterministic whole-cluster Raft simulation: nodes, a lossy network and invariant checks.

Synchronous, no asyncio, no wall clock. One *round* = deliver every message due now,
drain every node's Ready (persist -> send -> apply -> advance, exactly the order the real
node driver uses), then ``tick()`` every live node. All randomness (network faults, crash
points, each node's election jitter) comes from one seeded ``random.Random``, so a seed
replays a run exactly.

Invariants checked after every round (``check_invariants``):
- election safety: at most one leader per term, ever;
- state machine safety: no two nodes apply different entries at one index (checked on
  every apply and snapshot restore against a global record);
- leader completeness: a new leader's log holds every entry applied anywhere;
- entry uniqueness: one (index, term) names one entry everywhere (checked on persist);
- commit monotonicity per node incarnation;
- log matching: full pairwise check every ``log_match_every`` rounds and in ``final_check``;
- acknowledged writes (committed on a quorum and reported by ``one``) are never lost
  (``final_check``, also after whole-cluster restarts).
"""

from __future__ import annotations

import heapq
import os
import random
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Self

from metadata.raft.core import Config, ProposalDropped
from metadata.raft.messages import (
    ConfChange,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
)
from metadata.raft.rawnode import RawNode
from metadata.raft.ready import ReadState, StateType
from metadata.storage.memory import MemoryLogStore, MemorySnapshotStore

__all__ = [
    "Cluster",
    "InvariantViolation",
    "StateMachine",
    "fast_seeds",
    "replayable",
    "slow_seeds",
]


def _env_seed() -> list[int] | None:
    v = os.environ.get("BLOBSTORE_SEED")
    return [int(v)] if v else None


def fast_seeds(n: int = 3) -> list[int]:
    """Default seeds (BLOBSTORE_SEED=N replaces them with N)."""
    return _env_seed() or list(range(1, n + 1))


def slow_seeds(n: int = 30) -> list[int]:
    return _env_seed() or list(range(1000, 1000 + n))


class InvariantViolation(AssertionError):
    pass


@contextmanager
def replayable(seed: int) -> Iterator[None]:
    """Annotate any failure inside with the seed that replays it."""
    try:
        yield
    except BaseException as e:
        e.add_note(f"replay with: BLOBSTORE_SEED={seed}")
        print(f"\n*** sim failed with seed {seed} (replay: BLOBSTORE_SEED={seed}) ***")
        raise


class StateMachine:
    """Append-only command log: index -> command bytes (non-empty NORMAL entries)."""

    def __init__(self) -> None:
        self.applied = 0
        self.cmds: dict[int, bytes] = {}

    def apply(self, e: Entry) -> None:
        assert e.index == self.applied + 1, f"apply gap: {e.index} after {self.applied}"
        self.applied = e.index
        if e.type == EntryType.NORMAL and e.data:
            self.cmds[e.index] = e.data

    def encode(self) -> bytes:
        parts = [struct.pack(">QI", self.applied, len(self.cmds))]
        for i, d in sorted(self.cmds.items()):
            parts.append(struct.pack(">QI", i, len(d)))
            parts.append(d)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        sm = cls()
        sm.applied, n = struct.unpack_from(">QI", data, 0)
        off = 12
        for _ in range(n):
            i, ln = struct.unpack_from(">QI", data, off)
            off += 12
            sm.cmds[i] = data[off : off + ln]
            off += ln
        return sm


@dataclass(slots=True)
class SimNode:
    id: int
    store: MemoryLogStore = field(default_factory=MemoryLogStore)
    snaps: MemorySnapshotStore = field(default_factory=MemorySnapshotStore)
    node: RawNode | None = None
    sm: StateMachine = field(default_factory=StateMachine)
    incarnation: int = 0
    last_commit: int = 0
    read_states: list[ReadState] = field(default_factory=list)
    bootstrap: tuple[int, ...] | None = None  # overrides the cluster's bootstrap voters


class Cluster:
    """N simulated nodes plus a network; see the module docstring."""

    machine: type[StateMachine] = StateMachine  # what every node applies (a subclass may wrap more)

    def __init__(
        self,
        n: int,
        seed: int,
        *,
        learners: Iterable[int] = (),
        voters: Iterable[int] | None = None,
        snapshot_every: int = 0,
        max_snapshot_chunk_bytes: int = 1 << 20,
        check_quorum: bool = True,
        pre_vote: bool = True,
        election_ticks: int = 10,
        log_match_every: int = 20,
        max_size_per_msg_bytes: int | None = None,
        max_inflight_msgs: int | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.n = n
        self.ids = list(range(1, n + 1))
        learner_ids = tuple(learners)
        self.base_cfg = Config(
            id=1,
            election_ticks=election_ticks,
            heartbeat_ticks=1,
            voters=tuple(voters)
            if voters is not None
            else tuple(i for i in self.ids if i not in learner_ids),
            learners=learner_ids,
            # Vary flow control per seed: one entry per MsgApp exposes Figure-8 style
            # partial replication; tiny windows exercise pause/resume.
            max_size_per_msg_bytes=max_size_per_msg_bytes or self.rng.choice((1, 64, 4096)),
            max_inflight_msgs=max_inflight_msgs or self.rng.choice((1, 4, 16)),
            max_snapshot_chunk_bytes=max_snapshot_chunk_bytes,
            check_quorum=check_quorum,
            pre_vote=pre_vote,
        )
        self.snapshot_every = snapshot_every
        self.log_match_every = log_match_every
        self.nodes: dict[int, SimNode] = {i: SimNode(i) for i in self.ids}
        self.now = 0
        self.rounds = 0
        # network
        self._q: list[tuple[int, int, Message]] = []
        self._seq = 0
        self.connected: dict[int, bool] = dict.fromkeys(self.ids, True)
        self.groups: dict[int, int] = dict.fromkeys(self.ids, 0)
        self.reliable = True
        self.long_reordering = False
        self.crash_mid_ready_prob = 0.0
        self.msg_count = 0
        self.type_counts: Counter[tuple[MessageType, bool]] = Counter()
        # invariant records
        self.leaders: dict[int, int] = {}  # term -> leader id
        self.applied: dict[int, tuple[int, int, bytes]] = {}  # index -> (term, type, data)
        self.entry_at: dict[tuple[int, int], tuple[int, bytes]] = {}  # (index,term)->entry
        self.acked: dict[int, bytes] = {}  # index -> command acknowledged to a client
        self._checked_leaders: set[tuple[int, int]] = set()
        for i in self.ids:
            self.start(i)

    # -- node lifecycle -------------------------------------------------------------------
    def fail(self, msg: str) -> None:
        raise InvariantViolation(f"[seed {self.seed} round {self.rounds}] {msg}")

    def start(self, i: int) -> None:
        sn = self.nodes[i]
        snap = sn.snaps.load()
        if snap is not None:
            # The crash may have hit between saving the snapshot and compacting the log.
            sn.store.compact(snap)
            sn.store.sync()
            sn.sm = self.machine.decode(snap.data)
        else:
            sn.sm = self.machine()
        sn.incarnation += 1
        cfg = replace(self.base_cfg, id=i, applied=sn.sm.applied)
        if sn.bootstrap is not None:
            cfg = replace(cfg, voters=sn.bootstrap, learners=())
        rng = random.Random(self.rng.getrandbits(64))
        sn.node = RawNode(cfg, sn.store, sn.snaps, rng)
        sn.last_commit = sn.node.raft.log.committed
        sn.read_states = []

    def crash(self, i: int) -> None:
        """Power loss: lose everything not synced, forget volatile state."""
        sn = self.nodes[i]
        sn.node = None
        sn.store.crash()

    def restart(self, i: int) -> None:
        if self.nodes[i].node is not None:
            self.crash(i)
        self.start(i)

    def wipe(self, i: int) -> None:
        """Destroy node ``i`` and its disks; if started again it joins as a blank server."""
        self.nodes[i] = SimNode(i, bootstrap=(), incarnation=self.nodes[i].incarnation)

    def alive(self, i: int) -> bool:
        return self.nodes[i].node is not None

    def rn(self, i: int) -> RawNode:
        node = self.nodes[i].node
        assert node is not None, f"node {i} is down"
        return node

    # -- network --------------------------------------------------------------------------
    def disconnect(self, i: int) -> None:
        self.connected[i] = False

    def connect(self, i: int) -> None:
        self.connected[i] = True

    def partition(self, *groups: Iterable[int]) -> None:
        for g, members in enumerate(groups):
            for i in members:
                self.groups[i] = g

    def heal(self) -> None:
        self.groups = dict.fromkeys(self.ids, 0)
        for i in self.ids:
            self.connected[i] = True

    def _link_up(self, a: int, b: int) -> bool:
        return (
            self.connected.get(a, False)
            and self.connected.get(b, False)
            and self.groups.get(a) == self.groups.get(b)
        )

    def _send(self, m: Message) -> None:
        self.msg_count += 1
        self.type_counts[m.type, bool(m.entries)] += 1
        if not self._link_up(m.from_, m.to):
            return
        copies = 1
        delay = 1
        if not self.reliable:
            r = self.rng.random()
            if r < 0.1:
                return  # dropped
            if r < 0.15:
                copies = 2
            delay = self.rng.randint(1, 3)
        if self.long_reordering and self.rng.random() < 0.1:
            delay = self.rng.randint(5, 25)
        for _ in range(copies):
            self._seq += 1
            heapq.heappush(self._q, (self.now + delay, self._seq, m))
            delay += self.rng.randint(0, 2)

    def _deliver_due(self) -> None:
        q = self._q
        while q and q[0][0] <= self.now:
            _, _, m = heapq.heappop(q)
            if not self._link_up(m.from_, m.to) or m.to not in self.nodes:
                continue
            node = self.nodes[m.to].node
            if node is not None:
                node.step(m)

    # -- the driver loop ------------------------------------------------------------------
    def _drain(self, i: int) -> None:
        sn = self.nodes[i]
        while sn.node is not None and sn.node.has_ready():
            node = sn.node
            rd = node.ready()
            if rd.snapshot is not None:
                self._check_snapshot(i, rd.snapshot)
                sn.snaps.save(rd.snapshot)
                sn.store.compact(rd.snapshot)
                sn.sm = self.machine.decode(rd.snapshot.data)
            for e in rd.entries:
                key = (e.index, e.term)
                val = (int(e.type), e.data)
                prev = self.entry_at.setdefault(key, val)
                if prev != val:
                    self.fail(f"two different entries at (index, term)={key}")
            sn.store.append(rd.entries, rd.hard_state)
            if (
                rd.must_sync
                and self.crash_mid_ready_prob
                and self.rng.random() < self.crash_mid_ready_prob
            ):
                self.crash(i)  # power loss after write(), before fsync(): tail is lost
                return
            if rd.must_sync:
                sn.store.sync()
            for m in rd.messages:
                self._send(m)
            for e in rd.committed_entries:
                self._apply(sn, e)
            sn.read_states.extend(rd.read_states)
            node.advance(rd)
            if self.snapshot_every and sn.sm.applied - (sn.store.first_index() - 1) >= (
                self.snapshot_every
            ):
                snap = node.create_snapshot(sn.sm.applied, sn.sm.encode())
                sn.snaps.save(snap)
                sn.store.compact(snap)

    def _apply(self, sn: SimNode, e: Entry) -> None:
        rec = (e.term, int(e.type), e.data)
        prev = self.applied.setdefault(e.index, rec)
        if prev != rec:
            self.fail(f"node {sn.id} applied {rec} at {e.index}, another applied {prev}")
        sn.sm.apply(e)
        if e.type == EntryType.CONF_CHANGE:
            assert sn.node is not None
            sn.node.apply_conf_change(ConfChange.decode(e.data))

    def _check_snapshot(self, i: int, snap: Snapshot) -> None:
        sm = self.machine.decode(snap.data)
        for idx, d in sm.cmds.items():
            rec = self.applied.get(idx)
            if rec is not None and rec[2] != d:
                self.fail(f"node {i} restored a snapshot disagreeing at index {idx}")

    def step_round(self) -> None:
        self._deliver_due()
        for i in self.ids:
            self._drain(i)
        self.now += 1
        for i in self.ids:
            node = self.nodes[i].node
            if node is not None:
                node.tick()
        for i in self.ids:
            self._drain(i)
        self.rounds += 1
        self.check_invariants()

    def run(self, rounds: int) -> None:
        for _ in range(rounds):
            self.step_round()

    # -- invariants -----------------------------------------------------------------------
    def check_invariants(self) -> None:
        for i in self.ids:
            sn = self.nodes[i]
            node = sn.node
            if node is None:
                continue
            r = node.raft
            if r.log.committed < sn.last_commit:
                self.fail(f"node {i} commit went back {sn.last_commit} -> {r.log.committed}")
            sn.last_commit = r.log.committed
            if r.state == StateType.LEADER:
                prev = self.leaders.setdefault(r.term, i)
                if prev != i:
                    self.fail(f"two leaders in term {r.term}: {prev} and {i}")
                if (i, r.term) not in self._checked_leaders:
                    self._checked_leaders.add((i, r.term))
                    self._check_leader_completeness(i)
        if self.log_match_every and self.rounds % self.log_match_every == 0:
            self.check_log_matching()

    def _check_leader_completeness(self, i: int) -> None:
        log = self.rn(i).raft.log
        first = log.first_index()
        for idx, (term, _, _) in self.applied.items():
            if idx >= first and log.term(idx) != term:
                self.fail(f"leader {i} lacks applied entry {idx} (term {term})")

    def _log_of(self, i: int) -> dict[int, Entry]:
        log = self.rn(i).raft.log
        ents = log.slice(log.first_index(), log.last_index() + 1, None) or []
        return {e.index: e for e in ents}

    def check_log_matching(self) -> None:
        live = [i for i in self.ids if self.alive(i)]
        logs = {i: self._log_of(i) for i in live}
        for a in live:
            for b in live:
                if a >= b:
                    continue
                la, lb = logs[a], logs[b]
                common = sorted(set(la) & set(lb), reverse=True)
                matched = False
                for idx in common:
                    ea, eb = la[idx], lb[idx]
                    if matched and ea != eb:
                        self.fail(f"log matching violated at {idx} between {a} and {b}")
                    if ea.term == eb.term:
                        if ea != eb:
                            self.fail(f"same (index, term) {idx} differs between {a}, {b}")
                        matched = True

    # -- 6.824-style helpers ----------------------------------------------------------------
    def leaders_now(self) -> list[int]:
        return [i for i in self.ids if self.alive(i) and self.connected[i] and self.rn(i).is_leader]

    def check_one_leader(self, max_rounds: int = 300) -> int:
        """Run until the connected nodes have exactly one leader in the newest term."""
        for _ in range(max_rounds // 10):
            self.run(10)
            by_term: dict[int, list[int]] = {}
            for i in self.leaders_now():
                by_term.setdefault(self.rn(i).term, []).append(i)
            if by_term:
                top = max(by_term)
                if len(by_term[top]) > 1:
                    self.fail(f"term {top} has leaders {by_term[top]}")
                return by_term[top][0]
        self.fail("expected one leader, got none")
        raise AssertionError  # unreachable

    def check_no_leader(self) -> None:
        for i in self.ids:
            if self.alive(i) and self.connected[i] and self.rn(i).is_leader:
                self.fail(f"expected no leader among connected, but {i} claims to be one")

    def check_terms(self) -> int:
        term = -1
        for i in self.ids:
            if self.alive(i) and self.connected[i]:
                t = self.rn(i).term
                if term == -1:
                    term = t
                elif t != term:
                    self.fail("servers disagree on term")
        return term

    def n_committed(self, index: int) -> tuple[int, bytes | None]:
        count, cmd = 0, None
        for i in self.ids:
            sn = self.nodes[i]
            if sn.node is None or sn.sm.applied < index:
                continue
            c = sn.sm.cmds.get(index)
            if c is None:
                continue
            if cmd is not None and c != cmd:
                self.fail(f"committed values differ at {index}")
            count, cmd = count + 1, c
        return count, cmd

    def propose(self, i: int, cmd: bytes) -> int | None:
        node = self.nodes[i].node
        if node is None or not self.connected[i]:
            return None
        try:
            return node.propose(cmd)
        except ProposalDropped:
            return None

    def one(self, cmd: bytes, expected: int, retry: bool = True, max_rounds: int = 600) -> int:
        """Get ``cmd`` committed on ``expected`` nodes (6.824's ``one``); returns its index."""
        start = self.rounds
        s = 0
        while self.rounds - start < max_rounds:
            index = None
            for _ in self.ids:
                s = s % self.n + 1
                index = self.propose(s, cmd)
                if index is not None:
                    break
            if index is not None:
                t0 = self.rounds
                while self.rounds - t0 < 60:
                    self.step_round()
                    nd, c = self.n_committed(index)
                    if nd > 0 and nd >= expected and c == cmd:
                        self.acked[index] = cmd
                        return index
                if not retry:
                    self.fail(f"one({cmd!r}) failed to reach agreement")
            else:
                self.run(5)
        self.fail(f"one({cmd!r}) failed to reach agreement in {max_rounds} rounds")
        raise AssertionError  # unreachable

    def wait_committed(self, index: int, n: int, max_rounds: int = 200) -> bytes | None:
        for _ in range(max_rounds):
            nd, c = self.n_committed(index)
            if nd >= n:
                return c
            self.step_round()
        return None

    def converge(self, max_rounds: int = 2000) -> None:
        """Heal everything and run until every live node applied the same index."""
        self.heal()
        self.reliable = True
        self.long_reordering = False
        self.crash_mid_ready_prob = 0.0
        target = max(self.acked, default=0)
        for _ in range(max_rounds // 10):
            self.run(10)
            live = [self.nodes[i] for i in self.ids if self.alive(i)]
            applied = {sn.sm.applied for sn in live}
            commits = {self.rn(sn.id).raft.log.committed for sn in live}
            if len(applied) == 1 and applied == commits and min(applied) >= target:
                return
        self.fail("cluster did not converge")

    def final_check(self) -> None:
        """Converge, then: log matching, and every acknowledged write on every live node."""
        self.converge()
        self.check_log_matching()
        for i in self.ids:
            sn = self.nodes[i]
            if sn.node is None:
                continue
            for idx, cmd in self.acked.items():
                if sn.sm.cmds.get(idx) != cmd:
                    self.fail(f"acknowledged write {cmd!r}@{idx} missing on node {i}")
