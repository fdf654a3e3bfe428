"""Format stability: checked-in WAL segments (version 1, from before sync marks, and
version 2) and snapshot file still read, and today's code still writes exactly the
version-2 and snapshot bytes.

If a layout must change, add a new format version (and a migration) and keep these
fixtures. The version-1 fixture is frozen (no code writes version 1 any more);
regenerate the others only for a deliberate fix: ``python -m tests.unit.storage.test_wal_format``.
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
from metadata.storage import wal
from metadata.storage.disk import DiskLogStore, DiskSnapshotStore
from metadata.storage.memory import MemoryLogStore
from tests.unit.storage.harness import view_of

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wal"
WAL_V1 = FIXTURES / "v1"
WAL_V2 = FIXTURES / "v2"
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


def wal_files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.wal"))}


def segment_version(path: Path) -> int:
    header = wal.decode_segment_header(path.read_bytes())
    assert header is not None
    return header.version


def test_v1_fixture_replays_and_continues_in_a_v2_segment(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    shutil.copytree(WAL_V1, d)
    old = wal_files(WAL_V1)
    with DiskLogStore(d, segment_bytes=SEG) as s:
        assert view_of(s) == expected_view()
        paths = s.segment_paths()
        assert [p.name for p in paths[:-1]] == sorted(old)  # nothing lost, nothing rewritten
        assert {p.name: wal_files(d)[p.name] for p in paths[:-1]} == old
        assert segment_version(paths[-1]) == wal.SEGMENT_VERSION  # v1 is never appended to
        s.append([Entry(3, 17, data=b"after-upgrade")], HardState(3, 2, 16))
        s.sync()
        expected = view_of(s)
    with DiskLogStore(d, segment_bytes=SEG) as s:
        assert view_of(s) == expected
        s.compact(Snapshot(SnapshotMeta(17, 3), b""))
        s.sync()
        assert [segment_version(p) for p in s.segment_paths()] == [wal.SEGMENT_VERSION]


def test_v1_last_record_keeps_the_old_torn_tail_rule(tmp_path: Path) -> None:
    """A v1 segment has no sync marks: a bad last record cannot be told from a torn one."""
    d = tmp_path / "wal"
    shutil.copytree(WAL_V1, d)
    last = max(d.glob("*.wal"))
    data = bytearray(last.read_bytes())
    data[-2] ^= 0x01  # the last APPEND (entries 14..16)
    last.write_bytes(bytes(data))
    with DiskLogStore(d, segment_bytes=SEG) as s:
        assert s.last_index() == 13


def test_v2_fixture_replays(tmp_path: Path) -> None:
    shutil.copytree(WAL_V2, tmp_path / "wal")
    assert {segment_version(p) for p in (tmp_path / "wal").glob("*.wal")} == {2}
    with DiskLogStore(tmp_path / "wal", segment_bytes=SEG) as s:
        assert view_of(s) == expected_view()
        assert len(s.segment_paths()) >= 2
    assert wal_files(tmp_path / "wal") == wal_files(WAL_V2)  # open wrote nothing


def test_v2_bytes_unchanged(tmp_path: Path) -> None:
    with DiskLogStore(tmp_path, segment_bytes=SEG) as s:
        golden_ops(s)
    assert wal_files(tmp_path) == wal_files(WAL_V2)


def test_v1_snapshot_fixture(tmp_path: Path) -> None:
    assert DiskSnapshotStore(SNAP_V1).load() == SNAPSHOT
    DiskSnapshotStore(tmp_path).save(SNAPSHOT)
    assert (tmp_path / "snapshot.bin").read_bytes() == (SNAP_V1 / "snapshot.bin").read_bytes()


def _rewrite() -> None:  # pragma: no cover - maintenance entry point
    shutil.rmtree(WAL_V2, ignore_errors=True)
    shutil.rmtree(SNAP_V1, ignore_errors=True)
    with DiskLogStore(WAL_V2, segment_bytes=SEG) as s:
        golden_ops(s)
    (WAL_V2 / "wal.lock").unlink()
    DiskSnapshotStore(SNAP_V1).save(SNAPSHOT)
    print(f"rewrote {WAL_V2} and {SNAP_V1}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    _rewrite()
