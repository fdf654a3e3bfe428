"""duplicity (Debian's 0.8.22, ``boto3+s3://`` backend) with a real cluster as its target.

duplicity never creates the bucket (HeadBucket; a missing bucket is fatal), uploads each
volume and manifest with boto3's managed transfer (multipart above
``--s3-multipart-chunk-size``), lists with ListObjects, reads with GET/HEAD and deletes
with DeleteObject. The test: a full backup of a ~20 MiB tree (8 MiB volumes, 5 MiB parts),
edits (one changed, one deleted, one added file), an incremental backup, ``verify
--compare-data`` (every volume downloaded and compared with the tree), ``restore`` of the
latest state and ``restore --time`` of the full one, both compared by SHA-256, then
``remove-all-but-n-full`` after a second full and a restore again; over http and https.
Unencrypted (``--no-encryption``): encryption is gpg's business, not the store's.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    S3Endpoint,
    client_env,
    make_tree,
    require_tool,
    run_cli,
    tree_digest,
)

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


@dataclass(frozen=True)
class Duplicity:
    path: str
    env: dict[str, str]
    common: tuple[str, ...]

    def __call__(self, action: str, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli([self.path, action, *self.common, *args], self.env, timeout_s=600)


@pytest.fixture(params=["http", "https"])
def client_endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    """Both transports (Debian's boto3 1.26 takes the CA from ``AWS_CA_BUNDLE``)."""
    name = "s3_endpoint" if request.param == "http" else "s3_endpoint_https"
    endpoint: S3Endpoint = request.getfixturevalue(name)
    return endpoint


@pytest.fixture
def duplicity(client_endpoint: S3Endpoint, tmp_path: Path) -> Duplicity:
    path = require_tool("duplicity")
    env = client_env(
        HOME=str(tmp_path),
        AWS_ACCESS_KEY_ID=client_endpoint.access_key,
        AWS_SECRET_ACCESS_KEY=client_endpoint.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
    )
    if client_endpoint.ca_bundle:
        env["AWS_CA_BUNDLE"] = client_endpoint.ca_bundle
    probe = subprocess.run(
        ["/usr/bin/python3", "-c", "import boto3"], env=env, capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip("duplicity's boto3 backend needs python3-boto3 (Debian package)")
    common = (
        "--no-encryption",
        "--s3-endpoint-url", client_endpoint.endpoint_url,
        "--s3-region-name", "us-east-1",
        "--archive-dir", str(tmp_path / "archive"),
        "--name", "e2e",
        "--volsize", "8",
        "--s3-multipart-chunk-size", "5",
        "--num-retries", "2",
    )  # fmt: skip
    return Duplicity(path, env, common)


def _keys(client: Any, bucket: str) -> list[str]:
    """duplicity's file names under the target (minus the prefix)."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="backups/home/")
    return [o["Key"].removeprefix("backups/home/") for p in pages for o in p.get("Contents", [])]


def _wait_for_next_second(after: float) -> None:
    """duplicity's backup times have 1 s resolution: the next backup must be later."""
    deadline = time.monotonic() + 5
    while int(time.time()) <= int(after):
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling the wall clock, bounded by the deadline above


def test_full_incremental_verify_restore(
    duplicity: Duplicity, fresh_bucket: str, verifier: Any, tmp_path: Path
) -> None:
    verifier.create_bucket(Bucket=fresh_bucket)  # duplicity never creates it
    target = f"boto3+s3://{fresh_bucket}/backups/home"
    src = tmp_path / "src"
    first = make_tree(src, 60, seed=21, max_size=150_000, big=(12 * MiB + 7,))

    duplicity("full", str(src), target)
    keys = _keys(verifier, fresh_bucket)
    volumes = [k for k in keys if ".vol" in k and k.endswith(".difftar.gz")]
    assert len(volumes) >= 2, keys  # ~18 MiB of random data in 8 MiB volumes
    assert any(k.endswith(".manifest") for k in keys)
    full_done = time.time()
    _wait_for_next_second(full_done)

    (src / "d1/s1/f0001.bin").write_bytes(b"changed" * 5000)
    (src / "d2/s2/f0002.bin").unlink()
    (src / "new dir").mkdir()
    (src / "new dir/added.txt").write_text("added after the full backup\n")
    second = tree_digest(src)
    duplicity("incr", str(src), target)
    duplicity("verify", "--compare-data", target, str(src))

    latest = tmp_path / "latest"
    duplicity("restore", target, str(latest))
    assert tree_digest(latest) == second

    when = datetime.fromtimestamp(int(full_done), UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    old = tmp_path / "old"
    duplicity("restore", "--time", when, target, str(old))
    assert tree_digest(old) == first

    # a second full chain, then drop the first one: only the second remains restorable
    _wait_for_next_second(time.time())
    duplicity("full", str(src), target)
    duplicity("remove-all-but-n-full", "1", "--force", target)
    keys = _keys(verifier, fresh_bucket)
    assert not [k for k in keys if "duplicity-inc." in k or "new-signatures" in k], keys
    assert len({k.split(".")[1] for k in keys}) == 1, keys  # one full backup's time stamp
    status = duplicity("collection-status", target).stdout
    assert "Chain start time" in status and status.count("Full ") == 1, status
    again = tmp_path / "again"
    duplicity("restore", target, str(again))
    assert tree_digest(again) == second
