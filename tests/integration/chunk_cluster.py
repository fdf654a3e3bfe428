"""Helper: N chunkserver processes (``python -m blobstore chunkserver``) on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from blobstore.datapath import ServerHealth, StaticPlacement, Target
from blobstore.supervisor import env_dying_with_me
from blobstore.testing.ports import free_ports
from blobstore.types import Address
from chunkserver.store.disk import TEMP_SUFFIX

__all__ = ["ChunkCluster"]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class ChunkCluster:
    """Chunkserver processes sharing one secret; server ids are 1..N."""

    root: Path
    count: int = 6
    reserve_bytes: int = 0
    extra_args: tuple[str, ...] = ()
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[int, int] = field(default_factory=dict)
    health: ServerHealth = field(default_factory=ServerHealth)  # shared by test reads

    @property
    def secret_file(self) -> Path:
        return self.root / "cluster.secret"

    def data_dir(self, server_id: int) -> Path:
        return self.root / f"chunk-{server_id}"

    def targets(self) -> list[Target]:
        return [Target(i, Address("127.0.0.1", p)) for i, p in sorted(self.ports.items())]

    def placement(self, n: int) -> StaticPlacement:
        return StaticPlacement(self.targets(), n)

    def start(self, timeout_s: float = 30.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.secret_file.write_text(self.secret.hex() + "\n")
        self.secret_file.chmod(0o600)
        for i, port in enumerate(free_ports(self.count), start=1):
            self.ports[i] = port
            self._spawn(i)
        deadline = time.monotonic() + timeout_s
        for i, port in self.ports.items():
            while not _listening(port):
                proc = self.procs[i]
                if proc.poll() is not None:
                    log = (self.root / f"chunk-{i}.log").read_text()
                    raise RuntimeError(f"chunkserver {i} exited with {proc.returncode}:\n{log}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"chunkserver {i} did not listen within {timeout_s} s")
                time.sleep(0.02)

    def _spawn(self, i: int) -> None:
        argv = [
            sys.executable,
            "-m",
            "blobstore",
            "chunkserver",
            "--listen",
            f"127.0.0.1:{self.ports[i]}",
            "--meta",
            "127.0.0.1:1",  # no metadata service: registration retries in the background
            "--data",
            str(self.data_dir(i)),
            "--secret-file",
            str(self.secret_file),
            "--reserve-bytes",
            str(self.reserve_bytes),
            *self.extra_args,
        ]
        log = open(self.root / f"chunk-{i}.log", "ab")  # noqa: SIM115 - owned by the child
        # no metrics port (listen+1000) unless asked: with random ports it could take the
        # port another chunkserver is about to listen on, and pass for it in ``start``
        env = env_dying_with_me({"BLOBSTORE_HTTP_LISTEN": "off", **os.environ})
        self.procs[i] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    def restart(self, server_id: int) -> None:
        """Start a killed server again on its port and data directory."""
        self._spawn(server_id)

    def kill(self, server_id: int, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[server_id]
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def shard_files(self, server_id: int) -> list[Path]:
        """The server's shard files (not the temp files of writes in progress)."""
        top = self.data_dir(server_id) / "shards"
        return sorted(p for p in top.rglob("*") if p.is_file() and p.suffix != TEMP_SUFFIX)

    def stop(self) -> dict[int, int | None]:
        """SIGTERM everyone still running; their exit codes."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[int, int | None] = {}
        for i, proc in self.procs.items():
            try:
                codes[i] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                codes[i] = proc.wait()
        return codes
