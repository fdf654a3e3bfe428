"""Sync planning: the pure listing-diff, against a naive oracle and by example."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.cli.syncplan import (
    Compare,
    PathFilter,
    SyncAction,
    SyncEntry,
    is_selected,
    plan_sync,
)


def e(key: str, size: int = 1, mtime: float = 100.0, etag: str | None = None) -> SyncEntry:
    return SyncEntry(key, size, mtime, etag)


def test_new_missing_and_identical() -> None:
    actions = plan_sync([e("a"), e("b")], [e("b")])
    assert actions == [SyncAction("copy", "a", "new", 1)]


def test_size_difference_copies() -> None:
    assert plan_sync([e("a", 2)], [e("a", 1, mtime=999)]) == [SyncAction("copy", "a", "size", 2)]


def test_newer_source_copies_older_does_not() -> None:
    assert plan_sync([e("a", mtime=200)], [e("a", mtime=100)])[0].reason == "newer"
    assert plan_sync([e("a", mtime=100)], [e("a", mtime=200)]) == []


def test_mtime_compared_at_whole_seconds() -> None:
    # A local file written at .7 s uploads with LastModified truncated to the second.
    assert plan_sync([e("a", mtime=100.7)], [e("a", mtime=100.0)]) == []
    assert plan_sync([e("a", mtime=101.0)], [e("a", mtime=100.9)])[0].reason == "newer"


def test_checksum_mode_decides_by_etag_when_known() -> None:
    src = [e("a", mtime=500, etag="x"), e("b", mtime=1, etag="y"), e("c", mtime=500)]
    dst = [e("a", mtime=1, etag='"x"'), e("b", mtime=500, etag="z"), e("c", mtime=1, etag="q")]
    actions = plan_sync(src, dst, compare=Compare.CHECKSUM)
    assert actions == [SyncAction("copy", "b", "checksum", 1), SyncAction("copy", "c", "newer", 1)]


def test_delete_only_with_flag() -> None:
    assert plan_sync([], [e("gone", 7)]) == []
    assert plan_sync([], [e("gone", 7)], delete=True) == [
        SyncAction("delete", "gone", "deleted", 7)
    ]


def test_second_sync_after_applying_plan_is_empty() -> None:
    src = [e("a", 3, 100.5), e("b", 4, 200.2)]
    dst = [e("b", 5, 50.0), e("z", 1, 1.0)]
    actions = plan_sync(src, dst, delete=True)
    applied = {x.key: x for x in dst}
    for a in actions:
        if a.kind == "delete":
            del applied[a.key]
        else:
            s = next(x for x in src if x.key == a.key)
            applied[a.key] = e(a.key, s.size, math.floor(s.mtime_s) + 1)  # upload: LM >= mtime
    assert plan_sync(src, applied.values(), delete=True) == []


entries = st.dictionaries(
    st.sampled_from(["a", "b", "c/d", "c/e", "f"]),
    st.tuples(st.integers(0, 3), st.integers(0, 5), st.sampled_from([None, "h1", "h2"])),
)


@settings(deadline=None, max_examples=200)
@given(entries, entries, st.booleans(), st.sampled_from(list(Compare)))
def test_matches_naive_oracle(
    src: dict[str, tuple[int, int, str | None]],
    dst: dict[str, tuple[int, int, str | None]],
    delete: bool,
    compare: Compare,
) -> None:
    s = [e(k, size, mtime, h) for k, (size, mtime, h) in src.items()]
    d = [e(k, size, mtime, h) for k, (size, mtime, h) in dst.items()]
    expected: dict[str, str] = {}
    for k, (size, mtime, h) in src.items():
        if k not in dst:
            expected[k] = "copy"
            continue
        dsize, dmtime, dh = dst[k]
        if size != dsize:
            expected[k] = "copy"
        elif compare is Compare.CHECKSUM and h and dh:
            if h != dh:
                expected[k] = "copy"
        elif mtime > dmtime:
            expected[k] = "copy"
    if delete:
        expected.update({k: "delete" for k in dst if k not in src})
    actions = plan_sync(s, d, compare=compare, delete=delete)
    assert {a.key: a.kind for a in actions} == expected
    assert [a.key for a in actions] == sorted(expected)


def test_filters_last_match_wins() -> None:
    filters = [PathFilter(False, "*.log"), PathFilter(True, "keep/*.log")]
    assert is_selected("a.txt", filters)
    assert not is_selected("x/a.log", filters)  # '*' also matches '/'
    assert is_selected("keep/a.log", filters)
    assert is_selected("anything", [])
    assert not is_selected("a", [PathFilter(True, "a"), PathFilter(False, "*")])
