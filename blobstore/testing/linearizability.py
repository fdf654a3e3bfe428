"""Linearizability checker for key-value register histories (Wing & Gong / Lowe, memoized).

What it decides: whether a history of ``get``/``put``/``delete``/``cas`` operations (see
``blobstore.testing.history``) can be explained by some total order that (1) respects real
time (an operation that returned before another was called comes first) and (2) is legal for
a register per key, initially ``None``:

- ``get`` reads the current value (``None`` = absent); ``put(v)`` sets it; ``delete`` sets
  ``None``; ``cas(expected, v)`` sets ``v`` and returns True iff the value equals
  ``expected`` (``None`` = absent), else returns False and changes nothing.

How:

- **P-compositionality.** A register history is linearizable iff every key's sub-history
  is (Herlihy & Wing's locality), so each key is searched on its own and gets its own
  verdict; a violation on one key is reported for that key only.
- **Search.** Lowe's refinement of Wing & Gong: call/return entries sorted by time (ties:
  calls first, so equal timestamps overlap, the conservative reading) in a doubly linked
  list. Any call before the first unplaced return may be linearized next if the model
  accepts it; when none can, backtrack. Lifting/unlifting entries is O(1) (dancing links).
- **Memoization.** Configurations are (linearized ok ops as an int bitset, model state) plus
  the linearized info ops; a configuration already explored cannot succeed and is skipped.
- **Unknown outcomes.** ``fail`` ops certainly had no effect and are dropped. An ``info`` op
  may take effect at any point after its call, or never: it has no return entry (return
  time +infinity) and success only requires every ``ok`` op to be placed. Info gets and
  no-op info cas are dropped. An unplaced info op can always stay unplaced, so a
  configuration whose placed info ops are a superset of an explored one's (same ok set and
  state) is dominated and pruned; info ops are tried only after the ok candidates.
- **Pruning** that keeps high-concurrency and timeout-heavy histories tractable, each an
  exchange argument (details on ``_Search``): values nobody observes collapse into one; a
  legal read is a forced move; writes with equal effect are tried once per configuration.
  All of it is cross-checked against a brute-force oracle in the unit tests.
- **Budget.** ``Budget`` bounds steps and memo states per key, and optionally total time
  through an injected clock (the algorithm never reads a clock itself). When a budget runs
  out the key's verdict is ``UNKNOWN`` rather than the check hanging.
- **Explanations.** For a failing key the result carries the longest linearizable prefix
  found and the operations that could not be placed after it (the first is the operation
  whose return was reached while it was still unplaced).

Pure: imports only the stdlib and ``blobstore.testing.history``; no I/O except in ``main``.
"""

from __future__ import annotations

import argparse
import enum
import itertools
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from blobstore.testing.history import Operation, read_history

__all__ = [
    "DEFAULT_MAX_STATES",
    "DEFAULT_MAX_STEPS",
    "Budget",
    "CheckResult",
    "KeyVerdict",
    "Verdict",
    "check",
    "main",
]

_GET: Final = 0
_PUT: Final = 1
_DELETE: Final = 2
_CAS: Final = 3
_KIND_CODE: Final = {"get": _GET, "put": _PUT, "delete": _DELETE, "cas": _CAS}
_UNOBSERVED: Final = "<a value no operation observed>"
_CLOCK_EVERY: Final = 1024  # steps between two reads of the injected clock
DEFAULT_MAX_STEPS: Final = 10_000_000
DEFAULT_MAX_STATES: Final = 500_000  # memo entries; a few hundred MB at worst


