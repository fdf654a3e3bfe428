"""On-disk format of the Raft write-ahead log: segment files, records, scan and replay.

Owns the byte layout and the recovery rules; ``metadata/storage/disk.py`` owns the files,
descriptors and fsync ordering. Must not import asyncio, the network or the Raft core
(only ``metadata.raft.messages`` for the value types). All integers are little-endian.

Segment file ``<seq:016x>.wal`` (format version 2; version 1 is read, never written)::

    offset size  field
    0      8     magic b"BLOBWAL\\x00"
    8      2     u16 format version (2; 1 for segments written before sync marks)
    10     2     u16 reserved, 0
    12     8     u64 seq (equals the number in the file name)
    20     4     u32 CRC-32 (zlib) of bytes 0..20
    24     ...   records, back to back; the first one is always a CHECKPOINT

Record (16-byte header, then ``length`` payload bytes)::

    0      4     magic b"\\xc7WR\\x1d" (lets recovery look for valid records past a bad one)
    4      4     u32 length of the payload
    8      1     u8 type: 1 CHECKPOINT, 2 APPEND, 3 COMPACT, 4 SYNC_MARK (version 2 only)
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
    SYNC_MARK   u64 synced_bytes: bytes ``0 .. synced_bytes`` of this segment had been
                fdatasynced when the mark was written (24 bytes in all; no replay effect)

Each ``LogStore.append`` call is exactly one APPEND record (so it is atomic on replay) and
each ``compact`` one COMPACT record.

Torn tail versus corruption (why SYNC_MARK exists). A record whose CRC fails at the end
of the last segment is either a write in progress at a crash (never fsynced, so never
acknowledged: truncating it is right) or a bit flip in a record that *was* fsynced and
may hold an acknowledged, even committed, Raft entry (truncating it silently lets this
node vote and ack as if it never had the entry). The bytes alone cannot tell them apart,
so the writer leaves evidence: right after every successful ``fdatasync`` the store
appends a SYNC_MARK naming the synced end (it is itself not fsynced; it becomes durable
with the next sync, or the kernel's writeback a few seconds later). A record that was
fsynced is therefore followed by a valid record (at least its mark) while one that was
being written at a crash is not. The evidence costs one 24-byte ``write`` per sync and
no extra fsync (a side file holding a watermark would need its own fsync per group
commit, and zero-preallocated segments only help if torn writes leave whole zeroed
sectors, which the crash model here does not assume).

Recovery rules (``scan_segment``): a record that is short, has a bad magic or a bad CRC
ends the valid prefix. In the *last* segment that is a torn tail, truncated by the caller,
provided no valid record follows it. If a valid record follows (typically the SYNC_MARK
of the sync that covered it), or the bad record is in an earlier segment (fdatasynced by
rotation), the damage is in durable data: ``CorruptDurableLogError`` naming the file and
offset, never skipped. A CRC-valid record that does not decode, or a mark that vouches
for bytes at or past its own offset, is ``CorruptLogError``. A last segment without a
valid header and checkpoint, no longer than what creating a segment writes
(``SEGMENT_CREATION_BYTES``), is a segment whose creation was torn; the caller removes it
(a longer one is durable-data corruption).

What is still ambiguous, by design on the safe side or documented:
- the newest sync's mark is not durable until the next sync or writeback: a power loss in
  that window followed by a bit flip in exactly that batch is read as a torn tail;
- a bit flip inside the last mark itself is read as a torn mark (truncated; no data lost);
- version-1 segments carry no marks: in a version-1 last segment a bad last record is
  still taken for a torn tail (the old rule). The store never appends to a version-1
  segment: on open it starts a new version-2 segment (its CHECKPOINT holds the recovered
  state), and the old segments go through the usual deletion rule;
- unsynced writes reordered by the disk (a later record durable, an earlier one torn)
  refuse to start rather than guess (as before marks existed).

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
    "SUPPORTED_SEGMENT_VERSIONS",
    "SYNC_MARK_BYTES",
    "AppendRecord",
    "CheckpointRecord",
    "CompactRecord",
    "CorruptDurableLogError",
    "CorruptLogError",
    "Record",
    "RecordType",
    "RecoveredLog",
    "Replayer",
    "SegmentHeader",
    "SegmentScan",
    "StorageError",
    "SyncMarkRecord",
    "UnsupportedFormatError",
    "decode_segment_header",
    "encode_append",
    "encode_checkpoint",
    "encode_compact",
    "encode_segment_header",
    "encode_sync_mark",
    "scan_segment",
    "segment_name",
]

SEGMENT_MAGIC = b"BLOBWAL\x00"
SEGMENT_VERSION = 2  # what this code writes
SUPPORTED_SEGMENT_VERSIONS = (1, 2)  # what it reads
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
_SYNC_MARK = struct.Struct("<Q")
_HAS_HS = 0x01
# What creating a segment writes (header + checkpoint, one write): a torn creation can
# leave at most this many bytes.
SEGMENT_CREATION_BYTES = SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE + _CHECKPOINT.size
SYNC_MARK_BYTES = RECORD_HEADER_SIZE + _SYNC_MARK.size  # 24
_RECOVERY_HINT = (
    "The node must not start on this log: it may have acknowledged the damaged entries. "
    "To recover, keep the node stopped, remove it from the cluster (`blobstore admin "
    "members remove ID`), move its data directory aside (keep it for analysis), then add "
    "it back (`blobstore admin members add ID HOST:PORT`) and start it with --join: it "
    "receives a snapshot and the log from the leader."
)


class StorageError(Exception):
    """Base of the durable-storage failures (corruption, unusable store)."""


class CorruptLogError(StorageError):
    """The log is damaged somewhere other than a torn tail; it must not be used as is."""


class CorruptDurableLogError(CorruptLogError):
    """Bytes the log had already made durable (fsynced) are damaged: refuse to start.

    Never raised for a torn tail. ``path`` names the file and ``offset`` the start of the
    damaged record (0 for a segment header); the message says how to recover.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(
            f"{path}: corrupt durable WAL data at offset {offset}: {reason}. {_RECOVERY_HINT}"
        )
        self.path = path
        self.offset = offset
        self.reason = reason


