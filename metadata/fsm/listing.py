"""ListObjects (v1, v2) and ListMultipartUploads over the ordered KV, in O(page + log n).

Semantics (shared by v1 and v2, checked against a sort-and-scan oracle in the tests):
the *entries* of a listing are the keys starting with ``prefix``, where a key whose rest
(after the prefix) contains ``delimiter`` is replaced by its common prefix (prefix + rest up
to and including the first delimiter), deduplicated, in UTF-8 binary order. A page is the
first ``max_keys`` entries strictly greater than the marker (v1 ``marker``, v2
``start-after`` or the decoded continuation token). ``next_marker`` is the page's last entry
when the listing is truncated; the v2 continuation token is that entry, base64url-encoded
with a version byte.

Cost: one O(log n) seek to start, then one step per returned key. After emitting a common
prefix the scan *jumps* past every key under it (a new seek at the prefix's successor), so
a page costs O(page * log n) however many keys hide under its common prefixes. A marker that
falls inside a common prefix starts after that whole prefix (the prefix sorts before the
marker, so it was already returned).
Pure: stdlib and sibling modules.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from itertools import islice
from typing import cast

from blobstore.errors import InvalidArgument
from metadata.fsm import keyspace as ks
from metadata.fsm.kv import KVReader, prefix_end
from metadata.fsm.records import ObjectRecord, UploadRecord
from metadata.fsm.results import ListObjectsPage, ListUploadsPage, ObjectSummary, UploadSummary

__all__ = [
    "MAX_KEYS",
    "decode_continuation_token",
    "encode_continuation_token",
    "list_multipart_uploads",
    "list_objects",
    "list_objects_v2",
]

MAX_KEYS = 1000
_TOKEN_VERSION = b"\x01"


def encode_continuation_token(entry: str) -> str:
    """Opaque v2 token resuming after ``entry``."""
    return base64.urlsafe_b64encode(_TOKEN_VERSION + entry.encode("utf-8")).decode("ascii")


def decode_continuation_token(token: str) -> str:
    """The entry a v2 token resumes after; InvalidArgument if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
        if not raw.startswith(_TOKEN_VERSION):
            raise ValueError("bad token version")
        return raw[1:].decode("utf-8")
    except (ValueError, UnicodeError, binascii.Error) as e:
        raise InvalidArgument(
            "The continuation token provided is incorrect", code="InvalidArgument"
        ) from e


def _start(
    base: bytes, prefix: bytes, delim: bytes, after: bytes | None, succ: bytes = b"\0"
) -> bytes:
    """Seek position of the first entry > ``after``. ``base + after + succ`` is the
    smallest KV key past ``after`` (``\\0`` for the objects table whose keys are NUL-free;
    ``\\1`` for the uploads table, where ``after + \\0 + upload_id`` must be skipped)."""
    start = base + prefix
    if after is None:
        return start
    start = max(start, base + after + succ)
    if delim and after.startswith(prefix):
        i = after.find(delim, len(prefix))
        if i >= 0:  # the marker's common prefix was already listed: skip all of it
            skip = prefix_end(base + after[: i + len(delim)])
            if skip is not None:
                start = max(start, skip)
    return start


def _entries(
    kv: KVReader, base: bytes, prefix: bytes, delim: bytes, start: bytes, cut_nul: bool
) -> Iterator[tuple[bytes, bytes, object | None]]:
    """Yield ``(entry, kv_key, value)``; value None marks a common prefix. With
    ``cut_nul`` the listed name is the key part up to the first NUL (uploads table)."""
    end = prefix_end(base + prefix)
    pos: bytes | None = start
    skip = len(base)
    while pos is not None and (end is None or pos < end):
        for k, v in kv.scan(pos, end):
            name = k[skip:]
            if cut_nul:
                name = name[: name.index(b"\0")]
            if delim:
                i = name.find(delim, len(prefix))
                if i >= 0:
                    cp = name[: i + len(delim)]
                    yield cp, k, None
                    pos = prefix_end(base + cp)
                    break
            yield name, k, v
        else:
            return


def _clamp(max_keys: int) -> int:
    if not isinstance(max_keys, int) or max_keys < 0:
        raise InvalidArgument("max-keys must be a non-negative integer")
    return min(max_keys, MAX_KEYS)


