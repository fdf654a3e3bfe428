"""Metrics and health of every role on a real ``blobstore server`` (10 processes).

One cluster for the module: each role's ``/health/live`` and ``/health/ready`` answer 200,
each ``/metrics`` carries its role's names, S3 requests move the gateway's, chunkservers'
and leader's counters, a failed request's ``x-amz-request-id`` is in the gateway log, and
freezing two of the three metadata nodes (SIGSTOP: the quorum is gone) turns the gateway
and the remaining metadata node not-ready until they are resumed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from blobstore.supervisor import env_dying_with_me
from blobstore.testing.poll import wait_until
from blobstore.testing.ports import free_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ACCESS_KEY = "HEALTHTESTACCESSKEY1"
SECRET_KEY = "health-test-secret-key-0123456789abcdef"
OFFSET = 1000
STARTUP_S = 180.0
RAFT_NAMES = (
    "blobstore_raft_term",
    "blobstore_raft_commit_index",
    "blobstore_raft_applied_index",
    "blobstore_raft_leader_changes_total",
    "blobstore_raft_is_leader",
    "blobstore_raft_proposal_seconds_count",
)


@dataclass(frozen=True)
class Cluster:
    data: Path
    s3: int
    meta: tuple[int, ...]
    chunk: tuple[int, ...]
    proc: subprocess.Popen[bytes]
    out: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3}"

    def http(self, port: int) -> str:
        return f"http://127.0.0.1:{port + OFFSET}"

    @property
    def all_ports(self) -> tuple[int, ...]:
        return (*self.meta, *self.chunk, self.s3)

    def role_pid(self, role: str) -> int:
        found = re.findall(rf"role started\" role={role} pid=(\d+)", self.out.read_text())
        assert found, f"no pid for {role}"
        return int(found[-1])


def _pick_ports() -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    base = free_run(17, offsets=(0, OFFSET))  # below the ephemeral range: see its module
    return base, tuple(range(base + 1, base + 4)), tuple(range(base + 11, base + 17))


def _get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def _metrics(url: str) -> dict[str, float]:
    status, body = _get(url + "/metrics")
    assert status == 200, url
    samples: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _s3(endpoint: str) -> object:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data = tmp_path_factory.mktemp("health")
    s3, meta, chunk = _pick_ports()
    out = data / "server.out"
    env = env_dying_with_me({**os.environ, "BLOBSTORE_ROOT_ACCESS_KEY": ACCESS_KEY,
                             "BLOBSTORE_ROOT_SECRET_KEY": SECRET_KEY})  # fmt: skip
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "blobstore", "server", "--data", str(data / "d"),
             "--listen", f"127.0.0.1:{s3}", "--meta-port", str(meta[0]),
             "--chunk-port", str(chunk[0]), "--http-offset", str(OFFSET),
             "--ready-timeout", str(STARTUP_S)],
            stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    c = Cluster(data / "d", s3, meta, chunk, proc, out)
    try:
        wait_until(
            lambda: proc.poll() is not None or "blobstore is running" in out.read_text(),
            STARTUP_S + 30,
            "server start",
        )
        assert proc.poll() is None, out.read_text()[-3000:]
        yield c
    finally:
        for role in ("meta-1", "meta-2", "meta-3"):  # never leave one stopped
            with contextlib.suppress(AssertionError, ProcessLookupError):
                os.kill(c.role_pid(role), signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_banner_lists_every_metrics_port(cluster: Cluster) -> None:
    text = cluster.out.read_text()
    for port in cluster.all_ports:
        assert str(port + OFFSET) in text


def test_every_role_is_live_and_ready(cluster: Cluster) -> None:
    for port in cluster.all_ports:
        status, body = _get(cluster.http(port) + "/health/live")
        assert status == 200, (port, body)
        assert json.loads(body)["status"] == "live"
        wait_until(
            lambda port=port: _get(cluster.http(port) + "/health/ready")[0] == 200,  # type: ignore[misc]
            60,
            f"ready on {port}",
        )


def test_metrics_names_and_counters_move_after_s3_requests(cluster: Cluster) -> None:
    meta = [_metrics(cluster.http(p)) for p in cluster.meta]
    for m in meta:
        for name in RAFT_NAMES:
            assert name in m, name
    assert sum(m["blobstore_raft_is_leader"] for m in meta) == 1
    leader_port = next(p for p, m in zip(cluster.meta, meta, strict=True)
                       if m["blobstore_raft_is_leader"] == 1)  # fmt: skip
    chunk_before = [_metrics(cluster.http(p)) for p in cluster.chunk]
    for m in chunk_before:
        for name in ("blobstore_chunkserver_disk_free_bytes",
                     "blobstore_chunkserver_disk_capacity_bytes",
                     "blobstore_chunkserver_shard_write_bytes_total",
                     "blobstore_chunkserver_registered",
                     "blobstore_scrub_bytes_total"):  # fmt: skip
            assert name in m, name
    # the gateway's probe runs every 2 s: poll until it has seen every chunkserver
    wait_until(
        lambda: _metrics(cluster.http(cluster.s3)).get("blobstore_gateway_chunkservers_up") == 6,
        60,
        "the gateway to see 6 chunkservers up",
    )
    gw_before = _metrics(cluster.http(cluster.s3))
    leader_before = meta[cluster.meta.index(leader_port)]
    proposals_before = leader_before["blobstore_raft_proposal_seconds_count"]

    client = _s3(cluster.endpoint)
    body = os.urandom(300_000)  # above the inline threshold: erasure-coded
    client.create_bucket(Bucket="health-bucket")  # type: ignore[attr-defined]
    client.put_object(Bucket="health-bucket", Key="obj", Body=body)  # type: ignore[attr-defined]
    got = client.get_object(Bucket="health-bucket", Key="obj")["Body"].read()  # type: ignore[attr-defined]
    assert got == body
    with pytest.raises(ClientError) as err:
        client.get_object(Bucket="health-bucket", Key="missing")  # type: ignore[attr-defined]
    request_id = err.value.response["ResponseMetadata"]["RequestId"]
    assert request_id

    gw = _metrics(cluster.http(cluster.s3))
    put = 'blobstore_s3_requests_total{operation="PutObject",status="200"}'
    miss = 'blobstore_s3_requests_total{operation="GetObject",status="404"}'
    assert gw[put] >= gw_before.get(put, 0) + 1
    assert gw[miss] >= gw_before.get(miss, 0) + 1
    assert gw['blobstore_s3_received_bytes_total{operation="PutObject"}'] >= 300_000
    assert gw['blobstore_s3_sent_bytes_total{operation="GetObject"}'] >= 300_000
    assert gw['blobstore_s3_request_seconds_count{operation="GetObject"}'] >= 2

    chunk_after = [_metrics(cluster.http(p)) for p in cluster.chunk]
    written = sum(
        a["blobstore_chunkserver_shard_write_bytes_total"]
        - b["blobstore_chunkserver_shard_write_bytes_total"]
        for a, b in zip(chunk_after, chunk_before, strict=True)
    )
    assert written >= 300_000  # k data shards at least, plus parity
    leader = _metrics(cluster.http(leader_port))
    assert leader["blobstore_raft_proposal_seconds_count"] > proposals_before

    log = cluster.data / "logs" / "gateway.log"
    wait_until(lambda: f"request_id={request_id}" in log.read_text(), 10, "request id in the log")
    line = next(ln for ln in log.read_text().splitlines() if f"request_id={request_id}" in ln)
    assert "status=404" in line and "operation=GetObject" in line


def test_losing_the_metadata_quorum_makes_gateway_and_metadata_not_ready(
    cluster: Cluster,
) -> None:
    gateway = cluster.http(cluster.s3) + "/health/ready"
    survivor = cluster.http(cluster.meta[0]) + "/health/ready"
    wait_until(lambda: _get(gateway)[0] == 200, 60, "gateway ready before")
    frozen = [cluster.role_pid("meta-2"), cluster.role_pid("meta-3")]
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: _get(gateway)[0] == 503, 60, "gateway not ready")
        wait_until(lambda: _get(survivor)[0] == 503, 60, "metadata node not ready")
        _, body = _get(gateway)
        assert "no metadata leader" in json.loads(body)["checks"][-1]["detail"]
        assert _get(cluster.http(cluster.meta[0]) + "/health/live")[0] == 200
        assert _get(cluster.http(cluster.s3) + "/health/live")[0] == 200
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    wait_until(lambda: _get(gateway)[0] == 200, 90, "gateway ready again")
    wait_until(lambda: _get(survivor)[0] == 200, 60, "metadata ready again")
