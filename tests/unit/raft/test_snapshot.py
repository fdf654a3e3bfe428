"""Snapshots: compaction, chunked InstallSnapshot, restore, restart with first_index > 1."""

from __future__ import annotations

import random
from dataclasses import replace

from metadata.raft.messages import ConfState, Message, MessageType, Snapshot, SnapshotMeta
from metadata.raft.progress import ProgressState
from metadata.raft.rawnode import RawNode
from tests.unit.raft.netutil import Net, Peer, drain

MT = MessageType


def compact(p: Peer, data: bytes) -> Snapshot:
    snap = p.node.create_snapshot(p.node.raft.log.applied, data)
    p.snaps.save(snap)
    p.store.compact(snap)
    return snap


def lagging_cluster(chunk: int = 10) -> tuple[Net, Snapshot]:
    net = Net.of(3, max_snapshot_chunk_bytes=chunk, max_snapshot_inflight_chunks=2)
    net.elect(1)
    net.isolate(3)
    for k in range(10):
        net.propose(1, b"v%d" % k)
    snap = compact(net[1], b"S" * 95)  # 10 chunks of <= 10 bytes
    assert net[1].store.first_index() > 1
    net.recover()
    return net, snap


def test_create_snapshot_bounds() -> None:
    net = Net.of(1)
    net.elect(1)
    try:
        net[1].node.create_snapshot(5, b"")
    except ValueError:
        pass
    else:
        raise AssertionError("snapshot beyond applied accepted")
    s = net[1].node.create_snapshot(1, b"d")
    assert s.meta.index == 1 and s.meta.term == 1 and s.meta.conf.voters == (1,)


def test_lagging_follower_gets_chunked_snapshot() -> None:
    net, snap = lagging_cluster()
    net.tick_all(2)
    chunks = [m for m in net.delivered if m.type == MT.SNAP and m.to == 3]
    assert len(chunks) >= 10
    assert all(m.snapshot is not None and len(m.snapshot.data) <= 10 for m in chunks)
    assert chunks[-1].done
    p3 = net[3]
    assert p3.restored == [snap.meta.index]
    assert p3.snaps.load() == snap  # reassembled byte for byte
    pr = net[1].node.raft.trk.progress[3]
    assert pr.state == ProgressState.REPLICATE and pr.match == net[1].node.raft.log.last_index()
    net.propose(1, b"after")
    assert p3.data() == [b"after"]


def test_snapshot_stream_survives_lost_chunks() -> None:
    net, snap = lagging_cluster()
    lost = {20, 50}

    def lose_once(m: Message) -> bool:
        if m.type == MT.SNAP and m.offset in lost:
            lost.discard(m.offset)
            return True
        return False

    net.drop_fn = lose_once
    net.tick_all(6)
    assert net[3].restored == [snap.meta.index]
    rejects = [m for m in net.delivered if m.type == MT.SNAP_RESP and m.reject]
    assert rejects  # the gap was detected and the leader restarted from the follower's offset


def test_snapshot_final_ack_lost_then_resent() -> None:
    net, snap = lagging_cluster(chunk=1000)  # one chunk
    dropped: list[Message] = []

    def drop_final_ack(m: Message) -> bool:
        if m.type == MT.APP_RESP and m.from_ == 3 and not m.reject and not dropped:
            dropped.append(m)
            return True
        return False

    net.drop_fn = drop_final_ack
    net.tick_all(1)
    assert dropped
    assert net[3].restored == [snap.meta.index]
    net.recover()
    net.tick_all(4)
    pr = net[1].node.raft.trk.progress[3]
    assert pr.state == ProgressState.REPLICATE


def test_empty_snapshot_data_is_one_chunk() -> None:
    net = Net.of(3)
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"a")
    compact(net[1], b"")
    net.recover()
    net.tick_all(2)
    assert net[3].restored and net[3].snaps.load() is not None


