"""The supervisor starts children, waits for readiness, restarts crashes, stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from blobstore.supervisor import RoleSpec, Supervisor, tcp_ready
from blobstore.testing.poll import eventually
from blobstore.testing.ports import free_port, free_ports

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


def _gone(pid: int) -> bool:
    """Exited (an unreaped zombie counts: it no longer runs)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def test_start_restart_stop(tmp_path: Path) -> None:
    ports = free_ports(2)
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


REAPER = """
import ctypes, os, subprocess, sys, time
# be the subreaper (as systemd, docker-init or a supervisor would be): orphans come here
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
parent = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE)
child = int(parent.stdout.readline())
assert parent.stdout.readline().strip() == b"armed"  # the orphan shares parent's stdout
print(parent.pid, child, flush=True)
sys.stdin.read()  # until the test closes our stdin
try:
    os.kill(child, 9)
except ProcessLookupError:
    pass
"""

PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())])
print(child.pid, flush=True)
time.sleep(120)
"""

ORPHAN = """
import signal, sys, time
from blobstore.supervisor import die_with_parent
die_with_parent(signal.SIGTERM, int(sys.argv[1]))
print("armed", flush=True)
time.sleep(120)
"""


PARENT_BY_ENV = """
import subprocess, sys, time
from blobstore.supervisor import env_dying_with_me
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], env=env_dying_with_me())
print(child.pid, flush=True)
time.sleep(120)
"""

ORPHAN_BY_ENV = """
import os, time
from blobstore.supervisor import DIE_WITH_PARENT_ENV, die_with_parent_from_env
die_with_parent_from_env()  # what `blobstore` (cli.main) does first
assert DIE_WITH_PARENT_ENV not in os.environ  # its own children do not inherit it
print("armed", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize(
    ("parent", "orphan"), [(PARENT, ORPHAN), (PARENT_BY_ENV, ORPHAN_BY_ENV)], ids=["arg", "env"]
)
async def test_a_child_dies_with_its_kill_9ed_parent(parent: str, orphan: str) -> None:
    """What keeps gateway worker processes from outliving a kill -9 of `blobstore gateway`
    ("arg"), and test clusters from outliving a kill -9 of pytest ("env")."""
    reaper = await asyncio.create_subprocess_exec(
        sys.executable, "-c", REAPER, parent, orphan,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert reaper.stdout is not None and reaper.stdin is not None
    try:
        line = await asyncio.wait_for(reaper.stdout.readline(), 30)
        parent, child = (int(x) for x in line.split())
        assert not _gone(child)
        os.kill(parent, signal.SIGKILL)
        await eventually(lambda: _gone(child), timeout_s=30)
    finally:
        reaper.stdin.close()
        await asyncio.wait_for(reaper.wait(), 30)


async def test_a_child_whose_parent_is_already_gone_exits() -> None:
    # a parent pid that is not ours: the child sees a different parent and exits at once
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", ORPHAN, "1")
    assert await asyncio.wait_for(proc.wait(), 30) == 1
