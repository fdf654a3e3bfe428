"""The catalog is a pure core: no I/O, clocks, randomness, threads or project imports."""

from __future__ import annotations

import ast
import pathlib
import sys

import metadata.fsm

ALLOWED_PROJECT = ("metadata.fsm", "blobstore.types", "blobstore.errors")
ALLOWED_THIRD_PARTY = ("msgpack",)
FORBIDDEN_STDLIB = {
    "asyncio",
    "os",
    "random",
    "socket",
    "subprocess",
    "threading",
    "time",
    "datetime",
    "pickle",
    "uuid",
}


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_fsm_imports_only_what_a_pure_core_may() -> None:
    root = pathlib.Path(metadata.fsm.__file__).parent
    for path in sorted(root.glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ("metadata", "blobstore"):
                assert name.startswith(ALLOWED_PROJECT), f"{path.name} imports {name}"
            elif top in FORBIDDEN_STDLIB:
                raise AssertionError(f"{path.name} imports {name}")
            else:
                assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, (
                    f"{path.name} imports {name}"
                )
