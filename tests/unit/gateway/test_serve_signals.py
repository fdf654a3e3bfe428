"""``serve`` with one worker owns SIGTERM/SIGINT in its own process (``_SignalOwner``)."""

from __future__ import annotations

import asyncio
import signal

import uvicorn

from gateway.app import _OwnedServer, _SignalOwner


class _App:
    async def __call__(self, scope: object, receive: object, send: object) -> None:
        return None


def _server() -> uvicorn.Server:
    return _OwnedServer(uvicorn.Config(_App(), lifespan="off", log_config=None))


async def test_a_signal_before_uvicorn_serves_cancels_the_start_up() -> None:
    owner = _SignalOwner()
    owner.task = task = asyncio.ensure_future(asyncio.sleep(3600))
    owner.on_signal(signal.SIGTERM)
    await asyncio.sleep(0)
    assert task.cancelled() and owner.cancelled_start


async def test_signals_while_serving_stop_uvicorn_gracefully_then_at_once() -> None:
    owner = _SignalOwner()
    owner.task = task = asyncio.ensure_future(asyncio.sleep(3600))
    owner.server = server = _server()
    owner.on_signal(signal.SIGTERM)
    assert server.should_exit and not server.force_exit
    owner.on_signal(signal.SIGINT)  # a second Ctrl-C: stop without waiting
    assert server.force_exit
    assert not task.cancelled() and not owner.cancelled_start
    task.cancel()


def test_the_owned_server_leaves_the_process_signal_handlers_alone() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with _server().capture_signals():
        assert signal.getsignal(signal.SIGTERM) is before
