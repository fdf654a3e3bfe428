from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.storage.harness import KINDS, LogHarness


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogHarness]:
    h = LogHarness(request.param, tmp_path / "wal")
    yield h
    h.close()
