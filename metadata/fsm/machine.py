"""The Raft-facing adapter: log-entry bytes in, catalog results out.

``CatalogStateMachine`` satisfies ``metadata.node.StateMachine`` (``apply(index, data)``,
``snapshot() -> serializer``, ``restore(data)``) on top of ``state.Catalog``. Proposers
encode entries with ``encode_entry``; an entry is the codec encoding of a ``ClientCommand``
(see codec.py). Empty data (a new leader's no-op) applies as ``Noop``. Undecodable data
yields an ``InvalidArgument`` result (apply is total). ``snapshot()`` freezes the catalog
inline (O(n / leaf size)) and returns a closure that serializes the frozen view; the closure
is safe to run on another thread while apply continues.
Pure: stdlib and sibling modules.
"""

from __future__ import annotations

from collections.abc import Callable

from blobstore.errors import InvalidArgument
from metadata.fsm.codec import decode_value, encode_value
from metadata.fsm.commands import ClientCommand, Noop
from metadata.fsm.results import Result
from metadata.fsm.snapshot import encode_snapshot
from metadata.fsm.state import Catalog

__all__ = ["CatalogStateMachine", "decode_entry", "encode_entry"]


def encode_entry(entry: ClientCommand) -> bytes:
    """Log-entry bytes for a proposal."""
    return encode_value(entry)


def decode_entry(data: bytes) -> ClientCommand:
    """The proposal inside log-entry bytes; ValueError if it is not one."""
    value = decode_value(data)
    if not isinstance(value, ClientCommand):
        raise ValueError(f"log entry holds {type(value).__name__}, not a ClientCommand")
    return value


class CatalogStateMachine:
    """The catalog as the metadata node replicates it."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog if catalog is not None else Catalog()
        self.applied_index = 0

    def apply(self, index: int, data: bytes) -> Result:
        """Apply one committed entry; never raises."""
        self.applied_index = index
        if not data:
            return self.catalog.apply(ClientCommand("", 0, 0, Noop()))
        try:
            entry = decode_entry(data)
        except ValueError as e:
            return InvalidArgument(f"undecodable log entry {index}: {e}")
        return self.catalog.apply(entry)

    def snapshot(self) -> Callable[[], bytes]:
        """Freeze now; the returned callable serializes that frozen state (thread-safe)."""
        view = self.catalog.snapshot_view()
        return lambda: encode_snapshot(view)

    def restore(self, data: bytes) -> None:
        """Replace the whole catalog with a snapshot's (ValueError if malformed)."""
        self.catalog.restore(data)
