"""Deterministic binary encoding of catalog values (records, commands, results, errors).

Used by snapshots (and usable for log entries). msgpack carries the payload; each catalog
dataclass is a one-entry msgpack *map* ``{tag: [field, ...]}`` where ``tag`` is the class's
stable tag below and the fields follow declaration order (nested values encoded the same
way). Catalog values never contain dicts, so a map always means a dataclass; tuples become
arrays and decode back to tuples (``use_list=False``). A ``BlobstoreError`` is
``{ERROR_TAG: [code, message, [[name, value], ...]]}`` with details sorted by name. Same value
-> same bytes, on every replica. (Maps rather than msgpack ext types: the packer then
recurses in C, ~4x faster than nested ext payloads.)

Tags are part of the durable format: never renumber; append new classes with new tags and
bump ``snapshot.FORMAT_VERSION`` when a field list changes incompatibly (removed, reordered,
or a meaning changed). A field APPENDED with a default needs no bump: bytes written before
it carry fewer fields and decode with the default (``ObjectRecord.part_checksums``,
``BucketRecord.incarnation`` and the commands' ``incarnation`` were added that way; each
default means "as before"). Binaries from before such a field cannot decode values that
carry it (an old replica would skip such an entry as undecodable and diverge), so every
metadata node is upgraded before any proposer (gateway) sends the new field.
Pure: stdlib, msgpack, ``blobstore.errors``/``blobstore.types`` and sibling modules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import msgpack

from blobstore.errors import BlobstoreError, from_wire
from blobstore.types import Address
from metadata.fsm import commands as c
from metadata.fsm import records as r
from metadata.fsm import results as res

__all__ = [
    "ERROR_TAG",
    "TAGS",
    "decode_value",
    "encode_value",
    "make_packer",
    "unpack_hook",
    "unpacker_options",
]

ERROR_TAG = 1
TAGS: dict[type[Any], int] = {
    # records 2..39
    Address: 2,
    r.ShardPlacement: 3,
    r.Chunk: 4,
    r.ChunkRecord: 5,
    r.ObjectHeaders: 6,
    r.CorsRule: 7,
    r.BucketRecord: 8,
    r.ObjectRecord: 9,
    r.UploadRecord: 10,
    r.PartRecord: 11,
    r.UserRecord: 12,
    r.AccessKeyRecord: 13,
    r.ChunkserverRecord: 14,
    r.ShardRef: 15,
    r.ShardDelete: 16,
    r.ErasureProfile: 17,
    r.SessionRecord: 18,
    r.MetaRecord: 19,
    r.BadShardRecord: 20,
    r.ScrubProgressRecord: 21,
    r.ShardFence: 38,  # GC shard fence (#7)
    r.ChunkFence: 39,  # GC fence (#7): the last record tag, away from appended ones
    # commands 40..79
    c.CreateBucket: 40,
    c.DeleteBucket: 41,
    c.PutBucketVersioning: 42,
    c.PutBucketTagging: 43,
    c.PutBucketCors: 44,
    c.PutBucketAcl: 45,
    c.CommitObject: 46,
    c.CopyObject: 47,
    c.DeleteObject: 48,
    c.ObjectIdentifier: 49,
    c.DeleteObjects: 50,
    c.CreateMultipartUpload: 51,
    c.CommitPart: 52,
    c.CompletedPart: 53,
    c.CompleteMultipartUpload: 54,
    c.AbortMultipartUpload: 55,
    c.PutUser: 56,
    c.DeleteUser: 57,
    c.PutAccessKey: 58,
    c.DeleteAccessKey: 59,
    c.RegisterChunkserver: 60,
    c.ChunkserverHeartbeat: 61,
    c.SetChunkserverState: 62,
    c.ShardMove: 63,
    c.UpdatePlacement: 64,
    c.AckShardDeletes: 65,
    c.SetErasureProfile: 66,
    c.Noop: 67,
    c.ClientCommand: 68,
    c.PutObjectTagging: 69,
    c.ReportBadShards: 70,
    c.ClearBadShards: 71,
    c.FenceShards: 78,  # GC shard fence (#7)
    c.FenceChunks: 79,  # GC fence (#7)
    # results 80..119
    res.BucketCreated: 80,
    res.BucketDeleted: 81,
    res.BucketUpdated: 82,
    res.ObjectCommitted: 83,
    res.ObjectDeleted: 84,
    res.DeleteError: 85,
    res.ObjectsDeleted: 86,
    res.UploadCreated: 87,
    res.PartCommitted: 88,
    res.UploadAborted: 89,
    res.UserPut: 90,
    res.UserDeleted: 91,
    res.AccessKeyPut: 92,
    res.AccessKeyDeleted: 93,
    res.ChunkserverUpdated: 94,
    res.PlacementUpdated: 95,
    res.ShardDeletesAcked: 96,
    res.ErasureProfileSet: 97,
    res.NoopApplied: 98,
    res.ObjectTagged: 99,
    res.BadShardsReported: 100,
    res.BadShardsCleared: 101,
    res.ShardsFenced: 118,  # GC shard fence (#7)
    res.ChunksFenced: 119,  # GC fence (#7)
    # query answers 120..159 (they cross the wire from the metadata service, never the log)
    res.ObjectInfo: 120,
    res.ObjectSummary: 121,
    res.ListObjectsPage: 122,
    res.VersionSummary: 123,
    res.ListVersionsPage: 124,
    res.UploadSummary: 125,
    res.ListUploadsPage: 126,
    res.ListPartsPage: 127,
    res.DeleteQueuePage: 128,
    res.RedundancySummary: 129,
    res.RepairStatus: 130,
    # GC query answers 136..142
    res.PlacedShardsPage: 136,
    # console query answers 143..149
    res.BucketUsage: 143,
    res.AccessKeySummary: 144,
}
_CLASSES: dict[int, type[Any]] = {tag: cls for cls, tag in TAGS.items()}
if len(_CLASSES) != len(TAGS) or ERROR_TAG in _CLASSES:
    raise RuntimeError("codec tags must be unique")


def _getter(cls: type[Any]) -> Callable[[Any], tuple[Any, ...]]:
    names = [f.name for f in dataclasses.fields(cls)]
    if not names:
        return lambda _obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)


_GETTERS: dict[type[Any], tuple[int, Callable[[Any], tuple[Any, ...]]]] = {
    cls: (tag, _getter(cls)) for cls, tag in TAGS.items()
}


def _default(obj: object) -> dict[int, tuple[Any, ...]]:
    entry = _GETTERS.get(type(obj))
    if entry is not None:
        tag, get = entry
        return {tag: get(obj)}
    if isinstance(obj, BlobstoreError):
        return {ERROR_TAG: (obj.code, obj.message, tuple(sorted(obj.details.items())))}
    raise TypeError(f"catalog codec cannot encode {type(obj).__name__}")


def make_packer() -> msgpack.Packer:
    """A packer for catalog values (not thread-safe: one per thread)."""
    return msgpack.Packer(default=_default, use_bin_type=True)


def _pack(value: object) -> bytes:
    return msgpack.packb(value, default=_default, use_bin_type=True)  # type: ignore[no-any-return]


def unpack_hook(pairs: list[tuple[Any, Any]]) -> object:
    """msgpack ``object_pairs_hook`` that rebuilds catalog values from ``{tag: fields}``."""
    try:
        ((code, fields),) = pairs
        return _CLASSES[code](*fields)
    except (KeyError, ValueError, TypeError):
        pass
    if len(pairs) == 1 and pairs[0][0] == ERROR_TAG:
        err_code, message, details = pairs[0][1]
        return from_wire(err_code, message, dict(details))
    raise ValueError(f"not a catalog value: map {pairs!r:.80}")


def unpacker_options() -> dict[str, Any]:
    """Keyword arguments for ``msgpack.unpackb`` / ``Unpacker`` that decode catalog values."""
    return {"object_pairs_hook": unpack_hook, "use_list": False, "raw": False}


def encode_value(value: object) -> bytes:
    """Encode a catalog value (or a plain msgpack value made of them)."""
    return _pack(value)


def decode_value(data: bytes) -> object:
    """Decode bytes produced by ``encode_value``; raises ValueError on malformed input."""
    try:
        return msgpack.unpackb(data, strict_map_key=False, **unpacker_options())
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise ValueError(f"malformed catalog value: {e}") from e
