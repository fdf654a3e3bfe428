"""Clocks: the one place that reads time, so tests can replace it.

``Clock`` is the Protocol every async component takes (``time``, ``monotonic``, ``sleep``).
``SystemClock`` reads the real clocks. ``SimClock`` is a deterministic virtual clock for
simulations: callbacks scheduled with ``call_at``/``call_later`` fire in (time, insertion
sequence) order when the driver calls ``advance``/``run_until``/``run_next``; nothing moves
on its own. ``SimClock.sleep`` parks a coroutine until the virtual time passes its wake-up
point (some driver must advance the clock).

Invariants: virtual time never goes backwards; callbacks scheduled for the same instant fire
in the order they were scheduled; a callback scheduled while firing at time ``t`` for time
``<= t`` fires within the same ``advance``/``run_until`` call.

Must not import: anything from the project (stdlib only).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SimClock", "SimTimer", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Source of wall time, monotonic time and sleeping."""

    def time(self) -> float:
        """Wall-clock time, seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """A monotonic clock in seconds (arbitrary origin)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for ``seconds``."""
        ...


class SystemClock:
    """The real clocks of this process."""

    __slots__ = ()

    def time(self) -> float:
        return _time.time()

    def monotonic(self) -> float:
        return _time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass(eq=False, slots=True)
class SimTimer:
    """Handle of a callback scheduled on a SimClock (pass it to ``cancel``)."""

    when: float
    seq: int
    fn: Callable[[], object] = field(repr=False)
    cancelled: bool = False


class SimClock:
    """Deterministic virtual time; callbacks fire in (time, insertion seq) order."""

    def __init__(self, start: float = 0.0, *, epoch: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._epoch = epoch
        self._seq = itertools.count()
        self._heap: list[tuple[float, int, SimTimer]] = []

    @property
    def now(self) -> float:
        """Current virtual time in seconds."""
        return self._now

    def time(self) -> float:
        """Virtual wall time: a fixed epoch plus the virtual time."""
        return self._epoch + self._now

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Park until the virtual clock has advanced by ``seconds``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.call_later(max(0.0, seconds), wake)
        try:
            await fut
        finally:
            self.cancel(timer)

    def call_at(self, t: float, fn: Callable[[], object]) -> SimTimer:
        """Schedule ``fn()`` at virtual time ``t`` (clamped to now)."""
        timer = SimTimer(max(float(t), self._now), next(self._seq), fn)
        heapq.heappush(self._heap, (timer.when, timer.seq, timer))
        return timer

    def call_later(self, dt: float, fn: Callable[[], object]) -> SimTimer:
        """Schedule ``fn()`` ``dt`` seconds from now."""
        return self.call_at(self._now + max(0.0, dt), fn)

    def cancel(self, handle: SimTimer) -> None:
        """Cancel a pending callback; cancelling a fired or cancelled one is a no-op."""
        handle.cancelled = True

    def pending(self) -> int:
        """Number of scheduled, not cancelled callbacks."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)

    def run_next(self) -> bool:
        """Fire the earliest callback (moving time to it); False if none is scheduled."""
        self._drop_cancelled()
        if not self._heap:
            return False
        when, _, timer = heapq.heappop(self._heap)
        self._now = max(self._now, when)
        timer.cancelled = True
        timer.fn()
        return True

    def run_until(self, t: float) -> int:
        """Fire every callback due at or before ``t`` in order, then set time to ``t``."""
        fired = 0
        while True:
            self._drop_cancelled()
            if not self._heap or self._heap[0][0] > t:
                break
            self.run_next()
            fired += 1
        self._now = max(self._now, float(t))
        return fired

    def advance(self, dt: float) -> int:
        """Move time forward by ``dt``, firing due callbacks; returns how many fired."""
        if dt < 0:
            raise ValueError("cannot advance a clock backwards")
        return self.run_until(self._now + dt)
