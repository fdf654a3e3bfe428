"""Linearizable reads: ReadIndex with a heartbeat quorum round; opt-in lease reads."""

from __future__ import annotations

from metadata.raft.messages import MessageType
from metadata.raft.ready import ReadState
from tests.unit.raft.netutil import Net, drain, make_peer

MT = MessageType


def test_leader_read_index_needs_heartbeat_quorum() -> None:
    net = Net.of(3)
    net.elect(1)
    idx = net.propose(1, b"a")
    net.ignored.add(MT.HEARTBEAT_RESP)
    net[1].node.read_index(b"r1")
    net.flush()
    assert net[1].read_states == []  # no quorum confirmation yet
    net.recover()
    net[1].node.read_index(b"r2")
    net.flush()
    assert net[1].read_states == [ReadState(idx, b"r1"), ReadState(idx, b"r2")]
    hbs = [m for m in net.delivered if m.type == MT.HEARTBEAT and m.context == b"r2"]
    assert len(hbs) == 2
    net[1].node.read_index(b"r2")  # a fresh request may reuse a released context
    net.flush()
    assert len(net[1].read_states) == 3


def test_duplicate_pending_context_ignored() -> None:
    net = Net.of(3)
    net.elect(1)
    net.ignored.add(MT.HEARTBEAT_RESP)
    net[1].node.read_index(b"same")
    net[1].node.read_index(b"same")
    net.flush()
    assert len(net[1].node.raft.read_only.queue) == 1
    # heartbeat ack with an unknown context is ignored
    net[1].node.raft.read_only.recv_ack(2, b"other")
    assert net[1].node.raft.read_only.advance(b"other") == []


def test_follower_read_is_forwarded_to_leader() -> None:
    net = Net.of(3)
    net.elect(1)
    idx = net.propose(1, b"a")
    net[3].node.read_index(b"f")
    net.flush()
    assert net[3].read_states == [ReadState(idx, b"f")]
    # a follower forwards a read it received for the leader, too
    net[2].node.step(net[2].node.raft.msgs[0] if net[2].node.raft.msgs else _req(3, 2))
    net.flush()


def _req(frm: int, to: int):  # type: ignore[no-untyped-def]
    from metadata.raft.messages import Message

    return Message(MT.READ_INDEX, to, frm, 0, context=b"fwd")


def test_read_deferred_until_leader_commits_in_its_term() -> None:
    net = Net.of(3, check_quorum=False)
    net.elect(1)
    net.propose(1, b"a")
    net.ignored.add(MT.APP)  # the next leader's term entry cannot commit yet
    net.elect(2)
    new = 2
    assert net[new].node.is_leader
    net[new].node.read_index(b"early")
    net.flush()
    assert net[new].read_states == []
    assert net[new].node.raft.pending_read_index
    net.recover()
    net.tick_all(2)
    assert [rs.context for rs in net[new].read_states] == [b"early"]
    assert net[new].read_states[0].index == 3  # includes the new term's entry


def test_no_stale_read_from_deposed_leader() -> None:
    net = Net.of(3, check_quorum=False)
    net.elect(1)
    net.propose(1, b"old")
    net.isolate(1)
    net.elect(2)
    new_idx = net.propose(2, b"new")
    # the old leader, still believing it leads, gets a read: it must never answer it
    net[1].node.read_index(b"stale?")
    net.flush()
    assert net[1].read_states == []
    net.recover()
    net.tick_all(3)
    assert net[1].read_states == [] and not net[1].node.is_leader
    assert new_idx > 0


def test_single_node_and_lease_reads() -> None:
    p = make_peer(1, (1,))
    p.node.campaign()
    drain(p)
    p.node.read_index(b"x")
    drain(p)
    assert p.read_states == [ReadState(1, b"x")]
    net = Net.of(3, read_lease_based=True)
    net.elect(1)
    net.ignored.add(MT.HEARTBEAT)
    net[1].node.read_index(b"lease")
    net.flush()
    assert net[1].read_states == [ReadState(1, b"lease")]  # no round trip


def test_read_without_leader_is_dropped() -> None:
    net = Net.of(3)
    net[2].node.read_index(b"nobody")
    assert drain(net[2]) == []
