"""Free TCP ports on 127.0.0.1 for tests and benchmarks that start servers.

Ports are picked *below* the kernel's ephemeral range (``ip_local_port_range``), never by
binding port 0. A port the kernel hands out for port 0 lies in that range, and between
picking it and the server's ``bind`` any outgoing connection on the machine may take it
as its local port: a role that dials a peer not listening yet can even connect to itself
(TCP simultaneous open when the local port it is given equals the port it dials), which
holds the very port that peer is about to bind. Seen in CI: a metadata node of a test
cluster crash-looped on ``EADDRINUSE`` for its own port. Below the ephemeral range only
an explicit ``bind`` takes a port, and every pick is checked bindable first.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable
from pathlib import Path

__all__ = ["LISTEN_LOW", "bindable", "ephemeral_range", "free_port", "free_ports", "free_run"]

LISTEN_LOW = 10000  # lowest port handed out (clear of well-known and registered services)
_DEFAULT_EPHEMERAL = (32768, 60999)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for automatically chosen local ports (Linux's default if the
    setting cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL


def bindable(port: int) -> bool:
    """Whether a TCP socket can bind 127.0.0.1:``port`` right now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_run(
    length: int,
    *,
    offsets: Iterable[int] = (0,),
    avoid: set[int] | None = None,
    rng: random.Random | None = None,
) -> int:
    """The first port of ``length`` consecutive ports that are bindable now, as is each of
    them plus every one of ``offsets`` (e.g. a role's metrics port at listen + 1000), all
    below the ephemeral range and outside ``avoid`` (which gets them added)."""
    shifts = sorted(set(offsets) | {0})
    taken = avoid if avoid is not None else set()
    rng = rng or random.Random()
    top = ephemeral_range()[0] - shifts[-1] - length
    if top <= LISTEN_LOW:
        raise RuntimeError(f"no room below the ephemeral range for {length} ports")
    for _ in range(500):
        base = rng.randrange(LISTEN_LOW, top)
        ports = [base + i + s for i in range(length) for s in shifts]
        if not taken.intersection(ports) and all(bindable(p) for p in ports):
            taken.update(ports)
            return base
    raise RuntimeError(f"no {length} consecutive free ports found")


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports, each bindable a moment ago (see the module docstring)."""
    taken: set[int] = set()
    return [free_run(1, avoid=taken) for _ in range(n)]


def free_port() -> int:
    return free_ports(1)[0]
