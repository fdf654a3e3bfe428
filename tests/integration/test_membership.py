"""Membership change on real processes through the admin CLI: add a learner, promote it,
remove an old voter, move leadership; committed data survives and stays readable."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blobstore.client.catalog import RemoteCatalog
from blobstore.rpc import RpcClient
from blobstore.supervisor import env_dying_with_me
from metadata.api import HeadObjectQuery
from metadata.fsm.commands import CommitObject, CreateBucket
from metadata.fsm.results import ObjectInfo
from tests.integration.metacluster import MetaCluster, free_ports

pytestmark = pytest.mark.integration


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[MetaCluster]:
    c = MetaCluster(tmp_path)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def _start_joiner(
    cluster: MetaCluster, data: Path, port: int, peers: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "blobstore", "metadata", "--id", "4", "--join",
         "--listen", f"127.0.0.1:{port}", "--peers", peers, "--data", str(data),
         "--secret-file", str(cluster.secret_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_dying_with_me(),
    )  # fmt: skip


def _admin(cluster: MetaCluster, meta: str, *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "blobstore", "admin", "--meta", meta,
         "--secret-file", str(cluster.secret_file), "--json", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, object] = json.loads(proc.stdout)
    return doc


async def _eventually_admin(cluster: MetaCluster, meta: str, *args: str) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        try:
            return await asyncio.to_thread(_admin, cluster, meta, *args)
        except AssertionError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)  # poll interval of a deadline-bounded retry


async def test_add_promote_remove_transfer(cluster: MetaCluster, tmp_path: Path) -> None:
    cat, transport = cluster.client()
    try:
        await cat.execute(CreateBucket("members", "t"), timeout_s=20)
        for i in range(20):
            await cat.execute(
                CommitObject(bucket="members", key=f"k{i}", version_id="", owner="t",
                             size=1, etag=f"e{i}", inline_data=b"x"),
                timeout_s=10,
            )  # fmt: skip
    finally:
        await transport.close()

    port4 = free_ports(1)[0]
    peers = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(cluster.ports))
    peers += f",4=127.0.0.1:{port4}"
    node4 = _start_joiner(cluster, tmp_path / "meta-4", port4, peers)
    meta = ",".join(str(a) for a in cluster.addrs)
    try:
        doc = await _eventually_admin(
            cluster, meta, "members", "add", "4", f"127.0.0.1:{port4}", "--learner"
        )
        assert doc["learners"] == [4]
        doc = await _eventually_admin(cluster, meta, "members", "add", "4", f"127.0.0.1:{port4}")
        assert 4 in doc["voters"]  # type: ignore[operator]
        doc = await _eventually_admin(cluster, meta, "members", "remove", "1")
        assert doc["voters"] == [2, 3, 4]
        cluster.kill(1)  # removed: the cluster no longer needs it
        doc = await _eventually_admin(
            cluster, f"{meta},127.0.0.1:{port4}", "members", "transfer-leader", "4"
        )
        assert doc["leader_id"] == 4
        # the new member holds everything committed before it joined
        transport = RpcClient(cluster.secret, fail_fast=True)
        cat4 = RemoteCatalog([cluster.addrs[1], cluster.addrs[2]], transport)
        try:
            info = await cat4.query(HeadObjectQuery("members", "k19"), timeout_s=20)
            assert isinstance(info, ObjectInfo) and info.record.etag == "e19"
        finally:
            await transport.close()
    finally:
        node4.terminate()
        node4.wait(10)
