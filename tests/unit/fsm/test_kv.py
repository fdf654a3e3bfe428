"""MemoryKV against a dict oracle; copy-on-write snapshots stay frozen."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from metadata.fsm.kv import MemoryKV, prefix_end

keys = st.binary(min_size=0, max_size=4)
ops = st.lists(
    st.tuples(st.sampled_from(["put", "delete", "snapshot"]), keys, st.integers(0, 9)),
    max_size=300,
)


def _oracle_scan(d: dict[bytes, int], start: bytes, end: bytes | None) -> list[tuple[bytes, int]]:
    return sorted((k, v) for k, v in d.items() if k >= start and (end is None or k < end))


@settings(deadline=None, max_examples=150)
@given(ops, keys, st.one_of(st.none(), keys))
def test_matches_dict_oracle_and_snapshots_are_frozen(
    script: list[tuple[str, bytes, int]], start: bytes, end: bytes | None
) -> None:
    kv = MemoryKV(load=4)
    oracle: dict[bytes, int] = {}
    frozen = []
    for op, key, value in script:
        if op == "put":
            kv.put(key, value)
            oracle[key] = value
        elif op == "delete":
            assert kv.delete(key) == (key in oracle)
            oracle.pop(key, None)
        else:
            frozen.append((kv.snapshot(), dict(oracle)))
        kv.check()
    assert len(kv) == len(oracle)
    assert list(kv.scan(start, end)) == _oracle_scan(oracle, start, end)
    for k in list(oracle)[:20]:
        assert kv.get(k) == oracle[k]
    for view, then in frozen:
        assert len(view) == len(then)
        assert list(view.scan(b"")) == _oracle_scan(then, b"", None)
        assert list(view.scan(start, end)) == _oracle_scan(then, start, end)


def test_get_absent_and_empty() -> None:
    kv = MemoryKV()
    assert kv.get(b"x") is None
    assert list(kv.scan(b"")) == []
    assert not kv.delete(b"x")
    kv.put(b"b", 1)
    assert kv.get(b"a") is None
    assert kv.get(b"c") is None


def test_none_values_rejected() -> None:
    kv = MemoryKV()
    try:
        kv.put(b"a", None)
    except ValueError:
        return
    raise AssertionError("None was accepted")


def test_from_sorted_and_large_splits() -> None:
    items = [(i.to_bytes(4, "big"), i) for i in range(5000)]
    kv = MemoryKV.from_sorted(items, load=16)
    kv.check()
    assert list(kv.scan(b"")) == items
    for i in range(0, 5000, 3):
        kv.delete(i.to_bytes(4, "big"))
    kv.check()
    assert len(kv) == 5000 - len(range(0, 5000, 3))


def test_from_sorted_rejects_unsorted() -> None:
    try:
        MemoryKV.from_sorted([(b"b", 1), (b"a", 2)])
    except ValueError:
        return
    raise AssertionError("unsorted input accepted")


def test_prefix_end() -> None:
    assert prefix_end(b"ab") == b"ac"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"") is None
