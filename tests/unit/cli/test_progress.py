"""Progress formatting and rendering (fake clock, in-memory streams)."""

from __future__ import annotations

import io
import json

import pytest

from blobstore.cli.progress import (
    Output,
    Progress,
    ProgressState,
    format_bytes,
    format_eta,
    format_rate,
    render_line,
)

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (30 * MiB, "30.0 MiB"),
        (5 * 1024**4, "5.0 TiB"),
        (3 * 1024**6, "3072.0 PiB"),
    ],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_format_rate_and_eta() -> None:
    assert format_rate(None) == "--/s"
    assert format_rate(2 * MiB) == "2.0 MiB/s"
    assert format_eta(None) == "--:--"
    assert format_eta(-1) == "--:--"
    assert format_eta(float("nan")) == "--:--"
    assert format_eta(10**7) == "--:--"
    assert format_eta(0) == "0:00"
    assert format_eta(61.4) == "1:01"
    assert format_eta(3725) == "1:02:05"


def test_render_line_with_total() -> None:
    line = render_line(ProgressState(15 * MiB, 30 * MiB, 5 * MiB, 1, 3, "dir/file"), 100)
    assert "15.0 MiB/30.0 MiB  50%" in line
    assert "5.0 MiB/s" in line
    assert "ETA 0:03" in line
    assert "1/3 files" in line
    assert line.startswith("[###") and line.endswith("dir/file")
    assert len(line) <= 100


def test_render_line_unknown_total_and_narrow() -> None:
    line = render_line(ProgressState(1024, None, None), 80)
    assert line == "1.0 KiB  --/s"
    narrow = render_line(ProgressState(1, 2, 1.0, label="x" * 200), 30)
    assert len(narrow) <= 30


def test_long_label_is_shortened_from_the_left() -> None:
    line = render_line(ProgressState(1, 2, None, label="a/" * 50 + "tail.bin"), 100)
    assert len(line) <= 100 and line.endswith("tail.bin") and "..." in line


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_tty_progress_redraws_with_carriage_return_and_clears() -> None:
    clock, stream = FakeClock(), io.StringIO()
    p = Progress(stream, enabled=True, is_tty=True, clock=clock, width=60)
    p.add_total(10 * MiB)
    p.add_bytes(MiB, "f")
    assert stream.getvalue() == ""  # throttled: nothing before refresh_s
    clock.t = 1.0
    p.add_bytes(MiB, "f")
    out = stream.getvalue()
    assert out.startswith("\r") and "2.0 MiB/10.0 MiB" in out and "\n" not in out
    assert p.state().rate == pytest.approx(MiB)
    p.clear()
    assert stream.getvalue().endswith("\r")


def test_plain_progress_prints_lines_rarely_and_disabled_prints_nothing() -> None:
    clock, stream = FakeClock(), io.StringIO()
    p = Progress(stream, enabled=True, is_tty=False, clock=clock)
    p.add_total(None)
    for i in range(1, 30):
        clock.t = float(i)
        p.add_bytes(100)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()
    quiet = io.StringIO()
    q = Progress(quiet, enabled=False, is_tty=True, clock=clock)
    clock.t = 100.0
    q.add_bytes(5)
    q.file_done()
    q.clear()
    assert quiet.getvalue() == ""


def test_output_modes() -> None:
    out, err = io.StringIO(), io.StringIO()
    o = Output(stdout=out, stderr=err)
    o.result("upload: a to b", op="upload")
    o.error("upload x: boom", op="upload", src="x")
    assert out.getvalue() == "upload: a to b\n"
    assert err.getvalue() == "error: upload x: boom\n"
    assert o.failures == 1

    out, err = io.StringIO(), io.StringIO()
    j = Output(as_json=True, stdout=out, stderr=err)
    j.result("ignored", op="upload", size=3)
    j.error("bad", op="upload")
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert docs == [
        {"op": "upload", "size": 3},
        {"op": "upload", "status": "error", "error": "bad"},
    ]

    out = io.StringIO()
    Output(quiet=True, stdout=out, stderr=io.StringIO()).result("x", a=1)
    assert out.getvalue() == ""
