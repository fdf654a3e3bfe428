"""A tiny synchronous network of RawNodes for scripted unit tests (etcd's ``network``).

``Net.send`` delivers messages breadth-first until quiet; every delivery is followed by the
receiver draining its Ready exactly like the real driver (persist, sync, send, apply,
advance). ``drop``/``cut``/``isolate`` filter links; ``ignore`` filters message types.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from metadata.raft.core import Config
from metadata.raft.messages import ConfChange, Entry, EntryType, Message, MessageType
from metadata.raft.rawnode import RawNode
from metadata.raft.ready import ReadState, Ready
from metadata.storage.memory import MemoryLogStore, MemorySnapshotStore

__all__ = ["Net", "Peer", "drain", "make_peer"]


@dataclass
class Peer:
    id: int
    cfg: Config
    store: MemoryLogStore = field(default_factory=MemoryLogStore)
    snaps: MemorySnapshotStore = field(default_factory=MemorySnapshotStore)
    rn: RawNode | None = None
    applied: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    readies: list[Ready] = field(default_factory=list)
    restored: list[int] = field(default_factory=list)
    apply_conf: bool = True

    @property
    def node(self) -> RawNode:
        assert self.rn is not None
        return self.rn

    def restart(self, seed: int = 0) -> None:
        self.store.crash()
        snap = self.snaps.load()
        if snap is not None:
            self.store.compact(snap)
            self.store.sync()
        applied = snap.meta.index if snap is not None else 0
        self.rn = RawNode(
            replace(self.cfg, applied=applied), self.store, self.snaps, random.Random(seed)
        )

    def data(self) -> list[bytes]:
        return [e.data for e in self.applied if e.type == EntryType.NORMAL and e.data]


def make_peer(i: int, voters: Iterable[int], seed: int = 0, **kw: object) -> Peer:
    kw.setdefault("log_bootstrap", False)  # keep scripted indexes/terms simple
    cfg = Config(id=i, voters=tuple(voters), **kw)  # type: ignore[arg-type]
    p = Peer(i, cfg)
    p.rn = RawNode(cfg, p.store, p.snaps, random.Random(seed * 100 + i))
    assert drain(p) == []  # persist and apply the bootstrap membership entries
    p.applied.clear()
    return p


def drain(p: Peer) -> list[Message]:
    """Process every Ready of ``p`` like the node driver; returns the messages to send."""
    out: list[Message] = []
    while p.rn is not None and p.rn.has_ready():
        rd = p.rn.ready()
        p.readies.append(rd)
        if rd.snapshot is not None:
            p.snaps.save(rd.snapshot)
            p.store.compact(rd.snapshot)
            p.restored.append(rd.snapshot.meta.index)
        p.store.append(rd.entries, rd.hard_state)
        if rd.must_sync:
            p.store.sync()
        out.extend(rd.messages)
        for e in rd.committed_entries:
            p.applied.append(e)
            if e.type == EntryType.CONF_CHANGE and p.apply_conf:
                p.rn.apply_conf_change(ConfChange.decode(e.data))
        p.read_states.extend(rd.read_states)
        p.rn.advance(rd)
    return out


class Net:
    def __init__(self, peers: Iterable[Peer]) -> None:
        self.peers = {p.id: p for p in peers}
        self.cut_links: set[tuple[int, int]] = set()
        self.ignored: set[MessageType] = set()
        self.drop_fn: Callable[[Message], bool] | None = None
        self.delivered: list[Message] = []

    @staticmethod
    def of(n: int, seed: int = 0, **kw: object) -> Net:
        ids = list(range(1, n + 1))
        return Net(make_peer(i, ids, seed, **kw) for i in ids)

    def __getitem__(self, i: int) -> Peer:
        return self.peers[i]

    def cut(self, a: int, b: int) -> None:
        self.cut_links |= {(a, b), (b, a)}

    def isolate(self, a: int) -> None:
        for b in self.peers:
            if b != a:
                self.cut(a, b)

    def recover(self) -> None:
        self.cut_links.clear()
        self.ignored.clear()
        self.drop_fn = None

    def _ok(self, m: Message) -> bool:
        if (m.from_, m.to) in self.cut_links or m.type in self.ignored:
            return False
        return not (self.drop_fn is not None and self.drop_fn(m))

    def flush(self) -> None:
        """Drain every peer and deliver until no message is left."""
        msgs: list[Message] = []
        for p in self.peers.values():
            msgs.extend(drain(p))
        self.send(msgs)

    def send(self, msgs: list[Message]) -> None:
        while msgs:
            nxt: list[Message] = []
            for m in msgs:
                p = self.peers.get(m.to)
                if p is None or p.rn is None or not self._ok(m):
                    continue
                self.delivered.append(m)
                p.rn.step(m)
                nxt.extend(drain(p))
            for p in self.peers.values():
                nxt.extend(drain(p))
            msgs = nxt

    def elect(self, i: int) -> None:
        self.peers[i].node.campaign()
        self.flush()

    def tick(self, i: int, n: int = 1) -> None:
        for _ in range(n):
            self.peers[i].node.tick()
        self.flush()

    def tick_all(self, n: int = 1) -> None:
        for _ in range(n):
            for p in self.peers.values():
                if p.rn is not None:
                    p.rn.tick()
            self.flush()

    def propose(self, i: int, data: bytes) -> int:
        idx = self.peers[i].node.propose(data)
        self.flush()
        return idx

    def leader(self) -> int | None:
        ls = [i for i, p in self.peers.items() if p.rn is not None and p.rn.is_leader]
        return max(ls, key=lambda i: self.peers[i].node.term) if ls else None
