"""Chunkserver failure detection from heartbeats (pure).

A chunkserver's silence is ``now_ms - max(last_heartbeat_ms, heard_ms, leader_since_ms)``:
the committed heartbeat time from the catalog or, later, the last heartbeat this leader
noted without committing it (``liveness``), but never earlier than the moment this leader
took over (a new leader has heard nothing yet, so it grants every server a fresh grace
period instead of declaring the whole cluster dead).

Transitions proposed (committed through Raft by the caller, so a new leader agrees):
``up -> suspect`` after ``suspect_after_ms`` of silence, ``up|suspect -> down`` after
``down_after_ms``. ``draining``, ``drained`` and ``down`` servers are left alone (an
operator decision, or already down); a heartbeat revives suspect and down servers in the
FSM itself, not here. Suspect servers receive no new shards; down servers' shards are
rebuilt elsewhere.

Pure: stdlib and the catalog's record types; the clock is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from metadata.fsm.records import ChunkserverRecord, ChunkserverState

__all__ = ["DetectorConfig", "StateChange", "detect", "silence_ms"]


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    suspect_after_ms: int = 10_000
    down_after_ms: int = 60_000

    def __post_init__(self) -> None:
        if not 0 < self.suspect_after_ms <= self.down_after_ms:
            raise ValueError("need 0 < suspect_after_ms <= down_after_ms")


@dataclass(frozen=True, slots=True)
class StateChange:
    """Propose ``SetChunkserverState(server_id, new)``."""

    server_id: int
    old: ChunkserverState
    new: ChunkserverState
    silence_ms: int


def silence_ms(
    server: ChunkserverRecord, now_ms: int, leader_since_ms: int, heard_ms: int = 0
) -> int:
    """How long ``server`` has been silent as far as this leader can tell."""
    return max(0, now_ms - max(server.last_heartbeat_ms, heard_ms, leader_since_ms))


def detect(
    servers: Iterable[ChunkserverRecord],
    now_ms: int,
    leader_since_ms: int,
    config: DetectorConfig,
    heard: Mapping[int, int] | None = None,
) -> tuple[StateChange, ...]:
    """The state changes to propose now, by server id (``heard``: server id -> the last
    heartbeat this leader noted without committing it)."""
    heard = heard or {}
    changes: list[StateChange] = []
    for s in sorted(servers, key=lambda s: s.server_id):
        if s.state not in ("up", "suspect"):
            continue
        quiet = silence_ms(s, now_ms, leader_since_ms, heard.get(s.server_id, 0))
        if quiet > config.down_after_ms:
            changes.append(StateChange(s.server_id, s.state, "down", quiet))
        elif quiet > config.suspect_after_ms and s.state == "up":
            changes.append(StateChange(s.server_id, s.state, "suspect", quiet))
    return tuple(changes)
