"""SimNetwork determinism, faults and topology; SimTransport over it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore import errors
from blobstore.clock import SimClock
from blobstore.rpc import CallContext, SimNetwork, SimTransport, StreamResponse, TraceEntry
from blobstore.types import Address
from tests.unit.rpc.fixture_messages import Echo, Slow, Upload


@dataclass(frozen=True, slots=True)
class Vote:
    term: int


def _net(seed: int, nodes: int = 5) -> tuple[SimNetwork, SimClock, list[tuple[int, int, object]]]:
    clock = SimClock()
    net = SimNetwork(random.Random(seed), clock)
    inbox: list[tuple[int, int, object]] = []
    for n in range(1, nodes + 1):

        def deliver(src: int, msg: object, n: int = n) -> None:
            inbox.append((src, n, msg))

        net.register(n, deliver)
    return net, clock, inbox


def _chaos_run(seed: int) -> list[TraceEntry]:
    net, clock, _ = _net(seed)
    net.configure(drop_prob=0.2, duplicate_prob=0.1, min_delay_s=0.001, max_delay_s=0.05)
    script = random.Random(seed ^ 0xABC)
    for step in range(300):
        src, dst = script.randint(1, 5), script.randint(1, 5)
        net.send(src, dst, Vote(step) if step % 2 else Echo(step))
        if step == 100:
            net.partition({1, 2}, {3, 4, 5})
        if step == 150:
            net.crash(4)
        if step == 200:
            net.heal()
            net.restart(4)
            net.block(5, 1)
        clock.advance(script.uniform(0, 0.01))
    clock.advance(1.0)
    return net.trace


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32))
def test_same_seed_same_trace(seed: int) -> None:
    first, second = _chaos_run(seed), _chaos_run(seed)
    assert first == second
    assert any(e[1] == "deliver" for e in first)


def test_different_seeds_differ() -> None:
    assert _chaos_run(1) != _chaos_run(2)


def test_delays_reorder_and_everything_arrives_without_faults() -> None:
    net, clock, inbox = _net(7)
    net.configure(min_delay_s=0.0, max_delay_s=0.1)
    for i in range(50):
        net.send(1, 2, Echo(i))
    clock.advance(1)
    seqs = [m.seq for _, _, m in inbox if isinstance(m, Echo)]
    assert sorted(seqs) == list(range(50)) and seqs != list(range(50))


def test_symmetric_partition_blocks_exactly_the_named_links() -> None:
    net, clock, inbox = _net(3)
    net.partition({1, 2}, {3, 4})
    for src in range(1, 6):
        for dst in range(1, 6):
            net.send(src, dst, Echo(src * 10 + dst))
    clock.advance(1)
    got = {(s, d) for s, d, _ in inbox}
    cut = {(a, b) for a in (1, 2) for b in (3, 4)} | {(b, a) for a in (1, 2) for b in (3, 4)}
    assert got == {(s, d) for s in range(1, 6) for d in range(1, 6)} - cut
    assert net.stats(Echo).dropped == len(cut)


def test_one_way_block_and_isolate() -> None:
    net, clock, inbox = _net(3)
    net.block(1, 2)
    net.send(1, 2, Echo(1))
    net.send(2, 1, Echo(2))
    clock.advance(1)
    assert [(s, d) for s, d, _ in inbox] == [(2, 1)]
    inbox.clear()
    net.block(2, 1)
    net.unblock(1, 2)
    net.send(1, 2, Echo(3))
    net.send(2, 1, Echo(4))
    clock.advance(1)
    assert [(s, d) for s, d, _ in inbox] == [(1, 2)]
    inbox.clear()
    net.heal()
    net.isolate(3)
    for other in (1, 2):
        net.send(3, other, Echo(0))
        net.send(other, 3, Echo(0))
    net.send(1, 2, Echo(9))
    clock.advance(1)
    assert [(s, d) for s, d, _ in inbox] == [(1, 2)]
    inbox.clear()
    net.rejoin(3)
    net.send(3, 1, Echo(0))
    clock.advance(1)
    assert [(s, d) for s, d, _ in inbox] == [(3, 1)]


def test_partition_cuts_messages_already_in_flight() -> None:
    net, clock, inbox = _net(3)
    net.configure(min_delay_s=0.5, max_delay_s=0.5)
    net.send(1, 2, Echo(1))
    net.partition({1}, {2})
    clock.advance(1)
    assert inbox == []
    assert [e[1] for e in net.trace] == ["send", "drop-partition"]


def test_crash_drops_in_flight_and_silences_the_node() -> None:
    net, clock, inbox = _net(3)
    net.configure(min_delay_s=0.5, max_delay_s=0.5)
    net.send(1, 2, Echo(1))
    net.crash(2)
    net.restart(2)  # restarted before arrival: the old message is still lost
    net.send(1, 2, Echo(2))
    net.crash(3)
    net.send(3, 1, Echo(3))
    net.send(1, 3, Echo(4))
    clock.advance(1)
    assert [m for _, _, m in inbox] == [Echo(2)]
    assert net.stats(Echo) == net.stats("Echo")
    stats = net.stats(Echo)
    assert (stats.sent, stats.delivered, stats.dropped) == (4, 1, 3)


def test_a_crashed_senders_last_messages_still_arrive_unless_cut() -> None:
    net, clock, inbox = _net(3)
    net.configure(min_delay_s=0.5, max_delay_s=0.5)
    net.send(1, 2, Echo(1))
    net.send(1, 3, Echo(2))
    net.crash(1)
    net.block(1, 3)
    clock.advance(1)
    assert [(s, d, m) for s, d, m in inbox] == [(1, 2, Echo(1))]


def test_loss_and_duplication_are_counted_per_type() -> None:
    net, clock, inbox = _net(11)
    net.configure(drop_prob=0.3, duplicate_prob=0.3)
    for i in range(200):
        net.send(1, 2, Vote(i))
    clock.advance(1)
    s = net.stats(Vote)
    assert s.sent == 200 and 0 < s.dropped < 200 and s.duplicated > 0
    assert s.delivered == s.sent - s.dropped + s.duplicated == len(inbox)
    assert [x.type_name for x in net.all_stats()] == ["Vote"]


def test_bad_knobs_and_groups_are_rejected() -> None:
    net, _, _ = _net(1)
    with pytest.raises(ValueError):
        net.configure(min_delay_s=2, max_delay_s=1)
    with pytest.raises(ValueError):
        net.partition({1, 2}, {2, 3})


# -- SimTransport ------------------------------------------------------------------------


async def _drive(clock: SimClock, aw: asyncio.Future[Any], limit_s: float = 60) -> Any:
    while not aw.done():
        if clock.now > limit_s:
            raise AssertionError("simulation did not finish")
        await SimTransport.pump(clock, 0.01)
    return aw.result()


async def test_sim_transport_calls_streams_messages_and_deadlines() -> None:
    clock = SimClock()
    net = SimNetwork(random.Random(5), clock)
    addrs = {Address("10.0.0.1", 1): 1, Address("10.0.0.2", 1): 2}
    a, b = (SimTransport(net, n, addrs) for n in (1, 2))
    b_addr = Address("10.0.0.2", 1)

    async def echo(req: Echo, ctx: CallContext) -> Echo:
        return Echo(req.seq, req.text + "!")

    async def slow(req: Slow, ctx: CallContext) -> Echo:
        if req.seconds < 0:
            raise errors.NotLeader("no", leader="3")
        await clock.sleep(req.seconds)
        return Echo(0)

    async def upload(req: Upload, ctx: CallContext) -> StreamResponse:
        data = b"".join([bytes(c) async for c in ctx.body])

        async def back() -> AsyncIterator[bytes]:
            yield data[::-1]

        return StreamResponse(Echo(len(data)), back())

    b.handle(Echo, echo)
    b.handle(Slow, slow)
    b.handle(Upload, upload)
    got: list[object] = []
    b.on_message(Echo, got.append)

    assert await _drive(clock, asyncio.ensure_future(a.call(b_addr, Echo(1), timeout_s=1))) == Echo(
        1, "!"
    )

    async def body() -> AsyncIterator[bytes | memoryview]:
        yield b"abc"
        yield memoryview(b"def")

    fut = asyncio.ensure_future(a.call(b_addr, Upload("x"), timeout_s=1, body=body()))
    assert await _drive(clock, fut) == Echo(6)
    fut2 = asyncio.ensure_future(a.call_stream(b_addr, Upload("x"), timeout_s=1))
    header, stream = await _drive(clock, fut2)
    assert header == Echo(0) and [bytes(c) async for c in stream] == []

    with pytest.raises(errors.DeadlineExceeded):
        await _drive(clock, asyncio.ensure_future(a.call(b_addr, Slow(5), timeout_s=1)))
    with pytest.raises(errors.NotLeader):
        await _drive(clock, asyncio.ensure_future(a.call(b_addr, Slow(-1), timeout_s=1)))

    await a.send(b_addr, Echo(9))
    await SimTransport.pump(clock, 0.1)
    assert got == [Echo(9)]

    net.partition({1}, {2})
    with pytest.raises(errors.DeadlineExceeded):
        await _drive(clock, asyncio.ensure_future(a.call(b_addr, Echo(2), timeout_s=0.5)))
    net.heal()
    with pytest.raises(errors.Unavailable):
        await a.call(Address("10.9.9.9", 1), Echo(1), timeout_s=1)
    await a.close()
    await b.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_long_chaos_runs_are_deterministic(seed: int) -> None:
    def run() -> list[TraceEntry]:
        net, clock, _ = _net(seed, nodes=7)
        net.configure(drop_prob=0.1, duplicate_prob=0.05, min_delay_s=0.0, max_delay_s=0.2)
        script = random.Random(seed)
        for step in range(20_000):
            net.send(script.randint(1, 7), script.randint(1, 7), Vote(step))
            if step % 1000 == 0:
                groups = list(range(1, 8))
                script.shuffle(groups)
                net.partition(set(groups[:3]), set(groups[3:]))
            if step % 1500 == 0:
                net.crash(script.randint(1, 7))
            if step % 1700 == 0:
                net.heal()
                for n in range(1, 8):
                    net.restart(n)
            clock.advance(script.uniform(0, 0.002))
        clock.advance(10)
        return net.trace

    assert run() == run()


def test_a_slow_node_delays_its_messages_both_ways() -> None:
    net, clock, inbox = _net(4)
    net.configure(min_delay_s=0.01, max_delay_s=0.01)
    net.slow(2, 0.5)
    net.send(1, 2, Echo(1))
    net.send(2, 1, Echo(2))
    net.send(1, 3, Echo(3))
    clock.advance(0.1)
    assert [m.seq for _, _, m in inbox if isinstance(m, Echo)] == [3]
    clock.advance(0.5)
    assert sorted(m.seq for _, _, m in inbox if isinstance(m, Echo)) == [1, 2, 3]
    net.slow(2, 0)
    net.send(1, 2, Echo(4))
    clock.advance(0.02)
    assert [m.seq for _, _, m in inbox if isinstance(m, Echo)][-1] == 4


def test_a_paused_node_holds_its_traffic_until_it_resumes() -> None:
    net, clock, inbox = _net(5)
    net.configure(min_delay_s=0.01, max_delay_s=0.01)
    net.pause(2)
    net.send(1, 2, Echo(1))  # arrives, waits in the stopped process's socket
    net.send(2, 3, Echo(2))  # a stopped process sends nothing
    net.send(3, 2, Echo(3))
    net.send(1, 3, Echo(4))
    clock.advance(1.0)
    assert [m.seq for _, _, m in inbox] == [4]
    net.send(1, 2, Echo(5))
    clock.advance(1.0)
    net.resume(2)  # what arrived is delivered at once: in order per sender, senders mixed
    got = [(src, dst, m.seq) for src, dst, m in inbox[1:]]
    assert sorted(got) == [(1, 2, 1), (1, 2, 5), (3, 2, 3)]
    assert got.index((1, 2, 1)) < got.index((1, 2, 5))
    clock.advance(0.02)  # what it held is sent now
    assert [(src, dst, m.seq) for src, dst, m in inbox[4:]] == [(2, 3, 2)]
    assert any(event == "hold" for _, event, *_ in net.trace)


def test_a_paused_node_that_crashes_loses_what_it_held() -> None:
    net, clock, inbox = _net(6)
    net.pause(2)
    net.send(1, 2, Echo(1))
    net.send(2, 1, Echo(2))
    clock.advance(1.0)
    net.crash(2)
    net.restart(2)
    net.resume(2)  # no longer paused: a no-op
    clock.advance(1.0)
    assert inbox == []
    net.send(1, 2, Echo(3))
    clock.advance(1.0)
    assert [m.seq for _, _, m in inbox] == [3]
