"""``blobstore server``: a complete cluster on one machine under one supervisor.

Layout of the data directory::

    DATA/cluster.secret        internal-RPC secret (0600), generated on first start
    DATA/credentials.toml      admin access key and secret (0600), generated on first start
                               or taken from BLOBSTORE_ROOT_ACCESS_KEY/_SECRET_KEY
    DATA/meta-N/               metadata node N (Raft log, snapshots)
    DATA/chunk-N/              chunkserver N (shard files)
    DATA/logs/ROLE.log         each role's log
    DATA/gateway/metrics-mp/   the gateway workers' Prometheus files (emptied at start)

Every role serves ``/metrics``, ``/health/live`` and ``/health/ready`` over plain HTTP on
its port + ``--http-offset`` (default 1000: metadata 8001-8003, chunkservers 8101-8106,
gateway 10000); the banner lists them. ``--http-offset 0`` turns them off.

Later starts reuse the secret and credentials and bring back every object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import string
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from blobstore.durable import write_atomic
from blobstore.errors import ConfigError
from blobstore.log import configure_logging, get_logger
from blobstore.supervisor import RoleSpec, Supervisor, tcp_ready

__all__ = ["Credentials", "load_or_create_credentials", "load_or_create_secret", "register"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str


def _write_private(path: Path, text: str) -> None:
    write_atomic(path, text.encode(), 0o600)


def load_or_create_secret(data: Path) -> Path:
    """The cluster secret file, created (0600) on first start."""
    path = data / "cluster.secret"
    if not path.exists():
        _write_private(path, secrets.token_hex(32) + "\n")
    return path


def load_or_create_credentials(data: Path, env: dict[str, str] | None = None) -> Credentials:
    """Admin credentials: from the environment, else the stored file, else new ones."""
    env = dict(os.environ) if env is None else env
    path = data / "credentials.toml"
    ak, sk = env.get("BLOBSTORE_ROOT_ACCESS_KEY"), env.get("BLOBSTORE_ROOT_SECRET_KEY")
    if (ak is None) != (sk is None):
        raise ConfigError("set both BLOBSTORE_ROOT_ACCESS_KEY and BLOBSTORE_ROOT_SECRET_KEY")
    if ak is not None and sk is not None:
        if not 3 <= len(ak) <= 128 or len(sk) < 8:
            raise ConfigError("root access key needs 3-128 chars, secret key at least 8")
        creds = Credentials(ak, sk)
    elif path.exists():
        try:
            doc = tomllib.loads(path.read_text())
            return Credentials(doc["access_key"], doc["secret_key"])
        except (tomllib.TOMLDecodeError, KeyError) as e:
            raise ConfigError(f"{path}: unreadable credentials ({e})") from None
    else:
        alphabet = string.ascii_uppercase + string.digits
        creds = Credentials(
            "BS" + "".join(secrets.choice(alphabet) for _ in range(18)), secrets.token_urlsafe(30)
        )
    _write_private(path, f'access_key = "{creds.access_key}"\nsecret_key = "{creds.secret_key}"\n')
    return creds


def _role_specs(
    args: argparse.Namespace, data: Path, secret: Path, creds: Credentials
) -> list[RoleSpec]:
    exe = [sys.executable, "-m", "blobstore"]
    common = ["--secret-file", str(secret), "--log-format", args.log_format]
    if args.tls_ca:  # mutual TLS between every role: all present the one certificate
        common += ["--tls-cert", str(Path(args.tls_cert).resolve())]
        common += ["--tls-key", str(Path(args.tls_key).resolve())]
        common += ["--tls-ca", str(Path(args.tls_ca).resolve())]
    meta_ports = [args.meta_port + i for i in range(args.metadata)]
    meta_addrs = ",".join(f"127.0.0.1:{p}" for p in meta_ports)
    peers = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(meta_ports))
    specs: list[RoleSpec] = []

    def http(port: int) -> list[str]:  # /metrics + /health/* (blobstore.obs)
        listen = f"127.0.0.1:{port + args.http_offset}" if args.http_offset else "off"
        return ["--http-listen", listen]

    for i, port in enumerate(meta_ports):
        specs.append(
            RoleSpec(
                f"meta-{i + 1}",
                [
                    *exe,
                    "metadata",
                    "--id",
                    str(i + 1),
                    "--listen",
                    f"127.0.0.1:{port}",
                    "--peers",
                    peers,
                    "--data",
                    str(data / f"meta-{i + 1}"),
                    *common,
                    *http(port),
                ],
                data / "logs" / f"meta-{i + 1}.log",
                ready=tcp_ready("127.0.0.1", port),
            )
        )
    for i in range(args.chunkservers):
        port = args.chunk_port + i
        specs.append(
            RoleSpec(
                f"chunk-{i + 1}",
                [
                    *exe,
                    "chunkserver",
                    "--listen",
                    f"127.0.0.1:{port}",
                    "--meta",
                    meta_addrs,
                    "--data",
                    str(data / f"chunk-{i + 1}"),
                    *common,
                    *http(port),
                ],
                data / "logs" / f"chunk-{i + 1}.log",
                ready=tcp_ready("127.0.0.1", port),
            )
        )
    host, _, port_text = args.listen.rpartition(":")
    tls: list[str] = []
    if args.tls_cert:  # the S3 endpoint's certificate
        tls = ["--https-cert", str(Path(args.tls_cert).resolve())]
        tls += ["--https-key", str(Path(args.tls_key).resolve())]
    specs.append(
        RoleSpec(
            "gateway",
            [
                *exe,
                "gateway",
                "--listen",
                args.listen,
                "--meta",
                meta_addrs,
                "--data",
                str(data / "gateway"),
                *common,
                *tls,
                *http(int(port_text)),
            ],
            data / "logs" / "gateway.log",
            ready=tcp_ready(host, int(port_text)),
            # The gateway makes sure the admin user exists in the catalog at start.
            env={
                "BLOBSTORE_ROOT_ACCESS_KEY": creds.access_key,
                "BLOBSTORE_ROOT_SECRET_KEY": creds.secret_key,
            },
        )
    )
    return specs


def _http_ports(args: argparse.Namespace) -> str:
    """The banner's list of /metrics + /health ports (one per process)."""
    off = args.http_offset
    if not off:
        return "off (--http-offset 0)"
    meta = [args.meta_port + i + off for i in range(args.metadata)]
    chunk = [args.chunk_port + i + off for i in range(args.chunkservers)]
    gateway = int(args.listen.rpartition(":")[2]) + off
    return (
        f"http://127.0.0.1:PORT/metrics, /health/live, /health/ready\n"
        f"                metadata {','.join(map(str, meta))}\n"
        f"                chunkservers {','.join(map(str, chunk))}\n"
        f"                gateway {gateway}"
    )


