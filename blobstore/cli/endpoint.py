"""Which S3 endpoint the object commands talk to, and with which credentials.

Resolution (first match wins), with ``env`` and files injected so it is testable:

* endpoint: ``--endpoint`` > ``BLOBSTORE_ENDPOINT`` > ``endpoint_url`` of ``--profile`` in
  the AWS config file > the local cluster, ``http://127.0.0.1:9000``.
* credentials: ``--profile NAME`` (AWS shared credentials file) or ``--data DIR``
  (``DIR/credentials.toml``, written by ``blobstore server``) when given; else, for the
  local cluster, ``./blobstore-data/credentials.toml`` when it exists; then
  ``BLOBSTORE_ACCESS_KEY``/``BLOBSTORE_SECRET_KEY``, ``AWS_ACCESS_KEY_ID``/
  ``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``), and the ``AWS_PROFILE`` (or
  ``default``) profile. Nothing found is a ``ConfigError`` (exit 2).

Addressing is always path style. This module must not import boto3 at import time (the
``blobstore`` parser is built by every role process); ``make_client`` imports it lazily.
"""

from __future__ import annotations

import configparser
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blobstore.errors import ConfigError

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_ENDPOINT",
    "Endpoint",
    "EndpointOptions",
    "make_client",
    "parse_profile",
    "resolve_endpoint",
]

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
DEFAULT_DATA_DIR = "./blobstore-data"


