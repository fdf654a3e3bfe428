"""The shard file format: one file per (chunk, shard index), checksummed piece by piece.

Owns the byte layout of shard files, pure functions to build and parse headers and to
locate pieces, a sans-I/O ``ShardEncoder``, a streaming ``ShardWriter`` over a file-like
object, and a ``ShardReader`` over any positional read function (an fd, a file, bytes).

Byte layout, format version 1 (all integers little-endian)::

    offset  size  field
    ------  ----  -----------------------------------------------------------------
         0     8  magic b"BSSHARD\\x00"
         8     2  u16 format version = 1
        10     2  u16 header size in bytes = 72
        12    16  chunk id (UUID, 16 raw bytes, RFC 4122 byte order)
        28     1  u8 shard index (0..k-1 data, k..k+m-1 parity)
        29     1  u8 k (data pieces per stripe)
        30     1  u8 m (parity pieces per stripe)
        31     1  u8 checksum algorithm id (1 = xxh3-64, the only one defined)
        32     4  u32 stripe size: object bytes per full stripe
        36     4  reserved, zero
        40     8  u64 data length: object bytes in the chunk (not in this shard)
        48    16  coder name, ASCII, NUL-padded (e.g. b"zfec")
        64     8  u64 xxh3-64 of bytes [0, 64)  (header checksum)
        72        body: for each stripe s = 0 .. S-1, in order:
                      piece s      P(s) bytes
                      checksum     u64 xxh3-64 (seed 0) of piece s
                  end of file (nothing follows the last checksum)

with ``S = ceil(data_length / stripe_size)``, ``P(s) = ceil(L(s) / k)`` and ``L(s)`` the
object bytes of stripe ``s`` (``stripe_size`` for all but the last stripe), exactly as
``blobstore.codec.ranges`` defines them. So piece ``s`` starts at file offset
``72 + s * (P + 8)`` where ``P = ceil(stripe_size / k)``, and the file is
``72 + sum(P(s)) + 8 * S`` bytes long. An empty chunk (data length 0) is a bare header.
The *shard data* is the concatenation of the pieces; range reads are addressed in it.

Invariants: bytes returned by a read have passed their piece checksum (a mismatch raises
``CorruptShard``, never returns bad bytes); every malformed file raises a typed error:
``CorruptShard`` for a bad piece, a ``ShardFormatError`` subclass (itself a
``CorruptShard``) for a bad, truncated or unsupported file. The shard checksum reported
on write is xxh3-64 over the concatenated 8-byte piece checksums, so a sender can
compute it from the pieces it sent (``shard_checksum``).

Changing this layout means a new format version, a reader for the old one and an
old-bytes fixture (``tests/fixtures/shards/``). Must not import asyncio or network code.
"""

from __future__ import annotations

import errno
import os
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import xxhash

from blobstore.codec.ranges import Layout, ceil_div, shard_data_length, stripe_count
from blobstore.errors import CorruptShard, InvalidArgument

__all__ = [
    "CHECKSUM_BYTES",
    "CHECKSUM_XXH3_64",
    "CODER_NAME_BYTES",
    "DEFAULT_BATCH_BYTES",
    "FORMAT_VERSION",
    "HEADER_BYTES",
    "MAGIC",
    "Buffer",
    "InvalidShardHeader",
    "NotAShardFile",
    "ReadAt",
    "ReadBatch",
    "ShardEncoder",
    "ShardFormatError",
    "ShardHeader",
    "ShardHeaderChecksumMismatch",
    "ShardReader",
    "ShardReceipt",
    "ShardWriter",
    "TruncatedShard",
    "UnreadableShard",
    "UnsupportedShardVersion",
    "check_identity",
    "decode_header",
    "encode_header",
    "file_length",
    "piece_checksum",
    "piece_file_offset",
    "piece_length",
    "shard_checksum",
    "write_shard",
]

MAGIC = b"BSSHARD\x00"
FORMAT_VERSION = 1
HEADER_BYTES = 72
CHECKSUM_BYTES = 8
CHECKSUM_XXH3_64 = 1
CODER_NAME_BYTES = 16
DEFAULT_BATCH_BYTES = 1024 * 1024

