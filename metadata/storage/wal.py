"""On-disk format of the Raft write-ahead log: segment files, records, scan and replay.

Owns the byte layout and the recovery rules; ``metadata/storage/disk.py`` owns the files,
descriptors and fsync ordering. Must not import asyncio, the network or the Raft core
(only ``metadata.raft.messages`` for the value types). All integers are little-endian.

Segment file ``<seq:016x>.wal`` (format version 1)::

    offset size  field
    0      8     magic b"BLOBWAL\\x00"
    8      2     u16 format version (1)
    10     2     u16 reserved, 0
    12     8     u64 seq (equals the number in the file name)
    20     4     u32 CRC-32 (zlib) of bytes 0..20
    24     ...   records, back to back; the first one is always a CHECKPOINT

Record (16-byte header, then ``length`` payload bytes)::

    0      4     magic b"\\xc7WR\\x1d" (lets recovery look for valid records past a bad one)
    4      4     u32 length of the payload
    8      1     u8 type: 1 CHECKPOINT, 2 APPEND, 3 COMPACT
    9      3     reserved, 0
    12     4     u32 CRC-32 (zlib) of header bytes 0..12 followed by the payload
    16     ...   payload

Payloads::

    CHECKPOINT  u64 snap_index, u64 snap_term, u64 hs.term, u64 hs.vote, u64 hs.commit
                (the live state when the segment was created: replay can start here once
                older segments are deleted)
    APPEND      u8 flags (bit 0: hard state present), u64 hs.term, u64 hs.vote,
                u64 hs.commit (zeros when absent), u32 count, then ``count`` entries:
                u64 term, u64 index, u8 type, u32 data length, data
                (effect: truncate the log from the first index, append; entries contiguous)
    COMPACT     u64 index, u64 term, u8 mode (0: the tail after ``index`` was kept,
                1: the log was reset to the snapshot); raises the commit index to ``index``

Each ``LogStore.append`` call is exactly one APPEND record (so it is atomic on replay) and
each ``compact`` one COMPACT record.

Recovery rules (``scan_segment``): a record that is short, has a bad magic or a bad CRC
ends the valid prefix. In the *last* segment that is a torn tail, truncated by the caller,
provided no valid record follows it; otherwise (a valid record after it, or any bad record
in an earlier segment, or a CRC-valid record that does not decode) it is corruption:
``CorruptLogError``, never skipped. A last segment without a valid header and checkpoint, no
longer than what creating a segment writes (``SEGMENT_CREATION_BYTES``), is a segment
whose creation was torn; the caller removes it (a longer one is corruption).

Replay (``Replayer``) starts from the first remaining segment's checkpoint. Older
segments may have been deleted, so the entries before the first APPEND are unknown; the
deletion rule (a segment goes only when none of its entries is live above the durable
compaction point) guarantees every live entry is replayed, and ``finish`` checks it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from metadata.raft.messages import Entry, EntryType, HardState

__all__ = [
    "RECORD_HEADER_SIZE",
    "SEGMENT_CREATION_BYTES",
    "SEGMENT_HEADER_SIZE",
    "SEGMENT_VERSION",
    "AppendRecord",
    "CheckpointRecord",
    "CompactRecord",
    "CorruptLogError",
    "Record",
    "RecordType",
    "RecoveredLog",
    "Replayer",
    "SegmentScan",
    "StorageError",
    "UnsupportedFormatError",
    "decode_segment_header",
    "encode_append",
    "encode_checkpoint",
    "encode_compact",
    "encode_segment_header",
    "scan_segment",
    "segment_name",
]

SEGMENT_MAGIC = b"BLOBWAL\x00"
SEGMENT_VERSION = 1
RECORD_MAGIC = b"\xc7WR\x1d"

_SEG_HEAD = struct.Struct("<8sHHQ")  # magic, version, reserved, seq
_U32 = struct.Struct("<I")
SEGMENT_HEADER_SIZE = _SEG_HEAD.size + _U32.size  # 24

_REC_HEAD = struct.Struct("<4sIB3x")  # magic, length, type (+3 reserved)
_REC_FULL = struct.Struct("<4sIB3xI")  # ... and the CRC
RECORD_HEADER_SIZE = _REC_FULL.size  # 16

_CHECKPOINT = struct.Struct("<QQQQQ")
_APPEND_HEAD = struct.Struct("<BQQQI")
_ENTRY = struct.Struct("<QQBI")
_COMPACT = struct.Struct("<QQB")
_HAS_HS = 0x01
# What creating a segment writes (header + checkpoint, one write): a torn creation can
# leave at most this many bytes.
SEGMENT_CREATION_BYTES = SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE + _CHECKPOINT.size


class StorageError(Exception):
    """Base of the durable-storage failures (corruption, unusable store)."""


class CorruptLogError(StorageError):
    """The log is damaged somewhere other than a torn tail; it must not be used as is."""


class UnsupportedFormatError(StorageError):
    """A file carries a format version this code does not read."""


class RecordType(IntEnum):
    CHECKPOINT = 1
    APPEND = 2
    COMPACT = 3


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """The live compaction point and hard state when a segment was created."""

    snap_index: int
    snap_term: int
    hard_state: HardState


@dataclass(frozen=True, slots=True)
class AppendRecord:
    """One ``append`` call: truncate from ``entries[0].index``, append, maybe save HS."""

    entries: tuple[Entry, ...]
    hard_state: HardState | None


@dataclass(frozen=True, slots=True)
class CompactRecord:
    """One effective ``compact`` call; ``reset`` says the whole log was discarded."""

    index: int
    term: int
    reset: bool


Record = CheckpointRecord | AppendRecord | CompactRecord


def segment_name(seq: int) -> str:
    """File name of segment ``seq``."""
    return f"{seq:016x}.wal"


# -- encoding ---------------------------------------------------------------------------
def encode_segment_header(seq: int) -> bytes:
    """The 24-byte header that opens segment ``seq``."""
    head = _SEG_HEAD.pack(SEGMENT_MAGIC, SEGMENT_VERSION, 0, seq)
    return head + _U32.pack(zlib.crc32(head))


def _frame(rtype: RecordType, payload: bytes) -> bytes:
    head = _REC_HEAD.pack(RECORD_MAGIC, len(payload), rtype)
    return head + _U32.pack(zlib.crc32(payload, zlib.crc32(head))) + payload


def encode_checkpoint(snap_index: int, snap_term: int, hs: HardState) -> bytes:
    """A CHECKPOINT record."""
    payload = _CHECKPOINT.pack(snap_index, snap_term, hs.term, hs.vote, hs.commit)
    return _frame(RecordType.CHECKPOINT, payload)


def encode_append(entries: Sequence[Entry], hs: HardState | None) -> bytes:
    """An APPEND record; raises ValueError unless the entries' indexes are contiguous."""
    if hs is None:
        parts = [_APPEND_HEAD.pack(0, 0, 0, 0, len(entries))]
    else:
        parts = [_APPEND_HEAD.pack(_HAS_HS, hs.term, hs.vote, hs.commit, len(entries))]
    if entries:
        pack = _ENTRY.pack
        expect = entries[0].index
        for e in entries:
            if e.index != expect:
                raise ValueError(f"entries not contiguous: index {e.index}, expected {expect}")
            expect += 1
            parts.append(pack(e.term, e.index, e.type, len(e.data)))
            parts.append(e.data)
    return _frame(RecordType.APPEND, b"".join(parts))


