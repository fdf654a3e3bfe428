"""Which chunkservers the data path recently found slow or unreachable.

One ``ServerHealth`` is shared by every read and write of a process (the gateway holds
one), so a dead or hung chunkserver costs one hedge delay or one write grace, not one per
request, until the catalog marks it down:

- ``read_range`` marks a server whose shard failed, or lagged a whole hedge delay, and
  asks marked servers last (``reader``);
- ``write_object`` marks the server of every shard that missed its chunk's write (failed,
  stalled or late), as each chunk finishes (``writer``);
- placement ranks marked servers last (``metadata.placement.choose_servers``' ``avoid``),
  so the next chunks go elsewhere when spare servers exist.

A mark expires after ``ttl_s``: a server that was only briefly slow gets its share back.

Must not import: gateway or metadata packages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

__all__ = ["ServerHealth"]


class ServerHealth:
    """Servers recently found slow or unreachable: avoided for ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._until: dict[int, float] = {}

    def mark(self, server_id: int) -> None:
        self._until[server_id] = self._clock() + self._ttl

    def is_avoided(self, server_id: int) -> bool:
        until = self._until.get(server_id)
        if until is None:
            return False
        if until <= self._clock():
            del self._until[server_id]
            return False
        return True

    def avoided(self, server_ids: Iterable[int]) -> set[int]:
        """Those of ``server_ids`` currently marked."""
        return {s for s in server_ids if self.is_avoided(s)}
