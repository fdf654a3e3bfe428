"""Conditional request evaluation: RFC 7232 precedence as S3 applies it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.conditions import (
    Conditions,
    Outcome,
    WriteConditions,
    check_copy_source,
    check_read,
    check_write,
    etag_matches,
    evaluate_read,
    parse_conditions,
    parse_etag_list,
    parse_http_date,
)
from gateway.errors import S3Error

ETAG = '"0123456789abcdef0123456789abcdef"'
BARE = "0123456789abcdef0123456789abcdef"
MTIME = datetime(2026, 11, 26, 9, 10, 44, 500_000, tzinfo=UTC)
BEFORE = "Wed, 25 Nov 2026 09:10:44 GMT"
SAME = "Thu, 26 Nov 2026 09:10:44 GMT"  # equal at second precision
AFTER = "Fri, 27 Nov 2026 09:10:44 GMT"


def outcome(**headers: str) -> Outcome:
    cond = parse_conditions(
        headers.get("if_match"),
        headers.get("if_none_match"),
        headers.get("if_modified_since"),
        headers.get("if_unmodified_since"),
    )
    return evaluate_read(cond, ETAG, MTIME)[0]


P, NM, PF = Outcome.PROCEED, Outcome.NOT_MODIFIED, Outcome.PRECONDITION_FAILED


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, P),
        ({"if_match": ETAG}, P),
        ({"if_match": BARE}, P),
        ({"if_match": f"W/{ETAG}"}, P),
        ({"if_match": '"other", ' + ETAG}, P),
        ({"if_match": "*"}, P),
        ({"if_match": '"other"'}, PF),
        ({"if_none_match": ETAG}, NM),
        ({"if_none_match": "*"}, NM),
        ({"if_none_match": '"other"'}, P),
        ({"if_modified_since": BEFORE}, P),
        ({"if_modified_since": SAME}, NM),
        ({"if_modified_since": AFTER}, NM),
        ({"if_unmodified_since": BEFORE}, PF),
        ({"if_unmodified_since": SAME}, P),
        ({"if_unmodified_since": AFTER}, P),
        # S3 documented combinations
        ({"if_match": ETAG, "if_unmodified_since": BEFORE}, P),  # If-Match wins
        ({"if_match": '"x"', "if_unmodified_since": AFTER}, PF),
        ({"if_none_match": ETAG, "if_modified_since": BEFORE}, NM),  # INM false -> 304
        ({"if_none_match": '"x"', "if_modified_since": SAME}, P),  # INM true: IMS ignored
        ({"if_match": '"x"', "if_none_match": ETAG}, PF),  # 412 before 304
        ({"if_unmodified_since": BEFORE, "if_modified_since": AFTER}, PF),
        # invalid dates are ignored
        ({"if_modified_since": "yesterday"}, P),
        ({"if_unmodified_since": "Thu, 31 Feb 2026 00:00:00 GMT"}, P),
    ],
)
def test_truth_table(headers: dict[str, str], expected: Outcome) -> None:
    assert outcome(**headers) is expected


@pytest.mark.parametrize(
    "text",
    [
        "Thu, 26 Nov 2026 09:10:44 GMT",  # RFC 1123
        "Thursday, 26-Nov-26 09:10:44 GMT",  # RFC 850
        "Thu Nov 26 09:10:44 2026",  # asctime
        "Thu, 26 Nov 2026 09:10:44 UTC",
        "26 Nov 2026 09:10:44 GMT",
    ],
)
def test_http_date_forms(text: str) -> None:
    assert parse_http_date(text) == datetime(2026, 11, 26, 9, 10, 44, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["", "garbage", "Thu, 26 Foo 2026 09:10:44 GMT", "Thu, 26 Nov 2026 25:10:44 GMT"]
)
def test_invalid_dates(text: str) -> None:
    assert parse_http_date(text) is None


def test_etag_list_parsing() -> None:
    assert parse_etag_list(None) is None
    assert parse_etag_list('"a", W/"b" ,c') == ("a", "b", "c")
    assert etag_matches(("*",), '"x"')
    assert not etag_matches(("a",), '"b"')


def test_check_read_raises() -> None:
    with pytest.raises(S3Error) as info:
        check_read(parse_conditions('"nope"', None, None, None), ETAG, MTIME)
    assert info.value.status == 412
    assert ("Condition", "If-Match") in info.value.fields
    with pytest.raises(S3Error) as info:
        check_read(parse_conditions(None, ETAG, None, None), ETAG, MTIME, (("ETag", ETAG),))
    assert info.value.status == 304 and info.value.headers == (("ETag", ETAG),)
    check_read(Conditions(), ETAG, MTIME)


def test_copy_source_failures_are_412() -> None:
    for cond in (
        parse_conditions(None, ETAG, None, None),
        parse_conditions(None, None, AFTER, None),
        parse_conditions('"x"', None, None, None),
        parse_conditions(None, None, None, BEFORE),
    ):
        with pytest.raises(S3Error) as info:
            check_copy_source(cond, ETAG, MTIME)
        assert info.value.status == 412
    check_copy_source(parse_conditions(ETAG, None, None, BEFORE), ETAG, MTIME)


def test_naive_datetime_is_utc() -> None:
    naive = MTIME.replace(tzinfo=None)
    assert evaluate_read(parse_conditions(None, None, SAME, None), ETAG, naive)[0] is NM


def test_write_conditions() -> None:
    check_write(WriteConditions(if_none_match_any=True), "k", None)
    with pytest.raises(S3Error) as info:
        check_write(WriteConditions(if_none_match_any=True), "k", ETAG)
    assert info.value.status == 412
    with pytest.raises(S3Error) as info:
        check_write(WriteConditions(if_match=(BARE,)), "k", None)
    assert info.value.code == "NoSuchKey" and info.value.status == 404
    with pytest.raises(S3Error) as info:
        check_write(WriteConditions(if_match=("other",)), "k", ETAG)
    assert info.value.status == 412
    check_write(WriteConditions(if_match=(BARE,)), "k", ETAG)
    assert Conditions().is_empty and not parse_conditions("*", None, None, None).is_empty


def test_exhaustive_against_rfc7232_oracle() -> None:
    """Every combination of the four headers vs the RFC 7232 section 6 procedure."""
    import itertools

    tags = {"absent": None, "match": ETAG, "nomatch": '"zzz"', "star": "*"}
    dates = {"absent": None, "before": BEFORE, "same": SAME, "after": AFTER, "invalid": "bogus"}
    checked = 0
    for im, inm, ims, ius in itertools.product(tags, tags, dates, dates):
        # oracle, written from the RFC text with the discrete states
        step1_fails = im == "nomatch"  # If-Match present and false
        step2_fails = im == "absent" and ius == "before"  # modified after the date
        step3_fails = inm in ("match", "star")  # If-None-Match present and false
        step4_fails = inm == "absent" and ims in ("same", "after")  # not modified since
        if step1_fails or step2_fails:
            want = PF
        elif step3_fails or step4_fails:
            want = NM
        else:
            want = P
        got = outcome(
            **{
                name: value
                for name, value in (
                    ("if_match", tags[im]),
                    ("if_none_match", tags[inm]),
                    ("if_modified_since", dates[ims]),
                    ("if_unmodified_since", dates[ius]),
                )
                if value is not None
            }
        )
        assert got is want, (im, inm, ims, ius)
        checked += 1
    assert checked == 400
