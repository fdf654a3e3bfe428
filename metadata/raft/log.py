"""The Raft log as the core sees it: stable entries in a ``LogStore`` plus an unstable tail.

Mirrors etcd's ``raftLog``/``unstable``. Layout of indexes::

    storage (stable, driver-written)      unstable (not yet persisted)
    [first_index ........ offset-1]       [offset ..... last_index]
                   applied <= applying <= committed <= last_index

- ``Unstable.entries[i]`` has index ``offset + i``; an unstable snapshot (received from the
  leader, not yet persisted) precedes them and hides storage entirely.
- Entries become stable only in ``stable_to`` (called from ``RawNode.advance`` once the
  driver persisted them); ``persisted_index`` is what this node may count toward commit.
- ``committed`` never decreases and never exceeds ``last_index``; truncation of committed
  entries is a fatal error (it would mean a safety violation elsewhere).
The core never writes storage; it never copies the whole log (slices only what it sends or
applies). Imports only the stdlib, ``messages`` and the storage protocol/errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from metadata.raft.messages import Entry, Snapshot
from metadata.storage.base import CompactedError, LogStore, UnavailableError

__all__ = ["RaftLog", "SnapshotSource", "Unstable"]


class SnapshotSource(Protocol):
    """Where the leader finds the latest snapshot to send (``MemorySnapshotStore`` fits)."""

    def load(self) -> Snapshot | None: ...


class Unstable:
    """Entries (and possibly a snapshot) accepted but not yet persisted by the driver."""

    __slots__ = ("entries", "offset", "snapshot")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.meta.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.meta.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.meta.index == i:
                return self.snapshot.meta.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> None:
        if i < self.offset or self.maybe_term(i) != t:
            return  # already stable, or replaced since the Ready was built
        del self.entries[: i + 1 - self.offset]
        self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.meta.index == i:
            self.snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        self.offset = snapshot.meta.index + 1
        self.entries = []
        self.snapshot = snapshot

    def truncate_and_append(self, ents: Sequence[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replace everything unstable; the next Ready rewrites storage from ``after``.
            self.offset = after
            self.entries = list(ents)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(ents)


class RaftLog:
    """Stable storage + unstable tail, with the commit/apply cursors."""

    def __init__(
        self, storage: LogStore, snapshots: SnapshotSource | None, max_apply_bytes: int
    ) -> None:
        self.storage = storage
        self.snapshots = snapshots
        self.max_apply_bytes = max_apply_bytes
        first = storage.first_index()
        self.unstable = Unstable(storage.last_index() + 1)
        self.committed = first - 1
        self.applying = first - 1  # committed entries handed out in a Ready, not yet applied
        self.applied = first - 1

    # -- indexes and terms --------------------------------------------------------------
    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def persisted_index(self) -> int:
        """Last index known durable on this node (what it may count toward commit)."""
        if self.unstable.snapshot is not None:
            return 0
        return self.unstable.offset - 1

    def term(self, i: int) -> int | None:
        """Term of entry ``i``, or None if compacted or beyond the end."""
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        if i < self.first_index() - 1 or i > self.last_index():
            return None
        try:
            return self.storage.term(i)
        except (CompactedError, UnavailableError):
            return None

    def last_term(self) -> int:
        t = self.term(self.last_index())
        assert t is not None, "term of the last index must be known"
        return t

    def match_term(self, i: int, t: int) -> bool:
        return self.term(i) == t

    def is_up_to_date(self, lasti: int, term: int) -> bool:
        """Raft §5.4.1: is a log ending at (lasti, term) at least as up to date as ours?"""
        lt = self.last_term()
        return term > lt or (term == lt and lasti >= self.last_index())

    # -- appends ------------------------------------------------------------------------
    def find_conflict(self, ents: Sequence[Entry]) -> int:
        """Index of the first entry whose term differs from ours (0: none; all present)."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest (i, term(i)) with i <= index and term(i) <= term (etcd's hint search)."""
        while index > 0:
            t = self.term(index)
            if t is None:
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: Sequence[Entry]
    ) -> int | None:
        """AppendEntries receiver (Raft §5.3); returns the last new index or None."""
        if not self.match_term(index, log_term):
            return None
        lastnewi = index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            if ci <= self.committed:
                raise RuntimeError(f"entry {ci} conflicts with committed entry")
            self.append(ents[ci - index - 1 :])
        self.commit_to(min(committed, lastnewi))
        return lastnewi

    def append(self, ents: Sequence[Entry]) -> int:
        if not ents:
            return self.last_index()
        if ents[0].index - 1 < self.committed:
            raise RuntimeError("append would truncate committed entries")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    # -- reading entries ----------------------------------------------------------------
    def slice(self, lo: int, hi: int, max_bytes: int | None) -> list[Entry] | None:
        """Entries in [lo, hi) (at least one if any, then up to max_bytes); None if compacted."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            return None
        out: list[Entry] = []
        off = self.unstable.offset
        if lo < off:
            try:
                out = self.storage.entries(lo, min(hi, off), max_bytes)
            except CompactedError:
                return None
            if len(out) < min(hi, off) - lo:
                return out  # size limit reached inside storage
        if hi > off:
            ents = self.unstable.entries
            u = ents[max(lo, off) - off : hi - off]
            if max_bytes is None:
                out = out + u if out else u
            else:
                total = sum(len(e.data) for e in out)
                for e in u:
                    total += len(e.data)
                    if total > max_bytes and out:
                        break
                    out.append(e)
        return out

    def unstable_entries(self) -> tuple[Entry, ...]:
        return tuple(self.unstable.entries)

    def has_next_committed_ents(self) -> bool:
        return self.unstable.snapshot is None and self.committed > self.applying

    def next_committed_ents(self) -> list[Entry]:
        if not self.has_next_committed_ents():
            return []
        lo = max(self.applying + 1, self.first_index())
        ents = self.slice(lo, self.committed + 1, self.max_apply_bytes or None)
        if ents is None:  # pragma: no cover - compacted past applying: driver bug
            raise RuntimeError("committed entries compacted before being applied")
        return ents

    def snapshot(self) -> Snapshot | None:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.snapshots.load() if self.snapshots is not None else None

    # -- cursors ------------------------------------------------------------------------
    def commit_to(self, tocommit: int) -> None:
        if tocommit > self.committed:
            if tocommit > self.last_index():
                raise RuntimeError(
                    f"commit {tocommit} beyond last index {self.last_index()} (log lost?)"
                )
            self.committed = tocommit

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Commit ``max_index`` only if it is from ``term`` (Raft §5.4.2, Figure 8)."""
        if max_index > self.committed and self.term(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i > self.applied:
            self.applied = i
        if self.applying < self.applied:
            self.applying = self.applied

    def accept_applying(self, i: int) -> None:
        self.applying = max(self.applying, i)

    def stable_to(self, i: int, t: int) -> None:
        self.unstable.stable_to(i, t)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)

    def restore(self, snapshot: Snapshot) -> None:
        self.committed = snapshot.meta.index
        self.unstable.restore(snapshot)
