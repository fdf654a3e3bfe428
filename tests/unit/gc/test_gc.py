"""Chunkserver garbage collection against an in-process catalog and a memory store.

Time is a ``SimClock`` shared by the store (file mtimes), the catalog client (command
timestamps) and the collector, so grace periods are exact and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.client.catalog import LocalCatalog
from blobstore.clock import SimClock
from blobstore.config import ChunkserverConfig, load_config
from blobstore.errors import (
    ChunkFenced,
    ConfigError,
    InvalidArgument,
    NoSuchKey,
    PreconditionFailed,
    Unavailable,
)
from blobstore.rpc import codec
from blobstore.types import Address
from chunkserver.gc import (
    RENAME_SLACK_S,
    GarbageCollector,
    GcConfig,
    GcStats,
    GetGcStatsResponse,
)
from chunkserver.shardfile import ShardHeader, piece_length
from chunkserver.store.base import InventoryCursor, InventoryPage, ShardInfo
from chunkserver.store.memory import MemoryShardStore
from gateway.errors import resolve
from metadata.api import (
    DeleteQueueQuery,
    HeadObjectQuery,
    PlacedShardsQuery,
    Query,
    ReadMode,
    ShardsOnServerQuery,
    run_query,
)
from metadata.fsm import keyspace as ks
from metadata.fsm.commands import (
    AbortMultipartUpload,
    AckShardDeletes,
    CommitObject,
    CommitPart,
    CompletedPart,
    CompleteMultipartUpload,
    CreateBucket,
    CreateMultipartUpload,
    DeleteObject,
    FenceChunks,
    FenceShards,
    RegisterChunkserver,
    ShardMove,
    UpdatePlacement,
)
from metadata.fsm.multipart import ApplyConfig
from metadata.fsm.records import Chunk, ShardPlacement, ShardRef
from metadata.fsm.results import (
    ChunksFenced,
    DeleteQueuePage,
    ObjectInfo,
    PlacedShardsPage,
    PlacementUpdated,
    ShardsFenced,
)
from metadata.fsm.state import Catalog

ME = 7
OTHER = 8
GRACE = 100.0
BUCKET = "gcb"
ETAG = "d41d8cd98f00b204e9800998ecf8427e"


@dataclass
class World:
    clock: SimClock
    catalog: LocalCatalog
    store: MemoryShardStore
    gc: GarbageCollector
    versions: dict[str, int] = field(default_factory=dict)

    async def write_shard(self, cid: uuid.UUID, index: int, length: int = 100) -> None:
        header = ShardHeader(cid, index, 2, 1, "zfec", 64, length)

        async def body() -> AsyncIterator[bytes]:
            for s in range(header.stripe_count):
                yield bytes(piece_length(header, s))

        await self.store.write(header, body())

    async def commit(self, key: str, cid: uuid.UUID, *, name: str | None = None) -> None:
        """Commit an object whose single chunk has shard 0 here and shard 1 elsewhere."""
        n = self.versions[key] = self.versions.get(key, 0) + 1
        await self.catalog.execute(
            CommitObject(BUCKET, key, f"v{n}", "root", 100, ETAG, chunks=(chunk(cid, name),))
        )

    def queued(self, server_id: int) -> tuple[ShardRef, ...]:
        page = run_query(self.catalog.catalog, DeleteQueueQuery(server_id=server_id))
        assert isinstance(page, DeleteQueuePage)
        return tuple(e.shard for e in page.entries)

    async def files(self) -> set[tuple[uuid.UUID, int]]:
        page = await self.store.inventory_page(None, 1 << 30)
        return {(i.chunk_id, i.shard_index) for i in page.shards}


def chunk(cid: uuid.UUID, name: str | None = None) -> Chunk:
    placements = (ShardPlacement(ME, 0), ShardPlacement(OTHER, 1))
    return Chunk(name or str(cid), "zfec", 2, 1, 64, 100, placements)


async def world(config: GcConfig | None = None, catalog_cls: type = LocalCatalog) -> World:
    clock = SimClock(1000.0)
    catalog = catalog_cls(Catalog(config=ApplyConfig(min_part_size_bytes=0)), clock=clock)
    await catalog.execute(CreateBucket(BUCKET, "root"))
    store = MemoryShardStore(clock=clock.time)
    gc = GarbageCollector(
        store, catalog, lambda: ME, config or GcConfig(grace_s=GRACE), clock=clock
    )
    return World(clock, catalog, store, gc)


# -- the batched query --------------------------------------------------------------------
async def test_shards_on_server_query_names_only_this_servers_placements() -> None:
    w = await world()
    a, b = uuid.uuid4(), uuid.uuid4()
    await w.commit("k", a)
    got = run_query(w.catalog.catalog, ShardsOnServerQuery(ME, (str(a), str(b), str(a))))
    assert got == (ShardRef(str(a), ME, 0),)
    assert run_query(w.catalog.catalog, ShardsOnServerQuery(OTHER, (str(a),))) == (
        ShardRef(str(a), OTHER, 1),
    )
    assert run_query(w.catalog.catalog, ShardsOnServerQuery(99, (str(a),))) == ()


def test_gc_messages_roundtrip_on_the_wire() -> None:
    msg = GetGcStatsResponse(GcStats(server_id=3, orphans_removed=2, orphan_bytes_reclaimed=9))
    assert codec.decode(codec.encode(msg)) == msg
    q = ShardsOnServerQuery(5, ("a", "b"))
    from metadata import wire

    wire.register_all()
    assert codec.decode(codec.encode(q)) == q


def test_config_from_the_chunkserver_config() -> None:
    env = {
        "BLOBSTORE_GC_GRACE_S": "2.5",
        "BLOBSTORE_GC_QUEUE_INTERVAL_S": "0.5",
        "BLOBSTORE_GC_ENABLED": "false",
        "BLOBSTORE_GC_FULL_SWEEP_INTERVAL_S": "600",
        "BLOBSTORE_META": "127.0.0.1:7001",
    }
    cfg = GcConfig.from_config(load_config(ChunkserverConfig, env=env))
    assert (cfg.grace_s, cfg.queue_interval_s, cfg.enabled) == (2.5, 0.5, False)
    assert cfg.full_sweep_interval_s == 600
    defaults = load_config(ChunkserverConfig, env={"BLOBSTORE_META": "127.0.0.1:7001"})
    assert GcConfig.from_config(defaults) == GcConfig()
    with pytest.raises(ConfigError):
        load_config(ChunkserverConfig, env={**env, "BLOBSTORE_GC_QUEUE_INTERVAL_S": "0"})
    with pytest.raises(ConfigError):
        load_config(ChunkserverConfig, env={**env, "BLOBSTORE_GC_FULL_SWEEP_INTERVAL_S": "0"})
    with pytest.raises(ValueError):
        GcConfig(batch=0)


# -- delete queue -------------------------------------------------------------------------
async def test_drain_deletes_this_servers_queued_shards_and_acks_them() -> None:
    w = await world()
    a, keep = uuid.uuid4(), uuid.uuid4()
    for cid in (a, keep):
        await w.write_shard(cid, 0)
    await w.commit("gone", a)
    await w.commit("kept", keep)
    await w.catalog.execute(DeleteObject(BUCKET, "gone"))
    assert w.queued(ME) == (ShardRef(str(a), ME, 0),)
    assert await w.gc.drain_queue() == 1
    assert await w.files() == {(keep, 0)}
    assert w.queued(ME) == ()
    assert w.queued(OTHER) == (ShardRef(str(a), OTHER, 1),)  # not ours to delete
    s = w.gc.stats()
    assert (s.queue_drained, s.queue_bytes_reclaimed > 0, s.server_id) == (1, True, ME)
    assert await w.gc.drain_queue() == 0


async def test_drain_pages_through_a_long_queue() -> None:
    w = await world(GcConfig(grace_s=GRACE, batch=3))
    ids = [uuid.uuid4() for _ in range(10)]
    for n, cid in enumerate(ids):
        await w.write_shard(cid, 0)
        await w.commit(f"k{n}", cid)
        await w.catalog.execute(DeleteObject(BUCKET, f"k{n}"))
    assert await w.gc.drain_queue() == 10
    assert await w.files() == set()
    assert w.queued(ME) == ()


class FlakyStore(MemoryShardStore):
    """Fails the first ``failures`` deletes with an I/O error."""

    failures = 1

    async def delete(
        self, chunk_id: uuid.UUID, shard_index: int, *, expect: ShardInfo | None = None
    ) -> bool:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("disk said no")
        return await super().delete(chunk_id, shard_index, expect=expect)


async def test_failed_unlink_is_not_acked_and_is_retried() -> None:
    w = await world()
    w.store = FlakyStore(clock=w.clock.time)
    w.gc = GarbageCollector(w.store, w.catalog, lambda: ME, GcConfig(grace_s=GRACE), clock=w.clock)
    a = uuid.uuid4()
    await w.write_shard(a, 0)
    await w.commit("k", a)
    await w.catalog.execute(DeleteObject(BUCKET, "k"))
    assert await w.gc.drain_queue() == 0
    assert w.queued(ME) == (ShardRef(str(a), ME, 0),)
    assert await w.gc.drain_queue() == 1
    assert (await w.files(), w.queued(ME)) == (set(), ())


class AckFailsOnce(LocalCatalog):
    fail_next_execute = False

    async def execute(self, command: object, *, timeout_s: float = 10.0) -> object:
        if self.fail_next_execute:
            self.fail_next_execute = False
            raise Unavailable("leader lost")
        return await super().execute(command, timeout_s=timeout_s)  # type: ignore[arg-type]


async def test_lost_ack_is_repeated_idempotently() -> None:
    w = await world(catalog_cls=AckFailsOnce)
    cat = w.catalog
    assert isinstance(cat, AckFailsOnce)
    a = uuid.uuid4()
    await w.write_shard(a, 0)
    await w.commit("k", a)
    await w.catalog.execute(DeleteObject(BUCKET, "k"))
    cat.fail_next_execute = True
    with pytest.raises(Unavailable):
        await w.gc.drain_queue()
    assert await w.files() == set()  # deleted, but still queued
    assert w.queued(ME) == (ShardRef(str(a), ME, 0),)
    assert await w.gc.drain_queue() == 1  # absent file counts as done
    assert w.queued(ME) == ()


async def test_run_loop_backs_off_on_errors_then_drains() -> None:
    w = await world(catalog_cls=AckFailsOnce)
    cat = w.catalog
    assert isinstance(cat, AckFailsOnce)
    a = uuid.uuid4()
    await w.write_shard(a, 0)
    await w.commit("k", a)
    await w.catalog.execute(DeleteObject(BUCKET, "k"))
    cat.fail_next_execute = True
    w.gc.start()
    for _ in range(200):
        if w.queued(ME) == ():
            break
        w.clock.advance(1.0)
        for _ in range(20):  # let the loop's coroutines run at this virtual instant
            await asyncio.sleep(0)
    await w.gc.stop()
    assert w.queued(ME) == ()
    assert w.gc.stats().errors == 1


# -- orphans ------------------------------------------------------------------------------
async def test_orphans_respect_grace_references_and_id_forms() -> None:
    w = await world()
    committed, hexform, orphan, young, moved = (uuid.uuid4() for _ in range(5))
    for cid in (committed, hexform, orphan):
        await w.write_shard(cid, 0)
    await w.write_shard(moved, 1)  # the catalog places shard 1 of `moved` elsewhere
    await w.commit("a", committed)
    await w.commit(BUCKET, hexform, name=hexform.hex)
    await w.commit("c", moved)
    w.clock.advance(GRACE + 1)
    await w.write_shard(young, 0)  # unreferenced but inside the grace period
    assert await w.gc.collect_orphans() == 2
    assert await w.files() == {(committed, 0), (hexform, 0), (young, 0)}
    s = w.gc.stats()
    assert (s.orphans_found, s.orphans_removed, s.orphan_rounds) == (2, 2, 1)
    assert s.orphan_bytes_reclaimed > 0
    # `orphan` was fenced; `moved` is referenced (live): only its unplaced copy went
    assert (s.chunks_fenced, s.chunks_found_live) == (1, 1)
    w.clock.advance(GRACE)
    assert await w.gc.collect_orphans() == 1  # `young` has aged past the grace period
    assert await w.files() == {(committed, 0), (hexform, 0)}


async def test_a_commit_after_the_fence_fails_in_either_id_form() -> None:
    w = await world()
    slow, slow_hex = uuid.uuid4(), uuid.uuid4()
    for cid in (slow, slow_hex):
        await w.write_shard(cid, 0)
    w.clock.advance(GRACE * 5)  # the writers stalled far past the grace period
    assert await w.gc.collect_orphans() == 2
    with pytest.raises(ChunkFenced):
        await w.commit("slow", slow)
    with pytest.raises(ChunkFenced):
        await w.commit("slow-hex", slow_hex, name=slow_hex.hex)
    with pytest.raises(NoSuchKey):
        run_query(w.catalog.catalog, HeadObjectQuery(BUCKET, "slow"))
    assert w.gc.stats().chunks_fenced == 2
    w.clock.advance(GRACE * 5)
    assert await w.gc.collect_orphans() == 0


class FenceFails(LocalCatalog):
    """FenceChunks fails: with ``error`` raised (catalog down) or returned by an old
    metadata service that does not know the command."""

    error: Exception = Unavailable("leader lost")

    async def execute(self, command: object, *, timeout_s: float = 10.0) -> object:
        if isinstance(command, FenceChunks | FenceShards):
            raise self.error
        return await super().execute(command, timeout_s=timeout_s)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error", [Unavailable("leader lost"), InvalidArgument("unknown command type FenceChunks")]
)
async def test_no_fence_no_delete(error: Exception) -> None:
    w = await world(catalog_cls=FenceFails)
    cat = w.catalog
    assert isinstance(cat, FenceFails)
    cat.error = error
    orphan, live = uuid.uuid4(), uuid.uuid4()
    await w.write_shard(orphan, 0)
    await w.write_shard(live, 1)  # a copy of a referenced chunk the catalog places elsewhere
    await w.commit("live", live)
    w.clock.advance(GRACE + 1)
    with pytest.raises(type(error)):
        await w.gc.collect_orphans()
    assert await w.files() == {(orphan, 0), (live, 1)}


# -- repair races (shard fences) ----------------------------------------------------------
FROM = 9  # the server a repaired shard moves away from


async def repaired_world(catalog_cls: type = LocalCatalog) -> tuple[World, uuid.UUID]:
    """A referenced chunk whose shard 0 lives on FROM (being repaired onto ME)."""
    w = await world(catalog_cls=catalog_cls)
    for sid in (ME, OTHER, FROM):
        await w.catalog.execute(RegisterChunkserver(sid, Address("127.0.0.1", sid), "", 1, 1))
    cid = uuid.uuid4()
    placements = (ShardPlacement(FROM, 0), ShardPlacement(OTHER, 1))
    c = Chunk(str(cid), "zfec", 2, 1, 64, 100, placements)
    await w.catalog.execute(CommitObject(BUCKET, "k", "v1", "root", 100, ETAG, chunks=(c,)))
    return w, cid


def repair_move(cid: uuid.UUID, started_ms: int) -> UpdatePlacement:
    return UpdatePlacement(str(cid), (ShardMove(0, FROM, ME, ""),), started_ms)


def placed_on(w: World, cid: uuid.UUID) -> int:
    rec = w.catalog.catalog.get_chunk(str(cid))
    assert rec is not None
    return rec.chunk.shards[0].server_id


class ShardFenceless(LocalCatalog):
    """A broken catalog for the negative control: answers every FenceShards copy "fenced"
    without recording anything, so a slow repair still places its deleted copy."""

    async def execute(self, command: object, *, timeout_s: float = 10.0) -> object:
        if isinstance(command, FenceShards):
            return ShardsFenced(command.shards, ())
        return await super().execute(command, timeout_s=timeout_s)  # type: ignore[arg-type]


@pytest.mark.parametrize("catalog_cls", [LocalCatalog, ShardFenceless])
async def test_a_repair_slower_than_the_grace_cannot_place_a_copy_gc_deleted(
    catalog_cls: type,
) -> None:
    """Repair plans (reads the catalog time), rebuilds shard 0 here, then stalls past the
    grace period: GC deletes the unplaced copy and the repair's commit must fail. The
    fenceless control shows the race is real: its commit places a deleted file."""
    w, cid = await repaired_world(catalog_cls)
    started = w.catalog.catalog.now_ms
    w.clock.advance(1)
    await w.write_shard(cid, 0)  # the rebuilt copy
    w.clock.advance(GRACE + 1)
    assert await w.gc.collect_orphans() == 1
    assert await w.files() == set()
    if catalog_cls is ShardFenceless:
        await w.catalog.execute(repair_move(cid, started))
        assert placed_on(w, cid) == ME and (cid, 0) not in await w.files()  # lost copy
        return
    with pytest.raises(PreconditionFailed) as refused:
        await w.catalog.execute(repair_move(cid, started))
    assert refused.value.details["code"] == "ShardFenced"
    assert placed_on(w, cid) == FROM
    assert w.gc.stats().orphans_removed == 1


async def test_a_repair_planned_after_the_fence_keeps_its_copy_and_places_it() -> None:
    """The repair starts once GC fenced the stray copy, rewrites it and commits before GC's
    unlink: the commit succeeds and the compare-and-delete keeps the new file."""
    w, cid = await repaired_world(RacingCatalog)
    cat = w.catalog
    assert isinstance(cat, RacingCatalog)
    await w.write_shard(cid, 0)  # an old stray copy (an earlier repair that lost)
    w.clock.advance(GRACE + 1)
    answers: list[object] = []

    async def repair_after_the_shard_fence() -> None:
        if answers or cat.catalog.count(ks.SHARD_FENCE) == 0:
            return  # not yet fenced (this hook also runs after queries and FenceChunks)
        w.clock.advance(1)
        started = cat.catalog.now_ms + 1  # read after the fence applied
        w.clock.advance(1)
        await w.write_shard(cid, 0)
        answers.append(await cat.execute(repair_move(cid, started)))

    cat.hook = repair_after_the_shard_fence
    assert await w.gc.collect_orphans() == 0
    assert len(answers) == 1 and isinstance(answers[0], PlacementUpdated)
    assert placed_on(w, cid) == ME
    assert await w.files() == {(cid, 0)}
    assert w.gc.stats().orphans_kept_on_recheck == 1


def test_chunk_fenced_is_a_retryable_503_and_crosses_the_wire() -> None:
    err = ChunkFenced("fenced", chunk_id="c", bucket=BUCKET, key="k")
    s3 = resolve(err)
    assert (s3.code, s3.status) == ("SlowDown", 503)
    assert err.retryable and not isinstance(err, Unavailable)  # definite: nothing committed
    assert codec.decode(codec.encode(err)) == err
    stats = GcStats(chunks_fenced=3, chunks_found_live=1)
    assert codec.decode(codec.encode(GetGcStatsResponse(stats))) == GetGcStatsResponse(stats)


async def test_multipart_parts_are_referenced_from_commit_part_until_abort() -> None:
    w = await world()
    p1, p2, unlisted = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for cid in (p1, p2, unlisted):
        await w.write_shard(cid, 0)
    await w.catalog.execute(CreateMultipartUpload(BUCKET, "mp", "u1", "root"))
    await w.catalog.execute(CommitPart(BUCKET, "mp", "u1", 1, 100, ETAG, chunks=(chunk(p1),)))
    await w.catalog.execute(CommitPart(BUCKET, "mp", "u1", 2, 100, ETAG, chunks=(chunk(p2),)))
    await w.catalog.execute(CommitPart(BUCKET, "mp", "u1", 3, 100, ETAG, chunks=(chunk(unlisted),)))
    w.clock.advance(GRACE * 10)  # a multipart upload may stay open for days
    assert await w.gc.collect_orphans() == 0
    parts = (CompletedPart(1, ETAG), CompletedPart(2, ETAG))
    await w.catalog.execute(CompleteMultipartUpload(BUCKET, "mp", "u1", parts, "v1"))
    assert await w.gc.drain_queue() == 1  # the unlisted part was released
    assert await w.gc.collect_orphans() == 0
    assert await w.files() == {(p1, 0), (p2, 0)}
    q = uuid.uuid4()
    await w.write_shard(q, 0)
    await w.catalog.execute(CreateMultipartUpload(BUCKET, "mp2", "u2", "root"))
    await w.catalog.execute(CommitPart(BUCKET, "mp2", "u2", 1, 100, ETAG, chunks=(chunk(q),)))
    await w.catalog.execute(AbortMultipartUpload(BUCKET, "mp2", "u2"))
    assert await w.gc.drain_queue() == 1
    assert await w.files() == {(p1, 0), (p2, 0)}


async def test_breaker_refuses_a_round_where_most_shards_look_orphaned() -> None:
    w = await world(GcConfig(grace_s=GRACE, breaker_min_shards=8, max_orphan_fraction=0.5))
    for _ in range(10):
        await w.write_shard(uuid.uuid4(), 0)  # e.g. server.id lost: nothing matches
    live = uuid.uuid4()
    await w.write_shard(live, 0)
    await w.commit("k", live)
    w.clock.advance(GRACE + 1)
    assert await w.gc.collect_orphans() == 0
    assert len(await w.files()) == 11
    assert w.gc.stats().breaker_trips == 1


class PagedOnly(MemoryShardStore):
    """Refuses whole-store listings while ``strict``: GC must page (bounded memory)."""

    pages: list[int]
    strict = False

    async def inventory_page(self, after: InventoryCursor | None, limit: int) -> InventoryPage:
        self.pages.append(limit)
        return await super().inventory_page(after, limit)

    def inventory(self) -> AsyncIterator[ShardInfo]:
        if self.strict:
            raise AssertionError("a whole-inventory listing")
        return super().inventory()


async def paged_world(config: GcConfig) -> World:
    w = await world(config)
    store = PagedOnly(clock=w.clock.time)
    store.pages = []
    store.strict = True
    w.store = store
    w.gc = GarbageCollector(store, w.catalog, lambda: ME, config, clock=w.clock)
    return w


async def test_orphan_rounds_walk_the_store_a_page_at_a_time() -> None:
    w = await paged_world(GcConfig(grace_s=GRACE, inventory_page=3, batch=2))
    orphans = [uuid.uuid4() for _ in range(5)]
    live = [uuid.uuid4() for _ in range(6)]
    for cid in orphans + live:
        await w.write_shard(cid, 0)
    for n, cid in enumerate(live):
        await w.commit(f"k{n}", cid)
    w.clock.advance(GRACE + 1)
    assert await w.gc.collect_orphans() == 5
    assert await w.files() == {(cid, 0) for cid in live}
    store = w.store
    assert isinstance(store, PagedOnly)
    assert store.pages[:4] == [3, 3, 3, 3]  # 11 shards, three per page, a short last page
    s = w.gc.stats()
    assert (s.last_inventory_shards, s.orphans_found, s.orphan_rounds) == (11, 5, 1)


async def test_the_breaker_judges_before_a_page_smaller_than_its_minimum_is_removed() -> None:
    w = await paged_world(
        GcConfig(grace_s=GRACE, inventory_page=4, breaker_min_shards=8, max_orphan_fraction=0.5)
    )
    for _ in range(10):
        await w.write_shard(uuid.uuid4(), 0)  # server.id lost: nothing matches
    w.clock.advance(GRACE + 1)
    assert await w.gc.collect_orphans() == 0
    assert len(await w.files()) == 10  # not even the first page's four
    assert w.gc.stats().breaker_trips == 1


# -- the race: GC against uploads -----------------------------------------------------------
class RacingCatalog(LocalCatalog):
    """Runs ``hook`` right after answering each GC placement query and each fence: commits
    that land between GC's classification, its fence and its unlinks ("shard written, GC
    lists it, commits")."""

    hook: Callable[[], object] | None = None

    async def query(
        self, q: Query, *, mode: ReadMode = ReadMode.LINEARIZABLE, timeout_s: float = 10.0
    ) -> object:
        answer = await super().query(q, mode=mode, timeout_s=timeout_s)
        if isinstance(q, ShardsOnServerQuery) and self.hook is not None:
            await self.hook()  # type: ignore[misc]
        return answer

    async def execute(self, command: object, *, timeout_s: float = 10.0) -> object:
        answer = await super().execute(command, timeout_s=timeout_s)  # type: ignore[arg-type]
        if isinstance(command, FenceChunks | FenceShards) and self.hook is not None:
            await self.hook()  # type: ignore[misc]
        return answer


