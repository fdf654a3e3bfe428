"""Replication: commit rules (Figure 8), persistence contract, back-off, pipelining."""

from __future__ import annotations

from metadata.raft.messages import Entry, HardState, Message, MessageType
from metadata.raft.progress import ProgressState
from metadata.raft.ready import StateType
from tests.unit.raft.netutil import Net, drain, make_peer

MT = MessageType


def test_leader_counts_itself_only_after_persisting() -> None:
    net = Net.of(3)
    net.elect(1)
    r1 = net[1].node.raft
    idx = net[1].node.propose(b"x")
    # a follower acks before the leader persisted: 1 of 3 durable copies -> no commit
    net[1].node.step(Message(MT.APP_RESP, 1, 2, 1, index=idx))
    assert r1.log.committed == idx - 1
    rd = net[1].node.ready()
    assert rd.entries[-1].index == idx and rd.committed_entries == ()
    net[1].store.append(rd.entries, rd.hard_state)
    net[1].store.sync()
    net[1].node.advance(rd)  # now it is durable on the leader too
    assert r1.log.committed == idx


def test_single_node_commits_after_advance() -> None:
    p = make_peer(1, (1,))
    p.node.campaign()
    rd = p.node.ready()
    assert rd.committed_entries == () and p.node.raft.log.committed == 0
    p.store.append(rd.entries, rd.hard_state)
    p.node.advance(rd)
    assert p.node.raft.log.committed == 1


def test_follower_ack_travels_with_the_entries_it_acks() -> None:
    f = make_peer(2, (1, 2, 3))
    f.node.step(Message(MT.APP, 2, 1, 1, 0, 0, (Entry(1, 1, data=b"a"),), commit=0))
    rd = f.node.ready()
    assert rd.entries == (Entry(1, 1, data=b"a"),) and rd.must_sync
    (m,) = rd.messages
    assert m.type == MT.APP_RESP and m.index == 1 and not m.reject
    assert rd.hard_state == HardState(1, 0, 0)


def test_figure8_old_term_entry_not_committed_by_counting() -> None:
    """Raft paper Figure 8 (c)-(d): S1 must not commit index 2 (term 2) by counting."""
    logs = {1: [1, 2], 2: [1, 2], 3: [1], 4: [1], 5: [1, 3]}
    net = Net.of(5, pre_vote=False, check_quorum=False)
    for i, terms in logs.items():
        p = net[i]
        p.store.append([Entry(t, k + 1) for k, t in enumerate(terms)], HardState(3, 0, 1))
        p.store.sync()
        p.restart()
    # (c) S1 wins term 4 (votes of S2, S3, S4; S5's log is newer) ...
    net.ignored.add(MT.APP)
    net.elect(1)
    r1 = net[1].node.raft
    assert r1.state == StateType.LEADER and r1.term == 4
    # ... and index 2 (term 2) reaches a majority (S1, S2, S3) but its term-4 entry doesn't
    for f in (2, 3):
        net[1].node.step(Message(MT.APP_RESP, 1, f, 4, index=2))
    drain(net[1])
    assert r1.log.committed == 1, "old-term entry must not be committed by counting"
    # (d) S1 crashes; S5 (last term 3) wins with S2, S3, S4 and overwrites index 2
    net.recover()
    net.isolate(1)
    net.elect(5)
    assert net[5].node.raft.state == StateType.LEADER
    net.tick_all(1)
    for i in (2, 3, 4, 5):
        assert net[i].node.raft.log.term(2) == 3
    assert all(e.term != 2 for i in (1, 2, 3, 4, 5) for e in net[i].applied)
    # (e) had S1 replicated its term-4 entry to a majority, that commits index 2 as well
    net2 = Net.of(3, pre_vote=False, check_quorum=False)
    for i, terms in {1: [1, 2], 2: [1], 3: [1]}.items():
        net2[i].store.append([Entry(t, k + 1) for k, t in enumerate(terms)], HardState(3, 0, 1))
        net2[i].store.sync()
        net2[i].restart()
    net2.elect(1)
    assert net2[1].node.raft.log.committed == 3
    assert [e.term for e in net2[2].applied] == [1, 2, 4]


