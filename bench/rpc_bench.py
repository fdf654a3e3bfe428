"""RPC benchmark on loopback: blobstore.rpc against a raw asyncio socket baseline, in one run.

The server side runs in a separate process (this script with ``--serve``), so its peak RSS
during the bulk transfer can be read from /proc (VmHWM, reset through /proc/self/clear_refs
when the kernel allows it; otherwise the pre-bulk VmHWM is the baseline).

Measures, per event loop (stdlib asyncio, and uvloop when importable):
  * small-message round trips per second, 1 and 64 calls in flight on ONE connection;
  * bulk upload throughput of a 64 MiB body (streamed in 1 MiB memoryview slices of one
    buffer, so the sender never holds the whole shard) vs. a raw asyncio socket;
  * the receiving process's peak RSS above idle during the bulk run.

Prints a table, then ONE JSON line (figures from the stdlib asyncio loop, the default):
  {"bench": "rpc", "rtt_per_s_1": N, "rtt_per_s_64": N, "bulk_mb_s": N,
   "raw_bulk_mb_s": N, "bulk_ratio": R, "peak_rss_mib": N}
MB = 10**6 bytes; peak_rss_mib = MiB above the server's idle RSS.

Usage: python bench/rpc_bench.py [--loop asyncio|uvloop|both] [--seconds 2] [--bulk-mib 64]
(uvloop is optional; e.g. PYTHONPATH=/path/to/uvloop-site to include it.)

Recorded 2026-11-26, 2 cpus shared with other test runs (load average 3.2; figures move
by 2-5x with the host's load, hence best-of-5):
    metric                                  asyncio     uvloop
    rpc round trips/s, 1 in flight           10,849     14,596
    rpc round trips/s, 64 in flight          25,769     27,253
    raw socket echo/s, 1 in flight           33,102     35,384
    raw socket echo/s, 64 in flight         940,947    903,457
    rpc bulk 64 MiB upload, MB/s              4,414      1,877
    raw socket 64 MiB, MB/s                   5,752      2,048
    server peak RSS above idle, MiB             1.9        8.9
    bulk ratio vs raw                          0.77       0.92
  {"bench": "rpc", "rtt_per_s_1": 10849, "rtt_per_s_64": 25769, "bulk_mb_s": 4414.4,
   "raw_bulk_mb_s": 5751.6, "bulk_ratio": 0.768, "peak_rss_mib": 1.9}
  Over six runs that day (load 3-7): stdlib rtt/s at 64 in flight 20.6k-40.6k (>= 25k
  whenever the load average was below ~4), at 1 in flight 4.2k-10.8k; bulk ratio 0.77-1.2
  once frames were 1 MiB (0.37-0.63 with 256 KiB frames and a 4 MiB window); peak RSS
  above idle 0.5-1.9 MiB. uvloop: rtt/s 64 in flight 19.5k-27.8k, 1 in flight 6k-14.6k,
  bulk ratio 0.53-0.97, peak RSS above idle ~9 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blobstore.rpc import CallContext, RpcClient, RpcServer, register
from blobstore.types import Address

__all__ = ["main"]

SECRET = b"bench-secret"
MiB = 1 << 20
SMALL = 64  # bytes of payload in a small message


@dataclass(frozen=True, slots=True)
class BenchEcho:
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class BenchUpload:
    size_bytes: int


@dataclass(frozen=True, slots=True)
class BenchUploaded:
    received_bytes: int


@dataclass(frozen=True, slots=True)
class BenchStats:
    reset_peak: bool = False


@dataclass(frozen=True, slots=True)
class BenchStatsReply:
    rss_kib: int
    hwm_kib: int
    peak_reset: bool


register(90, BenchEcho)
register(91, BenchUpload)
register(92, BenchUploaded)
register(93, BenchStats)
register(94, BenchStatsReply)


# -- server process ------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _RawServer(asyncio.Protocol):
    """Raw baseline: echo 4-byte-length-prefixed messages; or count a bulk body and ack."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = cast(asyncio.Transport, transport)
        self.buf = bytearray()
        self.bulk_left = -1

    def data_received(self, data: bytes) -> None:
        if self.bulk_left > 0:
            self.bulk_left -= len(data)
            if self.bulk_left <= 0:
                self.t.write(b"k")
                self.bulk_left = -1
            return
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            n = int.from_bytes(self.buf[:4], "big")
            if n == 0xFFFFFFFF and len(self.buf) >= 12:  # bulk: 8-byte size follows
                self.bulk_left = int.from_bytes(self.buf[4:12], "big") - (len(self.buf) - 12)
                self.buf.clear()
                if self.bulk_left <= 0:
                    self.t.write(b"k")
                    self.bulk_left = -1
                break
            if len(self.buf) < 4 + n:
                break
            out.append(bytes(self.buf[: 4 + n]))
            del self.buf[: 4 + n]
        if out:
            self.t.write(b"".join(out))


