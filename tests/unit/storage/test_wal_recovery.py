"""DiskLogStore specifics: segments, rotation, deletion, torn tails, corruption, faults."""

from __future__ import annotations

import logging
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from metadata.raft.messages import Entry, HardState, Snapshot, SnapshotMeta
from metadata.storage import wal
from metadata.storage.disk import (
    CorruptDurableLogError,
    CorruptLogError,
    DiskLogStore,
    LogFailedError,
    LogLockedError,
    UnsupportedFormatError,
)
from tests.unit.storage.harness import LogView, view_of

SEG = 256  # tiny segments: a few records each


def ents(lo: int, hi: int, term: int = 1, size: int = 20) -> list[Entry]:
    return [Entry(term, i, data=bytes([i % 251]) * size) for i in range(lo, hi + 1)]


def snap(index: int, term: int) -> Snapshot:
    return Snapshot(SnapshotMeta(index, term), b"s")


def fill(d: Path, n: int, *, per_append: int = 1) -> LogView:
    """n entries of term 1 in appends of ``per_append``, synced; returns the view."""
    with DiskLogStore(d, segment_bytes=SEG) as s:
        for lo in range(1, n + 1, per_append):
            s.append(ents(lo, min(n, lo + per_append - 1)), HardState(1, 1, lo - 1))
        s.sync()
        return view_of(s)


def reopen_view(d: Path) -> LogView:
    with DiskLogStore(d, segment_bytes=SEG) as s:
        return view_of(s)


def segments(d: Path) -> list[Path]:
    return sorted(d.glob("*.wal"))


def record_offsets(path: Path) -> list[int]:
    """Start offsets of the records in a segment file."""
    data = path.read_bytes()
    out, pos = [], wal.SEGMENT_HEADER_SIZE
    while pos < len(data):
        out.append(pos)
        (length,) = struct.unpack_from("<I", data, pos + 4)
        pos += wal.RECORD_HEADER_SIZE + length
    return out


def record_types(path: Path) -> list[wal.RecordType]:
    data = path.read_bytes()
    return [wal.RecordType(data[off + 8]) for off in record_offsets(path)]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


# -- rotation and deletion -------------------------------------------------------------
def test_rotation_creates_numbered_segments(tmp_path: Path) -> None:
    view = fill(tmp_path, 40)
    segs = segments(tmp_path)
    assert len(segs) > 5
    assert [p.name for p in segs] == [wal.segment_name(i) for i in range(1, len(segs) + 1)]
    for p in segs:
        assert p.read_bytes()[:8] == b"BLOBWAL\x00"
        assert p.stat().st_size < SEG + 100  # rotation happens at the threshold
    assert reopen_view(tmp_path) == view


def test_batched_append_is_one_record(tmp_path: Path) -> None:
    with DiskLogStore(tmp_path, segment_bytes=1 << 20) as s:
        s.append(ents(1, 64, size=256), HardState(1, 1, 0))
        s.sync()
    (seg,) = segments(tmp_path)
    assert record_types(seg) == [
        wal.RecordType.CHECKPOINT,
        wal.RecordType.APPEND,
        wal.RecordType.SYNC_MARK,
    ]


def test_truncation_across_segment_boundaries(tmp_path: Path) -> None:
    fill(tmp_path, 40)
    with DiskLogStore(tmp_path, segment_bytes=SEG) as s:
        s.append(ents(5, 8, term=2), HardState(2, 2, 4))  # cuts 5..40, spread over segments
        s.sync()
        expected = view_of(s)
    assert expected.entries == (*ents(1, 4), *ents(5, 8, term=2))
    assert reopen_view(tmp_path) == expected
    with DiskLogStore(tmp_path, segment_bytes=SEG) as s:
        s.append(ents(9, 30, term=2))
        s.sync()
        expected = view_of(s)
    assert reopen_view(tmp_path) == expected


def test_compaction_removes_dead_segments_after_sync(tmp_path: Path) -> None:
    fill(tmp_path, 60)
    before = len(segments(tmp_path))
    with DiskLogStore(tmp_path, segment_bytes=SEG) as s:
        s.compact(snap(45, 1))
        assert segments(tmp_path)[0].name == wal.segment_name(1)  # not before sync()
        s.sync()
        after = len(segments(tmp_path))
        expected = view_of(s)
    assert after < before - 3
    assert reopen_view(tmp_path) == expected
    with DiskLogStore(tmp_path, segment_bytes=SEG) as s:
        assert (s.first_index(), s.term(s.first_index() - 1)) == (46, 1)


