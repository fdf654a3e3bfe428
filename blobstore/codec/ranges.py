"""Chunk, stripe and piece arithmetic of the erasure-coded data layout (pure).

Owns the mapping between object bytes and shard bytes. Nothing here does I/O; callers
(gateway, chunkserver, repair) use it to decide which shard bytes to fetch or write.

Model (all lengths in bytes, all indexes 0-based):

* An object of ``size`` bytes is cut into chunks of ``chunk_bytes`` (the last one may be
  shorter). Chunk ``c`` covers object bytes ``[c * chunk_bytes, ...)``.
* A chunk of ``chunk_len`` bytes is cut into stripes of ``stripe_bytes`` of object data;
  only the chunk's last stripe may be shorter. ``chunk_bytes`` is a multiple of
  ``stripe_bytes``, so stripes never straddle chunks.
* A stripe of ``L`` bytes is cut into ``k`` data pieces of ``P = ceil(L / k)`` bytes each;
  the stripe is zero-padded to ``k * P`` bytes first (only the last piece(s) of a stripe
  carry padding). Byte ``j`` of the stripe lives in data piece ``j // P`` at offset
  ``j % P``. The coder adds ``m`` parity pieces of the same length ``P``.
  Full stripes therefore use ``piece_bytes = ceil(stripe_bytes / k)``; a short last
  stripe uses a smaller piece, so small objects do not pay for a full stripe.
* Shard ``i`` of a chunk holds piece ``i`` of every stripe, in stripe order. Its *data*
  (the concatenated pieces, without file header and checksums) is
  ``shard_data_length(layout, chunk_len)`` bytes, and the piece of stripe ``s`` starts at
  ``s * piece_bytes`` within it (every stripe before the last is full).

Invariants: ``1 <= k``, ``0 <= m``, ``k + m <= 255`` (shard indexes fit one byte and zfec
allows at most 256 blocks), ``1 <= stripe_bytes < 2**32``, ``chunk_bytes`` is a positive
multiple of ``stripe_bytes``. Invalid arguments raise ``ValueError``.

Must not import anything from the project except ``blobstore.types`` (pure core).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_K",
    "DEFAULT_M",
    "DEFAULT_STRIPE_BYTES",
    "MAX_SHARDS",
    "ChunkSpan",
    "Layout",
    "PieceSlice",
    "Position",
    "StripeSpan",
    "ceil_div",
    "chunk_count",
    "chunk_length",
    "chunk_spans",
    "join_stripe",
    "locate",
    "object_offset",
    "padding_bytes",
    "piece_length",
    "piece_offset",
    "piece_segments",
    "shard_data_length",
    "split_stripe",
    "stripe_count",
    "stripe_length",
    "stripe_spans",
]

DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024
DEFAULT_STRIPE_BYTES = 1024 * 1024
DEFAULT_K = 4
DEFAULT_M = 2
MAX_SHARDS = 255


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for non-negative ``a`` and positive ``b``."""
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class Layout:
    """How objects map to chunks, stripes and k+m pieces; validated on construction."""

    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    stripe_bytes: int = DEFAULT_STRIPE_BYTES
    k: int = DEFAULT_K
    m: int = DEFAULT_M

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.m < 0:
            raise ValueError(f"m must be >= 0, got {self.m}")
        if self.k + self.m > MAX_SHARDS:
            raise ValueError(f"k + m must be <= {MAX_SHARDS}, got {self.k + self.m}")
        if not 1 <= self.stripe_bytes < 2**32:
            raise ValueError(f"stripe_bytes must be in 1..2**32-1, got {self.stripe_bytes}")
        if self.chunk_bytes < self.stripe_bytes or self.chunk_bytes % self.stripe_bytes:
            raise ValueError(
                f"chunk_bytes ({self.chunk_bytes}) must be a positive multiple of "
                f"stripe_bytes ({self.stripe_bytes})"
            )

    @property
    def n(self) -> int:
        """Total pieces (shards) per stripe: ``k + m``."""
        return self.k + self.m

    @property
    def piece_bytes(self) -> int:
        """Piece length of a full stripe: ``ceil(stripe_bytes / k)``."""
        return ceil_div(self.stripe_bytes, self.k)

    @property
    def stripes_per_chunk(self) -> int:
        """Stripes in a full chunk."""
        return self.chunk_bytes // self.stripe_bytes


# -- chunks and stripes -----------------------------------------------------------------
def _check_size(object_bytes: int) -> None:
    if object_bytes < 0:
        raise ValueError(f"object size must be >= 0, got {object_bytes}")


