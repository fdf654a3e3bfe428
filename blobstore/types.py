"""Small value types shared by every role.

Pure: imports only the stdlib. The pure cores (Raft, catalog, placement, EC math) may import
this module and nothing else from the project.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["Address", "NodeId", "NodeInfo", "is_unspecified", "parse_address", "parse_peers"]

NodeId = int


@dataclass(frozen=True, slots=True, order=True)
class Address:
    """A TCP endpoint, host and port."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:  # IPv6 literal
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A cluster member: its id, where it listens, and its failure zone."""

    node_id: NodeId
    addr: Address
    zone: str = ""


def _valid_host(host: str) -> bool:
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if len(host) > 253:
        return False
    labels = host.rstrip(".").split(".")
    return all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isalnum() or c == "-" for c in label)
        for label in labels
    )


def is_unspecified(host: str) -> bool:
    """True for a wildcard listen host (``0.0.0.0``, ``::``): bindable, not dialable."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host == ""


def parse_address(text: str) -> Address:
    """Parse ``host:port`` (or ``[v6]:port``); raise ValueError with a readable reason."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{text!r} is not HOST:PORT (IPv6 form is [addr]:port)")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r} is not HOST:PORT (missing ':port')")
    if not _valid_host(host):
        raise ValueError(f"{text!r}: {host!r} is not a valid host name or IP address")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: port {port_text!r} is not a number in 1..65535")
    return Address(host, int(port_text))


def parse_peers(text: str) -> dict[NodeId, Address]:
    """Parse ``1=host:port,2=host:port``; ids are positive integers, unique."""
    peers: dict[NodeId, Address] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        id_text, sep, addr_text = item.partition("=")
        if not sep:
            raise ValueError(f"peer {item!r} is not ID=HOST:PORT")
        if not id_text.strip().isdigit() or int(id_text) <= 0:
            raise ValueError(f"peer {item!r}: id {id_text!r} is not a positive integer")
        node_id = int(id_text)
        if node_id in peers:
            raise ValueError(f"peer id {node_id} appears twice")
        peers[node_id] = parse_address(addr_text)
    if not peers:
        raise ValueError("no peers given (expected ID=HOST:PORT,...)")
    return peers
