"""The maintenance cores (detector, health, liveness, planner) stay pure: no I/O, clocks or asyncio;
only the stdlib (``random`` for the injected generator's type), the catalog and types."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = {"asyncio", "os", "socket", "subprocess", "threading", "time", "datetime", "uuid"}
ALLOWED = ("metadata.fsm", "metadata.maintenance", "blobstore.types")


@pytest.mark.parametrize("module", ["detector", "health", "liveness", "planner"])
def test_core_imports(module: str) -> None:
    path = ROOT / "metadata" / "maintenance" / f"{module}.py"
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top in ("metadata", "blobstore", "chunkserver", "gateway"):
                assert name.startswith(ALLOWED), f"{module} imports {name}"
            else:
                assert top in sys.stdlib_module_names and top not in FORBIDDEN, name
