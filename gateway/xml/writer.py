"""Shared pieces of every S3 XML response: escaping, timestamps, ETags, elements, documents.

Owns: ``NS`` and the XML declaration, ``escape`` (characters XML 1.0 cannot carry are
written as character references), ``format_timestamp`` (ISO-8601 UTC with milliseconds,
``2026-11-26T09:10:44.000Z``), ETag quoting, ``url_field`` (``encoding-type=url``:
percent-encoding with ``/`` kept) and the element / document builders.

Invariants: documents are UTF-8 bytes with an XML declaration and the S3 namespace
``http://s3.amazonaws.com/doc/2006-03-01/`` on the root; all text goes through ``escape``.

Pure: imports only the stdlib, ``gateway.operations`` and ``gateway.xml.values``. Must not
import starlette or anything doing I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote

from gateway import operations as op
from gateway.xml.values import Owner

__all__ = [
    "DECL",
    "NS",
    "bare_etag",
    "checksums_el",
    "document",
    "el",
    "escape",
    "format_timestamp",
    "owner_el",
    "quote_etag",
    "url_field",
    "xml_bool",
]

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


_NEEDS_ESCAPE = re.compile(r"[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]")
_ESCAPES: dict[int, str] = {c: f"&#x{c:X};" for c in range(0x20) if c not in (0x09, 0x0A)}
_ESCAPES.update({ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;"})
_ESCAPES.update({0xFFFE: "&#xFFFE;", 0xFFFF: "&#xFFFF;"})


def escape(text: str) -> str:
    """Escape text content (fast path when nothing needs escaping)."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return text.translate(_ESCAPES)


def format_timestamp(t: datetime) -> str:
    """``2026-11-26T09:10:44.000Z`` (naive datetimes are taken as UTC)."""
    if t.tzinfo is not None:
        if t.utcoffset():
            t = t.astimezone(UTC)
        t = t.replace(tzinfo=None)
    return t.isoformat(timespec="milliseconds") + "Z"


def quote_etag(etag: str) -> str:
    """Return the ETag with exactly one pair of surrounding double quotes."""
    return f'"{etag.strip().strip(chr(34))}"'


def bare_etag(etag: str) -> str:
    return etag.strip().strip('"')


def url_field(value: str, encode: bool) -> str:
    return quote(value, safe="/") if encode else value


def el(name: str, value: str) -> str:
    return f"<{name}>{escape(value)}</{name}>"


def xml_bool(value: bool) -> str:
    return "true" if value else "false"


def document(root: str, body: Sequence[str]) -> bytes:
    return (DECL + f'<{root} xmlns="{NS}">' + "".join(body) + f"</{root}>").encode(
        "utf-8", "surrogatepass"
    )


def owner_el(tag: str, owner: Owner) -> str:
    name = f"<DisplayName>{escape(owner.display_name)}</DisplayName>" if owner.display_name else ""
    return f"<{tag}><ID>{escape(owner.id)}</ID>{name}</{tag}>"


def checksums_el(checksums: Sequence[op.ChecksumHeader]) -> str:
    return "".join(el(f"Checksum{c.algorithm}", c.value) for c in checksums)
