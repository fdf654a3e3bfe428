"""The MIT 6.824 lab 2 (2A-2D) Raft test suite, ported to the deterministic simulator.

Time is in rounds (one tick each; election timeout = 10 ticks, heartbeat = 1 tick). Index
numbers differ from the lab's because our leaders append an empty entry on election, so
tests compare *returned* indexes instead of absolute ones. Every scenario runs the default
seeds (``BLOBSTORE_SEED=N`` replays one); the ``slow`` variants run many more.
"""

from __future__ import annotations

import pytest

from metadata.raft.messages import MessageType
from tests.sim.raft.harness import Cluster, fast_seeds, replayable, slow_seeds

pytestmark = pytest.mark.sim

ET = 10  # election timeout, ticks


def rand_cmd(c: Cluster) -> bytes:
    return b"r%d" % c.rng.getrandbits(40)


# -- 2A: election ----------------------------------------------------------------------------
def initial_election(seed: int) -> None:
    c = Cluster(3, seed)
    c.check_one_leader()
    c.run(5)
    term1 = c.check_terms()
    assert term1 >= 1
    c.run(2 * ET)
    term2 = c.check_terms()
    assert term1 == term2, "term changed with no failures"
    c.check_one_leader()
    c.final_check()


def re_election(seed: int) -> None:
    c = Cluster(3, seed)
    leader1 = c.check_one_leader()
    c.disconnect(leader1)
    c.check_one_leader()
    c.connect(leader1)
    leader2 = c.check_one_leader()
    other = leader2 % 3 + 1
    c.disconnect(leader2)
    c.disconnect(other)
    c.run(2 * ET)
    c.check_no_leader()
    c.connect(other)
    c.check_one_leader()
    c.connect(leader2)
    c.check_one_leader()
    c.final_check()


def many_elections(seed: int) -> None:
    c = Cluster(7, seed)
    c.check_one_leader()
    for _ in range(10):
        out = c.rng.sample(c.ids, 3)
        for i in out:
            c.disconnect(i)
        c.check_one_leader()
        for i in out:
            c.connect(i)
    c.check_one_leader()
    c.final_check()


# -- 2B: agreement ---------------------------------------------------------------------------
def basic_agree(seed: int) -> None:
    c = Cluster(3, seed)
    last = 0
    for k in range(3):
        idx = c.one(b"cmd%d" % k, 3, retry=False)
        assert idx > last
        last = idx
    c.final_check()


def fail_agree(seed: int) -> None:
    c = Cluster(3, seed)
    c.one(b"101", 3)
    leader = c.check_one_leader()
    f = leader % 3 + 1
    c.disconnect(f)
    c.one(b"102", 2)
    c.one(b"103", 2)
    c.run(ET)
    c.one(b"104", 2)
    c.one(b"105", 2)
    c.connect(f)
    c.one(b"106", 3)
    c.run(ET)
    c.one(b"107", 3)
    c.final_check()


def fail_no_agree(seed: int) -> None:
    c = Cluster(5, seed)
    c.one(b"10", 5)
    leader = c.check_one_leader()
    for k in (1, 2, 3):
        c.disconnect((leader - 1 + k) % 5 + 1)
    index = c.propose(leader, b"20")
    assert index is not None
    c.run(2 * ET)
    n, _ = c.n_committed(index)
    assert n == 0, f"{n} committed but no majority"
    c.heal()
    c.check_one_leader()
    c.one(b"1000", 5)
    c.final_check()


def concurrent_starts(seed: int) -> None:
    c = Cluster(3, seed)
    c.one(b"start", 3)
    leader = c.check_one_leader()
    idxs = {}
    for k in range(5):
        idx = c.propose(leader, b"c%d" % k)
        assert idx is not None
        idxs[idx] = b"c%d" % k
    for idx, cmd in idxs.items():
        assert c.wait_committed(idx, 3) == cmd
        c.acked[idx] = cmd
    c.final_check()


def rejoin(seed: int) -> None:
    c = Cluster(3, seed)
    c.one(b"101", 3)
    leader1 = c.check_one_leader()
    c.disconnect(leader1)
    for cmd in (b"102", b"103", b"104"):
        c.propose(leader1, cmd)  # may already have stepped down: fine
    leader2 = c.check_one_leader()
    c.one(b"103", 2)
    c.disconnect(leader2)
    c.connect(leader1)
    c.one(b"104", 2)
    c.connect(leader2)
    c.one(b"105", 3)
    c.final_check()


