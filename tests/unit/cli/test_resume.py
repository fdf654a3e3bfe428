"""Resume planning, part layout and the upload state file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.cli.resume import (
    MAX_PARTS,
    ListedPart,
    UploadState,
    default_state_dir,
    load_state,
    plan_parts,
    plan_resume,
    remove_state,
    save_state,
    state_path,
)

MiB = 1024 * 1024


@settings(deadline=None, max_examples=200)
@given(st.integers(0, 10**13), st.integers(1, 64 * MiB))
def test_parts_cover_the_file_exactly(size: int, part_size: int) -> None:
    parts = plan_parts(size, part_size)
    assert len(parts) <= MAX_PARTS
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    assert sum(p.size for p in parts) == size
    offset = 0
    for p in parts:
        assert p.offset == offset
        offset += p.size
    assert all(p.size == parts[0].size for p in parts[:-1])
    assert size == 0 or all(p.size > 0 for p in parts)


def test_parts_examples() -> None:
    assert [(p.offset, p.size) for p in plan_parts(30 * MiB + 1, 8 * MiB)] == [
        (0, 8 * MiB),
        (8 * MiB, 8 * MiB),
        (16 * MiB, 8 * MiB),
        (24 * MiB, 6 * MiB + 1),
    ]
    assert plan_parts(0, 8 * MiB)[0].size == 0
    big = plan_parts(100_000 * MiB, 5 * MiB)
    assert len(big) == MAX_PARTS and big[0].size % MiB == 0
    with pytest.raises(ValueError):
        plan_parts(1, 0)


def test_resume_keeps_matching_parts_and_uploads_the_rest() -> None:
    parts = plan_parts(25, 10)  # 10, 10, 5
    listed = [
        ListedPart(1, 10, '"aa"'),  # matches
        ListedPart(2, 10, '"stale"'),  # different bytes locally -> upload again
        ListedPart(3, 4, '"cc"'),  # wrong size -> upload again
        ListedPart(7, 10, '"zz"'),  # not ours
    ]
    plan = plan_resume(parts, listed, {1: "AA", 2: "bb", 3: "cc"})
    assert [p.number for p in plan.done] == [1]
    assert [p.number for p in plan.todo] == [2, 3]


def test_resume_without_listed_parts_uploads_everything() -> None:
    parts = plan_parts(25, 10)
    plan = plan_resume(parts, [], {})
    assert plan.done == () and plan.todo == tuple(parts)


def test_state_file_round_trip(tmp_path: Path) -> None:
    path = state_path(tmp_path / "s", "http://e", "b", "k", "/f", 10, 123)
    assert path != state_path(tmp_path / "s", "http://e", "b", "k", "/f", 10, 124)  # mtime
    assert path != state_path(tmp_path / "s", "http://e", "b", "k", "/f", 11, 123)  # size
    assert load_state(path) is None
    state = UploadState("up-1", 8 * MiB, "b", "k", "/f", 10, 123)
    save_state(path, state)
    assert load_state(path) == state
    path.write_text("{not json")
    assert load_state(path) is None
    path.write_text('{"version": 99}')
    assert load_state(path) is None
    remove_state(path)
    remove_state(path)
    assert not path.exists()


def test_default_state_dir() -> None:
    assert default_state_dir({"BLOBSTORE_STATE_DIR": "/x"}) == Path("/x")
    assert default_state_dir({"XDG_STATE_HOME": "/s"}) == Path("/s/blobstore/uploads")
    assert default_state_dir({}).parts[-3:] == ("state", "blobstore", "uploads")


def test_md5_keys_are_hex() -> None:
    # plan_resume compares against hashlib hexdigests, case-insensitively
    md5 = hashlib.md5(b"x", usedforsecurity=False).hexdigest()
    plan = plan_resume(plan_parts(1, 10), [ListedPart(1, 1, md5.upper())], {1: md5})
    assert len(plan.done) == 1
