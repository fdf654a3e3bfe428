"""The catalog's storage boundary: an ordered key-value map with O(1) frozen snapshots.

Owns ``OrderedKV`` / ``KVReader`` (the Protocols the catalog codes against) and
``MemoryKV``, the in-memory engine. Keys are ``bytes`` compared bytewise (memcmp order, which
for UTF-8 text is code-point order); values are the typed, immutable catalog records (not
serialized in memory). An on-disk engine can replace ``MemoryKV`` without touching commands.

Structure of ``MemoryKV`` (a minimal B+-tree of height 2, the idea of sortedcontainers'
``SortedList``): a list of *leaves*, each holding up to ``2 * load`` sorted keys with their
values in a parallel list, plus ``_maxes[i]`` = the last key of leaf ``i``. Seek is a bisect on
``_maxes`` then on one leaf: O(log n). Insert/delete shift at most ``2 * load`` slots of one
leaf plus ``n / load`` slots of the outer lists, both memmoves: microseconds at 1M keys.

Copy-on-write: every leaf carries the generation it was created in. ``snapshot()`` copies
only the two outer lists (O(n / load) pointers, ~1 ms for 1M objects at load 128) and bumps the
generation, so every existing leaf becomes shared with the snapshot. The first mutation of a
shared leaf copies that leaf (O(load)) into the current generation. A snapshot therefore never
changes, and can be read (serialized) from another thread while the live map keeps mutating.

Why not sortedcontainers: its SortedList/SortedDict have no O(1) frozen snapshot, and the
copy-on-write leaves are the point here; the structure is ~150 lines behind a Protocol, so an
on-disk engine (or another ordered map) can replace it without touching the catalog.

Invariants: leaves are non-empty; keys strictly increase across and within leaves;
``_maxes[i] == _leaves[i].keys[-1]``; a leaf with ``gen == self._gen`` is referenced by the
live map only. Iterators over the live map are invalidated by mutation (snapshot first).
Values must not be ``None`` (``get`` returns ``None`` for absent keys).
Pure: stdlib only; no I/O, time or randomness.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Protocol

__all__ = ["DEFAULT_LOAD", "KVReader", "KVView", "MemoryKV", "OrderedKV", "prefix_end"]

# Leaf size (keys per leaf between load and 2 * load). Smaller leaves make the copy-on-write
# copies after a snapshot cheaper, and with them the cyclic-GC passes that walk those fresh
# copies: at 1M objects, load 512 gave 31 ms CPU per worst GC pass during a snapshot, load
# 128 gave 7 ms, for the same apply rate and listing speed (bench/catalog_bench.py).
DEFAULT_LOAD = 128


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class KVReader(Protocol):
    """Read side of the ordered map (live map or frozen snapshot)."""

    def get(self, key: bytes) -> object | None:
        """The value at ``key``, or None."""
        ...

    def scan(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, object]]:
        """Items with ``start <= key < end`` in key order (``end=None``: to the last key)."""
        ...

    def __len__(self) -> int: ...


class OrderedKV(KVReader, Protocol):
    """The mutable ordered map the state machine writes through."""

    def put(self, key: bytes, value: object) -> None:
        """Insert or replace ``key``."""
        ...

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; False if it was absent."""
        ...

    def snapshot(self) -> KVReader:
        """A frozen, thread-safe-to-read view of the current contents (O(1)-ish)."""
        ...


class _Leaf:
    __slots__ = ("gen", "keys", "vals")

    def __init__(self, keys: list[bytes], vals: list[object], gen: int) -> None:
        self.keys = keys
        self.vals = vals
        self.gen = gen


def _get(maxes: list[bytes], leaves: list[_Leaf], key: bytes) -> object | None:
    i = bisect_left(maxes, key)
    if i == len(maxes):
        return None
    leaf = leaves[i]
    j = bisect_left(leaf.keys, key)
    if leaf.keys[j] == key:
        return leaf.vals[j]
    return None


def _scan(
    maxes: list[bytes], leaves: list[_Leaf], start: bytes, end: bytes | None
) -> Iterator[tuple[bytes, object]]:
    i = bisect_left(maxes, start)
    if i == len(maxes):
        return
    j = bisect_left(leaves[i].keys, start)
    for li in range(i, len(leaves)):
        leaf = leaves[li]
        keys = leaf.keys
        vals = leaf.vals
        stop = len(keys)
        if end is not None and keys[-1] >= end:
            stop = bisect_left(keys, end, j)
            for k in range(j, stop):
                yield keys[k], vals[k]
            return
        for k in range(j, stop):
            yield keys[k], vals[k]
        j = 0


class KVView:
    """An immutable snapshot of a ``MemoryKV``; safe to read from any thread."""

    __slots__ = ("_leaves", "_len", "_maxes")

    def __init__(self, leaves: list[_Leaf], maxes: list[bytes], length: int) -> None:
        self._leaves = leaves
        self._maxes = maxes
        self._len = length

    def get(self, key: bytes) -> object | None:
        """The value at ``key``, or None."""
        return _get(self._maxes, self._leaves, key)

    def scan(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, object]]:
        """Items with ``start <= key < end`` in key order."""
        return _scan(self._maxes, self._leaves, start, end)

    def __len__(self) -> int:
        return self._len


