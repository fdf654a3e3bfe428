"""Fixtures for end-to-end tests with real S3 clients.

``s3_server`` yields an ``S3Endpoint(endpoint_url, access_key, secret_key, ca_bundle)``:

* with ``BLOBSTORE_E2E_ENDPOINT`` (+ ``BLOBSTORE_E2E_ACCESS_KEY`` /
  ``BLOBSTORE_E2E_SECRET_KEY``, optional ``BLOBSTORE_E2E_CA_BUNDLE``) set, that endpoint
  (e.g. the real multi-process cluster);
* otherwise, per ``variant``: the gateway app served by uvicorn in a background thread on
  127.0.0.1:<free port> over ``LocalCatalog`` + ``MemoryObjectStore``, plain HTTP, and a
  second one over HTTPS with a self-signed certificate (made with the ``openssl`` CLI;
  skipped with a reason when it is missing); and (``cluster-*`` variants) a real
  ``blobstore server`` cluster -- 3 metadata + 6 chunkserver processes and the gateway --
  started once per session by ``blobstore_cluster`` (plain HTTP) and
  ``blobstore_cluster_https`` (``--tls-cert/--tls-key``, self-signed), see
  ``tests/e2e/cluster.py``. Set ``BLOBSTORE_E2E_CLUSTER=0`` to leave the cluster variants
  of the boto3 suite out.

``s3_endpoint`` / ``s3_endpoint_https`` (session) are the endpoints the real-client tests
(``test_clients_*``) use: the external one when ``BLOBSTORE_E2E_ENDPOINT`` is set, else the
session clusters. ``client_endpoint`` (per test, defaults to ``s3_endpoint``; modules
override it to add https) feeds ``verifier`` (a boto3 client that reads back what a CLI
stored) and ``fresh_bucket``. Helpers: ``require_tool`` (skip only when a client is not
installed), ``client_env`` (no AWS_*/RCLONE_*/RESTIC_* leaking in, CLIENTS.md rule 12),
``run_cli``, ``make_tree`` / ``tree_digest`` / ``bucket_digest`` (SHA-256 of every file /
object).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import random
import shutil
import subprocess
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvicorn
from botocore.config import Config
from botocore.exceptions import ClientError

from blobstore.client.catalog import LocalCatalog
from blobstore.testing.ports import free_port
from gateway.app import create_app, ensure_root_user
from gateway.storage import MemoryObjectStore
from tests.e2e.cluster import Cluster, running_cluster

ACCESS_KEY = "E2EROOTACCESSKEY0001"
SECRET_KEY = "e2e-root-secret-key-0123456789abcdefghij"


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    access_key: str
    secret_key: str
    ca_bundle: str | None = None
    is_local: bool = True


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
    port = free_port()
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


def local_cluster(request: pytest.FixtureRequest, fixture: str) -> Cluster:
    """The session's own ``blobstore server`` (fixture ``fixture``), for tests that need
    more than its S3 endpoint (admin commands on its metadata ports); skipped when the
    tier targets an external endpoint."""
    if _external() is not None:
        pytest.skip("BLOBSTORE_E2E_ENDPOINT is set: this test needs the local cluster")
    found: Cluster = request.getfixturevalue(fixture)
    return found


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


def _cluster_enabled() -> bool:
    return os.environ.get("BLOBSTORE_E2E_CLUSTER", "1") not in ("0", "false", "no")


VARIANTS = ["http-default", "http-when_required", "https-default"]
if _cluster_enabled():
    VARIANTS += ["cluster-http-default", "cluster-http-when_required", "cluster-https-default"]


@pytest.fixture(scope="session")
def blobstore_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real ``blobstore server`` (plain HTTP) for the whole session."""
    with running_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


def _cluster_endpoint(cluster: Cluster) -> S3Endpoint:
    return S3Endpoint(
        cluster.endpoint_url,
        cluster.access_key,
        cluster.secret_key,
        cluster.ca_bundle,
        is_local=False,
    )


@pytest.fixture(scope="session")
def s3_endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    """The real endpoint for the real-client tests: external if configured, else the
    session's ``blobstore server`` cluster."""
    external = _external()
    if external is not None:
        return external
    cluster: Cluster = request.getfixturevalue("blobstore_cluster")
    return _cluster_endpoint(cluster)