_HEAD = struct.Struct("<8sHH16sBBBBIIQ16s")  # bytes [0, 64)
_U64 = struct.Struct("<Q")
_VERSION = struct.Struct("<H")
assert _HEAD.size + _U64.size == HEADER_BYTES

Buffer = bytes | bytearray | memoryview


# -- errors -----------------------------------------------------------------------------
class ShardFormatError(CorruptShard):
    """A shard file that cannot be parsed: bad magic, version, header or truncated.

    Travels over RPC as ``CorruptShard`` (its ``code``), with ``details['reason']`` naming
    the subclass: the remedy (repair from other shards) is the same for every kind.
    """

    reason = "format"

    def __init__(self, message: str = "", **details: str) -> None:
        details.setdefault("reason", self.reason)
        super().__init__(message, **details)

    @property
    def code(self) -> str:
        return "CorruptShard"


class TruncatedShard(ShardFormatError):
    """The file ends before the header or a piece the header promises."""

    reason = "truncated"


class NotAShardFile(ShardFormatError):
    """The file does not start with the shard magic: not a shard file."""

    reason = "bad_magic"


class UnsupportedShardVersion(ShardFormatError):
    """A format version this build cannot read."""

    reason = "unsupported_version"


class ShardHeaderChecksumMismatch(ShardFormatError):
    """The header's bytes do not match its checksum."""

    reason = "header_checksum"


class InvalidShardHeader(ShardFormatError):
    """The header checksums fine but its fields are inconsistent or unknown."""

    reason = "invalid_header"


class UnreadableShard(ShardFormatError):
    """The disk failed to read the file's bytes (a media or file-system error such as
    EIO): as lost as a corrupt shard, and repaired the same way."""

    reason = "io_error"


# errnos of a failed read of a file's bytes (media errors; ext4/xfs checksum failures
# come back as EBADMSG or EUCLEAN), as opposed to a bad call or a missing file
MEDIA_ERRNOS = frozenset(
    e for e in (errno.EIO, errno.EBADMSG, getattr(errno, "EUCLEAN", None)) if e is not None
)


def unreadable(exc: OSError, header: ShardHeader | None = None) -> UnreadableShard | None:
    """The ``UnreadableShard`` an ``OSError`` from reading a shard file amounts to, or
    None if it is not a media error."""
    if exc.errno not in MEDIA_ERRNOS:
        return None
    where = (
        {}
        if header is None
        else {"chunk_id": str(header.chunk_id), "shard": str(header.shard_index)}
    )
    return UnreadableShard(f"reading the shard file failed: {exc.strerror}", **where)


# -- header -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ShardHeader:
    """The decoded header of one shard file; validated on construction (ValueError)."""

    chunk_id: uuid.UUID
    shard_index: int
    k: int
    m: int
    coder: str
    stripe_bytes: int
    data_length: int  # object bytes in the chunk
    checksum_algo: int = CHECKSUM_XXH3_64

    def __post_init__(self) -> None:
        if self.stripe_bytes < 1:
            raise ValueError(f"stripe size must be >= 1, got {self.stripe_bytes}")
        self.layout  # noqa: B018 - validates k, m, stripe_bytes
        if not 0 <= self.shard_index < self.k + self.m:
            raise ValueError(f"shard index {self.shard_index} outside 0..{self.k + self.m - 1}")
        if not 0 <= self.data_length < 2**64:
            raise ValueError(f"data length {self.data_length} out of range")
        if self.checksum_algo != CHECKSUM_XXH3_64:
            raise ValueError(f"unknown checksum algorithm id {self.checksum_algo}")
        raw = self.coder.encode("ascii", "replace")
        if not 0 < len(raw) <= CODER_NAME_BYTES or b"\x00" in raw or not self.coder.isascii():
            raise ValueError(f"coder name {self.coder!r} must be 1..16 ASCII characters")

    @property
    def layout(self) -> Layout:
        """A layout whose chunk size covers this chunk (for ``blobstore.codec.ranges``)."""
        stripes = max(1, ceil_div(self.data_length, self.stripe_bytes))
        return Layout(stripes * self.stripe_bytes, self.stripe_bytes, self.k, self.m)

    @property
    def stripe_count(self) -> int:
        return ceil_div(self.data_length, self.stripe_bytes)

    @property
    def piece_bytes(self) -> int:
        """Piece length of a full stripe."""
        return ceil_div(self.stripe_bytes, self.k)

    @property
    def shard_data_length(self) -> int:
        """Bytes of piece data in this shard (file length minus header and checksums)."""
        return shard_data_length(self.layout, self.data_length)


