"""Chaos: a real multi-process cluster under a seeded fault schedule (see runner.py).

The short run is in the default suite; the long runs are ``slow``. Replay a failing run
with ``BLOBSTORE_CHAOS_SEED=<seed>`` (printed with the schedule on failure).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.runner import ChaosSpec, run_chaos, seed_from_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


async def test_chaos_short(tmp_path: Path) -> None:
    await run_chaos(tmp_path, ChaosSpec(seed=seed_from_env(20261126), duration_s=15.0))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_chaos_long(tmp_path: Path, seed: int) -> None:
    await run_chaos(
        tmp_path,
        ChaosSpec(seed=seed_from_env(seed), duration_s=90.0, workers=4),
    )
