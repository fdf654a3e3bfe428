"""InstallSnapshot, both ends: the leader's chunked stream and the follower's reassembly.

Free functions over ``Raft`` [Raft §7]. A follower whose next entry was compacted away
gets the latest snapshot instead, cut into chunks of ``max_snapshot_chunk_bytes``:
- the leader keeps at most ``max_snapshot_inflight_chunks`` chunks unacknowledged
  (``Progress.snap_sent``/``snap_acked`` count bytes); it ships a snapshot only to a peer
  it heard from recently (``recent_active``);
- every SNAP message carries the full ``SnapshotMeta`` (which identifies the stream), the
  chunk's byte ``offset`` and ``done`` on the last chunk; the follower answers each chunk
  with SNAP_RESP, ``reject_hint`` = bytes it holds;
- a chunk out of order makes the follower ask to restart at what it holds (reject); a
  duplicate is acked; a heartbeat round without progress makes the leader go back N
  (resend from the last acked byte), which also covers a lost final ack;
- the follower installs the snapshot only when complete, and only if it is newer than its
  commit index and its log does not already hold the snapshot's last entry (then it just
  fast-forwards its commit index); the membership comes from the snapshot's ConfState.
The buffered chunks live in ``Raft.snap_buf`` (follower side, volatile).
Imports only the stdlib and this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from metadata.raft.messages import Message, MessageType, Snapshot
from metadata.raft.progress import Progress, ProgressState

if TYPE_CHECKING:
    from metadata.raft.core import Raft

__all__ = [
    "SnapBuffer",
    "handle_snap_resp",
    "handle_snapshot_chunk",
    "on_heartbeat_resp",
    "restore",
    "send_snapshot",
    "send_snapshot_chunks",
]

_MT = MessageType


@dataclass(slots=True)
class SnapBuffer:
    """A snapshot being received chunk by chunk (follower side)."""

    snapshot: Snapshot  # meta + first chunk (meta identifies the stream)
    parts: list[bytes]
    size: int


# -- leader side ------------------------------------------------------------------------
def send_snapshot(r: Raft, to: int, pr: Progress) -> bool:
    """Switch ``pr`` to SNAPSHOT and start the stream; False if not possible now."""
    if not pr.recent_active:
        return False  # don't ship a snapshot to a node that may be down
    snap = r.log.snapshot()
    if snap is None:
        return False  # compacted but no snapshot available yet: retry later
    pr.become_snapshot(snap)
    send_snapshot_chunks(r, to, pr)
    return True


def send_snapshot_chunks(r: Raft, to: int, pr: Progress) -> None:
    """Send chunks until the window of unacknowledged bytes is full or all are sent."""
    snap = pr.snap
    if snap is None:
        return
    data = snap.data
    chunk = r.cfg.max_snapshot_chunk_bytes
    window = chunk * r.cfg.max_snapshot_inflight_chunks
    total = len(data)
    while not pr.snap_done_sent and pr.snap_sent - pr.snap_acked < window:
        off = pr.snap_sent
        end = min(off + chunk, total)
        part = Snapshot(snap.meta, bytes(data[off:end]))
        r.send(
            Message(
                _MT.SNAP,
                to,
                r.id,
                r.term,
                snap.meta.term,
                snap.meta.index,
                snapshot=part,
                offset=off,
                done=end >= total,
            )
        )
        pr.snap_sent = end
        pr.snap_done_sent = end >= total


def handle_snap_resp(r: Raft, m: Message, pr: Progress) -> None:
    """A chunk ack (or a request to restart at ``reject_hint``) for the current stream."""
    if pr.state != ProgressState.SNAPSHOT or pr.snap is None:
        return
    if m.index != pr.snap.meta.index:
        return
    if m.reject:
        pr.snap_sent = pr.snap_acked = min(m.reject_hint, len(pr.snap.data))
        pr.snap_done_sent = False
    else:
        pr.snap_acked = max(pr.snap_acked, min(m.reject_hint, pr.snap_sent))
    send_snapshot_chunks(r, m.from_, pr)


def on_heartbeat_resp(r: Raft, to: int, pr: Progress) -> None:
    """A heartbeat ack from a peer in SNAPSHOT: go back N if the stream stalled."""
    if pr.snap_acked == pr.snap_acked_at_beat:
        # No chunk acked since the last beat: go back N (lost chunk or final ack).
        pr.snap_sent = pr.snap_acked
        pr.snap_done_sent = False
        send_snapshot_chunks(r, to, pr)
    pr.snap_acked_at_beat = pr.snap_acked


# -- follower side ----------------------------------------------------------------------
def handle_snapshot_chunk(r: Raft, m: Message) -> None:
    """Buffer one SNAP chunk; install the snapshot after the last one."""
    part = m.snapshot
    if part is None:
        return
    meta = part.meta
    buf = r.snap_buf
    if m.offset == 0:
        if meta.index <= r.log.committed:
            # Already have it all: skip the transfer.
            r.snap_buf = None
            r.send(Message(_MT.APP_RESP, m.from_, r.id, r.term, index=r.log.committed))
            return
        buf = r.snap_buf = SnapBuffer(part, [part.data], len(part.data))
    elif buf is None or buf.snapshot.meta != meta or m.offset != buf.size:
        same = buf is not None and buf.snapshot.meta == meta
        have = buf.size if buf is not None and same else 0
        # Duplicate of something we have: ack; otherwise ask to restart at ``have``.
        dup = same and m.offset < have
        _send_snap_resp(r, m.from_, meta.index, have, reject=not dup)
        return
    else:
        buf.parts.append(part.data)
        buf.size += len(part.data)
    if not m.done:
        _send_snap_resp(r, m.from_, meta.index, buf.size, reject=False)
        return
    r.snap_buf = None
    full = Snapshot(meta, b"".join(buf.parts))
    if restore(r, full):
        r.send(Message(_MT.APP_RESP, m.from_, r.id, r.term, index=r.log.last_index()))
    else:
        r.send(Message(_MT.APP_RESP, m.from_, r.id, r.term, index=r.log.committed))


def _send_snap_resp(r: Raft, to: int, index: int, have: int, reject: bool) -> None:
    """Ack the stream of snapshot ``index`` up to ``have`` bytes (reject: restart there)."""
    r.send(Message(_MT.SNAP_RESP, to, r.id, r.term, index=index, reject=reject, reject_hint=have))


def restore(r: Raft, snap: Snapshot) -> bool:
    """Install a leader's snapshot (follower). False if it is stale or redundant."""
    meta = snap.meta
    if meta.index <= r.log.committed:
        return False
    conf = meta.conf
    # Unlike etcd we accept a snapshot whose configuration does not list us yet: a
    # server added after the leader's last snapshot gets that snapshot and then learns
    # of its own addition from the log (etcd servers build a fresh snapshot instead).
    if r.log.match_term(meta.index, meta.term):
        r.log.commit_to(meta.index)  # fast-forward: our log already matches
        return False
    r.log.restore(snap)
    r.trk.progress.clear()
    r.trk.apply_conf(conf, r.log.last_index() + 1)
    return True
