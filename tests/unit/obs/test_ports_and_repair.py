"""``blobstore server`` gives every role an HTTP port; roles accept --http-listen;
repair metrics read from the maintenance driver's status."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blobstore.cli import roles, server
from blobstore.obs.maintenance import attach_repair
from blobstore.obs.runtime import Observability


def _server_args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    server.register(parser.add_subparsers())
    return parser.parse_args(["server", *extra])


def _http_flag(argv: Sequence[str]) -> str:
    return argv[argv.index("--http-listen") + 1]


def test_server_gives_each_of_the_ten_processes_port_plus_offset(tmp_path: Path) -> None:
    args = _server_args("--listen", "127.0.0.1:9100", "--meta-port", "7201", "--chunk-port", "7301")
    creds = server.Credentials("AK", "SK")
    specs = server._role_specs(args, tmp_path, tmp_path / "secret", creds)
    ports = {s.name: _http_flag(s.argv) for s in specs}
    assert ports == {
        "meta-1": "127.0.0.1:8201",
        "meta-2": "127.0.0.1:8202",
        "meta-3": "127.0.0.1:8203",
        **{f"chunk-{i}": f"127.0.0.1:{8300 + i}" for i in range(1, 7)},
        "gateway": "127.0.0.1:10100",
    }
    listing = server._http_ports(args)
    assert "8201,8202,8203" in listing and "gateway 10100" in listing


def test_server_http_offset_zero_turns_endpoints_off(tmp_path: Path) -> None:
    args = _server_args("--http-offset", "0")
    specs = server._role_specs(args, tmp_path, tmp_path / "secret", server.Credentials("A", "S"))
    assert {_http_flag(s.argv) for s in specs} == {"off"}
    assert "off" in server._http_ports(args)


def test_role_commands_accept_http_listen() -> None:
    parser = argparse.ArgumentParser()
    roles.register(parser.add_subparsers())
    for role in ("metadata", "chunkserver", "gateway"):
        args = parser.parse_args([role, "--http-listen", "127.0.0.1:9999"])
        assert roles._overrides(args, ())["http_listen"] == "127.0.0.1:9999"


@dataclass(frozen=True)
class RepairStatus:
    is_leader: bool = True
    backlog: int = 12
    in_flight: int = 2
    repairs_done: int = 30
    repairs_failed: int = 1
    repairs_noop: int = 4
    bytes_repaired: int = 1 << 20
    repair_bytes_s: float = 2048.0
    passes_completed: int = 3
    servers_marked: int = 1


@dataclass
class Driver:
    st: RepairStatus

    def status(self) -> RepairStatus:
        return self.st


async def test_repair_metrics_follow_the_driver_status() -> None:
    hub = Observability("metadata", base=None)
    driver = Driver(RepairStatus())
    detach = attach_repair(driver, hub)
    text = (await hub.metrics_text()).decode()
    for line in (
        "blobstore_repair_active 1.0",
        "blobstore_repair_backlog_chunks 12.0",
        "blobstore_repairs_inflight 2.0",
        'blobstore_repairs_total{outcome="ok"} 30.0',
        'blobstore_repairs_total{outcome="failed"} 1.0',
        'blobstore_repairs_total{outcome="noop"} 4.0',
        "blobstore_repair_bytes_total 1.048576e+06",
        "blobstore_repair_bytes_per_second 2048.0",
        "blobstore_repair_passes_total 3.0",
        "blobstore_chunkservers_marked_total 1.0",
    ):
        assert line in text, line
    driver.st = RepairStatus(is_leader=False, backlog=0, repairs_done=31)
    text = (await hub.metrics_text()).decode()
    assert "blobstore_repair_active 0.0" in text
    assert 'blobstore_repairs_total{outcome="ok"} 31.0' in text
    detach()
    assert b"blobstore_repair" not in await hub.metrics_text()
