"""Seeded fault schedules for the chaos tests (pure: no I/O, no time, injected RNG).

A schedule is a time-ordered tuple of ``Fault`` events, each a start or an end of one
episode. Episodes and their limits:

* ``chunk_kill``: kill -9 a chunkserver, restart it ``duration_s`` later;
* ``chunk_partition``: cut one chunkserver off (per-link TCP proxies: its links to the
  metadata service, and gateways', repairers' and GC's links to its advertised address)
  and heal it later; counts against the same budget as a dead chunkserver;
* ``meta_kill_leader``: kill -9 whichever metadata node leads at that moment, restart it;
* ``meta_pause``: SIGSTOP a metadata node past the election timeout, then SIGCONT;
* ``meta_partition``: black-hole every Raft link of one metadata node, then heal;
* ``gateway_kill``: kill -9 the gateway (uploads in flight), restart it;
* ``shard_flip`` / ``shard_truncate`` / ``shard_delete``: damage one shard file (instant).

Invariants (checked by ``tests/chaos/test_schedule.py``): at any instant at most
``max_chunk_down`` chunkservers are dead or partitioned, at most one metadata node is
faulty (a minority of 3), at most one gateway outage at a time, every episode ends before
``duration_s``, and the same seed gives the same schedule. ``describe`` prints a schedule
so that a failing run can be replayed with ``BLOBSTORE_CHAOS_SEED``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["EPISODES", "Fault", "describe", "make_schedule"]

EPISODES = (
    "chunk_kill",
    "chunk_partition",
    "meta_kill_leader",
    "meta_pause",
    "meta_partition",
    "gateway_kill",
    "shard_flip",
    "shard_truncate",
    "shard_delete",
)
_WEIGHTS = (4, 1, 2, 2, 1, 1, 2, 1, 1)
_INSTANT = frozenset({"shard_flip", "shard_truncate", "shard_delete"})


@dataclass(frozen=True, slots=True)
class Fault:
    """One event: ``phase`` "start" or "end" of ``kind`` on ``target`` at ``at_s``.

    ``target``: chunkserver id (1-based) for chunk episodes, metadata node id for
    ``meta_pause``/``meta_partition`` (0 for ``meta_kill_leader``: the leader of the
    moment), 0 for the gateway; ``pick`` seeds the runtime choice of a shard file."""

    at_s: float
    kind: str
    phase: str
    target: int = 0
    pick: int = 0
    episode: int = 0


def make_schedule(
    rng: random.Random,
    *,
    duration_s: float,
    chunkservers: int,
    max_chunk_down: int,
    meta_nodes: int = 3,
    mean_gap_s: float = 2.0,
    min_fault_s: float = 1.0,
    max_fault_s: float = 4.0,
    kinds: tuple[str, ...] = EPISODES,
) -> tuple[Fault, ...]:
    """A random schedule over ``[0, duration_s)`` obeying the module's invariants."""
    weights = [w for k, w in zip(EPISODES, _WEIGHTS, strict=True) if k in kinds]
    chosen_kinds = [k for k in EPISODES if k in kinds]
    busy: list[tuple[float, float, str, int]] = []  # (start, end, class, target)
    events: list[Fault] = []
    t = rng.uniform(0.3, mean_gap_s)
    episode = 0
    while t < duration_s - min_fault_s:
        kind = rng.choices(chosen_kinds, weights)[0]
        length = rng.uniform(min_fault_s, max_fault_s)
        end = min(t + length, duration_s - 0.1)

        def overlapping(cls: str, start: float = t, stop: float = end) -> list[int]:
            return [tg for s, e, c, tg in busy if c == cls and s < stop and start < e]

        placed: Fault | None = None
        if kind in _INSTANT:
            target = rng.randint(1, chunkservers)
            placed = Fault(t, kind, "start", target, rng.randrange(1 << 30), episode)
            events.append(placed)
        elif kind in ("chunk_kill", "chunk_partition"):
            down = overlapping("chunk")
            if len(down) < max_chunk_down:
                free = [i for i in range(1, chunkservers + 1) if i not in down]
                if kind == "chunk_partition":
                    free = [i for i in free if i == 1]  # only server 1 sits behind proxies
                if free:
                    target = rng.choice(free)
                    busy.append((t, end, "chunk", target))
                    placed = Fault(t, kind, "start", target, 0, episode)
        elif kind.startswith("meta_"):
            if not overlapping("meta"):
                target = 0 if kind == "meta_kill_leader" else rng.randint(1, meta_nodes)
                busy.append((t, end, "meta", target))
                placed = Fault(t, kind, "start", target, 0, episode)
        elif kind == "gateway_kill" and not overlapping("gateway"):
            end = min(t + rng.uniform(0.3, 1.5), duration_s - 0.1)
            busy.append((t, end, "gateway", 0))
            placed = Fault(t, kind, "start", 0, 0, episode)
        if placed is not None and kind not in _INSTANT:
            events.append(placed)
            events.append(Fault(end, kind, "end", placed.target, 0, episode))
        if placed is not None:
            episode += 1
        t += rng.expovariate(1.0 / mean_gap_s)
    return tuple(sorted(events, key=lambda f: (f.at_s, f.phase == "start", f.episode)))


def describe(seed: int, schedule: tuple[Fault, ...]) -> str:
    """A human-readable schedule, headed by how to replay it."""
    lines = [f"chaos seed {seed} (replay: BLOBSTORE_CHAOS_SEED={seed}), {len(schedule)} events"]
    for f in schedule:
        who = f"target={f.target}" + (f" pick={f.pick}" if f.pick else "")
        lines.append(f"  t={f.at_s:7.2f}s  #{f.episode:<3d} {f.phase:5s} {f.kind:18s} {who}")
    return "\n".join(lines)
