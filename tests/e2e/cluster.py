"""A real ``blobstore server`` (3 metadata + 6 chunkservers + gateway) for end-to-end tests.

``running_cluster(data_dir)`` picks free ports (the S3 port, 3 consecutive metadata ports,
6 consecutive chunkserver ports), starts ``python -m blobstore server`` on them with
credentials given through ``BLOBSTORE_ROOT_ACCESS_KEY`` / ``BLOBSTORE_ROOT_SECRET_KEY``,
waits until an S3 ListBuckets succeeds (polled, with a deadline; the process dying or the
deadline passing raises with the tail of its output and logs), yields a ``Cluster`` and
sends SIGTERM afterwards (SIGKILL to its process group if it does not stop in time); a
non-zero exit status on SIGTERM is an error. ``ports=cluster.ports`` on ``cluster.data_dir``
restarts the same cluster.

With ``tls=(cert, key)`` (a self-signed certificate for 127.0.0.1, so its own CA) the
endpoint is https and the roles talk to each other over mutual TLS (``blobstore server
--tls-cert/--tls-key/--tls-ca``); ``Cluster.ca_bundle`` is the certificate and
``Cluster.tls`` the pair (``blobstore admin`` needs them).

Must not import the gateway or the services: the cluster is only ever reached over S3.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from blobstore.obs.runtime import HTTP_PORT_OFFSET
from blobstore.supervisor import env_dying_with_me
from blobstore.testing.ports import free_run

__all__ = ["Cluster", "ClusterPorts", "ClusterStartError", "running_cluster"]

ACCESS_KEY = "E2ECLUSTERACCESSKEY1"
SECRET_KEY = "e2e-cluster-secret-key-0123456789abcdef"
METADATA_NODES = 3
CHUNKSERVERS = 6
PROBE_BUCKET = "e2e-readiness-probe"
PROBE_BODY = bytes(range(256)) * 1024  # 256 KiB: above the inline threshold


class ClusterStartError(RuntimeError):
    """``blobstore server`` did not become ready, or did not stop cleanly (its output is
    in the message)."""


@dataclass(frozen=True, slots=True)
class ClusterPorts:
    """The S3 port, the first of 3 metadata ports and the first of 6 chunkserver ports."""

    s3: int
    meta: int
    chunk: int


@dataclass(frozen=True, slots=True)
class Cluster:
    endpoint_url: str
    access_key: str
    secret_key: str
    data_dir: Path  # the server's --data (restart it with the same dir and ports)
    ports: ClusterPorts
    pid: int
    tls: tuple[Path, Path] | None = None  # https and internal mutual TLS: (cert, key)

    @property
    def ca_bundle(self) -> str | None:
        """What clients verify the https endpoint with: the self-signed certificate."""
        return str(self.tls[0]) if self.tls is not None else None

    def admin_argv(self, *args: str) -> list[str]:
        """``blobstore admin ARGS`` on this cluster's metadata ports and secret."""
        meta = ",".join(f"127.0.0.1:{self.ports.meta + i}" for i in range(METADATA_NODES))
        admin = [sys.executable, "-m", "blobstore", "admin", "--meta", meta]
        return [*admin, "--data", str(self.data_dir), *args]


def _free_run(length: int, rng: random.Random, avoid: set[int]) -> int:
    """The first port of ``length`` consecutive free ports, their metrics ports (+1000, the
    server's default) free too, below the ephemeral range (``blobstore.testing.ports``)."""
    return free_run(length, offsets=(0, HTTP_PORT_OFFSET), avoid=avoid, rng=rng)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _diagnostics(data_dir: Path, out: Path) -> str:
    parts = [f"--- server output ---\n{_tail(out)}"]
    logs = data_dir / "logs"
    if logs.is_dir():
        for log in sorted(logs.glob("*.log")):
            tail = _tail(log, 10)
            if tail:
                parts.append(f"--- {log.name} ---\n{tail}")
    return "\n".join(parts)


def _client(endpoint: str, ca_bundle: str | None) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        verify=ca_bundle if ca_bundle else True,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=2,
            read_timeout=10,
        ),
    )


