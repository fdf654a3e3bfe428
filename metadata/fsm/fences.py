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

Shard fences: the same race for a copy of a *referenced* chunk. Repair rebuilds shard i of
chunk C onto server S, then commits ``UpdatePlacement``; until that commit the rebuilt file
is a copy the catalog does not place on S, like a stray copy left by an earlier repair that
lost. GC on S deletes such copies once they are older than the grace period. Without a
fence, a repair whose rebuild->commit took longer than that could commit a placement onto a
file GC had just deleted.

1. Before deleting copies of referenced chunks, GC proposes ``FenceShards(refs)``. Applying
   it, a copy the chunk's record places on its server is answered *placed* (keep); every
   other copy gets a ``ShardFence`` stamped with the catalog time of this command (a
   second fence of the same copy moves the stamp forward) and is answered *fenced*.
2. The repair driver reads the catalog time before it asks for a rebuild and sends it as
   ``UpdatePlacement.started_ms``. A move onto (C, i, S) fails with ``ShardFenced`` when a
   fence of that copy has ``fenced_ms >= started_ms``.
3. GC then deletes the file only if it is still the very file it listed (same inode, size
   and mtime), checked atomically with the store's own writes (``ShardStore.delete``).

Why that suffices. The file GC deletes existed when GC listed it, before the fence. A
repair that wrote it was planned before that, so it read a catalog time <= the fence's
(catalog time never decreases along the log): its ``UpdatePlacement`` fails. A repair
planned after the fence applied reads a later time and may commit, but it writes a new
file, which step 3 does not delete. A fence expires ``FENCE_TTL_MS`` after its last stamp;
a repair planned longer ago than that is refused outright, so expiry never re-admits one
it had to stop.