def chunk_count(layout: Layout, object_bytes: int) -> int:
    """Number of chunks of an object (0 for an empty object)."""
    _check_size(object_bytes)
    return ceil_div(object_bytes, layout.chunk_bytes)


def chunk_length(layout: Layout, object_bytes: int, chunk: int) -> int:
    """Object bytes held by chunk ``chunk``."""
    if not 0 <= chunk < chunk_count(layout, object_bytes):
        raise ValueError(f"chunk {chunk} out of range for an object of {object_bytes} bytes")
    return min(layout.chunk_bytes, object_bytes - chunk * layout.chunk_bytes)


def _check_chunk_len(layout: Layout, chunk_len: int) -> None:
    if not 0 <= chunk_len <= layout.chunk_bytes:
        raise ValueError(f"chunk length {chunk_len} not in 0..{layout.chunk_bytes}")


def stripe_count(layout: Layout, chunk_len: int) -> int:
    """Number of stripes of a chunk of ``chunk_len`` bytes (0 for an empty chunk)."""
    _check_chunk_len(layout, chunk_len)
    return ceil_div(chunk_len, layout.stripe_bytes)


def stripe_length(layout: Layout, chunk_len: int, stripe: int) -> int:
    """Object bytes (unpadded) in stripe ``stripe`` of a chunk of ``chunk_len`` bytes."""
    if not 0 <= stripe < stripe_count(layout, chunk_len):
        raise ValueError(f"stripe {stripe} out of range for a chunk of {chunk_len} bytes")
    return min(layout.stripe_bytes, chunk_len - stripe * layout.stripe_bytes)


def piece_length(layout: Layout, chunk_len: int, stripe: int) -> int:
    """Length of every piece (data or parity) of stripe ``stripe``."""
    return ceil_div(stripe_length(layout, chunk_len, stripe), layout.k)


def padding_bytes(layout: Layout, chunk_len: int, stripe: int) -> int:
    """Zero bytes appended to stripe ``stripe`` to fill its k data pieces."""
    return piece_length(layout, chunk_len, stripe) * layout.k - stripe_length(
        layout, chunk_len, stripe
    )


def piece_offset(layout: Layout, stripe: int) -> int:
    """Offset of stripe ``stripe``'s piece within a shard's data."""
    if stripe < 0:
        raise ValueError(f"stripe must be >= 0, got {stripe}")
    return stripe * layout.piece_bytes


def shard_data_length(layout: Layout, chunk_len: int) -> int:
    """Bytes of piece data in each shard (data or parity) of a chunk of ``chunk_len``."""
    count = stripe_count(layout, chunk_len)
    if count == 0:
        return 0
    return (count - 1) * layout.piece_bytes + piece_length(layout, chunk_len, count - 1)


def piece_segments(
    layout: Layout, chunk_len: int, offset: int, length: int
) -> Iterator[tuple[int, bool]]:
    """The pieces that shard-data bytes ``[offset, offset + length)`` touch, in order: how
    many of the range's bytes each holds, and whether the range covers it whole."""
    if offset < 0 or length < 0 or offset + length > shard_data_length(layout, chunk_len):
        where = f"the shard data of a {chunk_len}-byte chunk"
        raise ValueError(f"range {offset}+{length} outside {where}")
    end = offset + length
    pos = offset
    while pos < end:
        stripe = pos // layout.piece_bytes
        p0 = piece_offset(layout, stripe)
        p1 = p0 + piece_length(layout, chunk_len, stripe)
        stop = min(end, p1)
        yield stop - pos, pos == p0 and stop == p1
        pos = stop


# -- single positions -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Position:
    """Where one object byte lives: chunk, stripe in chunk, data shard, offset in piece."""

    chunk: int
    stripe: int
    shard: int
    offset: int


def locate(layout: Layout, object_bytes: int, offset: int) -> Position:
    """Map an object offset to its (chunk, stripe, shard, offset in piece)."""
    if not 0 <= offset < object_bytes:
        raise ValueError(f"offset {offset} outside an object of {object_bytes} bytes")
    chunk, in_chunk = divmod(offset, layout.chunk_bytes)
    chunk_len = chunk_length(layout, object_bytes, chunk)
    stripe, in_stripe = divmod(in_chunk, layout.stripe_bytes)
    shard, in_piece = divmod(in_stripe, piece_length(layout, chunk_len, stripe))
    return Position(chunk, stripe, shard, in_piece)


