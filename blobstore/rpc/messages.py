"""The RPC layer's own messages (wire tags 1-99): handshake, call envelope, ping.

Tag map: 1 = domain error (codec), 2-49 = these messages, 50-79 reserved for later RPC
internals, 80-89 for the RPC unit tests' fixture messages, 90-99 for bench/rpc_bench.py.

Handshake (mutual HMAC-SHA256 over the cluster secret, before any other frame):
  server -> client  AuthChallenge(version, server_nonce)            (32 random bytes)
  client -> server  AuthResponse(client_nonce, mac_c)
                    mac_c = HMAC(secret, b"blobstore-rpc-v1/client" + server_nonce + client_nonce)
  server -> client  AuthConfirm(mac_s)   or AuthRefused(reason) then close
                    mac_s = HMAC(secret, b"blobstore-rpc-v1/server" + client_nonce + server_nonce)
Both nonces are fresh per connection, so neither MAC can be replayed on another link.
Each side also announces its per-stream receive window (flow-control credit it grants).

Must not import: asyncio or sockets (pure values).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from blobstore.rpc.codec import register

__all__ = [
    "PROTOCOL_VERSION",
    "AuthChallenge",
    "AuthConfirm",
    "AuthRefused",
    "AuthResponse",
    "CallHeader",
    "Ping",
    "Pong",
    "client_mac",
    "server_mac",
]

PROTOCOL_VERSION = 1
_CLIENT_LABEL = b"blobstore-rpc-v1/client"
_SERVER_LABEL = b"blobstore-rpc-v1/server"


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    version: int
    server_nonce: bytes
    window: int = 0  # the server's per-stream receive window in bytes (0: default)


@dataclass(frozen=True, slots=True)
class AuthResponse:
    client_nonce: bytes
    mac: bytes
    window: int = 0  # the client's per-stream receive window in bytes (0: default)


@dataclass(frozen=True, slots=True)
class AuthConfirm:
    mac: bytes


@dataclass(frozen=True, slots=True)
class AuthRefused:
    reason: str


@dataclass(frozen=True, slots=True)
class CallHeader:
    """Envelope of every request: the caller's remaining deadline and trace id."""

    timeout_ms: int
    trace_id: str
    request: object


@dataclass(frozen=True, slots=True)
class Ping:
    """Answered by every RpcServer with a Pong carrying the same fields."""

    seq: int = 0
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Pong:
    seq: int = 0
    payload: bytes = b""


def client_mac(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """The client's proof of the cluster secret."""
    return hmac.new(secret, _CLIENT_LABEL + server_nonce + client_nonce, hashlib.sha256).digest()


def server_mac(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """The server's proof of the cluster secret (distinct label: no reflection)."""
    return hmac.new(secret, _SERVER_LABEL + client_nonce + server_nonce, hashlib.sha256).digest()


register(2, AuthChallenge)
register(3, AuthResponse)
register(4, AuthConfirm)
register(5, AuthRefused)
register(6, CallHeader)
register(7, Ping)
register(8, Pong)
