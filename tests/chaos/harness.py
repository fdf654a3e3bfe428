"""A whole cluster as separate processes, each role under the test's control (chaos tests).

``ChaosCluster`` starts 3 ``blobstore metadata`` nodes whose Raft links run through
per-link ``LinkProxy`` (so one node can be partitioned), N ``blobstore chunkserver``
processes with fixed server ids 1..N (``<data>/server.id`` written up front; chunkserver 1
reaches the metadata service through its own proxies and advertises a proxy in front of
itself, which gateways, repair and GC dial, so it can be cut off entirely), and one
``blobstore gateway``. ``proxied=False`` leaves every proxy out (benchmarks: no Python
relay in the Raft or data path; partitions are then unavailable). Every process can be
killed (SIGKILL), paused (SIGSTOP/SIGCONT) and restarted on the same port and data
directory. Short GC and failure-detection settings go in through the environment
(``BLOBSTORE_GC_*``, ``BLOBSTORE_<FIELD>``).

Lives in the test's event loop (the proxies are asyncio servers); workload threads use
``s3()`` clients. Must not import the gateway or the services' internals (the shard store's
temp-file suffix excepted: ``shard_files`` lists what a chunkserver stores).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from blobstore.client.catalog import RemoteCatalog
from blobstore.errors import BlobstoreError
from blobstore.rpc import RpcClient
from blobstore.supervisor import env_dying_with_me
from blobstore.testing.netproxy import LinkProxy
from blobstore.testing.ports import free_ports
from blobstore.types import Address
from chunkserver.store.disk import TEMP_SUFFIX
from metadata.api import ListChunkserversQuery
from tests.integration.metacluster import MetaCluster

__all__ = ["ACCESS_KEY", "SECRET_KEY", "ChaosCluster"]

ACCESS_KEY = "CHAOSACCESSKEY000001"
SECRET_KEY = "chaos-secret-key-0123456789abcdef0123"
# more than one (default, 1 MiB) stripe: coded k + m wide, so a probe that succeeds shows
# the gateway can place a full-width chunk (one stripe or less is coded 1 + m: 3 servers)
PROBE = b"chaos-probe-" * 90_000


@dataclass
class ChaosCluster:
    root: Path
    chunkservers: int = 7
    gc_env: Mapping[str, str] = field(default_factory=dict)  # BLOBSTORE_GC_* for chunkservers
    meta_env: Mapping[str, str] = field(default_factory=dict)  # e.g. BLOBSTORE_DOWN_AFTER_S
    chunk_env: Mapping[str, str] = field(default_factory=dict)
    scrub_mb_s: float = 20.0
    proxied: bool = True  # False: no LinkProxy anywhere (and no partition faults)
    meta: MetaCluster = field(init=False)
    chunk_ports: dict[int, int] = field(default_factory=dict)
    chunk_procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    chunk_proxies: dict[int, LinkProxy] = field(default_factory=dict)  # server 1 -> meta j
    data_proxy: LinkProxy | None = None  # anyone -> server 1 (its advertised address)
    gateway_port: int = 0
    gateway_proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        env = {"BLOBSTORE_HTTP_LISTEN": "off", **self.meta_env}
        self.meta = MetaCluster(self.root / "meta", proxied=self.proxied, extra_env=env)

    # -- start / stop -------------------------------------------------------------------
    async def start(self, timeout_s: float = 120.0) -> None:
        """Start every process; if the cluster does not come up, stop what did start."""
        try:
            await self._start(timeout_s)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, timeout_s: float) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        await self.meta.start()
        ports = free_ports(self.chunkservers + 1)
        self.gateway_port = ports[0]
        for i in range(1, self.chunkservers + 1):
            self.chunk_ports[i] = ports[i]
            data = self.chunk_dir(i)
            data.mkdir(parents=True)
            (data / "server.id").write_text(f"{i}\n")
        if self.proxied:
            for j, addr in enumerate(self.meta.addrs, start=1):
                proxy = LinkProxy(addr)
                await proxy.start()
                self.chunk_proxies[j] = proxy
            self.data_proxy = LinkProxy(Address("127.0.0.1", self.chunk_ports[1]))
            await self.data_proxy.start()
        for i in self.chunk_ports:
            self.start_chunk(i)
        self.start_gateway()
        # every chunkserver, not just a write quorum of them: the workload's first chunks
        # then start at full redundancy, as a benchmark's figures assume
        await self.wait_all_up(timeout_s)
        await self.wait_writable(timeout_s)

    async def stop(self) -> None:
        procs = [*self.chunk_procs.values()]
        if self.gateway_proc is not None:
            procs.append(self.gateway_proc)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.gateway_proc.pid, signal.SIGTERM)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self.gateway_proc is not None:
            with contextlib.suppress(ProcessLookupError):  # stray workers, if any
                os.killpg(self.gateway_proc.pid, signal.SIGKILL)
        chunk_proxies = [*self.chunk_proxies.values()]
        if self.data_proxy is not None:
            chunk_proxies.append(self.data_proxy)
        proxy_ports = {p.address.port for p in chunk_proxies}
        proxy_ports |= {p.address.port for p in self.meta.proxies.values()}
        for proxy in chunk_proxies:
            await proxy.stop()
        await self.meta.stop()
        await _close_stray_transports(proxy_ports, set(self.meta.ports))

    @property
    def secret(self) -> bytes:
        return self.meta.secret

    def chunk_dir(self, i: int) -> Path:
        return self.root / f"chunk-{i}"

    def _env(self, extra: Mapping[str, str]) -> dict[str, str]:
        return env_dying_with_me({**os.environ, "BLOBSTORE_HTTP_LISTEN": "off", **extra})

    # -- chunkservers ---------------------------------------------------------------------
    def start_chunk(self, i: int) -> None:
        advertise: list[str] = []
        if i == 1 and self.proxied:
            meta = ",".join(str(p.address) for _, p in sorted(self.chunk_proxies.items()))
            assert self.data_proxy is not None
            advertise = ["--advertise", str(self.data_proxy.address)]
        else:
            meta = ",".join(str(a) for a in self.meta.addrs)
        log = open(self.root / f"chunk-{i}.log", "ab")  # noqa: SIM115 - child owns it
        self.chunk_procs[i] = subprocess.Popen(
            [
                sys.executable, "-m", "blobstore", "chunkserver",
                "--listen", f"127.0.0.1:{self.chunk_ports[i]}",
                "--meta", meta,
                "--data", str(self.chunk_dir(i)),
                "--secret-file", str(self.meta.secret_file),
                "--reserve-bytes", "0",
                "--scrub-mb-s", str(self.scrub_mb_s),
                *advertise,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._env({"BLOBSTORE_HEARTBEAT_S": "0.5", **self.gc_env, **self.chunk_env}),
        )  # fmt: skip
        log.close()

    def kill_chunk(self, i: int) -> None:
        proc = self.chunk_procs[i]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def chunk_alive(self, i: int) -> bool:
        return self.chunk_procs[i].poll() is None

    def _chunk1_proxies(self) -> list[LinkProxy]:
        assert self.data_proxy is not None
        return [*self.chunk_proxies.values(), self.data_proxy]

    def partition_chunk(self, i: int) -> None:
        """Cut chunkserver 1 off: its links to the metadata service and everyone's to it."""
        assert i == 1, "only chunkserver 1 is reached (and reaches out) through proxies"
        for proxy in self._chunk1_proxies():
            proxy.blackhole()

    def heal_chunk(self, i: int) -> None:
        for proxy in self._chunk1_proxies():
            proxy.heal()

    def shard_files(self, i: int) -> list[Path]:
        """Chunkserver ``i``'s shard files (not the temp files of writes in progress)."""
        top = self.chunk_dir(i) / "shards"
        if not top.is_dir():
            return []
        return sorted(p for p in top.rglob("*") if p.is_file() and p.suffix != TEMP_SUFFIX)

    # -- metadata ---------------------------------------------------------------------------
    async def kill_meta_leader(self) -> int:
        leader = await self.meta.leader(timeout_s=30)
        self.meta.kill(leader)
        return leader

    def restart_meta(self, node_id: int) -> None:
        if self.meta.procs[node_id].poll() is not None:
            self.meta.restart(node_id)

    def partition_meta(self, node_id: int) -> None:
        for (i, j), proxy in self.meta.proxies.items():
            if node_id in (i, j):
                proxy.blackhole()

    def heal_meta(self, node_id: int) -> None:
        for (i, j), proxy in self.meta.proxies.items():
            if node_id in (i, j):
                proxy.heal()

    async def wait_all_up(self, timeout_s: float) -> None:
        """Until the catalog lists every started chunkserver as up."""
        catalog, transport = self.catalog()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                up: set[int] = set()
                with contextlib.suppress(BlobstoreError):
                    servers = await catalog.query(ListChunkserversQuery())
                    assert isinstance(servers, tuple)
                    up = {s.server_id for s in servers if s.state == "up"}
                if up >= set(self.chunk_procs):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"chunkservers up after {timeout_s} s: {sorted(up)}\n{self.logs()}"
                    )
                await asyncio.sleep(0.2)  # poll interval of a deadline-bounded wait
        finally:
            await transport.close()

    def catalog(self) -> tuple[RemoteCatalog, RpcClient]:
        transport = RpcClient(self.secret, fail_fast=True)
        return RemoteCatalog(self.meta.addrs, transport), transport

    # -- gateway ----------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start_gateway(self) -> None:
        log = open(self.root / "gateway.log", "ab")  # noqa: SIM115 - child owns it
        self.gateway_proc = subprocess.Popen(
            [
                sys.executable, "-m", "blobstore", "gateway",
                "--listen", f"127.0.0.1:{self.gateway_port}",
                "--meta", ",".join(str(a) for a in self.meta.addrs),
                "--data", str(self.root / "gateway"),
                "--secret-file", str(self.meta.secret_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._env(
                {"BLOBSTORE_ROOT_ACCESS_KEY": ACCESS_KEY, "BLOBSTORE_ROOT_SECRET_KEY": SECRET_KEY}
            ),
            start_new_session=True,  # with uvloop its workers are child processes
        )  # fmt: skip
        log.close()

    def kill_gateway(self) -> None:
        """SIGKILL the gateway and its worker processes (its own process group)."""
        if self.gateway_proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.gateway_proc.pid, signal.SIGKILL)
            self.gateway_proc.wait(10)

    def s3(self, *, read_timeout_s: float = 20.0) -> BaseClient:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=read_timeout_s,
            ),
        )

    def _writable_once(self) -> bool:
        client = self.s3(read_timeout_s=10)
        try:
            with contextlib.suppress(ClientError):
                client.create_bucket(Bucket="chaos-probe")
            client.put_object(Bucket="chaos-probe", Key="probe", Body=PROBE)
            got = client.get_object(Bucket="chaos-probe", Key="probe")["Body"].read()
            client.delete_object(Bucket="chaos-probe", Key="probe")
            return bool(got == PROBE)
        except (BotoCoreError, ClientError):
            return False
        finally:
            client.close()

    async def wait_writable(self, timeout_s: float) -> None:
        """Until a full-width erasure-coded PUT + GET + DELETE succeeds through the gateway."""
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(self._writable_once):
            for name, proc in self._all_procs():
                if proc.poll() is not None and proc.returncode not in (-signal.SIGKILL,):
                    raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.logs()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not writable after {timeout_s} s\n{self.logs()}")
            await asyncio.sleep(0.3)  # poll interval of a deadline-bounded wait

    def _all_procs(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        out = [(f"chunk-{i}", p) for i, p in self.chunk_procs.items()]
        out += [(f"meta-{i}", p) for i, p in self.meta.procs.items()]
        if self.gateway_proc is not None:
            out.append(("gateway", self.gateway_proc))
        return out

    def logs(self, lines: int = 15) -> str:
        parts = []
        for path in sorted([*self.root.glob("*.log"), *(self.root / "meta").glob("*.log")]):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def addresses(self) -> dict[int, Address]:
        return {i: Address("127.0.0.1", p) for i, p in self.chunk_ports.items()}


async def _close_stray_transports(local_ports: set[int], remote_ports: set[int]) -> None:
    """Close proxy connections that a ``LinkProxy.stop`` racing an accept left open.

    An accept still dialling upstream when its proxy stops keeps both sockets alive until
    the loop closes, and their ResourceWarnings would fail a later test. Test-only sweep:
    every open transport on a proxy's port (accepted) or to a metadata port (upstream).
    """
    for _ in range(3):
        await asyncio.sleep(0)  # let in-flight accept callbacks run to their next await
    for obj in gc.get_objects():
        if not isinstance(obj, asyncio.Transport) or obj.is_closing():
            continue
        local = obj.get_extra_info("sockname")
        remote = obj.get_extra_info("peername")
        if (isinstance(local, tuple) and local[1] in local_ports) or (
            isinstance(remote, tuple) and remote[1] in remote_ports
        ):
            obj.close()
    await asyncio.sleep(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
