"""Garbage collection in a real chunkserver process against a real metadata node.

One ``blobstore metadata`` node and one ``blobstore chunkserver`` (server id 1, a 4 s grace
period through ``BLOBSTORE_GC_*``). Shards are written over RPC like a gateway would; the
catalog is changed with the catalog client. The chunkserver must remove the orphan and the
shards of the deleted object (acking the delete queue), keep the committed object's shard
and the young orphan, and report its counters over ``GetGcStatsRequest``. The orphan is
a writer that stalled past the grace period: GC fenced its chunk id through Raft before
deleting, so that writer's late commit fails with ``ChunkFenced`` and nothing is visible.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blobstore.errors import ChunkFenced, NoSuchKey
from blobstore.rpc import RpcClient
from blobstore.supervisor import env_dying_with_me
from blobstore.testing.ports import free_port
from blobstore.types import Address
from chunkserver.gc import GcStats, GetGcStatsRequest, GetGcStatsResponse
from chunkserver.messages import StatShardRequest, StatShardResponse, WriteShardRequest
from chunkserver.shardfile import ShardHeader, piece_length
from metadata.api import DeleteQueueQuery, HeadObjectQuery
from metadata.fsm.commands import CommitObject, CreateBucket, DeleteObject
from metadata.fsm.records import Chunk, ShardPlacement
from metadata.fsm.results import DeleteQueuePage
from tests.integration.metacluster import MetaCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ETAG = "d41d8cd98f00b204e9800998ecf8427e"
SID = 1


async def _pieces(header: ShardHeader) -> AsyncIterator[bytes]:
    for s in range(header.stripe_count):
        yield bytes(piece_length(header, s))


def _spawn_chunkserver(root: Path, addr: Address, meta: MetaCluster) -> subprocess.Popen[bytes]:
    env = env_dying_with_me(
        {
            **os.environ,
            "BLOBSTORE_HTTP_LISTEN": "off",
            "BLOBSTORE_GC_GRACE_S": "4",
            "BLOBSTORE_GC_ORPHAN_INTERVAL_S": "0.3",
            "BLOBSTORE_GC_QUEUE_INTERVAL_S": "0.2",
        }
    )
    with open(root / "chunk.log", "ab") as log:
        return subprocess.Popen(
            [
                sys.executable, "-m", "blobstore", "chunkserver", "--listen", str(addr),
                "--meta", ",".join(str(a) for a in meta.addrs), "--data", str(root / "chunk"),
                "--secret-file", str(meta.secret_file), "--reserve-bytes", "0",
                "--scrub-mb-s", "0",
            ],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


async def test_chunkserver_process_collects_garbage(tmp_path: Path) -> None:
    meta = MetaCluster(tmp_path / "meta", size=1)
    await meta.start()
    data = tmp_path / "chunk"
    data.mkdir()
    (data / "server.id").write_text(f"{SID}\n")
    port = free_port()
    addr = Address("127.0.0.1", port)
    proc = _spawn_chunkserver(tmp_path, addr, meta)
    catalog, meta_transport = meta.client()
    rpc = RpcClient(meta.secret)
    try:
        await catalog.execute(CreateBucket("gcbucket", "root"), timeout_s=30)

        async def write(cid: uuid.UUID, index: int = 0) -> None:
            header = ShardHeader(cid, index, 2, 1, "zfec", 64, 100)
            req = WriteShardRequest.from_header(header)
            await rpc.call(addr, req, timeout_s=5, body=_pieces(header))

        async def exists(cid: uuid.UUID, index: int = 0) -> bool:
            got = await rpc.call(addr, StatShardRequest(cid.bytes, index), timeout_s=5)
            assert isinstance(got, StatShardResponse)
            return got.shard is not None

        async def wait_listening() -> None:
            for _ in range(600):
                try:
                    await exists(uuid.uuid4())
                    return
                except Exception:
                    await asyncio.sleep(0.05)  # poll interval of a bounded wait
            raise AssertionError((tmp_path / "chunk.log").read_text())

        await wait_listening()
        kept, deleted, orphan = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        for cid in (kept, deleted, orphan):
            await write(cid)
        for key, cid in (("kept", kept), ("deleted", deleted)):
            chunk = Chunk(str(cid), "zfec", 2, 1, 64, 100, (ShardPlacement(SID, 0),))
            await catalog.execute(
                CommitObject("gcbucket", key, "v", "root", 100, ETAG, chunks=(chunk,))
            )
        await catalog.execute(DeleteObject("gcbucket", "deleted"))

        async def stats() -> GcStats:
            got = await rpc.call(addr, GetGcStatsRequest(), timeout_s=5)
            assert isinstance(got, GetGcStatsResponse)
            return got.stats

        async def settled() -> bool:
            page = await catalog.query(DeleteQueueQuery(server_id=SID))
            assert isinstance(page, DeleteQueuePage)
            return not page.entries and not await exists(deleted) and not await exists(orphan)

        done = False

        async def poll() -> None:
            nonlocal done
            while not done:
                done = await settled()
                if not done:
                    await asyncio.sleep(0.2)  # poll interval, bounded by the timeout below

        await asyncio.wait_for(poll(), timeout=60)
        # the orphan's writer finally commits: refused, its shard is already gone
        late = Chunk(str(orphan), "zfec", 2, 1, 64, 100, (ShardPlacement(SID, 0),))
        with pytest.raises(ChunkFenced):
            await catalog.execute(
                CommitObject("gcbucket", "late", "v", "root", 100, ETAG, chunks=(late,))
            )
        with pytest.raises(NoSuchKey):
            await catalog.query(HeadObjectQuery("gcbucket", "late"))
        young = uuid.uuid4()
        await write(young)
        assert await exists(kept)
        assert await exists(young)  # inside the grace period
        s = await stats()
        assert s.server_id == SID
        assert (s.queue_drained, s.orphans_removed) == (1, 1)
        assert s.orphan_bytes_reclaimed > 0 and s.queue_bytes_reclaimed > 0
        assert s.orphan_rounds >= 1 and s.breaker_trips == 0
        assert s.chunks_fenced >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(10)
        await rpc.close()
        await meta_transport.close()
        await meta.stop()
    assert code == 0, (tmp_path / "chunk.log").read_text()