def encode_compact(index: int, term: int, reset: bool) -> bytes:
    """A COMPACT record."""
    return _frame(RecordType.COMPACT, _COMPACT.pack(index, term, 1 if reset else 0))


# -- decoding ---------------------------------------------------------------------------
def decode_segment_header(data: bytes) -> int | None:
    """The segment's seq, or None if the header is short or fails its CRC.

    Raises UnsupportedFormatError / CorruptLogError for a CRC-valid header that is not
    a version-1 WAL header (that is never a torn write).
    """
    if len(data) < SEGMENT_HEADER_SIZE:
        return None
    (crc,) = _U32.unpack_from(data, _SEG_HEAD.size)
    if zlib.crc32(data[: _SEG_HEAD.size]) != crc:
        return None
    magic, version, _reserved, seq = _SEG_HEAD.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC:
        raise CorruptLogError(f"not a WAL segment (magic {magic!r})")
    if version != SEGMENT_VERSION:
        raise UnsupportedFormatError(f"WAL segment format version {version} is not supported")
    return int(seq)


def _decode_payload(rtype: int, p: memoryview) -> Record:
    if rtype == RecordType.CHECKPOINT:
        if len(p) != _CHECKPOINT.size:
            raise ValueError("bad CHECKPOINT length")
        si, st, t, v, c = _CHECKPOINT.unpack_from(p, 0)
        return CheckpointRecord(si, st, HardState(t, v, c))
    if rtype == RecordType.APPEND:
        flags, t, v, c, count = _APPEND_HEAD.unpack_from(p, 0)
        off = _APPEND_HEAD.size
        unpack, size, end = _ENTRY.unpack_from, _ENTRY.size, len(p)
        out: list[Entry] = []
        for _ in range(count):
            term, index, etype, n = unpack(p, off)
            off += size
            if off + n > end:
                raise ValueError("entry data past the end of the record")
            if out and index != out[-1].index + 1:
                raise ValueError("entries not contiguous")
            out.append(Entry(term, index, EntryType(etype), bytes(p[off : off + n])))
            off += n
        if off != end:
            raise ValueError("trailing bytes in APPEND")
        return AppendRecord(tuple(out), HardState(t, v, c) if flags & _HAS_HS else None)
    if rtype == RecordType.COMPACT:
        if len(p) != _COMPACT.size:
            raise ValueError("bad COMPACT length")
        index, term, mode = _COMPACT.unpack_from(p, 0)
        if mode not in (0, 1):
            raise ValueError(f"bad COMPACT mode {mode}")
        return CompactRecord(index, term, mode == 1)
    raise ValueError(f"unknown record type {rtype}")


