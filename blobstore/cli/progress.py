"""Progress and result output of the object commands.

* On a terminal (and without ``--quiet``/``--json``) one status line on stderr is redrawn
  with ``\\r`` at most ``refresh_s`` apart: bar, bytes done/total, percent, rate, ETA, files.
* Not on a terminal: no redrawing; a plain progress line at most every ``plain_every_s``
  for long transfers.
* Results (one per file or object) go to stdout: a plain line, or one JSON object per line
  with ``--json``; nothing with ``--quiet``. Errors always go to stderr.

Formatting functions are pure; ``Progress`` takes an injected monotonic clock. It is
thread-safe (transfer threads call ``add_bytes``). Must not import boto3.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "Output",
    "Progress",
    "ProgressState",
    "format_bytes",
    "format_eta",
    "format_rate",
    "render_line",
]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``; bytes below 1 KiB as integers."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_rate(bytes_per_s: float | None) -> str:
    """``--/s`` when unknown."""
    return "--/s" if bytes_per_s is None else f"{format_bytes(bytes_per_s)}/s"


def format_eta(seconds: float | None) -> str:
    """``M:SS`` or ``H:MM:SS``; ``--:--`` when unknown."""
    if seconds is None or seconds < 0 or seconds != seconds or seconds > 359_999:
        return "--:--"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass(frozen=True, slots=True)
class ProgressState:
    """A snapshot of a transfer for rendering."""

    done_bytes: int
    total_bytes: int | None
    rate: float | None
    files_done: int = 0
    files_total: int | None = None
    label: str = ""


def render_line(state: ProgressState, width: int = 80) -> str:
    """One status line of at most ``width`` characters."""
    total = state.total_bytes
    parts: list[str] = []
    if total:
        frac = min(1.0, state.done_bytes / total)
        parts.append(f"{format_bytes(state.done_bytes)}/{format_bytes(total)} {frac * 100:3.0f}%")
        eta = (total - state.done_bytes) / state.rate if state.rate else None
    else:
        frac = None
        parts.append(format_bytes(state.done_bytes))
        eta = None
    parts.append(format_rate(state.rate))
    if total:
        parts.append(f"ETA {format_eta(eta)}")
    if state.files_total is not None and state.files_total > 1:
        parts.append(f"{state.files_done}/{state.files_total} files")
    text = "  ".join(parts)
    if frac is not None:
        bar_width = max(0, min(30, width - len(text) - 4))
        if bar_width >= 5:
            filled = int(frac * bar_width)
            text = f"[{'#' * filled}{'.' * (bar_width - filled)}] {text}"
    if state.label and len(text) + 2 < width:
        room = width - len(text) - 2
        label = state.label if len(state.label) <= room else "..." + state.label[-(room - 3) :]
        if room > 8:
            text = f"{text}  {label}"
    return text[:width]


@dataclass
class _RateWindow:
    """Rate over the last ``window_s`` seconds of (time, bytes) samples."""

    window_s: float = 5.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, done: int) -> None:
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()

    def rate(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None


class Progress:
    """Aggregate progress of one command; renders to ``stream`` (see module doc)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        enabled: bool,
        is_tty: bool,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = 0.1,
        plain_every_s: float = 10.0,
        width: int = 100,
    ) -> None:
        self._stream = stream
        self._enabled = enabled
        self._tty = is_tty
        self._clock = clock
        self._every = refresh_s if is_tty else plain_every_s
        self._width = width
        self._lock = threading.Lock()
        self._done = 0
        self._total: int | None = 0
        self._files_done = 0
        self._files_total: int | None = 0
        self._label = ""
        self._window = _RateWindow()
        self._last_draw = clock()
        self._drawn = False

    def add_total(self, size: int | None, files: int = 1) -> None:
        with self._lock:
            self._total = None if size is None or self._total is None else self._total + size
            if self._files_total is not None:
                self._files_total += files

    def add_bytes(self, n: int, label: str = "") -> None:
        with self._lock:
            self._done += n
            if label:
                self._label = label
            self._maybe_draw()

    def file_done(self) -> None:
        with self._lock:
            self._files_done += 1
            self._maybe_draw()

    def state(self) -> ProgressState:
        return ProgressState(
            self._done,
            self._total,
            self._window.rate(),
            self._files_done,
            self._files_total,
            self._label,
        )

    def _maybe_draw(self) -> None:
        now = self._clock()
        self._window.add(now, self._done)
        if not self._enabled or now - self._last_draw < self._every:
            return
        self._last_draw = now
        line = render_line(self.state(), self._width)
        if self._tty:
            self._stream.write("\r" + line.ljust(self._width - 1)[: self._width - 1])
            self._drawn = True
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def clear(self) -> None:
        """Erase the status line (before printing a result line on the same terminal)."""
        with self._lock:
            if self._drawn:
                self._stream.write("\r" + " " * (self._width - 1) + "\r")
                self._stream.flush()
                self._drawn = False


class Output:
    """Result lines on stdout (plain, JSON or nothing) and errors on stderr."""

    def __init__(
        self,
        *,
        quiet: bool = False,
        as_json: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.quiet = quiet
        self.as_json = as_json
        self._out = stdout or sys.stdout
        self._err = stderr or sys.stderr
        self._lock = threading.Lock()
        self.progress = progress
        self.failures = 0

    def result(self, text: str, **fields: Any) -> None:
        """One result: ``text`` in plain mode, ``fields`` as a JSON object with ``--json``."""
        if self.quiet:
            return
        with self._lock:
            if self.progress is not None:
                self.progress.clear()
            line = json.dumps(fields, default=str, sort_keys=False) if self.as_json else text
            self._out.write(line + "\n")
            self._out.flush()

    def error(self, text: str, **fields: Any) -> None:
        """A failed item: counted (exit 1), ``error: text`` on stderr, JSON on stdout."""
        with self._lock:
            self.failures += 1
            if self.progress is not None:
                self.progress.clear()
            self._err.write(f"error: {text}\n")
            self._err.flush()
            if self.as_json:
                self._out.write(json.dumps({**fields, "status": "error", "error": text}) + "\n")
                self._out.flush()
