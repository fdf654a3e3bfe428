"""The pure placement policy (metadata.placement): which chunkservers get a chunk's shards."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.types import Address
from metadata.fsm.records import ChunkserverRecord, ChunkserverState
from metadata.placement import _open_unit, choose_servers


def _server(
    sid: int, zone: str = "", free: int = 100, state: ChunkserverState = "up"
) -> ChunkserverRecord:
    return ChunkserverRecord(
        sid,
        Address("127.0.0.1", 7000 + sid),
        zone,
        1000,
        free,
        state,
        0,
        0,
    )


def _key(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(4, "big")).digest()[:16]


def test_placement_skips_unusable_servers() -> None:
    servers = [
        _server(1, free=10),
        _server(2, free=500),
        _server(3, free=300, state="down"),
        _server(4, free=0),
        _server(5, free=200),
        _server(6, free=50, state="draining"),
    ]
    for i in range(200):
        chosen = choose_servers(servers, 3, key=_key(i))
        assert {s.server_id for s in chosen} == {1, 2, 5}
    # fewer candidates than asked for: all of them (the writer decides if that is enough)
    assert {s.server_id for s in choose_servers(servers, 4, key=_key(0))} == {1, 2, 5}


def test_placement_spreads_chunks_evenly_over_equal_servers() -> None:
    # the regression: ranking by free space alone gave every chunk the same three servers
    servers = [_server(i, free=1_000_000 - i) for i in range(1, 7)]
    counts = {s.server_id: 0 for s in servers}
    firsts = {s.server_id: 0 for s in servers}
    for i in range(3000):
        chosen = choose_servers(servers, 3, key=_key(i))
        firsts[chosen[0].server_id] += 1
        for s in chosen:
            counts[s.server_id] += 1
    assert all(1350 <= c <= 1650 for c in counts.values()), counts  # 1500 each expected
    assert all(400 <= c <= 600 for c in firsts.values()), firsts  # 500 each expected
    assert choose_servers(servers, 3, key=b"k") == choose_servers(servers, 3, key=b"k")


def test_placement_favours_free_space_in_proportion() -> None:
    servers = [_server(1, free=100), _server(2, free=300)]
    firsts = sum(
        1 for i in range(2000) if choose_servers(servers, 1, key=_key(i))[0].server_id == 2
    )
    assert 1400 <= firsts <= 1600  # 3/4 of 2000 expected


def test_placement_hash_never_maps_to_0_or_1() -> None:
    for h in (0, 1, (1 << 63), (1 << 64) - 1):
        assert 0.0 < _open_unit(h) < 1.0


def test_placement_spreads_over_zones() -> None:
    servers = [_server(i, zone=f"z{i % 3}", free=100 + i) for i in range(1, 10)]
    for i in range(50):
        chosen = choose_servers(servers, 6, key=_key(i))
        zones = [s.zone for s in chosen]
        assert sorted(zones) == ["z0", "z0", "z1", "z1", "z2", "z2"]
        assert len({s.server_id for s in chosen}) == 6


def _spread_ok(chosen: list[ChunkserverRecord], usable: list[ChunkserverRecord]) -> bool:
    """No zone holds two more shards than another zone that had spare servers."""
    counts = {z: sum(1 for s in chosen if s.zone == z) for z in {s.zone for s in usable}}
    return all(
        c <= c2 + 1
        for c in counts.values()
        for z2, c2 in counts.items()
        if sum(1 for s in usable if s.zone == z2) > c2
    )


def test_placement_puts_avoided_servers_last() -> None:
    servers = [_server(i, free=100) for i in range(1, 8)]
    for i in range(50):  # a spare exists: the avoided server is never chosen
        chosen = choose_servers(servers, 6, key=_key(i), avoid={3})
        assert 3 not in {s.server_id for s in chosen}
    # no spare: every usable server, the avoided ones included
    assert len(choose_servers(servers[:6], 6, key=_key(0), avoid={1, 2})) == 6
    # zones: the avoided server is used only where the spread needs it
    zoned = [_server(1, "a"), _server(2, "a"), _server(3, "b"), _server(4, "b"), _server(5, "c")]
    for i in range(50):
        chosen = choose_servers(zoned, 4, key=_key(i), avoid={1})
        assert {s.zone for s in chosen} == {"a", "b", "c"}
        assert {s.server_id for s in chosen} == {2, 3, 4, 5}
        chosen = choose_servers(zoned, 3, key=_key(i), avoid={1, 2})
        assert sorted(s.zone for s in chosen) == ["a", "b", "c"]  # a still gets one


@settings(deadline=None, max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", "a", "b", "c"]),
            st.integers(0, 50),
            st.sampled_from(["up", "up", "down"]),
            st.booleans(),
        ),
        max_size=12,
    ),
    st.integers(1, 8),
    st.binary(max_size=16),
)
def test_placement_properties(
    spec: list[tuple[str, int, ChunkserverState, bool]], n: int, key: bytes
) -> None:
    servers = [_server(i + 1, z, f, s) for i, (z, f, s, _) in enumerate(spec)]
    avoid = {i + 1 for i, (*_, avoided) in enumerate(spec) if avoided}
    usable = [s for s in servers if s.state == "up" and s.free_bytes > 0]
    for avoiding in (set(), avoid):
        chosen = choose_servers(servers, n, key=key, avoid=avoiding)
        assert len(chosen) == min(n, len(usable))
        assert len({s.server_id for s in chosen}) == len(chosen)
        assert all(s in usable for s in chosen)
        assert _spread_ok(chosen, usable)
    # an avoided server holds a shard only if no unavoided spare could take its place
    # without breaking the zone spread
    spares = [s for s in usable if s not in chosen and s.server_id not in avoid]
    for s in chosen:
        if s.server_id in avoid:
            for t in spares:
                swapped = [t if c is s else c for c in chosen]
                assert not _spread_ok(swapped, usable), (s.server_id, t.server_id)
