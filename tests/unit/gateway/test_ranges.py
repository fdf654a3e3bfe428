"""Range header parsing vs a naive oracle, and x-amz-copy-source-range."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import S3Error
from gateway.ranges import (
    ByteRangeSpec,
    content_range,
    parse_copy_source_range,
    parse_range,
    resolve_copy_source_range,
    resolve_range,
)


def oracle(header: str, size: int) -> tuple[int, int] | str | None:
    """Naive model of S3: a (start, end) pair, None for 'whole object', '416' otherwise."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header, re.IGNORECASE)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    if m.group(1) == "":
        n = int(m.group(2))
        if n == 0 or size == 0:
            return "416"
        return (max(0, size - n), size - 1)
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else None
    if last is not None and last < first:
        return None
    if first >= size:
        return "416"
    return (first, size - 1 if last is None else min(last, size - 1))


def model(header: str, size: int) -> tuple[int, int] | str | None:
    spec = parse_range(header)
    if spec is None:
        return None
    try:
        return resolve_range(spec, size)
    except S3Error as e:
        assert e.status == 416 and e.code == "InvalidRange"
        assert ("Content-Range", f"bytes */{size}") in e.headers
        return "416"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=10-", 100, (10, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-200", 100, (0, 99)),
        ("bytes=50-500", 100, (50, 99)),
        ("bytes=99-99", 100, (99, 99)),
        ("bytes=100-", 100, "416"),
        ("bytes=100-200", 100, "416"),
        ("bytes=-0", 100, "416"),
        ("bytes=0-", 0, "416"),
        ("bytes=-5", 0, "416"),
        ("bytes=5-2", 100, None),  # invalid -> whole object
        ("bytes=0-1,3-4", 100, None),  # multi-range -> whole object, as S3
        ("items=0-1", 100, None),
        ("bytes=", 100, None),
        ("bytes=-", 100, None),
        ("bytes=a-b", 100, None),
        ("", 100, None),
        ("BYTES=1-2", 100, (1, 2)),
    ],
)
def test_known_cases(header: str, size: int, expected: object) -> None:
    assert model(header, size) == expected


def test_absent_header() -> None:
    assert parse_range(None) is None


def test_spec_str_and_content_range() -> None:
    assert str(ByteRangeSpec(1, None)) == "bytes=1-"
    assert str(ByteRangeSpec(None, 5)) == "bytes=-5"
    assert content_range(0, 9, 100) == "bytes 0-9/100"


_range_text = st.one_of(
    st.builds(
        lambda a, b, sep: f"bytes={a}{sep}{b}",
        st.one_of(st.just(""), st.integers(0, 300).map(str)),
        st.one_of(st.just(""), st.integers(0, 300).map(str)),
        st.sampled_from(["-", "-", " - ", ",", "--"]),
    ),
    st.text(alphabet="bytes=0123456789-, ", max_size=20),
)


@settings(deadline=None, max_examples=400)
@given(_range_text, st.integers(0, 250))
def test_against_oracle(header: str, size: int) -> None:
    result = model(header, size)
    assert result == oracle(header, size)
    if isinstance(result, tuple):
        start, end = result
        assert 0 <= start <= end < size


@pytest.mark.parametrize(
    "header", ["bytes=5-2", "bytes=-5", "bytes=5-", "bytes 0-1", "0-1", "bytes=0-1,2-3", ""]
)
def test_copy_source_range_syntax(header: str) -> None:
    with pytest.raises(S3Error) as info:
        parse_copy_source_range(header)
    assert info.value.code == "InvalidArgument" and info.value.status == 400


def test_copy_source_range_against_size() -> None:
    assert parse_copy_source_range("bytes=0-9") == (0, 9)
    assert resolve_copy_source_range((0, 9), 10) == (0, 9)
    with pytest.raises(S3Error) as info:
        resolve_copy_source_range((0, 10), 10)
    assert info.value.code == "InvalidArgument"
