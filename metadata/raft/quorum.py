"""Majority quorum arithmetic: the committed index of a voter set and election tallies.

Pure functions over a voter set (Raft §5.2, §5.3). An empty voter set commits "everything"
(``2**63``) and wins every vote, as in etcd's ``MajorityConfig``, so that a joint half that
is empty never blocks. Imports only the stdlib.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import IntEnum

__all__ = ["INFINITE_INDEX", "VoteResult", "committed_index", "vote_result"]

INFINITE_INDEX = 1 << 63


class VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """Largest index acknowledged by a majority of ``voters`` (missing voters count as 0)."""
    n = len(voters)
    if n == 0:
        return INFINITE_INDEX
    if n == 1:
        (only,) = voters
        return match.get(only, 0)
    srt = sorted(match.get(v, 0) for v in voters)
    # The (n//2+1)-th largest value is acknowledged by a majority.
    return srt[n - (n // 2 + 1)]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer be reached."""
    if not voters:
        return VoteResult.WON
    granted = rejected = 0
    for v in voters:
        got = votes.get(v)
        if got is None:
            continue
        if got:
            granted += 1
        else:
            rejected += 1
    q = len(voters) // 2 + 1
    if granted >= q:
        return VoteResult.WON
    if len(voters) - rejected < q:
        return VoteResult.LOST
    return VoteResult.PENDING
