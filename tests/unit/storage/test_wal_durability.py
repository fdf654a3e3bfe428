"""Torn tail versus corrupt durable data in the WAL (sync marks, ``wal.py``).

- a crash may tear anything the store had not fdatasynced: every cut point at or above the
  durable end, followed by nothing, zeros or garbage, recovers (checked against an oracle:
  the state after the last record the damaged file still holds intact);
- a flipped bit anywhere in fsynced data refuses to open with ``CorruptDurableLogError``
  naming the file and the damaged record's offset, including the last fsynced record;
- the only tolerated flip is in the newest sync mark itself, which holds no data;
- a group commit still costs one fdatasync.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metadata.raft.messages import Entry, HardState, Snapshot, SnapshotMeta
from metadata.storage import wal
from metadata.storage.disk import CorruptLogError, DiskLogStore
from tests.unit.storage.harness import FAST_TMP, LogView, durable_size, view_of

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ents(lo: int, hi: int, term: int = 1, size: int = 20) -> list[Entry]:
    return [Entry(term, i, data=bytes([i % 251]) * size) for i in range(lo, hi + 1)]


@dataclass(frozen=True)
class Base:
    """One closed single-segment log: its bytes, where its durable part ends, and the
    state replay yields when the file ends right after each record (``states``)."""

    name: str
    data: bytes
    durable: int
    states: tuple[tuple[int, LogView], ...]

    def expected(self, intact: int) -> LogView:
        return max((end, v) for end, v in self.states if end <= intact)[1]

    def record_at(self, offset: int) -> int:
        """Start of the record holding byte ``offset`` (0 for the segment header)."""
        starts = [0, wal.SEGMENT_HEADER_SIZE, *(end for end, _ in self.states)]
        return max(s for s in starts if s <= offset)


def _build(with_unsynced_tail: bool) -> Base:
    """Synced batches of every record kind; then (maybe) unsynced records a crash tears."""
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        d = Path(tmp)
        states: list[tuple[int, LogView]] = []
        with DiskLogStore(d, segment_bytes=1 << 20) as s:
            (seg,) = s.segment_paths()

            def note() -> None:
                states.append((seg.stat().st_size, view_of(s)))

            note()  # the checkpoint
            steps: list[Callable[[], None]] = [
                lambda: s.append(ents(1, 3), HardState(1, 1, 0)),
                lambda: s.append(ents(4, 8, size=300), HardState(1, 1, 3)),
                lambda: s.append([], HardState(2, 2, 8)),
                lambda: s.compact(Snapshot(SnapshotMeta(4, 1), b"")),
                lambda: s.append(ents(9, 9, term=2), None),
            ]
            for step in steps:  # each step fsynced on its own: record, then mark
                step()
                note()
                s.sync()
                note()
            durable = durable_size(seg)
            unsynced: list[Callable[[], None]] = [
                lambda: s.append(ents(7, 11, term=2, size=200), HardState(2, 2, 8)),
                lambda: s.append([], HardState(2, 2, 10)),
                lambda: s.compact(Snapshot(SnapshotMeta(8, 2), b"")),
                lambda: s.append(ents(12, 12, term=2, size=900)),
            ]
            for step in unsynced if with_unsynced_tail else []:
                step()
                note()
        return Base(seg.name, seg.read_bytes(), durable, tuple(states))


@functools.cache
def base(with_unsynced_tail: bool) -> Base:
    return _build(with_unsynced_tail)


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        yield Path(tmp)


def open_view(d: Path) -> LogView:
    with DiskLogStore(d) as s:
        return view_of(s)


def flipped(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- torn tails ------------------------------------------------------------------------
@SETTINGS
@given(data=st.data())
def test_any_torn_tail_recovers(data: st.DataObject) -> None:
    b = base(with_unsynced_tail=True)
    assert b.durable < b.states[-1][0] - 1000  # the unsynced records are what may tear
    cut = data.draw(st.integers(b.durable, len(b.data)), label="cut")
    junk_kind = data.draw(st.sampled_from(["none", "zeros", "garbage"]), label="junk")
    junk = b""
    if junk_kind != "none" and cut < len(b.data):
        n = data.draw(st.integers(1, len(b.data) - cut), label="junk bytes")
        junk = bytes(n) if junk_kind == "zeros" else data.draw(st.binary(min_size=n, max_size=n))
    damaged = b.data[:cut] + junk
    pairs = zip(damaged, b.data[: len(damaged)], strict=True)
    intact = next((i for i, (x, y) in enumerate(pairs) if x != y), len(damaged))
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        d = Path(tmp)
        (d / b.name).write_bytes(damaged)
        expected = b.expected(intact)
        assert open_view(d) == expected
        assert open_view(d) == expected  # the recovered file is itself a clean log
        with DiskLogStore(d) as s:  # and it takes appends after the cut
            s.append([Entry(9, s.last_index() + 1, data=b"next")])
            s.sync()
            after = view_of(s)
        assert open_view(d) == after


def test_every_cut_of_the_unsynced_tail_recovers(scratch: Path) -> None:
    b = base(with_unsynced_tail=True)
    for cut in range(b.durable, len(b.data) + 1, 7):
        (scratch / b.name).write_bytes(b.data[:cut])
        assert open_view(scratch) == b.expected(cut), cut


# -- corruption of fsynced data --------------------------------------------------------
@SETTINGS
@given(data=st.data())
def test_flipped_bit_in_fsynced_data_refuses_to_open(data: st.DataObject) -> None:
    b = base(with_unsynced_tail=False)
    bit = data.draw(st.integers(0, b.durable * 8 - 1), label="bit")
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        path = Path(tmp) / b.name
        path.write_bytes(flipped(b.data, bit))
        with pytest.raises(CorruptLogError) as info:
            DiskLogStore(Path(tmp))
        err = info.value
        assert isinstance(err, wal.CorruptDurableLogError)
        assert (err.path, err.offset) == (str(path), b.record_at(bit // 8))
        assert path.read_bytes() == flipped(b.data, bit)  # nothing truncated or rewritten


@pytest.mark.parametrize("bit", range(0, wal.SYNC_MARK_BYTES * 8, 5))
def test_flipped_bit_in_the_newest_sync_mark_loses_nothing(scratch: Path, bit: int) -> None:
    b = base(with_unsynced_tail=False)
    assert len(b.data) - b.durable == wal.SYNC_MARK_BYTES
    (scratch / b.name).write_bytes(flipped(b.data, b.durable * 8 + bit))
    assert open_view(scratch) == b.states[-1][1]
    assert (scratch / b.name).read_bytes() == b.data  # torn mark dropped, a new one written


def test_flipped_bit_in_the_last_fsynced_record_refuses(scratch: Path) -> None:
    """The case that used to be truncated as a torn tail (losing an acked entry)."""
    b = base(with_unsynced_tail=False)
    last = b.record_at(b.durable - 1)
    (scratch / b.name).write_bytes(flipped(b.data, (last + wal.RECORD_HEADER_SIZE + 5) * 8))
    with pytest.raises(CorruptLogError) as info:
        DiskLogStore(scratch)
    err = info.value
    assert isinstance(err, wal.CorruptDurableLogError)
    assert (err.path, err.offset) == (str(scratch / b.name), last)
    message = str(err)
    for needed in (str(scratch / b.name), f"offset {last}", "members remove", "snapshot"):
        assert needed in message


def test_flipped_bit_in_an_earlier_fsynced_record_refuses(scratch: Path) -> None:
    b = base(with_unsynced_tail=False)
    second = b.states[1][0]  # the record after the first APPEND
    (scratch / b.name).write_bytes(flipped(b.data, (second + 20) * 8))
    with pytest.raises(CorruptLogError, match=f"offset {second}") as info:
        DiskLogStore(scratch)
    assert isinstance(info.value, wal.CorruptDurableLogError)


def test_recovered_tail_is_vouched_for(scratch: Path) -> None:
    """Open fdatasyncs what it recovered and marks it: a later flip there is caught."""
    b = base(with_unsynced_tail=True)
    first_unsynced_end = b.states[[e for e, _ in b.states].index(b.durable) + 2][0]
    (scratch / b.name).write_bytes(b.data[:first_unsynced_end])  # the rest was torn
    assert open_view(scratch) == b.expected(first_unsynced_end)
    path = scratch / b.name
    assert durable_size(path) == first_unsynced_end
    path.write_bytes(flipped(path.read_bytes(), (first_unsynced_end - 3) * 8))
    with pytest.raises(CorruptLogError) as info:
        DiskLogStore(scratch)
    assert isinstance(info.value, wal.CorruptDurableLogError)


def test_reopening_an_idle_log_writes_nothing(scratch: Path) -> None:
    with DiskLogStore(scratch) as s:
        s.append(ents(1, 2))
    (seg,) = scratch.glob("*.wal")
    open_view(scratch)  # vouches for the unsynced append it recovered
    marked = seg.read_bytes()
    for _ in range(3):
        open_view(scratch)
    assert seg.read_bytes() == marked


def test_impossible_sync_marks_are_corruption(scratch: Path) -> None:
    ckpt = wal.encode_checkpoint(0, 0, HardState())
    for header, mark in [
        (wal.encode_segment_header(1, version=1), wal.encode_sync_mark(10)),  # not in v1
        (wal.encode_segment_header(1), wal.encode_sync_mark(10_000)),  # vouches for itself
    ]:
        (scratch / wal.segment_name(1)).write_bytes(header + ckpt + mark)
        with pytest.raises(CorruptLogError, match="sync mark"):
            DiskLogStore(scratch)


# -- cost ------------------------------------------------------------------------------
def test_group_commit_still_costs_one_fdatasync(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fdatasync, real_fsync, real_write = os.fdatasync, os.fsync, os.write

    def fdatasync(fd: int) -> None:
        calls.append("fdatasync")
        real_fdatasync(fd)

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def write(fd: int, buf: bytes | memoryview) -> int:
        calls.append("write")
        return real_write(fd, buf)

    with DiskLogStore(scratch, segment_bytes=1 << 20) as s:
        monkeypatch.setattr(os, "fdatasync", fdatasync)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "write", write)
        for lo in range(1, 40, 4):  # a group commit: several appends, one sync
            calls.clear()
            for i in range(lo, lo + 4):
                s.append(ents(i, i), HardState(1, 1, i - 1))
            s.sync()
            assert calls == ["write"] * 4 + ["fdatasync", "write"]  # the last write: mark
        calls.clear()
        s.sync()  # nothing new: no I/O at all
        assert calls == []