def encode_header(header: ShardHeader) -> bytes:
    """The 72 header bytes of ``header`` (format version 1)."""
    head = _HEAD.pack(
        MAGIC,
        FORMAT_VERSION,
        HEADER_BYTES,
        header.chunk_id.bytes,
        header.shard_index,
        header.k,
        header.m,
        header.checksum_algo,
        header.stripe_bytes,
        0,
        header.data_length,
        header.coder.encode("ascii").ljust(CODER_NAME_BYTES, b"\x00"),
    )
    return head + _U64.pack(xxhash.xxh3_64_intdigest(head))


def decode_header(buf: Buffer) -> ShardHeader:
    """Parse and verify the header at the start of ``buf`` (a ShardFormatError if bad)."""
    data = bytes(buf[:HEADER_BYTES])
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise NotAShardFile("not a shard file (bad magic)", magic=data[:8].hex())
    if len(data) >= 10:
        (version,) = _VERSION.unpack_from(data, 8)
        if version != FORMAT_VERSION:
            raise UnsupportedShardVersion(
                f"shard format version {version} is not supported (this build reads "
                f"{FORMAT_VERSION})",
                version=str(version),
            )
    if len(data) < HEADER_BYTES:
        raise TruncatedShard(f"shard header truncated at {len(data)} of {HEADER_BYTES} bytes")
    (want,) = _U64.unpack_from(data, _HEAD.size)
    if xxhash.xxh3_64_intdigest(data[: _HEAD.size]) != want:
        raise ShardHeaderChecksumMismatch("shard header checksum mismatch")
    (_, _, size, cid, shard, k, m, algo, stripe, reserved, length, coder_raw) = _HEAD.unpack(
        data[: _HEAD.size]
    )
    if size != HEADER_BYTES or reserved != 0:
        raise InvalidShardHeader(f"header size {size} / reserved {reserved} invalid for version 1")
    try:
        return ShardHeader(
            chunk_id=uuid.UUID(bytes=cid),
            shard_index=shard,
            k=k,
            m=m,
            coder=coder_raw.rstrip(b"\x00").decode("ascii"),
            stripe_bytes=stripe,
            data_length=length,
            checksum_algo=algo,
        )
    except ValueError as exc:  # includes UnicodeDecodeError
        raise InvalidShardHeader(f"invalid shard header: {exc}") from exc


def check_identity(header: ShardHeader, chunk_id: uuid.UUID, shard_index: int) -> None:
    """``CorruptShard`` unless ``header`` names this (chunk, shard): a misplaced file."""
    if header.chunk_id != chunk_id or header.shard_index != shard_index:
        raise CorruptShard(
            f"shard file for chunk {chunk_id} shard {shard_index} holds chunk "
            f"{header.chunk_id} shard {header.shard_index}",
            chunk_id=str(chunk_id),
            shard=str(shard_index),
            reason="misplaced",
        )


# -- offsets ----------------------------------------------------------------------------
def _check_stripe(header: ShardHeader, stripe: int) -> None:
    if not 0 <= stripe < header.stripe_count:
        raise ValueError(f"stripe {stripe} outside 0..{header.stripe_count - 1}")


def piece_length(header: ShardHeader, stripe: int) -> int:
    """Length of the piece of stripe ``stripe`` in this shard."""
    _check_stripe(header, stripe)
    stripe_len = min(header.stripe_bytes, header.data_length - stripe * header.stripe_bytes)
    return ceil_div(stripe_len, header.k)


