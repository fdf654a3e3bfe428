"""SimClock ordering and SystemClock basics."""

from __future__ import annotations

import asyncio

import pytest

from blobstore.clock import Clock, SimClock, SystemClock


def test_callbacks_fire_in_time_then_insertion_order() -> None:
    clock = SimClock()
    fired: list[str] = []
    clock.call_at(2.0, lambda: fired.append("b"))
    clock.call_later(1.0, lambda: fired.append("a"))
    clock.call_at(2.0, lambda: fired.append("c"))
    doomed = clock.call_at(1.5, lambda: fired.append("x"))
    clock.cancel(doomed)
    assert clock.advance(1.0) == 1
    assert fired == ["a"] and clock.now == 1.0
    clock.run_until(5.0)
    assert fired == ["a", "b", "c"]
    assert clock.now == 5.0
    assert clock.run_next() is False


def test_callbacks_scheduled_while_firing_run_in_the_same_advance() -> None:
    clock = SimClock()
    fired: list[float] = []

    def chain() -> None:
        fired.append(clock.now)
        if len(fired) < 3:
            clock.call_later(0.5, chain)

    clock.call_later(0.5, chain)
    clock.advance(10)
    assert fired == [0.5, 1.0, 1.5]
    assert clock.monotonic() == 10.0
    assert clock.time() == clock.time()  # virtual wall time does not move by itself
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_sim_sleep_wakes_when_time_passes() -> None:
    clock = SimClock()
    task = asyncio.create_task(clock.sleep(3.0))
    await asyncio.sleep(0)
    clock.advance(2.9)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.1)
    await asyncio.wait_for(task, 5)
    assert clock.pending() == 0


async def test_system_clock_is_a_clock() -> None:
    clock = SystemClock()
    assert isinstance(clock, Clock) and isinstance(SimClock(), Clock)
    before = clock.monotonic()
    await clock.sleep(0)
    assert clock.monotonic() >= before and clock.time() > 1e9