class FencelessCatalog(RacingCatalog):
    """A broken catalog for the negative control: answers every FenceChunks id "fenced"
    without recording anything, so later commits naming them still succeed."""

    async def execute(self, command: object, *, timeout_s: float = 10.0) -> object:
        if not isinstance(command, FenceChunks):
            return await super().execute(command, timeout_s=timeout_s)
        if self.hook is not None:
            await self.hook()  # type: ignore[misc]
        return ChunksFenced(command.chunk_ids, ())


@dataclass
class RaceOutcome:
    lost: list[str]  # committed keys whose shard GC deleted (must be empty)
    leaked: set[tuple[uuid.UUID, int]]  # unreferenced files left after the grace period
    refused: int  # commits that failed with ChunkFenced (slow writers)


async def race(
    seed: int, commit_delay_s: float, steps: int = 200, catalog_cls: type = RacingCatalog
) -> RaceOutcome:
    """Uploads write a shard, wait ``commit_delay_s`` of virtual time, then commit (or are
    abandoned); GC rounds run at random moments, and commits also fire inside GC rounds
    (between classification, fence and unlinks). A commit refused with ChunkFenced is a
    failed write (its shard is garbage)."""
    rng = random.Random(seed)
    w = await world(GcConfig(grace_s=GRACE, breaker_min_shards=1 << 30), catalog_cls)
    cat = w.catalog
    assert isinstance(cat, RacingCatalog)
    refused = 0
    pending: list[tuple[float, str, uuid.UUID]] = []  # (written at, key, chunk)
    committed: dict[str, uuid.UUID] = {}
    serial = iter(range(1 << 30))

    async def commit_due() -> None:
        nonlocal refused
        now = w.clock.now
        for item in [p for p in pending if now - p[0] >= commit_delay_s]:
            pending.remove(item)
            if rng.random() < 0.2:
                continue  # abandoned upload: an orphan GC must eventually remove
            _, key, cid = item
            try:
                await w.commit(key, cid)
            except ChunkFenced:
                refused += 1  # the slow writer fails cleanly; the client would retry
                continue
            committed[key] = cid

    cat.hook = commit_due
    for _ in range(steps):
        action = rng.random()
        if action < 0.35:
            cid = uuid.uuid4()
            await w.write_shard(cid, 0)
            pending.append((w.clock.now, f"k{next(serial) % 7}", cid))
        elif action < 0.55:
            await w.gc.collect_orphans(full=rng.random() < 0.3)
        elif action < 0.65:
            await w.gc.drain_queue()
        else:
            w.clock.advance(rng.uniform(0, commit_delay_s))
            await commit_due()
    # let every upload finish, then quiesce GC well past the grace period
    w.clock.advance(commit_delay_s)
    await commit_due()
    cat.hook = None
    w.clock.advance(GRACE * 2)
    await w.gc.drain_queue()
    # incremental: every orphan an upload leaves is a file written since a clean round
    await w.gc.collect_orphans(full=False)
    files = await w.files()
    live = {}
    for key in committed:
        info = run_query(w.catalog.catalog, HeadObjectQuery(BUCKET, key))
        assert isinstance(info, ObjectInfo)
        live[key] = uuid.UUID(info.chunks[0].chunk_id)
    lost = [k for k, cid in live.items() if (cid, 0) not in files]
    return RaceOutcome(lost, files - {(cid, 0) for cid in live.values()}, refused)