def piece_file_offset(header: ShardHeader, stripe: int) -> int:
    """File offset of the piece of stripe ``stripe`` (its checksum follows the piece)."""
    _check_stripe(header, stripe)
    return HEADER_BYTES + stripe * (header.piece_bytes + CHECKSUM_BYTES)


def file_length(header: ShardHeader) -> int:
    """Exact length of a complete shard file with this header."""
    stripes = stripe_count(header.layout, header.data_length)
    return HEADER_BYTES + header.shard_data_length + CHECKSUM_BYTES * stripes


def piece_checksum(piece: Buffer) -> int:
    """The checksum stored beside a piece (xxh3-64, seed 0)."""
    return xxhash.xxh3_64_intdigest(piece)


def shard_checksum(piece_checksums: Iterable[int]) -> int:
    """A shard's checksum: xxh3-64 over its piece checksums as 8-byte little-endian."""
    h = xxhash.xxh3_64()
    for c in piece_checksums:
        h.update(_U64.pack(c))
    return h.intdigest()


# -- writing ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ShardReceipt:
    """What a completed shard write reports back."""

    chunk_id: uuid.UUID
    shard_index: int
    file_bytes: int  # whole file: header + pieces + checksums
    data_bytes: int  # piece data only
    checksum: int  # shard_checksum of the piece checksums


class ShardEncoder:
    """Sans-I/O shard serializer: feed piece bytes, get the buffers to write, in order.

    ``feed`` accepts the shard data in slices of any size (whole pieces are the fast path,
    passed through without copying); it cuts them at piece boundaries and appends each
    piece's checksum. ``InvalidArgument`` if more or (at ``finish``) fewer bytes arrive
    than the header declares.
    """

    __slots__ = (
        "_checksums",
        "_header",
        "_partial",
        "_started",
        "_stripe",
        "_stripes",
        "_written",
    )

    def __init__(self, header: ShardHeader) -> None:
        self._header = header
        self._stripes = header.stripe_count
        self._stripe = 0
        self._partial = bytearray()
        self._checksums = xxhash.xxh3_64()
        self._written = 0
        self._started = False

    @property
    def header(self) -> ShardHeader:
        return self._header

    @property
    def started(self) -> bool:
        """Whether ``start`` has handed out the header."""
        return self._started

    def start(self) -> list[Buffer]:
        """The header bytes, to write first (once)."""
        if self._started:
            raise RuntimeError("ShardEncoder.start called twice")
        self._started = True
        self._written += HEADER_BYTES
        return [encode_header(self._header)]

    def _emit(self, piece: Buffer, out: list[Buffer]) -> None:
        cks = piece_checksum(piece)
        self._checksums.update(_U64.pack(cks))
        out.append(piece)
        out.append(_U64.pack(cks))
        self._written += len(piece) + CHECKSUM_BYTES
        self._stripe += 1

    def feed(self, data: Buffer) -> list[Buffer]:
        """Accept the next piece bytes; return the buffers now ready to write."""
        if not self._started:
            raise RuntimeError("ShardEncoder.feed before start")
        out: list[Buffer] = []
        view = memoryview(data)
        while len(view):
            if self._stripe >= self._stripes:
                raise InvalidArgument(
                    f"shard {self._header.shard_index} of chunk {self._header.chunk_id}: more "
                    f"piece data than the {self._header.shard_data_length} bytes declared"
                )
            need = piece_length(self._header, self._stripe) - len(self._partial)
            if not self._partial and len(view) >= need:
                self._emit(view[:need], out)  # whole piece, no copy
            else:
                take = min(need, len(view))
                self._partial += view[:take]
                if take == need:
                    self._emit(bytes(self._partial), out)
                    self._partial.clear()
                need = take
            view = view[need:]
        return out

    @property
    def is_complete(self) -> bool:
        return self._started and self._stripe == self._stripes and not self._partial

    def finish(self) -> ShardReceipt:
        """Check every piece arrived; the receipt of the shard."""
        if not self.is_complete:
            raise InvalidArgument(
                f"shard {self._header.shard_index} of chunk {self._header.chunk_id}: stream "
                f"ended after {self._stripe} of {self._stripes} pieces"
            )
        return ShardReceipt(
            chunk_id=self._header.chunk_id,
            shard_index=self._header.shard_index,
            file_bytes=self._written,
            data_bytes=self._header.shard_data_length,
            checksum=self._checksums.intdigest(),
        )


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class ShardWriter:
    """Streams one shard into a file-like object or fd; the header is written at once."""

    __slots__ = ("_enc", "_write")

    def __init__(self, target: _Writable | BinaryIO | int, header: ShardHeader) -> None:
        if isinstance(target, int):
            fd = target
            self._write: Callable[[Buffer], object] = lambda b: _write_all(fd, b)
        else:
            self._write = target.write  # type: ignore[assignment]
        self._enc = ShardEncoder(header)
        for buf in self._enc.start():
            self._write(buf)

    def write(self, data: Buffer) -> None:
        """Append piece bytes (any slicing)."""
        for buf in self._enc.feed(data):
            self._write(buf)

    def finish(self) -> ShardReceipt:
        """Check completeness; the receipt (the caller flushes, fsyncs and closes)."""
        return self._enc.finish()


