"""The catalog: the replicated state machine behind the metadata Raft group.

``Catalog.apply(ClientCommand) -> Result`` is the only way state changes. It is total (a
bad command yields a ``BlobstoreError`` value; an unexpected exception is rolled back through
an undo journal and yields ``InternalError``, identically on every replica) and deterministic
(the result and the new state depend only on the old state, the entry and the replica-wide
constants ``session_ttl_ms`` and ``ApplyConfig``).

Exactly-once: for a non-empty ``client_id`` the catalog keeps ``(last_seq, result)``. An
entry with ``seq == last_seq`` is a retry: its remembered result is returned and nothing is
applied. ``seq < last_seq`` is stale (InvalidArgument code=StaleSequence). A client must
therefore have at most one command in flight per client id (a gateway uses one id per
request slot). Sessions idle for more than ``session_ttl_ms`` of *proposer* time (the
high-water mark of ``now_ms`` of applied entries, never the wall clock) are dropped; a retry
arriving after its session expired is applied again, so the TTL must exceed the longest
client retry horizon.

The clock: ``now_ms`` of the catalog is ``max(previous, entry.now_ms)``, so record times
never go backwards even if leadership moves to a node with a slower clock.

Snapshots: ``snapshot_view()`` freezes the KV in O(n / leaf size); ``encode_snapshot`` of
that view can run on another thread while ``apply`` continues. ``snapshot()`` does both
inline. ``restore(bytes)`` replaces the whole state.
Pure: no I/O, time or randomness.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import cast

from blobstore.errors import InternalError, InvalidArgument
from metadata.fsm import keyspace as ks
from metadata.fsm import listing, queries
from metadata.fsm.apply import ApplyConfig, apply_command
from metadata.fsm.commands import ClientCommand
from metadata.fsm.kv import KVReader, MemoryKV, OrderedKV, prefix_end
from metadata.fsm.records import (
    AccessKeyRecord,
    BucketRecord,
    ChunkRecord,
    ChunkserverRecord,
    ErasureProfile,
    MetaRecord,
    ScrubProgressRecord,
    SessionRecord,
    ShardRef,
    UserRecord,
)
from metadata.fsm.results import (
    DeleteQueuePage,
    ListObjectsPage,
    ListPartsPage,
    ListUploadsPage,
    ListVersionsPage,
    ObjectInfo,
    Result,
)
from metadata.fsm.snapshot import decode_snapshot, encode_snapshot
from metadata.fsm.versions import list_object_versions

__all__ = ["DEFAULT_SESSION_TTL_MS", "Catalog"]

DEFAULT_SESSION_TTL_MS = 3_600_000
_ABSENT = object()


class _UndoKV:
    """Journals the old value of every key written during one command, for rollback."""

    __slots__ = ("_kv", "_undo")

    def __init__(self, kv: OrderedKV) -> None:
        self._kv = kv
        self._undo: list[tuple[bytes, object]] = []

    def get(self, key: bytes) -> object | None:
        return self._kv.get(key)

    def scan(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, object]]:
        return self._kv.scan(start, end)

    def __len__(self) -> int:
        return len(self._kv)

    def put(self, key: bytes, value: object) -> None:
        old = self._kv.get(key)
        self._undo.append((key, _ABSENT if old is None else old))
        self._kv.put(key, value)

    def delete(self, key: bytes) -> bool:
        old = self._kv.get(key)
        if old is None:
            return False
        self._undo.append((key, old))
        return self._kv.delete(key)

    def snapshot(self) -> KVReader:
        raise RuntimeError("no snapshots inside apply")

    def rollback(self) -> None:
        for key, old in reversed(self._undo):
            if old is _ABSENT:
                self._kv.delete(key)
            else:
                self._kv.put(key, old)
        self._undo.clear()


class Catalog:
    """The catalog state machine (buckets, objects, uploads, users, chunkservers, ...)."""

    def __init__(
        self,
        *,
        session_ttl_ms: int = DEFAULT_SESSION_TTL_MS,
        config: ApplyConfig | None = None,
        kv: MemoryKV | None = None,
    ) -> None:
        self._kv = kv if kv is not None else MemoryKV()
        self._ttl_ms = session_ttl_ms
        self._config = config if config is not None else ApplyConfig()

    # -- state machine -----------------------------------------------------------------
    @property
    def kv(self) -> KVReader:
        """Read access to the live ordered map (for queries and tests)."""
        return self._kv

    @property
    def now_ms(self) -> int:
        """The catalog clock: the largest proposer timestamp applied so far."""
        return cast(MetaRecord, self._kv.get(ks.META) or MetaRecord()).now_ms

    def apply(self, entry: ClientCommand) -> Result:
        """Apply one committed entry; never raises."""
        if not isinstance(entry, ClientCommand) or not isinstance(entry.now_ms, int):
            return InvalidArgument("log entry is not a ClientCommand")
        journal = _UndoKV(self._kv)
        try:
            return self._apply(journal, entry)
        except Exception as e:  # a bug, not a bad command: undo, answer the same everywhere
            journal.rollback()
            return InternalError(f"{type(e).__name__}: {e}", command=type(entry.command).__name__)

    def _apply(self, kv: _UndoKV, entry: ClientCommand) -> Result:
        meta = cast(MetaRecord, kv.get(ks.META) or MetaRecord())
        now = max(meta.now_ms, entry.now_ms)
        if now != meta.now_ms:
            kv.put(ks.META, replace(meta, now_ms=now))
        self._expire_sessions(kv, now)
        client = entry.client_id
        sk = ks.SESSION + client.encode("utf-8") if client else b""
        session = cast(SessionRecord | None, kv.get(sk)) if client else None
        if client:
            if not isinstance(entry.seq, int) or entry.seq < 1:
                return InvalidArgument("seq must be a positive integer")
            if session is not None and entry.seq == session.last_seq:
                return cast(Result, session.result)
            if session is not None and entry.seq < session.last_seq:
                return InvalidArgument(
                    "stale command sequence",
                    code="StaleSequence",
                    last_seq=str(session.last_seq),
                )
        result = apply_command(kv, entry.command, now, self._config)
        if client:
            if session is not None:
                kv.delete(ks.SESSION_BY_TIME + ks.u64(session.last_active_ms) + client.encode())
            kv.put(sk, SessionRecord(client, entry.seq, now, result))
            kv.put(ks.SESSION_BY_TIME + ks.u64(now) + client.encode(), b"")
        return result

    def _expire_sessions(self, kv: _UndoKV, now: int) -> None:
        cutoff = now - self._ttl_ms
        if cutoff <= 0:
            return
        hi = ks.SESSION_BY_TIME + ks.u64(cutoff)
        stale = [k for k, _ in kv.scan(ks.SESSION_BY_TIME, hi)]
        for k in stale:
            kv.delete(k)
            kv.delete(ks.SESSION + k[len(ks.SESSION_BY_TIME) + 8 :])

    def session(self, client_id: str) -> SessionRecord | None:
        """The exactly-once record of a client, or None."""
        return cast(SessionRecord | None, self._kv.get(ks.SESSION + client_id.encode("utf-8")))

    # -- snapshots -----------------------------------------------------------------------
    def snapshot_view(self) -> KVReader:
        """A frozen view of the whole state; cheap, safe to encode on another thread."""
        return self._kv.snapshot()

    def snapshot(self) -> bytes:
        """The whole catalog in the versioned snapshot format (see snapshot.py)."""
        return encode_snapshot(self._kv.snapshot())

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's; ValueError if malformed (state kept)."""
        self._kv = decode_snapshot(data)

    # -- queries (raise blobstore.errors) ------------------------------------------------
    def get_bucket(self, bucket: str) -> BucketRecord:
        return queries.get_bucket(self._kv, bucket)

    def list_buckets(self, owner: str | None = None) -> tuple[BucketRecord, ...]:
        return queries.list_buckets(self._kv, owner)

    def head_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        incarnation: int | None = None,
    ) -> ObjectInfo:
        return queries.head_object(self._kv, bucket, key, version_id, incarnation)

    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        marker: str = "",
        max_keys: int = listing.MAX_KEYS,
        incarnation: int | None = None,
    ) -> ListObjectsPage:
        queries.get_bucket(self._kv, bucket, incarnation)
        return listing.list_objects(
            self._kv, bucket, prefix=prefix, delimiter=delimiter, marker=marker, max_keys=max_keys
        )

    def list_objects_v2(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        continuation_token: str | None = None,
        max_keys: int = listing.MAX_KEYS,
        incarnation: int | None = None,
    ) -> ListObjectsPage:
        queries.get_bucket(self._kv, bucket, incarnation)
        return listing.list_objects_v2(
            self._kv,
            bucket,
            prefix=prefix,
            delimiter=delimiter,
            start_after=start_after,
            continuation_token=continuation_token,
            max_keys=max_keys,
        )

    def list_object_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = listing.MAX_KEYS,
        incarnation: int | None = None,
    ) -> ListVersionsPage:
        queries.get_bucket(self._kv, bucket, incarnation)
        return list_object_versions(
            self._kv,
            bucket,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            version_id_marker=version_id_marker,
            max_keys=max_keys,
        )

    def list_multipart_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = listing.MAX_KEYS,
        incarnation: int | None = None,
    ) -> ListUploadsPage:
        queries.get_bucket(self._kv, bucket, incarnation)
        return listing.list_multipart_uploads(
            self._kv,
            bucket,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            upload_id_marker=upload_id_marker,
            max_uploads=max_uploads,
        )

    def list_parts(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        *,
        part_number_marker: int = 0,
        max_parts: int = listing.MAX_KEYS,
        incarnation: int | None = None,
    ) -> ListPartsPage:
        return queries.list_parts(
            self._kv,
            bucket,
            key,
            upload_id,
            part_number_marker=part_number_marker,
            max_parts=max_parts,
            incarnation=incarnation,
        )

    def get_access_key(self, access_key_id: str) -> tuple[AccessKeyRecord, UserRecord]:
        return queries.get_access_key(self._kv, access_key_id)

    def get_user(self, name: str) -> UserRecord | None:
        return queries.get_user(self._kv, name)

    def list_users(self) -> tuple[UserRecord, ...]:
        return queries.list_users(self._kv)

    def list_chunkservers(self) -> tuple[ChunkserverRecord, ...]:
        return queries.list_chunkservers(self._kv)

    def get_chunkserver(self, server_id: int) -> ChunkserverRecord | None:
        return queries.get_chunkserver(self._kv, server_id)

    def get_scrub_progress(self, server_id: int) -> ScrubProgressRecord | None:
        return queries.get_scrub_progress(self._kv, server_id)

    def get_chunk(self, chunk_id: str) -> ChunkRecord | None:
        return queries.get_chunk(self._kv, chunk_id)

    def list_chunks(
        self, after: str | None = None, limit: int = listing.MAX_KEYS
    ) -> tuple[ChunkRecord, ...]:
        return queries.list_chunks(self._kv, after, limit)

    def delete_queue_page(
        self,
        server_id: int | None = None,
        after: ShardRef | None = None,
        limit: int = listing.MAX_KEYS,
    ) -> DeleteQueuePage:
        return queries.delete_queue_page(self._kv, server_id, after, limit)

    def get_erasure_profile(self) -> ErasureProfile:
        return queries.get_erasure_profile(self._kv)

    def count(self, table: bytes) -> int:
        """Number of records in one keyspace table (tests, metrics; O(table))."""
        return sum(1 for _ in self._kv.scan(table, prefix_end(table)))
