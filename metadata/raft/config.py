"""Static parameters of one Raft node (etcd's ``raft.Config``) and the "no node" id.

``Config`` is immutable and checked once by ``validate`` when the core is built; nothing
else in the package reads knobs from anywhere else. Node ids are positive, so ``NONE``
(0) means "no leader" / "voted for nobody" / "local request". Imports only the stdlib and
``messages``.
"""

from __future__ import annotations

from dataclasses import dataclass

from metadata.raft.messages import ConfState

__all__ = ["NONE", "Config"]

NONE = 0  # "no node": node ids are positive


@dataclass(frozen=True, slots=True)
class Config:
    """Static parameters of one Raft node."""

    id: int
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    voters: tuple[int, ...] = ()  # bootstrap membership, used only without a snapshot
    learners: tuple[int, ...] = ()
    applied: int = 0  # last index the state machine already holds (restart)
    # Membership as of ``applied`` (restart of a driver with a persistent state machine).
    # None: the latest snapshot's ConfState, else voters/learners above; the driver then
    # re-applies the CONF_CHANGE entries after that point as it re-applies the log.
    conf: ConfState | None = None
    max_size_per_msg_bytes: int = 1 << 20  # entry data per MsgApp (at least one entry)
    max_inflight_msgs: int = 256  # pipelined MsgApps per follower
    max_inflight_bytes: int = 0  # 0 = unlimited
    max_committed_bytes_per_ready: int = 0  # 0 = unlimited
    max_snapshot_chunk_bytes: int = 1 << 20
    max_snapshot_inflight_chunks: int = 4
    check_quorum: bool = True
    pre_vote: bool = True
    read_lease_based: bool = False  # opt-in lease reads; requires check_quorum
    step_down_on_removal: bool = True
    # Fresh storage + voters: write the initial membership as committed CONF_CHANGE entries
    # 1..n of term 1 (etcd's Bootstrap), so servers added later learn it from the log.
    # Off: the membership lives only in this Config (fine for fixed clusters and tests).
    log_bootstrap: bool = True

    def validate(self) -> None:
        """Raise ValueError on an inconsistent configuration."""
        if self.id <= NONE:
            raise ValueError("node id must be positive")
        if self.heartbeat_ticks <= 0 or self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("need 0 < heartbeat_ticks < election_ticks")
        if self.max_inflight_msgs <= 0 or self.max_snapshot_inflight_chunks <= 0:
            raise ValueError("in-flight limits must be positive")
        if self.max_snapshot_chunk_bytes <= 0:
            raise ValueError("max_snapshot_chunk_bytes must be positive")
        if self.read_lease_based and not self.check_quorum:
            raise ValueError("lease-based reads require check_quorum")
