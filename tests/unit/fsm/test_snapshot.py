"""Snapshot/restore equality, determinism, COW views, refcount invariants, format checks."""

from __future__ import annotations

import struct
import zlib
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.errors import NoSuchKey
from blobstore.types import Address
from metadata.fsm import keyspace as ks
from metadata.fsm.apply import ApplyConfig
from metadata.fsm.codec import decode_value, encode_value
from metadata.fsm.commands import (
    AbortMultipartUpload,
    AckShardDeletes,
    ClientCommand,
    Command,
    CompletedPart,
    CompleteMultipartUpload,
    CopyObject,
    CreateBucket,
    CreateMultipartUpload,
    DeleteBucket,
    DeleteObject,
    DeleteObjects,
    ObjectIdentifier,
    PutAccessKey,
    PutBucketVersioning,
    PutUser,
    RegisterChunkserver,
    ShardMove,
    UpdatePlacement,
)
from metadata.fsm.kv import prefix_end
from metadata.fsm.records import ChunkRecord, ObjectRecord, PartRecord
from metadata.fsm.snapshot import FORMAT_VERSION, MAGIC
from metadata.fsm.state import Catalog

from .helpers import md5, obj, part

BUCKETS = ["bkt1", "bkt2"]
KEYS = ["a", "a/b", "a/c", "b", "é"]

op = st.tuples(
    st.sampled_from(
        [
            "put",
            "put_chunked",
            "copy",
            "delete",
            "delete_version",
            "delete_many",
            "mpu_create",
            "mpu_part",
            "mpu_complete",
            "mpu_abort",
            "mpu_full",
            "versioning",
            "delete_bucket",
            "create_bucket",
            "repair",
            "ack",
            "user",
        ]
    ),
    st.integers(0, 1),
    st.integers(0, len(KEYS) - 1),
    st.integers(0, 3),
)
script = st.lists(st.tuples(op, st.integers(0, 2), st.booleans()), max_size=40)


def _command(cat: Catalog, i: int, kind: str, b: int, k: int, n: int) -> Command | list[Command]:
    bucket, key = BUCKETS[b], KEYS[k]
    if kind.startswith("mpu"):
        # few (bucket, key, upload) combinations, so that parts meet their uploads
        bucket, key = BUCKETS[0], KEYS[k % 2]
    data = bytes([n]) * (n + 1) * 4
    match kind:
        case "put":
            return obj(bucket, key, data, version_id=f"v{i}")
        case "put_chunked":
            return obj(bucket, key, data, chunked=True, version_id=f"v{i}")
        case "copy":
            return CopyObject(BUCKETS[1 - b], KEYS[n % len(KEYS)], bucket, key, f"v{i}", "alice")
        case "delete":
            return DeleteObject(bucket, key, marker_version_id=f"m{i}")
        case "delete_version":
            return DeleteObject(bucket, key, version_id=f"v{i - n - 1}")
        case "delete_many":
            return DeleteObjects(bucket, tuple(ObjectIdentifier(x) for x in KEYS[: n + 1]))
        case "mpu_create":
            return CreateMultipartUpload(bucket, key, f"u{n % 2}", "alice")
        case "mpu_part":
            return part(bucket, key, f"u{n % 2}", n + 1, data)
        case "mpu_complete":
            uploaded = (
                cat.list_parts(bucket, key, f"u{n % 2}").parts
                if _has_upload(cat, bucket, key, f"u{n % 2}")
                else ()
            )
            parts = tuple(CompletedPart(p.part_number, p.etag) for p in uploaded)
            return CompleteMultipartUpload(bucket, key, f"u{n % 2}", parts, f"v{i}")
        case "mpu_abort":
            return AbortMultipartUpload(bucket, key, f"u{n % 2}")
        case "mpu_full":
            uid = f"full{i}"
            uploads = [part(bucket, key, uid, pn, data + bytes([pn])) for pn in range(1, n + 2)]
            done = tuple(
                CompletedPart(p.part_number, p.etag) for p in uploads if p.part_number != 2
            )
            return [
                CreateMultipartUpload(bucket, key, uid, "alice"),
                *uploads,
                CompleteMultipartUpload(bucket, key, uid, done, f"v{i}"),
            ]
        case "versioning":
            return PutBucketVersioning(bucket, "Enabled" if n % 2 else "Suspended")
        case "delete_bucket":
            return DeleteBucket(BUCKETS[1])
        case "create_bucket":
            return CreateBucket(BUCKETS[1], "alice")
        case "repair":
            chunks = cat.list_chunks(limit=1)
            if not chunks:
                return RegisterChunkserver(7 + n, Address("h", 1), "z", 10, 10)
            c = chunks[0].chunk
            if any(sh.server_id == 7 + n for sh in c.shards):
                return UpdatePlacement(c.chunk_id, (ShardMove(0, 1, 2),))  # must fail
            return UpdatePlacement(c.chunk_id, (ShardMove(0, c.shards[0].server_id, 7 + n),))
        case "ack":
            return AckShardDeletes(
                tuple(e.shard for e in cat.delete_queue_page(limit=n + 1).entries)
            )
        case _:
            return PutAccessKey(f"AK{n}", "s", "alice") if n % 2 else PutUser("alice")