async def _serve() -> None:
    server = RpcServer(SECRET)

    async def echo(req: BenchEcho, ctx: CallContext) -> BenchEcho:
        return req

    async def upload(req: BenchUpload, ctx: CallContext) -> BenchUploaded:
        n = 0
        async for chunk in ctx.body:
            n += len(chunk)
        return BenchUploaded(n)

    async def stats(req: BenchStats, ctx: CallContext) -> BenchStatsReply:
        reset = _reset_peak() if req.reset_peak else False
        return BenchStatsReply(_status_kib("VmRSS"), _status_kib("VmHWM"), reset)

    server.handle(BenchEcho, echo)
    server.handle(BenchUpload, upload)
    server.handle(BenchStats, stats)
    addr = await server.start(Address("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    raw = await loop.create_server(_RawServer, "127.0.0.1", 0)
    raw_port = raw.sockets[0].getsockname()[1]
    print(json.dumps({"rpc_port": addr.port, "raw_port": raw_port}), flush=True)
    done = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), done.set)  # parent closes stdin to stop us
    await done.wait()
    raw.close()
    await server.stop()


# -- client side -------------------------------------------------------------------------


def _runner(loop_kind: str) -> Callable[[Any], Any]:
    if loop_kind == "uvloop":
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        def run_uv(coro: Any) -> Any:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
                return r.run(coro)

        return run_uv
    return asyncio.run


async def _rpc_rtt(client: RpcClient, addr: Address, inflight: int, seconds: float) -> float:
    payload = b"x" * SMALL
    count = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            for _ in range(16):
                await client.call(addr, BenchEcho(count, payload), timeout_s=10)
                count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return count / (time.perf_counter() - t0)


async def _raw_rtt(port: int, inflight: int, seconds: float) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    msg = SMALL.to_bytes(4, "big") + b"x" * SMALL
    batch = msg * inflight
    count = 0
    t0 = time.perf_counter()
    stop = t0 + seconds
    while time.perf_counter() < stop:
        writer.write(batch)
        await reader.readexactly(len(batch))
        count += inflight
    elapsed = time.perf_counter() - t0
    writer.close()
    await writer.wait_closed()
    return count / elapsed


async def _body(total: int, buf: memoryview) -> AsyncIterator[memoryview]:
    sent = 0
    while sent < total:
        n = min(len(buf), total - sent)
        yield buf[:n]
        sent += n


async def _rpc_bulk(client: RpcClient, addr: Address, total: int, buf: memoryview) -> float:
    t0 = time.perf_counter()
    reply = await client.call(addr, BenchUpload(total), timeout_s=120, body=_body(total, buf))
    elapsed = time.perf_counter() - t0
    assert isinstance(reply, BenchUploaded) and reply.received_bytes == total, reply
    return total / elapsed / 1e6


async def _raw_bulk(port: int, total: int, buf: memoryview) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.perf_counter()
    writer.write(b"\xff\xff\xff\xff" + total.to_bytes(8, "big"))
    async for chunk in _body(total, buf):
        writer.write(chunk)
        await writer.drain()
    assert await reader.readexactly(1) == b"k"
    elapsed = time.perf_counter() - t0
    writer.close()
    await writer.wait_closed()
    return total / elapsed / 1e6


