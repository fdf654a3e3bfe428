"""ListObjectVersions: every version and delete marker of a bucket, in key order.

A key's versions live in two tables (the current version under ``o``, noncurrent versions
and delete markers under ``v``, see keyspace.py); the listing walks the *union* of their key
names in UTF-8 order with one O(log n) seek per key in each table, jumping over common
prefixes as ``listing.py`` does. Within a key, versions are listed newest first (by the
catalog-wide version sequence); the first is ``is_latest``. A common prefix counts as one
entry, each version as one. Markers: ``key_marker`` alone resumes after that key;
with ``version_id_marker`` it resumes after that version of ``key_marker``.
Cost: O(page x (versions per key + log n)).
Pure: stdlib and sibling modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from metadata.fsm import keyspace as ks
from metadata.fsm.kv import KVReader, prefix_end
from metadata.fsm.listing import MAX_KEYS
from metadata.fsm.objects import current
from metadata.fsm.records import ObjectRecord
from metadata.fsm.results import ListVersionsPage, VersionSummary

__all__ = ["list_object_versions"]


def _first_name(
    kv: KVReader, base: bytes, pos: bytes, end: bytes | None, cut: bool
) -> bytes | None:
    for k, _ in kv.scan(base + pos, end):
        name = k[len(base) :]
        return name[: name.index(b"\0")] if cut else name
    return None


def _names(
    kv: KVReader, bucket: str, prefix: bytes, delim: bytes, pos: bytes | None
) -> Iterator[tuple[bytes, bool]]:
    """Distinct key names (or common prefixes, flagged True) >= ``pos`` in order."""
    bo, bv = ks.bucket_prefix(ks.OBJECT, bucket), ks.bucket_prefix(ks.VERSION, bucket)
    end_o, end_v = prefix_end(bo + prefix), prefix_end(bv + prefix)
    while pos is not None:
        found = [
            n
            for n in (
                _first_name(kv, bo, pos, end_o, False),
                _first_name(kv, bv, pos, end_v, True),
            )
            if n is not None
        ]
        if not found:
            return
        name = min(found)
        i = name.find(delim, len(prefix)) if delim else -1
        if i >= 0:
            cp = name[: i + len(delim)]
            yield cp, True
            pos = prefix_end(cp)
        else:
            yield name, False
            pos = name + b"\x01"  # past the key and all its versions (keys are NUL-free)


def _versions(kv: KVReader, bucket: str, key: str) -> list[ObjectRecord]:
    lo = ks.VERSION + ks.join(bucket, key) + b"\0"
    found = [cast(ObjectRecord, v) for _, v in kv.scan(lo, prefix_end(lo))]
    cur = current(kv, bucket, key)
    if cur is not None:
        found.append(cur)
    found.sort(key=lambda r: r.seq, reverse=True)
    return found


def list_object_versions(
    kv: KVReader,
    bucket: str,
    *,
    prefix: str = "",
    delimiter: str = "",
    key_marker: str = "",
    version_id_marker: str = "",
    max_keys: int = MAX_KEYS,
) -> ListVersionsPage:
    """ListObjectVersions. The caller has checked that the bucket exists."""
    limit = min(max(0, max_keys), MAX_KEYS)
    if "\0" in prefix + key_marker + version_id_marker or limit == 0:
        return ListVersionsPage((), (), False, None, None)
    p, d = prefix.encode("utf-8"), delimiter.encode("utf-8")
    km = key_marker.encode("utf-8")
    pos: bytes | None = p
    resume_after: str | None = None
    if key_marker:
        i = km.find(d, len(p)) if d and km.startswith(p) else -1
        if i >= 0:  # the marker's common prefix was listed already
            pos = max(p, prefix_end(km[: i + len(d)]) or b"\xff" * 8)
        elif version_id_marker:
            pos, resume_after = max(p, km), version_id_marker
        else:
            pos = max(p, km + b"\x01")
    out: list[VersionSummary | str] = []
    truncated = False
    for name, is_cp in _names(kv, bucket, p, d, pos):
        if is_cp:
            if len(out) == limit:
                truncated = True
                break
            out.append(name.decode("utf-8"))
            continue
        key = name.decode("utf-8")
        versions = _versions(kv, bucket, key)
        latest = versions[0].version_id if versions else None
        if resume_after is not None and key == key_marker:
            ids = [v.version_id for v in versions]
            versions = versions[ids.index(resume_after) + 1 :] if resume_after in ids else []
        for v in versions:
            if len(out) == limit:
                truncated = True
                break
            out.append(
                VersionSummary(
                    key,
                    v.version_id,
                    v.version_id == latest,
                    v.is_delete_marker,
                    v.size,
                    v.etag,
                    v.last_modified_ms,
                    v.headers.storage_class,
                    v.owner,
                )
            )
        if truncated:
            break
    entries = tuple(e for e in out if isinstance(e, VersionSummary))
    prefixes = tuple(e for e in out if isinstance(e, str))
    next_key = next_vid = None
    if truncated and out:
        last = out[-1]
        next_key = last if isinstance(last, str) else last.key
        next_vid = None if isinstance(last, str) else last.version_id
    return ListVersionsPage(entries, prefixes, truncated, next_key, next_vid)
