"""What the core hands the driver each cycle (``Ready``) and the small values inside it.

The driver MUST process a Ready in this order (etcd's synchronous-storage contract):
1. ``snapshot`` (if any): save it durably, reset/compact the log store to it, restore the
   state machine from it;
2. append ``entries`` and save ``hard_state`` (if not None) to the log store, then ``sync()``
   when ``must_sync``;
3. only now send ``messages`` (votes and appends acks are therefore never sent before the
   state they vouch for is durable);
4. apply ``committed_entries`` in order (CONF_CHANGE entries: decode and pass to
   ``RawNode.apply_conf_change``); hand ``read_states`` to waiting readers once the state
   machine applied up to their ``index``;
5. ``RawNode.advance(ready)``.
Imports only the stdlib and ``messages``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from metadata.raft.messages import Entry, HardState, Message, Snapshot

__all__ = ["ReadState", "Ready", "SoftState", "StateType"]


class StateType(IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth telling the driver about (not persisted)."""

    lead: int
    state: StateType


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the state machine applied ``index``."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    soft_state: SoftState | None  # None: unchanged since the last Ready
    hard_state: HardState | None  # None: unchanged since the last Ready
    entries: tuple[Entry, ...]  # append to the log store (truncating from entries[0].index)
    snapshot: Snapshot | None  # install before anything else
    committed_entries: tuple[Entry, ...]  # apply in order after persisting
    messages: tuple[Message, ...]  # send after persisting
    read_states: tuple[ReadState, ...]
    must_sync: bool  # entries, vote or term changed: fsync before sending
