"""Membership changes (applied on apply, one at a time) and leadership transfer."""

from __future__ import annotations

import pytest

from metadata.raft.core import ProposalDropped
from metadata.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Message,
    MessageType,
)
from metadata.raft.ready import StateType
from tests.unit.raft.netutil import Net, drain, make_peer

MT = MessageType
CT = ConfChangeType


def net_with_spare(n: int, spare: int, **kw: int) -> Net:
    voters = tuple(range(1, n + 1))
    peers = [make_peer(i, voters, **kw) for i in (*voters, spare)]
    return Net(peers)


def change(net: Net, leader: int, typ: ConfChangeType, node: int) -> int:
    idx = net[leader].node.propose_conf_change(ConfChange(typ, node))
    net.flush()
    return idx


def test_conf_change_codec() -> None:
    cc = ConfChange(CT.ADD_LEARNER_NODE, 7, b"ctx")
    assert ConfChange.decode(cc.encode()) == cc
    for bad in (b"", b"XXX" + bytes(10), cc.encode()[:3] + b"\x09" + cc.encode()[4:]):
        with pytest.raises(ValueError):
            ConfChange.decode(bad)


def test_learner_replicates_but_does_not_count() -> None:
    net = net_with_spare(3, 4)
    net.elect(1)
    change(net, 1, CT.ADD_LEARNER_NODE, 4)
    assert net[1].node.status().conf == ConfState(voters=(1, 2, 3), learners=(4,))
    idx = net.propose(1, b"a")
    assert net[4].data() == [b"a"]
    # with 2 voters down, the learner's ack does not make a quorum
    net.isolate(2)
    net.isolate(3)
    idx2 = net[1].node.propose(b"b")
    net.flush()
    assert net[1].node.status().commit == idx
    assert idx2 > idx
    # learners never campaign, and a vote request to them is still answered (etcd)
    net.recover()
    for _ in range(50):
        net[4].node.tick()
    assert net[4].node.raft.state == StateType.FOLLOWER


def test_learner_promotion_and_removal() -> None:
    net = net_with_spare(3, 4)
    net.elect(1)
    change(net, 1, CT.ADD_LEARNER_NODE, 4)
    net.propose(1, b"a")
    change(net, 1, CT.ADD_NODE, 4)
    for i in (1, 2, 3, 4):
        assert net[i].node.status().conf.voters == (1, 2, 3, 4)
    # now 4 counts: with 2 and 3 down nothing commits (2 of 4), with 3 down it does
    net.isolate(3)
    idx = net.propose(1, b"b")
    assert net[1].node.status().commit == idx
    net.recover()
    change(net, 1, CT.REMOVE_NODE, 3)
    assert net[1].node.status().conf.voters == (1, 2, 4)
    assert 3 not in net[1].node.raft.trk.progress
    # demotion to learner
    change(net, 1, CT.ADD_LEARNER_NODE, 2)
    assert net[1].node.status().conf == ConfState(voters=(1, 4), learners=(2,))


def test_one_conf_change_at_a_time() -> None:
    net = net_with_spare(3, 4)
    net.elect(1)
    net.ignored.add(MT.APP)
    net[1].node.propose_conf_change(ConfChange(CT.ADD_LEARNER_NODE, 4))
    with pytest.raises(ProposalDropped):
        net[1].node.propose_conf_change(ConfChange(CT.ADD_NODE, 4))
    net.recover()
    net.tick_all(1)
    net[1].node.propose_conf_change(ConfChange(CT.ADD_NODE, 4))  # previous one applied


def test_invalid_conf_changes_rejected() -> None:
    p = make_peer(1, (1,))
    p.node.campaign()
    drain(p)
    with pytest.raises(ProposalDropped):
        p.node.propose_conf_change(ConfChange(CT.REMOVE_NODE, 1))
    with pytest.raises(ProposalDropped):
        p.node.propose_conf_change(ConfChange(CT.ADD_NODE, 1))
    p.node.propose_conf_change(ConfChange(CT.ADD_LEARNER_NODE, 2))
    drain(p)
    with pytest.raises(ProposalDropped):
        p.node.propose_conf_change(ConfChange(CT.ADD_LEARNER_NODE, 2))
    with pytest.raises(ValueError):
        p.node.apply_conf_change(ConfChange(CT.REMOVE_NODE, 1))
    f = make_peer(2, (1, 2))
    with pytest.raises(ProposalDropped):
        f.node.propose_conf_change(ConfChange(CT.ADD_NODE, 3))


