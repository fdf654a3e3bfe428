"""Raft/catalog benchmark: commits/s and latency through the real client, vs etcd.

Starts 3 ``blobstore metadata`` processes on 127.0.0.1 (fsync on, data in a temp dir) and
drives catalog put commands (``CommitObject`` with ~256 bytes of inline data) through
``RemoteCatalog`` at 1 and 64 concurrent clients. Baseline in the same run: a 3-member
etcd (Debian ``etcd-server``) on loopback, puts of 256-byte values through its HTTP/JSON
gateway (skipped with a message when etcd is not installed). Then the snapshot figures
from ``bench/catalog_bench.py``'s 1,000,000-object catalog (time to serialize and the
longest pause it causes to concurrent apply).

Prints a table, then one JSON line last:
{"bench": "raft", "ops_c1": N, "ops_c64": N, "p50_ms_c1": N, "p99_ms_c64": N,
 "etcd_ops_c1": N|null, "etcd_ops_c64": N|null, "ratio_c1": R|null, "ratio_c64": R|null,
 "snapshot_1m_s": N, "snapshot_max_pause_ms": N}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.etcd_baseline import EtcdCluster, LoadResult, etcd_available, run_http_puts
from blobstore.client.catalog import RemoteCatalog
from blobstore.rpc import RpcClient
from blobstore.testing.ports import free_ports
from blobstore.types import Address
from metadata.fsm.commands import CommitObject, CreateBucket

VALUE = b"v" * 256


class MetadataCluster:
    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.ports = free_ports(size)
        self.secret = secrets.token_hex(32)
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> MetadataCluster:
        secret_file = self.root / "cluster.secret"
        secret_file.write_text(self.secret)
        peers = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(self.ports))
        for i, port in enumerate(self.ports):
            log = open(self.root / f"meta-{i + 1}.log", "wb")
            argv = [
                sys.executable, "-m", "blobstore", "metadata", "--id", str(i + 1),
                "--listen", f"127.0.0.1:{port}", "--peers", peers,
                "--data", str(self.root / f"meta-{i + 1}"),
                "--secret-file", str(secret_file), "--log-level", "warning",
            ]  # fmt: skip
            self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        return self

    @property
    def addrs(self) -> list[Address]:
        return [Address("127.0.0.1", p) for p in self.ports]

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


async def _drive(addrs: list[Address], secret: bytes, clients: int, ops: int) -> LoadResult:
    transport = RpcClient(secret)
    catalog = RemoteCatalog(addrs, transport, slots=max(clients, 1))
    bucket = f"bench{os.getpid()}{int(time.time() * 1000) % 100000}"
    await catalog.execute(CreateBucket(bucket, "bench"), timeout_s=30)
    lat: list[float] = []
    per = max(1, ops // clients)

    async def client(c: int) -> None:
        for n in range(per):
            cmd = CommitObject(
                bucket=bucket, key=f"k/{c}/{n}", version_id="", owner="bench",
                size=len(VALUE), etag='"0"', inline_data=VALUE,
            )  # fmt: skip
            t0 = time.perf_counter()
            await catalog.execute(cmd, timeout_s=30)
            lat.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    result = LoadResult(per * clients, time.perf_counter() - t0, lat)
    await transport.close()
    return result


async def _wait_ready(addrs: list[Address], secret: bytes, timeout_s: float) -> None:
    transport = RpcClient(secret)
    catalog = RemoteCatalog(addrs, transport)
    try:
        await catalog.execute(CreateBucket("benchwarmup", "bench"), timeout_s=timeout_s)
    except Exception as e:  # BucketAlreadyOwnedByYou on reuse is fine
        if "Already" not in type(e).__name__:
            raise
    finally:
        await transport.close()


def _snapshot_figures(objects: int) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "catalog_bench.py"), "--objects",
         str(objects)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return float(doc["snapshot_1m_s"]), float(doc["snapshot_max_pause_ms"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops-c1", type=int, default=1000)
    ap.add_argument("--ops-c64", type=int, default=20000)
    ap.add_argument("--snapshot-objects", type=int, default=1_000_000)
    args = ap.parse_args()

    rows: list[tuple[str, LoadResult]] = []
    with (
        tempfile.TemporaryDirectory(prefix="raft-bench-") as tmp,
        MetadataCluster(Path(tmp)) as cluster,
    ):
        secret = bytes.fromhex(cluster.secret)
        asyncio.run(_wait_ready(cluster.addrs, secret, 30))
        ours_c1 = asyncio.run(_drive(cluster.addrs, secret, 1, args.ops_c1))
        ours_c64 = asyncio.run(_drive(cluster.addrs, secret, 64, args.ops_c64))
    rows += [("blobstore c=1", ours_c1), ("blobstore c=64", ours_c64)]

    etcd_c1 = etcd_c64 = None
    if etcd_available():
        with EtcdCluster() as etcd:
            etcd_c1 = asyncio.run(run_http_puts(etcd.client_urls, 1, args.ops_c1))
            etcd_c64 = asyncio.run(run_http_puts(etcd.client_urls, 64, args.ops_c64))
        rows += [("etcd c=1", etcd_c1), ("etcd c=64", etcd_c64)]
    else:
        print("etcd not installed (apt-get install etcd-server): baseline skipped")

    snap_s, pause_ms = _snapshot_figures(args.snapshot_objects)

    print(f"{'system':<16} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, r in rows:
        print(f"{name:<16} {r.ops_s:>10.0f} {r.percentile(50):>8.2f} {r.percentile(99):>8.2f}")
    print(f"snapshot of {args.snapshot_objects:,} objects: {snap_s:.2f} s, "
          f"longest apply pause {pause_ms:.2f} ms")  # fmt: skip

    def ratio(a: LoadResult, b: LoadResult | None) -> float | None:
        return round(a.ops_s / b.ops_s, 3) if b and b.ops_s else None

    print(json.dumps({
        "bench": "raft",
        "ops_c1": round(ours_c1.ops_s, 1),
        "ops_c64": round(ours_c64.ops_s, 1),
        "p50_ms_c1": round(ours_c1.percentile(50), 3),
        "p99_ms_c64": round(ours_c64.percentile(99), 3),
        "etcd_ops_c1": round(etcd_c1.ops_s, 1) if etcd_c1 else None,
        "etcd_ops_c64": round(etcd_c64.ops_s, 1) if etcd_c64 else None,
        "ratio_c1": ratio(ours_c1, etcd_c1),
        "ratio_c64": ratio(ours_c64, etcd_c64),
        "snapshot_1m_s": round(snap_s, 3),
        "snapshot_max_pause_ms": round(pause_ms, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
