"""A ``blobstore server --tls-ca`` cluster (the session's https one): the roles talk over
mutual TLS, and ``blobstore admin`` reaches the metadata service only with the cluster's
certificate.

The S3 side of the same cluster is exercised by every ``[https]`` client test; here the
admin CLI sees all three metadata nodes and six chunkservers through TLS (Raft links,
heartbeats and registrations all went over it), and is refused without a certificate.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.conftest import local_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Cluster:
    found = local_cluster(request, "blobstore_cluster_https")
    assert found.tls is not None
    return found


def _admin(cluster: Cluster, *tls: str) -> subprocess.CompletedProcess[str]:
    argv = cluster.admin_argv(*tls, "--json", "status")
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_admin_status_over_mutual_tls(cluster: Cluster) -> None:
    assert cluster.tls is not None
    cert, key = (str(p) for p in cluster.tls)
    proc = _admin(cluster, "--tls-cert", cert, "--tls-key", key, "--tls-ca", cert)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [n["state"] for n in doc["metadata"]] == ["up"] * 3
    assert sum(1 for n in doc["metadata"] if n["role"] == "leader") == 1
    assert len(doc["chunkservers"]) == 6
    assert {s["state"] for s in doc["chunkservers"]} == {"up"}


def test_admin_without_the_certificate_is_refused(cluster: Cluster) -> None:
    proc = _admin(cluster)
    assert proc.returncode != 0
    assert "do both ends use TLS?" in proc.stderr, proc.stderr
    assert "no metadata node answered" in proc.stderr  # said at once, not after a catalog query
