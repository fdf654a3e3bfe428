"""The observability hub: addresses, health verdicts, exposition, worker-file summing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from blobstore.config import CommonConfig, GatewayConfig, load_config
from blobstore.errors import ConfigError
from blobstore.obs.runtime import (
    MULTIPROC_ENV,
    Check,
    Observability,
    http_address,
    observability,
)
from blobstore.testing.ports import free_port
from blobstore.types import Address


def test_http_address_default_is_port_plus_1000() -> None:
    assert http_address(Address("10.0.0.1", 7001), "") == Address("10.0.0.1", 8001)
    assert http_address(Address("127.0.0.1", 9000), "") == Address("127.0.0.1", 10000)


def test_http_address_off_and_explicit() -> None:
    assert http_address(Address("127.0.0.1", 7001), "off") is None
    assert http_address(Address("127.0.0.1", 7001), "0.0.0.0:9100") == Address("0.0.0.0", 9100)


def test_http_address_out_of_range() -> None:
    with pytest.raises(ConfigError, match="out of range"):
        http_address(Address("127.0.0.1", 65000), "")


def test_config_http_listen_setting_and_validation() -> None:
    cfg = load_config(GatewayConfig, env={"BLOBSTORE_HTTP_LISTEN": "127.0.0.1:9999",
                                          "BLOBSTORE_META": "127.0.0.1:7001"})  # fmt: skip
    assert cfg.common.http_listen == "127.0.0.1:9999"
    with pytest.raises(ConfigError, match="http_listen"):
        CommonConfig(http_listen="nonsense").validate()
    CommonConfig(http_listen="off").validate()


def _hub() -> Observability:
    return Observability("test", base=None, check_timeout_s=0.2)


async def test_ready_is_503_until_a_ready_check_exists() -> None:
    hub = _hub()
    reply = await hub.health("ready")
    assert reply.status == 503
    doc = json.loads(reply.body)
    assert doc["status"] == "not ready"
    assert any(c["name"] == "started" and not c["ok"] for c in doc["checks"])
    assert (await hub.health("live")).status == 200


async def test_checks_decide_and_removers_work() -> None:
    hub = _hub()
    state = {"ok": True}

    async def check() -> Check:
        return Check("thing", state["ok"], "why")

    remove = hub.add_check("ready", "thing", check)
    assert (await hub.health("ready")).status == 200
    state["ok"] = False
    reply = await hub.health("ready")
    assert reply.status == 503
    assert {"name": "thing", "ok": False, "detail": "why"} in json.loads(reply.body)["checks"]
    assert (await hub.health("live")).status == 200  # ready checks do not affect live
    remove()
    assert (await hub.health("ready")).status == 503  # no ready check any more


async def test_slow_or_raising_checks_fail() -> None:
    hub = _hub()

    async def slow() -> Check:
        await asyncio.sleep(30)
        return Check("slow", True)

    async def broken() -> Check:
        raise OSError("disk on fire")

    hub.add_check("live", "slow", slow)
    hub.add_check("live", "broken", broken)
    reply = await hub.health("live")
    assert reply.status == 503
    details = {c["name"]: c["detail"] for c in json.loads(reply.body)["checks"]}
    assert "no answer" in details["slow"]
    assert "disk on fire" in details["broken"]


async def test_metrics_text_runs_pre_scrape_hooks_and_appends_hub_registry() -> None:
    base = CollectorRegistry()
    Counter("base_things_total", "doc", registry=base).inc()
    hub = Observability("t", base=base)
    counter = Counter("hub_things_total", "doc", registry=hub.registry)
    calls = []

    async def hook() -> None:
        calls.append(1)
        counter.inc(3)

    async def failing_hook() -> None:
        raise RuntimeError("no")

    hub.add_pre_scrape(hook)
    hub.add_pre_scrape(failing_hook)
    text = (await hub.metrics_text()).decode()
    assert "base_things_total 1.0" in text
    assert "hub_things_total 3.0" in text
    assert calls == [1]


def test_shared_makes_one_instance_per_hub() -> None:
    hub = _hub()
    a = hub.shared("k", lambda h: object())
    assert hub.shared("k", lambda h: object()) is a
    assert _hub().shared("k", lambda h: object()) is not a


async def test_observability_serves_endpoints_and_survives_a_taken_port() -> None:
    hub = _hub()
    port = free_port()
    common = CommonConfig(http_listen=f"127.0.0.1:{port}")
    async with observability("x", Address("127.0.0.1", 1), common, hub) as h:
        assert h.address == Address("127.0.0.1", port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health/live HTTP/1.1\r\n\r\n")
        assert b"200 OK" in await reader.read()
        writer.close()
        await writer.wait_closed()
        other = _hub()
        async with observability("y", Address("127.0.0.1", 1), common, other) as o:
            assert o.address is None  # port taken: logged, the role runs on
    assert hub.address is None


_WORKER = """
import sys
from blobstore.obs.gateway import gateway_metrics
m = gateway_metrics()
m.requests.labels("PutObject", "200").inc(int(sys.argv[1]))
m.sent.labels("PutObject").inc(10)
"""


async def test_multiprocess_dir_sums_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mp = tmp_path / "mp"
    mp.mkdir()
    env = {**os.environ, MULTIPROC_ENV: str(mp)}
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", _WORKER, str(n), env=env)
        for n in (2, 5)
    ]
    assert [await asyncio.wait_for(p.wait(), 60) for p in procs] == [0, 0]
    monkeypatch.setenv(MULTIPROC_ENV, str(mp))
    text = (await Observability("gateway").metrics_text()).decode()
    assert 'blobstore_s3_requests_total{operation="PutObject",status="200"} 7.0' in text
    assert 'blobstore_s3_sent_bytes_total{operation="PutObject"} 20.0' in text
