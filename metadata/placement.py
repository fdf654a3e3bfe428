"""Shard placement policy: which chunkservers receive the k+m shards of a new chunk (pure).

Rule: only servers in state ``up`` with free space are candidates. The ``n`` chosen are
distinct servers; when the candidates span several zones, zones are used round-robin so
that shards spread over as many zones as possible (no zone gets a second shard before
every zone that still has candidates got one). Within a zone, and overall, servers with
the most free bytes go first; ties break on the server id, so the choice is deterministic.
Returns None when fewer than ``n`` candidates exist.

Pure: stdlib and the catalog's record types; no I/O, time or randomness.
"""

from __future__ import annotations

from collections.abc import Iterable

from metadata.fsm.records import ChunkserverRecord

__all__ = ["choose_servers"]


def choose_servers(
    servers: Iterable[ChunkserverRecord], n: int, *, min_free_bytes: int = 1
) -> list[ChunkserverRecord] | None:
    """``n`` distinct up servers with room, spread over zones, most free space first."""
    if n <= 0:
        return []
    candidates = sorted(
        (s for s in servers if s.state == "up" and s.free_bytes >= min_free_bytes),
        key=lambda s: (-s.free_bytes, s.server_id),
    )
    if len(candidates) < n:
        return None
    by_zone: dict[str, list[ChunkserverRecord]] = {}
    for s in candidates:
        by_zone.setdefault(s.zone, []).append(s)
    # zones ordered by their best server, so the emptiest disks lead every round
    zones = sorted(by_zone.values(), key=lambda group: (-group[0].free_bytes, group[0].server_id))
    chosen: list[ChunkserverRecord] = []
    depth = 0
    while len(chosen) < n:
        for group in zones:
            if depth < len(group) and len(chosen) < n:
                chosen.append(group[depth])
        depth += 1
    return chosen
