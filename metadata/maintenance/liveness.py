"""Chunkserver heartbeats on the leader: kept in memory, committed only when they matter (pure).

A chunkserver heartbeats every second. Committing each one through Raft made an idle
six-server cluster append, fsync on every metadata node and apply six entries a second
(and a hundred servers a hundred), only to move ``last_heartbeat_ms`` forward. As in
HDFS's namenode or SeaweedFS's master, liveness is now the leader's soft state: the
maintenance driver remembers when it last heard from each server, and the failure
detector measures silence from the latest of that, the committed heartbeat and the moment
this leader took over (``detector.silence_ms``). A new leader has heard nothing yet and
grants every server that grace period, exactly as it did with committed heartbeats
(which could not commit during an election either).

A heartbeat is still committed (``needs_commit``) when the catalog must learn something:
the server is suspect or down (the FSM revives it), its capacity changed, its free space
moved since the committed figure by more than 1% of its capacity or a tenth of that
figure, whichever is less (placement weighs free space and skips full servers, so the
catalog follows a filling disk closely), its scrub finished a pass or found corruption,
or the committed heartbeat is older than ``commit_every_ms``, so the record's age, free
space and scrub progress stay roughly current for ``blobstore admin status``, the
console and a future leader.

Safety: a leader that lost its quorum steps down (Raft's check-quorum), so a deposed
leader cannot keep absorbing a server's heartbeats for long; and every
``commit_every_ms`` each heartbeat must commit anyway, which fails on such a leader and
sends the chunkserver looking for the real one.

Pure: stdlib and the catalog's record types; the clock is an argument.
"""

from __future__ import annotations

from metadata.fsm.commands import ChunkserverHeartbeat
from metadata.fsm.records import ChunkserverRecord, ScrubProgressRecord

__all__ = ["DEFAULT_COMMIT_EVERY_MS", "needs_commit"]

DEFAULT_COMMIT_EVERY_MS = 10_000
FREE_SPACE_STEP = 100  # commit when free space moved by more than capacity / this


def needs_commit(
    record: ChunkserverRecord | None,
    scrub: ScrubProgressRecord | None,
    heartbeat: ChunkserverHeartbeat,
    now_ms: int,
    commit_every_ms: int = DEFAULT_COMMIT_EVERY_MS,
) -> bool:
    """Whether ``heartbeat`` must go through Raft (else the leader only notes it)."""
    if record is None:  # unknown server: let the FSM answer (NoSuchChunkserver)
        return True
    if record.state in ("suspect", "down"):  # the FSM revives it
        return True
    if now_ms - record.last_heartbeat_ms >= commit_every_ms:
        return True
    if heartbeat.capacity_bytes != record.capacity_bytes:
        return True
    # placement weighs free space and skips full servers: 1% of the capacity is close
    # enough while there is room, a tenth of what is left as the disk fills up
    step = min(record.capacity_bytes // FREE_SPACE_STEP, record.free_bytes // 10)
    if abs(heartbeat.free_bytes - record.free_bytes) > step:
        return True
    new = heartbeat.scrub
    if new is None:
        return False
    return scrub is None or (new.passes_completed, new.corrupt_found) != (
        scrub.passes_completed,
        scrub.corrupt_found,
    )