@settings(deadline=None, max_examples=50)
@given(seed=st.integers(0, 2**32 - 1), delay_fraction=st.floats(0.0, 3.0))
async def test_gc_never_deletes_a_committed_shard_whatever_the_writer_speed(
    seed: int, delay_fraction: float
) -> None:
    """With the fence, safety no longer depends on commits beating the grace period: a
    writer slower than it is refused (ChunkFenced) instead of committing deleted shards."""
    out = await race(seed, GRACE * delay_fraction)
    assert out.lost == [], f"seed {seed}: GC deleted shards of committed objects {out.lost}"
    assert out.leaked == set(), f"seed {seed}: orphans left after the grace period {out.leaked}"
    if delay_fraction < 1.0:
        assert out.refused == 0, f"seed {seed}: a writer faster than the grace was refused"


async def test_slow_writers_are_refused_not_lost() -> None:
    """Writers 1.5x slower than the grace period: the race does happen (commits refused),
    and no committed object loses its shard."""
    outcomes = [await race(seed, GRACE * 1.5) for seed in range(5)]
    assert sum(o.refused for o in outcomes) > 0
    assert [o.lost for o in outcomes] == [[]] * 5


async def test_race_checker_catches_a_commit_slower_than_the_grace_period() -> None:
    """The negative control: without a working fence (the catalog answers "fenced" but
    records nothing) a writer slower than the grace period loses data, so the race tests
    above can fail."""
    outcomes = [await race(seed, GRACE * 1.5, catalog_cls=FencelessCatalog) for seed in range(5)]
    assert sum(len(o.lost) for o in outcomes) > 0


