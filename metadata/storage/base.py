"""Storage protocols of a metadata node: the Raft log with hard state, and snapshots.

The Raft core reads the *stable* log through ``LogStore`` (``term``, ``entries``,
``first_index``, ``last_index``); the node driver writes it (``append`` with the hard
state, ``sync``, ``compact``). Implementations are not thread-safe: the driver serializes
every call (it may run ``sync`` in a worker thread while no other call is in progress).
Invariants every implementation keeps:
- the log is contiguous: indexes ``first_index() .. last_index()`` are present, where
  ``first_index() - 1`` is the index of the last compacted entry (the snapshot's index) and
  ``term(first_index() - 1)`` is still answerable (the snapshot's term);
- ``append`` truncates any existing suffix starting at the first appended index, then
  appends (Raft §5.3): the caller has already decided there was a term conflict;
- nothing written is durable until ``sync()`` returns; a crash loses at most what was
  written after the last ``sync()`` (the simulated store models exactly that);
- ``compact(snapshot)`` discards entries up to and including the snapshot's index; the
  snapshot must already be saved (order: save snapshot -> compact -> sync).
Must not import asyncio or the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from metadata.raft.messages import Entry, HardState, Snapshot

__all__ = ["CompactedError", "LogStore", "LogView", "SnapshotStore", "UnavailableError"]


class CompactedError(Exception):
    """The requested index is at or before the compaction point (use the snapshot)."""


class UnavailableError(Exception):
    """The requested index is beyond the last index."""


class LogStore(Protocol):
    """The Raft log plus hard state (term, vote, commit)."""

    def hard_state(self) -> HardState:
        """The last saved hard state (HardState() if none)."""
        ...

    def first_index(self) -> int:
        """Index of the first entry still present (snapshot index + 1)."""
        ...

    def last_index(self) -> int:
        """Index of the last entry (snapshot index if the log is empty)."""
        ...

    def term(self, index: int) -> int:
        """Term of entry ``index``; raises CompactedError / UnavailableError."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in ``[lo, hi)``; at least one if any, then up to ``max_bytes`` of data."""
        ...

    def append(self, entries: Sequence[Entry], hard_state: HardState | None = None) -> None:
        """Truncate from ``entries[0].index`` and append; optionally save hard state too."""
        ...

    def sync(self) -> None:
        """Make everything written so far durable (fsync)."""
        ...

    def compact(self, snapshot: Snapshot) -> None:
        """Drop entries up to ``snapshot.meta.index`` (or reset the log to the snapshot)."""
        ...


class SnapshotStore(Protocol):
    """The latest state-machine snapshot, written atomically."""

    def save(self, snapshot: Snapshot) -> None:
        """Durably replace the current snapshot (temp, fsync, rename, dir fsync)."""
        ...

    def load(self) -> Snapshot | None:
        """The latest saved snapshot, or None."""
        ...


class LogView:
    """The read side of ``LogStore`` over the in-memory tail both implementations keep.

    Subclasses maintain ``_snap_index``/``_snap_term`` (the compaction point), ``_entries``
    (the entries after it, in order) and ``_hs``; reads never touch disk.
    """

    _snap_index: int
    _snap_term: int
    _entries: list[Entry]
    _hs: HardState

    def hard_state(self) -> HardState:
        return self._hs

    def first_index(self) -> int:
        return self._snap_index + 1

    def last_index(self) -> int:
        return self._snap_index + len(self._entries)

    def term(self, index: int) -> int:
        if index == self._snap_index:
            return self._snap_term
        if index < self._snap_index:
            raise CompactedError(index)
        if index > self.last_index():
            raise UnavailableError(index)
        return self._entries[index - self._snap_index - 1].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        if lo <= self._snap_index:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        out = self._entries[lo - self._snap_index - 1 : hi - self._snap_index - 1]
        if max_bytes is None or not out:
            return out
        total = 0
        for n, e in enumerate(out):
            total += len(e.data)
            if total > max_bytes and n > 0:
                return out[:n]
        return out
