"""LogStore contract, run against MemoryLogStore and DiskLogStore."""

from __future__ import annotations

import pytest

from metadata.raft.messages import Entry, EntryType, HardState, Snapshot, SnapshotMeta
from metadata.storage.base import CompactedError, UnavailableError
from tests.unit.storage.harness import LogHarness, LogView, view_of


def ents(lo: int, hi: int, term: int = 1, tag: bytes = b"") -> list[Entry]:
    return [Entry(term, i, EntryType.NORMAL, tag + b"e%d" % i) for i in range(lo, hi + 1)]


def snap(index: int, term: int) -> Snapshot:
    return Snapshot(SnapshotMeta(index, term), b"state")


def test_empty_log(harness: LogHarness) -> None:
    s = harness.store
    assert (s.first_index(), s.last_index(), s.term(0)) == (1, 0, 0)
    assert s.hard_state() == HardState()
    assert s.entries(1, 1) == []
    with pytest.raises(UnavailableError):
        s.term(1)
    with pytest.raises(UnavailableError):
        s.entries(1, 2)
    with pytest.raises(CompactedError):
        s.entries(0, 1)


def test_append_and_read(harness: LogHarness) -> None:
    s = harness.store
    s.append(ents(1, 3, term=1))
    s.append([Entry(2, 4, EntryType.CONF_CHANGE, b"cc"), Entry(2, 5)])
    assert (s.first_index(), s.last_index()) == (1, 5)
    assert [s.term(i) for i in range(0, 6)] == [0, 1, 1, 1, 2, 2]
    assert s.entries(2, 5) == [*ents(2, 3), Entry(2, 4, EntryType.CONF_CHANGE, b"cc")]
    assert s.entries(5, 6) == [Entry(2, 5)]
    assert s.entries(3, 3) == []
    with pytest.raises(UnavailableError):
        s.entries(1, 7)


def test_entries_max_bytes(harness: LogHarness) -> None:
    s = harness.store
    s.append([Entry(1, i, data=b"x" * 10) for i in range(1, 6)])
    assert len(s.entries(1, 6, max_bytes=25)) == 2
    assert len(s.entries(1, 6, max_bytes=1)) == 1  # always at least one
    assert len(s.entries(1, 6, max_bytes=0)) == 1
    assert len(s.entries(1, 6, max_bytes=50)) == 5


def test_conflicting_suffix_is_replaced(harness: LogHarness) -> None:
    s = harness.store
    s.append(ents(1, 5, term=1))
    s.append(ents(3, 4, term=2, tag=b"new"))
    assert s.last_index() == 4
    assert s.entries(1, 5) == ents(1, 2, term=1) + ents(3, 4, term=2, tag=b"new")
    s.append(ents(5, 6, term=2))  # appending at last+1 never truncates
    assert s.last_index() == 6
    s.append(ents(1, 1, term=3))  # replacing everything
    assert s.entries(1, 2) == ents(1, 1, term=3)
    assert s.last_index() == 1


def test_append_bounds(harness: LogHarness) -> None:
    s = harness.store
    s.append(ents(1, 5))
    with pytest.raises(UnavailableError):
        s.append(ents(7, 8))
    s.compact(snap(3, 1))
    with pytest.raises(CompactedError):
        s.append(ents(3, 4, term=2))
    assert view_of(s).entries == tuple(ents(4, 5))


def test_hard_state_round_trip(harness: LogHarness) -> None:
    s = harness.store
    s.append([], HardState(3, 2, 0))
    assert s.hard_state() == HardState(3, 2, 0)
    s.append(ents(1, 2, term=3), HardState(3, 2, 1))
    harness.sync()
    harness.restart()
    s = harness.store
    assert s.hard_state() == HardState(3, 2, 1)
    assert s.entries(1, 3) == ents(1, 2, term=3)
    s.append([], HardState(4, 0, 2))
    harness.sync()
    harness.restart()
    assert harness.store.hard_state() == HardState(4, 0, 2)


def test_compact_keeps_tail(harness: LogHarness) -> None:
    s = harness.store
    s.append(ents(1, 5, term=1) + ents(6, 8, term=2), HardState(2, 1, 4))
    s.compact(snap(6, 2))
    assert (s.first_index(), s.last_index(), s.term(6)) == (7, 8, 2)
    with pytest.raises(CompactedError):
        s.term(5)
    with pytest.raises(CompactedError):
        s.entries(6, 8)
    assert s.entries(7, 9) == ents(7, 8, term=2)
    assert s.hard_state() == HardState(2, 1, 6)  # commit raised to the snapshot
    s.compact(snap(4, 1))  # older snapshot: no-op
    assert s.first_index() == 7
    s.compact(snap(8, 2))  # everything: empty log, still answers term(last)
    assert (s.first_index(), s.last_index(), s.term(8)) == (9, 8, 2)
    s.append(ents(9, 9, term=3))
    assert s.entries(9, 10) == ents(9, 9, term=3)


def test_compact_ahead_or_conflicting_resets(harness: LogHarness) -> None:
    s = harness.store
    s.append(ents(1, 5, term=1))
    s.compact(snap(3, 2))  # term conflict at 3: the log is discarded
    assert (s.first_index(), s.last_index(), s.term(3)) == (4, 3, 2)
    s.compact(snap(10, 4))  # ahead of the log
    assert (s.first_index(), s.last_index(), s.term(10)) == (11, 10, 4)
    s.append(ents(11, 12, term=4))
    harness.sync()
    before = view_of(s)
    harness.restart()
    s = harness.store
    assert view_of(s) == before
    assert (s.first_index(), s.last_index(), s.term(10)) == (11, 12, 4)
    assert s.entries(11, 13) == ents(11, 12, term=4)


def test_restart_reproduces_state(harness: LogHarness) -> None:
    s = harness.store
    s.append(ents(1, 10, term=1), HardState(1, 1, 0))
    s.append(ents(6, 12, term=2, tag=b"b"), HardState(2, 3, 5))
    s.compact(snap(7, 2))
    s.append(ents(13, 14, term=2))
    harness.sync()
    before = view_of(s)
    harness.restart()
    assert view_of(harness.store) == before
    assert harness.store.term(harness.store.first_index() - 1) == 2


def test_truncation_survives_restarts(harness: LogHarness) -> None:
    harness.store.append(ents(1, 10, term=1))
    harness.sync()
    harness.restart()
    harness.store.append(ents(4, 5, term=2))
    harness.sync()
    harness.restart()
    assert view_of(harness.store).entries == tuple(ents(1, 3) + ents(4, 5, term=2))
    harness.store.append(ents(6, 6, term=2))
    harness.sync()
    harness.restart()
    assert harness.store.last_index() == 6


def test_crash_loses_only_unsynced(harness: LogHarness) -> None:
    s = harness.store
    s.append(ents(1, 3), HardState(1, 1, 1))
    harness.sync()
    durable = view_of(s)
    s.append(ents(2, 6, term=2), HardState(2, 2, 2))
    s.compact(snap(4, 2))
    harness.crash()
    assert view_of(harness.store) == durable
    harness.store.append(ents(4, 4, term=3))  # the recovered log is writable
    harness.sync()
    harness.restart()
    assert view_of(harness.store).entries == (*ents(1, 3), *ents(4, 4, term=3))


def test_sync_without_writes_is_harmless(harness: LogHarness) -> None:
    harness.sync()
    harness.sync()
    harness.restart()
    assert view_of(harness.store) == LogView(0, 0, HardState(), ())