async def test_recheck_keeps_a_shard_committed_between_scan_and_unlink() -> None:
    w = await world(catalog_cls=RacingCatalog)
    cat = w.catalog
    assert isinstance(cat, RacingCatalog)
    late = uuid.uuid4()
    await w.write_shard(late, 0)
    w.clock.advance(GRACE + 1)
    calls = 0

    async def commit_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # right after the classifying query, before the re-check
            await w.commit("late", late)

    cat.hook = commit_once
    assert await w.gc.collect_orphans() == 0
    assert await w.files() == {(late, 0)}
    assert w.gc.stats().orphans_kept_on_recheck == 1


async def test_recheck_keeps_a_shard_rewritten_between_scan_and_unlink() -> None:
    w = await world(catalog_cls=RacingCatalog)
    cat = w.catalog
    assert isinstance(cat, RacingCatalog)
    cid = uuid.uuid4()
    await w.write_shard(cid, 0)
    w.clock.advance(GRACE + 1)
    calls = 0

    async def rewrite_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # after the fence, before the unlink: the file was rewritten
            w.clock.advance(1)
            await w.write_shard(cid, 0)

    cat.hook = rewrite_once
    assert await w.gc.collect_orphans() == 0
    assert await w.files() == {(cid, 0)}
    assert w.gc.stats().orphans_kept_on_recheck == 1


