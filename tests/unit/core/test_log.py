"""Structured logging: key=value and JSON forms carry fields and the trace id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from blobstore.log import configure_logging, current_trace_id, get_logger, trace_context


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_text_format(restore_root: None) -> None:
    buf = io.StringIO()
    configure_logging("text", "info", stream=buf)
    log = get_logger("t")
    with trace_context("ABC123"):
        log.info("shard written", chunk="c1", note="two words")
    log.debug("hidden")
    line = buf.getvalue().strip()
    assert 'msg="shard written"' in line
    assert "trace_id=ABC123" in line
    assert "chunk=c1" in line
    assert 'note="two words"' in line
    assert "hidden" not in buf.getvalue()


def test_json_format(restore_root: None) -> None:
    buf = io.StringIO()
    configure_logging("json", "debug", stream=buf)
    with trace_context() as tid:
        assert current_trace_id() == tid
        get_logger("t").warning("slow", ms=12)
    assert current_trace_id() == ""
    doc = json.loads(buf.getvalue())
    assert doc["msg"] == "slow" and doc["ms"] == 12 and doc["trace_id"] == tid
    assert doc["level"] == "warning"
