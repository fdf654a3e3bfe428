"""``gateway.context.BodyStreamResponse``: streams every block, ends the body exactly once,
stops reading the source when the client disconnects, and closes the source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest

from gateway.context import BodyStreamResponse, streaming_response

Message = MutableMapping[str, Any]


async def _never() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_streams_every_block_then_ends() -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cd"

    sent: list[Message] = []

    async def send(m: Message) -> None:
        sent.append(m)

    response = streaming_response(206, [("ETag", '"x"')], source(), 4)
    assert isinstance(response, BodyStreamResponse)
    await response({"type": "http"}, _never, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 206
    assert (b"content-length", b"4") in sent[0]["headers"]
    assert (b"etag", b'"x"') in sent[0]["headers"]
    assert [m["body"] for m in sent[1:]] == [b"ab", b"cd", b""]
    assert [m["more_body"] for m in sent[1:]] == [True, True, False]


async def test_client_disconnect_stops_reading_the_source() -> None:
    produced = 0
    closed = asyncio.Event()
    gone = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        nonlocal produced
        try:
            for _ in range(1000):
                produced += 1
                yield b"x"
                await asyncio.sleep(0)
        finally:
            closed.set()

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(m: Message) -> None:
        if m.get("body") and produced == 3:
            gone.set()

    await BodyStreamResponse(200, [], source())({"type": "http"}, receive, send)
    assert closed.is_set() and produced < 10


async def test_source_failure_propagates_and_closes() -> None:
    closed = False

    async def source() -> AsyncIterator[bytes]:
        nonlocal closed
        try:
            yield b"a"
            raise OSError("shard lost")
        finally:
            closed = True

    sent: list[Message] = []

    async def send(m: Message) -> None:
        sent.append(m)

    with pytest.raises(OSError):
        await BodyStreamResponse(200, [], source())({"type": "http"}, _never, send)
    assert closed and not any(m.get("more_body") is False for m in sent)
