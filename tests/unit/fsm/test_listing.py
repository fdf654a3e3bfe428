"""ListObjects v1/v2 against a sort-and-scan oracle; jumps over common prefixes."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from blobstore.errors import InvalidArgument, NoSuchBucket
from metadata.fsm.commands import ClientCommand, CreateBucket
from metadata.fsm.kv import KVReader
from metadata.fsm.listing import list_objects
from metadata.fsm.results import ListObjectsPage
from metadata.fsm.state import Catalog

from .helpers import obj

ALPHABET = ["a", "b", "/", "é", "😀", "\uffff", "-", "\x01"]
key_text = st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=6).map("".join)


def _u8(s: str) -> bytes:
    return s.encode("utf-8")


def oracle(keys: set[str], prefix: str, delimiter: str) -> list[tuple[str, bool]]:
    """Entries (name, is_common_prefix) in UTF-8 order, by brute force."""
    out: dict[str, bool] = {}
    for k in keys:
        if not k.startswith(prefix):
            continue
        rest = k[len(prefix) :]
        if delimiter and delimiter in rest:
            out[prefix + rest[: rest.index(delimiter) + len(delimiter)]] = True
        else:
            out[k] = False
    return sorted(out.items(), key=lambda e: _u8(e[0]))


def _catalog(keys: set[str]) -> Catalog:
    cat = Catalog()
    cat.apply(ClientCommand("", 0, 1, CreateBucket("bkt", "alice")))
    for k in sorted(keys):
        cat.apply(ClientCommand("", 0, 1, obj("bkt", k, b"")))
    return cat


def _entries(page: ListObjectsPage) -> list[tuple[str, bool]]:
    got = [(c.key, False) for c in page.contents] + [(p, True) for p in page.common_prefixes]
    return sorted(got, key=lambda e: _u8(e[0]))


@settings(deadline=None, max_examples=150)
@example(keys={"a/b", "a/c", "b"}, prefix="", delimiter="/", page_size=1, marker="a/b")
@example(keys={"aé/x", "aé/y", "a"}, prefix="a", delimiter="é/", page_size=1, marker="")
@given(
    keys=st.sets(key_text, min_size=1, max_size=40),
    prefix=st.sampled_from(["", "a", "a/", "é", "😀"]),
    delimiter=st.sampled_from(["", "/", "a", "é/", "😀"]),
    page_size=st.integers(1, 7),
    marker=st.one_of(st.just(""), key_text),
)
def test_pagination_reassembles_oracle(
    keys: set[str], prefix: str, delimiter: str, page_size: int, marker: str
) -> None:
    cat = _catalog(keys)
    want = oracle(keys, prefix, delimiter)
    # v1 with NextMarker
    got: list[tuple[str, bool]] = []
    m = ""
    for _ in range(100):
        page = cat.list_objects(
            "bkt", prefix=prefix, delimiter=delimiter, marker=m, max_keys=page_size
        )
        assert page.key_count <= page_size
        got += _entries(page)
        if not page.is_truncated:
            break
        assert page.next_marker == got[-1][0]
        m = page.next_marker
    assert got == want
    # v2 with continuation tokens
    got = []
    token: str | None = None
    for _ in range(100):
        page = cat.list_objects_v2(
            "bkt", prefix=prefix, delimiter=delimiter, continuation_token=token, max_keys=page_size
        )
        got += _entries(page)
        if not page.is_truncated:
            assert page.next_continuation_token is None
            break
        token = page.next_continuation_token
    assert got == want
    # an arbitrary start-after / marker: everything strictly after it
    after = [e for e in want if _u8(e[0]) > _u8(marker)] if marker else want
    full = cat.list_objects_v2("bkt", prefix=prefix, delimiter=delimiter, start_after=marker)
    assert _entries(full) == after
    full = cat.list_objects("bkt", prefix=prefix, delimiter=delimiter, marker=marker)
    assert _entries(full) == after


def test_marker_inside_a_common_prefix_skips_it() -> None:
    cat = _catalog({"a/b", "a/c", "b", "c/d"})
    first = cat.list_objects("bkt", delimiter="/", max_keys=1)
    assert first.common_prefixes == ("a/",) and first.next_marker == "a/"
    second = cat.list_objects("bkt", delimiter="/", marker="a/", max_keys=1)
    assert [o.key for o in second.contents] == ["b"] and second.common_prefixes == ()
    third = cat.list_objects_v2("bkt", delimiter="/", start_after="a/b")
    assert [o.key for o in third.contents] == ["b"] and third.common_prefixes == ("c/",)


def test_utf8_binary_order_not_utf16() -> None:
    cat = _catalog({"\uffff", "😀", "a"})
    # UTF-16 would put the astral 😀 (surrogates D83D...) before U+FFFF; UTF-8 puts it after.
    assert [c.key for c in cat.list_objects("bkt").contents] == ["a", "\uffff", "😀"]


class _CountingKV:
    """Counts how many records a listing touches."""

    def __init__(self, inner: KVReader) -> None:
        self.inner = inner
        self.seen = 0

    def get(self, key: bytes) -> object | None:
        return self.inner.get(key)

    def scan(self, start: bytes, end: bytes | None = None):  # type: ignore[no-untyped-def]
        for item in self.inner.scan(start, end):
            self.seen += 1
            yield item

    def __len__(self) -> int:
        return len(self.inner)


def test_common_prefixes_are_jumped_not_scanned() -> None:
    keys = {f"dir{d}/f{i:03d}" for d in range(5) for i in range(200)} | {"top"}
    cat = _catalog(keys)
    counting = _CountingKV(cat.kv)
    page = list_objects(counting, "bkt", delimiter="/")
    assert page.common_prefixes == tuple(f"dir{d}/" for d in range(5))
    assert [c.key for c in page.contents] == ["top"]
    assert counting.seen <= 12  # one record per entry (plus the end), not 1001
    counting.seen = 0
    page = list_objects(counting, "bkt", max_keys=10)
    assert counting.seen == 11 and page.is_truncated


def test_max_keys_bounds_and_bad_token() -> None:
    cat = _catalog({f"k{i:04d}" for i in range(1005)})
    page = cat.list_objects_v2("bkt", max_keys=5000)
    assert len(page.contents) == 1000 and page.is_truncated
    page = cat.list_objects("bkt", max_keys=0)
    assert page.contents == () and not page.is_truncated
    with pytest.raises(InvalidArgument):
        cat.list_objects("bkt", max_keys=-1)
    with pytest.raises(InvalidArgument):
        cat.list_objects_v2("bkt", continuation_token="!!not-base64!!")
    with pytest.raises(NoSuchBucket):
        cat.list_objects("nope")
    assert cat.list_objects("bkt", prefix="a\x00").contents == ()


def test_objects_of_other_buckets_do_not_leak() -> None:
    cat = _catalog({"x"})
    cat.apply(ClientCommand("", 0, 1, CreateBucket("bkt2", "alice")))
    cat.apply(ClientCommand("", 0, 1, obj("bkt2", "y", b"")))
    assert [c.key for c in cat.list_objects("bkt").contents] == ["x"]
    assert [c.key for c in cat.list_objects("bkt2").contents] == ["y"]


@pytest.mark.slow
def test_first_page_of_a_large_bucket_touches_one_page_of_records() -> None:
    from metadata.fsm import keyspace as ks
    from metadata.fsm.kv import MemoryKV
    from metadata.fsm.records import ObjectRecord

    rec = ObjectRecord("null", 0, "e", 1, "alice", 1, inline_data=b"")
    items = sorted(
        (ks.object_key("bkt", f"d{d:03d}/k{i:05d}"), rec) for d in range(200) for i in range(1000)
    )
    counting = _CountingKV(MemoryKV.from_sorted(items))
    page = list_objects(counting, "bkt", max_keys=1000)
    assert page.is_truncated and counting.seen == 1001
    counting.seen = 0
    page = list_objects(counting, "bkt", delimiter="/", max_keys=1000)
    assert len(page.common_prefixes) == 200 and not page.is_truncated
    assert counting.seen == 200