@pytest.fixture(scope="session")
def blobstore_cluster_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real ``blobstore server --tls-cert/--tls-key`` (self-signed) for the session."""
    made = _make_cert(tmp_path_factory.mktemp("cluster-tls"))
    if made is None:
        pytest.skip("the openssl CLI is not available to make a test certificate")
    with running_cluster(tmp_path_factory.mktemp("cluster-https"), tls=made) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def s3_endpoint_https(request: pytest.FixtureRequest) -> S3Endpoint:
    """Like ``s3_endpoint``, over HTTPS (an external endpoint only if it is https)."""
    external = _external()
    if external is not None:
        if not external.endpoint_url.startswith("https"):
            pytest.skip("the external endpoint (BLOBSTORE_E2E_ENDPOINT) is plain HTTP")
        return external
    cluster: Cluster = request.getfixturevalue("blobstore_cluster_https")
    return _cluster_endpoint(cluster)


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    """Server, transport and botocore checksum setting of one run:
    ``[cluster-]<scheme>-<checksums>``."""
    return str(request.param)


@pytest.fixture
def s3_server(request: pytest.FixtureRequest, variant: str) -> S3Endpoint:
    """(endpoint_url, access_key, secret_key[, ca_bundle]) of the gateway under test."""
    on_cluster = variant.startswith("cluster-")
    scheme = variant.removeprefix("cluster-").split("-", 1)[0]
    external = _external()
    if external is not None:
        if on_cluster:
            pytest.skip("BLOBSTORE_E2E_ENDPOINT is set: the plain variants run against it")
        if scheme == "https" and not external.endpoint_url.startswith("https"):
            pytest.skip("the external endpoint is plain HTTP")
        if scheme == "http" and external.endpoint_url.startswith("https"):
            pytest.skip("the external endpoint is HTTPS")
        return external
    if on_cluster:
        name = "blobstore_cluster" if scheme == "http" else "blobstore_cluster_https"
        cluster: Cluster = request.getfixturevalue(name)
        return _cluster_endpoint(cluster)
    name = "_local_http" if scheme == "http" else "_local_https"
    endpoint: S3Endpoint = request.getfixturevalue(name)[0]
    return endpoint


# -- helpers for the real-client tests (test_clients_*) -----------------------------------
def require_tool(name: str, package: str | None = None) -> str:
    """The path of CLI ``name``, or skip: it is installed by scripts/install-test-deps.sh."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed (Debian package {package or name}; "
            "scripts/install-test-deps.sh installs it as root)"
        )
    return path


def client_env(**extra: str) -> dict[str, str]:
    """The environment for a client CLI: ours minus any AWS_*/RCLONE_*/RESTIC_* settings
    (a CA bundle or profile from the machine must not leak in; CLIENTS.md rule 12)."""
    prefixes = ("AWS_", "RCLONE_", "RESTIC_", "S3CMD_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(extra)
    return env


def run_cli(
    argv: list[str], env: dict[str, str], *, cwd: Path | None = None, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a client command; a non-zero exit fails the test with its output."""
    proc = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)} exited with {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    """{relative posix path: sha256} of every regular file under ``root``."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# Names that trip encodings: space, '+', a literal '%20', '=', '&', '~', non-ASCII.
ODD_NAMES = (
    "odd/with space.txt",
    "odd/plus+sign.txt",
    "odd/literal%20pct.txt",
    "odd/eq=amp&.txt",
    "odd/tilde~.txt",
    "odd/ünïcödé-ß.txt",
)


def make_tree(
    root: Path,
    files: int,
    *,
    seed: int,
    max_size: int = 20_000,
    odd_names: bool = True,
    big: tuple[int, ...] = (),
) -> dict[str, str]:
    """A deterministic tree: ``files`` files (sizes 0..max_size, random bytes) in nested
    directories, plus the ODD_NAMES and one file per size in ``big``; its digest."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = [f"d{i % 7}/s{i % 3}/f{i:04d}.bin" for i in range(files)]
    if odd_names:
        names += list(ODD_NAMES)
    sizes = [0 if i == 0 else rng.randrange(1, max_size) for i in range(len(names))]
    for j, size in enumerate(big):
        names.append(f"big/b{j}.bin")
        sizes.append(size)
    for name, size in zip(names, sizes, strict=True):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return tree_digest(root)


def boto3_client(ep: S3Endpoint) -> Any:
    """A plain boto3 client (path style) used to verify what a client CLI stored."""
    return boto3.client(
        "s3",
        endpoint_url=ep.endpoint_url,
        aws_access_key_id=ep.access_key,
        aws_secret_access_key=ep.secret_key,
        region_name="us-east-1",
        verify=ep.ca_bundle if ep.ca_bundle else True,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def bucket_digest(client: Any, bucket: str, prefix: str = "") -> dict[str, str]:
    """{key minus prefix: sha256 of the body} of every object under ``prefix``, read back
    with boto3 (ListObjectsV2 + GetObject), independently of the client under test."""
    out: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"]
            h = hashlib.sha256()
            while chunk := body.read(1024 * 1024):
                h.update(chunk)
            body.close()
            out[obj["Key"][len(prefix) :]] = h.hexdigest()
    return out


def empty_bucket(client: Any, bucket: str, *, delete: bool = True) -> None:
    """Delete every object version (and the bucket, unless ``delete=False``); ignores a
    missing bucket."""
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            keys = [
                {"Key": o["Key"], "VersionId": o["VersionId"]}
                for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        for up in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        if delete:
            client.delete_bucket(Bucket=bucket)
    except ClientError as e:
        if e.response["Error"]["Code"] != "NoSuchBucket":
            raise


@pytest.fixture
def client_endpoint(s3_endpoint: S3Endpoint) -> S3Endpoint:
    """The endpoint a real-client test talks to (modules override it to add https)."""
    return s3_endpoint


@pytest.fixture
def verifier(client_endpoint: S3Endpoint) -> Iterator[Any]:
    """boto3 client on ``client_endpoint`` for independent checks (closed after the test)."""
    client = boto3_client(client_endpoint)
    yield client
    client.close()
    collect_leaked_sockets()


@pytest.fixture
def fresh_bucket(verifier: Any) -> Iterator[str]:
    """A bucket name nobody uses yet (not created); emptied and deleted afterwards."""
    name = f"e2e-cli-{uuid.uuid4().hex[:12]}"
    yield name
    empty_bucket(verifier, name)