def _ready(endpoint: str, ca_bundle: str | None) -> bool:
    """ListBuckets succeeds, and so does an erasure-coded write (all chunkservers have
    registered): a PUT above the inline threshold, then its delete."""
    client = _client(endpoint, ca_bundle)
    try:
        client.list_buckets()
        with contextlib.suppress(ClientError):
            client.create_bucket(Bucket=PROBE_BUCKET)  # BucketAlreadyOwnedByYou on retries
        client.put_object(Bucket=PROBE_BUCKET, Key="probe", Body=PROBE_BODY)
        client.delete_object(Bucket=PROBE_BUCKET, Key="probe")
        client.delete_bucket(Bucket=PROBE_BUCKET)
        return True
    except (BotoCoreError, ClientError):
        return False
    finally:
        client.close()
        with warnings.catch_warnings():  # sockets dropped in error paths
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only ours
            proc.wait(timeout=10)


def _free_ports(rng: random.Random) -> ClusterPorts:
    taken: set[int] = set()
    s3_port = _free_run(1, rng, taken)
    return ClusterPorts(
        s3_port, _free_run(METADATA_NODES, rng, taken), _free_run(CHUNKSERVERS, rng, taken)
    )


def _start_once(
    data_dir: Path, tls: tuple[Path, Path] | None, ready_timeout_s: float, ports: ClusterPorts
) -> tuple[subprocess.Popen[bytes], Cluster]:
    s3_port, meta_port, chunk_port = ports.s3, ports.meta, ports.chunk
    argv = [
        sys.executable, "-m", "blobstore", "server",
        "--data", str(data_dir),
        "--listen", f"127.0.0.1:{s3_port}",
        "--meta-port", str(meta_port),
        "--chunk-port", str(chunk_port),
        "--ready-timeout", str(ready_timeout_s),
    ]  # fmt: skip
    if tls is not None:  # self-signed: the certificate is its own CA
        argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1]), "--tls-ca", str(tls[0])]
    env = env_dying_with_me()
    env["BLOBSTORE_ROOT_ACCESS_KEY"] = ACCESS_KEY
    env["BLOBSTORE_ROOT_SECRET_KEY"] = SECRET_KEY
    out = data_dir / "server.out"
    with out.open("ab") as sink:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    scheme = "https" if tls is not None else "http"
    cluster = Cluster(
        f"{scheme}://127.0.0.1:{s3_port}",
        ACCESS_KEY,
        SECRET_KEY,
        data_dir,
        ports,
        proc.pid,
        tls,
    )
    deadline = time.monotonic() + ready_timeout_s
    while True:
        if proc.poll() is not None:
            raise ClusterStartError(
                f"blobstore server exited with {proc.returncode} before it was ready\n"
                + _diagnostics(data_dir, out)
            )
        if _ready(cluster.endpoint_url, cluster.ca_bundle):
            return proc, cluster
        if time.monotonic() > deadline:
            _stop(proc)
            raise ClusterStartError(
                f"blobstore server not ready after {ready_timeout_s:.0f} s\n"
                + _diagnostics(data_dir, out)
            )
        time.sleep(0.2)  # readiness poll interval, bounded by the deadline above


@contextlib.contextmanager
def running_cluster(
    data_dir: Path,
    *,
    tls: tuple[Path, Path] | None = None,
    ports: ClusterPorts | None = None,
    ready_timeout_s: float = 90.0,
    attempts: int = 2,
) -> Iterator[Cluster]:
    """Start ``blobstore server`` and stop it (SIGTERM) on exit.

    Without ``ports``: free ports and a fresh ``data_dir/server-N`` per attempt (a port
    taken meanwhile costs a retry). With ``ports`` (a restart: ``cluster.ports``,
    ``cluster.data_dir``): exactly those, on ``data_dir`` itself, once."""
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random()  # fresh ports per start
    last: ClusterStartError | None = None
    for attempt in range(1 if ports is not None else attempts):
        try:
            if ports is not None:
                proc, cluster = _start_once(data_dir, tls, ready_timeout_s, ports)
            else:
                # a fresh directory per attempt: Raft state remembers the peers' ports
                where = data_dir / f"server-{attempt}"
                where.mkdir()
                proc, cluster = _start_once(where, tls, ready_timeout_s, _free_ports(rng))
        except ClusterStartError as e:
            last = e
            continue
        try:
            yield cluster
        finally:
            _stop(proc)
        if proc.returncode != 0:
            raise ClusterStartError(
                f"blobstore server exited with {proc.returncode} on SIGTERM (expected 0)\n"
                + _diagnostics(cluster.data_dir, cluster.data_dir / "server.out")
            )
        return
    assert last is not None
    raise last
