"""Write then read back through in-process chunkservers: sizes, ranges, md5, refs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blobstore.datapath import WriteOptions, read_range, write_object
from blobstore.datapath.refs import Target
from tests.unit.datapath.conftest import SMALL, Cluster, md5, payload, start_cluster, stream


async def _read(c: Cluster, chunks, start: int, length: int) -> bytes:  # type: ignore[no-untyped-def]
    out = bytearray()
    async for block in read_range(
        chunks,
        start,
        length,
        directory=c.placement,
        transport=c.client,
        on_bad_shard=c.bad.append,
    ):
        out += block
    return bytes(out)


async def test_sizes_round_trip(cluster: Cluster) -> None:
    L = SMALL
    for size in (
        0,
        1,
        L.stripe_bytes - 1,
        L.stripe_bytes,
        L.stripe_bytes + 1,
        L.chunk_bytes - 1,
        L.chunk_bytes,
        L.chunk_bytes + 1,
        3 * L.chunk_bytes + 777,
    ):
        data = payload(size, size)
        for known in (True, False):
            res = await write_object(
                stream(data),
                layout=L,
                placement=cluster.placement,
                transport=cluster.client,
                size_bytes=size if known else None,
            )
            assert res.size_bytes == size and res.md5 == md5(data)
            assert not res.missing
            assert sum(c.data_length for c in res.chunks) == size
            assert all(len(c.shards) == L.n for c in res.chunks)
            assert await _read(cluster, res.chunks, 0, size) == data
    assert cluster.bad == []


async def test_a_write_of_unknown_size_reads_ahead_at_most_its_smaller_chunks(
    cluster: Cluster,
) -> None:
    """Unknown size: chunks are cut at ``unknown_size_chunk_bytes`` (whole stripes), so the
    writer never pulls more than about one such chunk (plus a stripe) past what it sent."""
    sb = SMALL.stripe_bytes
    data = payload(5 * SMALL.chunk_bytes + 333, 11)
    pulled = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal pulled
        async for b in stream(data, 1000):
            pulled += len(b)
            yield b

    pulled_at: list[int] = []  # input bytes pulled when each chunk's length was known

    class Watch:  # the placement is asked once a chunk's length is known
        async def allocate(self, chunk_index: int) -> list[Target]:
            pulled_at.append(pulled)
            return await cluster.placement.allocate(chunk_index)

    res = await write_object(
        counted(),
        layout=SMALL,
        placement=Watch(),
        transport=cluster.client,
        options=WriteOptions(unknown_size_chunk_bytes=2 * sb + sb // 2),  # -> 2 stripes
    )
    assert res.size_bytes == len(data) and res.md5 == md5(data)
    assert [c.data_length for c in res.chunks[:-1]] == [2 * sb] * (len(res.chunks) - 1)
    assert sum(c.data_length for c in res.chunks) == len(data)
    for i, at in enumerate(pulled_at):  # this chunk and at most one more input buffer
        assert at <= (i + 1) * 2 * sb + 1000
    assert await _read(cluster, res.chunks, 0, len(data)) == data
    assert cluster.bad == []


async def test_a_write_without_the_etag_md5_stores_the_same_bytes(cluster: Cluster) -> None:
    data = payload(2 * SMALL.chunk_bytes + 5, 7)
    res = await write_object(
        stream(data),
        layout=SMALL,
        placement=cluster.placement,
        transport=cluster.client,
        size_bytes=len(data),
        options=WriteOptions(etag_md5=False),  # the caller hashes the body itself
    )
    assert res.md5 is None and res.etag == ""
    assert res.size_bytes == len(data) and not res.missing
    assert await _read(cluster, res.chunks, 0, len(data)) == data


_SIZES = st.integers(0, 3 * SMALL.chunk_bytes + 100)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=_SIZES, data=st.data())
async def test_any_range_reads_back_exactly(size: int, data: st.DataObject) -> None:
    c = await start_cluster()
    try:
        blob = payload(size, size)
        res = await write_object(
            stream(blob, 3001),
            layout=SMALL,
            placement=c.placement,
            transport=c.client,
            size_bytes=size,
        )
        for _ in range(4):
            start = data.draw(st.integers(0, size))
            length = data.draw(st.integers(0, size - start))
            assert await _read(c, res.chunks, start, length) == blob[start : start + length]
    finally:
        await c.client.close()
        for s in c.servers:
            await s.stop()


async def test_declared_size_must_match_the_body(cluster: Cluster) -> None:
    import pytest

    from blobstore import errors

    for declared, actual in ((100, 99), (100, 101), (SMALL.chunk_bytes, SMALL.chunk_bytes + 5)):
        with pytest.raises(errors.InvalidArgument):
            await write_object(
                stream(payload(actual)),
                layout=SMALL,
                placement=cluster.placement,
                transport=cluster.client,
                size_bytes=declared,
            )
    # nothing stays behind from the failed writes
    assert all(not s._files for s in cluster.stores)


async def test_abandoned_read_releases_the_shard_streams(cluster: Cluster) -> None:
    import contextlib

    from blobstore.codec.ranges import Layout
    from blobstore.datapath import ReadOptions
    from blobstore.testing.poll import eventually

    layout = Layout()  # 1 MiB stripes: one run of 32 stripes is 8 MiB per shard, > the window
    data = payload(32 << 20, 11)
    res = await write_object(
        stream(data, 1 << 20),
        layout=layout,
        placement=cluster.placement,
        transport=cluster.client,
        size_bytes=len(data),
    )
    gen = read_range(
        res.chunks,
        0,
        len(data),
        directory=cluster.placement,
        transport=cluster.client,
        options=ReadOptions(run_stripes=32),
    )
    async with contextlib.aclosing(gen) as blocks:
        first = await anext(blocks)
        assert first == data[: len(first)]
        assert any(s._reads for s in cluster.servers)
    await eventually(lambda: all(s._reads == 0 for s in cluster.servers))
