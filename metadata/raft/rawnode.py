"""``RawNode``: the driver's handle on the core (etcd's ``RawNode``): inputs, then Ready.

Usage by a driver (``metadata/node.py``, the simulation harness)::

    node = RawNode(Config(id=1, voters=(1, 2, 3)), log_store, snapshot_store, rng)
    # on timer: node.tick(); on message: node.step(msg); on request: node.propose(data)
    while node.has_ready():
        rd = node.ready()
        if rd.snapshot: snapshot_store.save(rd.snapshot); log_store.compact(rd.snapshot)
                        state_machine.restore(rd.snapshot.data)
        log_store.append(rd.entries, rd.hard_state); log_store.sync()   # if rd.must_sync
        transport.send(rd.messages)                                       # only after sync
        for e in rd.committed_entries: apply (CONF_CHANGE -> node.apply_conf_change(cc))
        node.advance(rd)

At most one Ready is outstanding: ``has_ready`` is False and ``ready`` raises until the
previous one was ``advance``d. Inputs (``step``, ``tick``, ``propose``...) may be called
while a Ready is outstanding; their effects go into the next Ready.
Log compaction: the driver takes a state-machine snapshot at an applied index with
``create_snapshot(index, data)``, saves it to the snapshot store, then ``compact``s the log
store; the core reads both through the protocols and needs no notification.
Restart: build a new RawNode over the same stores (after re-compacting the log store to the
saved snapshot, in case the crash hit between the two writes); pass ``applied`` = the
snapshot index the state machine was restored from (the core then re-delivers committed
entries after it, CONF_CHANGEs included). A driver whose state machine is itself durable
passes its own ``applied`` and the ``conf`` (ConfState) it had at that index.
New cluster: every initial member starts with ``Config(voters=...)`` on empty storage; the
membership is then written as committed CONF_CHANGE entries 1..n (``log_bootstrap``). A
server added later starts with ``voters=()`` and learns everything from the leader.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from metadata.raft.core import Config, Raft
from metadata.raft.log import SnapshotSource
from metadata.raft.messages import (
    ConfChange,
    ConfState,
    HardState,
    Message,
    Snapshot,
    SnapshotMeta,
)
from metadata.raft.progress import ProgressState
from metadata.raft.ready import Ready, SoftState, StateType
from metadata.storage.base import LogStore

__all__ = ["PeerStatus", "RawNode", "Status"]


@dataclass(frozen=True, slots=True)
class PeerStatus:
    match: int
    next: int
    state: ProgressState
    is_learner: bool
    recent_active: bool


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    term: int
    vote: int
    commit: int
    applied: int
    lead: int
    state: StateType
    conf: ConfState
    progress: tuple[tuple[int, PeerStatus], ...]  # leader only


class RawNode:
    """Thread-unsafe, I/O-free wrapper around ``Raft`` with the Ready/advance protocol."""

    def __init__(
        self,
        cfg: Config,
        storage: LogStore,
        snapshots: SnapshotSource | None,
        rng: random.Random,
    ) -> None:
        self.raft = Raft(cfg, storage, snapshots, rng)
        self._prev_hs = storage.hard_state()
        self._prev_ss = SoftState(self.raft.lead, self.raft.state)
        self._outstanding: Ready | None = None

    # -- inputs ----------------------------------------------------------------------------
    def tick(self) -> None:
        self.raft.tick()

    def step(self, m: Message) -> None:
        self.raft.step(m)

    def campaign(self) -> None:
        """Start an election now (tests, bootstrap of a single node)."""
        self.raft.hup(transfer=False)

    def propose(self, data: bytes) -> int:
        """Append a command; returns its index. Raises ProposalDropped if not leader."""
        return self.raft.propose((data,))

    def propose_batch(self, datas: Sequence[bytes]) -> int:
        """Append several commands at once; returns the index of the last one."""
        return self.raft.propose(datas)

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Append a membership change (one at a time); returns its index."""
        return self.raft.propose_conf_change(cc)

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Call when APPLYING a committed CONF_CHANGE entry; returns the new membership."""
        return self.raft.apply_conf_change(cc)

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read; a ReadState with the same ctx appears later."""
        self.raft.read_index(ctx)

    def transfer_leader(self, target: int) -> None:
        self.raft.transfer_leader(target)

    def report_unreachable(self, node_id: int) -> None:
        """The transport failed to deliver to ``node_id``: stop pipelining to it."""
        self.raft.report_unreachable(node_id)

    def create_snapshot(self, index: int, data: bytes) -> Snapshot:
        """A snapshot of the state machine at applied ``index`` (for save + compact)."""
        log = self.raft.log
        if not log.first_index() - 1 <= index <= log.applied:
            raise ValueError(f"snapshot index {index} not in [first-1, applied={log.applied}]")
        term = log.term(index)
        if term is None:  # pragma: no cover - guarded by the range check above
            raise ValueError(f"term of {index} unknown")
        return Snapshot(SnapshotMeta(index, term, self.raft.conf_state()), data)

    # -- outputs ---------------------------------------------------------------------------
    def has_ready(self) -> bool:
        if self._outstanding is not None:
            return False
        r = self.raft
        r.flush()
        if r.msgs or r.read_states:
            return True
        log = r.log
        u = log.unstable
        if u.entries or u.snapshot is not None or log.committed > log.applying:
            return True
        ss, hs = self._prev_ss, self._prev_hs
        return (
            ss.lead != r.lead
            or ss.state != r.state
            or hs.term != r.term
            or hs.vote != r.vote
            or hs.commit != log.committed
        )

    def ready(self) -> Ready:
        if self._outstanding is not None:
            raise RuntimeError("advance() the previous Ready first")
        r = self.raft
        r.flush()
        log = r.log
        ss = SoftState(r.lead, r.state)
        hs = r.hard_state()
        entries = log.unstable_entries()
        committed = log.next_committed_ents()
        rd = Ready(
            soft_state=ss if ss != self._prev_ss else None,
            hard_state=hs if hs != self._prev_hs else None,
            entries=entries,
            snapshot=log.unstable.snapshot,
            committed_entries=tuple(committed),
            messages=tuple(r.msgs),
            read_states=tuple(r.read_states),
            must_sync=bool(entries)
            or log.unstable.snapshot is not None
            or hs.term != self._prev_hs.term
            or hs.vote != self._prev_hs.vote,
        )
        r.msgs = []
        r.read_states = []
        if committed:
            log.accept_applying(committed[-1].index)
        self._prev_ss = ss
        self._prev_hs = hs
        self._outstanding = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver persisted, sent and applied ``rd``."""
        if rd is not self._outstanding:
            raise RuntimeError("advance() must be given the outstanding Ready")
        self._outstanding = None
        log = self.raft.log
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.meta.index)
            log.applied_to(rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)
        self.raft.on_persisted()

    # -- introspection ---------------------------------------------------------------------
    def status(self) -> Status:
        r = self.raft
        progress: tuple[tuple[int, PeerStatus], ...] = ()
        if r.state == StateType.LEADER:
            progress = tuple(
                (i, PeerStatus(p.match, p.next, p.state, p.is_learner, p.recent_active))
                for i, p in r.trk.items()
            )
        return Status(
            r.id,
            r.term,
            r.vote,
            r.log.committed,
            r.log.applied,
            r.lead,
            r.state,
            r.conf_state(),
            progress,
        )

    def hard_state(self) -> HardState:
        return self.raft.hard_state()

    @property
    def is_leader(self) -> bool:
        return self.raft.state == StateType.LEADER

    @property
    def lead(self) -> int:
        return self.raft.lead

    @property
    def term(self) -> int:
        return self.raft.term
