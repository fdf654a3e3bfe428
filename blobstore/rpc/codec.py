"""The message codec: the only place that turns typed messages into bytes and back.

Wire format (chosen by ``bench/codec_bench.py``): one msgpack value per message.

* A registered dataclass is a msgpack array ``[tag, field_1, ..., field_n]`` in field
  declaration order; nested dataclasses are nested arrays of the same form, so a field typed
  ``object`` or a union of several message types can still be decoded.
* A domain error (``blobstore.errors.BlobstoreError``) is ``[1, code, message, {details}]``
  and decodes back through ``errors.from_wire`` (``decode`` returns it, it does not raise).
* ``int`` -> msgpack int (64-bit range), ``float`` -> float64, ``str`` -> str, ``bytes`` ->
  bin, ``bool``/``None`` -> themselves, ``IntEnum`` -> int, ``tuple[...]`` -> array,
  ``dict[K, V]`` -> map (int or str keys).

Compatibility: a decoder accepts an array with extra trailing fields (newer sender, ignored)
or with missing trailing fields that have defaults (older sender).

Tags: 1-99 RPC internals (1 is the error tag), 100-199 Raft, 1000-1999 catalog, 2000-2999
chunkserver/data path. ``register`` is idempotent for the same (tag, class) and raises on a
clash. Field decoders are generated once per class, on first use (so forward references in a
module resolve), and validate every value: ``decode`` raises ``ProtocolError`` for anything
malformed and never any other exception.

Must not import: asyncio, sockets, or any service package.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from enum import IntEnum
from operator import attrgetter
from typing import Any

import msgpack

from blobstore import errors

__all__ = [
    "ERROR_TAG",
    "decode",
    "encode",
    "message",
    "register",
    "registered",
    "tag_of",
    "validate",
]

ERROR_TAG = 1

_Decoder = Callable[[Any], Any]

_by_tag: dict[int, type] = {}
_tag_by_cls: dict[type, int] = {}
_encoders: dict[type, Callable[[Any], tuple[Any, ...]]] = {}
_decoders: dict[int, _Decoder] = {}


class _Malformed(Exception):
    """Internal: a value does not match the schema."""


def register(tag: int, cls: type) -> None:
    """Register a frozen dataclass under a wire tag (idempotent; a clash raises ValueError)."""
    if not isinstance(tag, int) or isinstance(tag, bool) or not 1 <= tag <= 0xFFFF:
        raise ValueError(f"tag {tag!r} is not an int in 1..65535")
    if tag == ERROR_TAG:
        raise ValueError(f"tag {ERROR_TAG} is reserved for domain errors")
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass")
    existing = _by_tag.get(tag)
    if existing is cls:
        return
    if existing is not None:
        raise ValueError(f"tag {tag} is already registered to {existing.__qualname__}")
    if cls in _tag_by_cls:
        raise ValueError(f"{cls.__qualname__} is already registered as tag {_tag_by_cls[cls]}")
    names = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    _by_tag[tag] = cls
    _tag_by_cls[cls] = tag
    _encoders[cls] = _make_encoder(tag, names)


_T = typing.TypeVar("_T", bound=type)


def message(tag: int) -> Callable[[_T], _T]:
    """Class decorator form of ``register``."""

    def deco(cls: _T) -> _T:
        register(tag, cls)
        return cls

    return deco


def registered() -> dict[int, type]:
    """A copy of the registry: tag -> class."""
    return dict(_by_tag)


def validate() -> None:
    """Build the decoder of every registered class now; TypeError names any unsupported field.

    Decoders are otherwise built lazily on first use; tests call this to fail early.
    """
    for tag, cls in list(_by_tag.items()):
        if tag not in _decoders:
            _decoders[tag] = _compile(cls)


def tag_of(cls: type) -> int:
    """The wire tag of a registered class (KeyError if unregistered)."""
    return _tag_by_cls[cls]


def _make_encoder(tag: int, names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda _obj: (tag,)
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (tag, one(obj))
    many = attrgetter(*names)
    return lambda obj: (tag, *many(obj))


def _default(obj: Any) -> Any:
    enc = _encoders.get(type(obj))
    if enc is not None:
        return enc(obj)
    if isinstance(obj, errors.BlobstoreError):
        return (ERROR_TAG, obj.code, obj.message, obj.details)
    raise TypeError(f"cannot encode {type(obj).__qualname__}: not a registered message")


def encode(obj: object) -> bytes:
    """Encode a registered message (or a BlobstoreError) to bytes."""
    if type(obj) not in _encoders and not isinstance(obj, errors.BlobstoreError):
        raise TypeError(f"cannot encode {type(obj).__qualname__}: not a registered message")
    data: bytes = msgpack.packb(obj, default=_default, use_bin_type=True)
    return data


def decode(data: bytes | bytearray | memoryview) -> object:
    """Decode bytes produced by ``encode``; raise ProtocolError for anything malformed."""
    try:
        value = msgpack.unpackb(data, use_list=False, raw=False, strict_map_key=False)
        return _decode_tagged(value)
    except errors.ProtocolError:
        raise
    except Exception as exc:  # any failure below is the peer's garbage, never ours to crash
        raise errors.ProtocolError(f"malformed message: {type(exc).__name__}: {exc}") from None


def _decode_tagged(value: Any) -> object:
    if type(value) is not tuple or not value or type(value[0]) is not int:
        raise _Malformed("expected a tagged array")
    tag = value[0]
    if tag == ERROR_TAG:
        return _decode_error(value)
    dec = _decoders.get(tag)
    if dec is None:
        cls = _by_tag.get(tag)
        if cls is None:
            raise errors.ProtocolError(f"unknown message tag {tag}")
        dec = _decoders[tag] = _compile(cls)
    return dec(value)


def _decode_error(value: tuple[Any, ...]) -> errors.BlobstoreError:
    if len(value) != 4:
        raise _Malformed("bad error arity")
    _, code, msg, details = value
    if type(code) is not str or type(msg) is not str or type(details) is not dict:
        raise _Malformed("bad error fields")
    if not all(type(k) is str and type(v) is str for k, v in details.items()):
        raise _Malformed("bad error details")
    return errors.from_wire(code, msg, details)


# -- decoder generation ------------------------------------------------------------------

_EXACT = {int: "int", str: "str", bytes: "bytes", bool: "bool"}


def _field_decoder(tp: Any) -> _Decoder | None:
    """A decoder for one annotated type; None means 'value passes through after an exact
    type check' (handled by the caller for speed)."""
    if tp in _EXACT:
        exact = tp

        def dec_exact(v: Any) -> Any:
            if type(v) is not exact:
                raise _Malformed(f"expected {exact.__name__}")
            return v

        return dec_exact
    if tp is float:

        def dec_float(v: Any) -> float:
            if type(v) is float:
                return v
            if type(v) is int:
                return float(v)
            raise _Malformed("expected float")

        return dec_float
    if tp is type(None) or tp is None:

        def dec_none(v: Any) -> None:
            if v is not None:
                raise _Malformed("expected None")

        return dec_none
    if tp is object or tp is Any:
        return _decode_tagged
    if isinstance(tp, type) and issubclass(tp, IntEnum):
        enum_cls = tp

        def dec_enum(v: Any) -> Any:
            if type(v) is not int:
                raise _Malformed("expected enum int")
            return enum_cls(v)

        return dec_enum
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        msg_cls = tp

        def dec_msg(v: Any) -> Any:
            obj = _decode_tagged(v)
            if not isinstance(obj, msg_cls):
                raise _Malformed(f"expected {msg_cls.__qualname__}")
            return obj

        return dec_msg
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _union_decoder(args)
    if origin is tuple:
        return _tuple_decoder(args)
    if origin is dict:
        kdec, vdec = _field_decoder(args[0]), _field_decoder(args[1])
        assert kdec is not None and vdec is not None

        def dec_dict(v: Any) -> dict[Any, Any]:
            if type(v) is not dict:
                raise _Malformed("expected map")
            return {kdec(k): vdec(x) for k, x in v.items()}

        return dec_dict
    raise TypeError(f"unsupported field type for the codec: {tp!r}")


