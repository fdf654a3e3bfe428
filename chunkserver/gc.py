"""Garbage collection on one chunkserver: drain the catalog's delete queue, remove orphans.

Two jobs run in one background loop (``GarbageCollector.run``):

* **Delete queue** (``drain_queue``): the catalog queues ``ShardDelete`` entries when a
  chunk's last reference goes (object deleted or overwritten, multipart part replaced or
  aborted) and when repair moves a shard away. The collector pages
  ``DeleteQueueQuery(server_id=me)``, unlinks each shard file (absent counts as done) and
  proposes ``AckShardDeletes`` for exactly the entries it handled. A failed unlink is not
  acked and is retried on the next round; a failed query or ack backs off exponentially
  (with jitter). Safe by the catalog's invariant that a shard is never re-placed on a
  server that still has a queued delete of the very same shard.
* **Orphan reconciliation** (``collect_orphans``): shards that no catalog record names
  (abandoned or failed uploads, a gateway killed between prepare and commit, a late
  straggler a commit did not wait for, a rebuilt shard whose placement never committed).
  The collector walks the store's inventory a page at a time (``inventory_page``, in
  chunk id order: memory does not grow with the store), keeps files older than
  ``grace_s`` (by mtime), asks the catalog in batches which of those shards it places on
  this server (``ShardsOnServerQuery``, a linearizable read) and, for the rest, *fences*
  their chunk ids (``FenceChunks``, a Raft command, see ``metadata/fsm/fences.py``) before
  deleting: the files of chunks answered *fenced* are removed (no commit can ever name
  those ids again); chunks answered *live* are referenced by some version or part, so
  only their shards the catalog does not place here (a straggler a commit did not wait
  for, a copy repair moved away, a rebuild whose placement never committed) are removed,
  after ``FenceShards`` fenced each such copy (no repair planned before can place it
  here).

  Rounds are *incremental* between full sweeps: every shard is born as a new file, and
  a shard the catalog stops naming after a round found it placed is queued for deletion
  by the catalog (above), so a round only needs to ask about files written since the last
  clean round. A clean round that started at ``t`` looked up every file that was visible
  then and older than ``grace_s``; the next ones skip files with an ``mtime`` before
  ``t - grace_s - max(grace_s, RENAME_SLACK_S)``, the slack covering a file renamed into
  place (so listed) long after its last byte was written (its mtime). A full round
  (at start, then every ``full_sweep_interval_s``) asks about every old shard, a safety
  net for anything else (a restored backup with old mtimes, a clock stepped back, a lost
  queue entry). Catalog lookups per round are then O(shards written lately), not
  O(shards held); the local inventory walk stays O(shards). Skipping a lookup never
  removes anything, so this changes how soon a stray goes, not what is safe.
* **Missing shards** (``find_missing``, with every full round, so also once at start and a
  returning server is reconciled): the reverse check. The collector pages the shards the
  catalog places on this server (``PlacedShardsQuery``, a bounded scan per page) and
  reports every one the store does not hold (``ShardStore.absent``, one batched check per
  page; a placement commits only after its file is durable) as "missing" through
  ``report``, which becomes ``ReportBadShards`` and so a repair. A scrub cannot
  find these: a deleted or lost file is not in the inventory it walks.

Safety argument (never delete a shard that a committed object references):

1. A commit names only shards whose files were already written (prepare happens-before
   commit), so a committed reference is visible to any linearizable read that starts
   after the commit. Parts of a multipart upload are referenced from their ``CommitPart``
   onwards (the chunk record exists from then), not from ``CompleteMultipartUpload``.
2. The fence: a chunk's files are unlinked only after ``FenceChunks`` answered its id (in
   both textual forms) *fenced*. Applied in Raft order, the fence either finds the chunk
   referenced (a commit came first: it answers *live* and the files are kept) or records a
   tombstone that makes every later ``CommitObject`` / ``CommitPart`` naming the id fail
   with ``ChunkFenced`` (the gateway discards that write and answers 503 SlowDown; the
   client retries under fresh ids). So a slow writer -- prepare->commit longer than
   ``grace_s`` -- fails cleanly instead of committing deleted shards: the grace period no
   longer bounds safety, only how long stray shards linger (and how often a write slower
   than it is refused). Fences expire after 7 days of catalog time; see ``fences.py`` for
   why that is safe (fresh uuid4 chunk ids are never reused).
3. The shard fence, for copies of *live* chunks: a repair rebuilds a copy here, then
   commits ``UpdatePlacement``; until then the copy is unplaced like any stray. Such a copy
   is unlinked only after ``FenceShards`` answered it *fenced* (not placed here, and no
   repair planned before the fence can place it here any more: ``UpdatePlacement`` carries
   the catalog time its repair began, see ``metadata/fsm/fences.py``); a copy answered
   *placed* is kept. So a repair slower than ``grace_s`` fails its commit and retries
   instead of committing a deleted file. A file younger than ``grace_s`` is never
   considered.
   Every unlink is a compare-and-delete (``ShardStore.delete(expect=...)``): the file goes
   only if it is still the one listed (same inode, size, mtime), checked atomically with
   the store's own renames, so a copy rewritten since (a repair planned after the fence,
   a writer's retry) stays.
4. A breaker refuses a round in which more than ``max_orphan_fraction`` of the old
   shards look unreferenced (a lost ``server.id`` re-registering under a new id would
   otherwise make every shard look orphaned).
5. Chunk ids are matched in both textual forms of the UUID (``str(uuid)`` as the gateway
   writes them, and ``uuid.hex``), so a writer using either is recognised.
Any error (catalog unreachable, unknown answer) keeps the files.

Counters (``GcStats``) are served over RPC (``GetGcStatsRequest``, tags 2030-2032) for
status pages and tests. Configuration comes from ``GcConfig``, built from the chunkserver's
typed config (``gc_*`` settings: TOML, ``BLOBSTORE_GC_*`` variables) by ``from_config``.

Must not import: gateway code, metadata service internals (only the catalog client API).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from blobstore.client.catalog import CatalogClient
from blobstore.clock import Clock, SystemClock
from blobstore.config import ChunkserverConfig
from blobstore.log import get_logger
from blobstore.rpc import CallContext
from blobstore.rpc.codec import register
from chunkserver.store.base import InventoryCursor, ShardInfo, ShardStore
from metadata.api import DeleteQueueQuery, PlacedShardsQuery, ShardsOnServerQuery
from metadata.fsm.commands import AckShardDeletes, FenceChunks, FenceShards
from metadata.fsm.fences import MAX_FENCE_IDS
from metadata.fsm.records import ShardRef
from metadata.fsm.results import ChunksFenced, DeleteQueuePage, PlacedShardsPage, ShardsFenced

if TYPE_CHECKING:
    from chunkserver.service import Chunkserver

__all__ = [
    "GarbageCollector",
    "GcConfig",
    "GcStats",
    "GetGcStatsRequest",
    "GetGcStatsResponse",
    "OrphanScan",
]

log = get_logger(__name__)


RENAME_SLACK_S = 60.0  # least slack for a write's rename after its mtime (incremental rounds)

ReportMissing = Callable[[Sequence[tuple[uuid.UUID, int]]], Awaitable[None]]
K = TypeVar("K")  # what GC fences: a chunk id, or a (chunk id, shard index) copy
W = TypeVar("W")  # how a fence command names it: an id text, or a ShardRef


@dataclass(frozen=True, slots=True)
class GcConfig:
    """Garbage-collection settings of one chunkserver."""

    grace_s: float = 3600.0  # an unreferenced shard younger than this is kept
    orphan_interval_s: float = 300.0  # between orphan reconciliation rounds
    # between full rounds (every old shard looked up, and the missing-shard check); the
    # rounds in between only look up shards written since the last clean round
    full_sweep_interval_s: float = 3600.0
    queue_interval_s: float = 5.0  # between delete-queue polls
    batch: int = 500  # shards per catalog query / delete-queue page
    inventory_page: int = 5000  # shards listed at a time by orphan rounds (bounded memory)
    max_backoff_s: float = 60.0
    max_orphan_fraction: float = 0.5  # breaker: refuse a round above this share...
    breaker_min_shards: int = 64  # ...of at least this many old shards
    enabled: bool = True

    def __post_init__(self) -> None:
        if (
            self.grace_s < 0
            or min(self.orphan_interval_s, self.queue_interval_s, self.full_sweep_interval_s) <= 0
        ):
            raise ValueError("GC intervals must be positive and the grace period >= 0")
        if self.batch < 1 or self.inventory_page < 1 or not 0 < self.max_orphan_fraction <= 1:
            raise ValueError(
                "GC batch and inventory page must be >= 1 and 0 < max_orphan_fraction <= 1"
            )

    @classmethod
    def from_config(cls, config: ChunkserverConfig) -> GcConfig:
        """The ``gc_*`` settings of a chunkserver's config."""
        return cls(
            grace_s=config.gc_grace_s,
            orphan_interval_s=config.gc_orphan_interval_s,
            full_sweep_interval_s=config.gc_full_sweep_interval_s,
            queue_interval_s=config.gc_queue_interval_s,
            max_backoff_s=config.gc_max_backoff_s,
            enabled=config.gc_enabled,
        )