class MemoryKV:
    """In-memory ordered map: chunked sorted lists with copy-on-write leaves."""

    __slots__ = ("_gen", "_leaves", "_len", "_load", "_maxes")

    def __init__(self, load: int = DEFAULT_LOAD) -> None:
        if load < 4:
            raise ValueError("load must be >= 4")
        self._load = load
        self._leaves: list[_Leaf] = []
        self._maxes: list[bytes] = []
        self._gen = 0
        self._len = 0

    @classmethod
    def from_sorted(
        cls, items: Iterable[tuple[bytes, object]], load: int = DEFAULT_LOAD
    ) -> MemoryKV:
        """Bulk-load strictly increasing ``items`` in O(n); raises ValueError if unsorted."""
        kv = cls(load)
        keys: list[bytes] = []
        vals: list[object] = []
        last: bytes | None = None
        for key, value in items:
            if last is not None and key <= last:
                raise ValueError("from_sorted: keys are not strictly increasing")
            last = key
            keys.append(key)
            vals.append(value)
            if len(keys) == load:
                kv._leaves.append(_Leaf(keys, vals, 0))
                kv._maxes.append(keys[-1])
                keys, vals = [], []
        if keys:
            kv._leaves.append(_Leaf(keys, vals, 0))
            kv._maxes.append(keys[-1])
        kv._len = sum(len(leaf.keys) for leaf in kv._leaves)
        return kv

    def __len__(self) -> int:
        return self._len

    def get(self, key: bytes) -> object | None:
        """The value at ``key``, or None."""
        return _get(self._maxes, self._leaves, key)

    def scan(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, object]]:
        """Items with ``start <= key < end``; invalidated by the next mutation."""
        return _scan(self._maxes, self._leaves, start, end)

    def snapshot(self) -> KVView:
        """Freeze the current contents: O(n / load) pointer copies; leaves become shared."""
        view = KVView(list(self._leaves), list(self._maxes), self._len)
        self._gen += 1
        return view

    def _own(self, i: int) -> _Leaf:
        leaf = self._leaves[i]
        if leaf.gen != self._gen:
            leaf = _Leaf(leaf.keys.copy(), leaf.vals.copy(), self._gen)
            self._leaves[i] = leaf
        return leaf

    def put(self, key: bytes, value: object) -> None:
        """Insert or replace ``key``."""
        if value is None:
            raise ValueError("MemoryKV values must not be None")
        maxes = self._maxes
        if not maxes:
            self._leaves.append(_Leaf([key], [value], self._gen))
            maxes.append(key)
            self._len = 1
            return
        i = bisect_left(maxes, key)
        if i == len(maxes):
            i -= 1
            leaf = self._own(i)
            leaf.keys.append(key)
            leaf.vals.append(value)
            maxes[i] = key
            self._len += 1
        else:
            leaf = self._leaves[i]
            j = bisect_left(leaf.keys, key)
            leaf = self._own(i)
            if leaf.keys[j] == key:
                leaf.vals[j] = value
                return
            leaf.keys.insert(j, key)
            leaf.vals.insert(j, value)
            self._len += 1
        if len(leaf.keys) > 2 * self._load:
            half = self._load
            right = _Leaf(leaf.keys[half:], leaf.vals[half:], self._gen)
            del leaf.keys[half:]
            del leaf.vals[half:]
            self._leaves.insert(i + 1, right)
            maxes[i] = leaf.keys[-1]
            maxes.insert(i + 1, right.keys[-1])

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; False if absent."""
        maxes = self._maxes
        i = bisect_left(maxes, key)
        if i == len(maxes):
            return False
        j = bisect_left(self._leaves[i].keys, key)
        if self._leaves[i].keys[j] != key:
            return False
        leaf = self._own(i)
        del leaf.keys[j]
        del leaf.vals[j]
        self._len -= 1
        if not leaf.keys:
            del self._leaves[i]
            del maxes[i]
            return True
        maxes[i] = leaf.keys[-1]
        # Merge an underfull leaf into its right neighbour so leaves stay >= load/4 on average.
        if len(leaf.keys) < self._load // 4 and i + 1 < len(self._leaves):
            right = self._leaves[i + 1]
            leaf.keys.extend(right.keys)
            leaf.vals.extend(right.vals)
            del self._leaves[i + 1]
            del maxes[i + 1]
            maxes[i] = leaf.keys[-1]
            if len(leaf.keys) > 2 * self._load:
                half = len(leaf.keys) // 2
                nxt = _Leaf(leaf.keys[half:], leaf.vals[half:], self._gen)
                del leaf.keys[half:]
                del leaf.vals[half:]
                self._leaves.insert(i + 1, nxt)
                maxes[i] = leaf.keys[-1]
                maxes.insert(i + 1, nxt.keys[-1])
        return True

    def check(self) -> None:
        """Verify the structural invariants (tests); raises AssertionError."""
        total = 0
        prev: bytes | None = None
        if len(self._leaves) != len(self._maxes):
            raise AssertionError("leaves/maxes length mismatch")
        for leaf, mx in zip(self._leaves, self._maxes, strict=True):
            if not leaf.keys or len(leaf.keys) != len(leaf.vals) or leaf.keys[-1] != mx:
                raise AssertionError("bad leaf")
            for k in leaf.keys:
                if prev is not None and k <= prev:
                    raise AssertionError("keys out of order")
                prev = k
            total += len(leaf.keys)
        if total != self._len:
            raise AssertionError("length mismatch")
