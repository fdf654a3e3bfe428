"""Typed configuration for every role, from defaults < TOML file < environment < flags.

Each role declares one frozen dataclass (``MetadataConfig``, ``ChunkserverConfig``, ...).
``load_config`` fills it from a TOML file (its ``[role]`` table, or the top level),
``BLOBSTORE_<FIELD>`` environment variables, and command-line overrides, converting each
value by the field's type and raising ``ConfigError`` that names the setting and its
source when a value is wrong. Values of non-builtin types are parsed by the functions in
``PARSERS`` (``Address`` from ``host:port``, peer maps from ``1=host:port,...``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from blobstore.errors import ConfigError
from blobstore.types import Address, NodeId, is_unspecified, parse_address, parse_peers

__all__ = [
    "ENV_PREFIX",
    "ChunkserverConfig",
    "CommonConfig",
    "GatewayConfig",
    "MetadataConfig",
    "load_config",
    "load_secret",
]

ENV_PREFIX = "BLOBSTORE_"
C = TypeVar("C")

Peers = dict[NodeId, Address]
AddressList = tuple[Address, ...]


def _parse_address_list(text: str) -> tuple[Address, ...]:
    addrs = tuple(parse_address(p) for p in text.split(",") if p.strip())
    if not addrs:
        raise ValueError("expected one or more HOST:PORT separated by commas")
    return addrs


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


PARSERS: dict[Any, Callable[[str], Any]] = {
    Address: parse_address,
    Peers: parse_peers,
    AddressList: _parse_address_list,
    bool: _parse_bool,
    int: int,
    float: float,
    str: str,
    Path: Path,
}


@dataclass(frozen=True, slots=True)
class CommonConfig:
    """Settings every role shares."""

    data: Path = Path("./blobstore-data")
    log_format: str = "text"  # "text" (key=value) or "json"
    log_level: str = "info"
    secret_file: Path | None = None  # cluster secret; default <data>/cluster.secret
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    # /metrics and /health/* over plain HTTP: "" = the role's listen port + 1000 on the
    # same host, "off" = none, else HOST:PORT (see blobstore.obs.runtime.http_address).
    http_listen: str = ""

    @property
    def secret_path(self) -> Path:
        return self.secret_file if self.secret_file is not None else self.data / "cluster.secret"

    def validate(self) -> None:
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format: {self.log_format!r} is not one of text, json")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level: {self.log_level!r} is not debug/info/warning/error")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key must be given together")
        if self.http_listen not in ("", "off"):
            try:
                parse_address(self.http_listen)
            except ValueError as e:
                raise ConfigError(f'http_listen: {e} (or "off", or empty for port+1000)') from None


@dataclass(frozen=True, slots=True)
class MetadataConfig:
    """A metadata (Raft) node."""

    id: int = 1
    listen: Address = field(default_factory=lambda: Address("127.0.0.1", 7000))
    peers: Peers = field(default_factory=dict)
    tick_ms: int = 50
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    snapshot_entries: int = 10_000
    join: bool = False  # joining a running cluster (added with `blobstore admin members add`)
    # leader's maintenance (#7, metadata.maintenance): failure detection and repair
    suspect_after_s: float = 10.0  # heartbeat silence before a chunkserver is suspect
    down_after_s: float = 60.0  # ... and down (its shards are rebuilt elsewhere)
    repair_concurrency: int = 4  # shard rebuilds in flight cluster-wide
    repair_mb_s: float = 0.0  # average rebuild bandwidth cap (MB/s); 0 = unlimited
    maintenance_interval_s: float = 1.0  # one detector + repair-scan round per interval
    # the leader notes chunkserver heartbeats in memory and replicates one only when the
    # catalog must learn something, or when the committed one is this old
    # (metadata.maintenance.liveness)
    heartbeat_commit_s: float = 10.0
    common: CommonConfig = field(default_factory=CommonConfig)

    def validate(self) -> None:
        self.common.validate()
        if self.id <= 0:
            raise ConfigError(f"id: {self.id} must be a positive integer")
        if self.peers and self.id not in self.peers:
            raise ConfigError(f"peers: this node's id {self.id} is not among the peers")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ConfigError("election_ticks must be larger than heartbeat_ticks")
        if self.tick_ms <= 0:
            raise ConfigError("tick_ms must be positive")
        if self.heartbeat_commit_s <= 0:
            raise ConfigError("heartbeat_commit_s must be positive")


@dataclass(frozen=True, slots=True)
class ChunkserverConfig:
    """A chunkserver: one data directory of shard files."""

    listen: Address = field(default_factory=lambda: Address("127.0.0.1", 7100))
    # the address registered with the metadata service, which gateways, repair and GC
    # dial; default: the listen address (its port, and this host's name when it listens
    # on 0.0.0.0 or ::). Set it behind NAT, in containers, or behind a proxy.
    advertise: Address | None = None
    meta: AddressList = ()
    zone: str = ""
    reserve_bytes: int = 256 * 1024 * 1024
    # newest written shard bytes whose pages the page cache keeps; older ones are dropped
    # as new writes arrive, which then reuse those pages (chunkserver/store/disk.py)
    write_cache_bytes: int = 1024 * 1024 * 1024
    scrub_mb_s: float = 8.0
    heartbeat_s: float = 1.0
    # garbage collection (chunkserver/gc.py): the delete queue is drained every
    # gc_queue_interval_s; shard files no committed object references are removed once
    # older than gc_grace_s, after fencing their chunk ids in the catalog (a write slower
    # than that fails to commit instead of losing data; gc.py), and repair's unplaced
    # copies after fencing each copy; the grace period only bounds how long strays linger
    gc_enabled: bool = True
    gc_grace_s: float = 3600.0
    gc_orphan_interval_s: float = 300.0
    # between full orphan rounds and missing-shard checks (the rounds in between look up
    # only shards written lately: O(new shards) catalog reads instead of O(shards held))
    gc_full_sweep_interval_s: float = 3600.0
    gc_queue_interval_s: float = 5.0
    gc_max_backoff_s: float = 60.0
    common: CommonConfig = field(default_factory=CommonConfig)

    def validate(self) -> None:
        self.common.validate()
        if not self.meta:
            raise ConfigError("meta: at least one metadata address (HOST:PORT) is required")
        if self.advertise is not None and is_unspecified(self.advertise.host):
            raise ConfigError(
                f"advertise: {self.advertise} is not an address others can dial "
                "(name this host or one of its addresses)"
            )
        if self.reserve_bytes < 0:
            raise ConfigError("reserve_bytes must not be negative")
        if self.write_cache_bytes < 0:
            raise ConfigError("write_cache_bytes must not be negative")
        if self.scrub_mb_s < 0:
            raise ConfigError("scrub_mb_s must not be negative")
        if self.gc_grace_s < 0:
            raise ConfigError("gc_grace_s must not be negative")
        gc_periods = (
            self.gc_orphan_interval_s,
            self.gc_full_sweep_interval_s,
            self.gc_queue_interval_s,
            self.gc_max_backoff_s,
        )
        if min(gc_periods) <= 0:
            raise ConfigError("gc_*_interval_s and gc_max_backoff_s must be positive")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """An S3 gateway (stateless)."""

    listen: Address = field(default_factory=lambda: Address("127.0.0.1", 9000))
    meta: AddressList = ()
    domain: str = ""  # virtual-host style base domain, e.g. s3.example.com
    region: str = "us-east-1"
    workers: int = 1
    max_object_bytes: int = 5 * 1024**4
    # shard bytes a worker's reads may buffer or have in flight, shared by its GETs: one
    # GET alone gets full 8 MiB windows per shard stream, many share this (about 1 MiB minimum)
    read_buffer_bytes: int = 64 * 1024**2
    # the certificate S3 clients see (e.g. a public one), when it is not the internal
    # mutual-TLS one; unset: https with common tls_cert/tls_key, if those are set
    https_cert: Path | None = None
    https_key: Path | None = None
    common: CommonConfig = field(default_factory=CommonConfig)

    @property
    def https_pair(self) -> tuple[Path, Path] | None:
        """(certificate, key) the S3 endpoint serves, or None for plain http."""
        if self.https_cert is not None and self.https_key is not None:
            return self.https_cert, self.https_key
        if self.common.tls_cert is not None and self.common.tls_key is not None:
            return self.common.tls_cert, self.common.tls_key
        return None

    def validate(self) -> None:
        self.common.validate()
        if not self.meta:
            raise ConfigError("meta: at least one metadata address (HOST:PORT) is required")
        if self.workers <= 0:
            raise ConfigError("workers must be positive")
        if self.read_buffer_bytes <= 0:
            raise ConfigError("read_buffer_bytes must be positive")
        if (self.https_cert is None) != (self.https_key is None):
            raise ConfigError("https_cert and https_key must be given together")


def _field_types(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(name: str, tp: Any, value: Any, source: str) -> Any:
    """Convert ``value`` (a TOML value or a string) to type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or value == "":
            return None
        return _convert(name, args[0], value, source)
    if tp is Path:
        return Path(str(value))
    if isinstance(value, str):
        parser = PARSERS.get(tp)
        if parser is None:
            raise ConfigError(f"{name} ({source}): unsupported setting type {tp!r}")
        try:
            return parser(value)
        except ValueError as e:
            raise ConfigError(f"{name} ({source}): {e}") from None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, bool, str) and type(value) is tp:
        return value
    if tp == Peers and isinstance(value, Mapping):
        return parse_peers(",".join(f"{k}={v}" for k, v in value.items()))
    if tp == AddressList and isinstance(value, list):
        return _convert(name, tp, ",".join(map(str, value)), source)
    raise ConfigError(f"{name} ({source}): {value!r} is not a valid {getattr(tp, '__name__', tp)}")


