"""Resumable multipart uploads: part layout, the local state file, and resume planning.

State file: ``<state_dir>/<sha256 hex>.json`` where the hash covers the endpoint URL,
bucket, key, the file's absolute path, size and mtime (ns) -- so an edited file (new size
or mtime) never resumes an upload of its old bytes. Content (JSON, version 1)::

    {"version": 1, "upload_id": "...", "part_size": 8388608, "bucket": "b", "key": "k",
     "path": "/abs/file", "size": 123, "mtime_ns": 1700000000000000000}

Written (temp + rename) right after CreateMultipartUpload, removed after
CompleteMultipartUpload. ``plan_resume`` is pure: the parts the server lists are kept only
when their size and ETag (= MD5 of that byte range of the local file) match; every other
part is uploaded again. Must not import boto3.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from blobstore.durable import write_atomic

__all__ = [
    "ListedPart",
    "PartRange",
    "ResumePlan",
    "UploadState",
    "ceil_div",
    "default_state_dir",
    "load_state",
    "plan_parts",
    "plan_resume",
    "remove_state",
    "save_state",
    "state_path",
]

MAX_PARTS = 10_000
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class PartRange:
    """Part ``number`` (1-based) covers bytes ``[offset, offset + size)``."""

    number: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class ListedPart:
    """A part the server already has (from ListParts)."""

    number: int
    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class ResumePlan:
    done: tuple[ListedPart, ...]  # parts to reuse as they are
    todo: tuple[PartRange, ...]  # parts to upload


@dataclass(frozen=True, slots=True)
class UploadState:
    upload_id: str
    part_size: int
    bucket: str
    key: str
    path: str
    size: int
    mtime_ns: int


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def plan_parts(size: int, part_size: int) -> list[PartRange]:
    """Split ``size`` bytes into parts of ``part_size`` (the last one shorter); the part
    size grows (to a multiple of 1 MiB) when ``size`` would need more than 10,000 parts."""
    if part_size <= 0:
        raise ValueError("part size must be positive")
    if ceil_div(size, part_size) > MAX_PARTS:
        mib = 1024 * 1024
        part_size = ceil_div(ceil_div(size, MAX_PARTS), mib) * mib
    ranges = [
        PartRange(i + 1, off, min(part_size, size - off))
        for i, off in enumerate(range(0, size, part_size))
    ]
    return ranges or [PartRange(1, 0, 0)]


def plan_resume(
    parts: Iterable[PartRange],
    listed: Iterable[ListedPart],
    local_md5: Mapping[int, str],
) -> ResumePlan:
    """Which listed parts can be kept (size and ETag match the local bytes) and which parts
    must be uploaded. ``local_md5`` maps part number -> hex MD5 of the local range, for
    (at least) the parts that were listed with the right size."""
    have = {p.number: p for p in listed}
    done: list[ListedPart] = []
    todo: list[PartRange] = []
    for part in parts:
        got = have.get(part.number)
        md5 = local_md5.get(part.number)
        if (
            got is not None
            and got.size == part.size
            and md5 is not None
            and (got.etag.strip('"').lower() == md5.lower())
        ):
            done.append(got)
        else:
            todo.append(part)
    return ResumePlan(tuple(done), tuple(todo))


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$BLOBSTORE_STATE_DIR``, else ``$XDG_STATE_HOME/blobstore/uploads``, else
    ``~/.local/state/blobstore/uploads``."""
    env = os.environ if env is None else env
    if env.get("BLOBSTORE_STATE_DIR"):
        return Path(env["BLOBSTORE_STATE_DIR"])
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else None
    return (base or Path.home() / ".local" / "state") / "blobstore" / "uploads"


def state_path(
    state_dir: Path, endpoint: str, bucket: str, key: str, path: str, size: int, mtime_ns: int
) -> Path:
    ident = json.dumps([endpoint, bucket, key, path, size, mtime_ns])
    return state_dir / f"{hashlib.sha256(ident.encode()).hexdigest()}.json"


def load_state(path: Path) -> UploadState | None:
    """The saved state, or ``None`` when missing or unreadable (then start afresh)."""
    try:
        doc = json.loads(path.read_text())
        if doc.get("version") != STATE_VERSION:
            return None
        return UploadState(
            str(doc["upload_id"]),
            int(doc["part_size"]),
            str(doc["bucket"]),
            str(doc["key"]),
            str(doc["path"]),
            int(doc["size"]),
            int(doc["mtime_ns"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save_state(path: Path, state: UploadState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": STATE_VERSION,
        "upload_id": state.upload_id,
        "part_size": state.part_size,
        "bucket": state.bucket,
        "key": state.key,
        "path": state.path,
        "size": state.size,
        "mtime_ns": state.mtime_ns,
    }
    write_atomic(path, json.dumps(doc).encode())  # a crash leaves the old state or the new


def remove_state(path: Path) -> None:
    path.unlink(missing_ok=True)
