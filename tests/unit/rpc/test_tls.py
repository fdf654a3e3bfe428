"""Optional mutual TLS on internal RPC links (``blobstore.rpc.tls``): peers whose
certificates chain to the cluster CA talk; a plain-TCP peer or one with another CA's
certificate is refused, whatever secret it holds."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from blobstore import errors
from blobstore.rpc import RpcClient, RpcServer
from blobstore.rpc.tls import build_ssl_context, internal_contexts
from blobstore.types import Address
from tests.unit.rpc.conftest import LOOPBACK, SECRET, echo
from tests.unit.rpc.fixture_messages import Echo

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl CLI")


@dataclass(frozen=True)
class Pki:
    """A CA and one leaf it signed (for 127.0.0.1, usable as server and client)."""

    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], check=True, capture_output=True)


def _pki(d: Path, name: str) -> Pki:
    d.mkdir()
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
             "-days", "2", "-subj", f"/CN={name} test CA")  # fmt: skip
    _openssl("req", *ec, "-keyout", str(d / "leaf.key"), "-out", str(d / "leaf.csr"),
             "-subj", "/CN=127.0.0.1")  # fmt: skip
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("x509", "-req", "-in", str(d / "leaf.csr"), "-CA", str(d / "ca.pem"),
             "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "leaf.pem"),
             "-days", "2", "-extfile", str(ext))  # fmt: skip
    return Pki(d / "ca.pem", d / "leaf.pem", d / "leaf.key")


@pytest.fixture(scope="module")
def cluster_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _pki(tmp_path_factory.mktemp("pki") / "cluster", "cluster")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _pki(tmp_path_factory.mktemp("pki") / "other", "other")


@pytest.fixture
async def tls_server(cluster_pki: Pki) -> AsyncIterator[tuple[RpcServer, Address]]:
    server_ctx, _ = internal_contexts(cluster_pki.cert, cluster_pki.key, cluster_pki.ca)
    server = RpcServer(SECRET, ssl_context=server_ctx)
    server.handle(Echo, echo)
    addr = await server.start(LOOPBACK)
    yield server, addr
    await server.stop()


async def _call(client: RpcClient, addr: Address) -> Echo:
    try:
        got = await client.call(addr, Echo(1, "hi"), timeout_s=2)
    finally:
        await client.close()
    assert isinstance(got, Echo)
    return got


async def test_peers_of_the_cluster_ca_talk(
    tls_server: tuple[RpcServer, Address], cluster_pki: Pki
) -> None:
    _, client_ctx = internal_contexts(cluster_pki.cert, cluster_pki.key, cluster_pki.ca)
    assert client_ctx is not None
    _, addr = tls_server
    assert await _call(RpcClient(SECRET, ssl_context=client_ctx), addr) == Echo(1, "hi!")


async def test_a_plain_tcp_peer_is_refused(tls_server: tuple[RpcServer, Address]) -> None:
    """Neither end answers the other's first bytes: the deadline names the likely cause."""
    _, addr = tls_server
    with pytest.raises(errors.DeadlineExceeded, match="handshake; connected without TLS"):
        await _call(RpcClient(SECRET, fail_fast=True), addr)


async def test_a_plain_tcp_peer_is_dropped_after_the_handshake_timeout(cluster_pki: Pki) -> None:
    server_ctx, _ = internal_contexts(cluster_pki.cert, cluster_pki.key, cluster_pki.ca)
    server = RpcServer(SECRET, ssl_context=server_ctx, handshake_timeout_s=0.2)
    server.handle(Echo, echo)
    addr = await server.start(LOOPBACK)
    try:
        with pytest.raises(errors.Unavailable, match=r"during the handshake.*without TLS"):
            await _call(RpcClient(SECRET, fail_fast=True), addr)
    finally:
        await server.stop()


async def test_a_client_certificate_of_another_ca_is_refused(
    tls_server: tuple[RpcServer, Address], cluster_pki: Pki, other_pki: Pki
) -> None:
    # the client trusts the cluster CA (so it accepts the server) but presents a
    # certificate the server cannot chain to it
    ctx = build_ssl_context(
        cert=other_pki.cert, key=other_pki.key, ca=cluster_pki.ca, server_side=False
    )
    _, addr = tls_server
    with pytest.raises((errors.Unavailable, errors.DeadlineExceeded)):
        await _call(RpcClient(SECRET, ssl_context=ctx, fail_fast=True), addr)


async def test_a_server_certificate_of_another_ca_is_refused(
    tls_server: tuple[RpcServer, Address], other_pki: Pki
) -> None:
    _, client_ctx = internal_contexts(other_pki.cert, other_pki.key, other_pki.ca)
    _, addr = tls_server
    with pytest.raises((errors.Unavailable, errors.DeadlineExceeded)):
        await _call(RpcClient(SECRET, ssl_context=client_ctx, fail_fast=True), addr)


def test_half_a_tls_configuration_is_plain_tcp(cluster_pki: Pki) -> None:
    assert internal_contexts(cluster_pki.cert, cluster_pki.key, None) == (None, None)
    assert internal_contexts(None, None, None) == (None, None)