def test_fast_backtracking_of_divergent_follower() -> None:
    net = Net.of(3, pre_vote=False, check_quorum=False)
    p2 = net[2]
    # follower 2 has 50 entries from a term-1 leader that never committed them
    p2.store.append([Entry(1, k) for k in range(1, 51)], HardState(1, 0, 0))
    p2.store.sync()
    p2.restart()
    for i in (1, 3):
        net[i].store.append([Entry(2, k) for k in range(1, 6)], HardState(2, 0, 0))
        net[i].store.sync()
        net[i].restart()
    net.elect(1)
    rejects = [m for m in net.delivered if m.type == MT.APP_RESP and m.reject and m.from_ == 2]
    assert len(rejects) <= 2, rejects  # term hint skips the whole term-1 run at once
    assert net[2].node.raft.log.last_index() == 6
    assert net[2].node.raft.log.term(1) == 2


def test_pipelining_and_flow_control() -> None:
    net = Net.of(2, max_size_per_msg_bytes=1, max_inflight_msgs=3)
    net.elect(1)
    net.cut(1, 2)
    for k in range(6):
        net[1].node.propose(b"%d" % k)
    msgs = drain(net[1])
    apps = [m for m in msgs if m.type == MT.APP and m.to == 2]
    assert len(apps) == 3 and all(len(m.entries) == 1 for m in apps)  # window of 3
    pr = net[1].node.raft.trk.progress[2]
    assert pr.state == ProgressState.REPLICATE and pr.inflights.full()
    net.recover()
    net.send(apps)  # acks free the window; the rest flows
    assert net[2].data() == [b"%d" % k for k in range(6)]


def test_proposals_batched_into_one_append() -> None:
    net = Net.of(3)
    net.elect(1)
    idx = net[1].node.propose_batch([b"a", b"b", b"c"])
    for k in range(20):
        net[1].node.propose(b"%d" % k)
    msgs = drain(net[1])
    apps = [m for m in msgs if m.type == MT.APP]
    assert len(apps) == 2 and len(apps[0].entries) == 23
    net.send(msgs)
    assert net[3].data()[:3] == [b"a", b"b", b"c"] and idx == 4


def test_stale_duplicate_and_reordered_appends_are_harmless() -> None:
    net = Net.of(3)
    net.elect(1)
    for k in range(5):
        net.propose(1, b"%d" % k)
    old = [m for m in net.delivered if m.type == MT.APP and m.to == 2]
    f = net[2]
    before = f.node.raft.log.last_index()
    for m in reversed(old):  # replay every append, newest first
        f.node.step(m)
    drain(f)
    assert f.node.raft.log.last_index() == before
    assert f.data() == [b"%d" % k for k in range(5)]


def test_lost_appends_recovered_by_heartbeat() -> None:
    net = Net.of(3, max_inflight_msgs=1)
    net.elect(1)
    net.ignored.add(MT.APP)
    net.propose(1, b"a")
    net.propose(1, b"b")
    net.recover()
    net.tick_all(3)
    assert net[2].data() == [b"a", b"b"] and net[3].data() == [b"a", b"b"]


def test_report_unreachable_moves_to_probe() -> None:
    net = Net.of(2)
    net.elect(1)
    r = net[1].node.raft
    assert r.trk.progress[2].state == ProgressState.REPLICATE
    net[1].node.report_unreachable(2)
    assert net[1].node.status().progress[1][1].state == ProgressState.PROBE
    net[2].node.report_unreachable(1)  # not leader: ignored


def test_commit_index_reaches_followers_and_status() -> None:
    net = Net.of(3)
    net.elect(1)
    idx = net.propose(1, b"z")
    net.tick_all(1)
    for i in (1, 2, 3):
        assert net[i].node.status().commit == idx
    st = net[1].node.status()
    assert st.state == StateType.LEADER and len(st.progress) == 3
    assert net[2].node.status().progress == ()
    assert net[2].node.lead == 1