# -- missing shards ------------------------------------------------------------------------
async def test_placed_shards_query_pages_through_the_chunk_table() -> None:
    w = await world()
    ids = sorted((uuid.uuid4() for _ in range(7)), key=str)
    for n, cid in enumerate(ids):
        await w.commit(f"k{n}", cid)
    seen: list[ShardRef] = []
    after: str | None = None
    pages = 0
    while True:
        page = run_query(w.catalog.catalog, PlacedShardsQuery(ME, after, max_scan=3))
        assert isinstance(page, PlacedShardsPage)
        seen.extend(page.shards)
        pages += 1
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [ShardRef(str(c), ME, 0) for c in ids]
    assert pages == 3
    page = run_query(w.catalog.catalog, PlacedShardsQuery(99))
    assert page == PlacedShardsPage((), None)


async def test_find_missing_reports_placed_shards_the_store_lost() -> None:
    reported: list[tuple[uuid.UUID, int]] = []

    async def report(shards: Sequence[tuple[uuid.UUID, int]]) -> None:
        reported.extend(shards)

    w = await world()
    w.gc = GarbageCollector(w.store, w.catalog, lambda: ME, GcConfig(grace_s=GRACE, batch=1),
                            clock=w.clock, report=report)  # fmt: skip
    kept, lost = uuid.uuid4(), uuid.uuid4()
    for n, cid in enumerate((kept, lost)):
        await w.write_shard(cid, 0)
        await w.commit(f"m{n}", cid)
    await w.store.delete(lost, 0)
    assert await w.gc.find_missing() == 1
    assert reported == [(lost, 0)]
    assert w.gc.stats().missing_reported == 1
    await w.write_shard(lost, 0)  # repaired in place: nothing missing any more
    assert await w.gc.find_missing() == 0
    assert reported == [(lost, 0)]


