"""Elections: randomized timeouts, votes and their durability, PreVote, CheckQuorum."""

from __future__ import annotations

import random

import pytest

from metadata.raft.core import Config, ProposalDropped
from metadata.raft.messages import HardState, Message, MessageType
from metadata.raft.rawnode import RawNode
from metadata.raft.ready import StateType
from metadata.storage.memory import MemoryLogStore
from tests.unit.raft.netutil import Net, drain, make_peer

MT = MessageType


def test_config_validation() -> None:
    for bad in (
        Config(id=0),
        Config(id=1, election_ticks=1, heartbeat_ticks=1),
        Config(id=1, max_inflight_msgs=0),
        Config(id=1, max_snapshot_chunk_bytes=0),
        Config(id=1, read_lease_based=True, check_quorum=False),
    ):
        with pytest.raises(ValueError):
            bad.validate()


def test_randomized_election_timeout_range() -> None:
    seen = set()
    for seed in range(200):
        p = make_peer(1, (1, 2, 3), seed=seed, election_ticks=10)
        t = p.node.raft.randomized_election_timeout
        assert 10 <= t < 20
        seen.add(t)
    assert len(seen) == 10


def test_follower_campaigns_after_timeout_and_wins() -> None:
    net = Net.of(3)
    p = net[1]
    t = p.node.raft.randomized_election_timeout
    for _ in range(t - 1):
        p.node.tick()
    assert p.node.raft.state == StateType.FOLLOWER
    net.tick(1)
    assert net.leader() == 1
    assert all(net[i].node.term == 1 for i in (1, 2, 3))
    # the new leader appended an empty entry of its term and committed it
    assert net[1].node.status().commit == 1
    assert net[2].applied[0].data == b"" and net[2].applied[0].term == 1


def test_single_node_elects_itself_on_tick() -> None:
    p = make_peer(1, (1,))
    for _ in range(20):
        p.node.tick()
    assert p.node.is_leader
    drain(p)
    assert p.node.status().commit == 1


def test_vote_is_persisted_in_the_ready_carrying_the_response() -> None:
    voter = make_peer(2, (1, 2, 3))
    voter.node.step(Message(MT.VOTE, 2, 1, 5, log_term=0, index=0))
    rd = voter.node.ready()
    assert rd.hard_state == HardState(5, 1, 0)
    assert rd.must_sync
    assert [m.type for m in rd.messages] == [MT.VOTE_RESP]
    assert not rd.messages[0].reject
    voter.store.append(rd.entries, rd.hard_state)
    voter.store.sync()
    voter.node.advance(rd)
    # second candidate, same term: refused (one vote per term)
    voter.node.step(Message(MT.VOTE, 2, 3, 5))
    (m,) = drain(voter)
    assert m.reject
    # the vote survives a crash once synced
    voter.store.sync()
    voter.restart()
    assert voter.node.hard_state().vote == 1


def test_vote_refused_for_stale_log() -> None:
    net = Net.of(3, check_quorum=False)
    net.elect(1)
    net.propose(1, b"a")
    p = net[2]
    p.node.step(Message(MT.VOTE, 2, 3, 9, log_term=1, index=1))  # shorter log
    (m,) = drain(p)
    assert m.type == MT.VOTE_RESP and m.reject and m.term == 9


