"""First-start setup of ``blobstore server``: secret and admin credentials, 0600, reused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from blobstore.cli.server import load_or_create_credentials, load_or_create_secret
from blobstore.errors import ConfigError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_once_then_reused(tmp_path: Path) -> None:
    secret = load_or_create_secret(tmp_path)
    first = secret.read_text()
    assert len(first.strip()) == 64 and _mode(secret) == 0o600
    assert load_or_create_secret(tmp_path).read_text() == first

    creds = load_or_create_credentials(tmp_path, env={})
    assert _mode(tmp_path / "credentials.toml") == 0o600
    assert load_or_create_credentials(tmp_path, env={}) == creds


def test_root_credentials_from_env(tmp_path: Path) -> None:
    env = {"BLOBSTORE_ROOT_ACCESS_KEY": "admin", "BLOBSTORE_ROOT_SECRET_KEY": "s3cr3t-key"}
    creds = load_or_create_credentials(tmp_path, env=env)
    assert (creds.access_key, creds.secret_key) == ("admin", "s3cr3t-key")
    assert load_or_create_credentials(tmp_path, env={}) == creds  # stored for later starts
    with pytest.raises(ConfigError, match="both"):
        load_or_create_credentials(tmp_path, env={"BLOBSTORE_ROOT_ACCESS_KEY": "a"})
    with pytest.raises(ConfigError, match="at least 8"):
        load_or_create_credentials(
            tmp_path, env={"BLOBSTORE_ROOT_ACCESS_KEY": "abc", "BLOBSTORE_ROOT_SECRET_KEY": "x"}
        )
