"""The chunkserver's link to the metadata service, over the catalog client.

Registration proposes ``RegisterChunkserver`` with this server's persistent id (kept in
``<data>/server.id``, created on first start), address, zone and capacity, retrying until
the metadata service answers; heartbeats send ``ChunkserverHeartbeat`` (with the scrub
counters) to the leader, which notes it and replicates it when the catalog must learn
something (``metadata.maintenance.liveness``).
Bad-shard reports (from reads and the scrubber) propose ``ReportBadShards``: they are
queued and sent by a background task with retries, so a read that found a bad shard
never waits for a Raft commit.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from pathlib import Path

from blobstore.client.catalog import CatalogClient
from blobstore.durable import write_atomic
from blobstore.errors import BlobstoreError
from blobstore.log import get_logger
from chunkserver.service import BadShardReport, ChunkserverNode, ChunkserverStats
from chunkserver.store.base import SpaceInfo
from metadata.fsm.commands import ChunkserverHeartbeat, RegisterChunkserver, ReportBadShards
from metadata.fsm.records import ScrubProgressRecord, ShardRef

__all__ = ["CatalogLink", "load_or_create_server_id"]

log = get_logger(__name__)


def load_or_create_server_id(data: Path) -> int:
    """This chunkserver's id: read from ``<data>/server.id`` or created there (atomically)."""
    path = data / "server.id"
    try:
        return int(path.read_text().strip())
    except FileNotFoundError:
        pass
    server_id = secrets.randbelow(2**48) + 1
    data.mkdir(parents=True, exist_ok=True)
    write_atomic(path, f"{server_id}\n".encode())
    return server_id


class CatalogLink:
    """``MetadataLink`` backed by the replicated catalog."""

    def __init__(
        self,
        catalog: CatalogClient,
        server_id: int,
        *,
        retry_s: float = 1.0,
        report_attempts: int = 5,
        max_queued_reports: int = 10_000,
    ) -> None:
        self._catalog = catalog
        self.server_id = server_id
        self._retry_s = retry_s
        self._report_attempts = report_attempts
        self._reports: asyncio.Queue[BadShardReport] = asyncio.Queue(max_queued_reports)
        self._reporter: asyncio.Task[None] | None = None
        self.reports_sent = 0

    async def register(self, node: ChunkserverNode, space: SpaceInfo) -> int:
        cmd = RegisterChunkserver(
            server_id=self.server_id,
            addr=node.addr,
            zone=node.zone,
            capacity_bytes=space.capacity_bytes,
            free_bytes=space.free_bytes,
        )
        while True:
            try:
                await self._catalog.execute(cmd, timeout_s=10)
                log.info("registered with the metadata service", server_id=self.server_id)
                return self.server_id
            except BlobstoreError as e:
                if not e.retryable:
                    raise
                log.warning("metadata service unavailable; retrying registration", error=str(e))
                await asyncio.sleep(self._retry_s)  # retry period while the cluster starts

    async def heartbeat(self, stats: ChunkserverStats) -> None:
        await self._catalog.heartbeat(
            ChunkserverHeartbeat(
                server_id=self.server_id,
                capacity_bytes=stats.space.capacity_bytes,
                free_bytes=stats.space.free_bytes,
                scrub=_scrub_record(self.server_id, stats),
            ),
            timeout_s=5,
        )

    async def report_bad_shards(self, shards: Sequence[BadShardReport]) -> None:
        """Queue reports for the catalog (returns at once; a full queue drops them: a
        later read or scrub pass reports the shard again, see ``REPORT_AGAIN_S``)."""
        for report in shards:
            log.warning(
                "bad shard", chunk=str(report.chunk_id), shard=report.shard_index,
                reason=str(report.reason),
            )  # fmt: skip
            try:
                self._reports.put_nowait(report)
            except asyncio.QueueFull:
                log.warning("bad shard report queue full; dropped", chunk=str(report.chunk_id))
        if self._reporter is None or self._reporter.done():
            self._reporter = asyncio.create_task(self._send_reports())

    async def _send_reports(self) -> None:
        while not self._reports.empty():
            batch: list[BadShardReport] = []
            while not self._reports.empty() and len(batch) < 256:
                batch.append(self._reports.get_nowait())
            refs = tuple(ShardRef(str(r.chunk_id), self.server_id, r.shard_index) for r in batch)
            reason = ",".join(sorted({r.reason for r in batch}))
            for attempt in range(self._report_attempts):
                try:
                    await self._catalog.execute(ReportBadShards(refs, reason), timeout_s=10)
                    self.reports_sent += len(refs)
                    break
                except BlobstoreError as e:
                    if not e.retryable or attempt + 1 == self._report_attempts:
                        log.warning("bad shard report failed", error=str(e), shards=len(refs))
                        break
                    await asyncio.sleep(self._retry_s)  # retry period while leaderless


def _scrub_record(server_id: int, stats: ChunkserverStats) -> ScrubProgressRecord | None:
    p = stats.scrub
    if p is None:
        return None
    return ScrubProgressRecord(
        server_id,
        p.pass_number,
        p.passes_completed,
        p.shards_scrubbed,
        p.bytes_scrubbed,
        p.corrupt_found,
    )
