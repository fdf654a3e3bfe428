"""HTTP conditional requests (RFC 7232) as Amazon S3 evaluates them (pure).

Read conditions (GET/HEAD; ``If-*`` headers), evaluated in RFC 7232 section 6 order:

1. ``If-Match`` present: false -> 412. (``If-Unmodified-Since`` is then ignored, which is
   the S3-documented "If-Match true + If-Unmodified-Since false -> 200".)
2. else ``If-Unmodified-Since`` valid date: modified after it -> 412.
3. ``If-None-Match`` present: false (an ETag matches) -> 304. (``If-Modified-Since`` is
   then ignored: "If-None-Match false + If-Modified-Since true -> 304".)
4. else ``If-Modified-Since`` valid date: not modified since -> 304.

Copy-source conditions (``x-amz-copy-source-if-*``) follow the same order, but every
failure is 412 PreconditionFailed (S3 semantics for CopyObject / UploadPartCopy).

Write conditions (PutObject / CompleteMultipartUpload): ``If-None-Match: *`` fails with
412 when the key exists; ``If-Match`` fails with 404 NoSuchKey when it does not and 412 when
the ETag differs.

ETags compare on their opaque value: surrounding quotes and a ``W/`` weak prefix are
ignored (S3 has no weak ETags), lists are comma separated, ``*`` matches any existing
object. HTTP dates: RFC 1123, RFC 850 and asctime forms; an invalid date makes its header
ignored. Object times are compared at whole-second precision (HTTP dates have no more).

Must not import starlette, asyncio, or read the clock.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.errors import S3Error

__all__ = [
    "Conditions",
    "Outcome",
    "WriteConditions",
    "check_copy_source",
    "check_read",
    "check_write",
    "etag_matches",
    "evaluate_read",
    "parse_conditions",
    "parse_etag_list",
    "parse_http_date",
]


class Outcome(enum.Enum):
    PROCEED = "proceed"
    NOT_MODIFIED = "not_modified"  # 304
    PRECONDITION_FAILED = "precondition_failed"  # 412


@dataclass(frozen=True, slots=True)
class Conditions:
    """Parsed ``If-*`` (or ``x-amz-copy-source-if-*``) headers.

    ETag lists hold bare (unquoted) ETags, or ``"*"``. Dates are aware UTC datetimes;
    ``None`` when the header was absent or its date invalid.
    """

    if_match: tuple[str, ...] | None = None
    if_none_match: tuple[str, ...] | None = None
    if_modified_since: datetime | None = None
    if_unmodified_since: datetime | None = None

    @property
    def is_empty(self) -> bool:
        return (
            self.if_match is None
            and self.if_none_match is None
            and self.if_modified_since is None
            and self.if_unmodified_since is None
        )


@dataclass(frozen=True, slots=True)
class WriteConditions:
    """Conditional-write headers: ``If-None-Match: *`` and/or ``If-Match: <etag>``."""

    if_none_match_any: bool = False
    if_match: tuple[str, ...] | None = None


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_TZ = r"(?:GMT|UTC|UT|Z|\+0000|-0000)"
_RFC1123 = re.compile(
    r"(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{2}):(\d{2}):(\d{2})\s*" + _TZ
)
_RFC850 = re.compile(
    r"[A-Za-z]{6,9},\s*(\d{1,2})-([A-Za-z]{3})-(\d{2})\s+(\d{2}):(\d{2}):(\d{2})\s*" + _TZ
)
_ASCTIME = re.compile(
    r"[A-Za-z]{3}\s+([A-Za-z]{3})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+(\d{4})"
)


def _make(year: int, month_name: str, day: int, hh: int, mm: int, ss: int) -> datetime | None:
    month = _MONTHS.get(month_name.lower())
    if month is None:
        return None
    try:
        return datetime(year, month, day, hh, mm, ss, tzinfo=UTC)
    except ValueError:
        return None


def parse_http_date(value: str | None) -> datetime | None:
    """Parse an HTTP-date (RFC 1123 / RFC 850 / asctime) to aware UTC; None if invalid."""
    if not value:
        return None
    text = value.strip()
    m = _RFC1123.fullmatch(text)
    if m:
        d, mon, y, hh, mi, ss = m.groups()
        return _make(int(y), mon, int(d), int(hh), int(mi), int(ss))
    m = _RFC850.fullmatch(text)
    if m:
        d, mon, yy, hh, mi, ss = m.groups()
        year = int(yy) + (2000 if int(yy) < 70 else 1900)
        return _make(year, mon, int(d), int(hh), int(mi), int(ss))
    m = _ASCTIME.fullmatch(text)
    if m:
        mon, d, hh, mi, ss, y = m.groups()
        return _make(int(y), mon, int(d), int(hh), int(mi), int(ss))
    return None


def _bare_etag(tag: str) -> str:
    tag = tag.strip()
    if tag[:2] in ("W/", "w/"):
        tag = tag[2:].strip()
    if len(tag) >= 2 and tag[0] == '"' and tag[-1] == '"':
        tag = tag[1:-1]
    return tag


def parse_etag_list(value: str | None) -> tuple[str, ...] | None:
    """``If-Match``/``If-None-Match`` value -> bare ETags (``("*",)`` for any); None if absent."""
    if value is None:
        return None
    tags = tuple(t for t in (_bare_etag(p) for p in value.split(",")) if t)
    return tags


def etag_matches(tags: tuple[str, ...], etag: str) -> bool:
    """Whether the object's ``etag`` (quoted or not) matches one of ``tags`` (or ``*``)."""
    bare = _bare_etag(etag)
    return any(t == "*" or t == bare for t in tags)