def test_removed_leader_steps_down_and_others_elect() -> None:
    net = Net.of(3)
    net.elect(1)
    change(net, 1, CT.REMOVE_NODE, 1)
    assert net[1].node.raft.state == StateType.FOLLOWER
    net.tick_all(40)
    leader = net.leader()
    assert leader in (2, 3)
    assert leader is not None
    net.propose(leader, b"after")
    assert net[2].data() == [b"after"]


def test_no_campaign_with_unapplied_conf_change() -> None:
    net = net_with_spare(3, 4)
    net.elect(1)
    for i in (2, 3):
        net[i].apply_conf = False
    p2 = net[2]
    # node 2 has a committed but unapplied conf change: it must not campaign
    r2 = p2.node.raft
    net.ignored.add(MT.HEARTBEAT)
    net[1].node.propose_conf_change(ConfChange(CT.ADD_LEARNER_NODE, 4))
    net.flush()
    net.tick(1)  # commit reaches followers
    r2.log.applied = r2.log.committed - 1
    r2.hup(transfer=False)
    assert r2.state == StateType.FOLLOWER


def test_snapshot_during_membership_change_carries_conf() -> None:
    net = net_with_spare(3, 4, max_snapshot_chunk_bytes=4)
    net.elect(1)
    net.isolate(4)
    change(net, 1, CT.ADD_LEARNER_NODE, 4)
    for k in range(5):
        net.propose(1, b"%d" % k)
    snap = net[1].node.create_snapshot(net[1].node.raft.log.applied, b"state-bytes")
    net[1].snaps.save(snap)
    net[1].store.compact(snap)
    assert snap.meta.conf.learners == (4,)
    net.recover()
    net.tick_all(3)
    p4 = net[4]
    assert p4.restored == [snap.meta.index]
    assert p4.node.status().conf == ConfState(voters=(1, 2, 3), learners=(4,))
    change(net, 1, CT.ADD_NODE, 4)
    assert p4.node.status().conf.voters == (1, 2, 3, 4)
    net.propose(1, b"z")
    assert p4.data() == [b"z"]


def test_leadership_transfer_to_up_to_date_follower() -> None:
    net = Net.of(3)
    net.elect(1)
    net.propose(1, b"a")
    net[1].node.transfer_leader(2)
    net.flush()
    assert net.leader() == 2 and net[2].node.term == 2
    assert any(m.type == MT.TIMEOUT_NOW for m in net.delivered)


def test_leadership_transfer_to_lagging_follower_catches_up_first() -> None:
    net = Net.of(3)
    net.elect(1)
    net.isolate(3)
    for k in range(3):
        net.propose(1, b"%d" % k)
    net.recover()
    net[1].node.transfer_leader(3)
    with pytest.raises(ProposalDropped):
        net[1].node.propose(b"blocked")
    net.flush()
    assert net.leader() == 3
    assert net[3].node.raft.log.last_index() >= 4


def test_leadership_transfer_aborts_after_election_timeout() -> None:
    net = Net.of(3, election_ticks=10)
    net.elect(1)
    net.ignored.add(MT.TIMEOUT_NOW)
    net[1].node.transfer_leader(2)
    net.flush()
    assert net[1].node.raft.lead_transferee == 2
    net.tick_all(10)
    assert net[1].node.raft.lead_transferee == 0 and net.leader() == 1
    net[1].node.propose(b"ok again")


def test_transfer_forwarded_by_follower_and_ignored_cases() -> None:
    net = Net.of(3)
    net.elect(1)
    net[3].node.transfer_leader(2)  # follower forwards to the leader
    net.flush()
    assert net.leader() == 2
    r2 = net[2].node.raft
    r2.transfer_leader(2)  # to self: ignored
    r2.transfer_leader(9)  # unknown: ignored
    assert r2.lead_transferee == 0
    net[3].node.step(Message(MT.TIMEOUT_NOW, 3, 2, 2))  # from the current leader
    net.flush()
    assert net.leader() == 3


def test_transfer_target_removed_aborts() -> None:
    net = Net.of(3)
    net.elect(1)
    net.ignored.add(MT.TIMEOUT_NOW)
    net[1].node.transfer_leader(3)
    net.flush()
    net[1].node.raft.lead_transferee = 3
    net[1].node.raft.apply_conf_change(ConfChange(CT.REMOVE_NODE, 3))
    assert net[1].node.raft.lead_transferee == 0
