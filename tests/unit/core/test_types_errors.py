"""Address parsing and domain-error wire round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blobstore import errors
from blobstore.types import Address, parse_address, parse_peers


@given(st.integers(1, 65535), st.sampled_from(["127.0.0.1", "localhost", "::1", "a-b.example"]))
def test_address_round_trip(port: int, host: str) -> None:
    addr = Address(host, port)
    assert parse_address(str(addr)) == addr


@pytest.mark.parametrize("text", ["", ":", "host", "host:", "host:x", "[::1]", "-a:1", "a..b:1"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_peers() -> None:
    assert parse_peers("1=a:1, 2=b:2") == {1: Address("a", 1), 2: Address("b", 2)}
    with pytest.raises(ValueError, match="no peers"):
        parse_peers(" , ")


def _leaf_errors() -> list[type[errors.BlobstoreError]]:
    return [getattr(errors, n) for n in errors.__all__ if n not in ("from_wire",)]


@pytest.mark.parametrize("cls", _leaf_errors())
def test_error_wire_round_trip(cls: type[errors.BlobstoreError]) -> None:
    err = cls("boom", bucket="b", key="k")
    back = errors.from_wire(err.code, err.message, err.details)
    assert type(back) is cls
    assert back == err


def test_unknown_code_becomes_internal() -> None:
    back = errors.from_wire("Martian", "hi", {})
    assert isinstance(back, errors.InternalError)
    assert "Martian" in back.message
    assert errors.NotLeader.retryable and not errors.NoSuchKey.retryable
