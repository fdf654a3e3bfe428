"""The catalog replicated by the simulated Raft cluster: clients, retries and faults.

Every simulated node applies the real catalog state machine (``CatalogStateMachine``)
beside the harness's command log, snapshots it with the log (``snapshot_every``) and
restores it after a crash. Clients keep one exactly-once session each and issue, one at
a time but concurrently with each other, CreateBucket, CommitObject (the first write of a
key with ``If-None-Match: *``) and DeleteObject, retrying the *same* entry after a
timeout, a lost proposal or a leader change, as ``RemoteCatalog`` does. Meanwhile the
network drops and reorders messages, nodes crash (some between write and fsync) and
restart, and partitions come and go. Afterwards, with the faults healed:

- every client saw the result of the first application of each command: a retry that
  committed again was answered from the session, never applied twice (a second
  CreateBucket would answer BucketAlreadyOwnedByYou, a second conditional CommitObject
  PreconditionFailed);
- every node's catalog is byte-for-byte the same snapshot (apply is deterministic, and a
  restored snapshot plus the replayed log equals the state that was never interrupted);
- the catalog holds exactly what the acknowledged commands say: each key's last
  acknowledged write (inline bytes or chunk records), each acknowledged delete gone, and
  every chunk of a replaced or deleted version dropped with its shards in the delete
  queues, while no shard of a live chunk is queued.

A second scenario shares a few keys between clients that put, delete and read them; a
read asks one node for a ReadIndex and reads that node's catalog once it has applied that
far. The recorded history (rounds as time) must be linearizable
(``blobstore.testing.linearizability``); a mutant that reads without the ReadIndex fails
every one of ten seeds.

Seeded and replayable: ``BLOBSTORE_SEED=N`` runs one seed; a failure names its seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import uuid
from dataclasses import dataclass, field
from typing import Self

import pytest

from blobstore.errors import BlobstoreError, NoSuchKey
from blobstore.testing.history import HistoryRecorder
from blobstore.testing.linearizability import check
from metadata.fsm.commands import ClientCommand, Command, CommitObject, CreateBucket, DeleteObject
from metadata.fsm.machine import CatalogStateMachine, encode_entry
from metadata.fsm.records import Chunk, ShardPlacement
from metadata.fsm.snapshot import encode_snapshot
from metadata.fsm.state import Catalog
from metadata.raft.messages import Entry, EntryType
from tests.sim.raft.harness import Cluster, StateMachine, fast_seeds, replayable, slow_seeds

pytestmark = pytest.mark.sim

OWNER = "alice"
KEYS = 4  # per client: overwrites and deletes of the same keys
OPS = 30  # object commands per client
RETRY_ROUNDS = 40  # a proposal not applied by then is sent again (same bytes, same seq)


class CatalogMachine(StateMachine):
    """The harness's command log plus the real catalog, snapshotted together."""

    def __init__(self) -> None:
        super().__init__()
        self.fsm = CatalogStateMachine()
        self.results: dict[int, object] = {}  # index -> result (since the last restore)

    def apply(self, e: Entry) -> None:
        super().apply(e)
        if e.type == EntryType.NORMAL:
            self.results[e.index] = self.fsm.apply(e.index, e.data)

    def encode(self) -> bytes:
        log = super().encode()
        return struct.pack(">Q", len(log)) + log + self.fsm.snapshot()()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        (n,) = struct.unpack_from(">Q", data)
        sm = super().decode(data[8 : 8 + n])
        sm.fsm.restore(data[8 + n :])
        return sm


class CatalogCluster(Cluster):
    machine = CatalogMachine

    def catalog_of(self, i: int) -> CatalogStateMachine:
        sm = self.nodes[i].sm
        assert isinstance(sm, CatalogMachine)
        return sm.fsm

    def result_at(self, index: int, data: bytes) -> tuple[bool, object]:
        """(decided, result): whether ``data`` is the entry applied at ``index`` anywhere
        (False, None if another entry is), and its result if a node still holds it."""
        for i in self.ids:
            sm = self.nodes[i].sm
            if self.nodes[i].node is None or sm.applied < index:
                continue
            if sm.cmds.get(index) != data:
                return False, None
            assert isinstance(sm, CatalogMachine)
            if index in sm.results:
                return True, sm.results[index]
        return True, None  # applied, but every holder restored a snapshot since: ask again


