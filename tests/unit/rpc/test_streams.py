"""Bulk bodies: 64 MiB through without buffering it whole, flow control, stream failures."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from blobstore import errors
from blobstore.rpc import CallContext, StreamResponse
from blobstore.rpc.link import DATA_FRAME_SIZE, STREAM_WINDOW, StreamBudget
from blobstore.testing.poll import eventually
from tests.unit.rpc.conftest import Served
from tests.unit.rpc.fixture_messages import Echo, Upload

MiB = 1 << 20
_BLOCK = bytes(range(256)) * 16384  # 4 MiB, deterministic


class Producer:
    """A lazy body that counts what it has produced."""

    def __init__(self, total: int, chunk: int = MiB) -> None:
        self.total, self.chunk, self.produced = total, chunk, 0
        self.hash = hashlib.sha256()

    async def __call__(self) -> AsyncIterator[memoryview]:
        view = memoryview(_BLOCK)
        while self.produced < self.total:
            n = min(self.chunk, self.total - self.produced, len(view))
            piece = view[:n]
            self.hash.update(piece)
            self.produced += n
            yield piece


async def test_64_mib_download_streams_through(served: Served) -> None:
    async def download(req: Upload, ctx: CallContext) -> StreamResponse:
        return StreamResponse(Echo(1, req.name), Producer(64 * MiB)())

    served.server.handle(Upload, download)
    header, body = await served.client.call_stream(served.addr, Upload("shard"), timeout_s=60)
    assert header == Echo(1, "shard")
    got = hashlib.sha256()
    total = 0
    async for chunk in body:
        got.update(chunk)
        total += len(chunk)
    expected = Producer(64 * MiB)
    async for _ in expected():
        pass
    assert total == 64 * MiB and got.digest() == expected.hash.digest()


async def test_64_mib_upload_streams_through(served: Served) -> None:
    async def upload(req: Upload, ctx: CallContext) -> Echo:
        h = hashlib.sha256()
        n = 0
        async for chunk in ctx.body:
            h.update(chunk)
            n += len(chunk)
        return Echo(n, h.hexdigest())

    served.server.handle(Upload, upload)
    producer = Producer(64 * MiB, chunk=3 * MiB + 5)
    reply = await served.client.call(served.addr, Upload("u"), timeout_s=60, body=producer())
    assert reply == Echo(64 * MiB, producer.hash.hexdigest())


async def test_slow_reader_of_a_response_stalls_the_producer(served: Served) -> None:
    producer = Producer(64 * MiB, chunk=64 * 1024)

    async def download(req: Upload, ctx: CallContext) -> StreamResponse:
        return StreamResponse(Echo(0), producer())

    served.server.handle(Upload, download)
    _, body = await served.client.call_stream(served.addr, Upload("slow"), timeout_s=60)
    consumed = 0
    server_link = next(iter(served.server._links))
    for _ in range(3):
        consumed += len(await anext(body))
        # the producer ends up parked on stream credit, never far ahead of the consumer
        await eventually(
            lambda: any(c._waiter is not None for c in server_link.out_streams.values())
        )
        assert producer.produced - consumed <= STREAM_WINDOW + DATA_FRAME_SIZE
    async for chunk in body:
        consumed += len(chunk)
    assert consumed == producer.produced == 64 * MiB


async def test_slow_handler_stalls_the_uploader(served: Served) -> None:
    producer = Producer(64 * MiB, chunk=64 * 1024)
    go = asyncio.Event()

    async def upload(req: Upload, ctx: CallContext) -> Echo:
        n = len(await anext(ctx.body))
        await go.wait()
        async for chunk in ctx.body:
            n += len(chunk)
        return Echo(n)

    served.server.handle(Upload, upload)
    call = asyncio.ensure_future(
        served.client.call(served.addr, Upload("u"), timeout_s=60, body=producer())
    )
    await eventually(lambda: served.addr in served.client._links)
    link = served.client._links[served.addr]
    await eventually(lambda: any(c._waiter is not None for c in link.out_streams.values()))
    assert producer.produced <= STREAM_WINDOW + 64 * 1024 + DATA_FRAME_SIZE
    go.set()
    assert await call == Echo(64 * MiB)


async def test_early_error_reply_stops_the_upload(served: Served) -> None:
    async def reject(req: Upload, ctx: CallContext) -> Echo:
        await anext(ctx.body)
        raise errors.InsufficientSpace("disk full")

    served.server.handle(Upload, reject)
    producer = Producer(1 << 40)  # would never end
    with pytest.raises(errors.InsufficientSpace):
        await served.client.call(served.addr, Upload("u"), timeout_s=30, body=producer())
    assert producer.produced < 64 * MiB


async def test_failing_request_body_reaches_the_handler_as_an_error(served: Served) -> None:
    seen: list[BaseException] = []

    async def upload(req: Upload, ctx: CallContext) -> Echo:
        try:
            async for _ in ctx.body:
                pass
        except errors.BlobstoreError as exc:
            seen.append(exc)
            raise
        return Echo(0)

    async def broken() -> AsyncIterator[bytes]:
        yield b"abc"
        raise RuntimeError("disk read failed")

    served.server.handle(Upload, upload)
    with pytest.raises(RuntimeError):
        await served.client.call(served.addr, Upload("u"), timeout_s=10, body=broken())
    await eventually(lambda: bool(seen))
    assert isinstance(seen[0], errors.InternalError)


async def test_failing_response_body_raises_at_the_reader(served: Served) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        raise errors.CorruptShard("bad checksum", stripe="3")

    async def download(req: Upload, ctx: CallContext) -> StreamResponse:
        return StreamResponse(Echo(0), body())

    served.server.handle(Upload, download)
    _, stream = await served.client.call_stream(served.addr, Upload("d"), timeout_s=10)
    assert len(await anext(stream)) == 1000
    with pytest.raises(errors.CorruptShard):
        await anext(stream)


async def test_stalled_response_body_hits_the_deadline(served: Served) -> None:
    forever = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"first"
        await forever.wait()
        yield b"never"

    async def download(req: Upload, ctx: CallContext) -> StreamResponse:
        return StreamResponse(Echo(0), body())

    served.server.handle(Upload, download)
    _, stream = await served.client.call_stream(served.addr, Upload("d"), timeout_s=0.3)
    assert bytes(await anext(stream)) == b"first"
    with pytest.raises(errors.DeadlineExceeded):
        await anext(stream)
    assert await served.client.call(served.addr, Echo(1), timeout_s=5) == Echo(1, "!")


async def test_unary_reply_to_call_stream_has_an_empty_body(served: Served) -> None:
    header, stream = await served.client.call_stream(served.addr, Echo(3), timeout_s=5)
    assert header == Echo(3, "!")
    assert [c async for c in stream] == []


async def test_each_side_honours_the_window_the_other_announced(served: Served) -> None:
    small = 256 * 1024
    producer = Producer(8 * MiB, chunk=16 * 1024)

    async def download(req: Upload, ctx: CallContext) -> StreamResponse:
        return StreamResponse(Echo(0), producer())

    served.server.handle(Upload, download)
    from blobstore.rpc import RpcClient
    from tests.unit.rpc.conftest import SECRET

    client = RpcClient(SECRET, stream_window=small)
    try:
        _, body = await client.call_stream(served.addr, Upload("w"), timeout_s=60)
        consumed = len(await anext(body))
        server_link = next(link for link in served.server._links if link.peer_window == small)
        await eventually(
            lambda: any(c._waiter is not None for c in server_link.out_streams.values())
        )
        assert producer.produced - consumed <= small + DATA_FRAME_SIZE
        async for chunk in body:
            consumed += len(chunk)
        assert consumed == 8 * MiB
    finally:
        await client.close()


def test_budget_shares() -> None:
    b = StreamBudget(8 * MiB, base_bytes=MiB, max_bytes=4 * MiB)
    assert b.share() == 4 * MiB  # nobody open: a first stream may grow to the max
    b.active = 4
    assert b.share() == 2 * MiB
    b.active = 100
    assert b.share() == MiB  # never below the base every stream starts with
    with pytest.raises(ValueError):
        StreamBudget(MiB, base_bytes=2 * MiB, max_bytes=MiB)


async def _parked(served: Served, count: int) -> None:
    """Wait until ``count`` response producers wait for stream credit."""
    server_link = next(iter(served.server._links))
    await eventually(
        lambda: sum(c._waiter is not None for c in server_link.out_streams.values()) == count
    )


async def test_budgeted_streams_grow_alone_and_share_when_many(served: Served) -> None:
    """A stream alone grows past the announced window to the budget's max; many at once
    each get an equal share, so what they buffer together stays near the budget."""
    base, most, total, chunk = 256 * 1024, 2 * MiB, 2 * MiB, 16 * 1024
    producers: list[Producer] = []

    async def download(req: Upload, ctx: CallContext) -> StreamResponse:
        producers.append(Producer(16 * MiB, chunk=chunk))
        return StreamResponse(Echo(0), producers[-1]())

    served.server.handle(Upload, download)
    from blobstore.rpc import RpcClient
    from tests.unit.rpc.conftest import SECRET

    budget = StreamBudget(total, base_bytes=base, max_bytes=most)
    client = RpcClient(SECRET, stream_budget=budget)
    try:
        _, alone = await client.call_stream(served.addr, Upload("a"), timeout_s=60)
        consumed = len(await anext(alone))
        await eventually(lambda: producers[0].produced - consumed >= most - chunk)
        await _parked(served, 1)
        assert producers[0].produced - consumed <= most + chunk
        await alone.aclose()
        assert budget.active == 0

        bodies = [
            (await client.call_stream(served.addr, Upload(str(i)), timeout_s=60))[1]
            for i in range(8)
        ]
        assert budget.active == 8
        share = budget.share()
        assert share == base  # 2 MiB among 8: a quarter MiB each, the base
        # streams that opened while fewer were open may have been granted more; once
        # each consumer took more than that, none is granted past its share any more
        taken = [0] * 8
        for i, body in enumerate(bodies):
            while taken[i] <= most:
                taken[i] += len(await anext(body))
        await _parked(served, 8)
        ahead = [p.produced - t for p, t in zip(producers[1:], taken, strict=True)]
        assert all(a <= share + chunk for a in ahead), ahead
        for body in bodies:  # all read to the end: every stream gives its share back
            async for _ in body:
                pass
        assert budget.active == 0
        assert all(p.produced == 16 * MiB for p in producers[1:])
    finally:
        await client.close()


async def test_a_lost_connection_gives_the_budget_back(served: Served) -> None:
    producer = Producer(64 * MiB, chunk=64 * 1024)

    async def download(req: Upload, ctx: CallContext) -> StreamResponse:
        return StreamResponse(Echo(0), producer())

    served.server.handle(Upload, download)
    from blobstore.rpc import RpcClient
    from tests.unit.rpc.conftest import SECRET

    budget = StreamBudget(8 * MiB)
    client = RpcClient(SECRET, stream_budget=budget)
    try:
        _, body = await client.call_stream(served.addr, Upload("x"), timeout_s=60)
        await anext(body)
        assert budget.active == 1
        await served.server.stop()
        await eventually(lambda: budget.active == 0)
        with pytest.raises(errors.Unavailable):
            async for _ in body:
                pass
    finally:
        await client.close()
