"""The ``blobstore`` entry point's handling of its environment (not of any command)."""

from __future__ import annotations

import os
import subprocess
import sys

from blobstore.cli.main import EXIT_BROKEN_PIPE


def test_a_reader_that_went_away_ends_the_command_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `blobstore ... | head` after head exited: every write is EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "blobstore.cli.main", "presign", "s3://b/k"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "BLOBSTORE_ACCESS_KEY": "AK", "BLOBSTORE_SECRET_KEY": "SK"},
        )
    finally:
        os.close(write_end)
    assert proc.returncode == EXIT_BROKEN_PIPE
    assert proc.stderr == ""  # no traceback, no "Exception ignored" at exit
