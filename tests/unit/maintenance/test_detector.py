"""The failure detector against a naive oracle (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.types import Address
from metadata.fsm.records import ChunkserverRecord
from metadata.maintenance.detector import DetectorConfig, StateChange, detect, silence_ms

STATES = ("up", "suspect", "down", "draining", "drained")


@st.composite
def servers(draw: st.DrawFn) -> list[ChunkserverRecord]:
    n = draw(st.integers(0, 8))
    ids = draw(st.lists(st.integers(1, 1000), min_size=n, max_size=n, unique=True))
    return [
        ChunkserverRecord(
            i,
            Address("h", i),
            "",
            100,
            50,
            draw(st.sampled_from(STATES)),
            draw(st.integers(0, 200_000)),
            0,
        )
        for i in ids
    ]


def _oracle(s: ChunkserverRecord, now: int, since: int, cfg: DetectorConfig) -> str | None:
    quiet = now - max(s.last_heartbeat_ms, since)
    if s.state == "up" and quiet > cfg.down_after_ms:
        return "down"
    if s.state == "up" and quiet > cfg.suspect_after_ms:
        return "suspect"
    if s.state == "suspect" and quiet > cfg.down_after_ms:
        return "down"
    return None


@settings(deadline=None, max_examples=200)
@given(
    servers(),
    st.integers(0, 300_000),
    st.integers(0, 300_000),
    st.integers(1, 50_000),
    st.integers(0, 100_000),
)
def test_detect_matches_oracle_and_is_stable(
    fleet: list[ChunkserverRecord], now: int, since: int, suspect: int, extra: int
) -> None:
    cfg = DetectorConfig(suspect, suspect + extra)
    changes = detect(fleet, now, since, cfg)
    expected = {s.server_id: _oracle(s, now, since, cfg) for s in fleet}
    assert {c.server_id: c.new for c in changes} == {k: v for k, v in expected.items() if v}
    assert [c.server_id for c in changes] == sorted(c.server_id for c in changes)
    for c in changes:
        assert c.old in ("up", "suspect") and c.silence_ms > cfg.suspect_after_ms
    # applying the changes and running again proposes nothing new (no flapping)
    by_id = {c.server_id: c for c in changes}
    after = [
        s if s.server_id not in by_id else
        ChunkserverRecord(s.server_id, s.addr, s.zone, s.capacity_bytes, s.free_bytes,
                          by_id[s.server_id].new, s.last_heartbeat_ms, s.registered_ms)
        for s in fleet
    ]  # fmt: skip
    again = detect(after, now, since, cfg)
    assert again == ()


def test_new_leader_grants_grace_and_heartbeats_reset_silence() -> None:
    cfg = DetectorConfig(10_000, 60_000)
    s = ChunkserverRecord(1, Address("h", 1), "", 1, 1, "up", 1_000, 0)
    assert silence_ms(s, 100_000, 95_000) == 5_000
    assert detect([s], 100_000, 95_000, cfg) == ()
    assert detect([s], 100_000, 0, cfg) == (StateChange(1, "up", "down", 99_000),)
    assert detect([s], 20_000, 0, cfg) == (StateChange(1, "up", "suspect", 19_000),)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="suspect_after_ms"):
        DetectorConfig(10, 5)


def test_heartbeats_heard_but_not_committed_count_as_life() -> None:
    cfg = DetectorConfig(10_000, 60_000)
    s = ChunkserverRecord(1, Address("h", 1), "", 1, 1, "up", 1_000, 0)
    assert [c.new for c in detect([s], 100_000, 0, cfg)] == ["down"]
    assert detect([s], 100_000, 0, cfg, {1: 95_000}) == ()  # the leader heard it 5 s ago
    assert [c.new for c in detect([s], 100_000, 0, cfg, {1: 85_000})] == ["suspect"]
    assert detect([s], 100_000, 0, cfg, {2: 99_000}) != ()  # another server's beat
    assert silence_ms(s, 100_000, 0, heard_ms=99_000) == 1_000
