"""Repair planning: which shards to rebuild, from where, onto which server (pure).

The repair queue is *derived from the catalog*, never kept only in memory: a leader scans
the chunk table in bounded pages (``scan_page``), plus the bad-shard table (``bad_reports``)
so that fresh corruption reports are served without waiting for a full pass. Chunks that
need work are re-assessed against the current catalog right before dispatch
(``plan_chunk``), so a task is never based on a stale view, and a repair that races a
newer placement fails the ``UpdatePlacement`` precondition harmlessly.

Target choice (``choose_target``): a server that is ``up``, holds no shard of the chunk
(nor is the target of another in-flight rebuild of it), has room for the shard, has no
queued delete of that very shard, and -- when servers carry zones -- sits in a zone that
no good shard of the chunk uses, if such a server exists. Among those, one is drawn at
random weighted by free bytes (the injected ``random.Random``), so new load spreads toward
empty disks without every repair piling onto the single emptiest one. A corrupt copy with
no other possible home is rewritten in place on its own (up) server.

Sources: good copies, ``up`` servers before ``suspect``/``draining`` ones, data shards
first (a healthy rebuild of a data shard then needs no decoding).

Pure: stdlib, the catalog and ``metadata.maintenance.health``; randomness is injected.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import cast

from blobstore.types import Address
from metadata.fsm import keyspace as ks
from metadata.fsm.kv import KVReader, prefix_end
from metadata.fsm.records import (
    BadShardRecord,
    Chunk,
    ChunkRecord,
    ChunkserverRecord,
    ShardRef,
)
from metadata.maintenance.health import ChunkHealth, NeedReason, assess, bad_shards_of

__all__ = [
    "BadReports",
    "RepairTask",
    "ScanPage",
    "SourceShard",
    "bad_reports",
    "choose_target",
    "plan_chunk",
    "scan_page",
    "shard_bytes",
]

_HEADER_ALLOWANCE = 4096


@dataclass(frozen=True, slots=True)
class SourceShard:
    """A good copy to read while rebuilding."""

    server_id: int
    shard_index: int
    checksum: str
    addr: Address


@dataclass(frozen=True, slots=True)
class RepairTask:
    """Rebuild shard ``shard_index`` of ``chunk`` on ``to_server`` and then commit
    ``UpdatePlacement(ShardMove(shard_index, from_server, to_server, checksum))``."""

    chunk: Chunk
    shard_index: int
    from_server: int
    to_server: int
    to_addr: Address
    reason: NeedReason
    good: int
    sources: tuple[SourceShard, ...]

    @property
    def key(self) -> tuple[str, int]:
        return (self.chunk.chunk_id, self.shard_index)

    @property
    def expected_checksum(self) -> str:
        """The checksum the catalog recorded for this index ("" if none): coding is
        deterministic, so the rebuilt shard must match it."""
        for s in self.chunk.shards:
            if s.shard_index == self.shard_index:
                return s.checksum
        return ""


@dataclass(frozen=True, slots=True)
class ScanPage:
    """One bounded page of a pass over the chunk table."""

    needy: tuple[ChunkHealth, ...]  # chunks that need a rebuild or a move
    next_after: str | None  # resume cursor; None when the pass reached the end
    scanned: int
    draining_seen: frozenset[int]  # draining servers that still hold a shard in this page


@dataclass(frozen=True, slots=True)
class BadReports:
    chunk_ids: tuple[str, ...]  # chunks with a current (unrepaired) bad-shard report
    stale: tuple[ShardRef, ...]  # reports about copies that moved or chunks that are gone


def shard_bytes(chunk: Chunk) -> int:
    """Approximate size of one shard file of ``chunk``."""
    if chunk.data_length == 0:
        return _HEADER_ALLOWANCE
    stripes = -(-chunk.data_length // chunk.stripe_size)
    return stripes * -(-chunk.stripe_size // chunk.k) + _HEADER_ALLOWANCE


def scan_page(
    kv: KVReader,
    servers: Mapping[int, ChunkserverRecord],
    after: str | None,
    limit: int,
) -> ScanPage:
    """Assess up to ``limit`` chunks with ids after ``after`` (None: from the start)."""
    start = ks.CHUNK if after is None else ks.CHUNK + after.encode("utf-8") + b"\0"
    rows = list(islice(kv.scan(start, prefix_end(ks.CHUNK)), max(1, limit)))
    needy: list[ChunkHealth] = []
    draining: set[int] = set()
    for _, v in rows:
        chunk = cast(ChunkRecord, v).chunk
        h = assess(chunk, servers, bad_shards_of(kv, chunk.chunk_id))
        if h.needs_work:
            needy.append(h)
        for s in chunk.shards:
            srv = servers.get(s.server_id)
            if srv is not None and srv.state == "draining":
                draining.add(s.server_id)
    nxt = cast(ChunkRecord, rows[-1][1]).chunk.chunk_id if len(rows) >= max(1, limit) else None
    return ScanPage(tuple(needy), nxt, len(rows), frozenset(draining))


def bad_reports(kv: KVReader, limit: int) -> BadReports:
    """Up to ``limit`` bad-shard records: current ones by chunk, stale ones to clear."""
    current: list[str] = []
    stale: list[ShardRef] = []
    for _, v in islice(kv.scan(ks.BAD_SHARD, prefix_end(ks.BAD_SHARD)), max(0, limit)):
        ref = cast(BadShardRecord, v).shard
        rec = cast(ChunkRecord | None, kv.get(ks.CHUNK + ref.chunk_id.encode("utf-8")))
        placed = [s for s in rec.chunk.shards if s.shard_index == ref.shard_index] if rec else []
        if not placed or placed[0].server_id != ref.server_id:
            stale.append(ref)
        elif not current or current[-1] != ref.chunk_id:
            current.append(ref.chunk_id)
    return BadReports(tuple(current), tuple(stale))


def choose_target(
    candidates: Iterable[ChunkserverRecord],
    *,
    exclude: Collection[int],
    zones_used: Collection[str],
    need_bytes: int,
    rng: random.Random,
) -> ChunkserverRecord | None:
    """A random ``up`` server not in ``exclude`` with room, weighted by free bytes,
    preferring zones not in ``zones_used`` when servers have zones; None if none fits."""
    fit = sorted(
        (
            s
            for s in candidates
            if s.state == "up" and s.server_id not in exclude and s.free_bytes >= need_bytes
        ),
        key=lambda s: s.server_id,
    )
    if not fit:
        return None
    if any(s.zone for s in fit):
        fresh = [s for s in fit if s.zone not in zones_used]
        if fresh:
            fit = fresh
    weights = [max(1, s.free_bytes) for s in fit]
    return rng.choices(fit, weights=weights, k=1)[0]


def _sources(
    chunk: Chunk, health: ChunkHealth, servers: Mapping[int, ChunkserverRecord]
) -> tuple[SourceShard, ...]:
    bad_or_down = {n.shard_index for n in health.needed if n.reason != "draining"}
    rank = {"up": 0, "suspect": 2, "draining": 1}
    out: list[tuple[int, int, SourceShard]] = []
    for s in chunk.shards:
        srv = servers.get(s.server_id)
        if srv is None or s.shard_index in bad_or_down or srv.state not in rank:
            continue
        out.append(
            (
                rank[srv.state],
                s.shard_index,
                SourceShard(s.server_id, s.shard_index, s.checksum, srv.addr),
            )
        )
    return tuple(src for _, _, src in sorted(out, key=lambda t: (t[0], t[1])))


def plan_chunk(
    kv: KVReader,
    chunk_id: str,
    servers: Mapping[int, ChunkserverRecord],
    *,
    busy: Collection[tuple[str, int]],
    busy_targets: Collection[int],
    rng: random.Random,
    max_tasks: int,
) -> tuple[ChunkHealth | None, tuple[RepairTask, ...]]:
    """Re-assess ``chunk_id`` against the current catalog; the rebuilds to start now.

    ``busy`` holds (chunk, shard index) pairs already being rebuilt (skipped) and
    ``busy_targets`` the servers receiving in-flight rebuilds *of this chunk*. Returns
    (None, ()) for a chunk that no longer exists; no tasks for an unrepairable chunk.
    Repairs of lost redundancy come before moves off draining servers."""
    rec = cast(ChunkRecord | None, kv.get(ks.CHUNK + chunk_id.encode("utf-8")))
    if rec is None:
        return None, ()
    chunk = rec.chunk
    health = assess(chunk, servers, bad_shards_of(kv, chunk_id))
    if not health.repairable or not health.needs_work or max_tasks <= 0:
        return health, ()
    sources = _sources(chunk, health, servers)
    exclude = {s.server_id for s in chunk.shards} | set(busy_targets)
    zones_used = {
        servers[s.server_id].zone
        for s in chunk.shards
        if s.server_id in servers and servers[s.server_id].state in ("up", "suspect")
    }
    need = shard_bytes(chunk)
    ordered = sorted(health.needed, key=lambda n: (n.reason == "draining", n.shard_index))
    tasks: list[RepairTask] = []
    for n in ordered:
        if len(tasks) >= max_tasks:
            break
        if (chunk_id, n.shard_index) in busy:
            continue
        pending = {
            sid
            for sid in servers
            if kv.get(ks.delete_key(sid, chunk_id, n.shard_index)) is not None
        }
        target = choose_target(
            servers.values(),
            exclude=exclude | pending,
            zones_used=zones_used,
            need_bytes=need,
            rng=rng,
        )
        if target is None and n.reason == "bad" and n.from_server not in pending:
            # nowhere else to go: rewrite the corrupt copy in place (an atomic replace)
            here = servers.get(n.from_server)
            target = here if here is not None and here.state == "up" else None
        if target is None:
            continue
        exclude.add(target.server_id)
        if target.zone:
            zones_used.add(target.zone)
        tasks.append(
            RepairTask(
                chunk,
                n.shard_index,
                n.from_server,
                target.server_id,
                target.addr,
                n.reason,
                health.good,
                sources,
            )
        )
    return health, tuple(tasks)
