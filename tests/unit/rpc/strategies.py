"""Hypothesis strategies for any message the codec supports (reusable by other test suites).

``strategy_for(SomeMessage)`` builds values of a registered dataclass from its type hints,
mirroring the codec's type rules (64-bit ints, NaN-capable floats, nested messages, enums,
tuples, dicts, unions). ``any_registered_message()`` draws from every registered type.
``import_message_modules()`` imports every ``messages``/``commands`` module of the project
packages so their ``register`` calls run before the registry is read.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import types
import typing
from enum import IntEnum
from typing import Any

from hypothesis import strategies as st

from blobstore.rpc import codec
from blobstore.rpc.messages import Ping

__all__ = ["any_registered_message", "import_message_modules", "strategy_for"]

INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
_PACKAGES = ("blobstore", "metadata", "chunkserver", "gateway")
_MESSAGE_MODULES = ("messages", "commands")


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for one annotation the codec supports."""
    simple: dict[Any, st.SearchStrategy[Any]] = {
        int: INTS,
        float: st.floats(allow_nan=True),
        str: st.text(max_size=20),
        bytes: st.binary(max_size=40),
        bool: st.booleans(),
        type(None): st.none(),
        None: st.none(),
    }
    if tp in simple:
        return simple[tp]
    if tp is object:  # an envelope field: any plain registered message
        return strategy_for(Ping)
    if isinstance(tp, type) and issubclass(tp, IntEnum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        fields = [f for f in dataclasses.fields(tp) if f.init]
        return st.builds(tp, **{f.name: strategy_for(hints[f.name]) for f in fields})
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([strategy_for(a) for a in args])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=4).map(tuple)
        return st.tuples(*[strategy_for(a) for a in args])
    if origin is dict:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=4)
    raise AssertionError(f"no strategy for {tp!r}")


def any_registered_message() -> st.SearchStrategy[Any]:
    """Any value of any registered message type."""
    return st.sampled_from(sorted(codec.registered().items())).flatmap(
        lambda item: strategy_for(item[1])
    )


def import_message_modules() -> list[str]:
    """Import the project's message modules (so they register); return their names."""
    found: list[str] = []
    for pkg_name in _PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except ImportError:
            continue
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            if info.name.rsplit(".", 1)[-1] in _MESSAGE_MODULES:
                importlib.import_module(info.name)
                found.append(info.name)
    return found
