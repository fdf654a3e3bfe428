"""Sync planning: a source listing and a destination listing in, actions out (pure).

Entries are keyed by their path relative to the sync root, always with ``/`` separators.
Rules (``aws s3 sync`` semantics, compared at whole seconds because S3 ``LastModified``
has second resolution):

* missing at the destination -> ``copy`` (reason ``new``);
* different size -> ``copy`` (``size``);
* ``checksum`` mode with both content hashes known -> ``copy`` iff they differ
  (``checksum``), else equal -> nothing;
* otherwise (``size-mtime``, or a hash unknown) -> ``copy`` iff the source is newer than
  the destination (``newer``). Downloads set the local mtime to ``LastModified`` and an
  upload makes ``LastModified`` at least the local mtime, so a second sync does nothing;
* with ``delete``, destination entries missing at the source -> ``delete``.

Actions come out sorted by key (copies and deletes interleaved). ``--exclude``/
``--include`` filters (``PathFilter``) select relative keys before planning, with
``aws s3`` semantics: every key starts included, filters apply in command-line order and
the last matching one wins; patterns are ``fnmatch`` globs over the whole relative key
(``*`` also matches ``/``). No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase

__all__ = ["Compare", "PathFilter", "SyncAction", "SyncEntry", "is_selected", "plan_sync"]


class Compare(Enum):
    SIZE_MTIME = "size-mtime"
    CHECKSUM = "checksum"


@dataclass(frozen=True, slots=True)
class SyncEntry:
    """One file or object: relative key, size, mtime (epoch seconds) and, when known, a
    content hash in S3 ETag form (plain MD5 hex or ``md5-of-md5s-N``)."""

    key: str
    size: int
    mtime_s: float
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class SyncAction:
    kind: str  # "copy" | "delete"
    key: str
    reason: str  # new | size | checksum | newer | deleted
    size: int = 0


@dataclass(frozen=True, slots=True)
class PathFilter:
    include: bool
    pattern: str


def is_selected(rel: str, filters: Iterable[PathFilter]) -> bool:
    """Whether the relative key survives ``filters`` (last match wins; default: yes)."""
    selected = True
    for f in filters:
        if fnmatchcase(rel, f.pattern):
            selected = f.include
    return selected


def _needs_copy(src: SyncEntry, dst: SyncEntry, compare: Compare) -> str | None:
    if src.size != dst.size:
        return "size"
    if compare is Compare.CHECKSUM and src.etag is not None and dst.etag is not None:
        return "checksum" if src.etag.strip('"') != dst.etag.strip('"') else None
    if math.floor(src.mtime_s) > math.floor(dst.mtime_s):
        return "newer"
    return None


def plan_sync(
    source: Iterable[SyncEntry],
    dest: Iterable[SyncEntry],
    *,
    compare: Compare = Compare.SIZE_MTIME,
    delete: bool = False,
) -> list[SyncAction]:
    """The actions that make ``dest`` match ``source`` (see module doc)."""
    src = {e.key: e for e in source}
    dst = {e.key: e for e in dest}
    actions: list[SyncAction] = []
    for key in sorted(src.keys() | (dst.keys() if delete else set())):
        s, d = src.get(key), dst.get(key)
        if s is None:
            assert d is not None
            actions.append(SyncAction("delete", key, "deleted", d.size))
        elif d is None:
            actions.append(SyncAction("copy", key, "new", s.size))
        else:
            reason = _needs_copy(s, d, compare)
            if reason is not None:
                actions.append(SyncAction("copy", key, reason, s.size))
    return actions