@dataclass(frozen=True, slots=True)
class GcStats:
    """Counters since the process started."""

    server_id: int = 0
    queue_rounds: int = 0
    queue_drained: int = 0  # delete-queue entries handled and acked
    queue_bytes_reclaimed: int = 0
    orphan_rounds: int = 0
    orphans_found: int = 0  # old unreferenced shards seen (cumulative over rounds)
    orphans_removed: int = 0
    orphan_bytes_reclaimed: int = 0
    orphans_kept_on_recheck: int = 0  # referenced (or rewritten) by the time of the unlink
    missing_reported: int = 0  # placed here by the catalog but absent from the store
    breaker_trips: int = 0
    errors: int = 0
    last_orphan_round_time: float = 0.0  # wall clock of the last completed round
    last_inventory_shards: int = 0
    chunks_fenced: int = 0  # chunk ids the catalog fenced for this server's orphan GC
    chunks_found_live: int = 0  # fence answered "referenced": a commit won the race
    orphan_full_rounds: int = 0  # rounds that looked up every old shard (the rest: new ones)
    last_orphan_round_lookups: int = 0  # old shards the last completed round looked up


@dataclass(frozen=True, slots=True)
class GetGcStatsRequest:
    pass


@dataclass(frozen=True, slots=True)
class GetGcStatsResponse:
    stats: GcStats = field(default_factory=GcStats)


