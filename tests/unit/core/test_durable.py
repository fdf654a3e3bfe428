"""``blobstore.durable.write_atomic``: a small file replaced all or nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from unittest import mock

import pytest

from blobstore.durable import write_atomic


def test_creates_then_replaces_with_the_mode_and_no_temp_left(tmp_path: Path) -> None:
    path = tmp_path / "server.id"
    write_atomic(path, b"1\n", 0o600)
    assert path.read_bytes() == b"1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_atomic(path, b"22\n")
    assert path.read_bytes() == b"22\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.id"]


def test_short_writes_are_continued(tmp_path: Path) -> None:
    real = os.write
    path = tmp_path / "f"
    with mock.patch("os.write", lambda fd, data: real(fd, bytes(data[:3]))):
        write_atomic(path, b"0123456789")
    assert path.read_bytes() == b"0123456789"


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.secret"
    write_atomic(path, b"old")

    def fail(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    with mock.patch("os.write", fail), pytest.raises(OSError):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.secret"]
