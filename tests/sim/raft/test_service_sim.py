"""The metadata service as deployed, three nodes on the simulated network: a leader that was
paused (SIGSTOP) past the election timeout must not answer a read from its stale catalog.

Each node is the production stack (``tests.sim.raft.raftmeta``: ``RaftNode``, the catalog,
``MetadataService``) and clients are ``RemoteCatalog``s, on virtual time. Gateway B reads a
key from the leader; the leader stops; gateway A's overwrite times out there and commits
through the leader the others elect; B reads again, and B's request waits at the stopped
leader, which B still takes for the leader. Then the old leader continues. It wakes up
believing it leads, with B's request and the new leader's messages waiting on different
connections, read in no set order (``SimNetwork.resume``). Whatever the order, B must see
the overwrite: the ReadIndex barrier makes the old leader confirm its lead with a quorum
before it answers, and the quorum has moved on. Serving the read at once from its own
catalog (a leader lease without clock bounds, or no barrier at all) answers the old value
whenever B's request is read first: over the default seeds, a mutant without the barrier
fails.
"""

from __future__ import annotations

import asyncio
import hashlib
from random import Random

import pytest

from blobstore.client.catalog import CatalogClient
from blobstore.rpc import SimNetwork, SimTransport
from blobstore.testing.virtual_loop import LoopClock, run
from metadata.api import HeadObjectQuery
from metadata.fsm.commands import CommitObject, CreateBucket
from metadata.fsm.results import ObjectInfo
from metadata.maintenance.driver import MaintenanceOptions
from tests.sim.raft.harness import fast_seeds, replayable
from tests.sim.raft.raftmeta import RaftMeta

pytestmark = pytest.mark.sim

BUCKET, KEY, OWNER = "ledger", "balance", "alice"
TIMEOUT_S = 60.0  # virtual seconds any one client call may take (failovers included)


def _put(body: bytes) -> CommitObject:
    etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
    return CommitObject(BUCKET, KEY, "", OWNER, len(body), etag, inline_data=body)


async def _read(catalog: CatalogClient) -> bytes:
    info = await catalog.query(HeadObjectQuery(BUCKET, KEY), timeout_s=TIMEOUT_S)
    assert isinstance(info, ObjectInfo)
    return info.record.inline_data or b""


async def _paused_leader(seed: int) -> None:
    rng = Random(seed)
    clock = LoopClock(epoch=1_800_000_000.0)
    net = SimNetwork(Random(rng.getrandbits(64)), clock)
    net.configure(min_delay_s=0.0005, max_delay_s=0.005)
    meta = RaftMeta(net, clock, Random(rng.getrandbits(64)), MaintenanceOptions(), {})
    a_net, b_net = SimTransport(net, 1, meta.addresses), SimTransport(net, 2, meta.addresses)
    a, b = meta.client(a_net, "gateway-a"), meta.client(b_net, "gateway-b")
    await meta.start()
    await a.execute(CreateBucket(BUCKET, OWNER), timeout_s=TIMEOUT_S)
    await a.execute(_put(b"old"), timeout_s=TIMEOUT_S)
    old = await meta.settle()
    assert await _read(b) == b"old"  # B now knows the leader
    meta.pause(old.node_id, for_s=3600.0)  # resumed by hand below
    paused_at = clock.now
    await a.execute(_put(b"new"), timeout_s=TIMEOUT_S)  # via the newly elected leader
    new = meta.leader()
    assert new is not None and new.node_id != old.node_id
    reading = asyncio.get_running_loop().create_task(_read(b))
    await clock.sleep(rng.uniform(0.05, 1.0))  # B's request waits at the stopped leader
    assert not reading.done()
    meta.resume(old.node_id)
    got = await reading
    assert got == b"new", (
        f"a read after an acknowledged overwrite returned {got!r}: the leader paused at "
        f"{paused_at:.3f} s answered from its stale catalog when it woke up"
    )
    await meta.stop()
    for transport in (a_net, b_net):
        await transport.close()


@pytest.mark.parametrize("seed", fast_seeds(12))
def test_a_leader_woken_from_a_pause_does_not_serve_stale_reads(seed: int) -> None:
    with replayable(seed):
        run(_paused_leader(seed))
