"""Erasure coders: the ``ErasureCoder`` Protocol, ``ZfecCoder`` and a name registry.

A coder turns the k equal-length data pieces of one stripe into m parity pieces and
rebuilds the k data pieces from any k of the k + m. Coders are *systematic*: pieces
0..k-1 are the data itself, so a healthy read never decodes (``decode`` returns the data
pieces untouched when they are all present).

Parity from different coders (or the same coder with other k, m) is not interchangeable,
so every chunk records ``(coder name, k, m)`` in the catalog and in every shard header;
``get_coder(name, k, m)`` turns that record back into a coder.

Threading: ``encode``/``decode`` are CPU work on up to megabytes; callers run them through
``asyncio.to_thread`` unless the pieces are shorter than the coder's
``inline_piece_bytes`` (``codes_inline``): below that the work is cheaper than the
thread hop. zfec releases the GIL inside its C loops (measured by ``bench/ec_bench.py``),
so several stripes can be coded in parallel; ``ec_worker_count`` sizes a dedicated
executor from that.

Pure apart from zfec: no asyncio, files, sockets, time or global random. Must not import
project modules other than ``blobstore.types`` and ``blobstore.codec``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import zfec

from blobstore.codec.ranges import MAX_SHARDS

__all__ = [
    "AUTO",
    "ZFEC",
    "Buffer",
    "CoderShape",
    "ErasureCoder",
    "NotEnoughPieces",
    "ZfecCoder",
    "check_km",
    "coder_names",
    "codes_inline",
    "decode_args",
    "ec_worker_count",
    "encode_args",
    "get_coder",
    "register_coder",
    "resolve_coder",
]

ZFEC = "zfec"
AUTO = "auto"  # in an erasure profile: the preferred registered coder, resolved at write time

Buffer = bytes | bytearray | memoryview


class NotEnoughPieces(ValueError):
    """Fewer than k distinct pieces were given to ``decode``."""


@runtime_checkable
class ErasureCoder(Protocol):
    """A systematic k+m erasure code over equal-length pieces of one stripe."""

    @property
    def name(self) -> str: ...

    @property
    def k(self) -> int: ...

    @property
    def m(self) -> int: ...

    @property
    def inline_piece_bytes(self) -> int:
        """Stripes whose pieces are shorter than this are cheaper to code on the calling
        thread (an event loop) than through a worker thread, whose hop costs tens of
        microseconds of CPU and wake-ups; see ``codes_inline``."""
        ...

    def encode(self, data: Sequence[Buffer], indexes: Sequence[int] | None = None) -> list[Buffer]:
        """k data pieces (equal length) -> the parity pieces ``indexes`` (default: all m,
        k..k+m-1), in that order. Work is proportional to the pieces asked for."""
        ...

    def decode(self, pieces: Sequence[tuple[int, Buffer]]) -> list[Buffer]:
        """At least k ``(index, piece)`` pairs, any indexes -> the k data pieces (the
        given data pieces are returned as they are, not copied)."""
        ...


def check_km(k: int, m: int) -> None:
    if k < 1 or m < 0 or k + m > MAX_SHARDS:
        raise ValueError(f"invalid erasure code {k}+{m} (need k >= 1, m >= 0, k+m <= 255)")


def encode_args(
    k: int, m: int, data: Sequence[Buffer], indexes: Sequence[int] | None
) -> tuple[tuple[int, ...], int]:
    """Check ``encode``'s arguments: (parity indexes asked for, piece length)."""
    if len(data) != k:
        raise ValueError(f"encode needs {k} data pieces, got {len(data)}")
    size = len(data[0])
    if any(len(p) != size for p in data):
        raise ValueError("data pieces must all have the same length")
    nums = tuple(range(k, k + m)) if indexes is None else tuple(indexes)
    if any(not k <= i < k + m for i in nums):
        raise ValueError(f"parity indexes {nums} outside {k}..{k + m - 1}")
    return nums, size


def decode_args(
    k: int, m: int, pieces: Sequence[tuple[int, Buffer]]
) -> tuple[dict[int, Buffer], int]:
    """Check ``decode``'s arguments: (the first piece given per index, piece length)."""
    chosen: dict[int, Buffer] = {}
    for index, piece in pieces:
        if not 0 <= index < k + m:
            raise ValueError(f"piece index {index} outside 0..{k + m - 1}")
        chosen.setdefault(index, piece)
    if len(chosen) < k:
        raise NotEnoughPieces(
            f"need {k} distinct pieces to decode, got {len(chosen)}: {sorted(chosen)}"
        )
    sizes = {len(p) for p in chosen.values()}
    if len(sizes) != 1:
        raise ValueError(f"pieces must all have the same length, got {sorted(sizes)}")
    return chosen, sizes.pop()


