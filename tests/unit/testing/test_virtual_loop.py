"""VirtualTimeLoop: virtual time, inline executor, deadlock detection; LoopClock."""

from __future__ import annotations

import asyncio
import random

import pytest

from blobstore.rpc import SimNetwork
from blobstore.testing.virtual_loop import LoopClock, SimulationDeadlock, SimulationLivelock, run


def test_sleep_moves_virtual_time_without_waiting() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(3600)
        return t0, loop.time()

    # an hour of real sleep would outlast the suite's per-test timeout (300 s): no wall
    # clock assertion needed to tell virtual time from real time
    t0, t1 = run(main())
    assert t0 == 0.0
    assert t1 == pytest.approx(3600)


def test_timers_fire_in_time_order_and_timeouts_expire() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        seen: list[tuple[str, float]] = []

        async def sleeper(name: str, s: float) -> None:
            await asyncio.sleep(s)
            seen.append((name, loop.time()))

        await asyncio.gather(sleeper("c", 3), sleeper("a", 1), sleeper("b", 2))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.sleep(10)
        seen.append(("timeout", loop.time()))
        return seen

    assert run(main()) == [("a", 1), ("b", 2), ("c", 3), ("timeout", 8)]


def test_to_thread_runs_inline() -> None:
    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        got = await asyncio.to_thread(lambda: sum(range(10)))
        return got, loop.time()

    assert run(main()) == (45, 0.0)


def test_to_thread_exception_propagates() -> None:
    def boom() -> None:
        raise ValueError("boom")

    async def main() -> None:
        await asyncio.to_thread(boom)

    with pytest.raises(ValueError, match="boom"):
        run(main())


def test_waiting_forever_is_a_deadlock_not_a_hang() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(SimulationDeadlock):
        run(main())


def test_loop_clock_follows_the_loop_and_drives_a_sim_network() -> None:
    async def main() -> list[tuple[float, str]]:
        loop = asyncio.get_running_loop()
        clock = LoopClock()
        got: list[tuple[float, str]] = []
        net = SimNetwork(random.Random(1), clock)
        net.configure(min_delay_s=0.5, max_delay_s=0.5)
        net.register(1, lambda src, msg: got.append((loop.time(), str(msg))))
        net.register(2, lambda src, msg: None)
        await asyncio.sleep(10)
        assert clock.now == clock.monotonic() == 10
        net.send(2, 1, "hello")
        await clock.sleep(2)
        assert clock.time() - clock.monotonic() == pytest.approx(1_700_000_000.0)
        return got

    assert run(main()) == [(10.5, "hello")]


def test_same_program_same_schedule() -> None:
    async def main(seed: int) -> list[tuple[int, float]]:
        rng = random.Random(seed)
        loop = asyncio.get_running_loop()
        order: list[tuple[int, float]] = []

        async def worker(i: int) -> None:
            for _ in range(5):
                await asyncio.sleep(rng.random())
                order.append((i, loop.time()))

        await asyncio.gather(*(worker(i) for i in range(4)))
        return order

    assert run(main(7)) == run(main(7))
    assert run(main(7)) != run(main(8))


def test_a_busy_wait_is_a_livelock_not_a_hang() -> None:
    async def main() -> None:
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        never = asyncio.get_running_loop().create_future()
        while not never.done():  # asyncio.wait returns at once: a finished task is in the set
            await asyncio.wait({done, never}, return_when=asyncio.FIRST_COMPLETED)

    with pytest.raises(SimulationLivelock):
        run(main())
