"""RaftLog and Unstable: the AppendEntries receiver rules (Raft §5.3) and slicing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metadata.raft.log import RaftLog, Unstable
from metadata.raft.messages import Entry, HardState, Snapshot, SnapshotMeta
from metadata.storage.memory import MemoryLogStore, MemorySnapshotStore


def ents(*terms: int, start: int = 1, size: int = 0) -> list[Entry]:
    return [Entry(t, start + n, data=b"x" * size) for n, t in enumerate(terms)]


def stored(*terms: int) -> MemoryLogStore:
    s = MemoryLogStore()
    if terms:
        s.append(ents(*terms))
    s.sync()
    return s


def test_maybe_append_rules() -> None:
    log = RaftLog(stored(1, 2, 3), None, 0)
    # mismatch of the previous entry: reject
    assert log.maybe_append(3, 2, 0, ents(4, start=4)) is None
    # stale/duplicate: already present, nothing truncated
    assert log.maybe_append(1, 1, 0, ents(2, start=2)) == 2
    assert log.last_index() == 3 and log.unstable.entries == []
    # extend
    assert log.maybe_append(3, 3, 2, ents(4, 4, start=4)) == 5
    assert log.last_index() == 5 and log.committed == 2
    # conflict at 4: truncate from there only
    assert log.maybe_append(3, 3, 5, ents(5, start=4)) == 4
    assert log.last_index() == 4 and log.term(4) == 5 and log.committed == 4
    # a reordered, older (shorter) append after a longer one is harmless
    assert log.maybe_append(3, 3, 4, []) == 3
    assert log.last_index() == 4
    with pytest.raises(RuntimeError):
        log.maybe_append(1, 1, 4, ents(9, start=2))  # would truncate committed entries


def test_commit_beyond_last_is_fatal() -> None:
    log = RaftLog(stored(1), None, 0)
    with pytest.raises(RuntimeError):
        log.commit_to(5)
    log.commit_to(1)
    with pytest.raises(RuntimeError):
        log.append([Entry(2, 1)])


def test_find_conflict_by_term() -> None:
    # terms: idx1..7 = 1 1 1 4 4 5 5
    log = RaftLog(stored(1, 1, 1, 4, 4, 5, 5), None, 0)
    assert log.find_conflict_by_term(7, 3) == (3, 1)
    assert log.find_conflict_by_term(7, 5) == (7, 5)
    assert log.find_conflict_by_term(5, 4) == (5, 4)
    assert log.find_conflict_by_term(3, 0) == (0, 0)
    s = stored(1, 1, 2, 3)
    s.compact(Snapshot(SnapshotMeta(2, 1)))
    log = RaftLog(s, None, 0)
    assert log.find_conflict_by_term(4, 0) == (1, 0)  # compacted: stop there


def test_unstable_truncate_and_stable_to() -> None:
    u = Unstable(5)
    u.truncate_and_append(ents(1, 1, 1, start=5))
    assert u.maybe_last_index() == 7
    u.truncate_and_append(ents(2, start=6))  # truncate in the middle
    assert [e.term for e in u.entries] == [1, 2]
    u.truncate_and_append(ents(3, start=4))  # before offset: replace all
    assert u.offset == 4 and [e.index for e in u.entries] == [4]
    u.stable_to(4, 2)  # wrong term: ignored
    assert u.entries
    u.stable_to(3, 1)  # before offset: ignored
    u.stable_to(4, 3)
    assert u.entries == [] and u.offset == 5
    assert u.maybe_term(3) is None and u.maybe_first_index() is None
    u.restore(Snapshot(SnapshotMeta(10, 4)))
    assert u.maybe_term(10) == 4 and u.maybe_first_index() == 11 and u.maybe_last_index() == 10
    assert u.maybe_term(9) is None and u.maybe_term(11) is None
    u.stable_snap_to(9)
    assert u.snapshot is not None
    u.stable_snap_to(10)
    assert u.snapshot is None


def test_slice_spans_storage_and_unstable_with_size_limit() -> None:
    s = MemoryLogStore()
    s.append(ents(1, 1, 1, size=10))
    log = RaftLog(s, None, 0)
    log.append(ents(2, 2, start=4, size=10))
    assert [e.index for e in log.slice(1, 6, None) or []] == [1, 2, 3, 4, 5]
    assert [e.index for e in log.slice(2, 6, 25) or []] == [2, 3]
    assert [e.index for e in log.slice(3, 6, 25) or []] == [3, 4]
    assert [e.index for e in log.slice(4, 6, 1) or []] == [4]
    assert log.slice(4, 4, None) == []
    s.compact(Snapshot(SnapshotMeta(2, 1)))
    assert log.slice(1, 3, None) is None
    assert log.term(1) is None and log.term(2) == 1 and log.term(9) is None


def test_next_committed_and_cursors() -> None:
    s = MemoryLogStore()
    s.append(ents(1, 1, 1, size=5))
    log = RaftLog(s, None, 2)
    assert not log.has_next_committed_ents() and log.next_committed_ents() == []
    log.commit_to(3)
    assert [e.index for e in log.next_committed_ents()] == [1]  # 2-byte cap: 1 entry min
    log.accept_applying(1)
    log.applied_to(1)
    assert log.applied == 1 and log.applying == 1
    log.max_apply_bytes = 0
    assert [e.index for e in log.next_committed_ents()] == [2, 3]
    assert not log.maybe_commit(3, 1)
    assert log.persisted_index() == 3
    assert log.append([]) == 3
    log.restore(Snapshot(SnapshotMeta(9, 2)))
    assert log.persisted_index() == 0 and not log.has_next_committed_ents()
    assert log.snapshot() is not None and log.committed == 9


def test_snapshot_source() -> None:
    snaps = MemorySnapshotStore()
    log = RaftLog(stored(1), snaps, 0)
    assert log.snapshot() is None
    snaps.save(Snapshot(SnapshotMeta(1, 1)))
    assert log.snapshot() is not None
    assert RaftLog(stored(1), None, 0).snapshot() is None


def test_is_up_to_date() -> None:
    log = RaftLog(stored(1, 2, 2), None, 0)
    assert log.is_up_to_date(1, 3)
    assert log.is_up_to_date(3, 2)
    assert not log.is_up_to_date(2, 2)
    assert not log.is_up_to_date(9, 1)


@settings(deadline=None, max_examples=60)
@given(
    st.lists(
        st.tuples(st.integers(0, 8), st.lists(st.integers(1, 4), max_size=4)),
        max_size=12,
    )
)
def test_appends_match_naive_oracle(ops: list[tuple[int, list[int]]]) -> None:
    """Random (stale, reordered, conflicting) appends vs a list-based receiver."""
    log = RaftLog(stored(), None, 0)
    oracle: list[int] = []  # terms by index-1
    for prev, terms in ops:
        # terms must be non-decreasing and >= prev term (as a real leader would send)
        if prev > len(oracle):
            assert log.maybe_append(prev, 1, 0, []) is None or prev <= log.last_index()
            continue
        pt = oracle[prev - 1] if prev else 0
        new = [max(pt, t) for t in terms]
        for k in range(1, len(new)):
            new[k] = max(new[k], new[k - 1])
        got = log.maybe_append(prev, pt, 0, [Entry(t, prev + 1 + k) for k, t in enumerate(new)])
        assert got == prev + len(new)
        for k, t in enumerate(new):
            i = prev + k
            if i < len(oracle) and oracle[i] != t:
                del oracle[i:]
            if i >= len(oracle):
                oracle.append(t)
        assert [log.term(i) for i in range(1, log.last_index() + 1)] == oracle
    assert HardState() == HardState()