@pytest.mark.parametrize("restart", [False, True])
def test_reset_compaction_removes_all_old_segments(tmp_path: Path, restart: bool) -> None:
    fill(tmp_path, 40)
    s = DiskLogStore(tmp_path, segment_bytes=SEG)
    s.compact(snap(20, 5))  # conflicts at 20: the log is reset, 21..40 are dead too
    if restart:  # the replayed reset must make the same segments dead
        s.close()
        s = DiskLogStore(tmp_path, segment_bytes=SEG)
    s.sync()
    assert len(segments(tmp_path)) == 1
    s.append(ents(21, 23, term=5))
    s.sync()
    expected = view_of(s)
    s.close()
    assert expected.entries == tuple(ents(21, 23, term=5))
    assert reopen_view(tmp_path) == expected


@pytest.mark.parametrize("restart", [False, True])
def test_truncated_old_segments_are_removed(tmp_path: Path, restart: bool) -> None:
    fill(tmp_path, 40)
    n = len(segments(tmp_path))
    s = DiskLogStore(tmp_path, segment_bytes=SEG)
    s.append(ents(3, 30, term=2))  # one record, in the active segment n or a new n+1
    if restart:  # the replayed truncation must make the same segments dead
        s.close()
        s = DiskLogStore(tmp_path, segment_bytes=SEG)
    s.compact(snap(20, 2))  # entries 3..40 of term 1 are dead, 1..2 compacted
    s.sync()
    expected = view_of(s)
    s.close()
    assert int(segments(tmp_path)[0].stem, 16) >= n
    assert reopen_view(tmp_path) == expected


def test_interrupted_segment_deletion_is_recoverable(tmp_path: Path) -> None:
    d, copy = tmp_path / "wal", tmp_path / "copy"
    fill(d, 60)
    with DiskLogStore(d, segment_bytes=SEG) as s:
        s.compact(snap(50, 1))
        shutil.copytree(d, copy)  # state just before sync() deletes segments
        s.sync()
        expected = view_of(s)
        deleted = sorted({p.name for p in segments(copy)} - {p.name for p in segments(d)})
    assert len(deleted) >= 2
    (copy / deleted[0]).unlink()  # crash after deleting only the oldest one
    (copy / "wal.lock").unlink()
    assert reopen_view(copy) == expected


# -- torn tails and corruption ---------------------------------------------------------
def test_torn_last_record_is_truncated_at_every_offset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / "base"
    with DiskLogStore(d, segment_bytes=1 << 20) as s:
        s.append(ents(1, 3), HardState(1, 1, 0))
        s.sync()
        expected = view_of(s)
        (seg,) = segments(d)
        good = seg.stat().st_size
        s.append(ents(4, 5), HardState(1, 1, 3))  # written, never synced: a crash tears it
    full = seg.stat().st_size
    for cut in range(good, full):
        case = tmp_path / f"cut{cut}"
        shutil.copytree(d, case)
        os.truncate(case / seg.name, cut)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert reopen_view(case) == expected, cut
        if cut > good:
            assert any("torn tail" in r.getMessage() for r in caplog.records)
        assert (case / seg.name).stat().st_size == good  # truncated on disk too


@pytest.mark.parametrize("junk", [b"\x00" * 100, b"\xc7WR\x1d" + b"\xff" * 30])
def test_garbage_after_last_record_is_truncated(tmp_path: Path, junk: bytes) -> None:
    expected = fill(tmp_path, 5)
    last = segments(tmp_path)[-1]
    with last.open("ab") as f:
        f.write(junk)
    assert reopen_view(tmp_path) == expected
    with DiskLogStore(tmp_path, segment_bytes=SEG) as s:  # and appends land after it
        s.append(ents(6, 6))
        s.sync()
        expected = view_of(s)
    assert reopen_view(tmp_path) == expected


