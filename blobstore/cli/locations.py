"""Where objects and files are: ``s3://`` URLs, remote and local listings, and which
source goes to which destination for ``cp`` and ``sync``.

Naming follows ``aws s3 cp``: a single file copied to ``s3://b/`` or ``s3://b/dir/`` keeps
its base name; a recursive copy of ``dir`` to ``s3://b/p`` puts ``dir/x/y`` at ``p/x/y``
(a prefix is always treated as a directory, ``p`` == ``p/``). Keys that would leave the
destination directory (``..``, absolute, empty path segments) and directory markers
(keys ending in ``/``) are skipped on the way to a local tree. Must not import boto3.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from blobstore.cli.syncplan import PathFilter, SyncEntry, is_selected
from blobstore.cli.transfer import local_etag
from blobstore.errors import ConfigError

__all__ = [
    "Job",
    "RemoteObject",
    "S3Url",
    "dir_prefix",
    "iter_listing",
    "iter_local",
    "iter_objects",
    "join",
    "list_sync_root",
    "parse_s3_url",
    "plan_cp",
    "safe_rel",
    "with_local_etags",
]


@dataclass(frozen=True, slots=True)
class S3Url:
    bucket: str
    key: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, rel: str) -> S3Url:
        return S3Url(self.bucket, self.key + rel)


def parse_s3_url(text: str) -> S3Url:
    """``s3://bucket[/key]``; anything else is a usage error."""
    if not text.startswith("s3://"):
        raise ConfigError(f"{text!r}: expected s3://BUCKET[/KEY]")
    bucket, _, key = text[5:].partition("/")
    if not bucket:
        raise ConfigError(f"{text!r}: no bucket name")
    return S3Url(bucket, key)


def safe_rel(rel: str) -> bool:
    """A key suffix that stays inside the destination directory."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and ".." not in parts and "" not in parts[:-1]


def dir_prefix(key: str) -> str:
    return key if not key or key.endswith("/") else key + "/"


@dataclass(frozen=True, slots=True)
class RemoteObject:
    key: str
    size: int
    last_modified: datetime
    etag: str


def iter_listing(
    client: Any, bucket: str, prefix: str, delimiter: str | None
) -> Iterator[RemoteObject | str]:
    """Objects (and, with a delimiter, common prefixes as ``str``) under ``prefix``."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if delimiter:
        kwargs["Delimiter"] = delimiter
    for page in client.get_paginator("list_objects_v2").paginate(**kwargs):
        for p in page.get("CommonPrefixes", []):
            yield str(p["Prefix"])
        for o in page.get("Contents", []):
            yield RemoteObject(
                str(o["Key"]), int(o["Size"]), o["LastModified"], str(o.get("ETag", "")).strip('"')
            )


def iter_objects(client: Any, bucket: str, prefix: str) -> Iterator[RemoteObject]:
    for item in iter_listing(client, bucket, prefix, None):
        if isinstance(item, RemoteObject):
            yield item