def _banner(
    processes: int, data: Path, endpoint: str, creds: Credentials, metrics: str = ""
) -> str:
    return f"""blobstore is running ({processes} processes); data in {data}
  S3 endpoint:  {endpoint}
  web console:  {endpoint}/_console  (log in with the access key and secret key)
  access key:   {creds.access_key}
  secret key:   {creds.secret_key}
  logs:         {data / "logs"}
  metrics:      {metrics}

Try it (in another shell):
  export AWS_ACCESS_KEY_ID={creds.access_key} AWS_SECRET_ACCESS_KEY={creds.secret_key}
  aws --endpoint-url {endpoint} s3 mb s3://demo
  aws --endpoint-url {endpoint} s3 cp ./some-file s3://demo/
  rclone copy ./some-dir ':s3,provider=Other,env_auth=true,endpoint="{endpoint}":demo/some-dir'
  restic -r s3:{endpoint}/backups init      # then: restic -r ... backup ./some-dir
Press Ctrl-C to stop."""


async def _serve(args: argparse.Namespace, data: Path, creds: Credentials, secret: Path) -> int:
    specs = _role_specs(args, data, secret, creds)
    sup = Supervisor(specs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sup.start(ready_timeout_s=args.ready_timeout)
        await _wait_chunkservers(args, secret, args.ready_timeout)
    except TimeoutError as e:
        print(f"error: {e}; see the logs in {data / 'logs'}", file=sys.stderr)
        await sup.stop()
        return 1
    endpoint = f"{'https' if args.tls_cert else 'http'}://{args.listen}"
    print(_banner(len(specs), data, endpoint, creds, _http_ports(args)), flush=True)
    await stop.wait()
    print("stopping...", flush=True)
    await sup.stop()
    return 0


async def _wait_chunkservers(args: argparse.Namespace, secret_file: Path, timeout_s: float) -> None:
    """Ready means writable: every chunkserver has registered with the metadata service."""
    # Imported here: every `blobstore` command imports this module, few need the catalog.
    from blobstore.client.catalog import RemoteCatalog
    from blobstore.config import CommonConfig, load_secret
    from blobstore.errors import BlobstoreError
    from blobstore.rpc import RpcClient
    from blobstore.rpc.tls import internal_contexts
    from blobstore.types import Address
    from metadata.api import ListChunkserversQuery

    secret = load_secret(CommonConfig(data=secret_file.parent, secret_file=secret_file))
    addrs = [Address("127.0.0.1", args.meta_port + i) for i in range(args.metadata)]
    _, client_tls = internal_contexts(args.tls_cert, args.tls_key, args.tls_ca)
    transport = RpcClient(secret, ssl_context=client_tls, fail_fast=True)
    catalog = RemoteCatalog(addrs, transport, slots=1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while True:
            try:
                servers = await catalog.query(ListChunkserversQuery(), timeout_s=5)
                assert isinstance(servers, tuple)
                if sum(1 for s in servers if s.state == "up") >= args.chunkservers:
                    return
            except BlobstoreError:
                pass
            if loop.time() > deadline:
                raise TimeoutError(f"chunkservers did not register within {timeout_s:.0f}s")
            await asyncio.sleep(0.1)  # poll interval of a deadline-bounded wait
    finally:
        await transport.close()


def _run(args: argparse.Namespace) -> int:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    if args.tls_ca and not args.tls_cert:
        raise ConfigError("--tls-ca needs --tls-cert and --tls-key (every role presents them)")
    configure_logging(args.log_format, "info")
    data = Path(args.data).resolve()
    data.mkdir(parents=True, exist_ok=True)
    secret = load_or_create_secret(data)
    creds = load_or_create_credentials(data)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(args, data, creds, secret))
    return 130


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("server", help="run a whole local cluster (S3 on 127.0.0.1:9000)")
    p.add_argument("--data", default="./blobstore-data", help="data directory")
    p.add_argument("--listen", default="127.0.0.1:9000", help="S3 endpoint HOST:PORT")
    p.add_argument("--metadata", type=int, default=3, help="metadata nodes")
    p.add_argument("--chunkservers", type=int, default=6, help="chunkservers")
    p.add_argument("--meta-port", type=int, default=7001, help="first metadata port")
    p.add_argument("--chunk-port", type=int, default=7101, help="first chunkserver port")
    p.add_argument(
        "--http-offset",
        type=int,
        default=1000,
        help="/metrics and /health/* on each role's port + this (0: off)",
    )
    p.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait for ready")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--tls-cert", help="serve S3 over https with this certificate (PEM)")
    p.add_argument("--tls-key", help="private key (PEM) for --tls-cert")
    p.add_argument(
        "--tls-ca",
        help="also mutual TLS between the roles: each presents --tls-cert (valid for "
        "127.0.0.1), and peers must chain to this CA bundle (PEM)",
    )
    p.set_defaults(func=_run)
