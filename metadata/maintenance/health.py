"""How healthy is one chunk, and the whole catalog (pure).

A shard copy is *good* when it is placed on a server that is ``up``, ``suspect`` or
``draining`` and no unrepaired bad-shard report names that copy. A chunk needs work for
every shard index whose copy is on a ``down``/``drained``/unregistered server (``down``),
reported corrupt or missing (``bad``), never placed (``missing``), or on a ``draining``
server (``draining``: still good, but must move).

Levels: ``full`` (k+m good), ``degraded`` (below k+m), ``at_risk`` (<= k good: one more
loss and it is unreadable), ``lost`` (< k good: cannot be rebuilt from the catalog's
copies). Repair priority is the number of good shards (fewest first).

Pure: stdlib and the catalog (records, keyspace, KV reader).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, cast

from metadata.fsm import keyspace as ks
from metadata.fsm.kv import KVReader, prefix_end
from metadata.fsm.records import (
    BadShardRecord,
    Chunk,
    ChunkRecord,
    ChunkserverRecord,
    ObjectRecord,
    ScrubProgressRecord,
)
from metadata.fsm.results import RedundancySummary

__all__ = [
    "GOOD_STATES",
    "ChunkHealth",
    "Level",
    "NeedReason",
    "NeededShard",
    "assess",
    "bad_shards_of",
    "redundancy_summary",
]

Level = Literal["full", "degraded", "at_risk", "lost"]
NeedReason = Literal["down", "bad", "missing", "draining"]
GOOD_STATES = frozenset({"up", "suspect", "draining"})
_RANK: dict[Level, int] = {"full": 0, "degraded": 1, "at_risk": 2, "lost": 3}


@dataclass(frozen=True, slots=True)
class NeededShard:
    """Shard ``shard_index`` must be rebuilt elsewhere (``from_server`` 0: never placed)."""

    shard_index: int
    from_server: int
    reason: NeedReason


@dataclass(frozen=True, slots=True)
class ChunkHealth:
    chunk: Chunk
    good: int
    needed: tuple[NeededShard, ...]

    @property
    def level(self) -> Level:
        c = self.chunk
        if self.good < c.k:
            return "lost"
        if self.good <= c.k and c.m > 0:
            return "at_risk"
        if self.good < c.k + c.m:
            return "degraded"
        return "full"

    @property
    def needs_work(self) -> bool:
        return bool(self.needed)

    @property
    def repairable(self) -> bool:
        return self.good >= self.chunk.k


def bad_shards_of(kv: KVReader, chunk_id: str) -> dict[int, BadShardRecord]:
    """Unrepaired bad-shard reports of one chunk, by shard index."""
    lo = ks.BAD_SHARD + chunk_id.encode("utf-8") + b"\0"
    return {
        cast(BadShardRecord, v).shard.shard_index: cast(BadShardRecord, v)
        for _, v in kv.scan(lo, prefix_end(lo))
    }


def assess(
    chunk: Chunk,
    servers: Mapping[int, ChunkserverRecord],
    bad: Mapping[int, BadShardRecord],
) -> ChunkHealth:
    """The health of ``chunk`` given the servers' states and its bad-shard reports."""
    placed = {s.shard_index: s for s in chunk.shards}
    good = 0
    needed: list[NeededShard] = []
    for index in range(chunk.k + chunk.m):
        p = placed.get(index)
        if p is None:
            needed.append(NeededShard(index, 0, "missing"))
            continue
        server = servers.get(p.server_id)
        report = bad.get(index)
        if server is None or server.state not in GOOD_STATES:
            needed.append(NeededShard(index, p.server_id, "down"))
        elif report is not None and report.shard.server_id == p.server_id:
            needed.append(NeededShard(index, p.server_id, "bad"))
        else:
            good += 1
            if server.state == "draining":
                needed.append(NeededShard(index, p.server_id, "draining"))
    return ChunkHealth(chunk, good, tuple(needed))


def _chunks(kv: KVReader) -> Iterator[Chunk]:
    for _, v in kv.scan(ks.CHUNK, prefix_end(ks.CHUNK)):
        yield cast(ChunkRecord, v).chunk


def redundancy_summary(kv: KVReader) -> RedundancySummary:
    """Scan the whole catalog (chunks, then object versions): O(chunks + versions)."""
    servers = {
        s.server_id: s
        for _, v in kv.scan(ks.CHUNKSERVER, prefix_end(ks.CHUNKSERVER))
        for s in (cast(ChunkserverRecord, v),)
    }
    counts: dict[Level, int] = {"full": 0, "degraded": 0, "at_risk": 0, "lost": 0}
    worse: dict[str, Level] = {}  # chunk id -> level, only for chunks below full
    backlog = 0
    total = 0
    for chunk in _chunks(kv):
        total += 1
        h = assess(chunk, servers, bad_shards_of(kv, chunk.chunk_id))
        counts[h.level] += 1
        if h.level != "full":
            worse[chunk.chunk_id] = h.level
        if h.needs_work:
            backlog += 1
    objects: dict[Level, int] = {"full": 0, "degraded": 0, "at_risk": 0, "lost": 0}
    for table in (ks.OBJECT, ks.VERSION):
        for _, v in kv.scan(table, prefix_end(table)):
            rec = cast(ObjectRecord, v)
            if rec.is_delete_marker:
                continue
            level: Level = "full"
            for cid in rec.chunk_ids:
                lv = worse.get(cid, "full")
                if _RANK[lv] > _RANK[level]:
                    level = lv
            objects[level] += 1
    bad = sum(1 for _ in kv.scan(ks.BAD_SHARD, prefix_end(ks.BAD_SHARD)))
    scrub = tuple(cast(ScrubProgressRecord, v) for _, v in kv.scan(ks.SCRUB, prefix_end(ks.SCRUB)))
    return RedundancySummary(
        chunks_total=total,
        chunks_full=counts["full"],
        chunks_degraded=counts["degraded"],
        chunks_at_risk=counts["at_risk"],
        chunks_lost=counts["lost"],
        objects_total=sum(objects.values()),
        objects_full=objects["full"],
        objects_degraded=objects["degraded"],
        objects_at_risk=objects["at_risk"],
        objects_lost=objects["lost"],
        bad_shards=bad,
        repair_backlog=backlog,
        scrub=scrub,
    )