Keyspace: ``f`` + chunk id -> ``ChunkFence``; ``F`` + u64 fenced_ms + chunk id -> b"";
``g`` + chunk id + NUL + u16 shard + u64 server -> ``ShardFence``; ``G`` + u64 fenced_ms +
the same suffix -> b"".
Pure: stdlib, ``blobstore.errors`` and sibling modules.
"""

from __future__ import annotations

from typing import cast

from blobstore.errors import ChunkFenced, InvalidArgument, PreconditionFailed
from metadata.fsm import keyspace as ks
from metadata.fsm.commands import (
    CommitObject,
    CommitPart,
    FenceChunks,
    FenceShards,
    ShardMove,
    UpdatePlacement,
)
from metadata.fsm.kv import KVReader, OrderedKV
from metadata.fsm.records import Chunk, ChunkFence, ChunkRecord, ShardFence, ShardRef
from metadata.fsm.results import ChunksFenced, Result, ShardsFenced

__all__ = [
    "FENCE_TTL_MS",
    "MAX_FENCE_IDS",
    "PURGE_MIN",
    "commit_error",
    "fence_chunks",
    "fence_shards",
    "get_fence",
    "get_shard_fence",
    "placement_error",
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


def _bad_id(cid: object) -> bool:
    return not isinstance(cid, str) or not cid or "\0" in cid or len(cid) > 128


def _ids_error(ids: object) -> str | None:
    if not isinstance(ids, tuple) or not 1 <= len(ids) <= MAX_FENCE_IDS:
        return f"FenceChunks needs 1..{MAX_FENCE_IDS} chunk ids"
    if any(_bad_id(cid) for cid in ids):
        return "chunk id must be 1..128 characters without NUL"
    return None


def _shard_suffix(chunk_id: str, shard_index: int, server_id: int) -> bytes:
    return chunk_id.encode("utf-8") + b"\0" + ks.u16(shard_index) + ks.u64(server_id)


def get_shard_fence(
    kv: KVReader, chunk_id: str, shard_index: int, server_id: int
) -> ShardFence | None:
    """The fence on copy ``shard_index`` of ``chunk_id`` on ``server_id``, or None."""
    return cast(
        ShardFence | None, kv.get(ks.SHARD_FENCE + _shard_suffix(chunk_id, shard_index, server_id))
    )


def purge_expired(
    kv: OrderedKV,
    now_ms: int,
    limit: int,
    *,
    table: bytes = ks.FENCE,
    by_time: bytes = ks.FENCE_BY_TIME,
) -> int:
    """Drop up to ``limit`` fences laid before ``now_ms - FENCE_TTL_MS``, oldest first
    (chunk fences, or with ``table``/``by_time`` the shard fences)."""
    cutoff = now_ms - FENCE_TTL_MS
    if cutoff <= 0 or limit <= 0:
        return 0
    stale: list[bytes] = []
    for k, _ in kv.scan(by_time, by_time + ks.u64(cutoff)):
        stale.append(k)
        if len(stale) >= limit:
            break
    for k in stale:
        kv.delete(k)
        kv.delete(table + k[len(by_time) + 8 :])
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


def _refs_error(refs: object) -> str | None:
    if not isinstance(refs, tuple) or not 1 <= len(refs) <= MAX_FENCE_IDS:
        return f"FenceShards needs 1..{MAX_FENCE_IDS} shard references"
    for r in refs:
        if type(r) is not ShardRef or _bad_id(r.chunk_id):
            return "malformed shard reference"
        if not isinstance(r.shard_index, int) or not 0 <= r.shard_index < 1 << 16:
            return "shard index out of range"
        if not isinstance(r.server_id, int) or not 0 < r.server_id < 1 << 64:
            return "server id out of range"
    return None


def fence_shards(kv: OrderedKV, cmd: FenceShards, now_ms: int) -> Result:
    """Fence every copy of ``cmd`` its chunk's record does not place on its server."""
    why = _refs_error(cmd.shards)
    if why:
        return InvalidArgument(why)
    refs = tuple(dict.fromkeys(cmd.shards))
    purged = purge_expired(
        kv,
        now_ms,
        max(PURGE_MIN, 2 * len(refs)),
        table=ks.SHARD_FENCE,
        by_time=ks.SHARD_FENCE_BY_TIME,
    )
    fenced: list[ShardRef] = []
    placed: list[ShardRef] = []
    for ref in refs:
        rec = cast(ChunkRecord | None, kv.get(ks.CHUNK + ref.chunk_id.encode("utf-8")))
        if rec is not None and any(
            s.shard_index == ref.shard_index and s.server_id == ref.server_id
            for s in rec.chunk.shards
        ):
            placed.append(ref)
            continue
        suffix = _shard_suffix(ref.chunk_id, ref.shard_index, ref.server_id)
        old = get_shard_fence(kv, ref.chunk_id, ref.shard_index, ref.server_id)
        if old is not None:  # a later stamp: it must cover repairs planned since the first
            kv.delete(ks.SHARD_FENCE_BY_TIME + ks.u64(old.fenced_ms) + suffix)
        kv.put(ks.SHARD_FENCE + suffix, ShardFence(ref, now_ms))
        kv.put(ks.SHARD_FENCE_BY_TIME + ks.u64(now_ms) + suffix, b"")
        fenced.append(ref)
    return ShardsFenced(tuple(fenced), tuple(placed), purged)


def _is_move(mv: object) -> bool:
    return (
        type(mv) is ShardMove
        and isinstance(mv.shard_index, int)
        and 0 <= mv.shard_index < 1 << 16
        and isinstance(mv.to_server, int)
        and 0 <= mv.to_server < 1 << 64
    )


def placement_error(kv: KVReader, cmd: UpdatePlacement, now_ms: int) -> PreconditionFailed | None:
    """``ShardFenced`` if a move of ``cmd`` lands on a copy GC fenced since the repair was
    planned, or the repair was planned longer ago than a fence lives; else None."""
    started = cmd.started_ms
    if not isinstance(started, int) or started <= 0:
        return None  # a command from before the field: as before
    if started > now_ms:  # read from the catalog clock, which never goes back
        return PreconditionFailed(f"repair of {cmd.chunk_id!r} began in the future")
    if now_ms - started > FENCE_TTL_MS:
        return PreconditionFailed(
            f"repair of {cmd.chunk_id!r} was planned too long ago", code="ShardFenced"
        )
    for mv in cmd.moves if isinstance(cmd.moves, tuple) else ():
        if not _is_move(mv):
            continue  # malformed: update_placement refuses it
        fence = get_shard_fence(kv, str(cmd.chunk_id), mv.shard_index, mv.to_server)
        if fence is not None and fence.fenced_ms >= started:
            return PreconditionFailed(
                f"shard {mv.shard_index} of {cmd.chunk_id!r} on {mv.to_server} was fenced by "
                "garbage collection after the repair began",
                code="ShardFenced",
            )
    return None
