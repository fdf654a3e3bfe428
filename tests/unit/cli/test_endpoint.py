"""Endpoint and credential resolution (env and files injected)."""

from __future__ import annotations

from pathlib import Path

import pytest

from blobstore.cli.endpoint import (
    DEFAULT_ENDPOINT,
    EndpointOptions,
    make_client,
    parse_profile,
    resolve_endpoint,
)
from blobstore.errors import ConfigError

CREDS = "[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n\n"
CREDS += "[work]\naws_access_key_id = WORK\naws_secret_access_key = worksecret\n"
CREDS += "aws_session_token = tok\n"
CONFIG = "[profile work]\nendpoint_url = https://s3.work:9443\nregion = eu-west-1\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home" / ".aws").mkdir(parents=True)
    (tmp_path / "home" / ".aws" / "credentials").write_text(CREDS)
    (tmp_path / "home" / ".aws" / "config").write_text(CONFIG)
    return tmp_path / "home"


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    d = tmp_path / "cwd"
    (d / "blobstore-data").mkdir(parents=True)
    (d / "blobstore-data" / "credentials.toml").write_text(
        'access_key = "LOCALAK"\nsecret_key = "localsecret"\n'
    )
    return d


def test_default_is_local_cluster_with_data_dir_credentials(home: Path, cwd: Path) -> None:
    env = {"AWS_ACCESS_KEY_ID": "ENVAK", "AWS_SECRET_ACCESS_KEY": "envsk"}
    ep = resolve_endpoint(EndpointOptions(), env, home=home, cwd=cwd)
    assert ep.url == DEFAULT_ENDPOINT
    assert (ep.access_key, ep.secret_key) == ("LOCALAK", "localsecret")
    assert ep.region == "us-east-1" and ep.verify is True
    assert "localsecret" not in repr(ep)


def test_explicit_data_dir(home: Path, cwd: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "credentials.toml").write_text('access_key = "O"\nsecret_key = "osecret1"\n')
    ep = resolve_endpoint(EndpointOptions(data=str(other)), {}, home=home, cwd=cwd)
    assert ep.access_key == "O"
    with pytest.raises(ConfigError, match="not found"):
        resolve_endpoint(EndpointOptions(data=str(tmp_path / "nope")), {}, home=home, cwd=cwd)
    (other / "credentials.toml").write_text("garbage = [")
    with pytest.raises(ConfigError, match="unreadable"):
        resolve_endpoint(EndpointOptions(data=str(other)), {}, home=home, cwd=cwd)


def test_local_falls_back_to_env_without_data_dir(home: Path, tmp_path: Path) -> None:
    env = {
        "BLOBSTORE_ACCESS_KEY": "BS",
        "BLOBSTORE_SECRET_KEY": "bssecret",
        "AWS_ACCESS_KEY_ID": "A",
        "AWS_SECRET_ACCESS_KEY": "a",
    }
    ep = resolve_endpoint(EndpointOptions(), env, home=home, cwd=tmp_path)
    assert ep.access_key == "BS"


def test_endpoint_flag_uses_env_not_data_dir(home: Path, cwd: Path) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "ENVAK",
        "AWS_SECRET_ACCESS_KEY": "envsk",
        "AWS_SESSION_TOKEN": "t",
        "AWS_REGION": "ap-south-1",
    }
    ep = resolve_endpoint(EndpointOptions(endpoint="http://h:1/"), env, home=home, cwd=cwd)
    assert ep.url == "http://h:1"
    assert (ep.access_key, ep.session_token, ep.region) == ("ENVAK", "t", "ap-south-1")


def test_blobstore_endpoint_env(home: Path, cwd: Path) -> None:
    env = {
        "BLOBSTORE_ENDPOINT": "http://x:9",
        "BLOBSTORE_ACCESS_KEY": "K",
        "BLOBSTORE_SECRET_KEY": "s",
    }
    ep = resolve_endpoint(EndpointOptions(), env, home=home, cwd=cwd)
    assert (ep.url, ep.access_key, ep.session_token) == ("http://x:9", "K", None)