def _has_upload(cat: Catalog, bucket: str, key: str, upload_id: str) -> bool:
    return cat.kv.get(ks.upload_key(bucket, key, upload_id)) is not None


def _new() -> Catalog:
    return Catalog(session_ttl_ms=50, config=ApplyConfig(min_part_size_bytes=4))


def _run(
    steps: list[tuple[tuple[str, int, int, int], int, bool]],
) -> tuple[Catalog, list[object], list[ClientCommand]]:
    cat = _new()
    results: list[object] = []
    log: list[ClientCommand] = []
    seqs = [0, 0, 0]
    setup: list[Command] = [CreateBucket(b, "alice") for b in BUCKETS]
    setup += [RegisterChunkserver(s, Address("h", s), "z", 10, 10) for s in range(1, 11)]
    for cmd in setup:
        log.append(ClientCommand("", 0, 0, cmd))
        cat.apply(log[-1])
    for i, ((kind, b, k, n), client, retry) in enumerate(steps):
        cmds = _command(cat, i, kind, b, k, n)
        for cmd in cmds if isinstance(cmds, list) else [cmds]:
            seqs[client] += 1
            entry = ClientCommand(f"c{client}", seqs[client], i * 10, cmd)
            log.append(entry)
            results.append(cat.apply(entry))
            if retry:
                log.append(entry)
                assert cat.apply(entry) == results[-1]
    return cat, results, log


def _check_refcounts(cat: Catalog) -> None:
    """Every chunk's count equals its references; every reference resolves."""
    refs: dict[str, int] = {}
    for table in (ks.OBJECT, ks.VERSION, ks.PART):
        for _, v in cat.kv.scan(table, prefix_end(table)):
            for cid in cast(ObjectRecord | PartRecord, v).chunk_ids:
                refs[cid] = refs.get(cid, 0) + 1
    stored = {
        cast(ChunkRecord, v).chunk.chunk_id: cast(ChunkRecord, v).refs
        for _, v in cat.kv.scan(ks.CHUNK, prefix_end(ks.CHUNK))
    }
    assert refs == stored


