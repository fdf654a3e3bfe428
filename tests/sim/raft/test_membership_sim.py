"""Simulated membership churn with leadership transfers, ReadIndex checks and snapshots.

Five servers, three of them the initial voters. Random steps add learners, promote them,
remove (and wipe) members, transfer leadership, crash/restart and partition nodes, while
clients write and read. Besides the harness invariants, every ReadState must cover every
write acknowledged before the read was requested (linearizability of ReadIndex).
"""

from __future__ import annotations

import pytest

from metadata.raft.core import ProposalDropped
from metadata.raft.messages import ConfChange, ConfChangeType
from tests.sim.raft.harness import Cluster, fast_seeds, replayable, slow_seeds

pytestmark = pytest.mark.sim

CT = ConfChangeType


def membership_churn(seed: int, iters: int = 150) -> None:
    c = Cluster(5, seed, voters=(1, 2, 3), snapshot_every=20, max_snapshot_chunk_bytes=128)
    for i in (4, 5):
        c.nodes[i].bootstrap = ()
    reads: dict[bytes, tuple[int, int]] = {}  # ctx -> (node, acked floor at request time)
    k = 0
    pending: dict[int, bytes] = {}
    for it in range(iters):
        leader = next(iter(c.leaders_now()), None)
        op = c.rng.random()
        if leader is not None and op < 0.25:
            conf = c.rn(leader).status().conf
            members = set(conf.voters) | set(conf.learners)
            x = c.rng.choice(c.ids)
            if x not in members:
                cc = ConfChange(CT.ADD_LEARNER_NODE, x)
                if not c.alive(x):
                    c.start(x)
            elif x in conf.learners and c.alive(x):
                cc = ConfChange(CT.ADD_NODE, x)
            elif x in conf.learners or len(conf.voters) > 3:
                cc = ConfChange(CT.REMOVE_NODE, x)
            else:
                cc = None  # keep at least three voters
            try:
                if cc is not None:
                    c.rn(leader).propose_conf_change(cc)
            except ProposalDropped:
                pass
        elif leader is not None and op < 0.32:
            conf = c.rn(leader).status().conf
            c.rn(leader).transfer_leader(c.rng.choice(conf.voters))
        elif op < 0.40:
            i = c.rng.choice(c.ids)
            if c.alive(i):
                c.restart(i)
        elif op < 0.45:
            i = c.rng.choice(c.ids)
            c.disconnect(i)
        elif op < 0.60:
            c.heal()
        # servers removed by an applied conf change are destroyed
        if leader is not None and c.alive(leader):
            _drop_non_members(c, leader)
        # client traffic: writes and reads
        for i in c.ids:
            k += 1
            idx = c.propose(i, b"m%d" % k)
            if idx is not None:
                pending[idx] = b"m%d" % k
            if c.alive(i) and c.rng.random() < 0.3:
                ctx = b"read%d" % k
                reads[ctx] = (i, max(c.acked, default=0))
                c.rn(i).read_index(ctx)
        c.run(c.rng.randint(1, 6))
        for idx, cmd in list(pending.items()):
            n, got = c.n_committed(idx)
            if n >= 2 and got == cmd:
                c.acked[idx] = cmd
                del pending[idx]
            elif got is not None and got != cmd:
                del pending[idx]  # overwritten: never acknowledged
        for i in c.ids:
            sn = c.nodes[i]
            for rs in sn.read_states:
                node, floor = reads.pop(rs.context)
                assert node == i
                if rs.index < floor:
                    c.fail(f"read {rs.context!r} at {rs.index} misses acked write {floor}")
            sn.read_states.clear()
        _ = it
    c.heal()
    c.reliable = True
    leader = c.check_one_leader()
    c.run(30)  # let pending conf changes apply
    leader = c.check_one_leader()
    _drop_non_members(c, leader)
    c.final_check()
    assert c.acked


def _drop_non_members(c: Cluster, leader: int) -> None:
    st = c.rn(leader).status()
    if st.applied < st.commit or c.rn(leader).raft.pending_conf_index > st.applied:
        return  # the leader's view of the membership may be about to change
    for i in c.ids:
        if i != leader and i not in st.conf.voters and i not in st.conf.learners and c.alive(i):
            c.wipe(i)


@pytest.mark.parametrize("seed", fast_seeds(), ids=lambda s: f"seed={s}")
def test_membership_churn(seed: int) -> None:
    with replayable(seed):
        membership_churn(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", slow_seeds(), ids=lambda s: f"seed={s}")
def test_membership_churn_many_seeds(seed: int) -> None:
    with replayable(seed):
        membership_churn(seed, iters=300)
