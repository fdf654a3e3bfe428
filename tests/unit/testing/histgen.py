"""History generators and a brute-force oracle for the linearizability checker tests.

``simulate`` runs clients concurrently in simulated time: each operation gets an interval
``[call, return]`` and a linearization point inside it (anywhere after the call for ``info``
operations that took effect), and results come from executing the effective operations in
linearization-point order against a dict. Such histories are linearizable by construction.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from blobstore.testing.history import Operation, OpKind, Result, Status

__all__ = ["brute_force_linearizable", "mk", "random_raw_history", "simulate"]


def mk(
    client: int,
    op: OpKind,
    key: str,
    call: float,
    ret: float,
    *,
    value: str | None = None,
    expected: str | None = None,
    result: Result = None,
    status: Status = "ok",
) -> Operation:
    """Shorthand constructor used throughout the tests."""
    return Operation(client, op, key, value, expected, result, call, ret, status)


@dataclass(slots=True)
class _Spec:
    lin: float
    seq: int
    client: int
    kind: OpKind
    key: str
    value: str | None
    expected: str | None
    call: float
    ret: float
    status: Status
    result: Result = None


_KINDS: tuple[OpKind, ...] = ("get", "get", "put", "delete", "cas")


def simulate(
    rng: random.Random,
    n_ops: int,
    *,
    n_keys: int = 1,
    n_clients: int = 3,
    n_values: int = 1000,
    p_fail: float = 0.0,
    p_info: float = 0.0,
) -> list[Operation]:
    """A linearizable-by-construction history (see module docstring)."""
    free = [rng.random() for _ in range(n_clients)]
    specs: list[_Spec] = []
    for seq in range(n_ops):
        c = min(range(n_clients), key=lambda i: free[i])
        call = free[c] + rng.random() * 0.5
        ret = call + rng.expovariate(1.0)
        free[c] = ret
        kind = rng.choice(_KINDS)
        value = f"v{rng.randrange(n_values)}" if kind in ("put", "cas") else None
        expected: str | None = None
        if kind == "cas":
            expected = rng.choice([None, f"v{rng.randrange(n_values)}"])
        roll = rng.random()
        status: Status = "fail" if roll < p_fail else "info" if roll < p_fail + p_info else "ok"
        if status == "ok":
            lin = rng.uniform(call, ret)
        elif status == "info" and rng.random() < 0.5:
            lin = call + rng.expovariate(0.5)  # took effect, maybe after the client gave up
        else:
            lin = math.inf  # never took effect
        key = f"k{rng.randrange(n_keys)}"
        specs.append(_Spec(lin, seq, c, kind, key, value, expected, call, ret, status))
    store: dict[str, str] = {}
    for s in sorted(specs, key=lambda s: (s.lin, s.seq)):
        if s.lin == math.inf:
            continue
        if s.kind == "get":
            s.result = store.get(s.key)
        elif s.kind == "put":
            assert s.value is not None
            store[s.key] = s.value
        elif s.kind == "delete":
            store.pop(s.key, None)
        else:
            assert s.value is not None
            s.result = store.get(s.key) == s.expected
            if s.result:
                store[s.key] = s.value
    return [
        Operation(
            s.client,
            s.kind,
            s.key,
            s.value,
            s.expected,
            s.result if s.status == "ok" else None,
            s.call,
            s.ret,
            s.status,
        )
        for s in specs
    ]


def random_raw_history(
    rng: random.Random, n_ops: int, n_values: int = 2, p_info: float = 0.2, p_fail: float = 0.1
) -> list[Operation]:
    """Arbitrary (usually not linearizable) single-key history with random results."""
    pool: list[str | None] = [None, *(f"v{i}" for i in range(n_values))]
    ops: list[Operation] = []
    for i in range(n_ops):
        call = float(rng.randrange(12))
        ret = call + float(rng.randrange(5))
        kind = rng.choice(_KINDS)
        roll = rng.random()
        status: Status = "fail" if roll < p_fail else "info" if roll < p_fail + p_info else "ok"
        value = rng.choice(pool[1:]) if kind in ("put", "cas") else None
        expected = rng.choice(pool) if kind == "cas" else None
        result: Result = None
        if status == "ok" and kind == "get":
            result = rng.choice(pool)
        elif status == "ok" and kind == "cas":
            result = rng.random() < 0.5
        ops.append(Operation(i, kind, "k", value, expected, result, call, ret, status))
    return ops


def brute_force_linearizable(ops: Sequence[Operation]) -> bool:
    """Naive oracle for one key: try every order of every subset of info operations."""
    live = [op for op in ops if op.status != "fail"]

    def search(remaining: tuple[int, ...], state: str | None) -> bool:
        if all(live[i].status == "info" for i in remaining):
            return True
        for i in remaining:
            op = live[i]
            blocked = any(
                live[j].status == "ok" and live[j].return_ts < op.call_ts
                for j in remaining
                if j != i
            )
            if blocked:
                continue
            info = op.status == "info"
            if op.op == "get":
                legal, new = info or state == op.result, state
            elif op.op == "put":
                legal, new = True, op.value
            elif op.op == "delete":
                legal, new = True, None
            elif info:
                legal, new = True, op.value if state == op.expected else state
            elif op.result:
                legal, new = state == op.expected, op.value
            else:
                legal, new = state != op.expected, state
            rest = tuple(j for j in remaining if j != i)
            if legal and search(rest, new):
                return True
        return False

    return search(tuple(range(len(live))), None)