def _union_decoder(args: tuple[Any, ...]) -> _Decoder:
    non_none = [a for a in args if a is not type(None)]
    allows_none = len(non_none) != len(args)
    if len(non_none) == 1:
        inner = _field_decoder(non_none[0])
        assert inner is not None

        def dec_optional(v: Any) -> Any:
            if v is None and allows_none:
                return None
            return inner(v)

        return dec_optional
    members = [(a, _field_decoder(a)) for a in non_none]

    def dec_union(v: Any) -> Any:
        if v is None and allows_none:
            return None
        for _, dec in members:
            assert dec is not None
            try:
                return dec(v)
            except (_Malformed, errors.ProtocolError, ValueError):
                continue
        raise _Malformed("no union member matches")

    return dec_union


def _tuple_decoder(args: tuple[Any, ...]) -> _Decoder:
    if len(args) == 2 and args[1] is Ellipsis:
        item_tp = args[0]
        if item_tp in _EXACT:
            exact = item_tp

            def dec_tuple_exact(v: Any) -> tuple[Any, ...]:
                if type(v) is not tuple:
                    raise _Malformed("expected array")
                for x in v:
                    if type(x) is not exact:
                        raise _Malformed(f"expected {exact.__name__} items")
                return v

            return dec_tuple_exact
        inner = _field_decoder(item_tp)
        assert inner is not None

        def dec_tuple_var(v: Any) -> tuple[Any, ...]:
            if type(v) is not tuple:
                raise _Malformed("expected array")
            return tuple([inner(x) for x in v])

        return dec_tuple_var
    if args == ((),):
        args = ()
    decs = [_field_decoder(a) for a in args]

    def dec_tuple_fixed(v: Any) -> tuple[Any, ...]:
        if type(v) is not tuple or len(v) != len(decs):
            raise _Malformed("expected fixed-size array")
        return tuple([d(x) for d, x in zip(decs, v, strict=True)])  # type: ignore[misc]

    return dec_tuple_fixed


