"""``ObservedRpcServer``: every call is reported once, with outcome, time and bytes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from blobstore import errors
from blobstore.obs.rpc import ObservedRpcServer, RpcServerMetrics, observed, outcome_of
from blobstore.obs.runtime import Observability
from blobstore.rpc import CallContext, Ping, RpcClient, StreamResponse, empty_body
from blobstore.types import Address


@dataclass
class Call:
    method: str
    outcome: str
    seconds: float
    result: object
    sent_bytes: int


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def observe_call(
        self, method: str, outcome: str, seconds: float, result: object, sent_bytes: int
    ) -> None:
        self.calls.append(Call(method, outcome, seconds, result, sent_bytes))


def _ctx() -> CallContext:
    return CallContext("peer", "T", 1e18, empty_body())


async def test_ok_and_error_calls_are_reported() -> None:
    rec = Recorder()

    async def ok(req: object, ctx: CallContext) -> object:
        return "answer"

    async def bad(req: object, ctx: CallContext) -> object:
        raise errors.NoSuchKey("no such key")

    assert await observed("Ok", ok, rec)(None, _ctx()) == "answer"
    with pytest.raises(errors.NoSuchKey):
        await observed("Bad", bad, rec)(None, _ctx())
    assert [(c.method, c.outcome, c.result) for c in rec.calls] == [
        ("Ok", "ok", "answer"),
        ("Bad", "NoSuchKey", None),
    ]
    assert all(c.seconds >= 0 for c in rec.calls)


def test_outcome_labels() -> None:
    assert outcome_of(asyncio.CancelledError()) == "cancelled"
    assert outcome_of(errors.Unavailable("x")) == "Unavailable"
    assert outcome_of(ValueError("x")) == "InternalError"


async def test_streamed_answers_are_reported_at_the_end_with_their_bytes() -> None:
    rec = Recorder()
    closed = []

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"abc"
            yield memoryview(b"defg")
        finally:
            closed.append(True)

    async def stream(req: object, ctx: CallContext) -> object:
        return StreamResponse("hdr", body())

    result = await observed("Read", stream, rec)(None, _ctx())
    assert isinstance(result, StreamResponse) and result.header == "hdr"
    assert rec.calls == []  # not before the stream ends
    got = [bytes(c) async for c in result.body]
    assert got == [b"abc", b"defg"]
    assert [(c.outcome, c.sent_bytes) for c in rec.calls] == [("ok", 7)]
    assert closed == [True]


async def test_abandoned_stream_closes_inner_and_reports_cancelled() -> None:
    rec = Recorder()
    closed = []

    async def body() -> AsyncIterator[bytes]:
        try:
            for _ in range(10):
                yield b"x" * 10
        finally:
            closed.append(True)

    async def stream(req: object, ctx: CallContext) -> object:
        return StreamResponse("hdr", body())

    result = await observed("Read", stream, rec)(None, _ctx())
    assert isinstance(result, StreamResponse)
    it = aiter(result.body)
    await anext(it)
    await it.aclose()  # type: ignore[attr-defined]
    assert closed == [True]
    assert [(c.outcome, c.sent_bytes) for c in rec.calls] == [("cancelled", 10)]


async def test_observed_rpc_server_counts_real_calls() -> None:
    secret = secrets.token_bytes(32)
    hub = Observability("t", base=None)
    metrics = RpcServerMetrics(hub.registry)
    server = ObservedRpcServer(secret, observer=metrics)
    server.handle(Ping, _pong)
    addr = await server.start(Address("127.0.0.1", 0))
    client = RpcClient(secret)
    try:
        for seq in range(3):
            await client.call(addr, Ping(seq, b""), timeout_s=5)
    finally:
        await client.close()
        await server.stop()
    text = (await hub.metrics_text()).decode()
    assert 'blobstore_rpc_server_requests_total{method="Ping",outcome="ok"} 3.0' in text
    assert 'blobstore_rpc_server_request_seconds_count{method="Ping"} 3.0' in text


async def _pong(req: Ping, ctx: CallContext) -> object:
    from blobstore.rpc import Pong

    return Pong(req.seq, req.payload)
