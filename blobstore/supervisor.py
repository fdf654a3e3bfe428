"""Run a set of role processes under one parent: start, wait ready, restart, stop.

What ``blobstore server`` uses to run a whole cluster on one machine. Each child runs in
its own session (so a terminal's Ctrl-C reaches only the supervisor, which then stops the
children in order), gets ``PR_SET_PDEATHSIG`` so it dies with a ``kill -9``-ed supervisor
(no orphans), and logs to its own file. A child that exits while the supervisor runs is
restarted with exponential backoff. Readiness is polled with a deadline, never slept.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from blobstore.log import get_logger

__all__ = [
    "DIE_WITH_PARENT_ENV",
    "RoleSpec",
    "Supervisor",
    "die_with_parent",
    "die_with_parent_from_env",
    "env_dying_with_me",
    "tcp_ready",
]

log = get_logger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]
_PR_SET_PDEATHSIG = 1
# names the pid a ``blobstore`` process must die with (``die_with_parent_from_env``)
DIE_WITH_PARENT_ENV = "BLOBSTORE_DIE_WITH_PARENT"


def die_with_parent(sig: int = signal.SIGKILL, parent_pid: int | None = None) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux), so a
    ``kill -9`` of a parent leaves no orphan serving its port. With ``parent_pid``, exit at
    once if the parent is already gone (it died before the request took effect)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def die_with_parent_from_env() -> None:
    """Die with the parent ``DIE_WITH_PARENT_ENV`` names, if it is set (and drop it from
    the environment, so this process's own children do not inherit it).

    For harnesses that start roles with ``subprocess.Popen``: set in the child after
    ``exec``, this needs no ``preexec_fn`` (unsafe in a parent with threads). The kernel
    ties the signal to the thread that started the child, so start it from a thread that
    lives as long as the child should (a test's main thread)."""
    value = os.environ.pop(DIE_WITH_PARENT_ENV, "")
    if value.isdigit():
        die_with_parent(signal.SIGKILL, int(value))


def env_dying_with_me(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) plus ``DIE_WITH_PARENT_ENV`` naming
    this process: a ``blobstore`` child started with it is killed if this process dies
    (a test run killed with SIGKILL leaves no cluster behind holding its ports)."""
    out = dict(os.environ if env is None else env)
    out[DIE_WITH_PARENT_ENV] = str(os.getpid())
    return out


def _die_with_parent() -> None:  # runs in the child between fork and exec
    die_with_parent(signal.SIGKILL)


def tcp_ready(host: str, port: int, timeout_s: float = 0.5) -> ReadyCheck:
    """A readiness check: something accepts TCP connections on host:port."""

    async def check() -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    return check


@dataclass(slots=True)
class RoleSpec:
    """One child process: its name, command line, log file and readiness check."""

    name: str
    argv: Sequence[str]
    log_path: Path
    ready: ReadyCheck | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Child:
    spec: RoleSpec
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    task: asyncio.Task[None] | None = None


class Supervisor:
    """Starts children, restarts the ones that die, and stops them all on request."""

    def __init__(
        self,
        specs: Sequence[RoleSpec],
        *,
        restart_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self._children = {s.name: _Child(s) for s in specs}
        if len(self._children) != len(specs):
            raise ValueError("role names must be unique")
        self._backoff = restart_backoff_s
        self._max_backoff = max_backoff_s
        self._stop_timeout = stop_timeout_s
        self._stopping = False

    def pid(self, name: str) -> int | None:
        proc = self._children[name].proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def restarts(self, name: str) -> int:
        return self._children[name].restarts

    async def _spawn(self, child: _Child) -> None:
        spec = child.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = await asyncio.to_thread(open, spec.log_path, "ab")
        try:
            child.proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env={**os.environ, **spec.env},
            )
        finally:
            out.close()
        log.info("role started", role=spec.name, pid=child.proc.pid)

    async def _watch(self, child: _Child) -> None:
        delay = self._backoff
        while not self._stopping:
            assert child.proc is not None
            code = await child.proc.wait()
            if self._stopping:
                return
            log.warning("role exited; restarting", role=child.spec.name, code=code, in_s=delay)
            await asyncio.sleep(delay)  # restart backoff, not a readiness wait
            if self._stopping:
                return
            child.restarts += 1
            await self._spawn(child)
            delay = min(delay * 2, self._max_backoff)

    async def start(self, ready_timeout_s: float = 60.0) -> None:
        """Start every child, then wait (with a deadline) until each reports ready."""
        for child in self._children.values():
            await self._spawn(child)
            child.task = asyncio.create_task(self._watch(child), name=f"watch-{child.spec.name}")
        await self.wait_ready(ready_timeout_s)

    async def wait_ready(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pending = {c.spec.name: c.spec.ready for c in self._children.values() if c.spec.ready}
        while pending:
            for name, check in list(pending.items()):
                if await check():
                    del pending[name]
            if not pending:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"roles not ready after {timeout_s:.0f}s: {sorted(pending)}")
            await asyncio.sleep(0.05)  # poll interval of a deadline-bounded wait

    async def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one child (tests use this to crash a role)."""
        proc = self._children[name].proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(sig)

    async def stop(self) -> None:
        """SIGTERM every child, wait up to the stop timeout, then SIGKILL stragglers."""
        self._stopping = True
        procs = [c.proc for c in self._children.values() if c.proc and c.proc.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        waits = [asyncio.ensure_future(p.wait()) for p in procs]
        if waits:
            _, late = await asyncio.wait(waits, timeout=self._stop_timeout)
            for proc in procs:
                if proc.returncode is None:
                    log.warning("role did not stop in time; killing", pid=proc.pid)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            if late:
                await asyncio.wait(late)
        for child in self._children.values():
            if child.task is not None:
                child.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child.task
        log.info("all roles stopped")