class UnsupportedFormatError(StorageError):
    """A file carries a format version this code does not read."""


class RecordType(IntEnum):
    CHECKPOINT = 1
    APPEND = 2
    COMPACT = 3
    SYNC_MARK = 4


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


@dataclass(frozen=True, slots=True)
class SyncMarkRecord:
    """Evidence that bytes ``0 .. synced_bytes`` of the segment had been fdatasynced."""

    synced_bytes: int


Record = CheckpointRecord | AppendRecord | CompactRecord


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """The decoded 24-byte segment header."""

    seq: int
    version: int


def segment_name(seq: int) -> str:
    """File name of segment ``seq``."""
    return f"{seq:016x}.wal"


# -- encoding ---------------------------------------------------------------------------
def encode_segment_header(seq: int, version: int = SEGMENT_VERSION) -> bytes:
    """The 24-byte header that opens segment ``seq`` (``version`` only for test fixtures)."""
    head = _SEG_HEAD.pack(SEGMENT_MAGIC, version, 0, seq)
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


def encode_sync_mark(synced_bytes: int) -> bytes:
    """A SYNC_MARK record (``SYNC_MARK_BYTES`` long), written right after an fdatasync."""
    return _frame(RecordType.SYNC_MARK, _SYNC_MARK.pack(synced_bytes))


# -- decoding ---------------------------------------------------------------------------
def decode_segment_header(data: bytes) -> SegmentHeader | None:
    """The segment's header, or None if it is short or fails its CRC.

    Raises UnsupportedFormatError / CorruptLogError for a CRC-valid header that is not
    a WAL header of a supported version (that is never a torn write).
    """
    if len(data) < SEGMENT_HEADER_SIZE:
        return None
    (crc,) = _U32.unpack_from(data, _SEG_HEAD.size)
    if zlib.crc32(data[: _SEG_HEAD.size]) != crc:
        return None
    magic, version, _reserved, seq = _SEG_HEAD.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC:
        raise CorruptLogError(f"not a WAL segment (magic {magic!r})")
    if version not in SUPPORTED_SEGMENT_VERSIONS:
        raise UnsupportedFormatError(f"WAL segment format version {version} is not supported")
    return SegmentHeader(int(seq), int(version))