def backup(seed: int) -> None:
    c = Cluster(5, seed)
    c.one(rand_cmd(c), 5)
    leader1 = c.check_one_leader()
    ring = [(leader1 - 1 + k) % 5 + 1 for k in range(5)]  # ring[0] = leader1
    for i in ring[2:]:
        c.disconnect(i)
    for _ in range(50):
        c.propose(leader1, rand_cmd(c))
    c.run(ET // 2)
    c.disconnect(ring[0])
    c.disconnect(ring[1])
    for i in ring[2:]:
        c.connect(i)
    for _ in range(50):
        c.one(rand_cmd(c), 3)
    leader2 = c.check_one_leader()
    other = next(i for i in ring[2:] if i != leader2)
    c.disconnect(other)
    for _ in range(50):
        c.propose(leader2, rand_cmd(c))
    c.run(ET // 2)
    for i in c.ids:
        c.disconnect(i)
    for i in (ring[0], ring[1], other):
        c.connect(i)
    for _ in range(50):
        c.one(rand_cmd(c), 3)
    for i in c.ids:
        c.connect(i)
    c.one(rand_cmd(c), 5)
    c.final_check()


def rpc_count(seed: int) -> None:
    c = Cluster(3, seed, max_size_per_msg_bytes=4096, max_inflight_msgs=16)
    c.check_one_leader()
    election_msgs = c.msg_count
    # the election itself plus the heartbeats of the rounds check_one_leader ran
    assert election_msgs < 30 + 4 * c.rounds, election_msgs
    c.one(b"warmup", 3)
    before, r0 = c.msg_count, c.rounds
    leader = c.check_one_leader()
    r0 = c.rounds
    before = c.msg_count
    apps_before = c.type_counts[MessageType.APP, True]
    idxs = [c.propose(leader, b"x%d" % k) for k in range(10)]
    assert all(i is not None for i in idxs)
    last = idxs[-1]
    assert last is not None
    assert c.wait_committed(last, 3) == b"x9"
    # Batching: 10 proposals in one Ready go out as one MsgApp per follower; the rest is
    # acks, commit notifications and one heartbeat round (4 messages) per tick.
    assert c.type_counts[MessageType.APP, True] - apps_before == 2
    used = c.msg_count - before - 4 * (c.rounds - r0)
    assert used <= 20, used
    # idle: only heartbeats and their responses
    before, r0 = c.msg_count, c.rounds
    c.run(ET)
    assert c.msg_count - before <= 4 * (c.rounds - r0) + 4
    c.final_check()


# -- 2C: persistence -------------------------------------------------------------------------
def persist1(seed: int) -> None:
    c = Cluster(3, seed)
    c.one(b"11", 3)
    for i in c.ids:
        c.restart(i)
    c.one(b"12", 3)
    leader1 = c.check_one_leader()
    c.restart(leader1)
    c.one(b"13", 3)
    leader2 = c.check_one_leader()
    c.disconnect(leader2)
    idx = c.one(b"14", 2)
    c.connect(leader2)
    assert c.wait_committed(idx, 3) == b"14"
    i3 = c.check_one_leader() % 3 + 1
    c.crash(i3)
    c.one(b"15", 2)
    c.start(i3)
    c.one(b"16", 3)
    c.final_check()


def persist2(seed: int) -> None:
    c = Cluster(5, seed)
    index = 1
    for _ in range(5):
        c.one(b"%d" % (10 + index), 5)
        index += 1
        leader1 = c.check_one_leader()
        ring = [(leader1 - 1 + k) % 5 + 1 for k in range(5)]
        c.crash(ring[1])
        c.crash(ring[2])
        c.one(b"%d" % (10 + index), 3)
        index += 1
        c.crash(ring[0])
        c.crash(ring[3])
        c.crash(ring[4])
        c.start(ring[1])
        c.start(ring[2])
        c.run(ET)
        c.start(ring[3])
        c.one(b"%d" % (10 + index), 3)
        index += 1
        c.start(ring[4])
        c.start(ring[0])
    c.one(b"1000", 5)
    c.final_check()


def persist3(seed: int) -> None:
    c = Cluster(3, seed)
    c.one(b"101", 3)
    leader = c.check_one_leader()
    ring = [(leader - 1 + k) % 3 + 1 for k in range(3)]
    c.disconnect(ring[2])
    c.one(b"102", 2)
    c.crash(ring[0])
    c.crash(ring[1])
    c.connect(ring[2])
    c.start(ring[0])
    c.one(b"103", 2)
    c.start(ring[1])
    c.one(b"104", 3)
    c.final_check()


def figure8(seed: int, iters: int = 100, classic: bool = False) -> None:
    """Leaders crash right after proposing; Figure 8's commit rule keeps us safe."""
    c = Cluster(5, seed, pre_vote=not classic, check_quorum=not classic)
    c.one(rand_cmd(c), 1)
    nup = 5
    for _ in range(iters):
        leader = None
        for i in c.ids:
            if c.alive(i) and c.propose(i, rand_cmd(c)) is not None:
                leader = i
        if c.rng.random() < 0.1:
            c.run(c.rng.randint(0, ET // 2 * 10))
        else:
            c.run(c.rng.randint(0, 2))
        if leader is not None and c.alive(leader):
            c.crash(leader)
            nup -= 1
        if nup < 3:
            s = c.rng.choice(c.ids)
            if not c.alive(s):
                c.start(s)
                nup += 1
    for i in c.ids:
        if not c.alive(i):
            c.start(i)
    c.one(rand_cmd(c), 5)
    c.final_check()


def unreliable_agree(seed: int) -> None:
    c = Cluster(5, seed)
    c.reliable = False
    for it in range(1, 20):
        for j in range(3):
            c.one(b"%d-%d" % (it, j), 1)
        c.one(b"%d" % it, 1)
    c.reliable = True
    c.one(b"100", 5)
    c.final_check()


def figure8_unreliable(seed: int, iters: int = 300, classic: bool = False) -> None:
    c = Cluster(5, seed, pre_vote=not classic, check_quorum=not classic)
    c.reliable = False
    c.one(rand_cmd(c), 1)
    nup = 5
    for it in range(iters):
        if it == iters // 5:
            c.long_reordering = True
        leader = None
        for i in c.ids:
            if c.connected[i] and c.propose(i, rand_cmd(c)) is not None:
                leader = i
        if c.rng.random() < 0.1:
            c.run(c.rng.randint(0, ET // 2 * 10))
        else:
            c.run(c.rng.randint(0, 2))
        if leader is not None and c.rng.random() < 0.5 and c.connected[leader]:
            c.disconnect(leader)
            nup -= 1
        if nup < 3:
            s = c.rng.choice(c.ids)
            if not c.connected[s]:
                c.connect(s)
                nup += 1
    c.heal()
    c.one(rand_cmd(c), 5)
    c.final_check()


def churn(seed: int, unreliable: bool, iters: int = 120, classic: bool = False) -> None:
    c = Cluster(5, seed, pre_vote=not classic, check_quorum=not classic)
    c.reliable = not unreliable
    k = 0
    for _ in range(iters):
        op = c.rng.random()
        i = c.rng.choice(c.ids)
        if op < 0.2:
            c.disconnect(i)
        elif op < 0.5 and not c.alive(i):
            c.start(i)
        elif op < 0.5:
            c.connect(i)
        elif op < 0.6 and sum(c.alive(j) for j in c.ids) > 3:
            c.crash(i)
        for j in c.ids:
            if c.alive(j):
                for _ in range(c.rng.randint(0, 3)):
                    k += 1
                    c.propose(j, b"churn%d" % k)
        c.run(c.rng.randint(1, 8))
    for i in c.ids:
        if not c.alive(i):
            c.start(i)
    c.heal()
    c.reliable = True
    c.one(b"final", 5)
    c.final_check()


# -- 2D: snapshots ---------------------------------------------------------------------------
SNAP_EVERY = 10


def snapshot_basic(seed: int) -> None:
    c = Cluster(3, seed, snapshot_every=SNAP_EVERY)
    c.one(rand_cmd(c), 3)
    for _ in range(3 * SNAP_EVERY + 1):
        c.one(rand_cmd(c), 3)
    assert all(c.nodes[i].snaps.load() is not None for i in c.ids)
    c.final_check()


def snapshot_install(seed: int, *, disconnect: bool, reliable: bool, crash: bool) -> None:
    c = Cluster(3, seed, snapshot_every=SNAP_EVERY, max_snapshot_chunk_bytes=64)
    c.reliable = reliable
    c.one(rand_cmd(c), 3)
    leader1 = c.check_one_leader()
    for it in range(12):
        victim, sender = leader1 % 3 + 1, leader1
        if it % 3 == 1:
            sender, victim = victim, leader1
        if disconnect:
            c.disconnect(victim)
            c.one(rand_cmd(c), 2)
        if crash:
            c.crash(victim)
            c.one(rand_cmd(c), 2)
        for _ in range(SNAP_EVERY + 1):
            c.propose(sender, rand_cmd(c))
        c.one(rand_cmd(c), 2)
        if disconnect:
            c.connect(victim)
            c.one(rand_cmd(c), 3)
            leader1 = c.check_one_leader()
        if crash:
            c.start(victim)
            c.one(rand_cmd(c), 3)
            leader1 = c.check_one_leader()
    c.reliable = True
    c.final_check()
    assert any(c.nodes[i].store.first_index() > 1 for i in c.ids)


# -- beyond the lab: unsynced tails and whole-cluster restarts -------------------------------
def crash_unsynced_tail(seed: int) -> None:
    """Nodes lose power between write() and fsync(); acked writes must survive."""
    c = Cluster(3, seed, snapshot_every=25)
    c.crash_mid_ready_prob = 0.05
    pending: dict[int, bytes] = {}
    for k in range(150):
        for i in c.ids:
            if not c.alive(i) and c.rng.random() < 0.3:
                c.start(i)
        for i in c.ids:
            idx = c.propose(i, b"t%d" % k)
            if idx is not None:
                pending[idx] = b"t%d" % k
        c.run(c.rng.randint(1, 4))
        for idx, cmd in list(pending.items()):
            n, got = c.n_committed(idx)
            if n >= 2 and got == cmd:  # applied on a majority: report success to the client
                c.acked[idx] = cmd
                del pending[idx]
    for i in c.ids:
        if not c.alive(i):
            c.start(i)
    c.final_check()
    assert len(c.acked) > 10


def whole_cluster_restart(seed: int) -> None:
    c = Cluster(5, seed, snapshot_every=15)
    for round_ in range(4):
        for k in range(12):
            c.one(b"w%d-%d" % (round_, k), 5 if k % 2 else 3)
        for i in c.ids:
            c.crash(i)
        for i in c.ids:
            c.start(i)
        c.check_one_leader()
    c.final_check()
    assert len(c.acked) == 48


SCENARIOS = {
    "initial_election": initial_election,
    "re_election": re_election,
    "many_elections": many_elections,
    "basic_agree": basic_agree,
    "fail_agree": fail_agree,
    "fail_no_agree": fail_no_agree,
    "concurrent_starts": concurrent_starts,
    "rejoin": rejoin,
    "backup": backup,
    "rpc_count": rpc_count,
    "persist1": persist1,
    "persist2": persist2,
    "persist3": persist3,
    "figure8": figure8,
    "unreliable_agree": unreliable_agree,
    "figure8_unreliable": figure8_unreliable,
    "reliable_churn": lambda s: churn(s, unreliable=False),
    "unreliable_churn": lambda s: churn(s, unreliable=True),
    # classic Raft (no PreVote, no CheckQuorum) must be just as safe
    "figure8_classic": lambda s: figure8(s, classic=True),
    "figure8_unreliable_classic": lambda s: figure8_unreliable(s, classic=True),
    "unreliable_churn_classic": lambda s: churn(s, unreliable=True, classic=True),
    "snapshot_basic": snapshot_basic,
    "snapshot_install": lambda s: snapshot_install(s, disconnect=True, reliable=True, crash=False),
    "snapshot_install_unreliable": lambda s: snapshot_install(
        s, disconnect=True, reliable=False, crash=False
    ),
    "snapshot_install_crash": lambda s: snapshot_install(
        s, disconnect=False, reliable=True, crash=True
    ),
    "snapshot_install_uncrash": lambda s: snapshot_install(
        s, disconnect=False, reliable=False, crash=True
    ),
    "crash_unsynced_tail": crash_unsynced_tail,
    "whole_cluster_restart": whole_cluster_restart,
}


@pytest.mark.parametrize("seed", fast_seeds(), ids=lambda s: f"seed={s}")
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name: str, seed: int) -> None:
    with replayable(seed):
        SCENARIOS[name](seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", slow_seeds(), ids=lambda s: f"seed={s}")
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_many_seeds(name: str, seed: int) -> None:
    with replayable(seed):
        SCENARIOS[name](seed)