register(2030, GetGcStatsRequest)
register(2031, GetGcStatsResponse)
register(2032, GcStats)


@dataclass(frozen=True, slots=True)
class OrphanScan:
    """One classification of a store's inventory against the catalog."""

    inventory: int
    referenced: tuple[ShardInfo, ...]
    unreferenced_old: tuple[ShardInfo, ...]  # older than the grace period
    unreferenced_young: tuple[ShardInfo, ...]


def _forms(cid: uuid.UUID) -> tuple[str, str]:
    return (str(cid), cid.hex)


def _parse(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class GarbageCollector:
    """Delete-queue drain and orphan reconciliation for one ``ShardStore``."""

    def __init__(
        self,
        store: ShardStore,
        catalog: CatalogClient,
        server_id: Callable[[], int],
        config: GcConfig | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        query_timeout_s: float = 10.0,
        report: ReportMissing | None = None,
    ) -> None:
        self.store = store
        self._report = report
        self.catalog = catalog
        self._server_id = server_id
        self.config = config or GcConfig()
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._timeout_s = query_timeout_s
        self._stats = GcStats()
        self._task: asyncio.Task[None] | None = None
        # files with an mtime at or before this were classified by a clean round (None:
        # no clean round yet, the next one is full); see "incremental" above
        self._classified_until: float | None = None

    @classmethod
    def for_server(
        cls, server: Chunkserver, catalog: CatalogClient, config: GcConfig | None = None
    ) -> GarbageCollector:
        """A collector over ``server``'s store and id; serves ``GetGcStatsRequest``."""
        gc = cls(
            server.store, catalog, lambda: server.server_id, config, report=server.report_missing
        )
        server.rpc.handle(GetGcStatsRequest, gc.handle_stats)
        return gc

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Run the loop in the background (no-op when disabled)."""
        if self.config.enabled and self._task is None:
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def stats(self) -> GcStats:
        return replace(self._stats, server_id=self._server_id())

    async def handle_stats(self, req: GetGcStatsRequest, ctx: CallContext) -> GetGcStatsResponse:
        return GetGcStatsResponse(self.stats())

    def _count(self, **deltas: int) -> None:
        self._stats = replace(
            self._stats, **{k: getattr(self._stats, k) + v for k, v in deltas.items()}
        )

    async def run(self) -> None:
        """Forever: drain the queue every ``queue_interval_s``, reconcile orphans every
        ``orphan_interval_s``; errors back off exponentially up to ``max_backoff_s``."""
        cfg = self.config
        while self._server_id() == 0:  # not registered yet
            await self._clock.sleep(min(cfg.queue_interval_s, 0.5))
        next_orphans = next_full = self._clock.monotonic()
        backoff = 0.0
        while True:
            try:
                await self.drain_queue()
                if self._clock.monotonic() >= next_orphans:
                    full = self._clock.monotonic() >= next_full
                    if full:
                        await self.find_missing()
                    await self.collect_orphans(full=full)
                    next_orphans = self._clock.monotonic() + cfg.orphan_interval_s
                    if full:
                        next_full = self._clock.monotonic() + cfg.full_sweep_interval_s
                backoff = 0.0
                delay = cfg.queue_interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # catalog down, leader change, disk error: retry
                self._count(errors=1)
                backoff = min(max(backoff * 2, 0.5), cfg.max_backoff_s)
                delay = backoff * (0.5 + self._rng.random())
                log.warning("garbage collection failed; backing off", error=str(exc),
                            retry_s=round(delay, 2))  # fmt: skip
            await self._clock.sleep(delay)

    # -- delete queue -----------------------------------------------------------------------
    async def drain_queue(self) -> int:
        """Delete and ack every queued shard of this server; returns how many were acked."""
        sid = self._server_id()
        if sid == 0:
            return 0
        total = 0
        while True:
            page = await self.catalog.query(
                DeleteQueueQuery(server_id=sid, limit=self.config.batch), timeout_s=self._timeout_s
            )
            assert isinstance(page, DeleteQueuePage)
            entries = [e.shard for e in page.entries if e.shard.server_id == sid]
            if not entries:
                break
            done: list[ShardRef] = []
            freed = 0
            for ref in entries:
                cid = _parse(ref.chunk_id)
                if cid is None:  # not a shard this store could hold: nothing to delete
                    done.append(ref)
                    continue
                try:
                    info = await self.store.stat(cid, ref.shard_index)
                    if await self.store.delete(cid, ref.shard_index) and info is not None:
                        freed += info.size_bytes
                except OSError as exc:
                    log.warning("queued shard delete failed", chunk=ref.chunk_id,
                                shard=ref.shard_index, error=str(exc))  # fmt: skip
                    continue
                done.append(ref)
            if done:
                await self.catalog.execute(AckShardDeletes(tuple(done)), timeout_s=self._timeout_s)
            total += len(done)
            self._count(queue_drained=len(done), queue_bytes_reclaimed=freed)
            if len(done) < len(entries) or page.next_after is None:
                break  # failures are retried next round; no progress loop
        self._count(queue_rounds=1)
        if total:
            log.info("delete queue drained", server_id=sid, shards=total)
        return total

    # -- orphans ---------------------------------------------------------------------------
    async def _placed(self, sid: int, shards: Sequence[ShardInfo]) -> set[tuple[uuid.UUID, int]]:
        """(chunk, index) of ``shards`` that the catalog places on ``sid`` (linearizable)."""
        placed: set[tuple[uuid.UUID, int]] = set()
        ids = list(dict.fromkeys(i.chunk_id for i in shards))
        step = max(1, self.config.batch // 2)  # two textual forms per chunk id
        for lo in range(0, len(ids), step):
            names = tuple(n for cid in ids[lo : lo + step] for n in _forms(cid))
            found = await self.catalog.query(
                ShardsOnServerQuery(sid, names), timeout_s=self._timeout_s
            )
            assert isinstance(found, tuple)
            for ref in found:
                assert isinstance(ref, ShardRef)
                cid = _parse(ref.chunk_id)
                if cid is not None and ref.server_id == sid:
                    placed.add((cid, ref.shard_index))
        return placed

    async def _fence(self, sid: int, shards: Sequence[ShardInfo]) -> set[uuid.UUID]:
        """Fence the chunk ids of ``shards`` in the catalog; the ids answered fenced (in
        every textual form), whose files may now be deleted. (The unused form of a live
        chunk's id gets a harmless fence: no writer names a chunk in both forms.)"""
        ids = list(dict.fromkeys(i.chunk_id for i in shards))
        fenced = await self._fenced(ids, _forms, lambda names: FenceChunks(names, sid))
        self._count(chunks_fenced=len(fenced), chunks_found_live=len(ids) - len(fenced))
        return set(fenced)

    async def _fence_shards(
        self, sid: int, shards: Sequence[ShardInfo]
    ) -> set[tuple[uuid.UUID, int]]:
        """Fence the copies ``shards`` (of referenced chunks) in the catalog; the (chunk,
        index) answered fenced in every textual form, whose files may now be deleted."""

        def refs(key: tuple[uuid.UUID, int]) -> tuple[ShardRef, ...]:
            return tuple(ShardRef(n, sid, key[1]) for n in _forms(key[0]))

        keys = list(dict.fromkeys((i.chunk_id, i.shard_index) for i in shards))
        return set(await self._fenced(keys, refs, FenceShards))

    async def _fenced(
        self,
        keys: Sequence[K],
        forms: Callable[[K], tuple[W, ...]],
        command: Callable[[tuple[W, ...]], FenceChunks | FenceShards],
    ) -> list[K]:
        """Propose ``command`` over every form of ``keys`` (batched under the catalog's
        limit); the keys answered fenced in every form."""
        fenced: list[K] = []
        step = max(1, min(self.config.batch, MAX_FENCE_IDS) // 2)  # two forms per key
        for lo in range(0, len(keys), step):
            part = keys[lo : lo + step]
            cmd = command(tuple(w for key in part for w in forms(key)))
            answer = await self.catalog.execute(cmd, timeout_s=self._timeout_s)
            if not isinstance(answer, ChunksFenced | ShardsFenced):
                raise TypeError(f"{type(cmd).__name__} answered {type(answer).__name__}")
            done: set[object] = set(answer.fenced)
            fenced += [key for key in part if all(w in done for w in forms(key))]
        return fenced

    async def scan(self, *, include_young: bool = False) -> OrphanScan:
        """Classify the inventory. Young shards are only looked up when ``include_young``
        (then ``referenced`` covers them too). A diagnostic (the chaos tests' final check):
        it holds the whole inventory, unlike ``collect_orphans``."""
        sid = self._server_id()
        now = self._clock.time()
        inventory = [i async for i in self.store.inventory()]
        grace = self.config.grace_s
        asked = inventory if include_young else [i for i in inventory if now - i.mtime >= grace]
        placed = await self._placed(sid, asked)
        ref = tuple(i for i in asked if (i.chunk_id, i.shard_index) in placed)
        unref = [i for i in asked if (i.chunk_id, i.shard_index) not in placed]
        return OrphanScan(
            len(inventory),
            ref,
            tuple(i for i in unref if now - i.mtime >= grace),
            tuple(i for i in unref if now - i.mtime < grace),
        )

    async def find_missing(self) -> int:
        """Report the shards the catalog places here that the store lacks; returns how many."""
        sid = self._server_id()
        if sid == 0 or self._report is None:
            return 0
        found = 0
        after: str | None = None
        while True:  # a page of placements at a time: memory stays bounded
            page = await self.catalog.query(
                PlacedShardsQuery(sid, after, self.config.batch * 20), timeout_s=self._timeout_s
            )
            assert isinstance(page, PlacedShardsPage)
            placed: list[tuple[uuid.UUID, int]] = []
            for ref in page.shards:
                cid = _parse(ref.chunk_id)
                if cid is not None and ref.server_id == sid:
                    placed.append((cid, ref.shard_index))
            # a placement commits only once its file is durable, so absent now means lost
            missing = await self.store.absent(placed) if placed else []
            if missing:
                log.warning("shards missing from the store", server_id=sid, shards=len(missing))
                await self._report(missing)
                self._count(missing_reported=len(missing))
                found += len(missing)
            if page.next_after is None:
                break
            after = page.next_after
        return found

    async def collect_orphans(self, *, full: bool = True) -> int:
        """One reconciliation round; returns the number of shard files removed.

        The inventory is walked in pages (``inventory_page`` shards, in chunk id order), so
        memory stays bounded whatever the store holds: each page is classified against the
        catalog and its orphans removed before the next page is listed. The breaker judges
        the counts of the round so far before any removal (orphans wait until at least
        ``breaker_min_shards`` old shards were seen): a lost server id makes the first pages
        look orphaned, and nothing is removed.

        ``full=False``: look up only the files written since the last clean round (all of
        them when there was none); see "incremental" in the module docstring. A round that
        ends without a breaker trip or an error is clean."""
        sid = self._server_id()
        if sid == 0:
            return 0
        cfg = self.config
        grace = cfg.grace_s
        started = self._clock.time()
        since = None if full else self._classified_until
        removed = listed = considered = unreferenced = 0
        pending: list[ShardInfo] = []  # orphans found, held until the breaker has judged
        after: InventoryCursor | None = None
        while True:
            page = await self.store.inventory_page(after, cfg.inventory_page)
            now = self._clock.time()
            listed += len(page.shards)
            old = [
                i
                for i in page.shards
                if now - i.mtime >= grace and (since is None or i.mtime > since)
            ]
            placed = await self._placed(sid, old)
            orphans = [i for i in old if (i.chunk_id, i.shard_index) not in placed]
            considered += len(old)
            unreferenced += len(orphans)
            pending += orphans
            self._count(orphans_found=len(orphans))
            done = not page.is_truncated or not page.shards
            judged = considered >= cfg.breaker_min_shards  # enough old shards to judge by
            if judged or done:
                if judged and unreferenced > cfg.max_orphan_fraction * considered:
                    self._count(breaker_trips=1, orphan_rounds=1)
                    self._stats = replace(self._stats, last_inventory_shards=listed)
                    log.error(
                        "orphan GC refused: too many shards look unreferenced (server id lost?)",
                        server_id=sid,
                        unreferenced=unreferenced,
                        old_shards=considered,
                    )
                    return removed
                removed += await self._remove_orphans(sid, pending)
                pending = []
            if done:
                break
            last = page.shards[-1]
            after = (last.chunk_id, last.shard_index)
        self._stats = replace(
            self._stats,
            orphan_rounds=self._stats.orphan_rounds + 1,
            orphan_full_rounds=self._stats.orphan_full_rounds + int(since is None),
            last_orphan_round_time=self._clock.time(),
            last_inventory_shards=listed,
            last_orphan_round_lookups=considered,
        )
        mark = started - grace - max(grace, RENAME_SLACK_S)
        if self._classified_until is None or mark > self._classified_until:
            self._classified_until = mark
        return removed

    async def _remove_orphans(self, sid: int, old: Sequence[ShardInfo]) -> int:
        """Fence, then remove, the unreferenced shards ``old``; how many files went."""
        cfg = self.config
        removed = 0
        for lo in range(0, len(old), cfg.batch):
            batch = old[lo : lo + cfg.batch]
            fenced = await self._fence(sid, batch)  # no commit can name these any more
            live = [i for i in batch if i.chunk_id not in fenced]
            # copies of referenced chunks: no repair planned before this can place them here
            cleared = await self._fence_shards(sid, live) if live else set()
            for info in batch:
                key = (info.chunk_id, info.shard_index)
                if info.chunk_id in fenced or key in cleared:
                    if await self.store.delete(*key, expect=info):  # still the file listed
                        removed += 1
                        self._count(orphans_removed=1, orphan_bytes_reclaimed=info.size_bytes)
                        log.info("orphan shard removed", chunk=str(info.chunk_id),
                                 shard=info.shard_index, bytes=info.size_bytes)  # fmt: skip
                        continue
                    if await self.store.stat(*key) is None:
                        continue  # gone already
                # placed here meanwhile (a commit, a repair), or rewritten since the scan
                self._count(orphans_kept_on_recheck=1)
        return removed