@dataclass
class Client:
    """One catalog session issuing commands one at a time, RemoteCatalog style."""

    n: int
    ops: list[Command]
    seq: int = 0
    entry: bytes = b""
    index: int | None = None
    sent_round: int = 0
    target: int = 1
    results: list[object] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.entry and len(self.results) == len(self.ops)

    def next_entry(self, now_ms: int) -> None:
        self.seq += 1
        cmd = self.ops[len(self.results)]
        self.entry = encode_entry(ClientCommand(f"client-{self.n}", self.seq, now_ms, cmd))
        self.index = None

    def pump(self, c: CatalogCluster) -> None:
        if not self.entry:
            if len(self.results) == len(self.ops):
                return
            self.next_entry(1_000_000 + c.rounds)
        if self.index is not None:
            decided, result = c.result_at(self.index, self.entry)
            if decided and result is not None:
                self.results.append(result)
                self.entry = b""
                return
            if decided and c.rounds - self.sent_round < RETRY_ROUNDS:
                return  # not applied yet (or only by nodes that restored since): wait
        # lost, timed out or never sent: the same entry again, to the next node
        self.target = self.target % c.n + 1
        self.index = c.propose(self.target, self.entry)
        self.sent_round = c.rounds


def _chunk(c: CatalogCluster, size: int) -> Chunk:
    cid = str(uuid.UUID(int=c.rng.getrandbits(128)))
    servers = c.rng.sample(range(1, 7), 3)
    shards = tuple(
        ShardPlacement(sid, i, f"{c.rng.getrandbits(64):x}") for i, sid in enumerate(servers)
    )
    return Chunk(cid, "zfec", 1, 2, 1 << 20, size, shards)


def _workload(c: CatalogCluster, n_clients: int) -> list[Client]:
    clients = []
    for n in range(n_clients):
        bucket = f"bucket-{n}"
        ops: list[Command] = [CreateBucket(bucket, OWNER)]
        present: set[str] = set()
        for j in range(OPS):
            key = f"k{c.rng.randrange(KEYS)}"
            if key in present and c.rng.random() < 0.3:
                ops.append(DeleteObject(bucket, key))
                present.discard(key)
                continue
            body = b"%d/%d/%d" % (n, j, c.rng.getrandbits(32))
            etag = hashlib.md5(body).hexdigest()
            first = key not in present
            if c.rng.random() < 0.5:  # inline bytes
                data: dict[str, object] = {"inline_data": body}
            else:  # chunks on chunkservers: refcounts, and shard deletes when replaced
                data = {"chunks": (_chunk(c, len(body)),)}
            ops.append(CommitObject(bucket, key, "", OWNER, len(body), etag,
                                    if_none_match=first, **data))  # type: ignore[arg-type]  # fmt: skip
            present.add(key)
        clients.append(Client(n, ops))
    return clients


def _calm(c: CatalogCluster) -> None:
    """Heal the network and restart every crashed node (the end of a run's chaos)."""
    c.heal()
    c.reliable = True
    c.crash_mid_ready_prob = 0.0
    for i in c.ids:
        if not c.alive(i):
            c.start(i)


def _faults(c: CatalogCluster) -> None:
    """One round's worth of chaos, drawn from the cluster's seeded generator."""
    r = c.rng.random()
    down = [i for i in c.ids if not c.alive(i)]
    if r < 0.01 and not down:
        c.crash(c.rng.choice(c.ids))
    elif r < 0.03 and down:
        c.start(down[0])
    elif r < 0.04:
        i = c.rng.choice(c.ids)
        c.partition([i], [j for j in c.ids if j != i])
    elif r < 0.06:
        c.heal()


