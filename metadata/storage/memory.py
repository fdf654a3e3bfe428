"""In-memory ``LogStore`` and ``SnapshotStore``, with simulated crashes.

Used by the pure-core tests and the deterministic simulation. ``crash()`` models a power
loss: everything written since the last ``sync()`` is lost, exactly what a real disk may
lose. No I/O, no clock: safe inside the pure cores' tests.
"""

from __future__ import annotations

from collections.abc import Sequence

from metadata.raft.messages import Entry, HardState, Snapshot
from metadata.storage.base import CompactedError, LogView, UnavailableError

__all__ = ["MemoryLogStore", "MemorySnapshotStore"]


class MemoryLogStore(LogView):
    """A log whose durable image is updated only by ``sync()``."""

    def __init__(self) -> None:
        # Live view: offset entry holds (index, term) of the compaction point.
        self._snap_index = 0
        self._snap_term = 0
        self._entries: list[Entry] = []
        self._hs = HardState()
        self._durable: tuple[int, int, list[Entry], HardState] = (0, 0, [], HardState())
        # Lowest index written since the last sync (None: nothing), so sync() copies only
        # the changed suffix instead of the whole log.
        self._dirty_from: int | None = None

    # -- writes ------------------------------------------------------------------------
    def append(self, entries: Sequence[Entry], hard_state: HardState | None = None) -> None:
        if entries:
            first = entries[0].index
            if first <= self._snap_index:
                raise CompactedError(first)
            if first > self.last_index() + 1:
                raise UnavailableError(first)
            del self._entries[first - self._snap_index - 1 :]
            self._entries.extend(entries)
            self._dirty_from = first if self._dirty_from is None else min(self._dirty_from, first)
        if hard_state is not None:
            self._hs = hard_state

    def sync(self) -> None:
        d_index, _, d_entries, _ = self._durable
        if d_index != self._snap_index:  # compacted since: take a full copy
            durable = list(self._entries)
        else:
            durable = d_entries
            if self._dirty_from is not None:
                cut = self._dirty_from - self._snap_index - 1
                del durable[cut:]
                durable.extend(self._entries[cut:])
        self._durable = (self._snap_index, self._snap_term, durable, self._hs)
        self._dirty_from = None

    def compact(self, snapshot: Snapshot) -> None:
        index, term = snapshot.meta.index, snapshot.meta.term
        if index <= self._snap_index:
            return
        if index <= self.last_index() and self.term(index) == term:
            del self._entries[: index - self._snap_index]
        else:  # the snapshot is ahead of (or conflicts with) our log: start over from it
            self._entries = []
        self._snap_index, self._snap_term = index, term
        if self._hs.commit < index:
            self._hs = HardState(self._hs.term, self._hs.vote, index)

    # -- simulation --------------------------------------------------------------------
    def crash(self) -> None:
        """Lose everything not synced (a power failure)."""
        self._snap_index, self._snap_term, entries, self._hs = self._durable
        self._entries = list(entries)
        self._dirty_from = None


class MemorySnapshotStore:
    """Holds the latest snapshot; ``save`` is atomic and durable by construction."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None

    def save(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def load(self) -> Snapshot | None:
        return self._snapshot
