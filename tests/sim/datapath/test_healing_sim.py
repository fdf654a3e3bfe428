"""The cluster heals itself: repair, scrub and garbage collection, simulated in one process.

Eight chunkservers run as ``blobstore chunkserver`` does (heartbeats, scrub loop, bad-shard
reports, repairer, garbage collector; ``tests.sim.datapath.harness``) beside the catalog
and the leader's real maintenance driver, on virtual time. Four clients, alternating
between two gateways (each its own ``ClusterObjectStore`` and catalog client), put
objects and commit them as the PUT handler does, overwrite and delete them, abandon
uploads between write and commit (a gateway killed mid-PUT), upload in parts (some parts
re-uploaded, some uploads aborted), and read them back, while chunkservers crash and come
back (some stay away past the down threshold, so their shards are rebuilt elsewhere), are
cut off from the network, or lag; shard files get flipped bytes or vanish; the metadata
leader fails over and an operator drains a server. Then every fault heals, and within a
bounded time:

- every committed object has k+m shards placed on distinct servers, each present on its
  server, intact, and matching the checksum the catalog holds; the drained server holds
  none and is marked drained, every other server is up;
- no shard file is left that the catalog does not place (abandoned uploads, deleted and
  overwritten objects, copies that repair moved away all collected after the grace);
- every object reads back byte-exact, and no read under faults ever returned wrong bytes;
- the history of puts, deletes and HEADs of the overwritten keys (values: ETags), closed
  by a final HEAD of each, is linearizable (``blobstore.testing.linearizability``).

Two metadata sides: ``SimMeta`` (the catalog applied in process, in order; a failover is a
fresh maintenance driver), and ``raft=True``: three real metadata nodes
(``tests.sim.raft.raftmeta``: the Raft driver, catalog, maintenance driver and RPC
service over logs that lose their unsynced tail on a crash), which every component reaches
through its own ``RemoteCatalog`` over the simulated network. Their faults: kill -9 of the
leader, restarts, one node cut off from everyone or from the other metadata nodes only,
one node paused (SIGSTOP) for up to 5 s.
The test's own catalog calls wait out a failover (``PATIENCE_S``), so no acknowledged
outcome is unknown.

The same seed replays the same run. Seeds: ``BLOBSTORE_SEED=N`` runs one; 2 (SimMeta) and
1 (Raft) by default, 8 and 4 more behind ``slow``.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from random import Random

import pytest

from blobstore import errors
from blobstore.client.catalog import CatalogClient
from blobstore.codec.ec import ZFEC
from blobstore.errors import CorruptShard
from blobstore.testing.history import HistoryRecorder, OpKind
from blobstore.testing.linearizability import check
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
from metadata.api import HeadObjectQuery, ListChunkserversQuery
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
from metadata.fsm.records import ChunkserverRecord, ErasureProfile
from metadata.fsm.results import ObjectInfo
from metadata.maintenance.driver import MaintenanceOptions
from tests.sim.datapath.harness import PatientCatalog, SimCluster, SimMeta, pieces
from tests.sim.raft.harness import fast_seeds, replayable, slow_seeds
from tests.sim.raft.raftmeta import RaftMeta

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
# with the metadata side as three Raft nodes: "failover" is a kill -9 of the leader; a node
# is restarted, cut off from every other node or from the other metadata nodes only, or
# stopped for a few seconds (SIGSTOP)
RAFT_FAULTS = [
    "failover",
    "meta-restart",
    "meta-isolate",
    "meta-partition",
    "meta-partition",
    "meta-pause",
    "meta-pause",
]
PATIENCE_S = 300.0  # virtual seconds the test's own catalog calls may take
CLIENTS = 4  # concurrent S3 clients, alternating between two gateways
SECOND_GATEWAY = 50  # the second gateway's node id
WORKLOAD_S = 90.0  # virtual seconds of puts, deletes and reads under faults
HEAL_DEADLINE_S = 900.0  # after the faults end: back to full redundancy and no strays


@dataclass
class Outcome:
    history: HistoryRecorder  # of HOT keys: values are ETags
    cold: dict[str, bytes] = field(default_factory=dict)  # COLD key -> its bytes
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


def _patient(cluster: SimCluster) -> CatalogClient:
    assert cluster.catalog is not None
    return PatientCatalog(cluster.catalog, PATIENCE_S)


async def _head(meta: CatalogClient, key: str) -> ObjectInfo | None:
    try:
        info = await meta.query(HeadObjectQuery(BUCKET, key))
    except errors.NoSuchKey:
        return None
    assert isinstance(info, ObjectInfo)
    return info


async def _read(meta: CatalogClient, out: Outcome, client: int, key: str) -> ObjectInfo | None:
    """HEAD ``key`` into the history (a "get" of its ETag)."""
    token = out.history.invoke(client, "get", key)
    try:
        info = await _head(meta, key)
    except errors.BlobstoreError:
        out.history.complete(token, None, "fail")
        return None
    out.history.complete(token, None if info is None else info.record.etag, "ok")
    return info


async def _get(store: ClusterObjectStore, info: ObjectInfo) -> bytes:
    size = info.record.size
    return b"".join([bytes(p) async for p in store.read(info, 0, size)])


async def _put(
    meta: CatalogClient,
    store: ClusterObjectStore,
    rng: Random,
    out: Outcome,
    client: int,
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
    out.by_etag[etag] = data
    if not await _recorded(out, client, "put", key, etag, meta.execute(command)):
        out.failed_puts += 1  # e.g. ChunkFenced: slower than the GC grace
        return
    if key in COLD:
        out.cold[key] = data
    out.puts += 1


async def _recorded(
    out: Outcome, client: int, op: OpKind, key: str, value: str | None, call: Awaitable[object]
) -> bool:
    """Run one catalog call of a HOT key into the history; whether it succeeded."""
    token = out.history.invoke(client, op, key, value) if key in HOT else None
    try:
        await call
    except errors.BlobstoreError as exc:
        if token is not None:  # a domain error changed nothing; a timeout may have
            unknown = isinstance(exc, (errors.DeadlineExceeded, errors.Unavailable))
            out.history.complete(token, None, "info" if unknown else "fail")
        return False
    if token is not None:
        out.history.complete(token, None, "ok")
    return True


async def _multipart(
    meta: CatalogClient,
    store: ClusterObjectStore,
    rng: Random,
    out: Outcome,
    client: int,
    key: str,
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
    digests = [hashlib.md5(p, usedforsecurity=False).digest() for p in parts]
    listed = tuple(CompletedPart(i, d.hex()) for i, d in enumerate(digests, start=1))
    etag = f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(parts)}"
    out.by_etag[etag] = b"".join(parts)
    complete = CompleteMultipartUpload(
        BUCKET, key, upload_id, listed, f"{rng.getrandbits(64):016x}"
    )
    assert await _recorded(out, client, "put", key, etag, meta.execute(complete))
    out.multipart += 1


async def _client(
    cluster: SimCluster,
    gateway: tuple[ClusterObjectStore, CatalogClient],
    client: int,
    rng: Random,
    out: Outcome,
    until: float,
) -> None:
    store, meta = gateway
    by_etag = out.by_etag
    while cluster.clock.now < until:
        await asyncio.sleep(rng.uniform(0.05, 1.0))
        key = rng.choice(HOT)
        action = rng.random()
        if action < 0.45:  # put (or an upload abandoned before its commit)
            await _put(meta, store, rng, out, client, key, rng.randbytes(rng.choice(SIZES)), 0.15)
        elif action < 0.55:
            await _multipart(meta, store, rng, out, client, key)
        elif action < 0.7:
            if await _recorded(
                out, client, "delete", key, None, meta.execute(DeleteObject(BUCKET, key))
            ):
                out.deletes += 1
        else:  # read whatever version is current, check it against what was committed
            info = await _read(meta, out, client, key)
            if info is None:
                continue
            try:
                got = await _get(store, info)
            except errors.BlobstoreError:
                out.reads_failed += 1
                continue
            out.reads_ok += 1
            if got != by_etag[info.record.etag]:
                out.wrong.append(f"{key}: {len(got)} bytes differ from version {info.record.etag}")


async def _placed(meta: CatalogClient) -> dict[tuple[uuid.UUID, int, int], str]:
    """(chunk id, shard index, server id) -> recorded checksum, for every committed chunk."""
    out: dict[tuple[uuid.UUID, int, int], str] = {}
    for info in (await _live(meta)).values():
        for chunk in info.chunks:
            for s in chunk.shards:
                out[(uuid.UUID(chunk.chunk_id), s.shard_index, s.server_id)] = s.checksum
    return out


async def _live(meta: CatalogClient) -> dict[str, ObjectInfo]:
    """Every present key and its current version (one lookup each: clients may race)."""
    out = {}
    for key in (*HOT, *COLD):
        info = await _head(meta, key)
        if info is not None:
            out[key] = info
    return out


async def _faults(cluster: SimCluster, rng: Random, out: Outcome, until: float) -> None:
    meta = _patient(cluster)
    faults = FAULTS + RAFT_FAULTS if isinstance(cluster.meta, RaftMeta) else FAULTS
    damaged: set[uuid.UUID] = set()  # chunks damaged once already
    while cluster.clock.now < until:
        await asyncio.sleep(rng.uniform(0.5, 4.0))
        action = rng.choice(faults)
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
        elif action == "failover" and isinstance(cluster.meta, SimMeta):
            await cluster.meta.failover()  # a fresh maintenance driver
            victim = "leader"
        elif action in RAFT_FAULTS and isinstance(cluster.meta, RaftMeta):
            victim = await cluster.meta.inject(action.removeprefix("meta-"), rng)
            if victim is None:
                continue
        elif action == "drain" and out.drained is None and not cluster.down:
            victim = out.drained = rng.choice(up)
            await meta.execute(SetChunkserverState(victim, "draining"))
        elif action == "loss":
            cluster.net.configure(drop_prob=rng.choice([0.0, 0.0, 0.02]))
            victim = cluster.net.drop_prob
        elif action in ("corrupt", "lose"):
            placed = [p for p in await _placed(meta) if p[0] not in damaged]
            if not placed:
                continue
            cid, index, sid = rng.choice(sorted(placed))
            if await cluster.servers[sid].store.stat(cid, index) is None:
                continue
            if action == "corrupt":
                cluster.corrupt(cid, index, sid)
            else:
                await cluster.lose(cid, index, sid)
            damaged.add(cid)
            victim = f"{cid}/{index}@{sid}"
        else:
            continue
        out.schedule.append(f"{cluster.clock.now:.3f} {action} {victim}")


async def _unhealed(cluster: SimCluster, drained: int | None) -> list[str]:
    """What still differs from a fully healed cluster (empty once healed)."""
    meta = _patient(cluster)
    problems: list[str] = []
    placed = await _placed(meta)
    per_chunk: dict[uuid.UUID, set[tuple[int, int]]] = {}
    for cid, index, sid in placed:
        per_chunk.setdefault(cid, set()).add((index, sid))
    for key, info in sorted((await _live(meta)).items()):
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
    states = {s.server_id: s.state for s in await _chunkservers(meta)}
    want = {sid: "drained" if sid == drained else "up" for sid in cluster.servers}
    if states != want:
        problems.append(f"server states {states}, want {want}")
    return problems


async def _chunkservers(meta: CatalogClient) -> tuple[ChunkserverRecord, ...]:
    servers = await meta.query(ListChunkserversQuery())
    assert isinstance(servers, tuple)
    return servers


def _shard_sum(raw: bytes) -> int:
    """The shard checksum of a shard file, from the piece checksums stored in it."""
    h = ShardReader.from_bytes(raw).header
    sums = []
    for stripe in range(h.stripe_count):
        at = piece_file_offset(h, stripe) + piece_length(h, stripe)
        sums.append(int.from_bytes(raw[at : at + CHECKSUM_BYTES], "little"))
    return shard_checksum(sums)


async def _scenario(seed: int, *, raft: bool = False) -> Outcome:
    rng = Random(seed)
    cluster = SimCluster(
        SERVERS, Random(rng.getrandbits(64)), meta_options=MAINTENANCE, gc_config=GC, raft=raft
    )
    meta = await cluster.start(PATIENCE_S)
    out = Outcome(HistoryRecorder(lambda: cluster.clock.now))
    await meta.execute(SetErasureProfile(PROFILE))
    await meta.execute(CreateBucket(BUCKET, OWNER))
    gateways = []  # two gateway processes, each with its own catalog client
    for transport, catalog in (
        (cluster.client, cluster.catalog), cluster.gateway(SECOND_GATEWAY)
    ):  # fmt: skip
        assert catalog is not None
        patient = PatientCatalog(catalog, PATIENCE_S)
        store = ClusterObjectStore(
            patient, transport, clock=cluster.clock, rng=Random(rng.getrandbits(64))
        )
        gateways.append((store, patient))
    store = gateways[0][0]
    for key in COLD:
        await _put(meta, store, rng, out, 0, key, rng.randbytes(2 * C + S + 7), 0.0)
    assert set(out.cold) == set(COLD)
    until = cluster.clock.now + WORKLOAD_S
    await asyncio.gather(
        *(
            _client(cluster, gateways[n % 2], n, Random(rng.getrandbits(64)), out, until)
            for n in range(CLIENTS)
        ),
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
    for key, data in sorted(out.cold.items()):
        info = await _head(meta, key)
        assert info is not None, f"{key} was acknowledged and is gone"
        assert await _get(store, info) == data, f"{key} reads back wrong"
    for key in HOT:  # the final state of each: read after every other operation
        info = await _read(meta, out, CLIENTS, key)
        if info is not None:
            assert await _get(store, info) == out.by_etag[info.record.etag], f"{key} reads wrong"
    # every acknowledged put and delete took effect once, in an order consistent with
    # real time, and every HEAD (under faults too) saw the latest of them
    verdict = check(out.history.operations())
    assert verdict.ok, verdict.explain()
    out.trace_digest = hashlib.sha256(repr(cluster.net.trace).encode()).hexdigest()
    await cluster.stop()
    return out


def _run(seed: int, *, raft: bool = False) -> Outcome:
    with replayable(seed):
        return run(_scenario(seed, raft=raft))


@pytest.mark.parametrize("seed", fast_seeds(2))
def test_the_cluster_heals_itself(seed: int) -> None:
    out = _run(seed)
    assert out.puts and out.deletes and out.abandoned and out.multipart and out.schedule


@pytest.mark.slow
@pytest.mark.parametrize("seed", slow_seeds(8))
def test_the_cluster_heals_itself_long(seed: int) -> None:
    _run(seed)


@pytest.mark.parametrize("seed", fast_seeds(1))
def test_the_cluster_heals_itself_on_raft_metadata(seed: int) -> None:
    out = _run(seed, raft=True)
    assert out.puts and out.deletes and out.schedule


@pytest.mark.slow
@pytest.mark.parametrize("seed", slow_seeds(4))
def test_the_cluster_heals_itself_on_raft_metadata_long(seed: int) -> None:
    _run(seed, raft=True)


@pytest.mark.parametrize("raft", [False, True], ids=["sim-meta", "raft-meta"])
def test_a_healing_run_replays_exactly(raft: bool) -> None:
    first, second = _run(fast_seeds()[0], raft=raft), _run(fast_seeds()[0], raft=raft)
    assert (first.trace_digest, first.schedule, first.puts) == (
        second.trace_digest,
        second.schedule,
        second.puts,
    )
