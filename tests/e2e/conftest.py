"""Fixtures for end-to-end tests with real S3 clients.

``s3_server`` yields an ``S3Endpoint(endpoint_url, access_key, secret_key, ca_bundle)``:

* with ``BLOBSTORE_E2E_ENDPOINT`` (+ ``BLOBSTORE_E2E_ACCESS_KEY`` /
  ``BLOBSTORE_E2E_SECRET_KEY``, optional ``BLOBSTORE_E2E_CA_BUNDLE``) set, that endpoint
  (e.g. the real multi-process cluster);
* otherwise the gateway app served by uvicorn in a background thread on 127.0.0.1:<free
  port> over ``LocalCatalog`` + ``MemoryObjectStore``, plain HTTP, and a second one over
  HTTPS with a self-signed certificate (made with the ``openssl`` CLI; skipped with a reason
  when it is missing).
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from blobstore.client.catalog import LocalCatalog
from gateway.app import create_app, ensure_root_user
from gateway.storage import MemoryObjectStore

ACCESS_KEY = "E2EROOTACCESSKEY0001"
SECRET_KEY = "e2e-root-secret-key-0123456789abcdefghij"


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    access_key: str
    secret_key: str
    ca_bundle: str | None = None
    is_local: bool = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Running:
    server: uvicorn.Server
    thread: threading.Thread
    store: MemoryObjectStore
    catalog: LocalCatalog


def _start(certfile: Path | None = None, keyfile: Path | None = None) -> tuple[str, _Running]:
    catalog = LocalCatalog()
    store = MemoryObjectStore()
    env = {"BLOBSTORE_ROOT_ACCESS_KEY": ACCESS_KEY, "BLOBSTORE_ROOT_SECRET_KEY": SECRET_KEY}
    asyncio.run(ensure_root_user(catalog, env))
    app = create_app(catalog, store, max_object_bytes=1024**3)
    port = _free_port()
    tls: dict[str, str] = {}
    if certfile is not None and keyfile is not None:
        tls = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=5,
        **tls,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)  # polling the server's started flag, bounded by the deadline
    scheme = "https" if tls else "http"
    return f"{scheme}://127.0.0.1:{port}", _Running(server, thread, store, catalog)


def collect_leaked_sockets() -> None:
    """Collect client sockets that botocore/urllib3 dropped without closing (they sit in
    exception/traceback reference cycles after error responses) now, silently, instead of
    letting a later test trip over their ResourceWarning; it also lets the server see
    those connections close."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _stop(running: _Running) -> None:
    collect_leaked_sockets()
    running.server.should_exit = True
    running.thread.join(timeout=10)
    collect_leaked_sockets()


def _make_cert(directory: Path) -> tuple[Path, Path] | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def _local_http() -> Iterator[tuple[S3Endpoint, _Running]]:
    url, running = _start()
    yield S3Endpoint(url, ACCESS_KEY, SECRET_KEY), running
    _stop(running)


@pytest.fixture(scope="session")
def _local_https(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[S3Endpoint, _Running]]:
    made = _make_cert(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("neither the cryptography package nor the openssl CLI is available")
    cert, key = made
    url, running = _start(cert, key)
    yield S3Endpoint(url, ACCESS_KEY, SECRET_KEY, ca_bundle=str(cert)), running
    _stop(running)


def _external() -> S3Endpoint | None:
    url = os.environ.get("BLOBSTORE_E2E_ENDPOINT")
    if not url:
        return None
    return S3Endpoint(
        url,
        os.environ.get("BLOBSTORE_E2E_ACCESS_KEY", ""),
        os.environ.get("BLOBSTORE_E2E_SECRET_KEY", ""),
        os.environ.get("BLOBSTORE_E2E_CA_BUNDLE") or None,
        is_local=False,
    )


VARIANTS = ["http-default", "http-when_required", "https-default"]


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    """Transport and botocore checksum setting of one run: ``<scheme>-<checksums>``."""
    return str(request.param)


@pytest.fixture
def s3_server(request: pytest.FixtureRequest, variant: str) -> S3Endpoint:
    """(endpoint_url, access_key, secret_key[, ca_bundle]) of the gateway under test."""
    scheme = variant.split("-", 1)[0]
    external = _external()
    if external is not None:
        if scheme == "https" and not external.endpoint_url.startswith("https"):
            pytest.skip("the external endpoint is plain HTTP")
        if scheme == "http" and external.endpoint_url.startswith("https"):
            pytest.skip("the external endpoint is HTTPS")
        return external
    name = "_local_http" if scheme == "http" else "_local_https"
    endpoint: S3Endpoint = request.getfixturevalue(name)[0]
    return endpoint