class Verdict(enum.Enum):
    """Outcome of a check, per key or overall."""

    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not linearizable"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Budget:
    """Search limits. ``max_steps``/``max_states`` apply per key; ``timeout_s`` to the whole
    check and only if a ``clock`` (seconds, e.g. ``time.monotonic``) is injected."""

    max_steps: int = DEFAULT_MAX_STEPS
    max_states: int = DEFAULT_MAX_STATES
    clock: Callable[[], float] | None = None
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    """The verdict for one key.

    ``linearization`` is a witness order when linearizable, otherwise the longest
    linearizable prefix found (``value_after`` is the register value after it).
    ``unplaced`` (not linearizable / unknown only) lists the ok operations that could not be
    placed next; the first one is the operation whose return was reached while unplaced.
    ``reason`` says which budget ran out (unknown), or names an impossible read found by the
    quick pre-check (then no search ran and the prefix is empty).
    """

    key: str
    verdict: Verdict
    op_count: int
    dropped_count: int
    steps: int
    states: int
    linearization: tuple[Operation, ...]
    unplaced: tuple[Operation, ...]
    value_after: str | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.LINEARIZABLE

    def explain(self, max_ops: int = 8) -> str:
        """A human-readable account; prefixes are cut to their last ``max_ops`` operations."""
        head = (
            f"key {self.key!r}: {self.verdict.value} ({self.op_count} ops checked, "
            f"{self.dropped_count} dropped, {self.states} states, {self.steps} steps)"
        )
        if self.verdict is Verdict.LINEARIZABLE:
            return head
        lines = [head]
        if self.reason:
            lines.append(f"  reason: {self.reason}")
        n = len(self.linearization)
        lines.append(
            f"  longest linearizable prefix: {n} ops, value after it: {self.value_after!r}"
        )
        if n > max_ops:
            lines.append(f"    ... {n - max_ops} earlier ops")
        lines.extend(f"    {op}" for op in self.linearization[-max_ops:])
        if self.unplaced:
            lines.append("  could not place next:")
            lines.extend(f"    {op}" for op in self.unplaced[:max_ops])
            if len(self.unplaced) > max_ops:
                lines.append(f"    ... {len(self.unplaced) - max_ops} more")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Overall verdict (not linearizable if any key is, else unknown if any key is) and the
    per-key verdicts sorted by key."""

    verdict: Verdict
    keys: tuple[KeyVerdict, ...]

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.LINEARIZABLE

    @property
    def failing(self) -> tuple[KeyVerdict, ...]:
        """Keys whose verdict is not ``LINEARIZABLE`` (violations and unknowns)."""
        return tuple(k for k in self.keys if not k.ok)

    def for_key(self, key: str) -> KeyVerdict:
        """The verdict for ``key``; KeyError if the history never touched it."""
        for k in self.keys:
            if k.key == key:
                return k
        raise KeyError(key)

    def explain(self, max_ops: int = 8) -> str:
        """Overall verdict plus an account of every key that is not linearizable."""
        lines = [
            f"{self.verdict.value}: {len(self.keys)} keys, "
            f"{sum(not k.ok for k in self.keys)} not proven linearizable"
        ]
        lines.extend(k.explain(max_ops) for k in self.failing)
        return "\n".join(lines)


def check(ops: Iterable[Operation], budget: Budget | None = None) -> CheckResult:
    """Check a whole history, key by key; never raises on a bad history, only reports it."""
    budget = budget or Budget()
    deadline: float | None = None
    if budget.clock is not None and budget.timeout_s is not None:
        deadline = budget.clock() + budget.timeout_s
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    verdicts = tuple(_check_key(key, by_key[key], budget, deadline) for key in sorted(by_key))
    if any(v.verdict is Verdict.NOT_LINEARIZABLE for v in verdicts):
        overall = Verdict.NOT_LINEARIZABLE
    elif any(v.verdict is Verdict.UNKNOWN for v in verdicts):
        overall = Verdict.UNKNOWN
    else:
        overall = Verdict.LINEARIZABLE
    return CheckResult(overall, verdicts)


def _relevant(all_ops: list[Operation]) -> list[Operation]:
    """The operations that can matter to the search, in input order.

    Dropped: ``fail`` ops (no effect); info ``get`` and info ``cas`` with expected == value
    (cannot change the state); and, when the key has no ok ``cas`` that returned False, info
    writes whose value nobody observes (no ok get read it, no cas expects it). Such a write,
    wherever placed, is followed until the next put/delete only by operations that ignore the
    value, so removing it from any linearization leaves a linearization.
    """
    effective = [
        op
        for op in all_ops
        if op.status == "ok"
        or (op.status == "info" and op.op in ("put", "delete"))
        or (op.status == "info" and op.op == "cas" and op.expected != op.value)
    ]
    if any(op.op == "cas" and op.status == "ok" and op.result is False for op in effective):
        return effective
    observed = {op.result for op in effective if op.op == "get" and op.status == "ok"}
    observed.update(op.expected for op in effective if op.op == "cas")
    return [op for op in effective if op.status == "ok" or op.value in observed]


# Entry kinds, and search phases.
_OK_CALL: Final = 0
_OK_RETURN: Final = 1
_INFO_CALL: Final = 2
_SENTINEL: Final = 3
_MAIN: Final = 0  # scanning the main list for ok candidates
_INFO: Final = 1  # scanning info classes for candidates
_DEAD: Final = 2  # the configuration has no (more) children: backtrack


def _check_key(
    key: str, all_ops: list[Operation], budget: Budget, deadline: float | None
) -> KeyVerdict:
    """Search one key's sub-history and package the verdict."""
    ops = _relevant(all_ops)
    impossible = _impossible_reads(ops)
    if impossible:
        return KeyVerdict(
            key=key,
            verdict=Verdict.NOT_LINEARIZABLE,
            op_count=len(ops),
            dropped_count=len(all_ops) - len(ops),
            steps=0,
            states=0,
            linearization=(),
            unplaced=impossible,
            value_after=None,
            reason="reads a value that no operation called before its return writes",
        )
    search = _Search(ops)
    verdict, reason = search.run(budget, deadline)
    prefix = tuple(ops[i] for i in search.best_seq)
    return KeyVerdict(
        key=key,
        verdict=verdict,
        op_count=len(ops),
        dropped_count=len(all_ops) - len(ops),
        steps=search.steps,
        states=search.states,
        linearization=prefix,
        unplaced=tuple(ops[i] for i in search.best_unplaced),
        value_after=_replay(prefix),
        reason=reason,
    )