async def test_find_missing_never_lists_the_whole_store() -> None:
    reported: list[tuple[uuid.UUID, int]] = []

    async def report(shards: Sequence[tuple[uuid.UUID, int]]) -> None:
        reported.extend(shards)

    w = await paged_world(GcConfig(grace_s=GRACE, batch=1))  # 20 placements per catalog page
    w.gc = GarbageCollector(w.store, w.catalog, lambda: ME, GcConfig(grace_s=GRACE, batch=1),
                            clock=w.clock, report=report)  # fmt: skip
    ids = [uuid.uuid4() for _ in range(30)]
    for n, cid in enumerate(ids):
        await w.write_shard(cid, 0)
        await w.commit(f"m{n}", cid)
    for cid in ids[::7]:
        await w.store.delete(cid, 0)
    assert await w.gc.find_missing() == 5
    assert sorted(reported) == sorted((cid, 0) for cid in ids[::7])


# -- incremental rounds ---------------------------------------------------------------------
async def test_incremental_rounds_look_up_only_shards_written_since_a_clean_round() -> None:
    w = await world()
    live = [uuid.uuid4() for _ in range(5)]
    for n, cid in enumerate(live):
        await w.write_shard(cid, 0)
        await w.commit(f"k{n}", cid)
    w.clock.advance(GRACE + 1)
    assert await w.gc.collect_orphans(full=False) == 0  # no clean round yet: full
    assert w.gc.stats().last_orphan_round_lookups == 5
    # the slack: files up to grace + max(grace, RENAME_SLACK_S) before a clean round's start
    # are looked up again (a rename may come long after a file's last write)
    w.clock.advance(GRACE + max(GRACE, RENAME_SLACK_S))
    assert await w.gc.collect_orphans(full=False) == 0
    assert w.gc.stats().last_orphan_round_lookups == 5
    w.clock.advance(1)
    assert await w.gc.collect_orphans(full=False) == 0
    assert w.gc.stats().last_orphan_round_lookups == 0  # nothing new: no catalog lookups
    orphan = uuid.uuid4()
    await w.write_shard(orphan, 0)  # an abandoned upload
    w.clock.advance(GRACE + 1)
    assert await w.gc.collect_orphans(full=False) == 1
    assert w.gc.stats().last_orphan_round_lookups == 1
    assert await w.files() == {(cid, 0) for cid in live}
    s = w.gc.stats()
    assert (s.orphan_rounds, s.orphan_full_rounds) == (4, 1)


