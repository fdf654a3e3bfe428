"""The cluster heals itself: repair, scrub and garbage collection, simulated in one process.

Eight chunkservers run as ``blobstore chunkserver`` does (heartbeats, scrub loop, bad-shard
reports, repairer, garbage collector; ``tests.sim.datapath.harness``) beside the catalog
and the leader's real maintenance driver, on virtual time. Clients put objects through the
gateway's ``ClusterObjectStore`` and commit them as the PUT handler does, overwrite and
delete them, abandon uploads between write and commit (a gateway killed mid-PUT), upload
in parts (some parts re-uploaded, some uploads aborted), and read them back, while
chunkservers crash and come back (some stay away past the down threshold, so their
shards are rebuilt elsewhere), lose the network while their heartbeats still reach the
leader, or lag; shard files get flipped bytes or vanish; the metadata leader fails over
(a fresh maintenance driver) and an operator drains a server. Then every fault heals,
and within a bounded time:

- every committed object has k+m shards placed on distinct servers, each present on its
  server, intact, and matching the checksum the catalog holds; the drained server holds
  none and is marked drained, every other server is up;
- no shard file is left that the catalog does not place (abandoned uploads, deleted and
  overwritten objects, copies that repair moved away all collected after the grace);
- every object reads back byte-exact, and no read under faults ever returned wrong bytes.

The same seed replays the same run. Seeds: ``BLOBSTORE_SEED=N`` runs one; 2 by default,
8 more behind ``slow``.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass, field
from random import Random

import pytest

from blobstore import errors
from blobstore.codec.ec import ZFEC
from blobstore.errors import CorruptShard
from blobstore.testing.virtual_loop import run
from chunkserver.gc import GcConfig
from chunkserver.shardfile import (
    CHECKSUM_BYTES,
    ShardReader,
    piece_file_offset,
    piece_length,
    shard_checksum,
)
from gateway.storage import ClusterObjectStore
from metadata.api import HeadObjectQuery
from metadata.fsm.commands import (
    AbortMultipartUpload,
    CommitObject,
    CommitPart,
    CompletedPart,
    CompleteMultipartUpload,
    CreateBucket,
    CreateMultipartUpload,
    DeleteObject,
    SetChunkserverState,
    SetErasureProfile,
)
from metadata.fsm.records import ErasureProfile
from metadata.fsm.results import ObjectCommitted, ObjectInfo
from metadata.maintenance.driver import MaintenanceOptions
from tests.sim.datapath.harness import SimCluster, SimMeta, pieces
from tests.sim.raft.harness import fast_seeds, replayable, slow_seeds

pytestmark = pytest.mark.sim

SERVERS = 8
BUCKET, OWNER = "backups", "alice"
PROFILE = ErasureProfile(coder=ZFEC, k=4, m=2, stripe_size_bytes=4096, chunk_size_bytes=16384)
S, C = PROFILE.stripe_size_bytes, PROFILE.chunk_size_bytes
SIZES = [1, 100, S - 1, S + 1, C - 1, C + 1, 2 * C + S + 7]
# repair_timeout_s: a rebuild whose request or answer the network lost waits this long (a
# TCP connection would not lose it silently, but a hung target is as quiet)
MAINTENANCE = MaintenanceOptions(
    interval_s=1.0,
    suspect_after_s=5.0,
    down_after_s=20.0,
    retry_backoff_s=2.0,
    repair_timeout_s=60.0,
)
GC = GcConfig(
    grace_s=30.0,
    orphan_interval_s=10.0,
    full_sweep_interval_s=60.0,
    queue_interval_s=2.0,
    breaker_min_shards=1 << 30,  # abandoned uploads are a large share of a small store
)
HOT = tuple(f"hot{i}" for i in range(10))  # overwritten, deleted and read throughout
COLD = tuple(f"cold{i}" for i in range(6))  # written before the faults, only read after
FAULTS = [
    "crash",
    "crash",
    "isolate",
    "restart",
    "restart",
    "corrupt",
    "lose",
    "loss",
    "slow",
    "failover",
    "drain",
]
WORKLOAD_S = 90.0  # virtual seconds of puts, deletes and reads under faults
HEAL_DEADLINE_S = 900.0  # after the faults end: back to full redundancy and no strays


@dataclass
class Outcome:
    expected: dict[str, bytes] = field(default_factory=dict)  # key -> committed bytes
    by_etag: dict[str, bytes] = field(default_factory=dict)  # every committed version
    puts: int = 0
    failed_puts: int = 0
    abandoned: int = 0
    multipart: int = 0  # completed multipart uploads
    aborted: int = 0  # aborted ones
    deletes: int = 0
    reads_ok: int = 0
    reads_failed: int = 0
    wrong: list[str] = field(default_factory=list)
    schedule: list[str] = field(default_factory=list)
    drained: int | None = None  # the server an operator drained, if any
    healed_after_s: float = 0.0
    trace_digest: str = ""


async def _head(meta: SimMeta, key: str) -> ObjectInfo | None:
    try:
        info = await meta.query(HeadObjectQuery(BUCKET, key))
    except errors.NoSuchKey:
        return None
    assert isinstance(info, ObjectInfo)
    return info


async def _get(store: ClusterObjectStore, info: ObjectInfo) -> bytes:
    size = info.record.size
    return b"".join([bytes(p) async for p in store.read(info, 0, size)])


async def _put(
    meta: SimMeta,
    store: ClusterObjectStore,
    rng: Random,
    out: Outcome,
    key: str,
    data: bytes,
    abandon: float,
) -> None:
    """Store and commit ``data`` as the PUT handler does; with probability ``abandon`` the
    gateway dies between the two (its shards are orphans)."""
    etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
    try:
        stored = await store.write(pieces(data, rng), len(data), md5=False)
    except errors.BlobstoreError:
        out.failed_puts += 1
        return
    if rng.random() < abandon:
        out.abandoned += 1
        return
    command = CommitObject(
        bucket=BUCKET,
        key=key,
        version_id=f"{rng.getrandbits(64):016x}",
        owner=OWNER,
        size=len(data),
        etag=etag,
        chunks=stored.chunks,
        inline_data=stored.inline,
    )
    try:
        await meta.execute(command)
    except errors.BlobstoreError:
        out.failed_puts += 1  # e.g. ChunkFenced: slower than the GC grace
        return
    out.by_etag[etag] = data
    out.expected[key] = data
    out.puts += 1


async def _multipart(
    meta: SimMeta, store: ClusterObjectStore, rng: Random, out: Outcome, key: str
) -> None:
    """A multipart upload of 1-3 parts (some uploaded twice: the first copy's shards are
    garbage), then completed, or aborted (every part's shards are garbage)."""
    upload_id = f"{rng.getrandbits(64):016x}"
    await meta.execute(CreateMultipartUpload(BUCKET, key, upload_id, OWNER))
    parts: list[bytes] = []
    for number in range(1, rng.randint(1, 3) + 1):
        for _ in range(2 if rng.random() < 0.2 else 1):  # a retried part replaces the first
            data = rng.randbytes(rng.choice(SIZES))
            etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
            try:
                stored = await store.write(
                    pieces(data, rng), len(data), allow_inline=False, md5=False
                )
                await meta.execute(
                    CommitPart(BUCKET, key, upload_id, number, len(data), etag, stored.chunks)
                )
            except errors.BlobstoreError:
                out.failed_puts += 1
                await meta.execute(AbortMultipartUpload(BUCKET, key, upload_id))
                return
        parts.append(data)
    if rng.random() < 0.2:
        await meta.execute(AbortMultipartUpload(BUCKET, key, upload_id))
        out.aborted += 1
        return
    listed = tuple(
        CompletedPart(i, hashlib.md5(p, usedforsecurity=False).hexdigest())
        for i, p in enumerate(parts, start=1)
    )
    done = await meta.execute(
        CompleteMultipartUpload(BUCKET, key, upload_id, listed, f"{rng.getrandbits(64):016x}")
    )
    assert isinstance(done, ObjectCommitted)
    out.by_etag[done.etag] = out.expected[key] = b"".join(parts)
    out.multipart += 1


async def _client(
    cluster: SimCluster, store: ClusterObjectStore, rng: Random, out: Outcome, until: float
) -> None:
    meta = cluster.meta
    assert meta is not None
    by_etag = out.by_etag
    while cluster.clock.now < until:
        await asyncio.sleep(rng.uniform(0.05, 1.0))
        key = rng.choice(HOT)
        action = rng.random()
        if action < 0.45:  # put (or an upload abandoned before its commit)
            await _put(meta, store, rng, out, key, rng.randbytes(rng.choice(SIZES)), 0.15)
        elif action < 0.55:
            await _multipart(meta, store, rng, out, key)
        elif action < 0.7:
            await meta.execute(DeleteObject(BUCKET, key))
            out.expected.pop(key, None)
            out.deletes += 1
        else:  # read whatever version is current, check it against what was committed
            info = await _head(meta, key)
            if info is None or info.record.etag not in by_etag:
                continue
            try:
                got = await _get(store, info)
            except errors.BlobstoreError:
                out.reads_failed += 1
                continue
            out.reads_ok += 1
            if got != by_etag[info.record.etag]:
                out.wrong.append(f"{key}: {len(got)} bytes differ from version {info.record.etag}")


async def _placed(meta: SimMeta) -> dict[tuple[uuid.UUID, int, int], str]:
    """(chunk id, shard index, server id) -> recorded checksum, for every committed chunk."""
    out: dict[tuple[uuid.UUID, int, int], str] = {}
    for key in sorted(await _live_keys(meta)):
        info = await _head(meta, key)
        assert info is not None
        for chunk in info.chunks:
            for s in chunk.shards:
                out[(uuid.UUID(chunk.chunk_id), s.shard_index, s.server_id)] = s.checksum
    return out


async def _live_keys(meta: SimMeta) -> set[str]:
    return {key for key in (*HOT, *COLD) if await _head(meta, key) is not None}


async def _faults(cluster: SimCluster, rng: Random, out: Outcome, until: float) -> None:
    meta = cluster.meta
    assert meta is not None
    damaged: set[str] = set()  # chunk ids damaged once already
    while cluster.clock.now < until:
        await asyncio.sleep(rng.uniform(0.5, 4.0))
        action = rng.choice(FAULTS)
        up = sorted(set(cluster.servers) - cluster.down)
        victim: object
        if action == "crash" and len(cluster.down) < PROFILE.m:
            victim = rng.choice(up)
            await cluster.crash(victim)
        elif action == "isolate" and len(cluster.down) < PROFILE.m:
            victim = rng.choice(up)  # cut off from clients and peers, heartbeats still arrive
            cluster.isolate(victim)
        elif action == "restart" and cluster.down:
            victim = rng.choice(sorted(cluster.down))
            cluster.restart(victim)
        elif action == "slow":  # alive but lagging
            victim = rng.choice(sorted(cluster.servers))
            cluster.net.slow(victim, rng.choice([0.0, 0.3, 1.0, 3.0]))
        elif action == "failover":
            await meta.failover()
            victim = "leader"
        elif action == "drain" and out.drained is None and not cluster.down:
            victim = out.drained = rng.choice(up)
            await meta.execute(SetChunkserverState(victim, "draining"))
        elif action == "loss":
            cluster.net.configure(drop_prob=rng.choice([0.0, 0.0, 0.02]))
            victim = cluster.net.drop_prob
        elif action in ("corrupt", "lose"):
            placed = [p for p in await _placed(meta) if str(p[0]) not in damaged]
            if not placed:
                continue
            cid, index, sid = rng.choice(sorted(placed))
            store = cluster.servers[sid].store
            if (cid, index) not in {(i.chunk_id, i.shard_index) async for i in store.inventory()}:
                continue
            if action == "corrupt":
                cluster.corrupt(cid, index, sid)
            else:
                await cluster.lose(cid, index, sid)
            damaged.add(str(cid))
            victim = f"{cid}/{index}@{sid}"
        else:
            continue
        out.schedule.append(f"{cluster.clock.now:.3f} {action} {victim}")


async def _unhealed(cluster: SimCluster, drained: int | None) -> list[str]:
    """What still differs from a fully healed cluster (empty once healed)."""
    meta = cluster.meta
    assert meta is not None
    problems: list[str] = []
    placed = await _placed(meta)
    per_chunk: dict[uuid.UUID, set[tuple[int, int]]] = {}
    for cid, index, sid in placed:
        per_chunk.setdefault(cid, set()).add((index, sid))
    for key in sorted(await _live_keys(meta)):
        info = await _head(meta, key)
        assert info is not None
        for chunk in info.chunks:
            shards = per_chunk[uuid.UUID(chunk.chunk_id)]
            n = chunk.k + chunk.m
            if sorted(i for i, _ in shards) != list(range(n)) or len({s for _, s in shards}) != n:
                problems.append(f"{key}: chunk {chunk.chunk_id} placed as {sorted(shards)}")
    files: set[tuple[uuid.UUID, int, int]] = set()
    for sid, server in cluster.servers.items():
        async for f in server.store.inventory():
            files.add((f.chunk_id, f.shard_index, sid))
    for missing in sorted(set(placed) - files):
        problems.append(f"placed but absent: {missing}")
    for stray in sorted(files - set(placed)):
        problems.append(f"stray shard file: {stray}")
    for cid, index, sid in sorted(set(placed) & files):
        raw = cluster.servers[sid].store.raw_bytes(cid, index)
        try:
            ShardReader.from_bytes(raw).read_range()  # verifies every piece
        except CorruptShard as exc:
            problems.append(f"damaged shard {cid}/{index}@{sid}: {exc}")
            continue
        recorded = placed[(cid, index, sid)]
        actual = f"{_shard_sum(raw):x}"
        if recorded and recorded != actual:
            problems.append(f"shard {cid}/{index}@{sid} checksum {actual} != recorded {recorded}")
    states = {s.server_id: s.state for s in meta.catalog.list_chunkservers()}
    want = {sid: "drained" if sid == drained else "up" for sid in cluster.servers}
    if states != want:
        problems.append(f"server states {states}, want {want}")
    return problems


def _shard_sum(raw: bytes) -> int:
    """The shard checksum of a shard file, from the piece checksums stored in it."""
    h = ShardReader.from_bytes(raw).header
    sums = []
    for stripe in range(h.stripe_count):
        at = piece_file_offset(h, stripe) + piece_length(h, stripe)
        sums.append(int.from_bytes(raw[at : at + CHECKSUM_BYTES], "little"))
    return shard_checksum(sums)


async def _scenario(seed: int) -> Outcome:
    rng = Random(seed)
    cluster = SimCluster(
        SERVERS, Random(rng.getrandbits(64)), meta_options=MAINTENANCE, gc_config=GC
    )
    meta = cluster.meta
    assert meta is not None
    out = Outcome()
    await meta.execute(SetErasureProfile(PROFILE))
    await meta.execute(CreateBucket(BUCKET, OWNER))
    for _ in range(100):  # the chunkservers register
        if len(meta.catalog.list_chunkservers()) == SERVERS:
            break
        await asyncio.sleep(0.1)
    store = ClusterObjectStore(
        meta, cluster.client, clock=cluster.clock, rng=Random(rng.getrandbits(64))
    )
    for key in COLD:
        await _put(meta, store, rng, out, key, rng.randbytes(2 * C + S + 7), 0.0)
    assert set(out.expected) == set(COLD)
    until = cluster.clock.now + WORKLOAD_S
    await asyncio.gather(
        *(_client(cluster, store, Random(rng.getrandbits(64)), out, until) for _ in range(3)),
        _faults(cluster, Random(rng.getrandbits(64)), out, until),
    )
    await cluster.heal()
    healed_at = cluster.clock.now
    problems = await _unhealed(cluster, out.drained)
    while problems and cluster.clock.now - healed_at < HEAL_DEADLINE_S:
        await asyncio.sleep(10.0)
        problems = await _unhealed(cluster, out.drained)
    assert not problems, f"not healed {HEAL_DEADLINE_S:.0f} s after the faults: {problems[:5]}"
    out.healed_after_s = cluster.clock.now - healed_at
    assert not out.wrong, out.wrong[:3]
    for key, data in sorted(out.expected.items()):
        info = await _head(meta, key)
        assert info is not None, f"{key} was acknowledged and is gone"
        assert await _get(store, info) == data, f"{key} reads back wrong"
    assert await _live_keys(meta) == set(out.expected)
    out.trace_digest = hashlib.sha256(repr(cluster.net.trace).encode()).hexdigest()
    await cluster.stop()
    return out


def _run(seed: int) -> Outcome:
    with replayable(seed):
        return run(_scenario(seed))


@pytest.mark.parametrize("seed", fast_seeds(2))
def test_the_cluster_heals_itself(seed: int) -> None:
    out = _run(seed)
    assert out.puts and out.deletes and out.abandoned and out.multipart and out.schedule


@pytest.mark.slow
@pytest.mark.parametrize("seed", slow_seeds(8))
def test_the_cluster_heals_itself_long(seed: int) -> None:
    _run(seed)


def test_a_healing_run_replays_exactly() -> None:
    first, second = _run(fast_seeds()[0]), _run(fast_seeds()[0])
    assert (first.trace_digest, first.schedule, first.puts) == (
        second.trace_digest,
        second.schedule,
        second.puts,
    )
