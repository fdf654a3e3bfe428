"""Tests for blobstore.testing.history: Operation validation, JSON lines, recorder."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from blobstore.testing.history import (
    HISTORY_DIR_ENV,
    HistoryRecorder,
    Operation,
    from_json_line,
    read_history,
    to_json_line,
    write_history,
    write_if_requested,
)
from blobstore.testing.linearizability import check
from tests.unit.testing.histgen import mk


class FakeClock:
    """A clock that advances by one on every read (thread-safe via the recorder's lock)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


SAMPLE = [
    mk(1, "put", "k", 0.5, 1.25, value="x"),
    mk(2, "get", "k", 1.0, 2.0, result="x"),
    mk(3, "delete", "k", 2.0, 3.0),
    mk(4, "cas", "k", 3.0, 4.0, expected=None, value="é ☃", result=True),
    mk(5, "get", "k", 4.0, 5.0, result=None),
    mk(6, "put", "k", 5.0, 9.0, value="y", status="info"),
    mk(7, "cas", "k", 6.0, 7.0, expected="a", value="b", status="fail"),
]


def test_json_line_has_exactly_the_documented_fields() -> None:
    doc = json.loads(to_json_line(SAMPLE[3]))
    assert list(doc) == [
        "client",
        "op",
        "key",
        "value",
        "expected",
        "result",
        "call_ts",
        "return_ts",
        "status",
    ]
    assert doc == {
        "client": 4,
        "op": "cas",
        "key": "k",
        "value": "é ☃",
        "expected": None,
        "result": True,
        "call_ts": 3.0,
        "return_ts": 4.0,
        "status": "ok",
    }
    assert "\n" not in to_json_line(SAMPLE[0])


def test_round_trip_through_file(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    write_history(path, SAMPLE)
    assert read_history(path) == SAMPLE
    assert len(path.read_text(encoding="utf-8").splitlines()) == len(SAMPLE)
    assert [p.name for p in tmp_path.iterdir()] == ["h.jsonl"]  # no temp file left


def test_integer_timestamps_are_accepted_and_blank_lines_skipped(tmp_path: Path) -> None:
    line = (
        '{"client": 1, "op": "get", "key": "k", "value": null, "expected": null,'
        ' "result": null, "call_ts": 1, "return_ts": 2, "status": "ok"}'
    )
    path = tmp_path / "h.jsonl"
    path.write_text(f"\n{line}\n\n")
    (op,) = read_history(path)
    assert op.call_ts == 1.0 and isinstance(op.call_ts, float)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"op": "append"}, "op must be"),
        ({"status": "maybe"}, "status must be"),
        ({"client": "1"}, "client must be"),
        ({"client": True}, "client must be"),
        ({"key": 3}, "key must be"),
        ({"call_ts": "1"}, "call_ts must be"),
        ({"return_ts": 0.5}, "before call_ts"),
        ({"value": "x"}, "takes no value"),
        ({"expected": "x"}, "only cas takes expected"),
        ({"result": True}, "reads a str or None"),
        ({"result": 7}, "result must be"),
    ],
)
def test_malformed_lines_are_rejected(patch: dict[str, object], message: str) -> None:
    doc: dict[str, object] = json.loads(to_json_line(mk(1, "get", "k", 1.0, 2.0, result="v")))
    doc.update(patch)
    with pytest.raises(ValueError, match=message):
        from_json_line(json.dumps(doc))


@pytest.mark.parametrize(
    "line",
    ["[1, 2]", "{not json", '{"client": 1}'],
)
def test_structurally_bad_lines_are_rejected(line: str) -> None:
    with pytest.raises(ValueError):
        from_json_line(line)


def test_extra_field_is_rejected() -> None:
    doc = json.loads(to_json_line(SAMPLE[0]))
    doc["node"] = 3
    with pytest.raises(ValueError, match="unexpected"):
        from_json_line(json.dumps(doc))


def test_read_history_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(to_json_line(SAMPLE[0]) + "\n" + "{oops\n")
    with pytest.raises(ValueError, match=r"h\.jsonl:2: not JSON"):
        read_history(path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"op": "put", "value": None},
        {"op": "cas", "value": "x", "result": None},
        {"op": "put", "value": "x", "result": "x"},
        {"op": "get", "call_ts": float("nan")},
        {"op": "get", "return_ts": float("inf")},
    ],
)
def test_operation_validation(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "client": 1,
        "op": "get",
        "key": "k",
        "value": None,
        "expected": None,
        "result": None,
        "call_ts": 0.0,
        "return_ts": 1.0,
        "status": "ok",
    }
    fields.update(kwargs)
    with pytest.raises(ValueError):
        Operation(**fields)  # type: ignore[arg-type]


def test_non_ok_operations_may_carry_no_result() -> None:
    mk(1, "cas", "k", 0, 1, expected="a", value="b", status="info")
    mk(1, "put", "k", 0, 1, value="b", status="fail")


