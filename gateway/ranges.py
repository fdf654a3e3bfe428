"""HTTP ``Range`` and ``x-amz-copy-source-range`` parsing, as Amazon S3 does it (pure).

Two steps, because the router sees the header before anyone knows the object's size:

1. ``parse_range(header)`` -> ``ByteRangeSpec | None`` (syntax only). ``None`` means
   "serve the whole object with 200": no header, a syntactically invalid header, another
   unit, or several ranges (S3 does not do multipart/byteranges and ignores such a header).
2. ``resolve_range(spec, size)`` -> ``(start, end_inclusive)`` or raises 416
   ``InvalidRange`` (with ``Content-Range: bytes */size``) when unsatisfiable:
   ``first >= size``, or a suffix of length 0, or any range of an empty object
   (RFC 7233 2.1). A ``last`` beyond the end is clamped to ``size - 1``; a suffix longer
   than the object selects the whole object (still a 206).

``x-amz-copy-source-range`` is stricter: it must be exactly ``bytes=first-last`` with
``first <= last`` (else 400 InvalidArgument), and ``last`` must lie inside the source
object (else 400 InvalidArgument "Range specified is not valid for source object").

Must not import starlette or anything doing I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import S3Error

__all__ = [
    "ByteRangeSpec",
    "content_range",
    "parse_copy_source_range",
    "parse_range",
    "resolve_copy_source_range",
    "resolve_range",
]

_RANGE = re.compile(r"[ \t]*bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*", re.IGNORECASE)
_COPY_RANGE = re.compile(r"bytes=([0-9]+)-([0-9]+)")


@dataclass(frozen=True, slots=True)
class ByteRangeSpec:
    """One syntactically valid byte range.

    ``first`` set, ``last`` set: ``first-last``; ``first`` set, ``last`` None: ``first-``;
    ``first`` None: suffix ``-last`` (the final ``last`` bytes).
    """

    first: int | None
    last: int | None

    def __str__(self) -> str:
        first = "" if self.first is None else str(self.first)
        last = "" if self.last is None else str(self.last)
        return f"bytes={first}-{last}"


def parse_range(header: str | None) -> ByteRangeSpec | None:
    """Parse a ``Range`` header; ``None`` when absent, invalid or multi-range (full 200)."""
    if not header:
        return None
    m = _RANGE.fullmatch(header)
    if m is None:
        return None
    first_s, last_s = m.group(1), m.group(2)
    if not first_s and not last_s:
        return None
    if not first_s:
        return ByteRangeSpec(None, int(last_s))
    first = int(first_s)
    if not last_s:
        return ByteRangeSpec(first, None)
    last = int(last_s)
    if last < first:
        return None  # RFC 7233: syntactically invalid, ignore the header
    return ByteRangeSpec(first, last)


def resolve_range(spec: ByteRangeSpec, size: int) -> tuple[int, int]:
    """``(start, end_inclusive)`` of ``spec`` within an object of ``size`` bytes.

    Raises:
        S3Error: 416 InvalidRange when the range is unsatisfiable.
    """
    if spec.first is None:
        n = spec.last or 0
        if n == 0 or size == 0:
            raise S3Error.invalid_range(size, str(spec))
        return (max(0, size - n), size - 1)
    if spec.first >= size:
        raise S3Error.invalid_range(size, str(spec))
    end = size - 1 if spec.last is None else min(spec.last, size - 1)
    return (spec.first, end)


def content_range(start: int, end: int, size: int) -> str:
    """The ``Content-Range`` value of a 206 response."""
    return f"bytes {start}-{end}/{size}"


def parse_copy_source_range(header: str) -> tuple[int, int]:
    """Parse ``x-amz-copy-source-range``: exactly ``bytes=first-last``, ``first <= last``.

    Raises:
        S3Error: 400 InvalidArgument on any other form.
    """
    m = _COPY_RANGE.fullmatch(header.strip())
    if m is None or int(m.group(2)) < int(m.group(1)):
        raise S3Error.invalid_argument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where "
            "first and last are the zero-based offsets of the first and last bytes to copy",
            "x-amz-copy-source-range",
            header,
        )
    return (int(m.group(1)), int(m.group(2)))


def resolve_copy_source_range(first_last: tuple[int, int], size: int) -> tuple[int, int]:
    """Check a parsed copy-source range against the source size; returns it unchanged.

    Raises:
        S3Error: 400 InvalidArgument when ``last`` is beyond the end of the source.
    """
    first, last = first_last
    if last >= size or first > last:
        raise S3Error.invalid_argument(
            f"Range specified is not valid for source object of size: {size}",
            "x-amz-copy-source-range",
            f"bytes={first}-{last}",
        )
    return first_last
