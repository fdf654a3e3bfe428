"""Test harness running the LogStore contract against every implementation.

``LogHarness`` wraps a store with the two ways a node loses its process:
- ``restart()``: a clean process restart after ``sync()`` (memory: ``crash()``, which
  loses nothing once synced; disk: close and reopen the directory);
- ``crash(rng)``: a power loss. Memory: ``crash()``. Disk: every byte of the last segment
  the store had not fdatasynced at the harness's last ``sync()`` may be lost: that is
  everything from its last sync mark on (the mark is written after the fdatasync, so it
  is not durable itself). The file is cut at a random point at or above that (exactly at
  it when ``rng`` is None), optionally followed by garbage or zeros (never growing the
  file), then reopened. A segment
  created since the sync was fdatasynced with its header and checkpoint, so it is cut
  above those, except sometimes inside them (a crash during its creation). Earlier
  segments were fdatasynced by rotation and are left alone.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from metadata.raft.messages import Entry, HardState
from metadata.storage import wal
from metadata.storage.disk import DiskLogStore
from metadata.storage.memory import MemoryLogStore

__all__ = ["FAST_TMP", "KINDS", "LogHarness", "LogView", "durable_size", "view_of"]

KINDS = ("memory", "disk")
# Many-fsync randomized runs use tmpfs when there is one: fsync is then free, and the
# crash model is simulated by the harness anyway.
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@dataclass(frozen=True, slots=True)
class LogView:
    """Everything observable through the LogStore read API."""

    snap_index: int
    snap_term: int
    hard_state: HardState
    entries: tuple[Entry, ...]


def durable_size(path: Path) -> int:
    """How much of a closed or idle store's last segment its last fdatasync covered: up
    to its last sync mark, or all of it when it has none (synced when it was created)."""
    data = path.read_bytes()
    scan = wal.scan_segment(data, name=str(path), seq=int(path.stem, 16), is_last=True)
    return scan.synced_bytes or len(data)


def view_of(store: MemoryLogStore | DiskLogStore) -> LogView:
    first, last = store.first_index(), store.last_index()
    return LogView(
        first - 1,
        store.term(first - 1),
        store.hard_state(),
        tuple(store.entries(first, last + 1)),
    )


@dataclass
class LogHarness:
    kind: str
    directory: Path
    segment_bytes: int = 1 << 20
    store: MemoryLogStore | DiskLogStore = field(init=False)
    _synced_sizes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = self._open()
        self._record_sizes()

    def _open(self) -> MemoryLogStore | DiskLogStore:
        if self.kind == "memory":
            return MemoryLogStore()
        return DiskLogStore(self.directory, segment_bytes=self.segment_bytes)

    @property
    def disk(self) -> DiskLogStore:
        assert isinstance(self.store, DiskLogStore)
        return self.store

    def _record_sizes(self) -> None:
        if self.kind == "disk":
            self._synced_sizes = {p.name: p.stat().st_size for p in self.directory.glob("*.wal")}
            last = self.disk.segment_paths()[-1]
            self._synced_sizes[last.name] = durable_size(last)

    def sync(self) -> None:
        self.store.sync()
        self._record_sizes()

    def restart(self) -> None:
        if isinstance(self.store, MemoryLogStore):
            self.store.crash()
            return
        self.store.close()
        self.store = self._open()
        self._record_sizes()

    def crash(self, rng: random.Random | None = None) -> None:
        if isinstance(self.store, MemoryLogStore):
            self.store.crash()
            return
        last = self.store.segment_paths()[-1]
        self.store.close()
        size = last.stat().st_size
        floor = self._synced_sizes.get(last.name, wal.SEGMENT_CREATION_BYTES)
        if rng is not None and last.name not in self._synced_sizes and rng.random() < 0.2:
            floor, size = 0, wal.SEGMENT_CREATION_BYTES - 1  # torn creation
        cut = floor if rng is None else rng.randint(floor, size)
        with last.open("r+b") as f:
            f.truncate(cut)
            if rng is not None and cut < size and rng.random() < 0.3:
                f.seek(cut)  # garbage or zeros within what was written, never beyond
                junk = rng.randbytes(rng.randint(1, min(40, size - cut)))
                f.write(junk if rng.random() < 0.5 else bytes(len(junk)))
        self.store = self._open()
        self._record_sizes()

    def close(self) -> None:
        if isinstance(self.store, DiskLogStore):
            self.store.close()
