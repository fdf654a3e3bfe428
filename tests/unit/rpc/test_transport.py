"""TCP transport on 127.0.0.1: multiplexing, deadlines, errors, reconnect, auth, bad frames."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator

import pytest

from blobstore import errors
from blobstore.log import current_trace_id, trace_context
from blobstore.rpc import CallContext, Ping, Pong, RpcClient, RpcServer, codec
from blobstore.rpc.frames import FrameType, pack_header
from blobstore.rpc.messages import (
    AuthChallenge,
    AuthConfirm,
    AuthResponse,
    CallHeader,
    client_mac,
)
from blobstore.testing.poll import eventually
from blobstore.types import Address
from tests.unit.rpc.conftest import LOOPBACK, SECRET, Served, echo
from tests.unit.rpc.fixture_messages import Echo, Slow


async def test_thousand_concurrent_calls_share_one_connection(served: Served) -> None:
    replies = await asyncio.gather(
        *(served.client.call(served.addr, Echo(i, str(i)), timeout_s=30) for i in range(1000))
    )
    assert replies == [Echo(i, f"{i}!") for i in range(1000)]
    assert served.client.dial_attempts == 1
    assert len(served.server._links) == 1


async def test_ping_is_built_in(served: Served) -> None:
    assert await served.client.call(served.addr, Ping(7, b"x"), timeout_s=5) == Pong(7, b"x")


async def test_deadline_expires_late_answer_dropped_handler_cancelled(served: Served) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    cancelled: list[bool] = []

    async def slow(req: Slow, ctx: CallContext) -> Echo:
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return Echo(-1)

    served.server.handle(Slow, slow)
    with pytest.raises(errors.DeadlineExceeded):
        await served.client.call(served.addr, Slow(10), timeout_s=0.2)
    assert started.is_set()
    await eventually(lambda: bool(cancelled))  # server cancelled the handler at the deadline
    link = served.client._links[served.addr]
    assert link.pending == {}
    # the link is still healthy and answers are not mixed up
    assert await served.client.call(served.addr, Echo(5), timeout_s=5) == Echo(5, "!")


async def test_late_reply_after_client_deadline_is_dropped(served: Served) -> None:
    release = asyncio.Event()

    async def stubborn(req: Slow, ctx: CallContext) -> Echo:
        await asyncio.shield(release.wait())
        return Echo(-1)

    served.server.handle(Slow, stubborn)
    with pytest.raises(errors.DeadlineExceeded):
        await served.client.call(served.addr, Slow(1), timeout_s=0.1)
    release.set()
    assert await served.client.call(served.addr, Echo(1), timeout_s=5) == Echo(1, "!")


async def test_domain_errors_keep_their_type_and_other_errors_become_internal(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(req: Slow, ctx: CallContext) -> Echo:
        if req.seconds > 0:
            raise errors.NotLeader("not me", leader="n3")
        raise KeyError("oops")

    served.server.handle(Slow, boom)
    with pytest.raises(errors.NotLeader) as info:
        await served.client.call(served.addr, Slow(1), timeout_s=5)
    assert info.value.details == {"leader": "n3"}
    with caplog.at_level(logging.ERROR), pytest.raises(errors.InternalError, match="oops"):
        await served.client.call(served.addr, Slow(0), timeout_s=5)
    assert any("rpc handler failed" in r.getMessage() for r in caplog.records)


async def test_unknown_request_type_is_a_protocol_error(served: Served) -> None:
    with pytest.raises(errors.ProtocolError):
        await served.client.call(served.addr, Slow(1), timeout_s=5)


async def test_trace_id_travels_with_the_call(served: Served) -> None:
    seen: list[tuple[str, str]] = []

    async def traced(req: Slow, ctx: CallContext) -> Echo:
        seen.append((current_trace_id(), ctx.trace_id))
        return Echo(0)

    served.server.handle(Slow, traced)
    with trace_context("ABCDEF0123456789"):
        await served.client.call(served.addr, Slow(0), timeout_s=5)
    assert seen == [("ABCDEF0123456789", "ABCDEF0123456789")]


async def test_reconnects_after_server_restart() -> None:
    server = RpcServer(SECRET)
    server.handle(Echo, echo)
    addr = await server.start(LOOPBACK)
    client = RpcClient(SECRET, backoff_base_s=0.01, backoff_max_s=0.1)
    try:
        assert await client.call(addr, Echo(1), timeout_s=5) == Echo(1, "!")
        await server.stop()
        await eventually(lambda: addr not in client._links)
        with pytest.raises(errors.Unavailable):  # down: dial fails until the deadline
            await client.call(addr, Echo(2), timeout_s=0.2)
        assert client.dial_failures >= 1
        # a call started while the server is down succeeds once it is back (backoff redial)
        pending = asyncio.ensure_future(client.call(addr, Echo(3), timeout_s=10))
        failures = client.dial_failures
        await eventually(lambda: client.dial_failures > failures)
        server = RpcServer(SECRET)
        server.handle(Echo, echo)
        await server.start(addr)
        assert await pending == Echo(3, "!")
        assert await client.call(addr, Echo(4), timeout_s=5) == Echo(4, "!")
    finally:
        await client.close()
        await server.stop()


async def test_pending_calls_fail_when_the_link_drops(served: Served) -> None:
    gate = asyncio.Event()

    async def hang(req: Slow, ctx: CallContext) -> Echo:
        await gate.wait()
        return Echo(0)

    served.server.handle(Slow, hang)
    call = asyncio.ensure_future(served.client.call(served.addr, Slow(1), timeout_s=10))
    await eventually(lambda: any(link.tasks for link in served.server._links))
    await served.server.stop()
    with pytest.raises(errors.Unavailable):
        await call


async def test_wrong_secret_is_refused_and_logged(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    intruder = RpcClient(b"not-the-secret")
    handled: list[object] = []

    async def record(req: Slow, ctx: CallContext) -> Echo:
        handled.append(req)
        return Echo(0)

    served.server.handle(Slow, record)
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(errors.AuthenticationFailed):
            await intruder.call(served.addr, Slow(1), timeout_s=5)
    finally:
        await intruder.close()
    assert handled == []
    assert served.server.refused == 1
    assert any(r.getMessage() == "rpc peer refused" for r in caplog.records)
    assert await served.client.call(served.addr, Echo(1), timeout_s=5) == Echo(1, "!")


async def test_client_refuses_a_server_without_the_secret() -> None:
    done = asyncio.Event()

    async def fake_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            chal = codec.encode(AuthChallenge(1, os.urandom(32)))
            writer.write(pack_header(FrameType.AUTH, 0, 0, len(chal)) + chal)
            await reader.readexactly(12)
            conf = codec.encode(AuthConfirm(b"\0" * 32))
            writer.write(pack_header(FrameType.AUTH, 0, 0, len(conf)) + conf)
            await reader.read()
        finally:
            writer.close()
            done.set()

    srv = await asyncio.start_server(fake_server, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    client = RpcClient(SECRET)
    try:
        with pytest.raises(errors.AuthenticationFailed):
            await client.call(Address("127.0.0.1", port), Echo(1), timeout_s=5)
    finally:
        await client.close()
        await asyncio.wait_for(done.wait(), 5)
        srv.close()
        await srv.wait_closed()


async def _raw_connect(
    addr: Address, *, authenticate: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(addr.host, addr.port)
    head = await reader.readexactly(12)
    chal = codec.decode(await reader.readexactly(int.from_bytes(head[:4], "big")))
    assert isinstance(chal, AuthChallenge)
    if authenticate:
        nonce = os.urandom(32)
        resp = codec.encode(AuthResponse(nonce, client_mac(SECRET, chal.server_nonce, nonce)))
        writer.write(pack_header(FrameType.AUTH, 0, 0, len(resp)) + resp)
        head = await reader.readexactly(12)
        conf = codec.decode(await reader.readexactly(int.from_bytes(head[:4], "big")))
        assert isinstance(conf, AuthConfirm)
    return reader, writer


async def _assert_closed_by_server(reader: asyncio.StreamReader) -> None:
    async with asyncio.timeout(5):
        try:
            while await reader.read(65536):
                pass
        except ConnectionResetError:
            pass  # an aborted link may arrive as a reset rather than EOF


@pytest.mark.parametrize(
    ("authenticate", "junk"),
    [
        (False, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        (False, pack_header(FrameType.REQUEST, 0, 1, 3) + b"abc"),  # request before auth
        (True, b"\xff" * 64),  # bad header
        (True, pack_header(FrameType.REQUEST, 0, 1, 500_000_000)),  # length over the cap
    ],
)
async def test_garbage_closes_that_connection_only(
    served: Served, caplog: pytest.LogCaptureFixture, authenticate: bool, junk: bytes
) -> None:
    with caplog.at_level(logging.WARNING):
        reader, writer = await _raw_connect(served.addr, authenticate=authenticate)
        writer.write(junk)
        await _assert_closed_by_server(reader)
        writer.close()
    assert any(r.getMessage() in ("rpc peer refused", "rpc link dropped") for r in caplog.records)
    assert await served.client.call(served.addr, Echo(1), timeout_s=5) == Echo(1, "!")


async def test_undecodable_request_fails_that_call_only(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        reader, writer = await _raw_connect(served.addr, authenticate=True)
        junk = b"\x93\x01\x02\x03\xc1"
        writer.write(pack_header(FrameType.REQUEST, 0, 7, len(junk)) + junk)
        head = await reader.readexactly(12)
        reply = codec.decode(await reader.readexactly(int.from_bytes(head[:4], "big")))
        assert head[4] == FrameType.RESPONSE and int.from_bytes(head[8:], "big") == 7
        assert isinstance(reply, errors.ProtocolError)
        req = codec.encode(CallHeader(5000, "", Ping(3)))  # the link still works
        writer.write(pack_header(FrameType.REQUEST, 0, 8, len(req)) + req)
        head = await reader.readexactly(12)
        assert codec.decode(await reader.readexactly(int.from_bytes(head[:4], "big"))) == Pong(3)
        writer.close()
    assert any(r.getMessage() == "rpc undecodable request" for r in caplog.records)


async def test_truncated_frame_is_logged_and_server_survives(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        reader, writer = await _raw_connect(served.addr, authenticate=True)
        writer.write(pack_header(FrameType.REQUEST, 0, 1, 100) + b"\x93" * 10)
        writer.write_eof()
        await _assert_closed_by_server(reader)
        writer.close()
    await eventually(
        lambda: any(r.getMessage() == "rpc truncated frame at EOF" for r in caplog.records)
    )
    assert await served.client.call(served.addr, Echo(2), timeout_s=5) == Echo(2, "!")


async def test_one_way_messages_arrive_and_unreachable_peers_drop(served: Served) -> None:
    got: list[object] = []
    served.server.on_message(Echo, got.append)
    for i in range(10):
        await served.client.send(served.addr, Echo(i))
    await eventually(lambda: len(got) == 10)
    assert got == [Echo(i) for i in range(10)]
    # an address nobody listens on: send returns (drops) instead of blocking
    lonely = RpcClient(SECRET, send_timeout_s=0.2, backoff_base_s=1.0)
    try:
        dead = Address("127.0.0.1", _closed_port())
        await asyncio.wait_for(lonely.send(dead, Echo(1)), 5)
        await asyncio.wait_for(lonely.send(dead, Echo(2)), 5)  # in backoff: dropped at once
        assert lonely.dropped_sends == 2
    finally:
        await lonely.close()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(not os.path.exists("/usr/bin/openssl"), reason="openssl CLI not installed")
async def test_tls_links_work(tmp_path: object) -> None:
    import pathlib
    import subprocess

    from blobstore.rpc import build_ssl_context

    d = pathlib.Path(str(tmp_path))

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "node.key",
        "-out",
        "node.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    )
    files = {"cert": d / "node.pem", "key": d / "node.key", "ca": d / "ca.pem"}
    server = RpcServer(SECRET, ssl_context=build_ssl_context(**files, server_side=True))
    server.handle(Echo, echo)
    addr = await server.start(LOOPBACK)
    client = RpcClient(SECRET, ssl_context=build_ssl_context(**files, server_side=False))
    try:
        assert await client.call(addr, Echo(9), timeout_s=10) == Echo(9, "!")
    finally:
        await client.close()
        await server.stop()


async def test_hash_of_streamed_body_matches(served: Served) -> None:
    """A request body streams in and a response body streams out, 16 MiB each way."""
    from tests.unit.rpc.fixture_messages import Upload

    async def upload(req: Upload, ctx: CallContext) -> Echo:
        h = hashlib.sha256()
        async for chunk in ctx.body:
            h.update(chunk)
        return Echo(0, h.hexdigest())

    served.server.handle(Upload, upload)
    block = os.urandom(1 << 20)

    async def body() -> AsyncIterator[memoryview]:
        for i in range(16):
            yield memoryview(block)[i:] if i % 3 else memoryview(block)

    expected = hashlib.sha256()
    for i in range(16):
        expected.update(block[i:] if i % 3 else block)
    reply = await served.client.call(served.addr, Upload("x"), timeout_s=30, body=body())
    assert reply == Echo(0, expected.hexdigest())


async def test_peer_that_never_reads_cannot_grow_server_memory() -> None:
    server = RpcServer(SECRET, max_inflight=8)
    addr = await server.start(LOOPBACK)
    try:
        _, writer = await _raw_connect(addr, authenticate=True)
        big = b"p" * (64 * 1024)
        for sid in range(1, 401):  # 25 MiB of replies requested; we never read them
            req = codec.encode(CallHeader(60_000, "", Ping(sid, big)))
            writer.write(pack_header(FrameType.REQUEST, 0, sid, len(req)) + req)
        link = next(iter(server._links))
        await eventually(lambda: link._reading_paused)
        # max_inflight, plus at most the frames of the read that crossed it (256 KiB scratch)
        assert len(link.tasks) <= 8 + 4
        # what the server holds for us: one write-buffer high-water mark plus one reply per slot
        assert link.write_buffer_size() <= 1024 * 1024 + 13 * (64 * 1024 + 100)
        writer.transport.abort()
    finally:
        await server.stop()


def test_both_transports_satisfy_the_protocol() -> None:
    import random

    from blobstore.clock import SimClock
    from blobstore.rpc import SimNetwork, SimTransport, Transport

    sim = SimTransport(SimNetwork(random.Random(1), SimClock()), 1, {})
    assert isinstance(RpcClient(SECRET), Transport)
    assert isinstance(sim, Transport)


class _InstantClock:
    """A Clock whose sleeps return at once but advance its monotonic time (records them)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return 1e9 + self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds
        await asyncio.sleep(0)


async def test_redial_backoff_is_exponential_and_bounded() -> None:
    clock = _InstantClock()
    client = RpcClient(SECRET, clock=clock, backoff_base_s=0.05, backoff_max_s=0.4)
    dead = Address("127.0.0.1", _closed_port())
    try:
        with pytest.raises(errors.DeadlineExceeded):
            await client.call(dead, Echo(1), timeout_s=0.3)
    finally:
        await client.close()
    assert len(clock.sleeps) >= 6
    assert clock.sleeps[:6] == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]
    assert client.dial_attempts - client.dial_failures <= 1  # the last one hit the deadline


async def test_fail_fast_client_does_not_wait_for_a_dead_peer() -> None:
    client = RpcClient(SECRET, fail_fast=True, backoff_base_s=5.0)
    dead = Address("127.0.0.1", _closed_port())
    try:
        for _ in range(2):  # refused, then inside the backoff window: neither waits
            with pytest.raises(errors.Unavailable) as info:
                await client.call(dead, Echo(1), timeout_s=30)
            assert not isinstance(info.value, errors.DeadlineExceeded)
        assert client.dial_attempts == 1  # the second call did not even dial
    finally:
        await client.close()
