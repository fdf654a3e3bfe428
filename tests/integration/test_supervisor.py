"""The supervisor starts children, waits for readiness, restarts crashes, stops cleanly."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from blobstore.supervisor import RoleSpec, Supervisor, tcp_ready
from blobstore.testing.poll import eventually
from blobstore.testing.ports import free_port

pytestmark = pytest.mark.integration

SERVER = """
import asyncio, signal, sys
async def main():
    srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", int(sys.argv[1]))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("serving", flush=True)
    await stop.wait()
    print("clean stop", flush=True)
asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_start_restart_stop(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    specs = [
        RoleSpec(
            f"r{i}",
            [sys.executable, "-c", SERVER, str(port)],
            tmp_path / f"r{i}.log",
            ready=tcp_ready("127.0.0.1", port),
        )
        for i, port in enumerate(ports)
    ]
    sup = Supervisor(specs, restart_backoff_s=0.05)
    await sup.start(ready_timeout_s=30)
    try:
        first = sup.pid("r0")
        assert first is not None
        await sup.kill("r0", signal.SIGKILL)
        await eventually(lambda: sup.restarts("r0") == 1 and sup.pid("r0") not in (None, first), 20)
        await sup.wait_ready(30)
        assert not _alive(first)
    finally:
        pids = [sup.pid("r0"), sup.pid("r1")]
        await sup.stop()
    for pid in pids:
        assert pid is not None and not _alive(pid)
    assert "clean stop" in (tmp_path / "r1.log").read_text()


async def test_ready_timeout_names_the_role(tmp_path: Path) -> None:
    spec = RoleSpec(
        "never",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        tmp_path / "n.log",
        ready=tcp_ready("127.0.0.1", free_port()),
    )
    sup = Supervisor([spec], stop_timeout_s=2)
    with pytest.raises(TimeoutError, match="never"):
        await sup.start(ready_timeout_s=0.5)
    await sup.stop()
