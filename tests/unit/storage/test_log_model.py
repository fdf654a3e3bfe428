"""Random append/truncate/compact/sync/restart/crash sequences against a naive model.

After every operation the store must show exactly the model's log. A restart follows a
sync, so nothing may change. A crash may lose what was written since the last sync: the
recovered log must equal the model as it was after one of the operations since then
(each ``append``/``compact`` is atomic), and the model continues from there.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metadata.raft.messages import Entry, EntryType, HardState, Snapshot, SnapshotMeta
from metadata.storage.base import CompactedError, UnavailableError
from tests.unit.storage.harness import FAST_TMP, KINDS, LogHarness, LogView, view_of

Op = tuple[str, int, int, int]


@dataclass
class Model:
    """The obvious implementation: a list of every live entry."""

    snap_index: int = 0
    snap_term: int = 0
    hs: HardState = field(default_factory=HardState)
    entries: list[Entry] = field(default_factory=list)

    @classmethod
    def of(cls, v: LogView) -> Model:
        return cls(v.snap_index, v.snap_term, v.hard_state, list(v.entries))

    def view(self) -> LogView:
        return LogView(self.snap_index, self.snap_term, self.hs, tuple(self.entries))

    @property
    def last(self) -> int:
        return self.entries[-1].index if self.entries else self.snap_index

    def term_at(self, index: int) -> int | None:
        if index == self.snap_index:
            return self.snap_term
        return next((e.term for e in self.entries if e.index == index), None)

    def append(self, es: list[Entry], hs: HardState | None) -> None:
        if es:
            self.entries = [e for e in self.entries if e.index < es[0].index] + es
        if hs is not None:
            self.hs = hs

    def compact(self, index: int, term: int) -> None:
        if index <= self.snap_index:
            return
        if self.term_at(index) == term:
            self.entries = [e for e in self.entries if e.index > index]
        else:
            self.entries = []
        self.snap_index, self.snap_term = index, term
        if self.hs.commit < index:
            self.hs = HardState(self.hs.term, self.hs.vote, index)


def apply_op(h: LogHarness, m: Model, op: Op, history: list[LogView]) -> None:
    kind, a, b, c = op
    s = h.store
    top_term = max([m.snap_term, m.hs.term] + [e.term for e in m.entries])
    if kind == "append":
        first = m.snap_index + 1 + a % (m.last - m.snap_index + 1)
        term = top_term + c % 2
        es = [
            Entry(term, first + i, EntryType(i % 2 if c > 1 else 0), bytes([i]) * ((a + i) % 40))
            for i in range(b % 6)
        ]
        hs = HardState(term, a % 4, min(m.last, a % 9)) if c % 3 == 0 else None
        s.append(es, hs)
        m.append(es, hs)
    elif kind == "compact":
        span = m.last - m.snap_index
        if b % 4 == 0 or span == 0:  # ahead of the log
            index, term = m.last + 1 + a % 5, top_term + 1
        elif b % 4 == 1:  # conflicting term inside the log
            index, term = m.snap_index + 1 + a % span, top_term + 1
        elif b % 4 == 2:  # older than the compaction point: no-op
            index, term = a % (m.snap_index + 1), 0
        else:  # a normal snapshot of a prefix
            index = m.snap_index + 1 + a % span
            term = m.term_at(index) or 0
        s.compact(Snapshot(SnapshotMeta(index, term), b""))
        m.compact(index, term)
    elif kind == "sync":
        h.sync()
        history.clear()
    elif kind == "restart":
        h.sync()
        history.clear()
        h.restart()
    elif kind == "crash":
        h.crash(random.Random(a))
        got = view_of(h.store)
        assert got in history, "crash recovered a state that never existed since the sync"
        m.__dict__.update(Model.of(got).__dict__)
        history.clear()
    history.append(m.view())


def check(h: LogHarness, m: Model) -> None:
    s = h.store
    assert view_of(s) == m.view()
    assert (s.first_index(), s.last_index()) == (m.snap_index + 1, m.last)
    with pytest.raises(UnavailableError):
        s.term(m.last + 1)
    if m.snap_index > 0:
        with pytest.raises(CompactedError):
            s.term(m.snap_index - 1)
        with pytest.raises(CompactedError):
            s.entries(m.snap_index, m.last + 1)


def run(kind: str, ops: list[Op], segment_bytes: int = 300) -> None:
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        h = LogHarness(kind, Path(tmp) / "wal", segment_bytes=segment_bytes)
        m = Model()
        history = [m.view()]
        try:
            for op in ops:
                apply_op(h, m, op, history)
                check(h, m)
            h.sync()
            h.restart()
            check(h, m)
        finally:
            h.close()


_ints = st.integers(0, 1000)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), _ints, st.integers(0, 6), _ints),
        st.tuples(st.just("append"), _ints, st.integers(0, 6), _ints),
        st.tuples(st.just("compact"), _ints, _ints, st.just(0)),
        st.tuples(st.sampled_from(["sync", "restart", "crash"]), _ints, st.just(0), st.just(0)),
    ),
    max_size=60,
)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_random_operations_match_model(kind: str, ops: list[Op]) -> None:
    run(kind, ops)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_random_operations_match_model_long(kind: str, ops: list[Op]) -> None:
    run(kind, ops)


def random_ops(rng: random.Random, n: int) -> list[Op]:
    weights = {"append": 12, "compact": 2, "sync": 4, "restart": 1, "crash": 1}
    kinds = rng.choices(list(weights), weights=list(weights.values()), k=n)
    return [(k, rng.randint(0, 1000), rng.randint(0, 6), rng.randint(0, 1000)) for k in kinds]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_seeded_long_sequence(kind: str, seed: int) -> None:
    run(kind, random_ops(random.Random(seed), 400))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 130))
def test_seeded_long_sequence_disk_slow(seed: int) -> None:
    run(
        "disk",
        random_ops(random.Random(seed), 3000),
        segment_bytes=random.Random(seed).choice([256, 600, 4096]),
    )
