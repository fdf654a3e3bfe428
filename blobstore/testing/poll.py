"""Deadline-bounded polling for tests: wait for a condition, never a bare sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["eventually"]


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
