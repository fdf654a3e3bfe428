"""``chunkserver.store.pagecache.resident``: page-cache residency without reading."""

from __future__ import annotations

import os
from pathlib import Path

from chunkserver.store.pagecache import resident
from tests.unit.chunkserver.pagecache import drop, require_droppable


def test_resident_follows_the_page_cache_and_does_not_fill_it(tmp_path: Path) -> None:
    require_droppable(tmp_path)
    path = tmp_path / "f"
    path.write_bytes(os.urandom(300_000))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert resident(fd, 0, 300_000) is True  # just written
        drop(path)
        for _ in range(3):  # asking does not bring pages in
            assert resident(fd) is False
        os.pread(fd, 10, 0)
        assert resident(fd, 0, 1) is True
        assert resident(fd, 310_000, 10) is None  # past the last page
        assert resident(fd, 0, 0) is None
    finally:
        os.close(fd)


def test_an_empty_file_is_not_answered(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert resident(fd) is None
    finally:
        os.close(fd)