def catalog_under_faults(seed: int, n_clients: int = 3, max_rounds: int = 6000) -> None:
    c = CatalogCluster(3, seed, snapshot_every=7)
    c.reliable = False
    c.crash_mid_ready_prob = 0.02
    clients = _workload(c, n_clients)
    while not all(cl.done for cl in clients):
        if c.rounds > max_rounds:
            c.fail("clients did not finish")
        if c.rounds > max_rounds // 2:  # enough chaos: let them finish
            _calm(c)
        else:
            _faults(c)
        for cl in clients:
            cl.pump(c)
        c.step_round()
    _calm(c)
    c.final_check()

    # each command took effect once, and its client saw that first application
    for cl in clients:
        for op, result in zip(cl.ops, cl.results, strict=True):
            if isinstance(result, BlobstoreError):
                c.fail(f"client {cl.n}: {type(op).__name__} answered {result!r}")

    # every node holds the very same catalog
    snaps = {i: encode_snapshot(c.catalog_of(i).catalog.snapshot_view()) for i in c.ids}
    if len(set(snaps.values())) != 1:
        c.fail(f"catalogs differ: {[hashlib.sha256(s).hexdigest()[:12] for s in snaps.values()]}")

    # ... and it is what the acknowledged commands say
    catalog = c.catalog_of(1).catalog
    for cl in clients:
        final: dict[str, CommitObject | None] = {}
        for op in cl.ops:
            if isinstance(op, CommitObject):
                final[op.key] = op
            elif isinstance(op, DeleteObject):
                final[op.key] = None
        for key, put in final.items():
            want = None if put is None else (put.etag, put.inline_data, put.chunks)
            try:
                info = catalog.head_object(f"bucket-{cl.n}", key)
                got = (info.record.etag, info.record.inline_data, info.chunks)
            except NoSuchKey:
                got = None
            if got != want:
                c.fail(f"bucket-{cl.n}/{key}: holds {got!r}, last acknowledged {want!r}")
    # a replaced or deleted version's chunk is gone and its shards queued for deletion;
    # a live one keeps its record and nothing of it is queued
    live = {ch.chunk_id for ch in _all_chunks(catalog)}
    queued = {
        (e.shard.chunk_id, e.shard.server_id, e.shard.shard_index)
        for sid in range(1, 7)
        for e in catalog.delete_queue_page(sid, None, 10_000).entries
    }
    for cl in clients:
        for op in cl.ops:
            if not (isinstance(op, CommitObject) and op.chunks):
                continue
            ch = op.chunks[0]
            shards = {(ch.chunk_id, s.server_id, s.shard_index) for s in ch.shards}
            alive = ch.chunk_id in live
            if alive != (catalog.get_chunk(ch.chunk_id) is not None):
                c.fail(f"chunk {ch.chunk_id}: referenced={alive} but its record disagrees")
            if (shards <= queued) == alive or (alive and shards & queued):
                c.fail(f"chunk {ch.chunk_id}: referenced={alive}, queued={shards & queued}")


def _all_chunks(catalog: Catalog) -> list[Chunk]:
    out: list[Chunk] = []
    for b in catalog.list_buckets():
        for key in (f"k{i}" for i in range(KEYS)):
            with contextlib.suppress(NoSuchKey):
                out.extend(catalog.head_object(b.name, key).chunks)
    return out


# -- shared keys: writers and linearizable readers -------------------------------------------
SHARED = "shared"


@dataclass
class Reader:
    """A ReadIndex read on one node: its read state, then that node's catalog."""

    node: int
    key: str
    ctx: bytes
    token: int
    sent_round: int
    index: int | None = None


