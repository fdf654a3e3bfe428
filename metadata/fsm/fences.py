"""Chunk fences: the catalog's half of safe orphan-shard garbage collection.

The problem. A write is prepare (shards written to chunkservers) then commit (one catalog
command names the chunks). Between the two, the shards exist and no catalog record names
them, exactly like the shards of a failed or abandoned write. A chunkserver's GC removes
shards no record names once they are older than a grace period; without a fence, a writer
whose prepare->commit took longer than that grace period would commit an object whose
shards GC had already deleted (silent data loss). The fence turns that race into a clean,
retryable failure of the slow write.

The protocol.

1. Before deleting the shard files of chunk ids it believes orphaned, a chunkserver's GC
   proposes ``FenceChunks(chunk_ids)`` (both textual forms of each UUID).
2. Applying it, atomically in log order: every id that some object version or multipart
   part references -- that is, that has a ``ChunkRecord`` (the chunk table is refcounted
   and holds exactly the chunks at least one version or part names; the catalog keeps no
   record of writes still in prepare, which is precisely what a fence is for) -- is
   answered *live*. Every other id gets a ``ChunkFence`` record (or keeps the one it has)
   and is answered *fenced*.
3. ``CommitObject`` (PutObject, console uploads) and ``CommitPart`` (UploadPart, and
   UploadPartCopy, which writes fresh chunks) are the only commands that add chunk ids to
   the chunk table; ``CopyObject``, ``CompleteMultipartUpload`` and ``UpdatePlacement``
   only name chunks already in it. Those two fail with ``ChunkFenced`` if any chunk they
   name is fenced, before any other check or effect (``commit_error``, called first by
   ``apply_command``). Nothing is half-committed; the gateway discards the write's shards
   and answers 503 SlowDown, and the client retries under fresh chunk ids.
4. GC deletes only the files of ids answered fenced.

Invariant: a fenced id never has a ``ChunkRecord`` (fences are only laid on ids without
one, and the only commands that create chunk records refuse fenced ids). Hence, by Raft's
total order, either the commit applied first (the id is live, GC keeps the files) or the
fence did (the commit fails): GC never deletes a shard of a committed chunk, whatever the
writer's speed, and the grace period becomes a cost knob (how long stray shards stay) rather
than a safety bound.

Expiry. Fences would otherwise accumulate forever. ``FenceChunks`` first purges, in
``fenced_ms`` order through the ``FENCE_BY_TIME`` index, fences older than ``FENCE_TTL_MS``
(7 days of catalog time: the high-water mark of proposer timestamps, so every replica purges
the same records), at most ``max(PURGE_MIN, 2 x ids)`` per command so one apply never stalls.
The purge runs only inside ``FenceChunks``; with no GC running no fences are added either.
Why expiry is safe: a chunk id is a fresh uuid4 drawn by the writer for one chunk of one
write attempt, never reused by any other write, so once a fence exists only that very writer
could ever name the id. That writer wrote the shard at least ``grace`` before the fence and
had not committed when the fence was laid; after ``FENCE_TTL_MS`` more it could only commit
if a single write's prepare->commit took longer than grace + 7 days -- far beyond every
request and catalog deadline of the gateway (and such a commit would otherwise only have
been possible with a paused process). Within the TTL, a fenced id is refused
unconditionally. A fence still present after its TTL (purge backlog) keeps refusing: a
record present always means refused, so purge timing never affects safety.

Keyspace: ``f`` + chunk id -> ``ChunkFence``; ``F`` + u64 fenced_ms + chunk id -> b"".
Pure: stdlib, ``blobstore.errors`` and sibling modules.
"""

from __future__ import annotations

from typing import cast

from blobstore.errors import ChunkFenced, InvalidArgument
from metadata.fsm import keyspace as ks
from metadata.fsm.commands import CommitObject, CommitPart, FenceChunks
from metadata.fsm.kv import KVReader, OrderedKV
from metadata.fsm.records import Chunk, ChunkFence
from metadata.fsm.results import ChunksFenced, Result

