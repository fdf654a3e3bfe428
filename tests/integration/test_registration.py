"""Chunkservers register with the real metadata service, heartbeat, and keep their id."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blobstore.supervisor import env_dying_with_me
from blobstore.testing.poll import until_ok
from metadata.api import ClusterStatusResponse, ListChunkserversQuery, ReadMode
from metadata.fsm.records import ChunkserverRecord
from tests.integration.metacluster import MetaCluster, free_ports

pytestmark = pytest.mark.integration


@pytest.fixture
async def meta(tmp_path: Path) -> AsyncIterator[MetaCluster]:
    c = MetaCluster(tmp_path / "meta")
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def _chunkserver(meta: MetaCluster, data: Path, port: int) -> subprocess.Popen[bytes]:
    meta_addrs = ",".join(str(a) for a in meta.addrs)
    return subprocess.Popen(
        [sys.executable, "-m", "blobstore", "chunkserver", "--listen", f"127.0.0.1:{port}",
         "--meta", meta_addrs, "--data", str(data), "--secret-file", str(meta.secret_file),
         "--zone", "z1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_dying_with_me(),
    )  # fmt: skip


async def _servers(meta: MetaCluster, want: int) -> tuple[ChunkserverRecord, ...]:
    cat, transport = meta.client()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    try:
        while True:
            found = await cat.query(ListChunkserversQuery(), mode=ReadMode.LINEARIZABLE)
            assert isinstance(found, tuple)
            if len(found) >= want:
                return found
            assert loop.time() < deadline, f"only {len(found)} of {want} registered"
            await asyncio.sleep(0.1)  # poll interval of a deadline-bounded wait
    finally:
        await transport.close()


async def test_register_heartbeat_and_stable_id(meta: MetaCluster, tmp_path: Path) -> None:
    ports = free_ports(2)
    procs = [_chunkserver(meta, tmp_path / f"cs{i}", p) for i, p in enumerate(ports)]
    try:
        first = await _servers(meta, 2)
        assert {r.addr.port for r in first} == set(ports)
        assert all(r.zone == "z1" and r.capacity_bytes > 0 for r in first)
        ids = {r.addr.port: r.server_id for r in first}
        # restart one chunkserver: it comes back under the same id
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        procs[0] = _chunkserver(meta, tmp_path / "cs0", ports[0])
        again = await _servers(meta, 2)
        assert len(again) == 2
        assert {r.addr.port: r.server_id for r in again} == ids
        assert (tmp_path / "cs0" / "server.id").read_text().strip() == str(ids[ports[0]])
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


async def _first_heartbeats_committed(meta: MetaCluster) -> tuple[bool, str]:
    servers = await _servers(meta, 2)
    return all(r.last_heartbeat_ms > r.registered_ms for r in servers), str(servers)


async def _commit_index(meta: MetaCluster) -> int:
    cat, transport = meta.client()
    try:
        st = await cat.status()
        assert isinstance(st, ClusterStatusResponse)
        return st.commit_index
    finally:
        await transport.close()


async def test_idle_heartbeats_are_not_replicated(meta: MetaCluster, tmp_path: Path) -> None:
    """Chunkservers heartbeat every second; the leader notes them and replicates one only
    when the catalog must learn something (metadata.maintenance.liveness), so an idle
    cluster does not append, fsync and apply a Raft entry per heartbeat."""
    ports = free_ports(2)
    procs = [_chunkserver(meta, tmp_path / f"cs{i}", p) for i, p in enumerate(ports)]
    try:
        # the first heartbeats commit (their scrub counters are new to the catalog)
        await until_ok(
            lambda: _first_heartbeats_committed(meta), 30, "the first heartbeats to commit"
        )
        before = await _commit_index(meta)
        await asyncio.sleep(5)  # observation window: ten heartbeats
        after = await _commit_index(meta)
        # each used to be an entry; allow a few for free-space moves of the shared disk
        assert after - before <= 4, (before, after)
        # and both are still up: the detector counts the heartbeats it only noted
        assert {r.state for r in await _servers(meta, 2)} == {"up"}
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
