"""Config loading: precedence (defaults < file < env < flags) and readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from blobstore.config import (
    ChunkserverConfig,
    CommonConfig,
    GatewayConfig,
    MetadataConfig,
    load_config,
    load_secret,
)
from blobstore.errors import ConfigError
from blobstore.types import Address
from gateway.app import _uvicorn_config


def test_defaults_validate() -> None:
    cfg = load_config(MetadataConfig, env={})
    assert cfg.id == 1
    assert cfg.listen == Address("127.0.0.1", 7000)


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'log_format = "json"\n'
        "[metadata]\n"
        "id = 2\n"
        'listen = "127.0.0.1:7002"\n'
        'peers = { 1 = "127.0.0.1:7001", 2 = "127.0.0.1:7002", 3 = "127.0.0.1:7003" }\n'
        "[gateway]\n"
        'listen = "0.0.0.0:9000"\n'
    )
    cfg = load_config(MetadataConfig, path=path, section="metadata", env={})
    assert cfg.id == 2
    assert cfg.peers[3] == Address("127.0.0.1", 7003)
    assert cfg.common.log_format == "json"

    env = {"BLOBSTORE_ID": "3", "BLOBSTORE_LOG_LEVEL": "debug", "UNRELATED": "x"}
    cfg = load_config(MetadataConfig, path=path, section="metadata", env=env)
    assert cfg.id == 3
    assert cfg.common.log_level == "debug"

    cfg = load_config(
        MetadataConfig, path=path, section="metadata", env=env, overrides={"id": "1", "data": "/x"}
    )
    assert cfg.id == 1
    assert cfg.common.data == Path("/x")


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"peers": "garbage"}, "peers (flag): peer 'garbage' is not ID=HOST:PORT"),
        ({"peers": "1=127.0.0.1:0"}, "port '0' is not a number in 1..65535"),
        ({"peers": "1=bad host:1"}, "not a valid host name"),
        ({"peers": "1=a:1,1=b:2"}, "appears twice"),
        ({"peers": "2=127.0.0.1:7002"}, "this node's id 1 is not among the peers"),
        ({"id": "zero"}, "id (flag)"),
        ({"id": "0"}, "must be a positive integer"),
        ({"listen": "localhost"}, "missing ':port'"),
        ({"log_format": "xml"}, "log_format"),
        ({"bogus": "1"}, "bogus (flag): unknown setting"),
    ],
)
def test_errors_name_the_setting(overrides: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(MetadataConfig, env={}, overrides=overrides)
    assert needle in info.value.message


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(MetadataConfig, path=tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("id = = 3")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_config(MetadataConfig, path=bad, env={})
    typo = tmp_path / "typo.toml"
    typo.write_text("idd = 3")
    with pytest.raises(ConfigError, match=r"idd \(config file\): unknown setting"):
        load_config(MetadataConfig, path=typo, env={})


def test_role_configs() -> None:
    with pytest.raises(ConfigError, match="meta: at least one"):
        load_config(ChunkserverConfig, env={})
    cs = load_config(
        ChunkserverConfig, env={"BLOBSTORE_META": "127.0.0.1:1,127.0.0.1:2", "BLOBSTORE_ZONE": "a"}
    )
    assert cs.meta == (Address("127.0.0.1", 1), Address("127.0.0.1", 2))
    assert cs.zone == "a"
    env = {"BLOBSTORE_META": "h:1", "BLOBSTORE_WRITE_CACHE_BYTES": "0"}
    assert load_config(ChunkserverConfig, env=env).write_cache_bytes == 0
    with pytest.raises(ConfigError, match="write_cache_bytes"):
        load_config(ChunkserverConfig, env={**env, "BLOBSTORE_WRITE_CACHE_BYTES": "-1"})
    gw = load_config(GatewayConfig, env={}, overrides={"meta": "[::1]:7000", "workers": "4"})
    assert gw.meta == (Address("::1", 7000),)
    assert str(gw.meta[0]) == "[::1]:7000"
    assert gw.workers == 4
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        load_config(GatewayConfig, env={}, overrides={"meta": "h:1", "tls_cert": "/c"})


def test_gateway_https_certificate() -> None:
    """The S3 endpoint serves https_cert/key when given, else the internal tls_cert/key."""
    base = {"meta": "h:1"}
    assert load_config(GatewayConfig, env={}, overrides=base).https_pair is None
    internal = {**base, "tls_cert": "/int.pem", "tls_key": "/int.key", "tls_ca": "/ca.pem"}
    gw = load_config(GatewayConfig, env={}, overrides=internal)
    assert gw.https_pair == (Path("/int.pem"), Path("/int.key"))
    public = {**internal, "https_cert": "/pub.pem", "https_key": "/pub.key"}
    gw = load_config(GatewayConfig, env={}, overrides=public)
    assert gw.https_pair == (Path("/pub.pem"), Path("/pub.key"))
    assert gw.common.tls_cert == Path("/int.pem")  # internal RPC keeps its own
    env = {"BLOBSTORE_HTTPS_CERT": "/pub.pem", "BLOBSTORE_HTTPS_KEY": "/pub.key"}
    assert load_config(GatewayConfig, env=env, overrides=base).https_pair == (
        Path("/pub.pem"),
        Path("/pub.key"),
    )
    with pytest.raises(ConfigError, match="https_cert and https_key"):
        load_config(GatewayConfig, env={}, overrides={**base, "https_cert": "/pub.pem"})
    # what the gateway hands uvicorn
    served = _uvicorn_config(gw, lambda *_: None)  # type: ignore[arg-type]
    assert (served.ssl_certfile, served.ssl_keyfile) == ("/pub.pem", "/pub.key")
    plain = load_config(GatewayConfig, env={}, overrides=base)
    assert _uvicorn_config(plain, lambda *_: None).ssl_certfile is None  # type: ignore[arg-type]


def test_load_secret(tmp_path: Path) -> None:
    def common(name: str) -> CommonConfig:
        return CommonConfig(data=tmp_path, secret_file=tmp_path / name)

    with pytest.raises(ConfigError, match="does not exist"):
        load_secret(common("nope"))
    (tmp_path / "bad").write_text("not hex")
    with pytest.raises(ConfigError, match="hex"):
        load_secret(common("bad"))
    (tmp_path / "short").write_text("abcd")
    with pytest.raises(ConfigError, match="fewer than 16 bytes"):
        load_secret(common("short"))
    (tmp_path / "cluster.secret").write_text("ab" * 32 + "\n")
    assert load_secret(CommonConfig(data=tmp_path)) == bytes([0xAB]) * 32
