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
