"""SnapshotStore contract (memory and disk) and DiskSnapshotStore's file handling."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import pytest

from metadata.raft.messages import ConfState, Snapshot, SnapshotMeta
from metadata.storage.disk import (
    CorruptSnapshotError,
    DiskSnapshotStore,
    UnsupportedFormatError,
)
from metadata.storage.memory import MemorySnapshotStore

SNAP = Snapshot(
    SnapshotMeta(
        42, 7, ConfState(voters=(1, 2, 3), learners=(9,), voters_outgoing=(1, 4), auto_leave=True)
    ),
    b"\x00state\xff" * 100,
)


@pytest.fixture(params=["memory", "disk"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> MemorySnapshotStore | DiskSnapshotStore:
    if request.param == "memory":
        return MemorySnapshotStore()
    return DiskSnapshotStore(tmp_path)


def test_empty(store: MemorySnapshotStore | DiskSnapshotStore) -> None:
    assert store.load() is None


def test_save_load_replace(store: MemorySnapshotStore | DiskSnapshotStore) -> None:
    store.save(SNAP)
    assert store.load() == SNAP
    newer = Snapshot(SnapshotMeta(50, 8), b"")
    store.save(newer)
    assert store.load() == newer


@pytest.mark.parametrize(
    "snapshot",
    [SNAP, Snapshot(), Snapshot(SnapshotMeta(1, 1, ConfState(voters=(2**63,))), b"x")],
)
def test_disk_round_trip_through_reopen(tmp_path: Path, snapshot: Snapshot) -> None:
    DiskSnapshotStore(tmp_path).save(snapshot)
    assert DiskSnapshotStore(tmp_path).load() == snapshot


def _saved(tmp_path: Path) -> Path:
    DiskSnapshotStore(tmp_path).save(SNAP)
    return tmp_path / "snapshot.bin"


@pytest.mark.parametrize("offset", [0, 5, 13, 20, 26, 30, 60, -1])
def test_corrupt_byte_is_loud(tmp_path: Path, offset: int) -> None:
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptSnapshotError):
        DiskSnapshotStore(tmp_path)


@pytest.mark.parametrize("keep", [0, 10, 28, 100])
def test_truncated_file_is_loud(tmp_path: Path, keep: int) -> None:
    path = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(CorruptSnapshotError):
        DiskSnapshotStore(tmp_path)


def test_unsupported_version_is_loud(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, 8, 9)
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedFormatError):
        DiskSnapshotStore(tmp_path)


def test_crc_valid_but_malformed_meta_is_loud(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<B", data, 28 + 16, 7)  # auto_leave must be 0 or 1
    crc = zlib.crc32(bytes(data[28:]), zlib.crc32(bytes(data[:24])))
    struct.pack_into("<I", data, 24, crc)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptSnapshotError, match="meta"):
        DiskSnapshotStore(tmp_path)


def test_interrupted_save_keeps_the_old_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _saved(tmp_path)
    tmp = tmp_path / "snapshot.bin.tmp"
    tmp.write_bytes(b"BLOBSNAP half-written")  # crash before the rename
    with caplog.at_level(logging.WARNING):
        store = DiskSnapshotStore(tmp_path)
    assert store.load() == SNAP
    assert not tmp.exists()
    assert any("stale temp" in r.getMessage() for r in caplog.records)


def test_save_leaves_no_temp_file(tmp_path: Path) -> None:
    _saved(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot.bin"]
