"""Log replication, sending side: the leader's MsgApps and heartbeats to each peer.

Free functions over ``Raft`` (etcd's ``sendAppend``/``bcastAppend``/``bcastHeartbeat``),
driven by each peer's ``Progress`` [Raft §5.3]:
- PROBE: one MsgApp at a time until the peer answers; REPLICATE: MsgApps are pipelined
  (each send advances ``next`` optimistically) until ``Inflights`` is full, by count
  (``max_inflight_msgs``) or bytes (``max_inflight_bytes``);
- batching: a MsgApp carries as many entries as fit ``max_size_per_msg_bytes`` (at least
  one); proposals only flag ``bcast_pending`` and one broadcast per Ready sends them all
  (``flush``);
- a peer whose next entry was compacted away gets the snapshot stream instead
  (``snapshot.send_snapshot``);
- a MsgApp carries the leader's commit index (the follower commits only up to the last
  entry that MsgApp proves it holds), a heartbeat at most the peer's ``match``;
  ``Progress.sent_commit`` remembers how far the peer can have committed, so an empty
  MsgApp goes out when only the commit index moved (``Progress.can_bump_commit``);
- heartbeats carry the newest pending ReadIndex context (``read_only``).
Imports only the stdlib and this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metadata.raft.messages import Entry, Message, MessageType
from metadata.raft.progress import Progress
from metadata.raft.ready import StateType
from metadata.raft.snapshot import send_snapshot

if TYPE_CHECKING:
    from metadata.raft.core import Raft

__all__ = ["bcast_append", "bcast_heartbeat", "flush", "maybe_send_append", "send_append"]

_MT = MessageType


def bcast_append(r: Raft, send_if_empty: bool) -> None:
    """Send every peer what it lacks, pipelining while its window has room."""
    r.bcast_pending = False
    for i, pr in r.trk.progress.items():
        if i != r.id and maybe_send_append(r, i, pr, send_if_empty):
            # Pipeline: keep sending while the follower's window has room.
            while maybe_send_append(r, i, pr, send_if_empty=False):
                pass


def flush(r: Raft) -> None:
    """Send the appends that proposals made necessary (batched per Ready)."""
    if r.bcast_pending and r.state == StateType.LEADER:
        bcast_append(r, send_if_empty=False)
    r.bcast_pending = False


def bcast_heartbeat(r: Raft, ctx: bytes) -> None:
    """Heartbeat every peer, carrying the ReadIndex context ``ctx`` (may be empty)."""
    committed = r.log.committed
    for i, pr in r.trk.progress.items():
        if i != r.id:
            r.send(
                Message(
                    _MT.HEARTBEAT,
                    i,
                    r.id,
                    r.term,
                    commit=min(pr.match, committed),
                    context=ctx,
                )
            )


def send_append(r: Raft, to: int, pr: Progress) -> None:
    """Send ``to`` a MsgApp (possibly empty, to probe or carry the commit index)."""
    maybe_send_append(r, to, pr, send_if_empty=True)


def maybe_send_append(r: Raft, to: int, pr: Progress, send_if_empty: bool) -> bool:
    """Send one MsgApp (or start the snapshot stream); False if nothing was sent."""
    if pr.is_paused():
        return False
    prev = pr.next - 1
    prev_term = r.log.term(prev)
    last = r.log.last_index()
    ents: list[Entry] | None = []
    if pr.next <= last:
        ents = r.log.slice(pr.next, last + 1, r.cfg.max_size_per_msg_bytes)
    if prev_term is None or ents is None:
        return send_snapshot(r, to, pr)
    if not ents and not send_if_empty:
        return False
    commit = r.log.committed
    r.send(Message(_MT.APP, to, r.id, r.term, prev_term, prev, tuple(ents), commit))
    pr.update_on_entries_send(len(ents), sum(len(e.data) for e in ents) if ents else 0, pr.next)
    pr.sent_commit = max(pr.sent_commit, min(commit, prev + len(ents)))
    return True
