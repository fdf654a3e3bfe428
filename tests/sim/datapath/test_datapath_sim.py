"""The erasure-coded data path under faults, simulated deterministically in one process.

Real chunkserver handlers and shard format (``tests.sim.datapath.harness``), the real
writer, reader and repair primitive, on a seeded lossy network in virtual time. Writers
store objects of awkward sizes (empty, one byte, stripe and chunk boundaries +-1, several
chunks; fed in random pieces, with and without a declared size) while readers read random
ranges of what was acknowledged, and a fault schedule crashes and restarts chunkservers
(never more than m unreachable at once), cuts a server's replies, slows servers down,
drops messages, flips bytes in shard files and deletes shard files (at most one damaged
shard per chunk, so an acknowledged chunk, durable on at least k+1 servers, keeps k good
shards). Then, with every fault healed:

- no read ever returned wrong bytes (a read under faults may fail, never lie);
- every acknowledged object reads back byte-exact, whole and in random ranges;
- one scrub pass per chunkserver reports every flipped byte, and no report anywhere
  names a shard that was not damaged;
- rebuilding every damaged or never-written shard onto a server holding no other shard
  of its chunk restores k+m shards per chunk, each equal to what encoding the original
  bytes gives (checked against an independent encoding, piece by piece), and every object
  then reads back with any m servers down.

The same seed replays the same run: network trace, fault schedule and results.
Seeds: ``BLOBSTORE_SEED=N`` runs one; 3 by default, 10 more behind ``slow``.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass, field, replace
from random import Random

import pytest

from blobstore import errors
from blobstore.codec.ec import ZFEC, get_coder
from blobstore.codec.ranges import Layout
from blobstore.datapath import (
    ChunkRef,
    ReadOptions,
    ShardRef,
    Target,
    WriteOptions,
    WriteResult,
    encode_stripe,
    read_range,
    rebuild_shard,
    write_object,
)
from blobstore.testing.virtual_loop import run
from chunkserver.shardfile import ShardReader, piece_checksum, shard_checksum
from tests.sim.datapath.harness import CLIENT, SimCluster, pieces
from tests.sim.raft.harness import fast_seeds, replayable, slow_seeds

pytestmark = pytest.mark.sim

LAYOUT = Layout(chunk_bytes=16 * 1024, stripe_bytes=4 * 1024, k=4, m=2)
SERVERS = 8
WRITERS = 3
OBJECTS = 12  # per writer
READERS = 2
S, C = LAYOUT.stripe_bytes, LAYOUT.chunk_bytes
SIZES = [0, 1, S - 1, S, S + 1, C - 1, C, C + 1, 2 * C + 3 * S + 5]
OPTIONS = WriteOptions(coder=ZFEC, etag_md5=False)
READ = ReadOptions(hedge_delay_s=0.2, call_timeout_s=10.0)


@dataclass
class Stored:
    data: bytes
    result: WriteResult


@dataclass
class Outcome:
    """What one run did and saw: equal for equal seeds."""

    acked: list[Stored] = field(default_factory=list)
    failed_writes: int = 0
    reads_ok: int = 0
    reads_failed: int = 0
    wrong: list[str] = field(default_factory=list)
    schedule: list[str] = field(default_factory=list)
    # (chunk id, shard index) -> (server id, "corrupt" | "lost")
    damaged: dict[tuple[uuid.UUID, int], tuple[int, str]] = field(default_factory=dict)
    repaired: int = 0
    write_times: list[tuple[float, int]] = field(default_factory=list)  # (seconds, chunks)
    trace_digest: str = ""

    def summary(self) -> tuple[object, ...]:
        return (
            [(hashlib.sha256(s.data).hexdigest(), s.result.chunks) for s in self.acked],
            self.failed_writes,
            self.reads_ok,
            self.reads_failed,
            self.schedule,
            self.repaired,
            self.trace_digest,
        )


class _Placement:
    """Like the metadata service: k+m distinct servers, random, avoiding those it knows
    are down when enough others are up (a fault can still strike after the choice)."""

    def __init__(self, cluster: SimCluster, rng: Random) -> None:
        self._cluster, self._rng = cluster, rng

    async def allocate(self, chunk_index: int) -> list[Target]:
        up = [t for t in self._cluster.targets() if t.server_id not in self._cluster.down]
        pool = up if len(up) >= LAYOUT.n else self._cluster.targets()
        return self._rng.sample(pool, LAYOUT.n)


async def _read(cluster: SimCluster, refs: tuple[ChunkRef, ...], start: int, length: int) -> bytes:
    parts = [
        bytes(b)
        async for b in read_range(
            refs,
            start,
            length,
            directory=cluster,
            transport=cluster.client,
            options=READ,
            health=cluster.health(),
        )
    ]
    return b"".join(parts)


async def _writer(cluster: SimCluster, rng: Random, out: Outcome) -> None:
    placement = _Placement(cluster, rng)
    for _ in range(OBJECTS):
        await asyncio.sleep(rng.uniform(0.0, 0.5))  # let the faults interleave
        size = rng.choice(SIZES)
        data = rng.randbytes(size)
        began = cluster.clock.now
        try:
            result = await write_object(
                pieces(data, rng),
                layout=LAYOUT,
                placement=placement,
                transport=cluster.client,
                size_bytes=size if rng.random() < 0.5 else None,
                options=OPTIONS,
                new_chunk_id=lambda: uuid.UUID(int=rng.getrandbits(128)),
            )
        except errors.BlobstoreError:
            out.failed_writes += 1
            continue
        finally:
            out.write_times.append((cluster.clock.now - began, max(1, -(-size // C))))
        assert result.size_bytes == size
        out.acked.append(Stored(data, result))


async def _reader(cluster: SimCluster, rng: Random, out: Outcome, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.01, 0.1))
        if not out.acked:
            continue
        stored = rng.choice(out.acked)
        size = len(stored.data)
        start = rng.randint(0, size)
        length = rng.randint(0, size - start)
        try:
            got = await _read(cluster, stored.result.chunks, start, length)
        except errors.BlobstoreError:
            out.reads_failed += 1
            continue
        out.reads_ok += 1
        if got != stored.data[start : start + length]:
            out.wrong.append(f"{len(got)} wrong bytes at {start}+{length} of a {size}-byte object")


def _damage_candidates(out: Outcome) -> list[tuple[uuid.UUID, ShardRef]]:
    return [
        (ref.chunk_id, s)
        for stored in out.acked
        for ref in stored.result.chunks
        if not any((ref.chunk_id, i) in out.damaged for i in range(LAYOUT.n))
        for s in ref.shards
    ]


async def _faults(cluster: SimCluster, rng: Random, out: Outcome, stop: asyncio.Event) -> None:
    blocked: set[int] = set()
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.02, 0.3))
        action = rng.choice(
            ["crash", "restart", "restart", "block", "loss", "slow", "corrupt", "lose"]
        )
        up = sorted(set(cluster.servers) - cluster.down)
        if action == "crash" and len(cluster.down) < LAYOUT.m:
            victim = rng.choice(up)
            await cluster.crash(victim)
        elif action == "block" and len(cluster.down) < LAYOUT.m:
            victim = rng.choice(up)  # requests arrive, replies are lost
            cluster.net.block(victim, CLIENT)
            cluster.down.add(victim)
            blocked.add(victim)
        elif action == "restart" and cluster.down:
            victim = rng.choice(sorted(cluster.down))
            if victim in blocked:
                cluster.net.unblock(victim, CLIENT)
                blocked.discard(victim)
            cluster.restart(victim)
        elif action == "loss":
            cluster.net.configure(drop_prob=rng.choice([0.0, 0.0, 0.02, 0.1]))
            victim = int(cluster.net.drop_prob * 100)
        elif action == "slow":  # alive but lagging: what reads hedge around
            victim = rng.choice(sorted(cluster.servers))
            cluster.net.slow(victim, rng.choice([0.0, 0.3, 1.0, 3.0]))
        elif action in ("corrupt", "lose") and (candidates := _damage_candidates(out)):
            chunk_id, shard = rng.choice(candidates)
            if action == "corrupt":
                cluster.corrupt(chunk_id, shard.shard_index, shard.server_id)
            else:
                await cluster.lose(chunk_id, shard.shard_index, shard.server_id)
            out.damaged[(chunk_id, shard.shard_index)] = (shard.server_id, action)
            victim = shard.server_id
        else:
            continue
        out.schedule.append(f"{cluster.clock.now:.3f} {action} {victim}")


def _expected_shards(ref: ChunkRef, data: bytes) -> tuple[list[bytes], list[int]]:
    """Each shard's piece bytes and its shard checksum, by encoding ``data`` afresh."""
    coder = get_coder(ref.coder, ref.k, ref.m)
    by_shard: list[list[bytes]] = [[] for _ in range(ref.k + ref.m)]
    for at in range(0, len(data), ref.stripe_bytes):
        stripe_pieces, _ = encode_stripe(coder, data[at : at + ref.stripe_bytes])
        for i, p in enumerate(stripe_pieces):
            by_shard[i].append(bytes(p))
    sums = [shard_checksum(piece_checksum(p) for p in ps) for ps in by_shard]
    return [b"".join(ps) for ps in by_shard], sums


