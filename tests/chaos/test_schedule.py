"""The chaos fault schedule obeys its limits and is a pure function of the seed."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.chaos.schedule import EPISODES, Fault, describe, make_schedule


def _sweep(schedule: tuple[Fault, ...], classes: dict[str, str]) -> dict[str, int]:
    """Peak number of concurrently open episodes per class."""
    open_now: dict[str, set[int]] = {}
    peak: dict[str, int] = {}
    for f in schedule:
        cls = classes.get(f.kind)
        if cls is None:
            continue
        now = open_now.setdefault(cls, set())
        if f.phase == "start":
            now.add(f.episode)
        else:
            assert f.episode in now, f"end without start: {f}"
            now.remove(f.episode)
        peak[cls] = max(peak.get(cls, 0), len(now))
    assert all(not v for v in open_now.values()), "an episode never ends"
    return peak


@settings(deadline=None, max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    duration=st.floats(5.0, 120.0),
    servers=st.integers(3, 9),
    max_down=st.integers(1, 2),
)
def test_schedule_limits(seed: int, duration: float, servers: int, max_down: int) -> None:
    schedule = make_schedule(
        random.Random(seed), duration_s=duration, chunkservers=servers, max_chunk_down=max_down
    )
    assert list(schedule) == sorted(schedule, key=lambda f: f.at_s)
    assert all(0 <= f.at_s < duration for f in schedule)
    assert all(f.kind in EPISODES and f.phase in ("start", "end") for f in schedule)
    peak = _sweep(
        schedule,
        {
            "chunk_kill": "chunk",
            "chunk_partition": "chunk",
            "meta_kill_leader": "meta",
            "meta_pause": "meta",
            "meta_partition": "meta",
            "gateway_kill": "gateway",
        },
    )
    assert peak.get("chunk", 0) <= max_down
    assert peak.get("meta", 0) <= 1
    assert peak.get("gateway", 0) <= 1
    for f in schedule:
        if f.kind.startswith("chunk_") or f.kind.startswith("shard_"):
            assert 1 <= f.target <= servers
        if f.kind == "chunk_partition":
            assert f.target == 1


def test_same_seed_same_schedule_and_description() -> None:
    a = make_schedule(random.Random(7), duration_s=30, chunkservers=7, max_chunk_down=2)
    b = make_schedule(random.Random(7), duration_s=30, chunkservers=7, max_chunk_down=2)
    c = make_schedule(random.Random(8), duration_s=30, chunkservers=7, max_chunk_down=2)
    assert a == b != c
    text = describe(7, a)
    assert "BLOBSTORE_CHAOS_SEED=7" in text
    assert len(text.splitlines()) == len(a) + 1
    kinds = {
        f.kind
        for f in make_schedule(random.Random(1), duration_s=600, chunkservers=7, max_chunk_down=2)
    }
    assert kinds == set(EPISODES)
