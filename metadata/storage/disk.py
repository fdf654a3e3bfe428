"""Durable ``LogStore`` (segmented write-ahead log) and ``SnapshotStore`` (one file).

``DiskLogStore`` keeps the non-compacted log in memory (reads never touch disk) and logs
every mutation to the WAL of ``metadata/storage/wal.py`` (byte layout documented there):
one APPEND record per ``append`` (entries and hard state together, so a call is atomic on
replay), one COMPACT record per effective ``compact``. Hard state lives in the WAL rather
than in a side file: it then shares the append's single ``write`` and ``fdatasync``, which
costs nothing extra per Raft ``Ready``, where a side file would add a write, an fsync, a
rename and a directory fsync to every vote and commit change.

Durability and ordering:
- ``append``/``compact`` do one ``os.write`` of one record on the open segment (O_APPEND);
  nothing is promised durable until ``sync()``, which ``fdatasync``\\ s the active segment
  and then writes (without another fsync) a SYNC_MARK naming the synced end: the evidence
  recovery uses to tell a bit flip in fsynced data from a torn tail (see ``wal.py``). So
  a group commit still costs one ``fdatasync``; the mark adds one 24-byte ``write``.
- Rotation (once the active segment reaches ``segment_bytes``) fdatasyncs the old segment,
  creates the next one with its header and a CHECKPOINT, fdatasyncs it and fsyncs the
  directory. So only the last segment can ever hold unsynced bytes, and no seq gap can
  appear after a crash.
- Segments are deleted (oldest first, each followed by a directory fsync) by ``sync()``,
  once durable: a segment goes when none of its entries is live above the compaction
  point, i.e. it holds nothing replay needs (later checkpoints carry hard state and the
  compaction point). The snapshot covering that point was already durable when
  ``compact`` was called (``SnapshotStore.save`` is durable).
- On open: torn tail truncated (warning logged), torn last-segment creation removed,
  damaged durable data raises ``CorruptDurableLogError`` (file, offset, how to recover:
  the node must be re-added and fed a snapshot; it must not start on a log that lost
  entries it may have acknowledged), anything else damaged ``CorruptLogError``; then the
  last segment and directory are fsynced, so state recovered from the page cache after a
  process crash is durable before Raft acts on it, and a SYNC_MARK vouches for it. A
  version-1 last segment (written before sync marks) is never appended to: open starts a
  version-2 segment. Any failed write or fsync poisons the store (``LogFailedError``
  on every later call): after a failed fsync the page cache cannot be trusted.

``DiskSnapshotStore`` writes ``snapshot.bin`` via ``snapshot.bin.tmp`` + fsync + rename +
directory fsync. Layout (little-endian)::

    0   8  magic b"BLOBSNAP"      12  4  u32 meta length M     24  4  u32 CRC-32 of bytes
    8   2  u16 version (1)        16  8  u64 data length D            0..24, meta and data
    10  2  u16 reserved, 0        28  M  meta   28+M  D  data
    meta: u64 index, u64 term, u8 auto_leave, then voters, learners, voters_outgoing,
          each as u32 count followed by count u64 node ids

The WAL and the snapshot may share one directory (their file names do not collide).
Must not import asyncio or the network.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from blobstore.log import get_logger
from metadata.raft.messages import ConfState, Entry, HardState, Snapshot, SnapshotMeta
from metadata.storage import wal
from metadata.storage.base import CompactedError, LogView, UnavailableError
from metadata.storage.wal import (
    CorruptDurableLogError,
    CorruptLogError,
    StorageError,
    UnsupportedFormatError,
)

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "CorruptDurableLogError",
    "CorruptLogError",
    "CorruptSnapshotError",
    "DiskLogStore",
    "DiskSnapshotStore",
    "LogFailedError",
    "LogLockedError",
    "StorageError",
    "UnsupportedFormatError",
]

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
_MIN_SEGMENT_BYTES = 256
_SEGMENT_RE = re.compile(r"^([0-9a-f]{16})\.wal$")
_LOCK_NAME = "wal.lock"

log = get_logger(__name__)


class LogFailedError(StorageError):
    """An earlier write or fsync failed; the store must be reopened (after a restart)."""


class LogLockedError(StorageError):
    """Another open ``DiskLogStore`` (in this or another process) owns the directory."""


class CorruptSnapshotError(StorageError):
    """The snapshot file fails its magic, length or CRC check."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(dir_fd: int) -> None:
    os.fsync(dir_fd)


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    live_max: int  # highest still-live entry index this segment wrote (0: none)


