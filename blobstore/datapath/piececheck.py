"""End-to-end checks of the pieces in a checksummed ReadShard body (sans-I/O).

A chunkserver checks every piece it reads against the checksum stored beside it, but the
bytes then still pass through its memory, its slicing code and the network. Asked with
``ReadShardRequest.checksums``, it follows each piece the range covers whole by that
stored checksum. ``PieceCheck`` takes the body as it arrives, strips the checksums,
recomputes each one over the bytes that came and hands a piece's bytes on only once they
match (``PieceMismatch`` otherwise). The partial pieces at the range's two ends pass as
they arrive: the chunkserver checked them whole, and only their requested bytes travel.

Must not import: asyncio or network code.
"""

from __future__ import annotations

from collections.abc import Iterable

import xxhash

from chunkserver.shardfile import CHECKSUM_BYTES, piece_checksum

__all__ = ["PieceCheck", "PieceMismatch"]


class PieceMismatch(Exception):
    """A piece's bytes do not match the checksum sent with them, or the body is malformed."""


class PieceCheck:
    """Strips and checks the piece checksums of one checksummed ReadShard body.

    ``segments`` describes the requested range piece by piece, as
    ``blobstore.codec.ranges.piece_segments`` does: the range's bytes in each piece, and
    whether the range covers the piece whole (then its checksum follows it).
    """

    __slots__ = ("_held", "_left", "_segments", "_tail", "_whole")

    def __init__(self, segments: Iterable[tuple[int, bool]]) -> None:
        self._segments = iter(segments)
        self._held: list[memoryview] = []  # the current whole piece, awaiting its checksum
        self._tail = bytearray()  # its checksum, as far as it arrived
        self._left, self._whole = next(self._segments, (0, False))

    @property
    def done(self) -> bool:
        """Every piece of the range arrived (and was checked where it could be)."""
        return self._left == 0 and not self._whole

    def feed(self, data: memoryview) -> list[memoryview]:
        """The checked bytes that ``data`` (the next bytes of the body) completes, as views."""
        out: list[memoryview] = []
        while data:
            if self._left:
                part = data[: self._left]
                data = data[len(part) :]
                self._left -= len(part)
                if self._whole:
                    self._held.append(part)
                else:
                    out.append(part)
                    if not self._left:
                        self._left, self._whole = next(self._segments, (0, False))
                continue
            if not self._whole:
                raise PieceMismatch(f"{len(data)} bytes past the end of the range")
            need = CHECKSUM_BYTES - len(self._tail)
            self._tail += data[:need]
            data = data[need:]
            if len(self._tail) == CHECKSUM_BYTES:
                out += self._checked()
        return out

    def _checked(self) -> list[memoryview]:
        held, self._held = self._held, []
        want = int.from_bytes(self._tail, "little")
        self._tail.clear()
        if len(held) == 1:
            got = piece_checksum(held[0])
        else:
            h = xxhash.xxh3_64()
            for part in held:
                h.update(part)
            got = h.intdigest()
        if got != want:
            size = sum(len(p) for p in held)
            raise PieceMismatch(f"a {size}-byte piece hashes to {got:#x}, sent with {want:#x}")
        self._left, self._whole = next(self._segments, (0, False))
        return held
