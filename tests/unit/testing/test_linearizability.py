"""Tests for blobstore.testing.linearizability on hand-written and generated histories."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from blobstore.testing.history import Operation, write_history
from blobstore.testing.linearizability import Budget, Verdict, check, main
from tests.unit.testing.histgen import (
    brute_force_linearizable,
    mk,
    random_raw_history,
    simulate,
)


def put(c: int, k: str, v: str, call: float, ret: float, status: str = "ok") -> Operation:
    return mk(c, "put", k, call, ret, value=v, status=status)  # type: ignore[arg-type]


def get(c: int, k: str, result: str | None, call: float, ret: float) -> Operation:
    return mk(c, "get", k, call, ret, result=result)


def delete(c: int, k: str, call: float, ret: float) -> Operation:
    return mk(c, "delete", k, call, ret)


def cas(
    c: int, k: str, expected: str | None, v: str, swapped: bool, call: float, ret: float
) -> Operation:
    return mk(c, "cas", k, call, ret, value=v, expected=expected, result=swapped)


def verdict(ops: list[Operation]) -> Verdict:
    return check(ops).verdict


GOOD = Verdict.LINEARIZABLE
BAD = Verdict.NOT_LINEARIZABLE


# --- hand-written histories -------------------------------------------------------------


def test_empty_history_is_linearizable() -> None:
    result = check([])
    assert result.ok
    assert result.keys == ()


def test_sequential_history() -> None:
    ops = [
        get(1, "a", None, 0, 1),
        put(1, "a", "x", 2, 3),
        get(2, "a", "x", 4, 5),
        delete(1, "a", 6, 7),
        get(2, "a", None, 8, 9),
        put(2, "a", "y", 10, 11),
        get(1, "a", "y", 12, 13),
    ]
    result = check(ops)
    assert result.ok
    kv = result.for_key("a")
    assert kv.linearization == tuple(ops)  # the only witness
    assert kv.value_after == "y"


def test_sequential_history_with_wrong_read_is_bad() -> None:
    ops = [put(1, "a", "x", 0, 1), put(1, "a", "y", 2, 3), get(2, "a", "x", 4, 5)]
    assert verdict(ops) is BAD


@pytest.mark.parametrize("read", ["x", "y"])
def test_concurrent_writes_either_order_may_be_read(read: str) -> None:
    ops = [
        put(1, "a", "x", 0, 10),
        put(2, "a", "y", 1, 9),
        get(3, "a", read, 11, 12),
        get(3, "a", read, 13, 14),
    ]
    assert verdict(ops) is GOOD


def test_concurrent_writes_then_reads_flip_is_bad() -> None:
    # After both puts completed the value is fixed; it cannot change between two reads.
    ops = [
        put(1, "a", "x", 0, 10),
        put(2, "a", "y", 1, 9),
        get(3, "a", "x", 11, 12),
        get(3, "a", "y", 13, 14),
    ]
    assert verdict(ops) is BAD


def test_read_concurrent_with_write_may_see_old_or_new() -> None:
    for seen in (None, "x"):
        assert verdict([put(1, "a", "x", 0, 10), get(2, "a", seen, 1, 2)]) is GOOD


def test_stale_read_after_completed_write_is_bad() -> None:
    ops = [put(1, "a", "x", 0, 1), put(1, "a", "y", 2, 3), get(2, "a", "x", 4, 5)]
    result = check(ops)
    assert result.verdict is BAD
    kv = result.for_key("a")
    assert kv.unplaced[0] == ops[2]
    assert kv.value_after == "y"
    assert "could not place next" in kv.explain()


def test_lost_write_is_bad() -> None:
    # A completed put is never visible: later reads keep seeing the older value.
    ops = [
        put(1, "a", "old", 0, 1),
        put(2, "a", "new", 2, 3),
        get(3, "a", "old", 4, 5),
        get(1, "a", "old", 6, 7),
    ]
    assert verdict(ops) is BAD


def test_read_of_value_never_written_is_bad() -> None:
    ops = [put(1, "a", "x", 0, 1), get(2, "a", "ghost", 0.5, 3)]
    result = check(ops)
    assert result.verdict is BAD
    kv = result.for_key("a")
    assert kv.unplaced == (ops[1],)
    assert kv.states == 0  # found by the quick pre-check, without a search
    assert "no operation" in kv.reason
    assert "reason: reads a value" in kv.explain()


def test_read_of_none_before_any_write_is_good_and_after_is_bad() -> None:
    assert verdict([get(1, "a", None, 0, 1), put(1, "a", "x", 2, 3)]) is GOOD
    assert verdict([put(1, "a", "x", 0, 1), get(1, "a", None, 2, 3)]) is BAD


def test_delete_semantics() -> None:
    good = [put(1, "a", "x", 0, 1), delete(2, "a", 2, 3), get(1, "a", None, 4, 5)]
    bad = [put(1, "a", "x", 0, 1), delete(2, "a", 2, 3), get(1, "a", "x", 4, 5)]
    assert verdict(good) is GOOD
    assert verdict(bad) is BAD


def test_cas_semantics_sequential() -> None:
    ops = [
        cas(1, "a", None, "x", True, 0, 1),  # absent -> x
        cas(1, "a", None, "y", False, 2, 3),  # not absent any more
        cas(2, "a", "x", "y", True, 4, 5),
        get(1, "a", "y", 6, 7),
        cas(2, "a", "x", "z", False, 8, 9),
        get(1, "a", "y", 10, 11),
    ]
    assert verdict(ops) is GOOD


@pytest.mark.parametrize(
    "ops",
    [
        # a cas that reports success although the value differs
        [put(1, "a", "x", 0, 1), cas(2, "a", "q", "y", True, 2, 3)],
        # a cas that reports failure although the value matches
        [put(1, "a", "x", 0, 1), cas(2, "a", "x", "y", False, 2, 3)],
        # a failed cas must not change the value
        [put(1, "a", "x", 0, 1), cas(2, "a", "q", "y", False, 2, 3), get(1, "a", "y", 4, 5)],
        # two concurrent cas from the same expected value cannot both win
        [
            put(1, "a", "x", 0, 1),
            cas(2, "a", "x", "y", True, 2, 5),
            cas(3, "a", "x", "z", True, 3, 6),
        ],
    ],
    ids=["false-success", "false-failure", "failed-cas-wrote", "double-win"],
)
def test_cas_violations_are_bad(ops: list[Operation]) -> None:
    assert verdict(ops) is BAD


def test_concurrent_cas_one_wins_one_loses() -> None:
    ops = [
        put(1, "a", "x", 0, 1),
        cas(2, "a", "x", "y", True, 2, 5),
        cas(3, "a", "x", "z", False, 3, 6),
        get(1, "a", "y", 7, 8),
    ]
    assert verdict(ops) is GOOD


def test_info_write_that_took_effect_is_good() -> None:
    ops = [
        put(1, "a", "x", 0, 1),
        put(2, "a", "y", 2, 3, status="info"),
        get(3, "a", "x", 4, 5),
        get(3, "a", "y", 100, 101),  # took effect long after the client gave up
    ]
    assert verdict(ops) is GOOD


def test_info_write_that_never_took_effect_is_good() -> None:
    ops = [
        put(1, "a", "x", 0, 1),
        put(2, "a", "y", 2, 3, status="info"),
        get(3, "a", "x", 4, 5),
        get(3, "a", "x", 100, 101),
    ]
    assert verdict(ops) is GOOD


def test_info_write_cannot_take_effect_before_its_call() -> None:
    ops = [get(1, "a", "y", 0, 1), put(2, "a", "y", 2, 3, status="info")]
    assert verdict(ops) is BAD  # caught by the quick pre-check
    ops = [
        put(1, "a", "y", 0, 1),
        put(1, "a", "z", 2, 3),
        get(1, "a", "y", 4, 5),
        put(2, "a", "y", 6, 7, status="info"),
    ]
    result = check(ops)
    assert result.verdict is BAD  # found by the search
    assert result.for_key("a").states > 0


def test_info_write_takes_effect_at_most_once() -> None:
    ops = [
        put(2, "a", "y", 0, 1, status="info"),
        get(3, "a", "y", 2, 3),
        put(1, "a", "x", 4, 5),
        get(3, "a", "y", 6, 7),  # y again: would need the info put to apply twice
    ]
    assert verdict(ops) is BAD


def test_duplicate_info_writes_each_take_effect_at_most_once() -> None:
    ops = [
        put(1, "a", "v", 0, 0.5, status="info"),
        get(2, "a", "v", 1, 2),
        put(3, "a", "w", 3, 4),
        get(2, "a", "v", 5, 6),  # needs a second v, but the other info put comes later
        put(4, "a", "v", 10, 11, status="info"),
    ]
    assert verdict(ops) is BAD
    ops[4] = put(4, "a", "v", 4.5, 11, status="info")
    assert verdict(ops) is GOOD


def test_duplicate_ok_writes_respect_their_own_return_times() -> None:
    # Two puts of the same value; the one returning later must not stand in for the other.
    ops = [
        put(1, "a", "v", 0, 1),
        put(2, "a", "v", 0, 9),
        put(3, "a", "w", 2, 3),
        get(4, "a", "v", 4, 5),  # only the long put can explain this
        get(4, "a", "v", 10, 11),
    ]
    assert verdict(ops) is GOOD
    ops[1] = put(2, "a", "v", 0, 1.5)
    assert verdict(ops) is BAD


def test_info_cas_may_or_may_not_apply() -> None:
    base = [put(1, "a", "x", 0, 1), mk(2, "cas", "a", 2, 3, value="y", expected="x", status="info")]
    assert verdict([*base, get(3, "a", "y", 4, 5)]) is GOOD
    assert verdict([*base, get(3, "a", "x", 4, 5)]) is GOOD
    # an info cas whose expected value never holds cannot apply
    wrong = [
        put(1, "a", "x", 0, 1),
        mk(2, "cas", "a", 2, 3, value="y", expected="q", status="info"),
    ]
    assert verdict([*wrong, get(3, "a", "y", 4, 5)]) is BAD


def test_memo_distinguishes_which_info_ops_were_used() -> None:
    # Placing both info ops first reaches (no ok op placed, value v0) with the delete used
    # up; the witness reaches the same (ok set, value) with the delete still available.
    ops = [
        mk(0, "delete", "k", 0, 4, status="info"),
        get(2, "k", "v0", 3, 4),
        get(5, "k", None, 8, 11),
        mk(6, "cas", "k", 0, 4, expected=None, value="v0", status="info"),
    ]
    assert verdict(ops) is GOOD
    ops = [
        get(1, "k", None, 5, 8),
        put(2, "k", "v1", 0, 4),
        mk(3, "delete", "k", 3, 4, status="info"),
        cas(5, "k", None, "v1", True, 1, 3),
    ]
    assert verdict(ops) is GOOD


def test_info_get_and_fail_ops_are_ignored() -> None:
    ops = [
        put(1, "a", "x", 0, 1),
        put(2, "a", "y", 2, 3, status="fail"),
        mk(3, "get", "a", 2, 3, status="info"),
        mk(3, "cas", "a", 4, 5, expected="x", value="z", status="fail"),
        get(1, "a", "x", 6, 7),
    ]
    result = check(ops)
    assert result.ok
    assert result.for_key("a").dropped_count == 3
    assert result.for_key("a").op_count == 2


def test_fail_write_that_was_read_is_bad() -> None:
    ops = [put(1, "a", "x", 0, 1), put(2, "a", "y", 2, 3, status="fail"), get(1, "a", "y", 4, 5)]
    assert verdict(ops) is BAD


def test_violation_is_reported_for_its_key_only() -> None:
    ops = [
        put(1, "good", "x", 0, 1),
        put(1, "bad", "x", 0, 1),
        put(2, "good", "y", 2, 3),
        put(2, "bad", "y", 2, 3),
        get(3, "good", "y", 4, 5),
        get(3, "bad", "x", 4, 5),  # stale
        get(1, "other", None, 0, 9),
    ]
    result = check(ops)
    assert result.verdict is BAD
    assert [k.key for k in result.failing] == ["bad"]
    assert result.for_key("good").ok
    assert result.for_key("other").ok
    assert all(op.key == "bad" for op in result.for_key("bad").unplaced)
    with pytest.raises(KeyError):
        result.for_key("missing")


def test_overall_explanation_lists_only_failing_keys() -> None:
    ops = [put(1, "ok", "x", 0, 1), put(1, "bad", "x", 0, 1), get(2, "bad", None, 2, 3)]
    text = check(ops).explain()
    assert text.startswith("not linearizable: 2 keys, 1 not proven linearizable")
    assert "key 'bad': not linearizable" in text
    assert "key 'ok'" not in text


def test_non_monotonic_reads_across_two_readers_are_bad() -> None:
    # The write is still in flight, but once reader 1 saw the new value and returned,
    # reader 2 (starting later) must not see the old one.
    ops = [
        put(1, "a", "old", 0, 1),
        put(2, "a", "new", 2, 20),
        get(3, "a", "new", 3, 4),
        get(4, "a", "old", 5, 6),
    ]
    assert verdict(ops) is BAD
    # Overlapping readers may disagree.
    ops[3] = get(4, "a", "old", 3.5, 6)
    assert verdict(ops) is GOOD


def test_equal_timestamps_count_as_overlapping() -> None:
    assert verdict([put(1, "a", "x", 0, 1), get(2, "a", None, 1, 2)]) is GOOD
    assert verdict([put(1, "a", "x", 0, 1), get(2, "a", None, 1.0001, 2)]) is BAD


def test_explanation_shows_longest_prefix() -> None:
    ops = [put(1, "a", f"v{i}", 2 * i, 2 * i + 1) for i in range(20)]
    ops.append(get(2, "a", "v3", 100, 101))
    kv = check(ops).for_key("a")
    assert kv.verdict is BAD
    assert kv.linearization == tuple(ops[:20])
    assert kv.unplaced == (ops[20],)
    text = kv.explain(max_ops=3)
    assert "17 earlier ops" in text
    assert "ghost" not in text and "'v3'" in text


# --- budget ---------------------------------------------------------------------------


def test_step_budget_gives_unknown() -> None:
    ops = simulate(random.Random(1), 200, n_clients=6, n_values=3)
    assert check(ops).ok
    result = check(ops, Budget(max_steps=10))
    assert result.verdict is Verdict.UNKNOWN
    assert not result.ok
    assert "step budget" in result.keys[0].reason


def test_state_budget_gives_unknown() -> None:
    ops = simulate(random.Random(2), 200, n_clients=6)
    result = check(ops, Budget(max_states=5))
    assert result.verdict is Verdict.UNKNOWN
    assert "state budget" in result.keys[0].reason


def test_injected_clock_budget_gives_unknown() -> None:
    ticks = iter(range(1_000_000))
    ops = simulate(random.Random(3), 3000, n_keys=2, n_clients=6)
    result = check(ops, Budget(clock=lambda: float(next(ticks)), timeout_s=2))
    assert result.verdict is Verdict.UNKNOWN
    assert all("time budget" in k.reason for k in result.keys)


def test_violation_beats_unknown_in_overall_verdict() -> None:
    ops = [*simulate(random.Random(4), 100, n_clients=4), put(1, "z", "x", 0, 1)]
    ops.append(get(1, "z", None, 2, 3))
    result = check(ops, Budget(max_steps=20))
    assert result.for_key("z").verdict is BAD
    assert result.for_key("k0").verdict is Verdict.UNKNOWN
    assert result.verdict is BAD


# --- generated histories ----------------------------------------------------------------


@settings(deadline=None, max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_ops=st.integers(0, 60),
    n_keys=st.integers(1, 3),
    n_clients=st.integers(1, 6),
    n_values=st.integers(1, 6),
    p_fail=st.sampled_from([0.0, 0.1]),
    p_info=st.sampled_from([0.0, 0.1, 0.3]),
)
def test_executed_histories_are_linearizable(
    seed: int, n_ops: int, n_keys: int, n_clients: int, n_values: int, p_fail: float, p_info: float
) -> None:
    ops = simulate(
        random.Random(seed),
        n_ops,
        n_keys=n_keys,
        n_clients=n_clients,
        n_values=n_values,
        p_fail=p_fail,
        p_info=p_info,
    )
    result = check(ops)
    assert result.ok, result.explain()
    for kv in result.keys:
        assert len(kv.linearization) >= sum(op.key == kv.key and op.status == "ok" for op in ops)


@settings(deadline=None, max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_ops=st.integers(1, 60),
    n_keys=st.integers(1, 3),
    n_clients=st.integers(1, 6),
    p_info=st.sampled_from([0.0, 0.2]),
    pick=st.integers(0, 10**6),
)
def test_mutated_read_of_unwritten_value_is_caught(
    seed: int, n_ops: int, n_keys: int, n_clients: int, p_info: float, pick: int
) -> None:
    ops = simulate(
        random.Random(seed), n_ops, n_keys=n_keys, n_clients=n_clients, n_values=4, p_info=p_info
    )
    reads = [i for i, op in enumerate(ops) if op.op == "get" and op.status == "ok"]
    if not reads:
        ops.append(get(99, "k0", None, -2, -1))
        reads = [len(ops) - 1]
    i = reads[pick % len(reads)]
    ops[i] = dataclasses.replace(ops[i], result="never-written")
    result = check(ops)
    assert result.verdict is BAD
    assert [k.key for k in result.failing] == [ops[i].key]


@settings(deadline=None, max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_ops=st.integers(10, 80),
    n_clients=st.integers(1, 6),
    p_info=st.sampled_from([0.0, 0.2]),
    pick=st.integers(0, 10**6),
)
def test_mutated_stale_read_is_caught(
    seed: int, n_ops: int, n_clients: int, p_info: float, pick: int
) -> None:
    """Make a get return the value of a write that a later completed write overwrote
    before the get began (values are unique, so nothing else can explain the read)."""
    ops = simulate(random.Random(seed), n_ops, n_clients=n_clients, p_info=p_info)
    writes = [op for op in ops if op.status != "fail" and op.op in ("put", "cas")]
    unique = {v for v in (w.value for w in writes) if [w.value for w in writes].count(v) == 1}
    overwriting = [
        op for op in ops if op.status == "ok" and (op.op in ("put", "delete") or op.result is True)
    ]
    choices = [
        (i, p.value)
        for i, g in enumerate(ops)
        if g.op == "get" and g.status == "ok"
        for p in ops
        if p.status == "ok"
        and p.value in unique
        and p.value != g.result
        and any(p.return_ts < q.call_ts and q.return_ts < g.call_ts for q in overwriting)
    ]
    assume(choices)
    i, stale = choices[pick % len(choices)]
    ops[i] = dataclasses.replace(ops[i], result=stale)
    result = check(ops)
    assert result.verdict is BAD, result.explain()


@settings(deadline=None, max_examples=300)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_ops=st.integers(1, 7),
    n_values=st.integers(1, 3),
    p_info=st.sampled_from([0.0, 0.2, 0.5]),
)
def test_agrees_with_brute_force_oracle(
    seed: int, n_ops: int, n_values: int, p_info: float
) -> None:
    ops = random_raw_history(random.Random(seed), n_ops, n_values, p_info)
    expected = GOOD if brute_force_linearizable(ops) else BAD
    assert verdict(ops) is expected


def _oracle_sweep(seeds: range, max_ops: int) -> set[Verdict]:
    seen = set()
    for seed in seeds:
        rng = random.Random(seed)
        n_ops = rng.randrange(1, max_ops + 1)
        ops = random_raw_history(rng, n_ops, rng.randrange(1, 4), rng.choice([0.2, 0.4, 0.6]))
        expected = GOOD if brute_force_linearizable(ops) else BAD
        assert verdict(ops) is expected, (seed, ops)
        seen.add(expected)
    return seen


def test_oracle_agreement_sweep() -> None:
    """A fixed sweep (info-heavy, up to 8 ops) so both verdicts are exercised on every run;
    it includes histories where memoization that ignored info ops would be wrong."""
    assert _oracle_sweep(range(3000), 8) == {GOOD, BAD}


@pytest.mark.slow
def test_oracle_agreement_long_sweep() -> None:
    assert _oracle_sweep(range(3000, 40000), 9) == {GOOD, BAD}


def test_large_history_checks() -> None:
    """~2,000 ops, 10 keys, 8 concurrent clients (figure measured separately, not asserted)."""
    ops = simulate(random.Random(7), 2000, n_keys=10, n_clients=8, n_values=50, p_info=0.02)
    result = check(ops)
    assert result.ok, result.explain()
    assert len(result.keys) == 10


@pytest.mark.slow
def test_large_single_key_history_with_many_info_ops() -> None:
    ops = simulate(random.Random(8), 2000, n_keys=1, n_clients=8, n_values=5, p_info=0.1)
    assert check(ops).ok


# --- CLI ---------------------------------------------------------------------------------


def _write(tmp_path: Path, ops: list[Operation]) -> Path:
    path = tmp_path / "h.jsonl"
    write_history(path, ops)
    return path


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = simulate(random.Random(5), 50, n_keys=2)
    assert main([str(_write(tmp_path, good))]) == 0
    assert "verdict: linearizable" in capsys.readouterr().out

    bad = [put(1, "a", "x", 0, 1), get(2, "a", "y", 2, 3)]
    assert main([str(_write(tmp_path, bad))]) == 1
    out = capsys.readouterr().out
    assert "key 'a': not linearizable" in out
    assert "verdict: not linearizable" in out

    assert main([str(_write(tmp_path, good)), "--max-steps", "1"]) == 2
    assert "verdict: unknown" in capsys.readouterr().out


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text("{not json\n")
    assert main([str(path)]) == 2
    assert "broken.jsonl:1" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.jsonl")]) == 2


def test_cli_runs_as_module(tmp_path: Path) -> None:
    path = _write(tmp_path, [put(1, "a", "x", 0, 1), get(2, "a", None, 2, 3)])
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "blobstore.testing.linearizability", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "not linearizable" in proc.stdout
    assert proc.stderr == ""