def _valid_record_at(data: bytes, view: memoryview, pos: int) -> tuple[int, int] | None:
    """``(type, end)`` if a CRC-valid record starts at ``pos``, else None."""
    if pos + RECORD_HEADER_SIZE > len(data):
        return None
    magic, length, rtype, crc = _REC_FULL.unpack_from(data, pos)
    if magic != RECORD_MAGIC:
        return None
    body = pos + RECORD_HEADER_SIZE
    end = body + length
    if end > len(data):
        return None
    if zlib.crc32(view[body:end], zlib.crc32(view[pos : pos + _REC_HEAD.size])) != crc:
        return None
    return int(rtype), end


@dataclass(frozen=True, slots=True)
class SegmentScan:
    """The decoded valid prefix of one segment file.

    ``records`` is empty only for a last segment whose creation was torn (no valid
    header and checkpoint): the caller deletes the file. ``valid_bytes`` < the file size
    means a torn tail the caller truncates.
    """

    seq: int
    records: tuple[Record, ...]
    valid_bytes: int
    size_bytes: int


def _first_valid_after(data: bytes, view: memoryview, pos: int) -> int | None:
    q = data.find(RECORD_MAGIC, pos)
    while q != -1:
        if _valid_record_at(data, view, q) is not None:
            return q
        q = data.find(RECORD_MAGIC, q + 1)
    return None


def scan_segment(data: bytes, *, name: str, seq: int, is_last: bool) -> SegmentScan:
    """Validate and decode one segment's bytes (see the module docstring for the rules)."""
    view = memoryview(data)

    def damaged(pos: int, what: str) -> SegmentScan:
        if not is_last:
            raise CorruptLogError(f"{name}: {what} at offset {pos} in a non-last segment")
        later = _first_valid_after(data, view, pos + 1)
        if later is not None:
            raise CorruptLogError(f"{name}: {what} at offset {pos}, valid record at {later}")
        return SegmentScan(seq, tuple(records), pos if records else 0, len(data))

    records: list[Record] = []
    header_seq = decode_segment_header(data)
    if header_seq is None:
        return damaged(0, "torn or corrupt segment header")
    if header_seq != seq:
        raise CorruptLogError(f"{name}: header says seq {header_seq}")
    pos = SEGMENT_HEADER_SIZE
    while pos < len(data):
        found = _valid_record_at(data, view, pos)
        if found is None:
            return damaged(pos, "torn or corrupt record")
        rtype, end = found
        try:
            rec = _decode_payload(rtype, view[pos + RECORD_HEADER_SIZE : end])
        except (ValueError, struct.error) as exc:
            raise CorruptLogError(f"{name}: undecodable record at offset {pos}: {exc}") from exc
        if not records and not isinstance(rec, CheckpointRecord):
            raise CorruptLogError(f"{name}: first record is not a checkpoint")
        records.append(rec)
        pos = end
    if not records:
        return damaged(pos, "segment without checkpoint")
    return SegmentScan(seq, tuple(records), len(data), len(data))