def test_str_is_readable() -> None:
    assert str(SAMPLE[1]) == "[client 2] get('k') -> 'x' ok @[1, 2]"
    assert "cas('k', None->'é ☃') -> True" in str(SAMPLE[3])


# --- recorder ----------------------------------------------------------------------------


def test_recorder_records_intervals_from_the_injected_clock() -> None:
    rec = HistoryRecorder(FakeClock())
    t1 = rec.invoke(1, "put", "k", value="x")  # call at 1
    t2 = rec.invoke(2, "get", "k")  # call at 2
    done = rec.complete(t2, "x", "ok")  # return at 3
    assert done == mk(2, "get", "k", 2.0, 3.0, result="x")
    rec.complete(t1, None, "ok")  # return at 4
    ops = rec.operations()
    assert ops == [mk(1, "put", "k", 1.0, 4.0, value="x"), done]
    assert check(ops).ok


def test_pending_operations_become_info() -> None:
    rec = HistoryRecorder(FakeClock())
    rec.invoke(1, "put", "k", value="x")
    t = rec.invoke(2, "get", "k")
    rec.complete(t, None, "ok")
    assert rec.pending_count == 1
    ops = rec.operations()
    assert ops[0].status == "info" and ops[0].result is None
    assert ops[0].return_ts >= ops[0].call_ts
    assert rec.operations(include_pending=False) == ops[1:]


def test_recorder_rejects_bad_tokens_and_results() -> None:
    rec = HistoryRecorder(FakeClock())
    t = rec.invoke(1, "cas", "k", value="b", expected="a")
    with pytest.raises(ValueError, match="bool"):
        rec.complete(t, "yes", "ok")
    assert rec.pending_count == 1  # a rejected completion leaves the op pending
    rec.complete(t, False, "ok")
    with pytest.raises(ValueError, match="already completed"):
        rec.complete(t, False, "ok")
    with pytest.raises(ValueError, match="unknown"):
        rec.complete(999, None, "ok")
    with pytest.raises(ValueError, match="needs a value"):
        rec.invoke(1, "put", "k")


def test_recorder_is_thread_safe() -> None:
    rec = HistoryRecorder(FakeClock())
    n_threads, per_thread = 8, 200

    def worker(client: int) -> None:
        for i in range(per_thread):
            t = rec.invoke(client, "put", f"k{client}", value=f"{client}-{i}")
            rec.complete(t, None, "ok")

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    ops = rec.operations()
    assert len(ops) == n_threads * per_thread
    stamps = sorted(t for op in ops for t in (op.call_ts, op.return_ts))
    assert stamps == [float(i) for i in range(1, 2 * n_threads * per_thread + 1)]
    for c in range(n_threads):
        mine = [op for op in ops if op.client == c]
        assert [op.value for op in mine] == [f"{c}-{i}" for i in range(per_thread)]
    assert check(ops).ok


async def test_recorder_under_asyncio() -> None:
    rec = HistoryRecorder(FakeClock())
    store: dict[str, str] = {}

    async def client(c: int) -> None:
        for i in range(20):
            t = rec.invoke(c, "put", "k", value=f"{c}-{i}")
            await asyncio.sleep(0)
            store["k"] = f"{c}-{i}"
            rec.complete(t, None, "ok")
            t = rec.invoke(c, "get", "k")
            await asyncio.sleep(0)
            rec.complete(t, store.get("k"), "ok")

    await asyncio.gather(*(client(c) for c in range(5)))
    ops = rec.operations()
    assert len(ops) == 200
    assert check(ops).ok


# --- write_if_requested ---------------------------------------------------------------------


@pytest.fixture
def history_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "histories"
    d.mkdir()
    yield d


def test_write_if_requested_writes_into_the_directory(history_dir: Path) -> None:
    env = {HISTORY_DIR_ENV: str(history_dir)}
    path = write_if_requested(SAMPLE, "tests/sim/test_x.py::test_y[seed=3]", environ=env)
    assert path is not None
    assert path.parent == history_dir
    assert path.name == "tests_sim_test_x.py_test_y_seed_3.jsonl"
    assert read_history(path) == SAMPLE


def test_write_if_requested_does_nothing_unless_asked(tmp_path: Path) -> None:
    assert write_if_requested(SAMPLE, "h", environ={}) is None
    assert write_if_requested(SAMPLE, "h", environ={HISTORY_DIR_ENV: ""}) is None
    missing = tmp_path / "nope"
    assert write_if_requested(SAMPLE, "h", environ={HISTORY_DIR_ENV: str(missing)}) is None
    assert not missing.exists()


def test_write_if_requested_reads_the_real_environment(
    history_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HISTORY_DIR_ENV, str(history_dir))
    path = write_if_requested(SAMPLE[:2], "env")
    assert path == history_dir / "env.jsonl"
    assert read_history(path) == SAMPLE[:2]
