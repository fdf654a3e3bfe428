"""docker/ stays correct by construction: every compose command parses with our CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from blobstore.cli.main import build_parser

DOCKER = Path(__file__).resolve().parents[3] / "docker"


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return doc


def test_compose_commands_parse() -> None:
    services = _compose()["services"]
    roles = {name: svc for name, svc in services.items() if "command" in svc and name != "lb"}
    assert sum(1 for s in roles.values() if s["command"][0] == "metadata") == 3
    assert sum(1 for s in roles.values() if s["command"][0] == "chunkserver") == 6
    assert sum(1 for s in roles.values() if s["command"][0] == "gateway") == 2
    parser = build_parser()
    for name, svc in roles.items():
        args = parser.parse_args([str(a) for a in svc["command"]])
        assert args.command == svc["command"][0], name
        assert svc["image"] == "blobstore:latest"
        assert "cluster_secret" in svc["secrets"]


def test_compose_volumes_and_ids_unique() -> None:
    services = _compose()["services"]
    volumes = [v for s in services.values() for v in s.get("volumes", []) if ":/data" in v]
    assert len(volumes) == len(set(volumes)) == 9
    ids = [s["command"][2] for s in services.values() if s.get("command", [""])[0] == "metadata"]
    assert sorted(ids) == ["1", "2", "3"]


@pytest.mark.parametrize("line", ["FROM python:3.11", "ENTRYPOINT", "USER blobstore"])
def test_dockerfile_shape(line: str) -> None:
    assert line in (DOCKER / "Dockerfile").read_text()


def test_compose_chunkservers_advertise_their_service_name() -> None:
    """A chunkserver bound to 0.0.0.0 must tell the catalog a name the gateways can dial."""
    services = _compose()["services"]
    parser = build_parser()
    for name, svc in services.items():
        if svc.get("command", [""])[0] != "chunkserver":
            continue
        args = parser.parse_args([str(a) for a in svc["command"]])
        assert args.advertise == f"{name}:7100", name
