"""Deadline-bounded polling for tests: wait for a condition, never a bare sleep.

- ``eventually``: an async test waiting on in-process state (a cheap predicate, polled
  often);
- ``until``: an async probe that returns a value once ready (a catalog query, an RPC);
- ``until_ok``: an async check that returns (passed, why): the failure names the last why;
- ``wait_until``: a blocking test waiting on other processes (HTTP probes, log files).

Each fails with ``AssertionError`` naming what was awaited once its deadline has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["eventually", "until", "until_ok", "wait_until"]

T = TypeVar("T")


async def eventually(
    pred: Callable[[], bool], timeout_s: float = 5.0, interval_s: float = 0.005
) -> None:
    """Poll ``pred`` until it is true; AssertionError once ``timeout_s`` has passed."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(interval_s)


async def until(
    probe: Callable[[], Awaitable[T | None]],
    timeout_s: float,
    what: str,
    interval_s: float = 0.1,
) -> T:
    """Await ``probe`` until it returns a value (not None), and return that value."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        got = await probe()
        if got is not None:
            return got
        if loop.time() > end:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        await asyncio.sleep(interval_s)


async def until_ok(
    check: Callable[[], Awaitable[tuple[bool, str]]],
    timeout_s: float,
    what: str,
    interval_s: float = 0.5,
) -> None:
    """Await ``check`` until it passes; on the deadline, fail with its last reason."""
    why = ""

    async def probe() -> bool | None:
        nonlocal why
        ok, why = await check()
        return True if ok else None

    try:
        await until(probe, timeout_s, what, interval_s)
    except AssertionError as e:
        raise AssertionError(f"{e}: {why}") from None


def wait_until(
    pred: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.25
) -> None:
    """Block until ``pred`` is true (for tests that drive other processes)."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        time.sleep(interval_s)
