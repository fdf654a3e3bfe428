"""``rclone mount`` (Debian's rclone 1.60, FUSE via ``fusermount3`` from Debian's fuse3)
of a bucket of a real cluster.

Without a VFS cache (``--vfs-cache-mode off``) a file written through the mount is
streamed to the store while it is written and ``close()`` returns once the upload is
complete: single PUTs below ``--s3-upload-cutoff``, multipart (5 MiB chunks, unknown
length) above it. The test copies a tree with awkward names and a 12 MiB file into the
mount, renames a file (server-side CopyObject + DeleteObject), reads a file back
through the mount, unmounts, checks every object by SHA-256 with boto3 and ``rclone
check``, then mounts again read-only to read the whole tree back through FUSE. With
``--vfs-cache-mode writes`` a file edited in the middle and appended to is uploaded whole
from the local cache after close.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import bucket_digest, make_tree, sha256_file, tree_digest
from tests.e2e.fuse_mount import fuse_usable, mounted
from tests.e2e.test_clients_rclone import Rclone, rclone  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


def _require_fuse() -> None:
    why = fuse_usable()
    if why is not None:
        pytest.skip(why)
    if shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        pytest.skip("rclone mount needs fusermount3 (Debian package fuse3)")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mount_argv(rc: Rclone, remote: str, mnt: Path, *extra: str) -> list[str]:
    return [
        rc.path, "mount", remote, str(mnt),
        "--vfs-cache-mode", "off",
        "--dir-cache-time", "1s",
        "--attr-timeout", "0s",
        "--log-level", "NOTICE",
        *extra,
    ]  # fmt: skip


def test_mount_write_unmount_read_back(
    rclone: Rclone,  # noqa: F811 - the imported fixture
    fresh_bucket: str,
    verifier: Any,
    tmp_path: Path,
) -> None:
    _require_fuse()
    verifier.create_bucket(Bucket=fresh_bucket)
    src = tmp_path / "src"
    want = make_tree(src, 40, seed=41, max_size=60_000, big=(12 * MiB + 5,))
    remote = f"bs:{fresh_bucket}"
    mnt = tmp_path / "mnt"

    with mounted(_mount_argv(rclone, remote, mnt), mnt, rclone.env):
        shutil.copytree(src, mnt / "tree")
        os.rename(mnt / "tree/d0/s0/f0000.bin", mnt / "tree/d0/s0/renamed.bin")
        assert sha256_file(mnt / "tree/big/b0.bin") == want["big/b0.bin"]
        assert sorted(p.name for p in (mnt / "tree/odd").iterdir()) == sorted(
            Path(k).name for k in want if k.startswith("odd/")
        )
    want["d0/s0/renamed.bin"] = want.pop("d0/s0/f0000.bin")

    assert bucket_digest(verifier, fresh_bucket, "tree/") == want
    head = verifier.head_object(Bucket=fresh_bucket, Key="tree/big/b0.bin")
    assert head["ETag"].endswith('-3"'), "12 MiB streamed in 5 MiB chunks: 3 parts"
    (src / "d0/s0/f0000.bin").rename(src / "d0/s0/renamed.bin")
    rclone("check", str(src), f"{remote}/tree")

    with mounted(_mount_argv(rclone, remote, mnt, "--read-only"), mnt, rclone.env):
        assert tree_digest(mnt / "tree") == want


def test_mount_with_write_cache_random_writes(
    rclone: Rclone,  # noqa: F811 - the imported fixture
    fresh_bucket: str,
    verifier: Any,
    tmp_path: Path,
) -> None:
    """``--vfs-cache-mode writes`` (what editors and databases need): a file rewritten in
    the middle is uploaded whole from the local cache once closed."""
    _require_fuse()
    verifier.create_bucket(Bucket=fresh_bucket)
    verifier.put_object(Bucket=fresh_bucket, Key="db/file.bin", Body=b"a" * (6 * MiB))
    want = bytearray(b"a" * (6 * MiB))
    want[3 * MiB : 3 * MiB + 5] = b"EDIT!"
    want += b"tail"
    mnt = tmp_path / "mnt"
    cache = ["--vfs-cache-mode", "writes", "--vfs-write-back", "0s"]
    cache += ["--cache-dir", str(tmp_path / "cache")]
    with mounted(_mount_argv(rclone, f"bs:{fresh_bucket}", mnt, *cache), mnt, rclone.env):
        with (mnt / "db/file.bin").open("r+b") as f:
            f.seek(3 * MiB)
            f.write(b"EDIT!")
            f.seek(0, os.SEEK_END)
            f.write(b"tail")
        assert (mnt / "db/file.bin").read_bytes() == want
        deadline = time.monotonic() + 60
        while bucket_digest(verifier, fresh_bucket) != {"db/file.bin": _sha(bytes(want))}:
            assert time.monotonic() < deadline, "the rewritten file was not uploaded"
            time.sleep(0.2)  # polling for rclone's write-back, bounded by the deadline