__all__ = [
    "FENCE_TTL_MS",
    "MAX_FENCE_IDS",
    "PURGE_MIN",
    "commit_error",
    "fence_chunks",
    "get_fence",
    "purge_expired",
]

FENCE_TTL_MS = 7 * 24 * 3600 * 1000
MAX_FENCE_IDS = 2048  # ids per FenceChunks (GC sends two textual forms per chunk)
PURGE_MIN = 64  # expired fences each FenceChunks may purge, at least


def _fence_key(chunk_id: str) -> bytes:
    return ks.FENCE + chunk_id.encode("utf-8")


def _time_key(fenced_ms: int, chunk_id: str) -> bytes:
    return ks.FENCE_BY_TIME + ks.u64(fenced_ms) + chunk_id.encode("utf-8")


def get_fence(kv: KVReader, chunk_id: str) -> ChunkFence | None:
    """The fence on ``chunk_id``, or None."""
    return cast(ChunkFence | None, kv.get(_fence_key(chunk_id)))


def _ids_error(ids: object) -> str | None:
    if not isinstance(ids, tuple) or not 1 <= len(ids) <= MAX_FENCE_IDS:
        return f"FenceChunks needs 1..{MAX_FENCE_IDS} chunk ids"
    for cid in ids:
        if not isinstance(cid, str) or not cid or "\0" in cid or len(cid) > 128:
            return "chunk id must be 1..128 characters without NUL"
    return None


def purge_expired(kv: OrderedKV, now_ms: int, limit: int) -> int:
    """Drop up to ``limit`` fences laid before ``now_ms - FENCE_TTL_MS``, oldest first."""
    cutoff = now_ms - FENCE_TTL_MS
    if cutoff <= 0 or limit <= 0:
        return 0
    stale: list[bytes] = []
    for k, _ in kv.scan(ks.FENCE_BY_TIME, ks.FENCE_BY_TIME + ks.u64(cutoff)):
        stale.append(k)
        if len(stale) >= limit:
            break
    for k in stale:
        kv.delete(k)
        kv.delete(ks.FENCE + k[len(ks.FENCE_BY_TIME) + 8 :])
    return len(stale)


def fence_chunks(kv: OrderedKV, cmd: FenceChunks, now_ms: int) -> Result:
    """Fence every unreferenced id of ``cmd``; answer which ids are fenced and which live."""
    why = _ids_error(cmd.chunk_ids)
    if why:
        return InvalidArgument(why)
    if not isinstance(cmd.server_id, int) or not 0 <= cmd.server_id < 1 << 64:
        return InvalidArgument("server id out of range")
    ids = tuple(dict.fromkeys(cmd.chunk_ids))
    purged = purge_expired(kv, now_ms, max(PURGE_MIN, 2 * len(ids)))
    fenced: list[str] = []
    live: list[str] = []
    for cid in ids:
        if kv.get(ks.CHUNK + cid.encode("utf-8")) is not None:
            live.append(cid)
            continue
        if get_fence(kv, cid) is None:  # an existing fence keeps its original time
            kv.put(_fence_key(cid), ChunkFence(cid, now_ms, cmd.server_id))
            kv.put(_time_key(now_ms, cid), b"")
        fenced.append(cid)
    return ChunksFenced(tuple(fenced), tuple(live), purged)


def commit_error(kv: KVReader, command: object) -> ChunkFenced | None:
    """``ChunkFenced`` if ``command`` would register a fenced chunk id, else None.

    Malformed chunk lists are left to the command's own validation."""
    if not isinstance(command, CommitObject | CommitPart) or not isinstance(command.chunks, tuple):
        return None
    for c in command.chunks:
        if type(c) is not Chunk or not isinstance(c.chunk_id, str):
            continue
        if get_fence(kv, c.chunk_id) is not None:
            return ChunkFenced(
                f"chunk {c.chunk_id!r} was fenced by garbage collection (write too slow)",
                chunk_id=c.chunk_id,
                bucket=str(command.bucket),
                key=str(command.key),
            )
    return None