def object_offset(layout: Layout, object_bytes: int, pos: Position) -> int:
    """Inverse of :func:`locate`; ``ValueError`` if ``pos`` is padding or out of range."""
    chunk_len = chunk_length(layout, object_bytes, pos.chunk)
    plen = piece_length(layout, chunk_len, pos.stripe)
    if not 0 <= pos.shard < layout.k or not 0 <= pos.offset < plen:
        raise ValueError(f"{pos} is not a data position of this layout")
    in_stripe = pos.shard * plen + pos.offset
    if in_stripe >= stripe_length(layout, chunk_len, pos.stripe):
        raise ValueError(f"{pos} is stripe padding, not object data")
    return pos.chunk * layout.chunk_bytes + pos.stripe * layout.stripe_bytes + in_stripe


# -- stripes <-> pieces -----------------------------------------------------------------
def split_stripe(layout: Layout, data: bytes | bytearray | memoryview) -> list[bytes]:
    """Cut one stripe's object bytes into k equal data pieces, zero-padding the tail."""
    length = len(data)
    if not 0 < length <= layout.stripe_bytes:
        raise ValueError(f"stripe of {length} bytes not in 1..{layout.stripe_bytes}")
    plen = ceil_div(length, layout.k)
    view = memoryview(data)
    pieces: list[bytes] = []
    for i in range(layout.k):
        piece = bytes(view[i * plen : (i + 1) * plen])
        if len(piece) < plen:
            piece += bytes(plen - len(piece))
        pieces.append(piece)
    return pieces


def join_stripe(pieces: Sequence[bytes | memoryview], stripe_len: int) -> bytes:
    """Concatenate k data pieces and drop the padding: the stripe's object bytes."""
    total = sum(len(p) for p in pieces)
    if not 0 <= stripe_len <= total:
        raise ValueError(f"stripe length {stripe_len} exceeds the {total} piece bytes")
    return b"".join(pieces)[:stripe_len]


# -- byte ranges ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PieceSlice:
    """Bytes to fetch from one data shard: ``length`` bytes at ``offset`` in its data."""

    shard: int
    offset: int  # within the shard's piece data (not the file)
    length: int
    stripe_offset: int  # where these bytes start within the (unpadded) stripe


@dataclass(frozen=True, slots=True)
class StripeSpan:
    """The part ``[start, start + length)`` of one stripe that a range needs."""

    stripe: int
    stripe_len: int  # object bytes in the stripe
    piece_len: int  # length of each of the stripe's k + m pieces
    piece_offset: int  # where the stripe's pieces start within every shard's data
    start: int
    length: int
    slices: tuple[PieceSlice, ...]  # in object order; concatenated they are the range


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    """The part ``[start, start + length)`` of one chunk that a range needs."""

    chunk: int
    chunk_offset: int  # object offset of the chunk's first byte
    chunk_len: int
    start: int
    length: int
    first_stripe: int
    last_stripe: int  # inclusive


def chunk_spans(layout: Layout, object_bytes: int, start: int, length: int) -> Iterator[ChunkSpan]:
    """The chunks a byte range touches, lazily and in order (nothing for ``length == 0``)."""
    _check_size(object_bytes)
    if start < 0 or length < 0 or start + length > object_bytes:
        raise ValueError(f"range {start}+{length} outside an object of {object_bytes} bytes")
    end = start + length
    pos = start
    while pos < end:
        chunk = pos // layout.chunk_bytes
        chunk_offset = chunk * layout.chunk_bytes
        chunk_len = chunk_length(layout, object_bytes, chunk)
        stop = min(end, chunk_offset + chunk_len)
        first, last = pos - chunk_offset, stop - 1 - chunk_offset
        yield ChunkSpan(
            chunk=chunk,
            chunk_offset=chunk_offset,
            chunk_len=chunk_len,
            start=first,
            length=stop - pos,
            first_stripe=first // layout.stripe_bytes,
            last_stripe=last // layout.stripe_bytes,
        )
        pos = stop


def stripe_spans(layout: Layout, span: ChunkSpan) -> Iterator[StripeSpan]:
    """The stripes of a chunk span with the data-shard slices each needs, lazily."""
    end = span.start + span.length
    for stripe in range(span.first_stripe, span.last_stripe + 1):
        base = stripe * layout.stripe_bytes
        slen = stripe_length(layout, span.chunk_len, stripe)
        plen = ceil_div(slen, layout.k)
        lo, hi = max(span.start, base) - base, min(end, base + slen) - base
        poff = piece_offset(layout, stripe)
        slices: list[PieceSlice] = []
        pos = lo
        while pos < hi:
            shard, in_piece = divmod(pos, plen)
            take = min(hi - pos, plen - in_piece)
            slices.append(PieceSlice(shard, poff + in_piece, take, pos))
            pos += take
        yield StripeSpan(stripe, slen, plen, poff, lo, hi - lo, tuple(slices))
