"""Pending ReadIndex requests at the leader (etcd's ``readOnly``, ReadOnlySafe mode).

A request is recorded with the leader's commit index *at arrival* and a unique context;
the leader then broadcasts a heartbeat carrying that context. Heartbeat responses echo it,
so an ack proves the responder still followed this leader *after* the read arrived (Raft
§8). Once a quorum acked, that request and every earlier one is released (earlier requests
are covered by the later heartbeat round). Imports only the stdlib and ``messages``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from metadata.raft.messages import Message

__all__ = ["ReadIndexStatus", "ReadOnly"]


@dataclass(slots=True)
class ReadIndexStatus:
    req: Message  # the READ_INDEX request (from_ = requester, context = ctx)
    index: int  # leader commit index when the request arrived
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, req: Message) -> bool:
        """Record a read; False if a request with the same context is already pending."""
        ctx = req.context
        if ctx in self.pending:
            return False
        self.pending[ctx] = ReadIndexStatus(req, index)
        self.queue.append(ctx)
        return True

    def recv_ack(self, node_id: int, ctx: bytes) -> set[int] | None:
        """Record a heartbeat ack for ``ctx``; the acks so far, or None if unknown."""
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks.add(node_id)
        return rs.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Release ``ctx`` and every request queued before it."""
        if ctx not in self.pending:
            return []
        n = self.queue.index(ctx) + 1
        out = [self.pending.pop(c) for c in self.queue[:n]]
        del self.queue[:n]
        return out

    def last_pending_ctx(self) -> bytes:
        return self.queue[-1] if self.queue else b""