def _names(cls: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _all_names(cls: Any) -> set[str]:
    """Setting names of ``cls``, with nested dataclasses (``common``) flattened in."""
    hints = _field_types(cls)
    out: set[str] = set()
    for f in dataclasses.fields(cls):
        out |= _all_names(hints[f.name]) if hints[f.name] is CommonConfig else {f.name}
    return out


def _build(cls: type[C], layers: list[tuple[str, dict[str, Any]]]) -> C:
    """Build ``cls`` from flat layers (later layers win); nested dataclasses share them."""
    hints = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        tp = hints[f.name]
        if tp is CommonConfig:
            kwargs[f.name] = _build(tp, layers)
            continue
        for source, layer in layers:
            if layer.get(f.name) is not None:
                kwargs[f.name] = _convert(f.name, tp, layer[f.name], source)
    return cls(**kwargs)


def _flatten(cls: Any, source: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise keys (``-`` to ``_``), merge nested tables, reject unknown settings."""
    known = _all_names(cls)
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        norm = key.replace("-", "_")
        if isinstance(value, Mapping) and norm not in known:
            flat.update(_flatten(cls, source, value))
        elif norm in known:
            flat[norm] = value
        else:
            raise ConfigError(f"{key} ({source}): unknown setting")
    return flat


def load_config(
    cls: type[C],
    *,
    path: Path | None = None,
    section: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> C:
    """Build ``cls`` from defaults < TOML ``path`` < ``BLOBSTORE_*`` env < ``overrides``.

    ``overrides`` are flag values (None means "not given"). The result is validated.
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    if path is not None:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path}: {e}") from None
        if section is not None:
            # A shared file may hold several roles' tables; keep ours and the common keys.
            doc = {
                k: v for k, v in doc.items() if not isinstance(v, dict) or k in (section, "common")
            }
        layers.append(("config file", _flatten(cls, "config file", doc)))
    env = os.environ if env is None else env
    known = _all_names(cls)
    env_layer = {
        k[len(ENV_PREFIX) :].lower(): v
        for k, v in env.items()
        if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX) :].lower() in known
    }
    if env_layer:
        layers.append(("environment", env_layer))
    if overrides:
        layers.append(
            ("flag", _flatten(cls, "flag", {k: v for k, v in overrides.items() if v is not None}))
        )
    config = _build(cls, layers)
    config.validate()  # type: ignore[attr-defined]
    return config


def load_secret(common: CommonConfig) -> bytes:
    """The cluster secret (hex text file); ``ConfigError`` if missing or malformed."""
    path = common.secret_path
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(
            f"secret_file: cluster secret {path} does not exist (copy the cluster's "
            "cluster.secret there or pass --secret-file)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"secret_file: cannot read {path}: {exc}") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"secret_file: {path} does not hold hex text") from None
    if len(secret) < 16:
        raise ConfigError(f"secret_file: {path} holds fewer than 16 bytes of secret")
    return secret