def _compile(cls: type) -> _Decoder:
    """Generate a decoder for ``[tag, f1, ..., fn]`` -> ``cls(f1, ..., fn)``."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        raise TypeError(f"cannot resolve field types of {cls.__qualname__}: {exc}") from exc
    fields = [f for f in dataclasses.fields(cls) if f.init]
    n = len(fields)
    ns: dict[str, Any] = {"cls": cls, "_Malformed": _Malformed}
    lines = ["def dec(v):", f"    if len(v) != {n + 1}:", "        return slow(v)"]
    args = []
    for i, f in enumerate(fields, start=1):
        tp = hints[f.name]
        if tp in _EXACT:
            ns[f"t{i}"] = tp
            lines += [f"    a{i} = v[{i}]", f"    if type(a{i}) is not t{i}: raise _Malformed()"]
            args.append(f"a{i}")
        else:
            ns[f"d{i}"] = _field_decoder(tp)
            args.append(f"d{i}(v[{i}])")
    slots = [cls.__dict__.get(f.name) for f in fields]
    if not hasattr(cls, "__post_init__") and all(
        type(d) is types.MemberDescriptorType for d in slots
    ):
        # Frozen slotted dataclass without __post_init__: fill the slots directly, which is
        # ~2x faster than the generated frozen __init__ (object.__setattr__ per field).
        ns["_new"] = object.__new__
        lines.append("    o = _new(cls)")
        for i, (arg, desc) in enumerate(zip(args, slots, strict=True), start=1):
            ns[f"s{i}"] = desc.__set__  # type: ignore[union-attr]
            lines.append(f"    s{i}(o, {arg})")
        lines.append("    return o")
    else:
        lines.append(f"    return cls({', '.join(args)})")
    exec("\n".join(lines), ns)  # generated once per class; no input from the wire

    defaults: list[Any] = []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            defaults.append(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            defaults.append(f.default_factory)
        else:
            defaults.append(dataclasses.MISSING)
    fast: _Decoder = ns["dec"]

    def slow(v: tuple[Any, ...]) -> Any:
        have = len(v) - 1
        if have > n:  # newer sender: ignore extra trailing fields
            return fast(v[: n + 1])
        padded = list(v)
        for i in range(have, n):
            d = defaults[i]
            if d is dataclasses.MISSING:
                raise _Malformed(f"{cls.__qualname__}: missing field {fields[i].name}")
            padded.append(_encode_value(d() if callable(d) else d))
        return fast(tuple(padded))

    ns["slow"] = slow
    return fast


def _encode_value(value: Any) -> Any:
    """Round a default value through the wire form so the fast decoder accepts it."""
    return msgpack.unpackb(
        msgpack.packb(value, default=_default, use_bin_type=True),
        use_list=False,
        raw=False,
        strict_map_key=False,
    )
