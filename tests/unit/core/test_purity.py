"""The pure cores import no I/O, clocks, threads or outer layers (GUIDE.md 1.1, 2).

Each core may import the stdlib minus the modules below, a short list of project modules
pointing inward, and named third-party libraries. Raft may import ``random`` only for the
type of the injected ``random.Random``; ``metadata.storage.base`` is the LogStore protocol
it reads through.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = {"asyncio", "os", "random", "socket", "subprocess", "threading", "time",
             "datetime", "pickle", "uuid", "aiofiles", "starlette", "uvicorn"}  # fmt: skip

TYPES, ERRORS = "blobstore.types", "blobstore.errors"
CORES: dict[str, tuple[tuple[str, ...], tuple[str, ...], set[str]]] = {
    # core path: (allowed project prefixes, allowed third party, stdlib exceptions)
    "metadata/raft": (("metadata.raft", "metadata.storage.base", TYPES), (), {"random"}),
    "metadata/fsm": (("metadata.fsm", TYPES, ERRORS), ("msgpack",), set()),
    "metadata/placement.py": (("metadata.fsm.records", TYPES), (), set()),
    # rawbuf: uninitialised bytearrays (ctypes, no I/O) for the ISA-L coder's outputs
    "blobstore/codec": (("blobstore.codec", "blobstore.rawbuf", TYPES, ERRORS), ("zfec",), set()),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("core", sorted(CORES))
def test_pure_core_imports(core: str) -> None:
    project, third_party, exceptions = CORES[core]
    target = ROOT / core
    files = sorted(target.glob("*.py")) if target.is_dir() else [target]
    assert files
    for path in files:
        for name in _imports(path):
            top = name.split(".")[0]
            where = f"{path.relative_to(ROOT)} imports {name}"
            if top in ("metadata", "blobstore", "chunkserver", "gateway"):
                assert name.startswith(project), where
            elif top in FORBIDDEN and top not in exceptions:
                raise AssertionError(where)
            else:
                assert top in sys.stdlib_module_names or top in third_party, where
