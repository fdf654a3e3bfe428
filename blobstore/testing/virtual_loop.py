"""An asyncio event loop on virtual time, for deterministic simulations of async code.

``VirtualTimeLoop`` is a selector event loop whose clock is virtual: ``time()`` starts at 0
and moves only when nothing is ready to run, straight to the next timer, without waiting.
Code under test uses asyncio as in production (``sleep``, ``timeout``, ``call_later``,
tasks, ``to_thread``); a simulated minute costs only the callbacks that run in it. Work
handed to the default executor runs inline (``InlineExecutor``), so ``asyncio.to_thread``
completes at once on the loop's thread. With no real I/O, a run is a function of its
inputs: same seed, same schedule, same result.

``LoopClock`` is a ``blobstore.clock.SimClock`` that follows the loop's virtual time, so a
``SimNetwork`` and every component that takes a ``Clock`` share one time line; its
callbacks fire from loop timers.

Not for sockets, subprocesses or threads of one's own: the selector has no I/O to wait
for. A loop with nothing ready and no timer pending can never make progress again: it
raises ``SimulationDeadlock`` instead of hanging. A loop that runs ``max_spins``
iterations without time moving is busy-waiting (a task that re-schedules itself at once,
forever, as ``asyncio.wait`` over an already finished task does): it raises
``SimulationLivelock``, where real time would have burnt a core.

Run a coroutine with ``run(main())``, or ``asyncio.Runner(loop_factory=VirtualTimeLoop)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import selectors
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from blobstore.clock import SimClock, SimTimer

__all__ = [
    "InlineExecutor",
    "LoopClock",
    "SimulationDeadlock",
    "SimulationLivelock",
    "VirtualTimeLoop",
    "run",
]

T = TypeVar("T")


class SimulationDeadlock(RuntimeError):
    """Nothing is ready and no timer is pending: every task waits on something that will
    never happen."""


class SimulationLivelock(RuntimeError):
    """The loop kept running callbacks without virtual time ever moving: a busy wait."""


class InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs each submitted call at once on the submitting thread (deterministic)."""

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


class _NoIoSelector(selectors.BaseSelector):
    """Never reports I/O; a timed ``select`` moves the loop's virtual time instead."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._map: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, _fd(fileobj), events, data)
        self._map[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._map.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise SimulationDeadlock("nothing is ready to run and no timer is pending")
        self._loop.advance(timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._map

    def close(self) -> None:
        self._map.clear()


def _fd(fileobj: Any) -> int:
    return fileobj if isinstance(fileobj, int) else int(fileobj.fileno())


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is virtual (see the module docstring)."""

    def __init__(self, *, max_spins: int = 100_000) -> None:
        self._virtual_now = 0.0
        self.max_spins = max_spins
        self._spins = 0  # loop iterations since time last moved
        super().__init__(selector=_NoIoSelector(self))
        self.set_default_executor(InlineExecutor())

    def _run_once(self) -> None:
        before = self._virtual_now
        super()._run_once()  # type: ignore[misc]
        if self._virtual_now != before:
            self._spins = 0
            return
        self._spins += 1
        if self._spins > self.max_spins:
            spins, self._spins = self._spins, 0  # let the caller's clean-up run
            raise SimulationLivelock(
                f"{spins} loop iterations at virtual time {before:.6f}: a busy wait"
            )

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move virtual time forward (the loop does this itself when idle)."""
        if seconds < 0:
            raise ValueError("cannot move time backwards")
        self._virtual_now += seconds

    def _write_to_self(self) -> None:
        """Nothing reads the self-pipe: callbacks from other threads are not supported."""

    async def shutdown_default_executor(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 (asyncio's own signature)
    ) -> None:
        """The inline executor has no threads to join."""


def run(main: Coroutine[Any, Any, T], *, debug: bool | None = None) -> T:
    """Run ``main`` to completion on a fresh ``VirtualTimeLoop``."""
    with asyncio.Runner(debug=debug, loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)


class LoopClock(SimClock):
    """A ``SimClock`` on the running loop's time: its callbacks fire from loop timers."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        self._loop = loop or asyncio.get_running_loop()
        super().__init__(start=self._loop.time(), **kwargs)

    @property
    def now(self) -> float:
        return self._loop.time()

    def monotonic(self) -> float:
        return self._loop.time()

    def time(self) -> float:
        return self._epoch + self._loop.time()

    def call_at(self, t: float, fn: Callable[[], object]) -> SimTimer:
        timer = super().call_at(max(float(t), self.now), fn)
        self._loop.call_at(timer.when, self._fire)
        return timer

    def call_later(self, dt: float, fn: Callable[[], object]) -> SimTimer:
        return self.call_at(self.now + max(0.0, dt), fn)

    def _fire(self) -> None:
        self.run_until(self._loop.time())