@dataclass(frozen=True, slots=True)
class EndpointOptions:
    """The command-line flags that pick the endpoint (``None`` = not given)."""

    endpoint: str | None = None
    data: str | None = None
    profile: str | None = None
    region: str | None = None
    ca_bundle: str | None = None
    verify_tls: bool = True


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A resolved endpoint: where, who, and how to verify TLS."""

    url: str
    access_key: str
    secret_key: str = ""
    session_token: str | None = None
    region: str = "us-east-1"
    verify: bool | str = True  # False, True (system CAs) or a CA bundle path
    credentials_source: str = ""

    def __repr__(self) -> str:  # never print the secret
        return f"Endpoint(url={self.url!r}, access_key={self.access_key!r}, ...)"


@dataclass(frozen=True, slots=True)
class _Creds:
    access_key: str
    secret_key: str
    session_token: str | None
    source: str


def parse_profile(text: str, profile: str, *, config_file: bool = False) -> dict[str, str]:
    """One section of an AWS ``credentials`` (``[name]``) or ``config`` file
    (``[profile name]``, except ``[default]``); empty when the section is missing."""
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text)
    except configparser.Error as e:
        raise ConfigError(f"unreadable AWS profile file: {e}") from None
    section = profile
    if config_file and profile != "default":
        section = f"profile {profile}"
    if not parser.has_section(section):
        return {}
    return {k: v.strip() for k, v in parser.items(section)}


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None


def _aws_file(env: Mapping[str, str], home: Path, var: str, name: str) -> Path:
    return Path(env[var]) if env.get(var) else home / ".aws" / name


def _profile_creds(
    env: Mapping[str, str], home: Path, profile: str, *, required: bool
) -> _Creds | None:
    path = _aws_file(env, home, "AWS_SHARED_CREDENTIALS_FILE", "credentials")
    text = _read(path)
    section = parse_profile(text, profile) if text is not None else {}
    ak, sk = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
    if ak and sk:
        return _Creds(ak, sk, section.get("aws_session_token"), f"profile {profile} ({path})")
    if required:
        raise ConfigError(
            f"profile {profile!r}: no aws_access_key_id/aws_secret_access_key in {path}"
        )
    return None


def _data_creds(data: Path, *, required: bool) -> _Creds | None:
    path = data / "credentials.toml"
    text = _read(path)
    if text is None:
        if required:
            raise ConfigError(f"{path}: not found (start `blobstore server --data {data}`?)")
        return None
    try:
        doc = tomllib.loads(text)
        return _Creds(str(doc["access_key"]), str(doc["secret_key"]), None, str(path))
    except (tomllib.TOMLDecodeError, KeyError) as e:
        raise ConfigError(f"{path}: unreadable credentials ({e})") from None


def _env_pair(env: Mapping[str, str], ak_var: str, sk_var: str) -> _Creds | None:
    ak, sk = env.get(ak_var), env.get(sk_var)
    if not ak and not sk:
        return None
    if not ak or not sk:
        raise ConfigError(f"set both {ak_var} and {sk_var}")
    token = env.get("AWS_SESSION_TOKEN") if ak_var.startswith("AWS") else None
    return _Creds(ak, sk, token or None, f"{ak_var}/{sk_var}")


def resolve_endpoint(
    opts: EndpointOptions,
    env: Mapping[str, str] | None = None,
    *,
    home: Path | None = None,
    cwd: Path | None = None,
) -> Endpoint:
    """Resolve the endpoint URL, credentials, region and TLS verification (see module doc)."""
    env = dict(os.environ) if env is None else env
    home = Path.home() if home is None else home
    cwd = Path.cwd() if cwd is None else cwd
    if opts.profile and opts.data:
        raise ConfigError("--profile and --data are alternatives; give one")

    config: dict[str, str] = {}
    profile_name = opts.profile or env.get("AWS_PROFILE") or "default"
    config_text = _read(_aws_file(env, home, "AWS_CONFIG_FILE", "config"))
    if config_text is not None and (opts.profile or env.get("AWS_PROFILE")):
        config = parse_profile(config_text, profile_name, config_file=True)

    url = opts.endpoint or env.get("BLOBSTORE_ENDPOINT") or config.get("endpoint_url") or ""
    is_local = not url
    url = (url or DEFAULT_ENDPOINT).rstrip("/")
    if "://" not in url:
        raise ConfigError(f"endpoint {url!r}: expected http://HOST:PORT or https://HOST:PORT")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint {url!r}: only http and https are supported")

    creds: _Creds | None
    if opts.profile:
        creds = _profile_creds(env, home, opts.profile, required=True)
    elif opts.data:
        creds = _data_creds(cwd / opts.data, required=True)
    else:
        creds = _data_creds(cwd / DEFAULT_DATA_DIR, required=False) if is_local else None
        creds = (
            creds
            or _env_pair(env, "BLOBSTORE_ACCESS_KEY", "BLOBSTORE_SECRET_KEY")
            or _env_pair(env, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            or _profile_creds(env, home, profile_name, required=False)
        )
    if creds is None:
        hint = (
            f"no {DEFAULT_DATA_DIR}/credentials.toml here; pass --data DIR, "
            if is_local
            else "pass --profile NAME, "
        )
        raise ConfigError(
            f"no credentials for {url}: {hint}or set BLOBSTORE_ACCESS_KEY/BLOBSTORE_SECRET_KEY "
            "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )

    region = (
        opts.region
        or env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or config.get("region")
        or "us-east-1"
    )
    verify: bool | str = True
    if not opts.verify_tls:
        verify = False
    elif opts.ca_bundle or env.get("AWS_CA_BUNDLE") or config.get("ca_bundle"):
        verify = opts.ca_bundle or env.get("AWS_CA_BUNDLE") or config["ca_bundle"]
    return Endpoint(
        url, creds.access_key, creds.secret_key, creds.session_token, region, verify, creds.source
    )


def make_client(ep: Endpoint, *, max_connections: int = 10, retries: int = 3) -> Any:
    """A thread-safe botocore S3 client for ``ep`` (path-style addressing).

    Plain botocore (no boto3): everything comes from ``ep``; the session does not look at
    ``AWS_PROFILE``, so one that names no profile (credentials are already resolved)
    cannot fail client creation."""
    import botocore.session  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",  # presigned URLs too (botocore may presign with SigV2)
        retries={"mode": "standard", "max_attempts": max(1, retries)},
        max_pool_connections=max_connections,
        connect_timeout=10,
        read_timeout=120,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    # The profile variable without its AWS_PROFILE lookup: scoped config is [default] or {}.
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    return session.create_client(
        "s3",
        endpoint_url=ep.url,
        aws_access_key_id=ep.access_key,
        aws_secret_access_key=ep.secret_key,
        aws_session_token=ep.session_token,
        region_name=ep.region,
        verify=ep.verify,
        config=config,
    )