def _decode_payload(rtype: int, p: memoryview) -> Record | SyncMarkRecord:
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
    if rtype == RecordType.SYNC_MARK:
        if len(p) != _SYNC_MARK.size:
            raise ValueError("bad SYNC_MARK length")
        return SyncMarkRecord(_SYNC_MARK.unpack_from(p, 0)[0])
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

    ``records`` (sync marks left out) is empty only for a last segment whose creation was
    torn (no valid header and checkpoint): the caller deletes the file. ``valid_bytes`` <
    the file size means a torn tail the caller truncates. ``synced_bytes`` is the highest
    end a valid sync mark vouches for (0: none); ``marked_bytes`` the end of the last
    sync mark, or of the checkpoint: valid bytes past it are vouched for by no mark.
    """

    seq: int
    version: int
    records: tuple[Record, ...]
    valid_bytes: int
    size_bytes: int
    synced_bytes: int = 0
    marked_bytes: int = 0


def _first_valid_after(data: bytes, view: memoryview, pos: int) -> tuple[int, int, int] | None:
    """``(offset, type, end)`` of the first CRC-valid record starting after ``pos``."""
    q = data.find(RECORD_MAGIC, pos)
    while q != -1:
        if (found := _valid_record_at(data, view, q)) is not None:
            return q, *found
        q = data.find(RECORD_MAGIC, q + 1)
    return None


def _damage_evidence(data: bytes, view: memoryview, pos: int) -> str | None:
    """Why the bad bytes at ``pos`` of a last segment are not a torn tail, or None."""
    later = _first_valid_after(data, view, pos + 1)
    if later is None:
        return None
    q, rtype, end = later
    if rtype == RecordType.SYNC_MARK and end - q == SYNC_MARK_BYTES:
        (synced,) = _SYNC_MARK.unpack_from(data, q + RECORD_HEADER_SIZE)
        if synced > pos:
            return (
                f"the sync mark (a valid record) at offset {q} says bytes < {synced} were fsynced"
            )
    return f"a valid record follows at offset {q}"


def scan_segment(data: bytes, *, name: str, seq: int, is_last: bool) -> SegmentScan:
    """Validate and decode one segment's bytes (see the module docstring for the rules).

    ``name`` (the file's path) is only used in errors.
    """
    view = memoryview(data)
    records: list[Record] = []
    version = synced = marked = 0

    def damaged(pos: int, what: str) -> SegmentScan:
        if not is_last:
            raise CorruptDurableLogError(
                name, pos, f"{what} in a non-last segment (fdatasynced when the next was made)"
            )
        evidence = _damage_evidence(data, view, pos)
        if evidence is not None:
            raise CorruptDurableLogError(name, pos, f"{what}, yet {evidence}")
        valid = pos if records else 0
        return SegmentScan(seq, version, tuple(records), valid, len(data), synced, marked)

    header = decode_segment_header(data)
    if header is None:
        return damaged(0, "the segment header fails its CRC")
    if header.seq != seq:
        raise CorruptLogError(f"{name}: header says seq {header.seq}")
    version = header.version
    pos = SEGMENT_HEADER_SIZE
    while pos < len(data):
        found = _valid_record_at(data, view, pos)
        if found is None:
            return damaged(pos, "a record fails its magic, length or CRC check")
        rtype, end = found
        try:
            rec = _decode_payload(rtype, view[pos + RECORD_HEADER_SIZE : end])
        except (ValueError, struct.error) as exc:
            raise CorruptLogError(f"{name}: undecodable record at offset {pos}: {exc}") from exc
        if not records and not isinstance(rec, CheckpointRecord):
            raise CorruptLogError(f"{name}: first record is not a checkpoint")
        if isinstance(rec, SyncMarkRecord):
            if version < 2 or rec.synced_bytes > pos:
                raise CorruptLogError(f"{name}: impossible sync mark at offset {pos}")
            synced = max(synced, rec.synced_bytes)
            marked = end
        else:
            if not records:
                marked = end
            records.append(rec)
        pos = end
    if not records:
        return damaged(pos, "the segment has no checkpoint")
    return SegmentScan(seq, version, tuple(records), len(data), len(data), synced, marked)


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
