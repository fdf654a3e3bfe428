"""Which chunkserver heartbeats the leader replicates (``metadata.maintenance.liveness``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from blobstore.types import Address
from metadata.fsm.commands import ChunkserverHeartbeat
from metadata.fsm.records import ChunkserverRecord, ScrubProgressRecord
from metadata.maintenance.liveness import needs_commit

GIB = 1 << 30
NOW = 1_000_000
EVERY = 10_000

RECORD = ChunkserverRecord(
    7, Address("127.0.0.1", 7007), "z1", 100 * GIB, 40 * GIB, "up", NOW - 2_000, NOW - 60_000
)
SCRUB = ScrubProgressRecord(7, 3, 2, 500, 5 * GIB, 1)


def _hb(**kw: object) -> ChunkserverHeartbeat:
    base = ChunkserverHeartbeat(7, 100 * GIB, 40 * GIB, replace(SCRUB, shards_scrubbed=600))
    return replace(base, **kw)  # type: ignore[arg-type]


def test_a_heartbeat_that_changes_nothing_stays_on_the_leader() -> None:
    assert not needs_commit(RECORD, SCRUB, _hb(), NOW, EVERY)
    # free space within 1% of capacity of the committed figure, either way
    assert not needs_commit(RECORD, SCRUB, _hb(free_bytes=41 * GIB), NOW, EVERY)
    assert not needs_commit(RECORD, SCRUB, _hb(free_bytes=39 * GIB), NOW, EVERY)
    assert not needs_commit(RECORD, SCRUB, _hb(scrub=None), NOW, EVERY)


@pytest.mark.parametrize(
    ("record", "scrub", "heartbeat", "why"),
    [
        (None, None, _hb(), "unknown server: the FSM answers"),
        (replace(RECORD, state="suspect"), SCRUB, _hb(), "revives a suspect server"),
        (replace(RECORD, state="down"), SCRUB, _hb(), "revives a down server"),
        (replace(RECORD, last_heartbeat_ms=NOW - EVERY), SCRUB, _hb(), "refresh due"),
        (RECORD, SCRUB, _hb(capacity_bytes=200 * GIB), "capacity changed"),
        (RECORD, SCRUB, _hb(free_bytes=42 * GIB), "free space moved > 1%"),
        (RECORD, SCRUB, _hb(free_bytes=38 * GIB), "free space moved > 1%"),
        (RECORD, None, _hb(), "first scrub counters"),
        (RECORD, SCRUB, _hb(scrub=replace(SCRUB, passes_completed=3)), "scrub pass done"),
        (RECORD, SCRUB, _hb(scrub=replace(SCRUB, corrupt_found=2)), "scrub found corruption"),
    ],
)
def test_what_the_catalog_must_learn_is_replicated(
    record: ChunkserverRecord | None,
    scrub: ScrubProgressRecord | None,
    heartbeat: ChunkserverHeartbeat,
    why: str,
) -> None:
    assert needs_commit(record, scrub, heartbeat, NOW, EVERY), why


def test_a_filling_disk_is_followed_closely() -> None:
    nearly_full = replace(RECORD, free_bytes=GIB)  # 1% of the capacity would be a whole GiB
    assert not needs_commit(nearly_full, SCRUB, _hb(free_bytes=GIB - (100 << 20)), NOW, EVERY)
    assert needs_commit(nearly_full, SCRUB, _hb(free_bytes=GIB - (110 << 20)), NOW, EVERY)
    full = replace(RECORD, free_bytes=0)
    assert needs_commit(full, SCRUB, _hb(free_bytes=4096), NOW, EVERY)  # room again
    assert not needs_commit(full, SCRUB, _hb(free_bytes=0), NOW, EVERY)


def test_draining_servers_are_not_revived_but_still_refreshed() -> None:
    draining = replace(RECORD, state="draining")
    assert not needs_commit(draining, SCRUB, _hb(), NOW, EVERY)
    assert needs_commit(draining, SCRUB, _hb(), NOW + EVERY, EVERY)
