"""Quorum arithmetic against naive oracles; Inflights and Progress state rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from metadata.raft.messages import Snapshot, SnapshotMeta
from metadata.raft.progress import Inflights, Progress, ProgressState, ProgressTracker
from metadata.raft.quorum import INFINITE_INDEX, VoteResult, committed_index, vote_result


@settings(deadline=None, max_examples=200)
@given(st.dictionaries(st.integers(1, 9), st.integers(0, 50), min_size=1, max_size=7))
def test_committed_index_matches_oracle(match: dict[int, int]) -> None:
    voters = set(match)
    got = committed_index(voters, match)
    # oracle: the largest i such that a strict majority has match >= i
    best = max(
        i for i in [0, *match.values()] if sum(m >= i for m in match.values()) * 2 > len(voters)
    )
    assert got == best


def test_committed_index_edges() -> None:
    assert committed_index(set(), {}) == INFINITE_INDEX
    assert committed_index({1}, {}) == 0
    assert committed_index({1, 2, 3}, {1: 5}) == 0


@settings(deadline=None, max_examples=200)
@given(st.lists(st.sampled_from([None, True, False]), min_size=1, max_size=7))
def test_vote_result_matches_oracle(votes: list[bool | None]) -> None:
    voters = set(range(1, len(votes) + 1))
    vm = {i + 1: v for i, v in enumerate(votes) if v is not None}
    q = len(voters) // 2 + 1
    granted = sum(1 for v in vm.values() if v)
    missing = len(voters) - len(vm)
    want = (
        VoteResult.WON
        if granted >= q
        else VoteResult.PENDING
        if granted + missing >= q
        else VoteResult.LOST
    )
    assert vote_result(voters, vm) == want
    assert vote_result(set(), {}) == VoteResult.WON


def test_inflights_count_and_bytes() -> None:
    inf = Inflights(3, max_bytes=100)
    inf.add(1, 10)
    inf.add(2, 10)
    assert not inf.full()
    inf.add(3, 10)
    assert inf.full() and inf.count() == 3
    inf.free_le(2)
    assert inf.count() == 1 and not inf.full()
    inf.add(4, 95)
    assert inf.full()  # bytes limit
    inf.free_first_one()
    assert inf.count() == 1
    inf.reset()
    assert inf.count() == 0
    inf.free_first_one()  # no-op when empty


def test_progress_probe_replicate_snapshot() -> None:
    pr = Progress(5, Inflights(2), False)
    assert pr.state == ProgressState.PROBE and not pr.is_paused()
    pr.update_on_entries_send(1, 1, 5)
    assert pr.is_paused()  # one probe in flight
    assert not pr.maybe_decr_to(3, 3)  # stale rejection (not for next-1)
    assert pr.maybe_decr_to(4, 1)
    assert pr.next == 2 and not pr.is_paused()
    assert pr.maybe_update(3) and pr.match == 3 and pr.next == 4
    assert not pr.maybe_update(2)
    pr.become_replicate()
    assert pr.next == 4
    pr.update_on_entries_send(2, 10, 4)
    pr.update_on_entries_send(1, 10, 6)
    assert pr.next == 7 and pr.is_paused()  # two in flight = window full
    assert not pr.maybe_decr_to(3, 0)  # stale in replicate
    assert pr.maybe_decr_to(5, 0) and pr.next == 4
    pr.update_on_entries_send(0, 0, 4)  # empty message: nothing in flight
    pr.become_snapshot(Snapshot(SnapshotMeta(20, 2)))
    assert pr.is_paused() and pr.pending_snapshot == 20
    pr.become_probe()
    assert pr.next == 21
    pr.become_probe()
    assert pr.next == pr.match + 1
    assert "PROBE" in repr(pr)


def test_can_bump_commit() -> None:
    pr = Progress(10, Inflights(4), False)
    pr.sent_commit = 5
    assert pr.can_bump_commit(6)
    assert not pr.can_bump_commit(5)
    pr.sent_commit = 9
    assert not pr.can_bump_commit(12)  # already told it everything it can have


def test_tracker_quorum_active_and_votes() -> None:
    trk = ProgressTracker(4, 0)
    trk.voters = {1, 2, 3}
    for i in (1, 2, 3):
        trk.progress[i] = trk.new_progress(1, False)
    assert not trk.quorum_active(1)
    trk.progress[2].recent_active = True
    assert trk.quorum_active(1)
    trk.record_vote(2, True)
    trk.record_vote(2, False)  # first answer sticks
    assert trk.votes[2] is True
    assert trk.vote_result_of([1]) == VoteResult.PENDING
    assert trk.ids() == [1, 2, 3] and [i for i, _ in trk.items()] == [1, 2, 3]
    assert not trk.is_singleton()
