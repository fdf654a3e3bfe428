"""s3fs (Debian's 1.90, FUSE) mounting a bucket of a real cluster.

s3fs signs with SigV4 (``-o sigv4``), speaks path-style (``-o use_path_request_style``)
to ``-o url=http://127.0.0.1:PORT``, lists with ListObjects v1 (delimiter ``/``), probes
with many HEADs (mostly 404: ``dir/``, ``dir_$folder$``), PUTs with
``x-amz-meta-mode/uid/gid/mtime``, uploads big files as multipart (``-o
multipart_size=5``), creates ``dir/`` marker objects and implements rename/chmod with
CopyObject (metadata REPLACE) + DeleteObject.

The test mounts a fresh bucket, copies a tree (awkward names, a 12 MiB multipart file)
into it, renames one file and chmods another, reads a file back through the mount,
unmounts (every upload is flushed by then) and checks every object by SHA-256 with boto3;
then writes objects with boto3 and mounts again to read the whole tree back through FUSE.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    S3Endpoint,
    bucket_digest,
    client_env,
    make_tree,
    require_tool,
    sha256_file,
    tree_digest,
)
from tests.e2e.fuse_mount import fuse_usable, mounted

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


@pytest.fixture
def s3fs_argv(client_endpoint: S3Endpoint, tmp_path: Path) -> list[str]:
    """``s3fs`` and its options, minus the bucket and mount point."""
    path = require_tool("s3fs")
    why = fuse_usable()
    if why is not None:
        pytest.skip(why)
    if client_endpoint.endpoint_url.startswith("https"):
        pytest.skip("s3fs runs against plain HTTP here (no CA option for a self-signed cert)")
    passwd = tmp_path / "passwd-s3fs"
    passwd.write_text(f"{client_endpoint.access_key}:{client_endpoint.secret_key}\n")
    passwd.chmod(0o600)
    opts = [
        f"url={client_endpoint.endpoint_url}",
        "use_path_request_style",
        "sigv4",
        "endpoint=us-east-1",
        f"passwd_file={passwd}",
        "multipart_size=5",
        "parallel_count=2",
        "stat_cache_expire=1",
        "dbglevel=warn",
    ]
    return [path, "-f", "-o", ",".join(opts)]


def test_write_tree_unmount_read_back(
    s3fs_argv: list[str], fresh_bucket: str, verifier: Any, tmp_path: Path
) -> None:
    verifier.create_bucket(Bucket=fresh_bucket)
    src = tmp_path / "src"
    want = make_tree(src, 40, seed=31, max_size=60_000, big=(12 * MiB + 3,))
    env = client_env(HOME=str(tmp_path))
    mnt = tmp_path / "mnt"

    with mounted([*s3fs_argv, fresh_bucket, str(mnt)], mnt, env):
        shutil.copytree(src, mnt / "tree")
        os.rename(mnt / "tree/d0/s0/f0000.bin", mnt / "tree/d0/s0/renamed.bin")
        os.chmod(mnt / "tree/d1/s1/f0001.bin", 0o600)
        assert sha256_file(mnt / "tree/big/b0.bin") == want["big/b0.bin"]
        assert stat.S_IMODE((mnt / "tree/d1/s1/f0001.bin").stat().st_mode) == 0o600
    want["d0/s0/renamed.bin"] = want.pop("d0/s0/f0000.bin")

    stored = bucket_digest(verifier, fresh_bucket, "tree/")
    markers = {k for k in stored if k == "" or k.endswith("/")}  # s3fs's directory objects
    assert {"", "d0/", "d0/s0/", "big/", "odd/"} <= markers
    assert {k: v for k, v in stored.items() if k not in markers} == want
    head = verifier.head_object(Bucket=fresh_bucket, Key="tree/big/b0.bin")
    assert re.fullmatch(r'"[0-9a-f]{32}-[23]"', head["ETag"]), "12 MiB in 5 MiB parts: multipart"
    chmodded = verifier.head_object(Bucket=fresh_bucket, Key="tree/d1/s1/f0001.bin")
    assert int(chmodded["Metadata"]["mode"]) & 0o777 == 0o600  # CopyObject, REPLACE

    # objects written by another client show up through a new mount
    verifier.put_object(Bucket=fresh_bucket, Key="tree/from-boto3/note.txt", Body=b"hello\n")
    want["from-boto3/note.txt"] = hashlib.sha256(b"hello\n").hexdigest()
    with mounted([*s3fs_argv, fresh_bucket, str(mnt)], mnt, env):
        assert tree_digest(mnt / "tree") == want