@dataclass
class SharedClient:
    """Random puts, deletes and reads of a few keys every client shares."""

    n: int
    budget: int
    writer: Client = field(init=False)
    read: Reader | None = None
    write_token: int | None = None
    reads: int = 0

    def __post_init__(self) -> None:
        self.writer = Client(self.n + 100, [])

    @property
    def done(self) -> bool:
        return self.budget <= 0 and self.read is None and self.write_token is None

    def pump(self, c: CatalogCluster, history: HistoryRecorder) -> None:
        if self.write_token is not None:
            self._pump_write(c, history)
        elif self.read is not None:
            self._pump_read(c, history)
        elif self.budget > 0:
            self.budget -= 1
            self._start(c, history)

    def _start(self, c: CatalogCluster, history: HistoryRecorder) -> None:
        key = f"s{c.rng.randrange(3)}"
        r = c.rng.random()
        if r < 0.4:
            up = [i for i in c.ids if c.alive(i)]
            node = c.rng.choice(up)
            self.reads += 1
            ctx = b"r%d/%d" % (self.n, self.reads)
            token = history.invoke(self.n, "get", key)
            self.read = Reader(node, key, ctx, token, c.rounds)
            c.rn(node).read_index(ctx)
            return
        if r < 0.55:
            command: Command = DeleteObject(SHARED, key)
            self.write_token = history.invoke(self.n, "delete", key)
        else:
            value = f"{self.n}-{c.rounds}-{c.rng.getrandbits(24)}"
            body = value.encode()
            command = CommitObject(SHARED, key, "", OWNER, len(body),
                                   hashlib.md5(body).hexdigest(), inline_data=body)  # fmt: skip
            self.write_token = history.invoke(self.n, "put", key, value)
        self.writer.ops.append(command)
        self.writer.pump(c)

    def _pump_write(self, c: CatalogCluster, history: HistoryRecorder) -> None:
        assert self.write_token is not None
        self.writer.pump(c)
        if self.writer.done:  # retried until applied once: always an outcome
            result = self.writer.results[-1]
            if isinstance(result, BlobstoreError):
                c.fail(f"client {self.n}: {result!r}")
            history.complete(self.write_token, None, "ok")
            self.write_token = None

    def _pump_read(self, c: CatalogCluster, history: HistoryRecorder) -> None:
        rd = self.read
        assert rd is not None
        sn = c.nodes[rd.node]
        if sn.node is None or c.rounds - rd.sent_round > RETRY_ROUNDS:
            history.complete(rd.token, None, "fail")  # a read that never ran changed nothing
            self.read = None
            return
        if rd.index is None:
            for rs in sn.read_states:
                if rs.context == rd.ctx:
                    rd.index = rs.index
                    sn.read_states.remove(rs)
                    break
            else:
                return
        if sn.sm.applied < rd.index:
            return
        try:
            info = c.catalog_of(rd.node).catalog.head_object(SHARED, rd.key)
            value: str | None = (info.record.inline_data or b"").decode()
        except NoSuchKey:
            value = None
        history.complete(rd.token, value, "ok")
        self.read = None


def shared_keys_linearizable(seed: int, n_clients: int = 4, ops: int = 25) -> None:
    c = CatalogCluster(3, seed, snapshot_every=9)
    c.reliable = False
    c.crash_mid_ready_prob = 0.02
    history = HistoryRecorder(lambda: float(c.rounds))
    setup = Client(99, [CreateBucket(SHARED, OWNER)])
    while not setup.done:
        setup.pump(c)
        c.step_round()
    clients = [SharedClient(n, ops) for n in range(n_clients)]
    while not all(cl.done for cl in clients):
        if c.rounds > 8000:
            c.fail("clients did not finish")
        if c.rounds > 4000:
            _calm(c)
        else:
            _faults(c)
        for cl in clients:
            cl.pump(c, history)
        c.step_round()
    result = check(history.operations())
    if not result.ok:
        c.fail(result.explain())


SCENARIOS = {"exactly_once": catalog_under_faults, "linearizable": shared_keys_linearizable}
LONG = {"exactly_once": {"n_clients": 5, "max_rounds": 12000},
        "linearizable": {"n_clients": 6, "ops": 60}}  # fmt: skip


@pytest.mark.parametrize("seed", fast_seeds())
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_catalog_simulation(scenario: str, seed: int) -> None:
    with replayable(seed):
        SCENARIOS[scenario](seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", slow_seeds(10))
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_catalog_simulation_long(scenario: str, seed: int) -> None:
    with replayable(seed):
        SCENARIOS[scenario](seed, **LONG[scenario])  # type: ignore[operator]