def test_candidate_with_stale_log_loses() -> None:
    net = Net.of(3, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.propose(1, b"a")
    net.isolate(3)
    net.propose(1, b"b")
    net.recover()
    net.ignored.add(MT.APP)
    net.ignored.add(MT.HEARTBEAT)
    net.elect(3)  # 3 lacks "b": 1 and 2 refuse
    assert net[3].node.raft.state == StateType.FOLLOWER
    assert net[3].node.term == 2


def test_prevote_keeps_partitioned_node_term_stable() -> None:
    net = Net.of(3)
    net.elect(1)
    net.isolate(3)
    net.tick(3, 100)
    r3 = net[3].node.raft
    assert r3.term == 1 and r3.state == StateType.PRE_CANDIDATE
    net.recover()
    net.tick_all(3)
    assert net.leader() == 1 and net[1].node.term == 1  # no disruption on rejoin


def test_without_prevote_rejoin_bumps_term() -> None:
    net = Net.of(3, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.isolate(3)
    net.tick(3, 50)
    assert net[3].node.term > 1
    net.recover()
    net.tick_all(30)
    assert net.leader() is not None and net[net.leader() or 0].node.term > 1


def test_check_quorum_leader_steps_down() -> None:
    net = Net.of(3, election_ticks=10)
    net.elect(1)
    net.isolate(1)
    net.tick(1, 10)
    assert net[1].node.raft.state == StateType.LEADER  # first check saw recent activity
    net.tick(1, 10)
    assert net[1].node.status().state == StateType.FOLLOWER
    with pytest.raises(ProposalDropped):
        net[1].node.propose(b"x")


def test_follower_in_lease_ignores_vote_requests() -> None:
    net = Net.of(3)
    net.elect(1)
    f = net[2]
    f.node.step(Message(MT.VOTE, 2, 3, 7, log_term=5, index=50))
    assert drain(f) == [] and f.node.term == 1
    f.node.step(Message(MT.PRE_VOTE, 2, 3, 7, log_term=5, index=50))
    assert drain(f) == []
    # a transfer-forced campaign is allowed through the lease
    f.node.step(Message(MT.VOTE, 2, 3, 7, log_term=5, index=50, context=b"CampaignTransfer"))
    (m,) = drain(f)
    assert not m.reject and f.node.term == 7


def test_stale_leader_is_told_the_new_term() -> None:
    net = Net.of(3)
    net.elect(1)
    net[2].node.raft.become_follower(5, 0)
    net[2].node.step(Message(MT.HEARTBEAT, 2, 1, 1))
    (m,) = drain(net[2])
    assert m.type == MT.APP_RESP and m.term == 5
    net[2].node.step(Message(MT.PRE_VOTE, 2, 3, 2))
    (m,) = drain(net[2])
    assert m.type == MT.PRE_VOTE_RESP and m.reject
    net[1].node.step(m)  # old leader hears a higher term: steps down
    assert net[1].node.raft.state == StateType.FOLLOWER and net[1].node.term == 5


def test_prevote_rejected_resp_with_higher_term() -> None:
    net = Net.of(3)
    r1 = net[1].node.raft
    r1.hup(transfer=False)
    assert r1.state == StateType.PRE_CANDIDATE
    r1.step(Message(MT.PRE_VOTE_RESP, 1, 2, 4, reject=True))
    assert net[1].node.status().state == StateType.FOLLOWER and r1.term == 4


def test_prevote_lost_returns_to_follower() -> None:
    net = Net.of(3)
    r1 = net[1].node.raft
    r1.hup(transfer=False)
    r1.step(Message(MT.PRE_VOTE_RESP, 1, 2, 1, reject=True))
    r1.step(Message(MT.PRE_VOTE_RESP, 1, 3, 1, reject=True))
    assert r1.state == StateType.FOLLOWER


def test_candidate_steps_down_on_leader_append() -> None:
    net = Net.of(3, pre_vote=False)
    r1 = net[1].node.raft
    r1.hup(transfer=False)
    assert r1.state == StateType.CANDIDATE
    r1.step(Message(MT.HEARTBEAT, 1, 2, 1))
    assert net[1].node.status().state == StateType.FOLLOWER and r1.lead == 2


def test_learner_does_not_campaign_and_leader_ignores_hup() -> None:
    s = MemoryLogStore()
    rn = RawNode(Config(id=4, voters=(1, 2, 3), learners=(4,)), s, None, random.Random(1))
    for _ in range(100):
        rn.tick()
    assert rn.raft.state == StateType.FOLLOWER
    net = Net.of(1)
    net.elect(1)
    net[1].node.campaign()
    assert net[1].node.term == 1
    with pytest.raises(AssertionError):
        net[1].node.raft.become_candidate()


def test_restart_rejects_bad_hard_state() -> None:
    s = MemoryLogStore()
    s.append([], HardState(1, 0, 5))
    with pytest.raises(RuntimeError):
        RawNode(Config(id=1, voters=(1,)), s, None, random.Random(0))