def _page(
    kv: KVReader,
    bucket: str,
    prefix: str,
    delimiter: str,
    after: str | None,
    max_keys: int,
    v2: bool,
) -> ListObjectsPage:
    limit = _clamp(max_keys)
    if "\0" in prefix or limit == 0:
        return ListObjectsPage((), (), False, None, None)
    base = ks.bucket_prefix(ks.OBJECT, bucket)
    p, d = prefix.encode("utf-8"), delimiter.encode("utf-8")
    a = None if after is None else after.encode("utf-8")
    got = list(islice(_entries(kv, base, p, d, _start(base, p, d, a), False), limit + 1))
    truncated = len(got) > limit
    got = got[:limit]
    contents: list[ObjectSummary] = []
    prefixes: list[str] = []
    for name, _k, v in got:
        if v is None:
            prefixes.append(name.decode("utf-8"))
        else:
            rec = cast(ObjectRecord, v)
            contents.append(
                ObjectSummary(
                    name.decode("utf-8"),
                    rec.size,
                    rec.etag,
                    rec.last_modified_ms,
                    rec.headers.storage_class,
                    rec.owner,
                )
            )
    last = got[-1][0].decode("utf-8") if truncated and got else None
    token = encode_continuation_token(last) if v2 and last is not None else None
    return ListObjectsPage(tuple(contents), tuple(prefixes), truncated, last, token)


def list_objects(
    kv: KVReader,
    bucket: str,
    *,
    prefix: str = "",
    delimiter: str = "",
    marker: str = "",
    max_keys: int = MAX_KEYS,
) -> ListObjectsPage:
    """ListObjects (v1). The caller has checked that the bucket exists."""
    return _page(kv, bucket, prefix, delimiter, marker or None, max_keys, v2=False)


def list_objects_v2(
    kv: KVReader,
    bucket: str,
    *,
    prefix: str = "",
    delimiter: str = "",
    start_after: str = "",
    continuation_token: str | None = None,
    max_keys: int = MAX_KEYS,
) -> ListObjectsPage:
    """ListObjectsV2; a continuation token takes precedence over ``start_after``."""
    after = start_after or None
    if continuation_token is not None:
        after = decode_continuation_token(continuation_token)
    return _page(kv, bucket, prefix, delimiter, after, max_keys, v2=True)


def list_multipart_uploads(
    kv: KVReader,
    bucket: str,
    *,
    prefix: str = "",
    delimiter: str = "",
    key_marker: str = "",
    upload_id_marker: str = "",
    max_uploads: int = MAX_KEYS,
) -> ListUploadsPage:
    """ListMultipartUploads: by key, then upload id, with S3's two markers."""
    limit = _clamp(max_uploads)
    if "\0" in prefix + key_marker + upload_id_marker or limit == 0:
        return ListUploadsPage((), (), False, None, None)
    base = ks.bucket_prefix(ks.UPLOAD, bucket)
    p, d = prefix.encode("utf-8"), delimiter.encode("utf-8")
    km = key_marker.encode("utf-8")
    if not key_marker:
        start = base + p
    elif upload_id_marker and not (d and km.startswith(p) and km.find(d, len(p)) >= 0):
        # uploads of key_marker after upload_id_marker, then later keys
        after_upload = base + km + b"\0" + upload_id_marker.encode("utf-8") + b"\0"
        start = max(base + p, after_upload)
    else:
        start = _start(base, p, d, km, succ=b"\x01")
    got = list(islice(_entries(kv, base, p, d, start, True), limit + 1))
    truncated = len(got) > limit
    got = got[:limit]
    uploads: list[UploadSummary] = []
    prefixes: list[str] = []
    for name, _k, v in got:
        if v is None:
            prefixes.append(name.decode("utf-8"))
        else:
            uploads.append(UploadSummary(name.decode("utf-8"), cast(UploadRecord, v)))
    next_key = next_uid = None
    if truncated and got:
        name, _k, v = got[-1]
        next_key = name.decode("utf-8")
        next_uid = None if v is None else cast(UploadRecord, v).upload_id
    return ListUploadsPage(tuple(uploads), tuple(prefixes), truncated, next_key, next_uid)