def _impossible_reads(ops: list[Operation]) -> tuple[Operation, ...]:
    """Ok reads (gets, successful cas) of a non-None value that no write called before the
    read returned writes: no search needed, and no search would finish quickly."""
    first_write: dict[str, float] = {}
    for op in ops:
        if op.op in ("put", "cas") and op.value is not None:
            first_write[op.value] = min(first_write.get(op.value, op.call_ts), op.call_ts)
    out: list[Operation] = []
    for op in ops:
        if op.status != "ok":
            continue
        seen = op.result if op.op == "get" else op.expected if op.result is True else None
        if isinstance(seen, str) and first_write.get(seen, op.return_ts + 1) > op.return_ts:
            out.append(op)
    return tuple(out)


class _Search:
    """Lowe's search over one key's relevant operations (see the module docstring).

    Entries (calls and returns) are sorted by (time, call-before-return); an entry's index in
    that order is its rank. The *main* list links the ok operations' entries; a
    configuration's ok candidates are the calls before the first return entry R in it. Info
    operations have no return entry and live outside the list, grouped by class: the
    candidates among them are the classes' representatives whose call ranks below R's.
    They are tried after the ok candidates, as they are rarely needed.

    Pruning beyond memoization, each justified by an exchange argument:

    - Values that no get reads and no cas expects are indistinguishable to every operation,
      as legality only compares the state with observed values; they all become one token.
    - A read-only ok op (get, cas that returned False) legal in the current state is a
      forced move: any completion can be rearranged to place it first (it changes nothing
      and its call precedes every unplaced return), so it is the only child tried.
    - Writes with equal effect (status, kind, canonical value, expected) form a class. Among
      a configuration's ok candidates of one class, only the one returning first is tried
      (it leaves the less constraining returns unplaced). Among info members, only the
      earliest-called unplaced one is tried (all are available from then on), so the placed
      members of an info class are always a prefix of it in call order.
    """

    def __init__(self, ops: list[Operation]) -> None:
        n = len(ops)
        self.kind = [_KIND_CODE[op.op] for op in ops]
        observed: set[str | None] = set()
        for op in ops:
            if op.op == "get" and not isinstance(op.result, bool):
                observed.add(op.result)
        observed.update(op.expected for op in ops if op.op == "cas")
        use_token = _UNOBSERVED not in observed

        def canon(v: str | None) -> str | None:
            return v if v in observed or not use_token else _UNOBSERVED

        self.val = [canon(op.value) for op in ops]
        self.none_state = canon(None)
        self.exp = [op.expected for op in ops]
        self.res = [op.result for op in ops]
        self.is_info = is_info = [op.status == "info" for op in ops]
        self.read_only = read_only = [
            op.status == "ok" and (op.op == "get" or (op.op == "cas" and op.result is False))
            for op in ops
        ]
        # ok ops and info ops are numbered separately, in two bitsets.
        self.bit: list[int] = []
        self.n_ok = n_info = 0
        for info in is_info:
            if info:
                self.bit.append(1 << n_info)
                n_info += 1
            else:
                self.bit.append(1 << self.n_ok)
                self.n_ok += 1

        raw: list[tuple[float, int, int]] = []
        for i, op in enumerate(ops):
            raw.append((op.call_ts, 0, i))
            if not is_info[i]:
                raw.append((op.return_ts, 1, i))
        raw.sort()
        m = len(raw)
        self.head, tail = m, m + 1
        self.entry_kind = [
            _OK_RETURN if is_ret else _INFO_CALL if is_info[i] else _OK_CALL for _, is_ret, i in raw
        ] + [_SENTINEL, _SENTINEL]
        self.entry_op = [i for _, _, i in raw] + [-1, -1]
        self.call_rank = [0] * n
        self.ret_rank = [m] * n
        for e, (_, is_ret, i) in enumerate(raw):
            if is_ret:
                self.ret_rank[i] = e
            else:
                self.call_rank[i] = e
        self.ret_entry = [r if r < m else -1 for r in self.ret_rank]
        main = [self.head, *(e for e in range(m) if self.entry_kind[e] != _INFO_CALL), tail]
        self.nxt = [tail] * (m + 2)
        self.prv = [self.head] * (m + 2)
        for a, b in itertools.pairwise(main):
            self.nxt[a] = b
            self.prv[b] = a

        class_of: dict[tuple[bool, int, str | None, str | None], int] = {}
        self.cls = [0] * n
        self.info_members: list[list[int]] = []  # per class: info members in call order
        for i in sorted(range(n), key=lambda i: self.call_rank[i]):
            if not read_only[i]:
                key = (is_info[i], self.kind[i], self.val[i], self.exp[i])
                c = class_of.setdefault(key, len(class_of))
                self.cls[i] = c
                while len(self.info_members) <= c:
                    self.info_members.append([])
                if is_info[i]:
                    self.info_members[c].append(i)
        # Info classes by first call: the scan stops at the first class not yet begun.
        self.info_classes = sorted(
            (c for c, mem in enumerate(self.info_members) if mem),
            key=lambda c: self.call_rank[self.info_members[c][0]],
        )
        self.info_pos = {c: pos for pos, c in enumerate(self.info_classes)}
        self.steps = 0
        self.states = 0
        self.best_seq: list[int] = []
        self.best_unplaced: list[int] = []

    def start(self, state: str | None) -> tuple[int, dict[int, int]]:
        """Where a new configuration's main scan begins (a forced read, else the head), and
        the representative (earliest-returning) ok candidate of each write class."""
        nxt, entry_kind, entry_op = self.nxt, self.entry_kind, self.entry_op
        read_only, kind, res, exp = self.read_only, self.kind, self.res, self.exp
        best: dict[int, int] = {}
        e = nxt[self.head]
        while entry_kind[e] == _OK_CALL:
            i = entry_op[e]
            if read_only[i]:
                if state == res[i] if kind[i] == _GET else state != exp[i]:
                    return e, best
            else:
                j = best.setdefault(self.cls[i], i)
                if self.ret_rank[i] < self.ret_rank[j]:
                    best[self.cls[i]] = i
            e = nxt[e]
        return nxt[self.head], best

    def stuck_ops(self) -> list[int]:
        """The op whose return is the first unplaced one, then the ok ops called before it."""
        pending: list[int] = []
        e = self.nxt[self.head]
        while self.entry_kind[e] == _OK_CALL:
            pending.append(self.entry_op[e])
            e = self.nxt[e]
        if self.entry_kind[e] == _OK_RETURN:
            blocking = self.entry_op[e]
            return [blocking, *(i for i in pending if i != blocking)]
        return pending

    def run(self, budget: Budget, deadline: float | None) -> tuple[Verdict, str]:
        """Search; on return ``best_seq``/``best_unplaced`` hold the explanation."""
        # Hot loop: everything in locals.
        kind, val, exp, res = self.kind, self.val, self.exp, self.res
        is_info, read_only, bit, cls = self.is_info, self.read_only, self.bit, self.cls
        nxt, prv, entry_kind, entry_op = self.nxt, self.prv, self.entry_kind, self.entry_op
        call_rank, ret_entry = self.call_rank, self.ret_entry
        info_classes, info_members = self.info_classes, self.info_members
        info_pos = self.info_pos
        n_info_classes = len(info_classes)
        placed = [0] * len(info_members)  # info members placed, per class
        none_state = self.none_state
        clock, max_steps, max_states = budget.clock, budget.max_steps, budget.max_states

        state = none_state
        ok_bits = info_bits = 0
        remaining = self.n_ok
        # (op placed, and the state, limit and representatives of the configuration before)
        stack: list[tuple[int, str | None, int, dict[int, int]]] = []
        cache: dict[tuple[int, str | None], list[int]] = {}
        states = steps = 0
        best_depth = -1
        reason = ""
        if deadline is not None and clock is not None and clock() >= deadline:
            reason = "time budget exhausted before this key"

        phase = _MAIN
        entry, best = self.start(state)
        ci = 0  # cursor over info classes in the info phase
        limit = 0  # rank of the first unplaced return (set on entering the info phase)
        while remaining > 0 and not reason:
            steps += 1
            if steps > max_steps:
                reason = f"step budget ({max_steps}) exhausted"
                break
            if (
                clock is not None
                and deadline is not None
                and steps % _CLOCK_EVERY == 0
                and clock() >= deadline
            ):
                reason = "time budget exhausted"
                break
            if phase == _MAIN:
                if entry_kind[entry] != _OK_CALL:
                    # No more ok candidates: try the info ops called before this return.
                    limit = entry  # entries are numbered by rank
                    phase, ci = _INFO, 0
                    continue
                i = entry_op[entry]
                if not read_only[i] and best[cls[i]] != i:
                    entry = nxt[entry]  # not its class's representative
                    continue
            elif phase == _INFO:
                if ci == n_info_classes:
                    phase = _DEAD
                    continue
                c = info_classes[ci]
                members = info_members[c]
                if call_rank[members[0]] >= limit:
                    phase = _DEAD  # this class and all later ones begin after the limit
                    continue
                if placed[c] == len(members) or call_rank[members[placed[c]]] >= limit:
                    ci += 1
                    continue
                i = members[placed[c]]
            else:
                # Dead end: the first unplaced return cannot be reached. Backtrack.
                depth = len(stack)
                if depth > best_depth:
                    best_depth = depth
                    self.best_seq = [j for j, *_ in stack]
                    self.best_unplaced = self.stuck_ops()
                if not stack:
                    break
                i, state, limit, best = stack.pop()
                if is_info[i]:
                    info_bits &= ~bit[i]
                    c = cls[i]
                    placed[c] -= 1
                    phase = _INFO
                    ci = info_pos[c] + 1
                else:
                    ok_bits &= ~bit[i]
                    e, r = call_rank[i], ret_entry[i]
                    nxt[prv[r]] = r
                    prv[nxt[r]] = r
                    nxt[prv[e]] = e
                    prv[nxt[e]] = e
                    remaining += 1
                    # After a forced move nothing else is worth trying here.
                    phase = _DEAD if read_only[i] else _MAIN
                    entry = nxt[e]
                continue

            # Try to place op i.
            k = kind[i]
            if k == _GET:
                legal = state == res[i]
                new_state = state
            elif k == _PUT:
                legal = True
                new_state = val[i]
            elif k == _DELETE:
                legal = True
                new_state = none_state
            elif is_info[i] or res[i] is True:
                # An info cas that fails is a no-op, i.e. the same as leaving it unplaced.
                legal = state == exp[i]
                new_state = val[i]
            else:
                legal = state != exp[i]
                new_state = state
            fresh = False
            if legal:
                if is_info[i]:
                    new_ok, new_info = ok_bits, info_bits | bit[i]
                else:
                    new_ok, new_info = ok_bits | bit[i], info_bits
                ck = (new_ok, new_state)
                seen = cache.get(ck)
                if seen is None:
                    cache[ck] = [new_info]
                    fresh = True
                elif not any((old & ~new_info) == 0 for old in seen):
                    # Keep an antichain: drop entries this one dominates (fewer info ops).
                    seen[:] = [old for old in seen if (new_info & ~old) != 0]
                    seen.append(new_info)
                    fresh = True
                # else: explored already, or dominated by one with fewer info ops placed
            if fresh:
                states += 1
                if states > max_states:
                    reason = f"state budget ({max_states}) exhausted"
                    break
                stack.append((i, state, limit, best))
                state, ok_bits, info_bits = new_state, new_ok, new_info
                if is_info[i]:
                    placed[cls[i]] += 1
                else:
                    e, r = call_rank[i], ret_entry[i]
                    nxt[prv[e]] = nxt[e]
                    prv[nxt[e]] = prv[e]
                    nxt[prv[r]] = nxt[r]
                    prv[nxt[r]] = prv[r]
                    remaining -= 1
                phase = _MAIN
                entry, best = self.start(state)
            elif phase == _INFO:
                ci += 1
            elif legal and read_only[i]:
                phase = _DEAD  # a forced move that leads nowhere new condemns this config
            else:
                entry = nxt[entry]

        self.steps, self.states = steps, states
        if remaining == 0 and not reason:
            self.best_seq, self.best_unplaced = [j for j, *_ in stack], []
            return Verdict.LINEARIZABLE, ""
        if reason:
            if best_depth < 0:
                self.best_seq = [j for j, *_ in stack]
            return Verdict.UNKNOWN, reason
        return Verdict.NOT_LINEARIZABLE, ""


