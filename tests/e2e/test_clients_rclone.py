"""rclone (Debian's 1.60, provider ``Other``: ListObjects v1) against a real cluster.

``copy`` of a tree with awkward names and two multipart files (``--s3-upload-cutoff 5Mi``:
rclone stores ``x-amz-meta-md5chksum``) into a bucket it creates itself (and re-creates:
409 BucketAlreadyOwnedByYou), ``check`` (size + MD5 from ETag or md5chksum) and
``check --download``, ``sync`` after edits/deletes/additions, a server-side copy with
``--s3-copy-cutoff 5Mi`` (CopyObject and UploadPartCopy), and ``copy`` back down. Bytes are
checked by SHA-256 with boto3 and on disk, not by exit codes alone.

rclone 1.60 fails even on http endpoints when ``AWS_CA_BUNDLE`` is set (CLIENTS.md rule
12), so ``client_env`` drops it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    S3Endpoint,
    bucket_digest,
    client_env,
    make_tree,
    require_tool,
    run_cli,
    tree_digest,
)

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


@dataclass(frozen=True)
class Rclone:
    path: str
    env: dict[str, str]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli([self.path, *args], self.env)


@pytest.fixture
def rclone(client_endpoint: S3Endpoint, tmp_path: Path) -> Rclone:
    path = require_tool("rclone")
    config = tmp_path / "rclone.conf"
    config.write_text("")
    env = client_env(
        HOME=str(tmp_path),
        RCLONE_CONFIG=str(config),
        RCLONE_CONFIG_BS_TYPE="s3",
        RCLONE_CONFIG_BS_PROVIDER="Other",
        RCLONE_CONFIG_BS_ACCESS_KEY_ID=client_endpoint.access_key,
        RCLONE_CONFIG_BS_SECRET_ACCESS_KEY=client_endpoint.secret_key,
        RCLONE_CONFIG_BS_ENDPOINT=client_endpoint.endpoint_url,
        RCLONE_CONFIG_BS_REGION="us-east-1",
        RCLONE_CONFIG_BS_UPLOAD_CUTOFF="5Mi",
        RCLONE_CONFIG_BS_CHUNK_SIZE="5Mi",
        RCLONE_CONFIG_BS_COPY_CUTOFF="5Mi",
    )
    if client_endpoint.ca_bundle:
        env["RCLONE_CA_CERT"] = client_endpoint.ca_bundle
    return Rclone(path, env)


def test_copy_check_sync_and_back(
    rclone: Rclone, fresh_bucket: str, verifier: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    want = make_tree(src, 120, seed=11, big=(12 * MiB + 123, 7 * MiB))
    remote = f"bs:{fresh_bucket}/tree"

    rclone("copy", str(src), remote)  # creates the bucket
    assert bucket_digest(verifier, fresh_bucket, "tree/") == want
    head = verifier.head_object(Bucket=fresh_bucket, Key="tree/big/b0.bin")
    assert head["ETag"].endswith('-3"'), "the 12 MiB file should be a 3-part upload"
    assert "md5chksum" in head["Metadata"]
    rclone("copy", str(src), remote)  # again: CreateBucket answers 409, nothing to do

    rclone("check", str(src), remote)  # size + MD5 (ETag, or md5chksum for multipart)
    rclone("check", "--download", str(src), remote)
    listed = rclone("md5sum", remote).stdout.splitlines()
    assert len(listed) == len(want)

    # edit one file, delete one, add one; sync must make the remote equal again
    (src / "d3/s0/f0003.bin").write_bytes(b"edited" * 333)
    (src / "d4/s1/f0004.bin").unlink()
    (src / "added.txt").write_text("new file\n")
    rclone("sync", str(src), remote)
    want = tree_digest(src)
    assert bucket_digest(verifier, fresh_bucket, "tree/") == want
    rclone("check", str(src), remote)

    # server-side copy (CopyObject; UploadPartCopy above the 5 MiB copy cutoff)
    rclone("copy", remote, f"bs:{fresh_bucket}/copy")
    assert bucket_digest(verifier, fresh_bucket, "copy/") == want
    rclone("check", remote, f"bs:{fresh_bucket}/copy")

    dst = tmp_path / "dst"
    rclone("copy", remote, str(dst))
    assert tree_digest(dst) == want


def test_check_detects_a_difference(
    rclone: Rclone, fresh_bucket: str, verifier: Any, tmp_path: Path
) -> None:
    """``rclone check`` must fail when the remote differs (the MD5/ETag compare is real)."""
    src = tmp_path / "src"
    make_tree(src, 5, seed=5, odd_names=False)
    remote = f"bs:{fresh_bucket}/t"
    rclone("copy", str(src), remote)
    key = "t/d1/s1/f0001.bin"
    size = verifier.head_object(Bucket=fresh_bucket, Key=key)["ContentLength"]
    verifier.put_object(Bucket=fresh_bucket, Key=key, Body=b"x" * size)  # same size
    proc = subprocess.run(
        [rclone.path, "check", str(src), remote],
        env=rclone.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "1 differences found" in proc.stderr


def test_versions_of_a_versioned_bucket(
    rclone: Rclone, fresh_bucket: str, verifier: Any, tmp_path: Path
) -> None:
    """``--s3-versions`` lists old versions as ``name-vTIMESTAMP.ext`` (ListObjectVersions
    with real version ids), reads them (GET ?versionId=) and ``purge`` deletes them all."""
    verifier.create_bucket(Bucket=fresh_bucket)
    verifier.put_bucket_versioning(
        Bucket=fresh_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "doc.txt").write_bytes(b"first version\n")
    rclone("copy", str(src), f"bs:{fresh_bucket}")
    (src / "doc.txt").write_bytes(b"second, longer version\n")
    rclone("copy", str(src), f"bs:{fresh_bucket}")

    names = rclone("lsf", "--s3-versions", f"bs:{fresh_bucket}").stdout.split()
    assert len(names) == 2 and "doc.txt" in names
    old = next(n for n in names if n != "doc.txt")
    assert old.startswith("doc-v") and old.endswith(".txt")
    got = rclone("cat", "--s3-versions", f"bs:{fresh_bucket}/{old}").stdout
    assert got == "first version\n"
    assert rclone("cat", f"bs:{fresh_bucket}/doc.txt").stdout == "second, longer version\n"

    rclone("purge", "--s3-versions", f"bs:{fresh_bucket}")
    assert fresh_bucket not in [b["Name"] for b in verifier.list_buckets()["Buckets"]]
