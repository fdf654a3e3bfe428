"""ObjectStore implementations (memory, cluster over real in-process chunkservers); the
placement policy's own tests are in tests/unit/fsm/test_placement.py."""

from __future__ import annotations

import contextlib
import hashlib
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from blobstore.codec.ec import coder_names
from chunkserver.messages import ReadShardRequest, WriteShardRequest
from gateway.app import create_app
from gateway.context import BodyCounter
from gateway.errors import S3Error
from gateway.storage import ClusterObjectStore, MemoryObjectStore, StoredData
from metadata.api import HeadObjectQuery
from metadata.fsm.commands import (
    ChunkserverHeartbeat,
    RegisterChunkserver,
    SetChunkserverState,
    SetErasureProfile,
)
from metadata.fsm.records import Chunk, ErasureProfile, ObjectRecord
from metadata.fsm.results import ObjectInfo
from tests.unit.datapath.conftest import Cluster, Hang, start_cluster, stream
from tests.unit.gateway.test_app_support import Gateway, encode_key, make_gateway


# -- memory store -----------------------------------------------------------------------------
async def _gen(data: bytes, piece: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


def _info(stored: StoredData) -> ObjectInfo:
    rec = ObjectRecord(
        "null",
        stored.size,
        stored.md5_hex,
        0,
        "u",
        1,
        chunk_ids=tuple(c.chunk_id for c in stored.chunks),
        inline_data=stored.inline,
    )
    return ObjectInfo("b", "k", rec, stored.chunks, True)


async def test_memory_store_roundtrip_and_discard() -> None:
    store = MemoryObjectStore(inline_threshold_bytes=100, chunk_bytes=1000)
    small = await store.write(_gen(b"abc"), 3)
    assert small.inline == b"abc" and not small.chunks
    data = random.Random(1).randbytes(5500)
    big = await store.write(_gen(data, 333), None)
    assert big.inline is None and len(big.chunks) == 6
    assert big.md5_hex == hashlib.md5(data).hexdigest() and big.size == 5500
    part = await store.write(_gen(b"xy"), 2, allow_inline=False)
    assert part.inline is None and part.chunks
    got = b"".join([b async for b in store.read(_info(big), 990, 2020)])
    assert got == data[990:3010]
    assert b"".join([b async for b in store.read(_info(small), 1, 2)]) == b"bc"
    await store.discard(big)
    assert all(c.chunk_id not in store.chunks for c in big.chunks)


async def test_memory_store_write_failure_leaves_nothing() -> None:
    store = MemoryObjectStore(inline_threshold_bytes=10, chunk_bytes=100)

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 250
        raise ValueError("client went away")

    with pytest.raises(ValueError):
        await store.write(broken(), None)
    assert store.chunks == {}


# -- cluster store over real in-process chunkservers ----------------------------------------
STRIPE = 8 * 1024


@contextlib.asynccontextmanager
async def _cluster_gateway(
    coder: str = "zfec", **options: Any
) -> AsyncIterator[tuple[Gateway, ClusterObjectStore, Cluster]]:
    """The app over a ClusterObjectStore on 7 in-process chunkservers (7 is down); 4+2
    coding with 8 KiB stripes and 64 KiB chunks."""
    base = await make_gateway()
    cluster = await start_cluster(count=7)
    catalog = base.catalog
    for t in cluster.targets:
        await catalog.execute(
            RegisterChunkserver(t.server_id, t.addr, f"z{t.server_id % 3}", 1 << 30, 1 << 29)
        )
    await catalog.execute(SetChunkserverState(7, "down"))
    await catalog.execute(SetErasureProfile(ErasureProfile(coder, 4, 2, STRIPE, 64 * 1024)))
    store = ClusterObjectStore(catalog, cluster.client, inline_threshold_bytes=1024, **options)
    app = create_app(catalog, store, auth_ttl_s=0.0)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    gw = Gateway(app, catalog, base.store, client)
    try:
        yield gw, store, cluster
    finally:
        await client.aclose()
        await base.client.aclose()
        await cluster.client.close()
        for s in cluster.servers:
            await s.stop()


@pytest.fixture
async def cluster_gateway() -> AsyncIterator[tuple[Gateway, ClusterObjectStore]]:
    async with _cluster_gateway() as (gw, store, _cluster):
        yield gw, store


async def test_cluster_store_through_the_app(
    cluster_gateway: tuple[Gateway, ClusterObjectStore],
) -> None:
    gw, _store = cluster_gateway
    assert (await gw.request("PUT", "/bkt")).status_code == 200
    data = random.Random(7).randbytes(200_000)
    put = await gw.put("bkt", "obj", data)
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = await gw.get("bkt", "obj")
    assert got.content == data
    ranged = await gw.get("bkt", "obj", range="bytes=70000-140000")
    assert ranged.status_code == 206 and ranged.content == data[70000:140001]
    info = await gw.catalog.query(HeadObjectQuery("bkt", "obj"))
    assert isinstance(info, ObjectInfo)
    assert len(info.chunks) == 4  # 64 KiB chunks
    for chunk in info.chunks:
        servers = {s.server_id for s in chunk.shards}
        assert len(servers) == 6 and 7 not in servers  # server 7 is down
    small = await gw.put("bkt", "small", b"tiny")
    assert small.status_code == 200
    assert (await gw.get("bkt", "small")).content == b"tiny"
    # multipart parts are always chunked
    create = await gw.request("POST", f"/bkt/{encode_key('mp')}", "uploads")
    upload_id = create.text.split("<UploadId>")[1].split("</UploadId>")[0]
    part = await gw.request(
        "PUT", "/bkt/mp", f"partNumber=1&uploadId={upload_id}", body=b"small part"
    )
    assert part.status_code == 200, part.text
    body = (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f"<ETag>{part.headers['etag']}</ETag></Part></CompleteMultipartUpload>"
    ).encode()
    done = await gw.request("POST", "/bkt/mp", f"uploadId={upload_id}", body=body)
    assert done.status_code == 200, done.text
    assert (await gw.get("bkt", "mp")).content == b"small part"


async def test_writes_go_on_while_a_write_quorum_of_servers_is_up() -> None:
    """DESIGN.md: writes continue while at least the write quorum (k+1) is up; the shards
    no server could take are left for repair (parity first), never a 503 for the PUT."""
    async with _cluster_gateway(placement_ttl_s=0.0) as (gw, _store, _cluster):
        assert (await gw.request("PUT", "/bkt")).status_code == 200
        await gw.catalog.execute(SetChunkserverState(6, "down"))  # 5 of 4+2 left
        data = random.Random(5).randbytes(100_000)
        put = await gw.put("bkt", "five", data)
        assert put.status_code == 200, put.text
        for chunk in await _chunks(gw, "five"):
            assert sorted(s.shard_index for s in chunk.shards) == [0, 1, 2, 3, 4]
            assert not {6, 7} & {s.server_id for s in chunk.shards}
        assert (await gw.get("bkt", "five")).content == data
        # a single-stripe body (1+2) on 5 servers is unaffected
        assert (await gw.put("bkt", "small", b"s" * 2000)).status_code == 200
        assert await _coding(gw, "small") == [(1, 2, 3)]

        await gw.catalog.execute(SetChunkserverState(5, "down"))  # 4 = k: below quorum
        put = await gw.put("bkt", "four", data)
        assert put.status_code == 503 and b"ServiceUnavailable" in put.content, put.text
        assert (await gw.get("bkt", "four")).status_code == 404
        assert (await gw.get("bkt", "five")).content == data

        # five up again, but one of them full: the servers are there, the room is not
        await gw.catalog.execute(ChunkserverHeartbeat(5, 1 << 30, 1 << 29))
        await gw.catalog.execute(ChunkserverHeartbeat(4, 1 << 30, 0))
        put = await gw.put("bkt", "full", data)
        assert put.status_code == 507 and b"StorageFull" in put.content, put.text
        assert (await gw.get("bkt", "full")).status_code == 404


async def test_a_chunkserver_that_stops_answering_costs_one_hedge_delay() -> None:
    """The store's reads share one ServerHealth: once a GET had to hedge around a server
    whose calls neither answer nor fail (paused, black-holed), later GETs read around it
    without asking it (each used to wait a hedge delay)."""
    async with _cluster_gateway() as (gw, _store, cluster):
        assert (await gw.request("PUT", "/bkt")).status_code == 200
        data = random.Random(9).randbytes(3000)  # one stripe: 1+2 copies, shard 0 read
        assert (await gw.put("bkt", "obj", data)).status_code == 200
        (chunk,) = await _chunks(gw, "obj")
        primary = next(s.server_id for s in chunk.shards if s.shard_index == 0)
        hang = Hang()
        cluster.servers[primary - 1].rpc.handle(ReadShardRequest, hang)
        try:
            assert (await gw.get("bkt", "obj")).content == data
            first = hang.calls
            assert first >= 1
            for _ in range(3):
                assert (await gw.get("bkt", "obj")).content == data
            assert hang.calls == first
        finally:
            hang.release.set()


async def test_a_chunkserver_that_missed_a_write_gets_no_shards_while_spares_exist() -> None:
    """Seven servers up for 4+2: once a write had to leave a shard on a server that takes
    data but never answers, later writes place their six shards on the other six.

    Zones here are z{id % 3}: the hung server is one of z1's three, so the other six
    still spread two per zone (health never changes the zone spread: a z0 server, one of
    two, would still get its shard)."""
    async with _cluster_gateway(placement_ttl_s=0.0) as (gw, _store, cluster):
        await gw.catalog.execute(SetChunkserverState(7, "up"))  # a spare
        assert (await gw.request("PUT", "/bkt")).status_code == 200
        hung = 4
        hang = Hang()
        cluster.servers[hung - 1].rpc.handle(WriteShardRequest, hang)
        data = random.Random(11).randbytes(20_000)  # 3 stripes: 4+2
        try:
            for i in range(20):  # placement is random: until a write lands on it
                assert (await gw.put("bkt", f"probe{i}", data)).status_code == 200
                (chunk,) = await _chunks(gw, f"probe{i}")
                if len(chunk.shards) == 5:
                    assert hung not in {s.server_id for s in chunk.shards}
                    break
            else:
                raise AssertionError("no write was placed on the hung server")
            for i in range(5):
                assert (await gw.put("bkt", f"after{i}", data)).status_code == 200
                (chunk,) = await _chunks(gw, f"after{i}")
                assert len(chunk.shards) == 6
                assert hung not in {s.server_id for s in chunk.shards}
                assert (await gw.get("bkt", f"after{i}")).content == data
        finally:
            hang.release.set()


async def _chunks(gw: Gateway, key: str) -> tuple[Chunk, ...]:
    info = await gw.catalog.query(HeadObjectQuery("bkt", key))
    assert isinstance(info, ObjectInfo)
    return info.chunks


async def _coding(gw: Gateway, key: str) -> list[tuple[int, int, int]]:
    """(k, m, distinct servers holding its shards) of each chunk of ``key``."""
    return [(c.k, c.m, len({s.server_id for s in c.shards})) for c in await _chunks(gw, key)]


@pytest.mark.parametrize("coder", coder_names())
async def test_a_body_of_one_stripe_is_coded_with_k_1_and_survives_m_losses(coder: str) -> None:
    async with _cluster_gateway(coder) as (gw, store, cluster):
        assert (await gw.request("PUT", "/bkt")).status_code == 200
        rng = random.Random(coder)
        sizes = {"above-inline": 1025, "one-stripe": STRIPE, "stripe+1": STRIPE + 1}
        bodies = {key: rng.randbytes(n) for key, n in sizes.items()}
        for key, data in bodies.items():
            assert (await gw.put("bkt", key, data)).status_code == 200
        for key in ("above-inline", "one-stripe"):
            assert await _coding(gw, key) == [(1, 2, 3)], key
        assert await _coding(gw, "stripe+1") == [(4, 2, 6)]
        for key, data in bodies.items():
            assert (await gw.get("bkt", key)).content == data, key

        # lose the shards on every server but one (m = 2 losses): each read decodes from
        # whichever shard is left, parity ones included
        stores = {t.server_id: st for t, st in zip(cluster.targets, cluster.stores, strict=True)}
        for keep in range(3):
            key, data = f"lossy-{keep}", rng.randbytes(STRIPE - keep)
            assert (await gw.put("bkt", key, data)).status_code == 200
            [chunk] = await _chunks(gw, key)
            for s in chunk.shards:
                if s.shard_index != keep:
                    cid = uuid.UUID(chunk.chunk_id)
                    assert await stores[s.server_id].delete(cid, s.shard_index)
            got = await gw.get("bkt", key)
            assert got.status_code == 200 and got.content == data, keep

        # the choice is made on the bytes that arrive: no size needs to be known
        for size, k in ((STRIPE - 5, 1), (STRIPE + 1, 4)):
            stored = await store.write(stream(rng.randbytes(size), 1000), None)
            assert [(c.k, len(c.shards)) for c in stored.chunks] == [(k, k + 2)], size


async def test_replication_of_single_stripe_bodies_can_be_turned_off() -> None:
    async with _cluster_gateway(replicate_single_stripe=False) as (gw, _store, _cluster):
        assert (await gw.request("PUT", "/bkt")).status_code == 200
        assert (await gw.put("bkt", "obj", b"x" * 2000)).status_code == 200
        assert await _coding(gw, "obj") == [(4, 2, 6)]


class _CheckedSource:
    """Yields pieces, then runs a final check (like VerifiedBody) when resumed at the end."""

    def __init__(self, pieces: list[bytes], ok: bool) -> None:
        self.pieces, self.ok, self.checks = pieces, ok, 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._run()

    async def _run(self) -> AsyncIterator[bytes]:
        for p in self.pieces:
            yield p
        self.checks += 1
        if not self.ok:
            raise ValueError("trailing checksum mismatch")


@pytest.mark.parametrize("ok", [True, False])
async def test_body_drain_resumes_the_same_iteration(ok: bool) -> None:
    source = _CheckedSource([b"ab", b"cd"], ok)
    body = BodyCounter(source, 100)  # type: ignore[arg-type]
    it = aiter(body)
    assert [await anext(it), await anext(it)] == [b"ab", b"cd"]  # consumer stops here
    assert not body.finished and source.checks == 0
    if ok:
        await body.drain()
        assert body.finished
    else:
        with pytest.raises(ValueError):
            await body.drain()
    assert source.checks == 1


async def test_body_cap_is_enforced_while_streaming() -> None:
    body = BodyCounter(_CheckedSource([b"x" * 60, b"x" * 60], True), 100)  # type: ignore[arg-type]
    with pytest.raises(S3Error) as exc:
        async for _ in body:
            pass
    assert exc.value.code == "EntityTooLarge"