def test_follower_chunk_edge_cases() -> None:
    net = Net.of(3)
    net.elect(1)
    f = net[2]
    meta = SnapshotMeta(50, 1, ConfState(voters=(1, 2, 3)))
    # stale snapshot (index <= committed): acknowledged without transfer
    f.node.step(Message(MT.SNAP, 2, 1, 1, snapshot=Snapshot(SnapshotMeta(1, 1, meta.conf), b"x")))
    (m,) = drain(f)
    assert m.type == MT.APP_RESP and m.index == 1
    # out-of-order chunk with no stream: reject, restart at 0
    f.node.step(Message(MT.SNAP, 2, 1, 1, snapshot=Snapshot(meta, b"b"), offset=5))
    (m,) = drain(f)
    assert m.type == MT.SNAP_RESP and m.reject and m.reject_hint == 0
    f.node.step(Message(MT.SNAP, 2, 1, 1, snapshot=Snapshot(meta, b"ab"), offset=0))
    (m,) = drain(f)
    assert not m.reject and m.reject_hint == 2
    # duplicate of a received chunk: ack what we have
    f.node.step(Message(MT.SNAP, 2, 1, 1, snapshot=Snapshot(meta, b"ab"), offset=0 + 1))
    (m,) = drain(f)
    assert not m.reject and m.reject_hint == 2
    # a SNAP without snapshot is ignored
    f.node.step(Message(MT.SNAP, 2, 1, 1))
    assert drain(f) == []
    f.node.step(Message(MT.SNAP, 2, 1, 1, snapshot=Snapshot(meta, b"c"), offset=2, done=True))
    (m,) = drain(f)
    assert m.type == MT.APP_RESP and m.index == 50 and f.restored == [50]
    assert f.snaps.load() == Snapshot(meta, b"abc")


def test_snapshot_matching_our_log_fast_forwards() -> None:
    net = Net.of(3)
    net.elect(1)
    net.propose(1, b"a")
    r2 = net[2].node.raft
    r2.log.committed = 1
    assert not r2.restore(Snapshot(SnapshotMeta(2, 1, ConfState(voters=(1, 2, 3)))))
    assert r2.log.committed == 2  # fast-forwarded instead


def test_restart_from_snapshot_with_first_index_above_one() -> None:
    net = Net.of(3)
    net.elect(1)
    for k in range(5):
        net.propose(1, b"%d" % k)
    for i in (1, 2, 3):
        compact(net[i], b"state")
        net[i].store.sync()
    for i in (1, 2, 3):
        net[i].restart(seed=i)
        assert net[i].node.raft.log.first_index() > 1
        assert net[i].node.status().applied == net[i].snaps.load().meta.index  # type: ignore[union-attr]
    net.tick_all(40)
    leader = net.leader()
    assert leader is not None
    net.propose(leader, b"post")
    assert all(net[i].data()[-1:] == [b"post"] for i in (1, 2, 3))


def test_snapshot_not_available_is_retried() -> None:
    net = Net.of(3)
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"a")
    snap = net[1].node.create_snapshot(net[1].node.raft.log.applied, b"s")
    net[1].store.compact(snap)  # compacted, but the snapshot store lost it (driver bug)
    net.recover()
    net.tick_all(2)
    assert net[3].restored == []
    net[1].snaps.save(snap)
    net.tick_all(3)
    assert net[3].restored == [snap.meta.index]


def test_restart_with_applied_beyond_unsynced_commit() -> None:
    """A commit-only HardState is not fsynced; the applied index proves the commit."""
    from metadata.raft.messages import Entry, HardState

    p = Net.of(3)[1]
    p.store.append([Entry(1, 1), Entry(1, 2), Entry(1, 3)], HardState(1, 0, 1))
    p.store.sync()
    p.cfg = replace(p.cfg, applied=3)
    p.rn = RawNode(p.cfg, p.store, p.snaps, random.Random(0))
    st = p.node.status()
    assert st.commit == 3 and st.applied == 3
    p.rn = RawNode(
        replace(p.cfg, conf=ConfState(voters=(1, 2), learners=(3,))),
        p.store,
        p.snaps,
        random.Random(0),
    )
    assert p.node.status().conf == ConfState(voters=(1, 2), learners=(3,))
