"""Gateway request metrics, the access line with the request id, and the readiness probe."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest

from blobstore.client.catalog import LocalCatalog
from blobstore.errors import Unavailable
from blobstore.obs.gateway import (
    OPERATION_KEY,
    GatewayMetrics,
    GatewayProbe,
    ObservedGateway,
)
from blobstore.obs.runtime import Observability
from blobstore.types import Address
from metadata.fsm.commands import RegisterChunkserver, SetChunkserverState

Message = MutableMapping[str, Any]


def _app(
    status: int, body: bytes, operation: str | None, request_id: str = "RID0123456789ABC"
) -> Callable[[Any, Any, Any], Awaitable[None]]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if not msg.get("more_body"):
                break
        if operation:
            scope[OPERATION_KEY] = operation
        headers = [(b"x-amz-request-id", request_id.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def _call(app: ObservedGateway, body_parts: list[bytes], path: str = "/b/k") -> list[Message]:
    incoming = [
        {"type": "http.request", "body": p, "more_body": i < len(body_parts) - 1}
        for i, p in enumerate(body_parts)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(msg: Message) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": "PUT", "path": path, "headers": []}
    await app(scope, receive, send)
    return sent


async def test_requests_are_counted_by_operation_status_and_bytes() -> None:
    hub = Observability("gateway", base=None)
    metrics = GatewayMetrics(hub)
    ok = ObservedGateway(_app(200, b"", "PutObject"), metrics)
    sent = await _call(ok, [b"abc", b"defgh"])
    assert sent[0]["status"] == 200  # passed through unchanged
    await _call(ObservedGateway(_app(404, b"<Error/>", "GetObject"), metrics), [b""])
    await _call(ObservedGateway(_app(403, b"<Error/>", None), metrics), [b""])
    await _call(ObservedGateway(_app(200, b"page", None), metrics), [b""], path="/_console/")
    text = (await hub.metrics_text()).decode()
    for line in (
        'blobstore_s3_requests_total{operation="PutObject",status="200"} 1.0',
        'blobstore_s3_requests_total{operation="GetObject",status="404"} 1.0',
        'blobstore_s3_requests_total{operation="Unknown",status="403"} 1.0',
        'blobstore_s3_requests_total{operation="Console",status="200"} 1.0',
        'blobstore_s3_received_bytes_total{operation="PutObject"} 8.0',
        'blobstore_s3_sent_bytes_total{operation="GetObject"} 8.0',
        'blobstore_s3_request_seconds_count{operation="PutObject"} 1.0',
        "blobstore_s3_requests_inflight 0.0",
    ):
        assert line in text, line


async def test_a_failed_request_logs_its_request_id_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = GatewayMetrics(Observability("gateway", base=None))
    caplog.set_level(logging.INFO, logger="gateway.access")
    await _call(ObservedGateway(_app(200, b"", "PutObject", "OKREQUEST0000001"), metrics), [b""])
    await _call(ObservedGateway(_app(404, b"", "GetObject", "FAILEDREQUEST001"), metrics), [b""])
    records = [r for r in caplog.records if r.name == "gateway.access"]
    assert len(records) == 1  # successes log at debug
    fields = records[0]._fields  # type: ignore[attr-defined]
    assert fields["request_id"] == "FAILEDREQUEST001"
    assert fields["status"] == 404
    assert fields["operation"] == "GetObject"


async def test_app_exception_is_still_counted() -> None:
    hub = Observability("gateway", base=None)
    metrics = GatewayMetrics(hub)

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await _call(ObservedGateway(broken, metrics), [b""])
    text = (await hub.metrics_text()).decode()
    assert 'blobstore_s3_requests_total{operation="Unknown",status="0"} 1.0' in text
    assert "blobstore_s3_requests_inflight 0.0" in text


async def _register(catalog: LocalCatalog, n: int) -> None:
    for sid in range(1, n + 1):
        await catalog.execute(
            RegisterChunkserver(sid, Address("127.0.0.1", 7100 + sid), "", 1000, 1000)
        )


async def test_probe_ready_with_write_quorum_of_chunkservers() -> None:
    catalog = LocalCatalog()
    probe = GatewayProbe(catalog)
    assert not (await probe.check()).ok  # not probed yet
    await _register(catalog, 4)
    r = await probe.probe_once()
    assert (r.reachable, r.up, r.write_quorum) == (True, 4, 5)  # 4+2 profile: k+1 = 5
    check = await probe.check()
    assert not check.ok and "4 chunkservers up" in check.detail
    await _register(catalog, 5)
    assert (await probe.probe_once()).is_ready
    assert (await probe.check()).ok
    await catalog.execute(SetChunkserverState(5, "down"))
    assert not (await probe.probe_once()).is_ready


async def test_probe_counts_stale_heartbeats_as_down() -> None:
    catalog = LocalCatalog()
    await _register(catalog, 6)
    later = GatewayProbe(catalog, heartbeat_stale_s=30, wall_clock=lambda: 2e10)
    assert (await later.probe_once()).up == 0


class _NoLeader(LocalCatalog):
    async def query(self, q: Any, **kwargs: Any) -> object:
        raise Unavailable("no leader")


async def test_probe_not_ready_without_metadata_leader_and_exports_gauges() -> None:
    hub = Observability("gateway", base=None)
    probe = GatewayProbe(_NoLeader())
    hub.registry.register(probe)
    hub.add_check("ready", "cluster", probe.check)
    await probe.probe_once()
    reply = await hub.health("ready")
    assert reply.status == 503
    assert "no metadata leader" in json.dumps(json.loads(reply.body))
    text = (await hub.metrics_text()).decode()
    assert "blobstore_gateway_metadata_reachable 0.0" in text
