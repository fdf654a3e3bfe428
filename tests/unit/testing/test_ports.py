"""Test ports are picked below the kernel's ephemeral range, free, and distinct."""

from __future__ import annotations

import random
import socket

from blobstore.testing.ports import (
    LISTEN_LOW,
    bindable,
    ephemeral_range,
    free_ports,
    free_run,
)


def test_ports_sit_below_the_ephemeral_range_and_are_distinct() -> None:
    low, _ = ephemeral_range()
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(LISTEN_LOW <= p < low for p in ports)
    assert all(bindable(p) for p in ports)


def test_a_run_and_its_offset_ports_are_free_and_taken_ports_are_avoided() -> None:
    taken: set[int] = set()
    rng = random.Random(7)
    base = free_run(5, offsets=(0, 1000), avoid=taken, rng=rng)
    run = {base + i + s for i in range(5) for s in (0, 1000)}
    assert run <= taken
    assert max(run) < ephemeral_range()[0]
    again = free_run(5, offsets=(0, 1000), avoid=taken, rng=random.Random(7))
    assert again != base  # the same draw is refused: its ports are taken


def test_a_listening_port_is_not_bindable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_ports(1)[0]))
        s.listen()
        assert not bindable(s.getsockname()[1])
