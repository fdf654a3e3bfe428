"""Operation histories: the ``Operation`` record, JSON-lines I/O and a concurrent recorder.

A history is what clients observed: for each operation, who issued it, what it asked, what
came back, and the interval ``[call_ts, return_ts]`` during which it was in flight. The
linearizability checker (``blobstore.testing.linearizability``) consumes histories; tests
record them with ``HistoryRecorder`` and may dump them with ``write_if_requested`` so that an
independent checker (Knossos, Porcupine, ...) can re-check the same run.

File format (JSON lines, UTF-8, one operation per line, keys in exactly this set)::

    {"client": int, "op": "get"|"put"|"delete"|"cas", "key": str,
     "value": str|null, "expected": str|null, "result": str|bool|null,
     "call_ts": float, "return_ts": float, "status": "ok"|"fail"|"info"}

- ``value``: what ``put``/``cas`` writes (null for ``get``/``delete``).
- ``expected``: what ``cas`` compares against (null = "key absent"); null for other ops.
- ``result``: for an ok ``get`` the value read (null = absent); for an ok ``cas`` whether it
  swapped (bool); null for ``put``/``delete``. Ignored for ``fail``/``info`` operations.
- ``status``: ``ok`` = completed with the given result; ``fail`` = certainly had no effect;
  ``info`` = outcome unknown (timeout, connection lost): it may have taken effect at any
  point after ``call_ts``, or never. For ``info`` operations ``return_ts`` records when the
  client stopped waiting; checkers treat the real return time as +infinity.
- Timestamps are finite floats from one clock (any epoch); ``return_ts >= call_ts``.
  Equal timestamps on different operations count as overlapping (the conservative reading).

Invariants: every ``Operation`` is validated on construction, so a history that was read or
recorded is well formed. This module imports only the stdlib and ``blobstore.log``.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from blobstore.log import get_logger

__all__ = [
    "HISTORY_DIR_ENV",
    "HistoryRecorder",
    "OpKind",
    "Operation",
    "Result",
    "Status",
    "from_json_line",
    "read_history",
    "to_json_line",
    "write_history",
    "write_if_requested",
]

OpKind = Literal["get", "put", "delete", "cas"]
Status = Literal["ok", "fail", "info"]
Result = str | bool | None

HISTORY_DIR_ENV: Final = "BLOBSTORE_HISTORY_DIR"

_OP_KINDS: Final = frozenset({"get", "put", "delete", "cas"})
_STATUSES: Final = frozenset({"ok", "fail", "info"})
_FIELDS: Final = (
    "client",
    "op",
    "key",
    "value",
    "expected",
    "result",
    "call_ts",
    "return_ts",
    "status",
)
_SAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")

_log = get_logger(__name__)


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation as observed: request, response, status and its time interval."""

    client: int
    op: OpKind
    key: str
    value: str | None
    expected: str | None
    result: Result
    call_ts: float
    return_ts: float
    status: Status

    def __post_init__(self) -> None:
        if not isinstance(self.client, int) or isinstance(self.client, bool):
            raise ValueError(f"client must be an int, got {self.client!r}")
        if self.op not in _OP_KINDS:
            raise ValueError(f"op must be one of {sorted(_OP_KINDS)}, got {self.op!r}")
        if self.status not in _STATUSES:
            raise ValueError(f"status must be one of {sorted(_STATUSES)}, got {self.status!r}")
        if not isinstance(self.key, str):
            raise ValueError(f"key must be a str, got {self.key!r}")
        for name in ("value", "expected"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{name} must be a str or None, got {v!r}")
        if self.result is not None and not isinstance(self.result, str | bool):
            raise ValueError(f"result must be a str, bool or None, got {self.result!r}")
        for name in ("call_ts", "return_ts"):
            t = getattr(self, name)
            if not _is_number(t) or not math.isfinite(t):
                raise ValueError(f"{name} must be a finite number, got {t!r}")
        if self.return_ts < self.call_ts:
            raise ValueError(f"return_ts {self.return_ts} is before call_ts {self.call_ts}")
        if self.op in ("put", "cas") and self.value is None:
            raise ValueError(f"{self.op} needs a value")
        if self.op in ("get", "delete") and self.value is not None:
            raise ValueError(f"{self.op} takes no value, got {self.value!r}")
        if self.op != "cas" and self.expected is not None:
            raise ValueError(f"only cas takes expected, got {self.expected!r} on {self.op}")
        if self.status == "ok":
            if self.op == "cas" and not isinstance(self.result, bool):
                raise ValueError(f"an ok cas needs a bool result, got {self.result!r}")
            if self.op == "get" and isinstance(self.result, bool):
                raise ValueError(f"an ok get reads a str or None, got {self.result!r}")
            if self.op in ("put", "delete") and self.result is not None:
                raise ValueError(f"an ok {self.op} has result None, got {self.result!r}")

    def __str__(self) -> str:
        args = [repr(self.key)]
        if self.op == "cas":
            args.append(f"{self.expected!r}->{self.value!r}")
        elif self.op == "put":
            args.append(repr(self.value))
        shown = f" -> {self.result!r}" if self.status == "ok" and self.op in ("get", "cas") else ""
        return (
            f"[client {self.client}] {self.op}({', '.join(args)}){shown} {self.status}"
            f" @[{self.call_ts:g}, {self.return_ts:g}]"
        )


def to_json_line(op: Operation) -> str:
    """Encode one operation as a single JSON line (no trailing newline)."""
    doc = {name: getattr(op, name) for name in _FIELDS}
    doc["call_ts"] = float(op.call_ts)
    doc["return_ts"] = float(op.return_ts)
    return json.dumps(doc, allow_nan=False, ensure_ascii=False)


def from_json_line(line: str) -> Operation:
    """Decode one JSON line; raise ValueError naming what is wrong."""
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("a history line must be a JSON object")
    missing = [f for f in _FIELDS if f not in doc]
    extra = sorted(set(doc) - set(_FIELDS))
    if missing or extra:
        raise ValueError(f"wrong fields: missing {missing}, unexpected {extra}")
    for name in ("call_ts", "return_ts"):
        if not _is_number(doc[name]):
            raise ValueError(f"{name} must be a number, got {doc[name]!r}")
    return Operation(
        client=doc["client"],
        op=doc["op"],
        key=doc["key"],
        value=doc["value"],
        expected=doc["expected"],
        result=doc["result"],
        call_ts=float(doc["call_ts"]),
        return_ts=float(doc["return_ts"]),
        status=doc["status"],
    )


def write_history(path: str | os.PathLike[str], ops: Iterable[Operation]) -> None:
    """Write ``ops`` as JSON lines to ``path`` (temp file then rename: never half-written)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        for op in ops:
            f.write(to_json_line(op))
            f.write("\n")
    os.replace(tmp, target)


def read_history(path: str | os.PathLike[str]) -> list[Operation]:
    """Read a JSON-lines history; blank lines are skipped; errors name ``path:line``."""
    ops: list[Operation] = []
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                ops.append(from_json_line(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from exc
    return ops


def write_if_requested(
    ops: Iterable[Operation],
    name: str,
    *,
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """Write ``ops`` to ``$BLOBSTORE_HISTORY_DIR/<name>.jsonl`` if that names a directory.

    ``name`` is sanitized (anything outside ``[A-Za-z0-9._-]`` becomes ``_``), so a pytest
    node id can be passed as is. Returns the path written, or None when not requested.
    """
    env = os.environ if environ is None else environ
    directory = env.get(HISTORY_DIR_ENV, "")
    if not directory or not Path(directory).is_dir():
        return None
    safe = _SAFE_NAME.sub("_", name).strip("._") or "history"
    path = Path(directory) / f"{safe}.jsonl"
    write_history(path, ops)
    _log.info("history written", path=str(path))
    return path


@dataclass(slots=True)
class _Pending:
    client: int
    op: OpKind
    key: str
    value: str | None
    expected: str | None
    call_ts: float


class HistoryRecorder:
    """Records operations from many threads or asyncio tasks.

    Call ``invoke`` just before sending a request and ``complete`` as soon as its outcome is
    known. Timestamps come from the injected ``clock`` (e.g. ``time.monotonic`` or a
    ``SimClock``), read under a lock so that recorded order agrees with clock order. The
    critical sections never block, so the lock is safe to take from the event loop.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._next_token = 0
        self._pending: dict[int, _Pending] = {}
        self._done: dict[int, Operation] = {}

    def invoke(
        self,
        client: int,
        op: OpKind,
        key: str,
        value: str | None = None,
        expected: str | None = None,
    ) -> int:
        """Record the call of an operation; returns a token for ``complete``."""
        with self._lock:
            now = self._clock()
            # Validate the request part now rather than at completion time.
            Operation(client, op, key, value, expected, None, now, now, "info")
            token = self._next_token
            self._next_token += 1
            self._pending[token] = _Pending(client, op, key, value, expected, now)
            return token

    def complete(self, token: int, result: Result, status: Status) -> Operation:
        """Record the outcome of ``token``'s operation; returns the finished record."""
        with self._lock:
            p = self._pending.get(token)
            if p is None:
                state = "already completed" if token in self._done else "unknown"
                raise ValueError(f"token {token} is {state}")
            now = self._clock()
            done = Operation(
                p.client,
                p.op,
                p.key,
                p.value,
                p.expected,
                result,
                p.call_ts,
                max(now, p.call_ts),
                status,
            )
            del self._pending[token]
            self._done[token] = done
            return done

    @property
    def pending_count(self) -> int:
        """How many invoked operations are not yet completed."""
        with self._lock:
            return len(self._pending)

    def operations(self, *, include_pending: bool = True) -> list[Operation]:
        """The history so far, in invocation order.

        Operations still in flight are reported as ``info`` (outcome unknown) with
        ``return_ts`` = now, unless ``include_pending`` is False, in which case they are left
        out (only correct if they certainly never took effect).
        """
        with self._lock:
            now = self._clock()
            out: list[Operation] = []
            for token in sorted(self._done.keys() | self._pending.keys()):
                done = self._done.get(token)
                if done is not None:
                    out.append(done)
                elif include_pending:
                    p = self._pending[token]
                    out.append(
                        Operation(
                            p.client,
                            p.op,
                            p.key,
                            p.value,
                            p.expected,
                            None,
                            p.call_ts,
                            max(now, p.call_ts),
                            "info",
                        )
                    )
            return out
