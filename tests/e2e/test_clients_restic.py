"""restic (Debian's 0.14, minio-go) using a real cluster as its backup repository.

restic calls GetBucketLocation on every start (404 NoSuchBucket -> it creates the bucket)
and, over plain HTTP, sends every PUT as signed aws-chunked
(``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``) WITHOUT a ``Content-Encoding`` header; reads are
HEADs and ranged GETs. The test: ``init``, a backup of a ~20 MiB tree, edits, a second
backup, ``check --read-data`` (every pack downloaded and verified), restore of both
snapshots compared by SHA-256 with the tree as it was, ``forget --keep-last 1 --prune``
(deletes), ``check --read-data`` and a restore again; over http and https (where its
PUTs are ``UNSIGNED-PAYLOAD`` with Content-MD5). Also: a repository written before a
``blobstore server`` restart (SIGTERM, same data directory and ports) checks and restores
completely after it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import running_cluster
from tests.e2e.conftest import S3Endpoint, client_env, make_tree, require_tool, run_cli, tree_digest

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


@dataclass(frozen=True)
class Restic:
    path: str
    env: dict[str, str]

    cacert: str | None = None

    def __call__(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        tls = ["--cacert", self.cacert] if self.cacert else []
        return run_cli([self.path, *tls, *args], self.env, cwd=cwd)


@pytest.fixture(params=["http", "https"])
def client_endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    """Both transports: over https restic sends UNSIGNED-PAYLOAD + Content-MD5 instead."""
    name = "s3_endpoint" if request.param == "http" else "s3_endpoint_https"
    endpoint: S3Endpoint = request.getfixturevalue(name)
    return endpoint


@pytest.fixture
def restic(client_endpoint: S3Endpoint, fresh_bucket: str, tmp_path: Path) -> Restic:
    return _restic_for(require_tool("restic"), client_endpoint, fresh_bucket, tmp_path)


def _restic_for(path: str, client_endpoint: S3Endpoint, bucket: str, tmp_path: Path) -> Restic:
    env = client_env(
        HOME=str(tmp_path),
        AWS_ACCESS_KEY_ID=client_endpoint.access_key,
        AWS_SECRET_ACCESS_KEY=client_endpoint.secret_key,
        RESTIC_REPOSITORY=f"s3:{client_endpoint.endpoint_url}/{bucket}",
        RESTIC_PASSWORD="e2e-restic-password",
        RESTIC_CACHE_DIR=str(tmp_path / "cache"),
    )
    return Restic(path, env, client_endpoint.ca_bundle)


def _snapshot_ids(restic: Restic) -> list[str]:
    doc = json.loads(restic("snapshots", "--json").stdout)
    return [str(s["id"]) for s in sorted(doc, key=lambda s: s["time"])]


def _restore(restic: Restic, snapshot: str, target: Path, cwd: Path) -> dict[str, str]:
    restic("restore", snapshot, "--target", str(target), cwd=cwd)
    return tree_digest(target / "data")


def test_backup_check_restore_prune(
    restic: Restic, fresh_bucket: str, verifier: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    rng = random.Random(21)
    make_tree(data, 60, seed=21, max_size=100_000, big=(8 * MiB, 6 * MiB))
    (data / "text.log").write_text("".join(f"line {i} {rng.random()}\n" for i in range(40_000)))
    first = tree_digest(data)

    restic("init")  # GetBucketLocation -> 404 -> CreateBucket, then the config object
    assert verifier.get_bucket_location(Bucket=fresh_bucket)["LocationConstraint"] is None
    restic("backup", "data", cwd=tmp_path)

    (data / "big/b1.bin").write_bytes(rng.randbytes(3 * MiB))
    (data / "d0/s0/f0000.bin").unlink()
    (data / "new/file.bin").parent.mkdir()
    (data / "new/file.bin").write_bytes(rng.randbytes(500_000))
    second = tree_digest(data)
    restic("backup", "data", cwd=tmp_path)

    snapshots = _snapshot_ids(restic)
    assert len(snapshots) == 2
    restic("check", "--read-data")
    assert _restore(restic, snapshots[0], tmp_path / "r1", tmp_path) == first
    assert _restore(restic, snapshots[1], tmp_path / "r2", tmp_path) == second

    restic("forget", "--keep-last", "1", "--prune")
    assert _snapshot_ids(restic) == [snapshots[1]]
    restic("check", "--read-data")
    assert _restore(restic, "latest", tmp_path / "r3", tmp_path) == second


def test_repository_survives_a_cluster_restart(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Back up, stop ``blobstore server`` (SIGTERM), start it again on the same data
    directory and ports: ``check --read-data`` and a restore find every byte."""
    if os.environ.get("BLOBSTORE_E2E_ENDPOINT"):
        pytest.skip("restarts a local cluster; BLOBSTORE_E2E_ENDPOINT points elsewhere")
    path = require_tool("restic")
    data = tmp_path / "data"
    want = make_tree(data, 30, seed=33, max_size=200_000, big=(5 * MiB,))
    base = tmp_path_factory.mktemp("restart")
    with running_cluster(base) as first:
        ep = S3Endpoint(first.endpoint_url, first.access_key, first.secret_key)
        restic = _restic_for(path, ep, "e2e-restart", tmp_path)
        restic("init")
        restic("backup", "data", cwd=tmp_path)
    with running_cluster(first.data_dir, ports=first.ports) as again:
        assert again.endpoint_url == first.endpoint_url
        restic("check", "--read-data")
        assert _restore(restic, "latest", tmp_path / "restored", tmp_path) == want