def test_bad_crc_in_unsynced_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    d = tmp_path
    with DiskLogStore(d, segment_bytes=1 << 20) as s:
        s.append(ents(1, 3))
        s.sync()
        expected = view_of(s)
        s.append(ents(4, 4))  # not synced: no sync mark follows it
    (seg,) = segments(d)
    flip(seg, seg.stat().st_size - 3)
    assert reopen_view(d) == expected


def test_bad_crc_in_last_synced_record_is_loud(tmp_path: Path) -> None:
    """Used to be truncated as a torn tail, losing an entry that was fsynced (and acked)."""
    d = tmp_path
    with DiskLogStore(d, segment_bytes=1 << 20) as s:
        s.append(ents(1, 3))
        s.sync()
        s.append(ents(4, 4))
        s.sync()
    (seg,) = segments(d)
    last_append = record_offsets(seg)[-2]
    flip(seg, seg.stat().st_size - wal.SYNC_MARK_BYTES - 3)
    with pytest.raises(CorruptDurableLogError, match="valid record") as info:
        DiskLogStore(d, segment_bytes=SEG)
    assert (info.value.path, info.value.offset) == (str(seg), last_append)


def test_corrupt_record_followed_by_valid_data_is_loud(tmp_path: Path) -> None:
    with DiskLogStore(tmp_path, segment_bytes=1 << 20) as s:
        for i in range(1, 6):
            s.append(ents(i, i))
        s.sync()
    (seg,) = segments(tmp_path)
    offsets = record_offsets(seg)
    flip(seg, offsets[2] + wal.RECORD_HEADER_SIZE + 3)  # payload of the 2nd APPEND
    with pytest.raises(CorruptDurableLogError, match="valid record"):
        DiskLogStore(tmp_path, segment_bytes=SEG)


def test_corrupt_length_followed_by_valid_data_is_loud(tmp_path: Path) -> None:
    with DiskLogStore(tmp_path, segment_bytes=1 << 20) as s:
        for i in range(1, 6):
            s.append(ents(i, i))
        s.sync()
    (seg,) = segments(tmp_path)
    flip(seg, record_offsets(seg)[1] + 6)  # length field of the first APPEND
    with pytest.raises(CorruptLogError):
        DiskLogStore(tmp_path, segment_bytes=SEG)


@pytest.mark.parametrize("where", ["last_record", "header", "truncated"])
def test_damage_in_a_non_last_segment_is_loud(tmp_path: Path, where: str) -> None:
    fill(tmp_path, 30)
    segs = segments(tmp_path)
    assert len(segs) >= 3
    victim = segs[1]
    if where == "last_record":
        flip(victim, victim.stat().st_size - 2)
    elif where == "header":
        flip(victim, 3)
    else:
        os.truncate(victim, victim.stat().st_size - 5)
    with pytest.raises(CorruptDurableLogError, match="non-last segment") as info:
        DiskLogStore(tmp_path, segment_bytes=SEG)
    assert info.value.path == str(victim)


def test_missing_middle_segment_is_loud(tmp_path: Path) -> None:
    fill(tmp_path, 30)
    segments(tmp_path)[1].unlink()
    with pytest.raises(CorruptLogError, match="missing"):
        DiskLogStore(tmp_path, segment_bytes=SEG)


def test_missing_first_segment_with_live_entries_is_loud(tmp_path: Path) -> None:
    fill(tmp_path, 30)
    segments(tmp_path)[0].unlink()
    with pytest.raises(CorruptLogError, match="missing"):
        DiskLogStore(tmp_path, segment_bytes=SEG)


@pytest.mark.parametrize("keep", [0, 10, wal.SEGMENT_HEADER_SIZE, wal.SEGMENT_HEADER_SIZE + 20])
def test_torn_segment_creation_is_removed(tmp_path: Path, keep: int) -> None:
    with DiskLogStore(tmp_path, segment_bytes=SEG) as s:
        while len(segments(tmp_path)) < 3:
            s.append(ents(s.last_index() + 1, s.last_index() + 1))
        s.sync()
        last = segments(tmp_path)[-1]
        assert len(record_offsets(last)) == 3  # checkpoint, the append that rotated, mark
    os.truncate(last, record_offsets(last)[1])  # as it was right after creation
    expected = reopen_view(tmp_path)
    os.truncate(last, keep)
    assert reopen_view(tmp_path) == expected
    assert not last.exists()


