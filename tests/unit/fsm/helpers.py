"""Test helpers for the catalog: a driver that wraps commands in envelopes."""

from __future__ import annotations

import hashlib

from metadata.fsm.apply import ApplyConfig
from metadata.fsm.commands import ClientCommand, Command, CommitObject, CommitPart
from metadata.fsm.records import DEFAULT_HEADERS, Chunk, ObjectHeaders, ShardPlacement
from metadata.fsm.results import Result
from metadata.fsm.state import Catalog

__all__ = ["Driver", "chunk", "md5", "obj", "part"]


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class Driver:
    """Applies commands as one client with increasing seq and a settable clock."""

    def __init__(self, catalog: Catalog | None = None, client: str = "gw-1") -> None:
        self.cat = catalog or Catalog(config=ApplyConfig(min_part_size_bytes=10))
        self.client = client
        self.seq = 0
        self.now_ms = 1_000

    def __call__(self, cmd: Command, *, now_ms: int | None = None) -> Result:
        self.seq += 1
        if now_ms is not None:
            self.now_ms = now_ms
        return self.cat.apply(ClientCommand(self.client, self.seq, self.now_ms, cmd))


_ids = iter(range(1, 1 << 60))


def chunk(length: int, servers: tuple[int, ...] = (1, 2, 3, 4, 5, 6), cid: str = "") -> Chunk:
    cid = cid or f"chunk-{next(_ids)}"
    shards = tuple(ShardPlacement(s, i, f"h{i}") for i, s in enumerate(servers))
    return Chunk(cid, "zfec", 4, 2, 1 << 20, length, shards)


def obj(
    bucket: str,
    key: str,
    data: bytes = b"",
    *,
    chunked: bool = False,
    version_id: str = "",
    headers: ObjectHeaders = DEFAULT_HEADERS,
    if_match: str | None = None,
    if_none_match: bool = False,
) -> CommitObject:
    """A CommitObject of ``data``, inline or as one fresh chunk."""
    version = version_id or f"v{next(_ids)}"
    return CommitObject(
        bucket,
        key,
        version,
        "alice",
        len(data),
        md5(data),
        headers=headers,
        chunks=(chunk(len(data)),) if chunked else (),
        inline_data=None if chunked else data,
        if_match=if_match,
        if_none_match=if_none_match,
    )


def part(bucket: str, key: str, upload_id: str, number: int, data: bytes) -> CommitPart:
    return CommitPart(bucket, key, upload_id, number, len(data), md5(data), (chunk(len(data)),))