class CoderShape:
    """``k`` and ``m`` of a coder, validated: the part every ``ErasureCoder`` shares."""

    __slots__ = ("_k", "_m")

    def __init__(self, k: int, m: int) -> None:
        check_km(k, m)
        self._k, self._m = k, m

    @property
    def k(self) -> int:
        return self._k

    @property
    def m(self) -> int:
        return self._m


def codes_inline(coder: ErasureCoder, piece_bytes: int) -> bool:
    """Whether stripes of ``piece_bytes`` pieces should be coded on the calling thread."""
    return piece_bytes < coder.inline_piece_bytes


class ZfecCoder(CoderShape):
    """zfec (Reed-Solomon over GF(2^8), Vandermonde, systematic)."""

    __slots__ = ("_decoder", "_encoder")

    # ~0.9 GB/s a core: 4 x 64 KiB pieces take ~0.3 ms, longer than a loop should block
    inline_piece_bytes = 64 * 1024

    def __init__(self, k: int, m: int) -> None:
        super().__init__(k, m)
        # zfec's coders hold only their (read-only) matrix: one instance serves many
        # threads at once.
        self._encoder = zfec.Encoder(k, k + m)
        self._decoder = zfec.Decoder(k, k + m)

    @property
    def name(self) -> str:
        return ZFEC

    def __repr__(self) -> str:
        return f"ZfecCoder(k={self._k}, m={self._m})"

    def encode(self, data: Sequence[Buffer], indexes: Sequence[int] | None = None) -> list[Buffer]:
        """k data pieces (equal length) -> parity pieces ``indexes`` (default all m)."""
        nums, _ = encode_args(self._k, self._m, data, indexes)
        if not nums:
            return []
        out = self._encoder.encode(tuple(data), nums)
        return [bytes(p) for p in out]

    def decode(self, pieces: Sequence[tuple[int, Buffer]]) -> list[Buffer]:
        """Any k distinct ``(index, piece)`` pairs -> the k data pieces, in order."""
        chosen, _ = decode_args(self._k, self._m, pieces)
        if all(i in chosen for i in range(self._k)):  # systematic: nothing to decode
            return [chosen[i] for i in range(self._k)]
        # zfec wants primary block i (if given) at position i; fill the gaps with parity.
        parity = [i for i in sorted(chosen) if i >= self._k]
        nums: list[int] = []
        for i in range(self._k):
            nums.append(i if i in chosen else parity.pop(0))
        blocks = tuple(chosen[i] for i in nums)
        decoded = self._decoder.decode(blocks, tuple(nums))  # only missing ones are computed
        return [chosen[i] if i in chosen else decoded[i] for i in range(self._k)]


CoderFactory = Callable[[int, int], ErasureCoder]
_REGISTRY: dict[str, CoderFactory] = {ZFEC: ZfecCoder}


_preferred: list[str] = []  # coders measured faster than zfec here, best first


def register_coder(name: str, factory: CoderFactory, *, preferred: bool = False) -> None:
    """Register a coder under ``name`` (ASCII, <= 16 bytes: it goes into shard headers).

    ``preferred``: new chunks use it when their profile says ``"auto"`` (register only a
    coder measured faster than zfec on this machine)."""
    if not name or name == AUTO or len(name.encode("ascii")) > 16 or "\x00" in name:
        raise ValueError(f"coder name {name!r} must be 1..16 ASCII characters, not {AUTO!r}")
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"coder {name!r} is already registered")
    _REGISTRY[name] = factory
    if preferred and name not in _preferred:
        _preferred.append(name)
    _cached_coder.cache_clear()


def resolve_coder(name: str) -> str:
    """The coder new chunks use for a profile's ``name``: ``"auto"`` is the preferred
    registered coder (zfec when none is); any other name is returned as it is."""
    if name != AUTO:
        return name
    return _preferred[0] if _preferred else ZFEC


def coder_names() -> tuple[str, ...]:
    """Names of all registered coders."""
    return tuple(sorted(_REGISTRY))


@functools.lru_cache(maxsize=64)
def _cached_coder(name: str, k: int, m: int) -> ErasureCoder:
    return _REGISTRY[name](k, m)


def get_coder(name: str, k: int, m: int) -> ErasureCoder:
    """The coder recorded as ``(name, k, m)``; ``ValueError`` if unknown or invalid."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown erasure coder {name!r} (known: {', '.join(coder_names())})")
    check_km(k, m)
    return _cached_coder(name, k, m)


def ec_worker_count(cpu_count: int | None, *, releases_gil: bool = True) -> int:
    """Threads worth giving to EC work: one per CPU if the coder releases the GIL, else 1.

    Pass ``os.cpu_count()``; ``None`` (unknown) counts as 1. Capped at 32.
    """
    cpus = max(1, cpu_count or 1)
    return min(32, cpus) if releases_gil else 1