def test_zeroed_last_segment_is_loud(tmp_path: Path) -> None:
    fill(tmp_path, 30)
    last = segments(tmp_path)[-1]
    last.write_bytes(bytes(last.stat().st_size))  # longer than any torn creation
    with pytest.raises(CorruptDurableLogError, match="header"):
        DiskLogStore(tmp_path, segment_bytes=SEG)


def test_torn_first_creation_gives_a_fresh_log(tmp_path: Path) -> None:
    DiskLogStore(tmp_path).close()
    (seg,) = segments(tmp_path)
    os.truncate(seg, 30)
    with DiskLogStore(tmp_path) as s:
        assert view_of(s) == LogView(0, 0, HardState(), ())
        s.append(ents(1, 1))


def test_torn_only_segment_after_compaction_is_loud(tmp_path: Path) -> None:
    fill(tmp_path, 30)
    with DiskLogStore(tmp_path, segment_bytes=SEG) as s:
        s.compact(snap(30, 1))
        s.sync()
    (seg,) = segments(tmp_path)
    os.truncate(seg, 30)
    with pytest.raises(CorruptLogError):
        DiskLogStore(tmp_path, segment_bytes=SEG)


def test_unsupported_version_is_loud(tmp_path: Path) -> None:
    fill(tmp_path, 3)
    seg = segments(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    struct.pack_into("<H", data, 8, wal.SEGMENT_VERSION + 1)
    struct.pack_into("<I", data, 20, zlib.crc32(bytes(data[:20])))
    seg.write_bytes(bytes(data))
    with pytest.raises(UnsupportedFormatError):
        DiskLogStore(tmp_path, segment_bytes=SEG)


def test_renamed_segment_is_loud(tmp_path: Path) -> None:
    fill(tmp_path, 3)
    (seg,) = segments(tmp_path)
    seg.rename(tmp_path / wal.segment_name(7))
    with pytest.raises(CorruptLogError, match="seq"):
        DiskLogStore(tmp_path, segment_bytes=SEG)


# -- API guards and faults ------------------------------------------------------------
def test_directory_lock(tmp_path: Path) -> None:
    with DiskLogStore(tmp_path) as s:
        with pytest.raises(LogLockedError):
            DiskLogStore(tmp_path)
        s.append(ents(1, 1))
    with DiskLogStore(tmp_path) as s:
        assert s.last_index() == 1


def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    s = DiskLogStore(tmp_path)
    s.close()
    s.close()
    with pytest.raises(ValueError, match="closed"):
        s.append(ents(1, 1))


def test_non_contiguous_entries_rejected_without_writing(tmp_path: Path) -> None:
    with DiskLogStore(tmp_path) as s:
        size = segments(tmp_path)[0].stat().st_size
        with pytest.raises(ValueError, match="contiguous"):
            s.append([Entry(1, 1), Entry(1, 3)])
        assert s.last_index() == 0
        assert segments(tmp_path)[0].stat().st_size == size


def test_segment_bytes_lower_bound(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        DiskLogStore(tmp_path, segment_bytes=10)


def test_failed_fsync_poisons_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = DiskLogStore(tmp_path)
    s.append(ents(1, 1))

    def boom(fd: int) -> None:
        raise OSError(5, "EIO")

    monkeypatch.setattr(os, "fdatasync", boom)
    with pytest.raises(OSError):
        s.sync()
    monkeypatch.undo()
    with pytest.raises(LogFailedError):
        s.append(ents(2, 2))
    with pytest.raises(LogFailedError):
        s.sync()
    s.close()
    assert reopen_view(tmp_path).entries == tuple(ents(1, 1))


def test_failed_write_leaves_no_partial_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = DiskLogStore(tmp_path)
    s.append(ents(1, 2))
    (seg,) = segments(tmp_path)
    size = seg.stat().st_size
    real_write = os.write
    calls = []

    def half_then_enospc(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "ENOSPC")

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(OSError):
        s.append(ents(3, 4, size=200))
    monkeypatch.undo()
    assert seg.stat().st_size == size
    assert s.last_index() == 2
    s.append(ents(3, 3))  # still usable
    s.sync()
    expected = view_of(s)
    s.close()
    assert reopen_view(tmp_path) == expected