class DiskLogStore(LogView):
    """The Raft log and hard state in a segmented WAL under ``directory``."""

    def __init__(self, directory: Path, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if segment_bytes < _MIN_SEGMENT_BYTES:
            raise ValueError(f"segment_bytes must be at least {_MIN_SEGMENT_BYTES}")
        self._dir = Path(directory)
        self._segment_bytes = segment_bytes
        self._dir.mkdir(parents=True, exist_ok=True)
        self._failed: BaseException | None = None
        self._closed = False
        self._fd = -1
        self._lock_fd = os.open(self._dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise LogLockedError(f"{self._dir} is in use by another DiskLogStore") from exc
        self._dir_fd = os.open(self._dir, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._recover()
        except BaseException:
            self._close_fds()
            raise

    # -- recovery ------------------------------------------------------------------------
    def _recover(self) -> None:
        seqs = sorted(
            int(m.group(1), 16) for p in self._dir.iterdir() if (m := _SEGMENT_RE.match(p.name))
        )
        for a, b in itertools.pairwise(seqs):
            if b != a + 1:
                raise CorruptLogError(f"{self._dir}: segment {a + 1:016x} missing")
        last_scan: wal.SegmentScan | None = None
        while seqs:  # the last segment decides about torn tails and torn creations
            path = self._path(seqs[-1])
            data = path.read_bytes()
            last_scan = wal.scan_segment(data, name=str(path), seq=seqs[-1], is_last=True)
            if last_scan.records:
                break
            if last_scan.size_bytes > wal.SEGMENT_CREATION_BYTES:
                raise CorruptDurableLogError(
                    str(path), 0, "unreadable segment header, longer than a torn creation"
                )
            if len(seqs) == 1 and seqs[0] != 1:  # older segments went after it was synced
                raise CorruptDurableLogError(str(path), 0, "unreadable header of the only segment")
            log.warning("wal: removing segment with torn header", segment=path.name)
            path.unlink()
            _fsync_dir(self._dir_fd)
            seqs.pop()
            last_scan = None
        if last_scan is None:
            self._segments = [self._create_segment(1, 0, 0, HardState())]
            self._snap_index = self._snap_term = 0
            self._hs = HardState()
            self._entries: list[Entry] = []
            self._active_size = os.fstat(self._fd).st_size
            self._dirty = False
            return
        replayer = wal.Replayer()
        for seq in seqs[:-1]:
            path = self._path(seq)
            scan = wal.scan_segment(path.read_bytes(), name=str(path), seq=seq, is_last=False)
            replayer.segment(path.name, scan.records)
        last_path = self._path(last_scan.seq)
        replayer.segment(last_path.name, last_scan.records)
        state = replayer.finish()
        if last_scan.valid_bytes < last_scan.size_bytes:
            log.warning(
                "wal: truncating torn tail",
                segment=last_path.name,
                offset=last_scan.valid_bytes,
                dropped_bytes=last_scan.size_bytes - last_scan.valid_bytes,
            )
            os.truncate(last_path, last_scan.valid_bytes)
        self._fd = os.open(last_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        os.fdatasync(self._fd)
        _fsync_dir(self._dir_fd)
        self._segments = [
            _Segment(seq, self._path(seq), lm) for seq, lm in zip(seqs, state.live_max, strict=True)
        ]
        self._snap_index, self._snap_term = state.snap_index, state.snap_term
        self._hs = state.hard_state
        self._entries = state.entries
        self._active_size = last_scan.valid_bytes
        self._dirty = False
        if last_scan.version < wal.SEGMENT_VERSION:  # no marks in it: continue in a new one
            log.info("wal: sealing an old-format segment", segment=last_path.name)
            self._rotate()
        elif last_scan.valid_bytes > last_scan.marked_bytes:  # just fdatasynced: vouch for it
            self._write(wal.encode_sync_mark(self._active_size), rotate=False)
            self._dirty = False

    def _path(self, seq: int) -> Path:
        return self._dir / wal.segment_name(seq)

    def _create_segment(self, seq: int, snap_index: int, snap_term: int, hs: HardState) -> _Segment:
        """Create segment ``seq`` durably (file and directory entry) and make it active."""
        path = self._path(seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            _write_all(
                fd,
                wal.encode_segment_header(seq) + wal.encode_checkpoint(snap_index, snap_term, hs),
            )
            os.fdatasync(fd)
            _fsync_dir(self._dir_fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return _Segment(seq, path, 0)

    # -- writes --------------------------------------------------------------------------
    def append(self, entries: Sequence[Entry], hard_state: HardState | None = None) -> None:
        self._check_usable()
        hs = hard_state if hard_state is not None and hard_state != self._hs else None
        if entries:
            first = entries[0].index
            if first <= self._snap_index:
                raise CompactedError(first)
            if first > self.last_index() + 1:
                raise UnavailableError(first)
        elif hs is None:
            return
        self._write(wal.encode_append(entries, hs))
        if entries:
            cut = first - self._snap_index - 1
            if cut < len(self._entries):  # a conflicting suffix is replaced
                del self._entries[cut:]
                for seg in self._segments:
                    if seg.live_max >= first:
                        seg.live_max = first - 1
            self._entries.extend(entries)
            self._segments[-1].live_max = entries[-1].index
        if hs is not None:
            self._hs = hs

    def sync(self) -> None:
        self._check_usable()
        if self._dirty:
            try:
                os.fdatasync(self._fd)
            except BaseException as exc:
                self._failed = exc
                raise
            # The mark is not fsynced here: it rides on the next sync (or writeback).
            self._write(wal.encode_sync_mark(self._active_size), rotate=False)
            self._dirty = False
        self._remove_dead_segments()

    def compact(self, snapshot: Snapshot) -> None:
        self._check_usable()
        index, term = snapshot.meta.index, snapshot.meta.term
        if index <= self._snap_index:
            return
        keep = index <= self.last_index() and self.term(index) == term
        self._write(wal.encode_compact(index, term, not keep))
        if keep:
            del self._entries[: index - self._snap_index]
        else:  # the snapshot is ahead of (or conflicts with) our log: start over from it
            self._entries = []
            for seg in self._segments:
                seg.live_max = 0
        self._snap_index, self._snap_term = index, term
        if self._hs.commit < index:
            self._hs = HardState(self._hs.term, self._hs.vote, index)

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Close the files (without syncing) and release the directory lock."""
        if not self._closed:
            self._closed = True
            self._close_fds()

    def __enter__(self) -> DiskLogStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def segment_paths(self) -> list[Path]:
        """The segment files currently in use, oldest first (for tests and tooling)."""
        return [seg.path for seg in self._segments]

    # -- internals -----------------------------------------------------------------------
    def _close_fds(self) -> None:
        for fd in (self._fd, self._dir_fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._dir_fd = self._lock_fd = -1

    def _check_usable(self) -> None:
        if self._closed:
            raise ValueError("DiskLogStore is closed")
        if self._failed is not None:
            raise LogFailedError(f"{self._dir}: earlier I/O failure") from self._failed

    def _write(self, record: bytes, *, rotate: bool = True) -> None:
        if rotate and self._active_size >= self._segment_bytes:
            self._rotate()
        try:
            _write_all(self._fd, record)
        except BaseException as exc:
            try:  # drop the partial record so later records are not written after garbage
                os.ftruncate(self._fd, self._active_size)
            except BaseException:
                self._failed = exc
            raise
        self._active_size += len(record)
        self._dirty = True

    def _rotate(self) -> None:
        try:
            os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = -1
            seg = self._create_segment(
                self._segments[-1].seq + 1, self._snap_index, self._snap_term, self._hs
            )
        except BaseException as exc:
            self._failed = exc
            raise
        self._segments.append(seg)
        self._active_size = os.fstat(self._fd).st_size
        self._dirty = False

    def _remove_dead_segments(self) -> None:
        while len(self._segments) > 1 and self._segments[0].live_max <= self._snap_index:
            seg = self._segments.pop(0)
            try:
                seg.path.unlink()
                _fsync_dir(self._dir_fd)
            except BaseException as exc:
                self._failed = exc
                raise
            log.info("wal: removed compacted segment", segment=seg.path.name)


# -- snapshots ----------------------------------------------------------------------------
_SNAP_MAGIC = b"BLOBSNAP"
_SNAP_VERSION = 1
_SNAP_HEAD = struct.Struct("<8sHHIQ")  # magic, version, reserved, meta length, data length
_SNAP_CRC = struct.Struct("<I")
_SNAP_HEADER_SIZE = _SNAP_HEAD.size + _SNAP_CRC.size  # 28
_SNAP_NAME = "snapshot.bin"
_SNAP_TMP = "snapshot.bin.tmp"
_META_HEAD = struct.Struct("<QQB")
_U32 = struct.Struct("<I")


def _encode_meta(meta: SnapshotMeta) -> bytes:
    parts = [_META_HEAD.pack(meta.index, meta.term, 1 if meta.conf.auto_leave else 0)]
    for ids in (meta.conf.voters, meta.conf.learners, meta.conf.voters_outgoing):
        parts.append(_U32.pack(len(ids)))
        parts.append(struct.pack(f"<{len(ids)}Q", *ids))
    return b"".join(parts)


def _decode_meta(buf: memoryview) -> SnapshotMeta:
    index, term, auto_leave = _META_HEAD.unpack_from(buf, 0)
    off = _META_HEAD.size
    groups: list[tuple[int, ...]] = []
    for _ in range(3):
        (n,) = _U32.unpack_from(buf, off)
        off += _U32.size
        groups.append(tuple(struct.unpack_from(f"<{n}Q", buf, off)))
        off += 8 * n
    if off != len(buf) or auto_leave not in (0, 1):
        raise ValueError("malformed snapshot meta")
    conf = ConfState(groups[0], groups[1], groups[2], auto_leave == 1)
    return SnapshotMeta(index, term, conf)


def _encode_snapshot_header(meta_bytes: bytes, data: bytes) -> bytes:
    """Header plus meta of a snapshot file (the data follows)."""
    head = _SNAP_HEAD.pack(_SNAP_MAGIC, _SNAP_VERSION, 0, len(meta_bytes), len(data))
    crc = zlib.crc32(data, zlib.crc32(meta_bytes, zlib.crc32(head)))
    return head + _SNAP_CRC.pack(crc) + meta_bytes


def _decode_snapshot(raw: bytes, name: str = _SNAP_NAME) -> Snapshot:
    """Parse and verify a snapshot file's bytes; raises CorruptSnapshotError."""
    if len(raw) < _SNAP_HEADER_SIZE:
        raise CorruptSnapshotError(f"{name}: {len(raw)} bytes, shorter than the header")
    magic, version, _reserved, meta_len, data_len = _SNAP_HEAD.unpack_from(raw, 0)
    if magic != _SNAP_MAGIC:
        raise CorruptSnapshotError(f"{name}: bad magic {magic!r}")
    if version != _SNAP_VERSION:
        raise UnsupportedFormatError(f"{name}: snapshot format version {version}")
    if _SNAP_HEADER_SIZE + meta_len + data_len != len(raw):
        raise CorruptSnapshotError(f"{name}: length mismatch")
    view = memoryview(raw)
    (crc,) = _SNAP_CRC.unpack_from(raw, _SNAP_HEAD.size)
    body = view[_SNAP_HEADER_SIZE:]
    if zlib.crc32(body, zlib.crc32(view[: _SNAP_HEAD.size])) != crc:
        raise CorruptSnapshotError(f"{name}: CRC mismatch")
    try:
        meta = _decode_meta(body[:meta_len])
    except (ValueError, struct.error) as exc:
        raise CorruptSnapshotError(f"{name}: {exc}") from exc
    return Snapshot(meta, bytes(body[meta_len:]))


class DiskSnapshotStore:
    """The latest snapshot in ``directory/snapshot.bin``, replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = self._dir / _SNAP_TMP
        if tmp.exists():
            log.warning("snapshot: removing stale temp file", path=str(tmp))
            tmp.unlink()
            self._fsync_dir()
        path = self._dir / _SNAP_NAME
        self._snapshot: Snapshot | None = None
        if path.exists():
            self._snapshot = _decode_snapshot(path.read_bytes(), str(path))

    def _fsync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def save(self, snapshot: Snapshot) -> None:
        tmp = self._dir / _SNAP_TMP
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, _encode_snapshot_header(_encode_meta(snapshot.meta), snapshot.data))
            _write_all(fd, snapshot.data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._dir / _SNAP_NAME)
        self._fsync_dir()
        self._snapshot = snapshot

    def load(self) -> Snapshot | None:
        return self._snapshot
