"""Real ``blobstore metadata`` processes on 127.0.0.1 for multi-process tests.

Each node gets a tmp data dir and a port; ``kill``/``restart``/``pause``/``resume`` act on
the real process (SIGKILL, SIGSTOP, SIGCONT). With ``proxied=True`` every node reaches
each peer through its own ``LinkProxy`` (link i->j), so a test can cut exactly one link.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from blobstore.client.catalog import RemoteCatalog
from blobstore.errors import BlobstoreError
from blobstore.rpc import RpcClient
from blobstore.supervisor import env_dying_with_me
from blobstore.testing.netproxy import LinkProxy
from blobstore.testing.ports import free_ports
from blobstore.types import Address
from metadata.api import ClusterStatusResponse

__all__ = ["MetaCluster", "free_ports"]


@dataclass
class MetaCluster:
    root: Path
    size: int = 3
    proxied: bool = False
    tick_ms: int = 50
    extra_env: dict[str, str] = field(default_factory=dict)  # for the metadata processes
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    ports: list[int] = field(default_factory=list)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    proxies: dict[tuple[int, int], LinkProxy] = field(default_factory=dict)

    @property
    def secret_file(self) -> Path:
        return self.root / "cluster.secret"

    @property
    def addrs(self) -> list[Address]:
        return [Address("127.0.0.1", p) for p in self.ports]

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.secret_file.write_text(self.secret.hex())
        self.ports = free_ports(self.size)
        if self.proxied:
            for i in range(1, self.size + 1):
                for j in range(1, self.size + 1):
                    if i != j:
                        proxy = LinkProxy(Address("127.0.0.1", self.ports[j - 1]))
                        await proxy.start()
                        self.proxies[(i, j)] = proxy
        for node_id in range(1, self.size + 1):
            self.spawn(node_id)

    def _peers_for(self, node_id: int) -> str:
        parts = []
        for j in range(1, self.size + 1):
            if j == node_id or not self.proxied:
                addr = f"127.0.0.1:{self.ports[j - 1]}"
            else:
                addr = str(self.proxies[(node_id, j)].address)
            parts.append(f"{j}={addr}")
        return ",".join(parts)

    def spawn(self, node_id: int) -> None:
        log = open(self.root / f"meta-{node_id}.log", "ab")  # noqa: SIM115 - child owns it
        self.procs[node_id] = subprocess.Popen(
            [
                sys.executable, "-m", "blobstore", "metadata", "--id", str(node_id),
                "--listen", f"127.0.0.1:{self.ports[node_id - 1]}",
                "--peers", self._peers_for(node_id),
                "--data", str(self.root / f"meta-{node_id}"),
                "--secret-file", str(self.secret_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # no metrics port (listen+1000) unless asked: with random ports it could take
            # the port another process of the test is about to listen on
            env=env_dying_with_me({
                "BLOBSTORE_HTTP_LISTEN": "off",
                **os.environ,
                "BLOBSTORE_TICK_MS": str(self.tick_ms),
                **self.extra_env,
            }),
        )  # fmt: skip
        log.close()

    def kill(self, node_id: int) -> None:
        proc = self.procs[node_id]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def restart(self, node_id: int) -> None:
        self.spawn(node_id)

    def pause(self, node_id: int) -> None:
        self.procs[node_id].send_signal(signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        self.procs[node_id].send_signal(signal.SIGCONT)

    def client(self, **kwargs: object) -> tuple[RemoteCatalog, RpcClient]:
        transport = RpcClient(self.secret, fail_fast=True)
        return RemoteCatalog(self.addrs, transport, **kwargs), transport  # type: ignore[arg-type]

    async def leader(self, timeout_s: float = 20.0) -> int:
        """The id of the node that a majority of live nodes call leader."""
        transport = RpcClient(self.secret, fail_fast=True)
        catalog = RemoteCatalog(self.addrs, transport)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            while loop.time() < deadline:
                votes: dict[int, int] = {}
                for node_id, addr in enumerate(self.addrs, start=1):
                    if self.procs[node_id].poll() is not None:
                        continue
                    try:
                        st = await catalog.status(addr, timeout_s=0.5)
                    except BlobstoreError:
                        continue
                    assert isinstance(st, ClusterStatusResponse)
                    if st.leader_id:
                        votes[st.leader_id] = votes.get(st.leader_id, 0) + 1
                for lead, count in votes.items():
                    if count > self.size // 2:
                        return lead
                await asyncio.sleep(0.05)  # poll interval of a deadline-bounded wait
        finally:
            await transport.close()
        raise AssertionError("no leader agreed on before the deadline")

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for proxy in self.proxies.values():
            await proxy.stop()