def test_endpoint_falls_back_to_default_profile(home: Path, cwd: Path) -> None:
    ep = resolve_endpoint(EndpointOptions(endpoint="http://h:1"), {}, home=home, cwd=cwd)
    assert ep.access_key == "DEF"


def test_profile_gives_credentials_endpoint_and_region(home: Path, cwd: Path) -> None:
    ep = resolve_endpoint(EndpointOptions(profile="work"), {}, home=home, cwd=cwd)
    assert (ep.url, ep.access_key, ep.session_token) == ("https://s3.work:9443", "WORK", "tok")
    assert ep.region == "eu-west-1"
    ep = resolve_endpoint(
        EndpointOptions(profile="work", endpoint="http://o:1", region="r"), {}, home=home, cwd=cwd
    )
    assert (ep.url, ep.region) == ("http://o:1", "r")
    with pytest.raises(ConfigError, match="profile 'missing'"):
        resolve_endpoint(EndpointOptions(profile="missing"), {}, home=home, cwd=cwd)


def test_aws_profile_env_and_file_overrides(home: Path, cwd: Path, tmp_path: Path) -> None:
    creds = tmp_path / "c"
    creds.write_text("[p]\naws_access_key_id = P\naws_secret_access_key = psecret\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_PROFILE": "p"}
    ep = resolve_endpoint(EndpointOptions(endpoint="http://h:1"), env, home=home, cwd=cwd)
    assert ep.access_key == "P"


def test_errors(home: Path, cwd: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="alternatives"):
        resolve_endpoint(EndpointOptions(profile="work", data="d"), {}, home=home, cwd=cwd)
    with pytest.raises(ConfigError, match="set both"):
        resolve_endpoint(
            EndpointOptions(endpoint="http://h:1"), {"AWS_ACCESS_KEY_ID": "x"}, home=home, cwd=cwd
        )
    with pytest.raises(ConfigError, match="http"):
        resolve_endpoint(EndpointOptions(endpoint="ftp://h"), {}, home=home, cwd=cwd)
    with pytest.raises(ConfigError, match="expected"):
        resolve_endpoint(EndpointOptions(endpoint="h:9000"), {}, home=home, cwd=cwd)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no credentials"):
        resolve_endpoint(EndpointOptions(), {}, home=empty, cwd=empty)
    with pytest.raises(ConfigError, match="--profile"):
        resolve_endpoint(EndpointOptions(endpoint="http://h:1"), {}, home=empty, cwd=empty)


def test_tls_verification(home: Path, cwd: Path) -> None:
    ep = resolve_endpoint(EndpointOptions(ca_bundle="/ca.pem"), {}, home=home, cwd=cwd)
    assert ep.verify == "/ca.pem"
    ep = resolve_endpoint(EndpointOptions(), {"AWS_CA_BUNDLE": "/env.pem"}, home=home, cwd=cwd)
    assert ep.verify == "/env.pem"
    ep = resolve_endpoint(EndpointOptions(verify_tls=False), {}, home=home, cwd=cwd)
    assert ep.verify is False


def test_parse_profile() -> None:
    assert parse_profile(CREDS, "work")["aws_session_token"] == "tok"
    assert parse_profile(CREDS, "nope") == {}
    assert parse_profile(CONFIG, "work", config_file=True)["region"] == "eu-west-1"
    assert parse_profile("[default]\nregion = x\n", "default", config_file=True) == {"region": "x"}
    with pytest.raises(ConfigError):
        parse_profile("no section header", "default")


def test_make_client_is_path_style(home: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")  # resolved already; must not fail
    ep = resolve_endpoint(
        EndpointOptions(endpoint="http://127.0.0.1:1"),
        {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "sk"},
        home=home,
        cwd=cwd,
    )
    client = make_client(ep)
    try:
        assert client.meta.config.s3["addressing_style"] == "path"
        url = client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
        assert url.startswith("http://127.0.0.1:1/b/k")
    finally:
        client.close()