@settings(deadline=None, max_examples=60)
@given(script)
def test_snapshot_restore_roundtrip_and_determinism(
    steps: list[tuple[tuple[str, int, int, int], int, bool]],
) -> None:
    cat, _results, log = _run(steps)
    _check_refcounts(cat)
    data = cat.snapshot()
    assert data.startswith(MAGIC)
    restored = Catalog()
    restored.restore(data)
    assert restored.snapshot() == data
    assert list(restored.kv.scan(b"")) == list(cat.kv.scan(b""))
    for b in BUCKETS:
        try:
            assert restored.list_objects(b) == cat.list_objects(b)
        except Exception as e:  # a deleted bucket raises in both
            assert type(e).__name__ == "NoSuchBucket"
    # determinism: a second replica fed the same log ends byte-identical, with equal results
    twin = _new()
    assert [twin.apply(e) for e in log] == _replay(log)
    assert twin.snapshot() == data


def _replay(log: list[ClientCommand]) -> list[object]:
    replica = _new()
    return [replica.apply(e) for e in log]


def test_view_is_frozen_while_apply_continues() -> None:
    cat, _, _ = _run([(("put", 0, 0, 1), 0, False)])
    view = cat.snapshot_view()
    before = cat.snapshot()
    for i in range(300):
        cat.apply(ClientCommand("x", i + 1, 10_000 + i, obj("bkt1", f"k{i}", b"z", chunked=True)))
    cat.apply(ClientCommand("x", 1000, 20_000, DeleteObject("bkt1", "a")))
    from metadata.fsm.snapshot import encode_snapshot

    assert encode_snapshot(view) == before
    with pytest.raises(NoSuchKey):
        cat.head_object("bkt1", "a")


def test_remembered_results_survive_restore() -> None:
    cat = Catalog()
    cat.apply(ClientCommand("c", 1, 1, CreateBucket("bkt", "alice")))
    entry = ClientCommand("c", 2, 2, obj("bkt", "k", b"x"))
    first = cat.apply(entry)
    other = Catalog()
    other.restore(cat.snapshot())
    assert other.apply(entry) == first
    assert other.snapshot() == cat.snapshot()


def _header(version: int = FORMAT_VERSION, count: int = 0) -> bytes:
    return struct.pack(">8sHHQ", MAGIC, version, 0, count)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"XXXXXXXX" + b"\0" * 20,
        _header() + b"\0\0\0\0",
        _header(version=99) + struct.pack(">I", zlib.crc32(_header(version=99))),
        _header(count=1) + struct.pack(">I", zlib.crc32(_header(count=1))),
    ],
)
def test_malformed_snapshots_are_rejected(data: bytes) -> None:
    cat = Catalog()
    cat.apply(ClientCommand("", 0, 1, CreateBucket("keep", "alice")))
    with pytest.raises(ValueError):
        cat.restore(data)
    assert cat.get_bucket("keep").owner == "alice"


def test_flipped_bit_is_detected() -> None:
    cat, _, _ = _run([(("put_chunked", 0, 1, 2), 0, False)])
    data = bytearray(cat.snapshot())
    data[len(data) // 2] ^= 0x10
    with pytest.raises(ValueError):
        Catalog().restore(bytes(data))


def test_codec_roundtrips_errors_and_values() -> None:
    from blobstore.errors import InvalidArgument

    value = (obj("bkt", "k", b"abc"), InvalidArgument("x", code="EntityTooSmall"), None, 5)
    assert decode_value(encode_value(value)) == value
    with pytest.raises(ValueError):
        decode_value(b"\x81\xcc\xfe\x90")  # unknown tag 254
    with pytest.raises(TypeError):
        encode_value(object())
    assert md5(b"") == "d41d8cd98f00b204e9800998ecf8427e"


@pytest.mark.slow
@settings(deadline=None, max_examples=400)
@given(st.lists(st.tuples(op, st.integers(0, 2), st.booleans()), min_size=20, max_size=120))
def test_snapshot_roundtrip_long_scripts(
    steps: list[tuple[tuple[str, int, int, int], int, bool]],
) -> None:
    cat, _results, log = _run(steps)
    _check_refcounts(cat)
    data = cat.snapshot()
    restored = Catalog()
    restored.restore(data)
    assert restored.snapshot() == data
    assert _replay(log) == _replay(log)
