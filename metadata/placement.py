"""Shard placement policy: which chunkservers receive the k+m shards of a new chunk (pure).

Rule: only servers in state ``up`` with free space are candidates. The ``n`` chosen are
distinct servers; when the candidates span several zones, zones are used round-robin so
that shards spread over as many zones as possible (no zone gets a second shard before
every zone that still has candidates got one).

Which servers, among the candidates, is decided by weighted rendezvous hashing of the
caller's ``key`` (random per new chunk): every candidate gets the score
``free_bytes / -ln(u)``, ``u`` uniform in (0, 1) from a hash of (key, server id), and
the highest scores go first. A server is thus picked first with probability proportional
to its free space, so fuller disks fill more slowly and equal disks share the load evenly
chunk by chunk (ranking by free space alone sent every chunk to the same few servers
until the next heartbeat moved the figures: with 1+m shards per small chunk, three of
six servers took all the writes). With fewer than ``n`` candidates, all of them are
returned: the writer leaves the other shards for repair to place, and decides whether
that many still make a write quorum.

``avoid``: servers the caller recently found slow or unreachable (the data path's
``ServerHealth``). They stay candidates but rank after every other server, so they get a
shard only when the zone rule needs them: within a zone they come last, and each round
of the zone rule visits first the zones whose next server is not avoided. Health thus
never changes how shards spread over zones, only which servers of a zone hold them; in a
cluster of exactly ``n`` usable servers every one of them is still chosen (skipping one
would make every write degraded for as long as it stays marked).

Pure: stdlib and the catalog's record types; no I/O, time or randomness (the same key
and servers give the same choice).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Iterable

from metadata.fsm.records import ChunkserverRecord

__all__ = ["choose_servers"]

_SCALE = float(1 << 52)


def choose_servers(
    servers: Iterable[ChunkserverRecord],
    n: int,
    *,
    key: bytes,
    min_free_bytes: int = 1,
    avoid: Collection[int] = (),
) -> list[ChunkserverRecord]:
    """Up to ``n`` distinct up servers with room, spread over zones, servers in ``avoid``
    last; ``key``: random per chunk. Fewer only when fewer are candidates."""
    candidates = [s for s in servers if s.state == "up" and s.free_bytes >= min_free_bytes]
    n = min(n, len(candidates))

    def rank(s: ChunkserverRecord) -> tuple[bool, float, int]:
        return (s.server_id in avoid, -_score(key, s), s.server_id)

    by_zone: dict[str, list[ChunkserverRecord]] = {}
    for s in sorted(candidates, key=rank):
        by_zone.setdefault(s.zone, []).append(s)
    chosen: list[ChunkserverRecord] = []
    depth = 0
    while len(chosen) < n:  # round ``depth``: each zone's next server, the best first
        heads = sorted((g[depth] for g in by_zone.values() if depth < len(g)), key=rank)
        chosen += heads[: n - len(chosen)]
        depth += 1
    return chosen


def _score(key: bytes, server: ChunkserverRecord) -> float:
    digest = hashlib.blake2b(
        server.server_id.to_bytes(8, "big", signed=True), digest_size=8, key=key[:64]
    ).digest()
    return server.free_bytes / -math.log(_open_unit(int.from_bytes(digest, "big")))


def _open_unit(h: int) -> float:
    """A 64-bit hash as a float strictly inside (0, 1): its top 52 bits plus a half are
    exact in a float, so neither 0 nor 1 (where -ln u is infinite or zero) comes out."""
    return ((h >> 12) + 0.5) / _SCALE