# -- replay -----------------------------------------------------------------------------
@dataclass(slots=True)
class RecoveredLog:
    """The log state rebuilt by replay; ``live_max[k]`` is, for the k-th replayed segment,
    the highest index of an entry it wrote that is still live (0 if none)."""

    snap_index: int
    snap_term: int
    hard_state: HardState
    entries: list[Entry]
    live_max: list[int]


class Replayer:
    """Applies segments' records in order, mirroring ``DiskLogStore``'s live mutations."""

    def __init__(self) -> None:
        self._snap_index = 0
        self._snap_term = 0
        self._hs = HardState()
        self._base: int | None = None  # entries known from base+1; None: none known yet
        self._entries: list[Entry] = []
        self._live_max: list[int] = []
        self._name = ""

    def _corrupt(self, what: str) -> CorruptLogError:
        return CorruptLogError(f"{self._name}: replay: {what}")

    def segment(self, name: str, records: Sequence[Record]) -> None:
        """Replay one segment (they must come in seq order)."""
        self._name = name
        k = len(self._live_max)
        self._live_max.append(0)
        for i, rec in enumerate(records):
            if isinstance(rec, CheckpointRecord):
                self._checkpoint(rec, i, k)
            elif isinstance(rec, AppendRecord):
                self._append(rec, k)
            else:
                self._compact(rec)

    def _checkpoint(self, rec: CheckpointRecord, i: int, k: int) -> None:
        if i != 0:
            raise self._corrupt("checkpoint inside a segment")
        if k == 0:
            self._snap_index, self._snap_term, self._hs = (
                rec.snap_index,
                rec.snap_term,
                rec.hard_state,
            )
        elif (rec.snap_index, rec.snap_term, rec.hard_state) != (
            self._snap_index,
            self._snap_term,
            self._hs,
        ):
            raise self._corrupt("checkpoint disagrees with the preceding segments")

    def _append(self, rec: AppendRecord, k: int) -> None:
        es = rec.entries
        if es:
            first = es[0].index
            if first <= self._snap_index:
                raise self._corrupt(f"append at {first} at or before compaction point")
            base = self._base
            if base is None or first - 1 < base:
                self._base, self._entries = first - 1, list(es)
            elif first - 1 > base + len(self._entries):
                raise self._corrupt(f"append at {first} leaves a gap")
            else:
                del self._entries[first - 1 - base :]
                self._entries.extend(es)
            lm = self._live_max
            for j in range(k):
                if lm[j] >= first:
                    lm[j] = first - 1
            lm[k] = es[-1].index
        if rec.hard_state is not None:
            self._hs = rec.hard_state

    def _compact(self, rec: CompactRecord) -> None:
        if rec.index <= self._snap_index:
            raise self._corrupt(f"compaction to {rec.index} is not ahead of {self._snap_index}")
        if rec.reset:
            self._base, self._entries = rec.index, []
            self._live_max = [0] * len(self._live_max)
        elif self._base is not None:
            base = self._base
            if rec.index > base + len(self._entries):
                raise self._corrupt(f"kept-tail compaction to {rec.index} beyond the log")
            if rec.index > base:
                if self._entries[rec.index - base - 1].term != rec.term:
                    raise self._corrupt(f"compaction term mismatch at {rec.index}")
                del self._entries[: rec.index - base]
                self._base = rec.index
        self._snap_index, self._snap_term = rec.index, rec.term
        if self._hs.commit < rec.index:
            self._hs = HardState(self._hs.term, self._hs.vote, rec.index)

    def finish(self) -> RecoveredLog:
        """The recovered state; raises CorruptLogError if live entries are missing."""
        base = self._snap_index if self._base is None else self._base
        entries = [] if self._base is None else self._entries
        if base != self._snap_index:
            raise self._corrupt(
                f"entries {self._snap_index + 1}..{base} are missing (deleted segment?)"
            )
        return RecoveredLog(self._snap_index, self._snap_term, self._hs, entries, self._live_max)
