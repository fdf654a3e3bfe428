"""Format stability: checked-in version-1 WAL segments and snapshot file still read, and
today's code still writes exactly those bytes.

If a layout must change, add a new format version (and a migration) and keep these
fixtures; regenerate only for a deliberate v1 fix: ``python -m tests.unit.storage.test_wal_format``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from metadata.raft.messages import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
)
from metadata.storage.disk import DiskLogStore, DiskSnapshotStore
from metadata.storage.memory import MemoryLogStore
from tests.unit.storage.harness import view_of

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wal"
WAL_V1 = FIXTURES / "v1"
SNAP_V1 = FIXTURES / "snapshot-v1"
SEG = 300
SNAPSHOT = Snapshot(
    SnapshotMeta(12, 3, ConfState((1, 2, 3), (4,), (1, 2, 5), True)), b"fsm-state\x00\xff"
)


def golden_ops(store: MemoryLogStore | DiskLogStore) -> None:
    """A fixed history touching every record type, rotation and segment removal."""
    for i in range(1, 11):
        store.append([Entry(1, i, data=b"old-%d" % i)], HardState(1, 1, i - 1))
    store.compact(Snapshot(SnapshotMeta(5, 2), b""))  # conflicting term: reset to it
    for i in range(6, 26):
        etype = EntryType.CONF_CHANGE if i % 7 == 0 else EntryType.NORMAL
        store.append([Entry(2, i, etype, b"cmd-%03d" % i)], HardState(2, 3, i - 1))
    store.append([Entry(3, 12), Entry(3, 13, data=b"x" * 40)], HardState(3, 2, 11))
    store.append([], HardState(3, 2, 12))
    store.sync()
    store.compact(Snapshot(SnapshotMeta(8, 2), b""))
    store.sync()
    store.append([Entry(3, i, data=b"tail") for i in range(14, 17)])
    store.sync()


def expected_view() -> object:
    m = MemoryLogStore()
    golden_ops(m)
    return view_of(m)


def test_v1_fixture_replays(tmp_path: Path) -> None:
    shutil.copytree(WAL_V1, tmp_path / "wal")
    with DiskLogStore(tmp_path / "wal", segment_bytes=SEG) as s:
        assert view_of(s) == expected_view()
        assert len(s.segment_paths()) >= 2


def test_v1_bytes_unchanged(tmp_path: Path) -> None:
    with DiskLogStore(tmp_path, segment_bytes=SEG) as s:
        golden_ops(s)
    written = {p.name: p.read_bytes() for p in tmp_path.glob("*.wal")}
    fixture = {p.name: p.read_bytes() for p in WAL_V1.glob("*.wal")}
    assert written == fixture


def test_v1_snapshot_fixture(tmp_path: Path) -> None:
    assert DiskSnapshotStore(SNAP_V1).load() == SNAPSHOT
    DiskSnapshotStore(tmp_path).save(SNAPSHOT)
    assert (tmp_path / "snapshot.bin").read_bytes() == (SNAP_V1 / "snapshot.bin").read_bytes()


def _rewrite() -> None:  # pragma: no cover - maintenance entry point
    shutil.rmtree(WAL_V1, ignore_errors=True)
    shutil.rmtree(SNAP_V1, ignore_errors=True)
    with DiskLogStore(WAL_V1, segment_bytes=SEG) as s:
        golden_ops(s)
    (WAL_V1 / "wal.lock").unlink()
    DiskSnapshotStore(SNAP_V1).save(SNAPSHOT)
    print(f"rewrote {WAL_V1} and {SNAP_V1}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    _rewrite()