async def _repair(cluster: SimCluster, rng: Random, out: Outcome, ref: ChunkRef) -> ChunkRef:
    """Rebuild every damaged or missing shard of ``ref`` onto a server holding none of its
    shards; the chunk's new reference."""
    for index in range(ref.k + ref.m):
        known = ref.shard(index)
        if known is not None and (ref.chunk_id, index) not in out.damaged:
            continue
        holders = {s.server_id for s in ref.shards}
        target = cluster.servers[rng.choice(sorted(set(cluster.servers) - holders))].target
        fresh = await rebuild_shard(
            ref, index, target, directory=cluster, transport=cluster.client, options=READ
        )
        assert fresh.server_id == target.server_id
        kept = tuple(s for s in ref.shards if s.shard_index != index)
        ref = replace(ref, shards=tuple(sorted((*kept, fresh), key=lambda s: s.shard_index)))
        out.repaired += 1
    return ref


async def _scenario(seed: int) -> Outcome:
    rng = Random(seed)
    cluster = SimCluster(SERVERS, Random(rng.getrandbits(64)))
    out = Outcome()
    stop = asyncio.Event()
    background = [
        asyncio.create_task(_reader(cluster, Random(rng.getrandbits(64)), out, stop))
        for _ in range(READERS)
    ]
    background.append(asyncio.create_task(_faults(cluster, Random(rng.getrandbits(64)), out, stop)))
    await asyncio.gather(
        *(_writer(cluster, Random(rng.getrandbits(64)), out) for _ in range(WRITERS))
    )
    stop.set()
    await asyncio.gather(*background)
    await cluster.heal()

    assert not out.wrong, f"{len(out.wrong)} reads returned wrong bytes, e.g. {out.wrong[:3]}"
    for took, chunks in out.write_times:  # a silent server delays a write, never stalls it
        assert took <= chunks * OPTIONS.stall_timeout_s + 30, f"a write took {took:.0f} s"
    assert len(out.acked) >= WRITERS * OBJECTS // 2, "too few writes succeeded to mean much"
    for stored in out.acked:  # all faults healed: every acknowledged byte is back
        size = len(stored.data)
        assert await _read(cluster, stored.result.chunks, 0, size) == stored.data
        for _ in range(3):
            start = rng.randint(0, size)
            length = rng.randint(0, size - start)
            got = await _read(cluster, stored.result.chunks, start, length)
            assert got == stored.data[start : start + length]

    for server in cluster.servers.values():  # scrub finds every flipped byte, nothing else
        assert server.process is not None and server.process.scrubber is not None
        await server.process.scrubber.scrub_pass()
    reports = {
        (r.chunk_id, r.shard_index, server.server_id): r.reason
        for server in cluster.servers.values()
        for r in server.link.bad_shards
    }
    damaged = {(cid, i, sid): kind for (cid, i), (sid, kind) in out.damaged.items()}
    assert set(reports) <= set(damaged), "a good shard was reported bad"
    flipped = {key for key, kind in damaged.items() if kind == "corrupt"}
    assert flipped <= set(reports), "scrub missed a flipped byte"

    for stored in out.acked:  # repair: k+m shards per chunk, each exactly as encoded
        refs = [await _repair(cluster, rng, out, ref) for ref in stored.result.chunks]
        offset = 0
        for ref in refs:
            data = stored.data[offset : offset + ref.data_length]
            offset += ref.data_length
            pieces, sums = _expected_shards(ref, data)
            assert [s.shard_index for s in ref.shards] == list(range(ref.k + ref.m))
            assert len({s.server_id for s in ref.shards}) == ref.k + ref.m
            for shard in ref.shards:
                assert shard.checksum == sums[shard.shard_index]
                raw = cluster.servers[shard.server_id].store.raw_bytes(
                    ref.chunk_id, shard.shard_index
                )
                assert ShardReader.from_bytes(raw).read_range() == pieces[shard.shard_index]
        stored.result = replace(stored.result, chunks=tuple(refs))
    for victim in rng.sample(sorted(cluster.servers), LAYOUT.m):  # full redundancy again
        await cluster.crash(victim)
    for stored in out.acked:
        assert await _read(cluster, stored.result.chunks, 0, len(stored.data)) == stored.data

    out.trace_digest = hashlib.sha256(repr(cluster.net.trace).encode()).hexdigest()
    await cluster.client.close()
    return out


def _run(seed: int) -> Outcome:
    with replayable(seed):
        return run(_scenario(seed))


@pytest.mark.parametrize("seed", fast_seeds())
def test_data_path_under_faults(seed: int) -> None:
    out = _run(seed)
    assert out.schedule, "the fault schedule did nothing"
    assert out.damaged and out.repaired >= len(out.damaged)


@pytest.mark.slow
@pytest.mark.parametrize("seed", slow_seeds(10))
def test_data_path_under_faults_long(seed: int) -> None:
    _run(seed)


def test_a_seed_replays_exactly() -> None:
    first, second = _run(fast_seeds()[0]), _run(fast_seeds()[0])
    assert first.summary() == second.summary()
    assert _run(fast_seeds()[0] + 100).trace_digest != first.trace_digest