def _write_all(fd: int, data: Buffer) -> None:
    view = memoryview(data)
    while len(view):
        view = view[os.write(fd, view) :]


def write_shard(
    target: _Writable | BinaryIO | int, header: ShardHeader, pieces: Iterable[Buffer]
) -> ShardReceipt:
    """Write a whole shard (header then ``pieces``) and return its receipt."""
    writer = ShardWriter(target, header)
    for piece in pieces:
        writer.write(piece)
    return writer.finish()


# -- reading ----------------------------------------------------------------------------
ReadAt = Callable[[int, int], bytes]
"""``read_at(offset, size)``: up to ``size`` bytes at ``offset`` (fewer only at EOF)."""


@dataclass(frozen=True, slots=True)
class ReadBatch:
    """One file read of a range read: pieces ``first..last`` (and their checksums).

    ``file_bytes`` bytes at ``file_offset``; of the shard data, only
    ``[data_start, data_end)`` was asked for.
    """

    first_stripe: int
    last_stripe: int
    file_offset: int
    file_bytes: int
    data_start: int
    data_end: int


class ShardReader:
    """Verified reads from one shard file; parses and checks the header on construction."""

    __slots__ = ("_header", "_read_at")

    def __init__(self, read_at: ReadAt) -> None:
        self._read_at = read_at
        self._header = decode_header(read_at(0, HEADER_BYTES))

    @classmethod
    def from_fd(cls, fd: int) -> ShardReader:
        def read_at(off: int, n: int) -> bytes:
            try:
                return os.pread(fd, n, off)
            except OSError as exc:  # a media error reads as a lost shard, not a crash
                lost = unreadable(exc)
                if lost is None:
                    raise
                raise lost from exc

        return cls(read_at)

    @classmethod
    def from_file(cls, f: BinaryIO) -> ShardReader:
        def read_at(off: int, n: int) -> bytes:
            f.seek(off)
            return f.read(n)

        return cls(read_at)

    @classmethod
    def from_bytes(cls, data: Buffer) -> ShardReader:
        view = memoryview(data)
        return cls(lambda off, n: bytes(view[off : off + n]))

    @property
    def header(self) -> ShardHeader:
        return self._header

    def _corrupt(self, stripe: int, why: str) -> CorruptShard:
        h = self._header
        return CorruptShard(
            f"chunk {h.chunk_id} shard {h.shard_index} stripe {stripe}: {why}",
            chunk_id=str(h.chunk_id),
            shard=str(h.shard_index),
            stripe=str(stripe),
            reason="piece_checksum",
        )

    def _verified(self, buf: Buffer, base: int, stripe: int) -> memoryview:
        """Piece ``stripe`` out of ``buf`` (read from file offset ``base``), verified."""
        h = self._header
        plen = piece_length(h, stripe)
        start = piece_file_offset(h, stripe) - base
        end = start + plen + CHECKSUM_BYTES
        if len(buf) < end:
            raise TruncatedShard(
                f"chunk {h.chunk_id} shard {h.shard_index}: file ends inside stripe {stripe}",
                chunk_id=str(h.chunk_id),
                shard=str(h.shard_index),
                stripe=str(stripe),
            )
        piece = memoryview(buf)[start : start + plen]
        (want,) = _U64.unpack_from(buf, start + plen)
        if piece_checksum(piece) != want:
            raise self._corrupt(stripe, "piece checksum mismatch")
        return piece

    def plan(
        self, offset: int = 0, length: int | None = None, *, batch_bytes: int = DEFAULT_BATCH_BYTES
    ) -> list[ReadBatch]:
        """The file reads covering shard-data bytes ``[offset, offset + length)``.

        Each batch is a run of whole pieces (with their checksums) of about ``batch_bytes``
        of file; ``InvalidArgument`` if the range lies outside the shard data.
        """
        h = self._header
        total = h.shard_data_length
        if length is None:
            length = total - offset
        if offset < 0 or length < 0 or offset + length > total:
            raise InvalidArgument(
                f"range {offset}+{length} outside the {total} data bytes of shard "
                f"{h.shard_index} of chunk {h.chunk_id}"
            )
        if length == 0:
            return []
        pb = h.piece_bytes
        first, last = offset // pb, (offset + length - 1) // pb
        end = offset + length
        stride = pb + CHECKSUM_BYTES
        per_batch = max(1, batch_bytes // stride)
        out: list[ReadBatch] = []
        for lo in range(first, last + 1, per_batch):
            hi = min(last, lo + per_batch - 1)
            base = piece_file_offset(h, lo)
            span = piece_file_offset(h, hi) - base + piece_length(h, hi) + CHECKSUM_BYTES
            out.append(ReadBatch(lo, hi, base, span, offset, end))
        return out

    def _requested(self, batch: ReadBatch, buf: Buffer) -> list[tuple[int, memoryview, int, int]]:
        """Each piece of ``batch`` out of ``buf`` (its file bytes), all verified before any
        is returned: (the piece's offset in ``buf``, the piece, and the part ``[lo, hi)``
        of it that the range asked for)."""
        h = self._header
        out = []
        for stripe in range(batch.first_stripe, batch.last_stripe + 1):
            piece = self._verified(buf, batch.file_offset, stripe)
            p0 = stripe * h.piece_bytes
            lo = max(batch.data_start, p0) - p0
            hi = min(batch.data_end, p0 + len(piece)) - p0
            out.append((piece_file_offset(h, stripe) - batch.file_offset, piece, lo, hi))
        return out

    def verified_views(self, batch: ReadBatch, buf: Buffer) -> list[memoryview]:
        """The requested bytes of ``batch`` out of ``buf`` (its file bytes), verified.

        One view per piece (no copy); raises ``CorruptShard`` (or ``TruncatedShard`` if
        ``buf`` is short) before returning any view, so no unverified byte escapes.
        """
        return [
            piece if lo == 0 and hi == len(piece) else piece[lo:hi]
            for _, piece, lo, hi in self._requested(batch, buf)
        ]

    def piece_lengths(self, batch: ReadBatch) -> list[int]:
        """Lengths of the pieces of ``batch``, in file order."""
        h = self._header
        return [piece_length(h, s) for s in range(batch.first_stripe, batch.last_stripe + 1)]

    def verify_scattered(
        self, batch: ReadBatch, data: Buffer, checksums: Buffer, got: int
    ) -> memoryview:
        """The requested bytes of ``batch``, read scattered (``preadv``) into two buffers.

        ``data`` holds the batch's pieces back to back, ``checksums`` their 8-byte stored
        checksums, and ``got`` is how many file bytes the read returned. Every piece is
        verified before anything is returned: ``CorruptShard`` on a mismatch,
        ``TruncatedShard`` if the file ended early. The result is one contiguous view of
        ``data`` (no copy): the part of ``[data_start, data_end)`` that this batch's pieces
        hold (a range spans several batches; each yields only its own part).
        """
        h = self._header
        pos = 0
        covered = 0
        for i, plen in enumerate(self.piece_lengths(batch)):
            stripe = batch.first_stripe + i
            covered += plen + CHECKSUM_BYTES
            if covered > got:
                raise TruncatedShard(
                    f"chunk {h.chunk_id} shard {h.shard_index}: file ends inside stripe {stripe}",
                    chunk_id=str(h.chunk_id),
                    shard=str(h.shard_index),
                    stripe=str(stripe),
                )
            (want,) = _U64.unpack_from(checksums, i * CHECKSUM_BYTES)
            if piece_checksum(memoryview(data)[pos : pos + plen]) != want:
                raise self._corrupt(stripe, "piece checksum mismatch")
            pos += plen
        p0 = batch.first_stripe * h.piece_bytes  # shard-data offset of data[0]
        lo = max(batch.data_start, p0) - p0
        hi = min(batch.data_end, p0 + pos) - p0
        return memoryview(data)[lo:hi]

    def checksummed_views(self, batch: ReadBatch, buf: Buffer) -> list[memoryview]:
        """A checksummed read (``ReadShardRequest.checksums``) of ``batch``, as sent.

        ``buf`` holds the batch's file bytes (pieces with their checksums, as stored).
        Every piece is verified first, as by ``verified_views``; the result is the bytes to
        send, as views of ``buf`` (no copy): each piece the range covers whole followed by
        its stored 8-byte checksum, so the receiver can check it again, and only the
        requested bytes of the range's partial end pieces. Whole pieces are sent as the
        file holds them, so a run of them is one view.
        """
        spans: list[list[int]] = []
        for at, piece, lo, hi in self._requested(batch, buf):
            a, b = (at, at + hi + CHECKSUM_BYTES) if hi - lo == len(piece) else (at + lo, at + hi)
            if spans and spans[-1][1] == a:
                spans[-1][1] = b
            else:
                spans.append([a, b])
        view = memoryview(buf)
        return [view[a:b] for a, b in spans]

    def iter_range(
        self,
        offset: int = 0,
        length: int | None = None,
        *,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        checksums: bool = False,
    ) -> Iterator[bytes]:
        """Verified shard-data bytes ``[offset, offset + length)``, one block per batch.

        Reads whole pieces (about ``batch_bytes`` of file per read call) and checks each
        piece's checksum before yielding any of its bytes; raises ``CorruptShard`` at the
        first bad piece (bytes of earlier good pieces have already been yielded).
        ``checksums``: each block is in the form ``checksummed_views`` describes.
        """
        views = self.checksummed_views if checksums else self.verified_views
        for batch in self.plan(offset, length, batch_bytes=batch_bytes):
            parts = views(batch, self._read_at(batch.file_offset, batch.file_bytes))
            yield bytes(parts[0]) if len(parts) == 1 else b"".join(parts)

    def read_range(self, offset: int = 0, length: int | None = None) -> bytes:
        """Verified shard-data bytes ``[offset, offset + length)`` as one buffer."""
        return b"".join(self.iter_range(offset, length))

    def read_piece(self, stripe: int) -> bytes:
        """The verified piece of stripe ``stripe``."""
        base = piece_file_offset(self._header, stripe)
        buf = self._read_at(base, piece_length(self._header, stripe) + CHECKSUM_BYTES)
        return bytes(self._verified(buf, base, stripe))

    def verify(self, reasons: set[str] | None = None) -> tuple[int, ...]:
        """Scrub: indexes of stripes whose piece is corrupt or missing (empty if healthy);
        the failures' reasons (``piece_checksum``, ``truncated``, ``io_error``...) are
        added to ``reasons`` when given."""
        bad: list[int] = []
        for stripe in range(self._header.stripe_count):
            try:
                self.read_piece(stripe)
            except CorruptShard as exc:
                bad.append(stripe)
                if reasons is not None:
                    reasons.add(exc.details.get("reason", "piece_checksum"))
        return tuple(bad)
