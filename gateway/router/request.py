"""The raw request as the router sees it: headers, limits, decoding and addressing.

Owns: ``Headers`` (case-insensitive, order-preserving multi-map), ``RouterLimits``,
percent-decoding (``pct_decode``), ``parse_query``, the S3 bucket naming rules and
``split_target`` (bucket and key from path-style or virtual-hosted addressing).

Addressing: when a virtual-host ``domain`` is configured and ``Host`` (port stripped,
case-folded) is ``<bucket>.<domain>``, the bucket comes from the host and the whole path
is the key; anything else (IPs, ``localhost``, the bare domain) is path-style
``/<bucket>/<key>``.

Keys are opaque: the raw path (pass ASGI ``scope["raw_path"]`` bytes; a ``str`` is taken
as its UTF-8 encoding) is percent-decoded exactly once and decoded as strict UTF-8, never
normalised (``../``, ``//``, ``+``, spaces and ``%`` survive). A malformed escape or invalid
UTF-8 is 400 InvalidURI. Query strings use form decoding (``+`` is a space).

Pure: raises only ``gateway.errors.S3Error``. Must not import starlette, asyncio or
anything doing I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from gateway.errors import S3Error

__all__ = [
    "DEFAULT_LIMITS",
    "Headers",
    "RouterLimits",
    "as_bytes",
    "is_valid_bucket_name",
    "parse_query",
    "pct_decode",
    "split_target",
]


@dataclass(frozen=True, slots=True)
class RouterLimits:
    max_header_bytes: int = 8 * 1024
    max_metadata_bytes: int = 2 * 1024
    max_key_bytes: int = 1024
    max_object_bytes: int = 5 * 1024**3  # single PutObject
    max_part_bytes: int = 5 * 1024**3


DEFAULT_LIMITS = RouterLimits()


class Headers:
    """Case-insensitive, order-preserving multi-map of request headers."""

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple((str(n), str(v)) for n, v in items)
        index: dict[str, list[str]] = {}
        for name, value in self._items:
            index.setdefault(name.lower(), []).append(value)
        self._index = index

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """From ASGI ``scope["headers"]`` (bytes pairs, decoded as latin-1 like HTTP)."""
        return cls((n.decode("latin-1"), v.decode("latin-1")) for n, v in raw)

    def get(self, name: str) -> str | None:
        """All values of ``name`` joined with ``,`` (RFC 7230), or None when absent."""
        values = self._index.get(name.lower())
        if values is None:
            return None
        return values[0] if len(values) == 1 else ",".join(values)

    def get_all(self, name: str) -> tuple[str, ...]:
        return tuple(self._index.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def items(self) -> tuple[tuple[str, str], ...]:
        return self._items

    def lower_names(self) -> Iterable[str]:
        return self._index.keys()

    @property
    def size_bytes(self) -> int:
        """Approximate size of the header section on the wire (``name: value\\r\\n``)."""
        return sum(len(n) + len(v) + 4 for n, v in self._items)


_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def as_bytes(raw: str | bytes) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")


def pct_decode(raw: bytes, *, plus_is_space: bool) -> str:
    if plus_is_space:
        raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        if _BAD_ESCAPE.search(raw):
            raise S3Error.invalid_uri()
        raw = unquote_to_bytes(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error.invalid_uri() from None


def parse_query(query: str | bytes) -> dict[str, str]:
    """Form-decode a raw query string; the first occurrence of a name wins."""
    result: dict[str, str] = {}
    raw = as_bytes(query)
    if not raw:
        return result
    for part in raw.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        key = pct_decode(name, plus_is_space=True)
        if key not in result:
            result[key] = pct_decode(value, plus_is_space=True)
    return result


_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_RE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")
_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def is_valid_bucket_name(name: str) -> bool:
    """S3 bucket naming rules (the current, strict set)."""
    return (
        _BUCKET_RE.fullmatch(name) is not None
        and ".." not in name
        and ".-" not in name
        and "-." not in name
        and _IPV4_RE.fullmatch(name) is None
        and not name.startswith(_BAD_PREFIXES)
        and not name.endswith(_BAD_SUFFIXES)
    )


def _strip_port(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host  # IPv6 literal: never a virtual host
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name
    return host


def split_target(
    raw_path: bytes, host: str | None, domain: str | None
) -> tuple[str | None, str | None]:
    """(bucket, key) from the addressing style; key None for bucket/service requests."""
    if not raw_path.startswith(b"/"):
        raise S3Error.invalid_uri()
    if domain and host:
        h, d = _strip_port(host), _strip_port(domain).strip(".")
        if d and h.endswith("." + d) and len(h) > len(d) + 1:
            bucket = h[: -len(d) - 1]
            key = pct_decode(raw_path[1:], plus_is_space=False)
            return bucket, key or None
    rest = raw_path[1:]
    if not rest:
        return None, None
    bucket_raw, sep, key_raw = rest.partition(b"/")
    bucket = pct_decode(bucket_raw, plus_is_space=False)
    key = pct_decode(key_raw, plus_is_space=False) if sep else ""
    return bucket, key or None