async def test_a_full_round_finds_the_strays_incremental_rounds_skip() -> None:
    """A stray older than the last clean round (here: an object deleted and its queued
    shard delete acked without the unlink, as a lost queue entry would leave it) is only
    looked up again by a full round."""
    w = await world()
    keep, stray = uuid.uuid4(), uuid.uuid4()
    for key, cid in (("keep", keep), ("stray", stray)):
        await w.write_shard(cid, 0)
        await w.commit(key, cid)
    w.clock.advance(GRACE + max(GRACE, RENAME_SLACK_S) + 1)
    assert await w.gc.collect_orphans() == 0
    w.clock.advance(GRACE + max(GRACE, RENAME_SLACK_S) + 1)
    await w.catalog.execute(DeleteObject(BUCKET, "stray"))
    await w.catalog.execute(AckShardDeletes(w.queued(ME)))  # the queue entry is lost
    assert await w.gc.collect_orphans(full=False) == 0
    assert (stray, 0) in await w.files()
    assert await w.gc.collect_orphans(full=True) == 1
    assert await w.files() == {(keep, 0)}


async def test_a_round_the_breaker_refused_is_not_clean() -> None:
    """A breaker trip does not move the mark: the next incremental round looks at the
    shards the refused round saw, however old they are by then."""
    w = await world(GcConfig(grace_s=GRACE, breaker_min_shards=4, max_orphan_fraction=0.5))
    assert await w.gc.collect_orphans() == 0  # a clean (empty) round sets the mark
    strays = [uuid.uuid4() for _ in range(4)]
    for cid in strays:
        await w.write_shard(cid, 0)
    slack = GRACE + max(GRACE, RENAME_SLACK_S)
    w.clock.advance(2 * slack)  # had the next round counted, its mark would pass them
    assert await w.gc.collect_orphans(full=False) == 0  # refused: all four look orphaned
    assert w.gc.stats().breaker_trips == 1
    for n in range(8):
        cid = uuid.uuid4()
        await w.write_shard(cid, 0)
        await w.commit(f"k{n}", cid)
    w.clock.advance(GRACE + 1)
    assert await w.gc.collect_orphans(full=False) == 4  # 4 of 12: below the breaker
    assert w.gc.stats().last_orphan_round_lookups == 12
    assert w.gc.stats().orphan_full_rounds == 1


async def test_the_run_loop_sweeps_fully_and_checks_missing_shards_on_its_interval() -> None:
    reported: list[tuple[uuid.UUID, int]] = []

    async def report(shards: Sequence[tuple[uuid.UUID, int]]) -> None:
        reported.extend(shards)

    w = await world()
    cfg = GcConfig(grace_s=GRACE, orphan_interval_s=10, full_sweep_interval_s=100)
    w.gc = GarbageCollector(w.store, w.catalog, lambda: ME, cfg, clock=w.clock, report=report)
    lost = uuid.uuid4()
    await w.write_shard(lost, 0)
    await w.commit("k", lost)
    await w.store.delete(lost, 0)
    w.gc.start()
    try:
        for _ in range(250):  # 250 s of virtual time
            w.clock.advance(1.0)
            for _ in range(20):  # let the loop's coroutines run at this virtual instant
                await asyncio.sleep(0)
    finally:
        await w.gc.stop()
    s = w.gc.stats()
    assert s.orphan_full_rounds == 3  # at start, then every 100 s
    assert 20 <= s.orphan_rounds <= 26
    assert reported == [(lost, 0)] * 3  # missing shards are checked with full rounds
