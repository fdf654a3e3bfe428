"""Run a FUSE client (s3fs, ``rclone mount``) in the foreground for an e2e test.

``mounted(argv, mountpoint, env)`` starts the client as our own child process (its own
session), waits until ``mountpoint`` is a mount point (polled with a deadline; the process
dying fails the test with its output), yields, then unmounts (``fusermount3 -u``, or
``umount`` when that is missing), waits for the client to exit and finally kills it --
by its pid, never by name -- if it is still there. Everything the client printed is in
``<mountpoint>.log``.

``fuse_usable()`` says why FUSE cannot work here (no /dev/fuse, no unmount tool), or None.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["fuse_usable", "mounted", "unmount"]


def fuse_usable() -> str | None:
    """None if a FUSE mount can work here, else the reason it cannot."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (no FUSE in this container)"
    if shutil.which("fusermount3") is None and shutil.which("umount") is None:
        return "neither fusermount3 (Debian package fuse3) nor umount is installed"
    return None


def unmount(mountpoint: Path) -> None:
    tool = shutil.which("fusermount3")
    argv = [tool, "-u", str(mountpoint)] if tool else ["umount", str(mountpoint)]
    subprocess.run(argv, capture_output=True, timeout=60, check=False)


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-4000:]
    except OSError:
        return ""


@contextlib.contextmanager
def mounted(
    argv: list[str], mountpoint: Path, env: dict[str, str], *, timeout_s: float = 60
) -> Iterator[Path]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    log = mountpoint.with_name(mountpoint.name + ".log")
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None:
                pytest.fail(
                    f"{argv[0]} exited with {proc.returncode} before mounting\n{_tail(log)}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"{argv[0]} did not mount {mountpoint} in {timeout_s} s\n{_tail(log)}")
            time.sleep(0.05)  # polling for the mount, bounded by the deadline above
        yield mountpoint
    finally:
        if os.path.ismount(mountpoint):
            unmount(mountpoint)
        try:
            proc.wait(timeout=60)  # a FUSE client finishes its uploads, then exits
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            if os.path.ismount(mountpoint):
                subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)
            pytest.fail(f"{argv[0]} did not exit after the unmount\n{_tail(log)}")