def iter_local(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Regular files under ``root`` as (relative key with '/', path, stat), sorted."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:
                continue
            if path.is_file():
                yield path.relative_to(root).as_posix(), path, st


@dataclass(frozen=True, slots=True)
class Job:
    """One transfer: ``src``/``dst`` are ``S3Url`` or ``Path``."""

    src: S3Url | Path
    dst: S3Url | Path
    size: int | None

    @property
    def op(self) -> str:
        """``upload``, ``download`` or ``copy`` (server-side)."""
        if isinstance(self.src, Path):
            return "upload"
        return "download" if isinstance(self.dst, Path) else "copy"


def _wanted(rel: str, filters: Sequence[PathFilter]) -> bool:
    """A remote key suffix that is safe locally, not a directory marker, and selected."""
    return safe_rel(rel) and not rel.endswith("/") and is_selected(rel, filters)


def plan_cp(
    client: Any,
    src_text: str,
    dst_text: str,
    *,
    recursive: bool,
    filters: Sequence[PathFilter] = (),
) -> list[Job]:
    """The transfers of one ``cp`` (``aws s3 cp`` naming rules; see module doc);
    ``filters`` select the relative keys of a recursive copy."""
    src_s3, dst_s3 = src_text.startswith("s3://"), dst_text.startswith("s3://")
    if not src_s3 and not dst_s3:
        raise ConfigError("cp: one of SRC and DST must be s3://BUCKET/KEY")
    if src_s3 and dst_s3:
        src, dst = parse_s3_url(src_text), parse_s3_url(dst_text)
        if recursive:
            prefix, dprefix = dir_prefix(src.key), dir_prefix(dst.key)
            return [
                Job(
                    S3Url(src.bucket, o.key),
                    S3Url(dst.bucket, dprefix + o.key[len(prefix) :]),
                    o.size,
                )
                for o in iter_objects(client, src.bucket, prefix)
                if _wanted(o.key[len(prefix) :], filters)
            ]
        if not src.key:
            raise ConfigError("cp: SRC needs a key (or --recursive)")
        if not dst.key or dst.key.endswith("/"):
            dst = dst.child(src.key.rsplit("/", 1)[-1])
        return [Job(src, dst, None)]
    if dst_s3:
        dst, local = parse_s3_url(dst_text), Path(src_text)
        if recursive:
            if not local.is_dir():
                raise ConfigError(f"cp --recursive: {local} is not a directory")
            prefix = dir_prefix(dst.key)
            return [
                Job(p, S3Url(dst.bucket, prefix + rel), st.st_size)
                for rel, p, st in iter_local(local)
                if is_selected(rel, filters)
            ]
        if local.is_dir():
            raise ConfigError(f"cp: {local} is a directory (use --recursive)")
        if not local.exists():
            raise ConfigError(f"cp: {local}: no such file")
        if not dst.key or dst.key.endswith("/"):
            dst = dst.child(local.name)
        return [Job(local, dst, local.stat().st_size)]
    src, local = parse_s3_url(src_text), Path(dst_text)
    if recursive:
        prefix = dir_prefix(src.key)
        return [
            Job(S3Url(src.bucket, o.key), local / o.key[len(prefix) :], o.size)
            for o in iter_objects(client, src.bucket, prefix)
            if _wanted(o.key[len(prefix) :], filters)
        ]
    if not src.key:
        raise ConfigError("cp: SRC needs a key (or --recursive)")
    if local.is_dir() or dst_text.endswith(("/", os.sep)):
        local = local / src.key.rsplit("/", 1)[-1]
    return [Job(src, local, None)]


def list_sync_root(
    client: Any, text: str, *, must_exist: bool = False, filters: Sequence[PathFilter] = ()
) -> tuple[S3Url | Path, dict[str, SyncEntry]]:
    """The sync root and its entries by relative key. A missing local directory is empty
    (a destination) or, with ``must_exist`` (a source), a usage error -- so a mistyped
    source never turns ``sync --delete`` into "delete everything"."""
    if text.startswith("s3://"):
        url = parse_s3_url(text)
        prefix = dir_prefix(url.key)
        entries = {
            o.key[len(prefix) :]: SyncEntry(
                o.key[len(prefix) :], o.size, o.last_modified.timestamp(), o.etag
            )
            for o in iter_objects(client, url.bucket, prefix)
            if _wanted(o.key[len(prefix) :], filters)
        }
        return S3Url(url.bucket, prefix), entries
    root = Path(text)
    if must_exist and not root.exists():
        raise ConfigError(f"sync: {root}: no such directory")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"sync: {root} is not a directory")
    local = {
        rel: SyncEntry(rel, st.st_size, st.st_mtime)
        for rel, _, st in iter_local(root)
        if is_selected(rel, filters)
    }
    return root, local


def with_local_etags(
    root: Path, local: dict[str, SyncEntry], remote: dict[str, SyncEntry], part_size: int
) -> dict[str, SyncEntry]:
    """Local entries with an ETag in the form of the matching remote entry, where sizes
    match (the only case where a checksum decides)."""
    out = dict(local)
    for key, e in local.items():
        r = remote.get(key)
        if r is not None and r.size == e.size and r.etag:
            etag = local_etag(root / key, r.etag, e.size, part_size)
            out[key] = SyncEntry(e.key, e.size, e.mtime_s, etag)
    return out


def join(root: S3Url | Path, rel: str) -> S3Url | Path:
    return root.child(rel) if isinstance(root, S3Url) else root / rel
