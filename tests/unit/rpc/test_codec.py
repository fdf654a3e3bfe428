"""Codec: round trips for every registered message type, errors, garbage, registry rules."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blobstore import errors
from blobstore.rpc import codec
from blobstore.rpc.messages import CallHeader
from tests.unit.rpc.fixture_messages import Color, Conf, Everything, Meta, Snap
from tests.unit.rpc.strategies import (
    INTS,
    any_registered_message,
    import_message_modules,
    strategy_for,
)

_INTS = INTS
import_message_modules()


def test_registry_holds_rpc_internals_and_fixtures() -> None:
    codec.validate()  # every registered class has only supported field types
    reg = codec.registered()
    assert reg[6] is CallHeader
    assert reg[83] is Everything
    assert all(tag != codec.ERROR_TAG for tag in reg)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_registered_message())
def test_every_registered_type_round_trips(msg: Any) -> None:
    data = codec.encode(msg)
    back = codec.decode(data)
    assert type(back) is type(msg)
    assert codec.encode(back) == data  # byte-identical (NaN-safe)
    if "nan" not in repr(msg):
        assert back == msg


@settings(max_examples=100, deadline=None)
@given(strategy_for(Everything))
def test_nested_and_enum_fields_keep_their_types(msg: Everything) -> None:
    back = codec.decode(codec.encode(msg))
    assert isinstance(back, Everything)
    assert type(back.color) is Color
    assert all(type(s) is Snap and type(s.meta.conf) is Conf for s in back.snaps)
    assert all(type(m) is Meta for m in back.by_id.values())
    assert back.either is None or type(back.either) is type(msg.either)


def test_decode_accepts_memoryview_and_int_for_float() -> None:
    msg = Everything(1, 2.0, "s", b"b", True, None, Color.BLUE, (), (1, "x"), {}, {}, {})
    assert codec.decode(memoryview(codec.encode(msg))) == msg
    assert codec.decode(
        msgpack.packb([83, 1, 2, "s", b"b", True, None, 7, [], [1, "x"], {}, {}, {}])
    )


@pytest.mark.parametrize("cls", [errors.NoSuchKey, errors.NotLeader, errors.DeadlineExceeded])
def test_domain_errors_round_trip(cls: type[errors.BlobstoreError]) -> None:
    err = cls("it went wrong", bucket="b", leader="n2")
    back = codec.decode(codec.encode(err))
    assert type(back) is cls
    assert back == err


def test_unknown_error_code_becomes_internal_error() -> None:
    back = codec.decode(msgpack.packb([1, "Martian", "hi", {"a": "b"}]))
    assert isinstance(back, errors.InternalError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_raises_protocol_error_only(data: bytes) -> None:
    with contextlib.suppress(errors.ProtocolError):
        codec.decode(data)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | _INTS
        | st.floats()
        | st.text(max_size=5)
        | st.binary(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=5)
            | st.dictionaries(st.text(max_size=3) | _INTS, inner, max_size=3)
        ),
        max_leaves=12,
    ),
    st.sampled_from(sorted(codec.registered())),
)
def test_well_formed_msgpack_with_wrong_shapes_is_rejected(value: Any, tag: int) -> None:
    for candidate in (value, [tag, value], [tag, *value] if isinstance(value, list) else [tag]):
        try:
            obj = codec.decode(msgpack.packb(candidate))
        except errors.ProtocolError:
            continue
        # whatever decodes must be a registered message that re-encodes cleanly
        assert type(obj) in codec.registered().values() or isinstance(obj, errors.BlobstoreError)
        codec.encode(obj)


@pytest.mark.parametrize(
    "payload",
    [
        [83, "not-int", 1.0, "s", b"b", True, None, 0, [], [1, "x"], {}, {}, {}],
        [83, 1, 1.0, "s", b"b", True, None, 99, [], [1, "x"], {}, {}, {}],  # bad enum value
        [82, [81, 1, 2, [83]]],  # nested tag of the wrong class
        [82, [999]],
        [9999],
        [],
        "text",
        [80, [1, "two"]],
    ],
)
def test_type_mismatches_raise_protocol_error(payload: Any) -> None:
    with pytest.raises(errors.ProtocolError):
        codec.decode(msgpack.packb(payload))


def test_truncated_encoding_raises_protocol_error() -> None:
    data = codec.encode(Snap(Meta(1, 2, Conf((1, 2, 3))), b"x" * 100))
    for cut in range(len(data)):
        with pytest.raises(errors.ProtocolError):
            codec.decode(data[:cut])


def test_old_and_new_senders_are_accepted() -> None:
    assert codec.decode(msgpack.packb([81, 5])) == Meta(5, 0, Conf())  # missing defaults
    assert codec.decode(msgpack.packb([81, 5, 6, [80, [], [], False], "extra"])) == Meta(5, 6)
    with pytest.raises(errors.ProtocolError):
        codec.decode(msgpack.packb([84]))  # Echo.seq has no default


def test_register_is_idempotent_and_rejects_clashes() -> None:
    codec.register(81, Meta)
    with pytest.raises(ValueError, match="already registered"):
        codec.register(81, Snap)
    with pytest.raises(ValueError, match="already registered"):
        codec.register(89, Meta)
    with pytest.raises(ValueError, match="reserved"):
        codec.register(codec.ERROR_TAG, Meta)
    with pytest.raises(TypeError):
        codec.register(88, int)


def test_encode_rejects_unregistered_objects() -> None:
    @dataclasses.dataclass(frozen=True)
    class Stray:
        x: int

    with pytest.raises(TypeError):
        codec.encode(Stray(1))
    with pytest.raises(TypeError):
        codec.encode(Conf(voters=(Stray(1),)))  # type: ignore[arg-type]


def test_floats_survive_exactly() -> None:
    for value in (0.1, -0.0, math.inf, 1e308):
        back = codec.decode(
            codec.encode(
                Everything(0, value, "", b"", False, None, Color.RED, (), (0, ""), {}, {}, {})
            )
        )
        assert isinstance(back, Everything)
        assert math.copysign(1, back.f) == math.copysign(1, value) and back.f == value