def parse_conditions(
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    if_unmodified_since: str | None,
) -> Conditions:
    """Build ``Conditions`` from raw header values (absent headers are None)."""
    return Conditions(
        if_match=parse_etag_list(if_match),
        if_none_match=parse_etag_list(if_none_match),
        if_modified_since=parse_http_date(if_modified_since),
        if_unmodified_since=parse_http_date(if_unmodified_since),
    )


def _seconds(t: datetime) -> datetime:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).replace(microsecond=0)


def evaluate_read(cond: Conditions, etag: str, last_modified: datetime) -> tuple[Outcome, str]:
    """Evaluate read conditions for an existing object: (outcome, failing header name)."""
    modified = _seconds(last_modified)
    if cond.if_match is not None:
        if not etag_matches(cond.if_match, etag):
            return Outcome.PRECONDITION_FAILED, "If-Match"
    elif cond.if_unmodified_since is not None and modified > cond.if_unmodified_since:
        return Outcome.PRECONDITION_FAILED, "If-Unmodified-Since"
    if cond.if_none_match is not None:
        if etag_matches(cond.if_none_match, etag):
            return Outcome.NOT_MODIFIED, "If-None-Match"
    elif cond.if_modified_since is not None and modified <= cond.if_modified_since:
        return Outcome.NOT_MODIFIED, "If-Modified-Since"
    return Outcome.PROCEED, ""


def check_read(
    cond: Conditions,
    etag: str,
    last_modified: datetime,
    not_modified_headers: tuple[tuple[str, str], ...] = (),
) -> None:
    """Raise 412 PreconditionFailed or 304 NotModified (with the given headers) if due."""
    outcome, header = evaluate_read(cond, etag, last_modified)
    if outcome is Outcome.PRECONDITION_FAILED:
        raise S3Error.precondition_failed(header)
    if outcome is Outcome.NOT_MODIFIED:
        raise S3Error.not_modified(not_modified_headers)


_COPY_NAMES = {
    "If-Match": "x-amz-copy-source-If-Match",
    "If-Unmodified-Since": "x-amz-copy-source-If-Unmodified-Since",
    "If-None-Match": "x-amz-copy-source-If-None-Match",
    "If-Modified-Since": "x-amz-copy-source-If-Modified-Since",
}


def check_copy_source(cond: Conditions, etag: str, last_modified: datetime) -> None:
    """Raise 412 PreconditionFailed when copy-source conditions fail (no 304 for copies)."""
    outcome, header = evaluate_read(cond, etag, last_modified)
    if outcome is not Outcome.PROCEED:
        raise S3Error.precondition_failed(_COPY_NAMES[header])


def check_write(cond: WriteConditions, key: str, current_etag: str | None) -> None:
    """Conditional write against the current object (``current_etag`` None if absent).

    Raises:
        S3Error: 412 PreconditionFailed, or 404 NoSuchKey for If-Match on a missing key.
    """
    if cond.if_none_match_any and current_etag is not None:
        raise S3Error.precondition_failed("If-None-Match")
    if cond.if_match is not None:
        if current_etag is None:
            raise S3Error.no_such_key(key)
        if not etag_matches(cond.if_match, current_etag):
            raise S3Error.precondition_failed("If-Match")
