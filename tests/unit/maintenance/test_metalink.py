"""Chunkserver -> catalog bad-shard reports: queued, batched, retried, never blocking."""

from __future__ import annotations

import uuid

from blobstore.errors import Unavailable
from blobstore.testing.poll import eventually
from chunkserver.metalink import CatalogLink
from chunkserver.service import BadShardReport
from metadata.api import Query, ReadMode
from metadata.fsm.commands import Command, ReportBadShards
from metadata.fsm.records import ShardRef


class FlakyCatalog:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.commands: list[Command] = []

    async def execute(self, command: Command, *, timeout_s: float = 10.0) -> object:
        if self.failures:
            self.failures -= 1
            raise Unavailable("no leader")
        self.commands.append(command)
        return None

    async def query(
        self, q: Query, *, mode: ReadMode = ReadMode.LINEARIZABLE, timeout_s: float = 10.0
    ) -> object:
        raise NotImplementedError


async def test_reports_are_batched_and_retried() -> None:
    cat = FlakyCatalog(failures=2)
    link = CatalogLink(cat, server_id=42, retry_s=0.01)
    a, b = uuid.uuid4(), uuid.uuid4()
    await link.report_bad_shards([BadShardReport(a, 1, "piece_checksum")])
    await link.report_bad_shards([BadShardReport(b, 0, "missing")])
    await eventually(lambda: link.reports_sent == 2, timeout_s=5)
    shards = [s for c in cat.commands if isinstance(c, ReportBadShards) for s in c.shards]
    assert sorted(shards, key=lambda s: s.chunk_id) == sorted(
        [ShardRef(str(a), 42, 1), ShardRef(str(b), 42, 0)], key=lambda s: s.chunk_id
    )


async def test_gives_up_after_bounded_attempts() -> None:
    cat = FlakyCatalog(failures=100)
    link = CatalogLink(cat, server_id=1, retry_s=0.001, report_attempts=3)
    await link.report_bad_shards([BadShardReport(uuid.uuid4(), 1, "x")])
    await eventually(lambda: cat.failures == 97, timeout_s=5)
    assert link.reports_sent == 0
