"""Which address a chunkserver registers (what gateways, repair and GC dial)."""

from __future__ import annotations

import socket

import pytest

from blobstore import errors
from blobstore.config import ChunkserverConfig
from blobstore.types import Address, is_unspecified
from chunkserver.service import advertised_address


def test_explicit_advertise_wins() -> None:
    bound = Address("0.0.0.0", 7100)
    assert advertised_address(bound, Address("chunk1", 7100)) == Address("chunk1", 7100)
    assert advertised_address(Address("127.0.0.1", 7100), Address("10.0.0.5", 17100)) == Address(
        "10.0.0.5", 17100
    )


def test_a_specific_bound_address_is_advertised_as_is() -> None:
    assert advertised_address(Address("127.0.0.1", 7101), None) == Address("127.0.0.1", 7101)
    assert advertised_address(Address("::1", 7101), None) == Address("::1", 7101)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_wildcard_bind_advertises_the_host_name(host: str) -> None:
    assert advertised_address(Address(host, 7100), None) == Address(socket.gethostname(), 7100)


@pytest.mark.parametrize(
    ("host", "wild"),
    [("0.0.0.0", True), ("::", True), ("", True), ("127.0.0.1", False), ("chunk1", False)],
)
def test_is_unspecified(host: str, wild: bool) -> None:
    assert is_unspecified(host) is wild


def test_config_refuses_a_wildcard_advertise_address() -> None:
    cfg = ChunkserverConfig(meta=(Address("127.0.0.1", 7000),), advertise=Address("0.0.0.0", 1))
    with pytest.raises(errors.ConfigError, match="advertise"):
        cfg.validate()
    ChunkserverConfig(meta=(Address("127.0.0.1", 7000),), advertise=Address("h", 1)).validate()
