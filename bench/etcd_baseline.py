"""Baseline for bench/raft_bench.py: a 3-member etcd cluster on loopback, puts over HTTP/JSON.

Uses Debian's ``etcd-server`` (``apt-get install etcd-server``) when installed; reports
``None`` otherwise. Each client is one keep-alive HTTP/1.1 connection to one member's
grpc-gateway (``POST /v3/kv/put``), values of ~256 bytes, the same shape as the catalog
puts the Raft benchmark sends. etcd fsyncs its WAL before acknowledging, like us.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from blobstore.testing.ports import free_ports

__all__ = ["EtcdCluster", "LoadResult", "etcd_available", "run_http_puts"]


def etcd_available() -> bool:
    return shutil.which("etcd") is not None


@dataclass
class LoadResult:
    ops: int
    seconds: float
    latencies_ms: list[float]

    @property
    def ops_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class EtcdCluster:
    """Three etcd members on 127.0.0.1 in a temp dir; a context manager."""

    def __init__(self, members: int = 3) -> None:
        self.members = members
        self.client_urls: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._dir = Path(tempfile.mkdtemp(prefix="etcd-bench-"))

    def __enter__(self) -> EtcdCluster:
        ports = free_ports(2 * self.members)
        peer = [f"http://127.0.0.1:{ports[2 * i]}" for i in range(self.members)]
        self.client_urls = [f"http://127.0.0.1:{ports[2 * i + 1]}" for i in range(self.members)]
        initial = ",".join(f"e{i}={peer[i]}" for i in range(self.members))
        for i in range(self.members):
            self._procs.append(
                subprocess.Popen(
                    [
                        "etcd",
                        "--name",
                        f"e{i}",
                        "--data-dir",
                        str(self._dir / f"e{i}"),
                        "--listen-peer-urls",
                        peer[i],
                        "--initial-advertise-peer-urls",
                        peer[i],
                        "--listen-client-urls",
                        self.client_urls[i],
                        "--advertise-client-urls",
                        self.client_urls[i],
                        "--initial-cluster",
                        initial,
                        "--initial-cluster-state",
                        "new",
                        "--log-level",
                        "error",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self._wait_healthy(30.0)
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                asyncio.run(run_http_puts(self.client_urls[:1], clients=1, ops=1))
                return
            except (OSError, RuntimeError):
                time.sleep(0.2)  # poll interval of a deadline-bounded wait
        raise RuntimeError("etcd cluster did not become healthy")

    def __exit__(self, *exc: object) -> None:
        for p in self._procs:
            p.terminate()
        for p in self._procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


async def _client(url: str, ops: int, lat: list[float], cid: int) -> None:
    host, _, port = url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    value = base64.b64encode(b"v" * 256).decode()
    try:
        for n in range(ops):
            key = base64.b64encode(f"bench/{cid}/{n}".encode()).decode()
            body = json.dumps({"key": key, "value": value}).encode()
            req = (
                f"POST /v3/kv/put HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            t0 = time.perf_counter()
            writer.write(req)
            status = await reader.readline()
            if b" 200 " not in status:
                raise RuntimeError(f"etcd answered {status!r}")
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            lat.append((time.perf_counter() - t0) * 1000)
    finally:
        writer.close()


async def run_http_puts(urls: list[str], clients: int, ops: int) -> LoadResult:
    """``clients`` concurrent keep-alive clients, ``ops`` puts in total."""
    lat: list[float] = []
    per = max(1, ops // clients)
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(urls[i % len(urls)], per, lat, i) for i in range(clients)))
    return LoadResult(per * clients, time.perf_counter() - t0, lat)


if __name__ == "__main__":
    if not etcd_available():
        print("etcd not installed (apt-get install etcd-server)")
    else:
        with EtcdCluster() as cluster:
            for c, n in ((1, 500), (64, 10_000)):
                r = asyncio.run(run_http_puts(cluster.client_urls, c, n))
                p50, p99 = r.percentile(50), r.percentile(99)
                print(f"c={c}: {r.ops_s:.0f} ops/s p50={p50:.2f}ms p99={p99:.2f}ms")
