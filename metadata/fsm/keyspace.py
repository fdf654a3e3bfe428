"""How catalog records map to keys of the ordered key-value store.

Byte layout of keys (``+`` is concatenation, ``\\0`` a NUL byte, ``u64``/``u32``/``u16``
big-endian unsigned, text is UTF-8). Bucket names and ids never contain NUL and object keys
are validated NUL-free, so ``\\0`` terminates a component and preserves order: all keys of one
bucket are contiguous, and object keys sort in UTF-8 binary order, as S3 lists them.

    b"b" + bucket                                  -> BucketRecord
    b"B" + owner + \\0 + bucket                     -> b"" (ListBuckets by owner)
    b"o" + bucket + \\0 + key                       -> ObjectRecord (current, not a marker)
    b"v" + bucket + \\0 + key + \\0 + version_id     -> ObjectRecord (noncurrent or marker)
    b"m" + bucket + \\0 + key + \\0 + upload_id      -> UploadRecord
    b"p" + bucket + \\0 + key + \\0 + upload_id + \\0 + u32 part -> PartRecord
    b"c" + chunk_id                                -> ChunkRecord
    b"u" + user                                    -> UserRecord
    b"k" + access_key_id                           -> AccessKeyRecord
    b"K" + user + \\0 + access_key_id               -> b""
    b"s" + u64 server_id                           -> ChunkserverRecord
    b"d" + u64 server_id + chunk_id + \\0 + u16 shard -> ShardDelete
    b"r" + chunk_id + \\0 + u16 shard             -> BadShardRecord (repair input)
    b"h" + u64 server_id                           -> ScrubProgressRecord
    b"f" + chunk_id                                -> ChunkFence (GC fence, see fences.py)
    b"F" + u64 fenced_ms + chunk_id                -> b"" (fence expiry order)
    b"g" + chunk_id + \\0 + u16 shard + u64 server_id -> ShardFence (GC shard fence)
    b"G" + u64 fenced_ms + chunk_id + \\0 + u16 shard + u64 server_id -> b"" (expiry order)
    b"x" + client_id                               -> SessionRecord
    b"X" + u64 last_active_ms + client_id          -> b"" (session expiry order)
    b"e"                                           -> ErasureProfile
    b"z"                                           -> MetaRecord

Pure: stdlib only.
"""

from __future__ import annotations

__all__ = [
    "ACCESS_KEY",
    "BAD_SHARD",
    "BUCKET",
    "BUCKET_BY_OWNER",
    "CHUNK",
    "CHUNKSERVER",
    "DELETE_QUEUE",
    "FENCE",
    "FENCE_BY_TIME",
    "META",
    "OBJECT",
    "PART",
    "PROFILE",
    "SCRUB",
    "SESSION",
    "SESSION_BY_TIME",
    "SHARD_FENCE",
    "SHARD_FENCE_BY_TIME",
    "UPLOAD",
    "USER",
    "USER_KEYS",
    "VERSION",
    "bad_shard_key",
    "bucket_prefix",
    "delete_key",
    "join",
    "object_key",
    "part_key",
    "u16",
    "u32",
    "u64",
    "upload_key",
    "version_key",
]

BUCKET = b"b"
BUCKET_BY_OWNER = b"B"
OBJECT = b"o"
VERSION = b"v"
UPLOAD = b"m"
PART = b"p"
CHUNK = b"c"
USER = b"u"
ACCESS_KEY = b"k"
USER_KEYS = b"K"
CHUNKSERVER = b"s"
DELETE_QUEUE = b"d"
BAD_SHARD = b"r"
SCRUB = b"h"
FENCE = b"f"
FENCE_BY_TIME = b"F"
SHARD_FENCE = b"g"
SHARD_FENCE_BY_TIME = b"G"
SESSION = b"x"
SESSION_BY_TIME = b"X"
PROFILE = b"e"
META = b"z"


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def join(*parts: str) -> bytes:
    """NUL-joined UTF-8 components."""
    return b"\0".join(p.encode("utf-8") for p in parts)


def bucket_prefix(table: bytes, bucket: str) -> bytes:
    """Prefix of all keys of ``bucket`` in a per-bucket table."""
    return table + bucket.encode("utf-8") + b"\0"


def object_key(bucket: str, key: str) -> bytes:
    return OBJECT + bucket.encode("utf-8") + b"\0" + key.encode("utf-8")


def version_key(bucket: str, key: str, version_id: str) -> bytes:
    return VERSION + join(bucket, key, version_id)


def upload_key(bucket: str, key: str, upload_id: str) -> bytes:
    return UPLOAD + join(bucket, key, upload_id)


def part_key(bucket: str, key: str, upload_id: str, part_number: int) -> bytes:
    return PART + join(bucket, key, upload_id) + b"\0" + u32(part_number)


def delete_key(server_id: int, chunk_id: str, shard_index: int) -> bytes:
    return DELETE_QUEUE + u64(server_id) + chunk_id.encode("utf-8") + b"\0" + u16(shard_index)


def bad_shard_key(chunk_id: str, shard_index: int) -> bytes:
    return BAD_SHARD + chunk_id.encode("utf-8") + b"\0" + u16(shard_index)