async def _client(
    ports: dict[str, int], seconds: float, bulk_mib: int, repeats: int
) -> dict[str, float]:
    addr = Address("127.0.0.1", ports["rpc_port"])
    client = RpcClient(SECRET)
    buf = memoryview(os.urandom(MiB))
    total = bulk_mib * MiB
    out: dict[str, float] = {}
    idle = await client.call(addr, BenchStats(reset_peak=True), timeout_s=10)
    assert isinstance(idle, BenchStatsReply)
    base_kib = idle.rss_kib if idle.peak_reset else max(idle.rss_kib, idle.hwm_kib)
    rpc_bulk = [await _rpc_bulk(client, addr, total, buf)]  # the run whose peak RSS we read
    after = await client.call(addr, BenchStats(), timeout_s=10)
    assert isinstance(after, BenchStatsReply)
    out["peak_rss_mib"] = max(0, after.hwm_kib - base_kib) / 1024
    out["server_idle_rss_mib"] = base_kib / 1024
    out["server_peak_rss_mib"] = after.hwm_kib / 1024
    # rpc and raw runs alternate, so a burst of load on the host hits both alike
    raw_bulk = []
    for i in range(repeats):
        raw_bulk.append(await _raw_bulk(ports["raw_port"], total, buf))
        if i < repeats - 1:
            rpc_bulk.append(await _rpc_bulk(client, addr, total, buf))
    out["bulk_mb_s"], out["raw_bulk_mb_s"] = max(rpc_bulk), max(raw_bulk)
    # best of `repeats` short windows: the figure least disturbed by other load on the host
    for n in (1, 64):
        rpc, raw = [], []
        for _ in range(repeats):
            rpc.append(await _rpc_rtt(client, addr, n, seconds / repeats))
            raw.append(await _raw_rtt(ports["raw_port"], n, seconds / repeats))
        out[f"rtt_per_s_{n}"], out[f"raw_rtt_per_s_{n}"] = max(rpc), max(raw)
    await client.close()
    return out


def _run_one(loop_kind: str, seconds: float, bulk_mib: int, repeats: int) -> dict[str, float]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--loop", loop_kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline())
        return dict(_runner(loop_kind)(_client(ports, seconds, bulk_mib, repeats)))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="both")
    p.add_argument("--seconds", type=float, default=3.0, help="per small-message phase")
    p.add_argument("--repeats", type=int, default=5, help="best of N runs per figure")
    p.add_argument("--bulk-mib", type=int, default=64)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        _runner(args.loop)(_serve())
        return 0
    kinds = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    if "uvloop" in kinds:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("uvloop not importable: measuring the stdlib loop only", file=sys.stderr)
            kinds = [k for k in kinds if k != "uvloop"] or ["asyncio"]
    load_before = os.getloadavg()[0]
    results = {kind: _run_one(kind, args.seconds, args.bulk_mib, args.repeats) for kind in kinds}
    rows = [
        ("rpc round trips/s, 1 in flight", "rtt_per_s_1", "{:,.0f}"),
        ("rpc round trips/s, 64 in flight", "rtt_per_s_64", "{:,.0f}"),
        ("raw socket echo/s, 1 in flight", "raw_rtt_per_s_1", "{:,.0f}"),
        ("raw socket echo/s, 64 in flight", "raw_rtt_per_s_64", "{:,.0f}"),
        (f"rpc bulk {args.bulk_mib} MiB upload, MB/s", "bulk_mb_s", "{:,.0f}"),
        (f"raw socket {args.bulk_mib} MiB, MB/s", "raw_bulk_mb_s", "{:,.0f}"),
        ("server idle RSS, MiB", "server_idle_rss_mib", "{:.1f}"),
        ("server peak RSS in bulk, MiB", "server_peak_rss_mib", "{:.1f}"),
        ("server peak RSS above idle, MiB", "peak_rss_mib", "{:.1f}"),
    ]
    print(f"{'metric':40}" + "".join(f"{k:>14}" for k in kinds))
    for label, key, fmt in rows:
        print(f"{label:40}" + "".join(f"{fmt.format(results[k][key]):>14}" for k in kinds))
    for k in kinds:
        r = results[k]
        print(f"{'bulk ratio vs raw (' + k + ')':40}{r['bulk_mb_s'] / r['raw_bulk_mb_s']:>14.2f}")
    print(
        f"(best of {args.repeats}; host load average {load_before:.1f} -> "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus)"
    )
    r = results["asyncio"] if "asyncio" in results else results[kinds[0]]
    line = {
        "bench": "rpc",
        "rtt_per_s_1": round(r["rtt_per_s_1"]),
        "rtt_per_s_64": round(r["rtt_per_s_64"]),
        "bulk_mb_s": round(r["bulk_mb_s"], 1),
        "raw_bulk_mb_s": round(r["raw_bulk_mb_s"], 1),
        "bulk_ratio": round(r["bulk_mb_s"] / r["raw_bulk_mb_s"], 3),
        "peak_rss_mib": round(r["peak_rss_mib"], 1),
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
