"""The CLI turns user mistakes into one error line and a usage exit status."""

from __future__ import annotations

import subprocess
import sys

import pytest

from blobstore.cli.main import main


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("metadata", "chunkserver", "gateway"):
        assert command in out


def test_bad_peers_is_one_line_not_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "blobstore", "metadata", "--peers", "garbage"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: peers (flag): peer 'garbage' is not ID=HOST:PORT"
    assert "Traceback" not in proc.stderr


def test_a_child_of_a_gone_harness_exits_at_once() -> None:
    """`blobstore` honours BLOBSTORE_DIE_WITH_PARENT before anything else: a value naming
    another process than its parent means that parent is gone, so it exits at once (no
    orphan). (That the variable is not handed on to its own children is checked in
    tests/integration/test_supervisor.py.)"""
    from blobstore.supervisor import DIE_WITH_PARENT_ENV, env_dying_with_me

    gone = env_dying_with_me()
    gone[DIE_WITH_PARENT_ENV] = "1"  # init, not our parent: as if the parent had died
    proc = subprocess.run(
        [sys.executable, "-m", "blobstore", "--version"], env=gone, capture_output=True, timeout=60
    )
    assert (proc.returncode, proc.stdout) == (1, b"")
    proc = subprocess.run(
        [sys.executable, "-m", "blobstore", "--version"],
        env=env_dying_with_me(),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.startswith(b"blobstore ")
