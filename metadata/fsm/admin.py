"""Cluster-administration handlers: users and access keys, chunkservers, shard placement
(repair), bad-shard reports, the shard delete queue and the erasure-coding profile.

Invariants: an access key always belongs to an existing user (deleting a user deletes its
keys); a chunk's shards sit on distinct registered chunkservers; a repair never targets a
server that still has a queued delete of the very same shard (that delete could remove the
rebuilt file); a moved shard's old copy is queued for deletion and its bad-shard record
(if any) is dropped; a bad-shard record always names the copy currently placed at that
index when it was recorded (reports about other copies are ignored).
Pure: stdlib and sibling modules.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from blobstore.errors import BlobstoreError, InvalidArgument, PreconditionFailed
from metadata.fsm import fences
from metadata.fsm import keyspace as ks
from metadata.fsm.commands import (
    AckShardDeletes,
    ChunkserverHeartbeat,
    ClearBadShards,
    DeleteAccessKey,
    DeleteUser,
    PutAccessKey,
    PutUser,
    RegisterChunkserver,
    ReportBadShards,
    SetChunkserverState,
    SetErasureProfile,
    UpdatePlacement,
)
from metadata.fsm.kv import OrderedKV, prefix_end
from metadata.fsm.names import id_error
from metadata.fsm.records import (
    AccessKeyRecord,
    BadShardRecord,
    ChunkRecord,
    ChunkserverRecord,
    ScrubProgressRecord,
    ShardDelete,
    ShardPlacement,
    ShardRef,
    UserRecord,
)
from metadata.fsm.results import (
    AccessKeyDeleted,
    AccessKeyPut,
    BadShardsCleared,
    BadShardsReported,
    ChunkserverUpdated,
    ErasureProfileSet,
    PlacementUpdated,
    Result,
    ShardDeletesAcked,
    UserDeleted,
    UserPut,
)

__all__ = [
    "ack_shard_deletes",
    "clear_bad_shards",
    "delete_access_key",
    "delete_user",
    "heartbeat",
    "put_access_key",
    "put_user",
    "register_chunkserver",
    "report_bad_shards",
    "set_chunkserver_state",
    "set_erasure_profile",
    "update_placement",
]

_CHUNKSERVER_STATES = ("up", "suspect", "down", "draining", "drained")
_OPERATOR_STATES = ("draining", "drained")  # kept across re-registration and heartbeats


def put_user(kv: OrderedKV, cmd: PutUser, now_ms: int) -> Result:
    why = id_error("user name", cmd.name)
    if why:
        return InvalidArgument(why)
    old = cast(UserRecord | None, kv.get(ks.USER + cmd.name.encode()))
    created = now_ms if old is None else old.created_ms
    kv.put(ks.USER + cmd.name.encode(), UserRecord(cmd.name, bool(cmd.is_admin), created))
    return UserPut(cmd.name)


def delete_user(kv: OrderedKV, cmd: DeleteUser) -> Result:
    if not isinstance(cmd.name, str) or kv.get(ks.USER + cmd.name.encode()) is None:
        return InvalidArgument(f"user {cmd.name!r} does not exist", code="NoSuchEntity")
    lo = ks.USER_KEYS + cmd.name.encode() + b"\0"
    keys = [k for k, _ in kv.scan(lo, prefix_end(lo))]
    for k in keys:
        kv.delete(k)
        kv.delete(ks.ACCESS_KEY + k[len(lo) :])
    kv.delete(ks.USER + cmd.name.encode())
    return UserDeleted(cmd.name, len(keys))


def put_access_key(kv: OrderedKV, cmd: PutAccessKey, now_ms: int) -> Result:
    why = id_error("access key id", cmd.access_key_id)
    if why:
        return InvalidArgument(why)
    if not isinstance(cmd.user_name, str) or kv.get(ks.USER + cmd.user_name.encode()) is None:
        return InvalidArgument(f"user {cmd.user_name!r} does not exist", code="NoSuchEntity")
    if not isinstance(cmd.secret, str) or not cmd.secret:
        return InvalidArgument("secret must be non-empty")
    ak = ks.ACCESS_KEY + cmd.access_key_id.encode()
    old = cast(AccessKeyRecord | None, kv.get(ak))
    if old is not None and old.user_name != cmd.user_name:
        return InvalidArgument("access key id belongs to another user", code="EntityAlreadyExists")
    kv.put(ak, AccessKeyRecord(cmd.access_key_id, cmd.secret, cmd.user_name, now_ms))
    kv.put(ks.USER_KEYS + ks.join(cmd.user_name, cmd.access_key_id), b"")
    return AccessKeyPut(cmd.access_key_id)


def delete_access_key(kv: OrderedKV, cmd: DeleteAccessKey) -> Result:
    ak = ks.ACCESS_KEY + str(cmd.access_key_id).encode()
    old = cast(AccessKeyRecord | None, kv.get(ak))
    if old is None:
        return InvalidArgument("no such access key", code="NoSuchEntity")
    kv.delete(ak)
    kv.delete(ks.USER_KEYS + ks.join(old.user_name, old.access_key_id))
    return AccessKeyDeleted(old.access_key_id)


# -- chunkservers, placement, delete queue, profile -------------------------------------
def _server(kv: OrderedKV, server_id: int) -> ChunkserverRecord | BlobstoreError:
    if not isinstance(server_id, int) or not 0 <= server_id < 1 << 64:
        return InvalidArgument("server id out of range")
    rec = kv.get(ks.CHUNKSERVER + ks.u64(server_id))
    if rec is None:
        return InvalidArgument(
            f"chunkserver {server_id} is not registered", code="NoSuchChunkserver"
        )
    return cast(ChunkserverRecord, rec)


def register_chunkserver(kv: OrderedKV, cmd: RegisterChunkserver, now_ms: int) -> Result:
    if not isinstance(cmd.server_id, int) or not 0 < cmd.server_id < 1 << 64:
        return InvalidArgument("server id must be a positive 64-bit integer")
    if cmd.capacity_bytes < 0 or not cmd.free_bytes >= 0:
        return InvalidArgument("capacity and free bytes must be >= 0")
    sk = ks.CHUNKSERVER + ks.u64(cmd.server_id)
    old = cast(ChunkserverRecord | None, kv.get(sk))
    rec = ChunkserverRecord(
        cmd.server_id,
        cmd.addr,
        cmd.zone,
        cmd.capacity_bytes,
        cmd.free_bytes,
        old.state if old is not None and old.state in _OPERATOR_STATES else "up",
        now_ms,
        now_ms if old is None else old.registered_ms,
    )
    kv.put(sk, rec)
    return ChunkserverUpdated(rec)


def heartbeat(kv: OrderedKV, cmd: ChunkserverHeartbeat, now_ms: int) -> Result:
    old = _server(kv, cmd.server_id)
    if isinstance(old, BlobstoreError):
        return old
    if cmd.scrub is not None and not isinstance(cmd.scrub, ScrubProgressRecord):
        return InvalidArgument("scrub progress must be a ScrubProgressRecord")
    state = "up" if old.state in ("suspect", "down") else old.state
    rec = replace(
        old,
        capacity_bytes=cmd.capacity_bytes,
        free_bytes=cmd.free_bytes,
        last_heartbeat_ms=now_ms,
        state=state,
    )
    kv.put(ks.CHUNKSERVER + ks.u64(old.server_id), rec)
    if cmd.scrub is not None:
        kv.put(
            ks.SCRUB + ks.u64(old.server_id),
            replace(cmd.scrub, server_id=old.server_id, updated_ms=now_ms),
        )
    return ChunkserverUpdated(rec)


def set_chunkserver_state(kv: OrderedKV, cmd: SetChunkserverState) -> Result:
    old = _server(kv, cmd.server_id)
    if isinstance(old, BlobstoreError):
        return old
    if cmd.state not in _CHUNKSERVER_STATES:
        return InvalidArgument(f"unknown chunkserver state {cmd.state!r}")
    rec = replace(old, state=cmd.state)
    kv.put(ks.CHUNKSERVER + ks.u64(old.server_id), rec)
    return ChunkserverUpdated(rec)


def update_placement(kv: OrderedKV, cmd: UpdatePlacement, now_ms: int) -> Result:
    ck = ks.CHUNK + str(cmd.chunk_id).encode()
    rec = cast(ChunkRecord | None, kv.get(ck))
    if rec is None:
        return InvalidArgument(f"chunk {cmd.chunk_id!r} is not referenced", code="NoSuchChunk")
    fenced = fences.placement_error(kv, cmd, now_ms)
    if fenced is not None:
        return fenced
    shards = {s.shard_index: s for s in rec.chunk.shards}
    for mv in cmd.moves:
        cur = shards.get(mv.shard_index)
        if cur is None and mv.from_server == 0:
            pass  # a shard that was never written (placed below k+m) gets its first home
        elif cur is None or cur.server_id != mv.from_server:
            return PreconditionFailed(
                f"shard {mv.shard_index} of {cmd.chunk_id!r} is not on {mv.from_server}"
            )
        if not 0 <= mv.shard_index < rec.chunk.k + rec.chunk.m:
            return InvalidArgument("shard index out of range")
        target = _server(kv, mv.to_server)
        if isinstance(target, BlobstoreError):
            return target
        if kv.get(ks.delete_key(mv.to_server, rec.chunk.chunk_id, mv.shard_index)) is not None:
            # that server still has to delete its old copy of this very shard: the delete
            # could remove the rebuilt file, so the repair must pick another server
            return PreconditionFailed(
                f"shard {mv.shard_index} of {cmd.chunk_id!r} has a pending delete on "
                f"{mv.to_server}",
                code="ShardDeletePending",
            )
        shards[mv.shard_index] = ShardPlacement(mv.to_server, mv.shard_index, mv.checksum)
        kv.delete(ks.bad_shard_key(rec.chunk.chunk_id, mv.shard_index))
    servers = [s.server_id for s in shards.values()]
    if len(set(servers)) != len(servers):
        return InvalidArgument("two shards of one chunk would share a chunkserver")
    queued = 0
    for mv in cmd.moves:
        if mv.from_server not in (0, mv.to_server):
            release = ks.delete_key(mv.from_server, rec.chunk.chunk_id, mv.shard_index)
            ref = ShardRef(rec.chunk.chunk_id, mv.from_server, mv.shard_index)
            kv.put(release, ShardDelete(ref, now_ms))
            queued += 1
    chunk = replace(rec.chunk, shards=tuple(shards[i] for i in sorted(shards)))
    kv.put(ck, ChunkRecord(chunk, rec.refs))
    return PlacementUpdated(chunk, queued)


def ack_shard_deletes(kv: OrderedKV, cmd: AckShardDeletes) -> Result:
    removed = 0
    for s in cmd.shards:
        if kv.delete(ks.delete_key(s.server_id, s.chunk_id, s.shard_index)):
            removed += 1
    return ShardDeletesAcked(removed)


def report_bad_shards(kv: OrderedKV, cmd: ReportBadShards, now_ms: int) -> Result:
    if not _refs_ok(cmd.shards):
        return InvalidArgument("malformed shard reference")
    recorded = 0
    for ref in cmd.shards:
        rec = cast(ChunkRecord | None, kv.get(ks.CHUNK + ref.chunk_id.encode()))
        if rec is None:
            continue  # the chunk is gone: nothing to repair
        placed = [s for s in rec.chunk.shards if s.shard_index == ref.shard_index]
        if not placed or placed[0].server_id != ref.server_id:
            continue  # stale: that copy has moved (or never existed)
        bk = ks.bad_shard_key(ref.chunk_id, ref.shard_index)
        old = cast(BadShardRecord | None, kv.get(bk))
        if old is not None and old.shard == ref:
            continue  # already known: keep the first report's time
        kv.put(bk, BadShardRecord(ref, str(cmd.reason)[:200], now_ms))
        recorded += 1
    return BadShardsReported(recorded)


def _refs_ok(refs: object) -> bool:
    return isinstance(refs, tuple) and all(
        isinstance(r, ShardRef)
        and isinstance(r.chunk_id, str)
        and isinstance(r.server_id, int)
        and isinstance(r.shard_index, int)
        and 0 <= r.shard_index < 1 << 16
        for r in refs
    )


def clear_bad_shards(kv: OrderedKV, cmd: ClearBadShards) -> Result:
    if not _refs_ok(cmd.shards):
        return InvalidArgument("malformed shard reference")
    removed = 0
    for ref in cmd.shards:
        bk = ks.bad_shard_key(ref.chunk_id, ref.shard_index)
        old = cast(BadShardRecord | None, kv.get(bk))
        if old is not None and old.shard == ref and kv.delete(bk):
            removed += 1
    return BadShardsCleared(removed)


def set_erasure_profile(kv: OrderedKV, cmd: SetErasureProfile) -> Result:
    p = cmd.profile
    if not p.coder or p.k < 1 or p.m < 0 or p.k + p.m > 256:
        return InvalidArgument("erasure profile needs a coder, k >= 1, m >= 0, k + m <= 256")
    if p.stripe_size_bytes < 1 or p.chunk_size_bytes < p.stripe_size_bytes:
        return InvalidArgument("erasure profile needs 1 <= stripe size <= chunk size")
    kv.put(ks.PROFILE, p)
    return ErasureProfileSet(p)