def _replay(seq: Sequence[Operation]) -> str | None:
    """The concrete register value after a legal sequence (placed info cas ops swapped)."""
    value: str | None = None
    for op in seq:
        if op.op == "put" or (op.op == "cas" and (op.status == "info" or op.result is True)):
            value = op.value
        elif op.op == "delete":
            value = None
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: check a JSON-lines history; exit 0 linearizable, 1 not, 2 unknown or bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m blobstore.testing.linearizability",
        description="Check a blobstore JSON-lines history for linearizability, per key.",
    )
    parser.add_argument("file", help="history file (JSON lines)")
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, help="per key")
    parser.add_argument("--max-states", type=int, default=DEFAULT_MAX_STATES, help="per key")
    parser.add_argument("--timeout-s", type=float, default=None, help="whole check")
    parser.add_argument("--show", type=int, default=8, help="ops shown per explanation")
    args = parser.parse_args(argv)
    try:
        ops = read_history(args.file)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    budget = Budget(args.max_steps, args.max_states, time.monotonic, args.timeout_s)
    result = check(ops, budget)
    for kv in result.keys:
        print(kv.explain(args.show))
    print(f"verdict: {result.verdict.value} ({len(ops)} ops, {len(result.keys)} keys)")
    if result.verdict is Verdict.LINEARIZABLE:
        return 0
    return 1 if result.verdict is Verdict.NOT_LINEARIZABLE else 2


if __name__ == "__main__":
    sys.exit(main())
