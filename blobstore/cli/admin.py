"""``blobstore admin``: cluster status, redundancy and repair, metadata membership and
chunkservers (list, drain, undrain), straight to the cluster.

Talks to the metadata service over the internal RPC with the cluster secret (defaults fit
``blobstore server``: metadata on 127.0.0.1:7001-7003, secret in ./blobstore-data).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Any

from blobstore.cli import users
from blobstore.client.catalog import RemoteCatalog
from blobstore.config import PARSERS as _PARSERS
from blobstore.config import AddressList, CommonConfig, load_secret
from blobstore.errors import BlobstoreError, ConfigError, Unavailable
from blobstore.rpc import RpcClient
from blobstore.rpc.tls import internal_contexts
from blobstore.types import Address, parse_address
from metadata.api import (
    ClusterStatusResponse,
    ListChunkserversQuery,
    ReadMode,
    RedundancyQuery,
    RepairStatusQuery,
)
from metadata.fsm.commands import SetChunkserverState
from metadata.fsm.records import ChunkserverRecord
from metadata.fsm.results import ChunkserverUpdated, RedundancySummary, RepairStatus

__all__ = ["register"]

DEFAULT_META = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _connect(args: argparse.Namespace) -> tuple[RemoteCatalog, RpcClient, list[Address]]:
    try:
        addrs: list[Address] = list(_PARSERS[AddressList](args.meta))
    except ValueError as e:
        raise ConfigError(f"--meta: {e}") from None
    secret_file = Path(args.secret_file) if args.secret_file else None
    secret = load_secret(CommonConfig(data=Path(args.data), secret_file=secret_file))
    # as in the roles: mutual TLS when the CA is set too; a certificate alone (a gateway's
    # https one, say, left in BLOBSTORE_TLS_CERT/KEY) says nothing about internal links
    if args.tls_ca and not (args.tls_cert and args.tls_key):
        raise ConfigError("--tls-ca needs --tls-cert and --tls-key (mutual TLS)")
    _, client_tls = internal_contexts(args.tls_cert, args.tls_key, args.tls_ca)
    transport = RpcClient(secret, ssl_context=client_tls, fail_fast=True)
    return RemoteCatalog(addrs, transport, slots=1), transport, addrs


def _user_connect(args: argparse.Namespace) -> tuple[RemoteCatalog, RpcClient]:
    catalog, transport, _ = _connect(args)
    return catalog, transport


async def _status(args: argparse.Namespace) -> dict[str, Any]:
    catalog, transport, addrs = _connect(args)
    try:
        nodes = await asyncio.gather(*(_node_status(catalog, addr) for addr in addrs))
        if all(n["state"] == "down" for n in nodes):  # nothing to ask: say why at once
            raise Unavailable("no metadata node answered: " + "; ".join(n["error"] for n in nodes))
        servers = await catalog.query(ListChunkserversQuery(), mode=ReadMode.LINEARIZABLE)
        assert isinstance(servers, tuple)
        doc = {"metadata": nodes, "chunkservers": [_server(s) for s in servers]}
        doc.update(await _redundancy(catalog))
        return doc
    finally:
        await transport.close()


async def _node_status(catalog: RemoteCatalog, addr: Address) -> dict[str, Any]:
    try:
        st = await catalog.status(addr, timeout_s=2)
    except BlobstoreError as e:
        return {"address": str(addr), "state": "down", "error": e.message}
    assert isinstance(st, ClusterStatusResponse)
    return {"address": str(addr), "state": "up", **asdict(st)}


async def _redundancy(catalog: RemoteCatalog) -> dict[str, Any]:
    """Redundancy summary and the leader's repair counters (#7); empty if unsupported."""
    out: dict[str, Any] = {}
    try:
        summary = await catalog.query(RedundancyQuery(), timeout_s=30)
        repair = await catalog.query(RepairStatusQuery())
    except BlobstoreError as e:
        return {"redundancy_error": e.message}
    if isinstance(summary, RedundancySummary):
        out["redundancy"] = asdict(summary)
    if isinstance(repair, RepairStatus):
        out["repair"] = asdict(repair)
    return out


def _print_redundancy(doc: dict[str, Any]) -> None:
    r, rep = doc.get("redundancy"), doc.get("repair")
    if r is None:
        if "redundancy_error" in doc:
            print(f"REDUNDANCY  unavailable ({doc['redundancy_error']})")
        return
    print("REDUNDANCY")
    print(f"  {'':<8} {'total':>8} {'full':>8} {'degraded':>9} {'at risk':>8} {'lost':>6}")
    for kind in ("objects", "chunks"):
        row = [r[f"{kind}_{col}"] for col in ("total", "full", "degraded", "at_risk", "lost")]
        print(f"  {kind:<8} {row[0]:>8} {row[1]:>8} {row[2]:>9} {row[3]:>8} {row[4]:>6}")
    print(f"  bad shards reported: {r['bad_shards']}   "
          f"repair backlog: {r['repair_backlog']} chunks")  # fmt: skip
    if rep is not None:
        print(f"  repairs: {rep['repairs_done']} done, {rep['in_flight']} running, "
              f"{rep['repairs_failed']} failed, {rep['repairs_noop']} superseded; "
              f"{_human(rep['bytes_repaired'])} rebuilt, "
              f"{_human(int(rep['repair_bytes_s']))}/s (last minute)")  # fmt: skip
    if r["scrub"]:
        print("SCRUB")
        print(f"  {'server':>16} {'pass':>5} {'done':>5} {'shards':>9} {'scrubbed':>11} "
              f"{'corrupt':>8}")  # fmt: skip
        for p in r["scrub"]:
            print(f"  {p['server_id']:>16} {p['pass_number']:>5} {p['passes_completed']:>5} "
                  f"{p['shards_scrubbed']:>9} {_human(p['bytes_scrubbed']):>11} "
                  f"{p['corrupt_found']:>8}")  # fmt: skip


def _server(s: ChunkserverRecord) -> dict[str, Any]:
    doc = asdict(s)
    doc["addr"] = str(s.addr)
    doc["state"] = str(getattr(s.state, "value", s.state))
    return doc


def _print_status(doc: dict[str, Any]) -> None:
    print("METADATA")
    print(f"  {'address':<22} {'state':<6} {'id':>3} {'role':<10} {'term':>5} "
          f"{'leader':>6} {'commit':>9} {'applied':>9}")  # fmt: skip
    for n in doc["metadata"]:
        if n["state"] != "up":
            print(f"  {n['address']:<22} {'down':<6}  ({n['error']})")
            continue
        print(f"  {n['address']:<22} {'up':<6} {n['node_id']:>3} {n['role']:<10} "
              f"{n['term']:>5} {n['leader_id']:>6} {n['commit_index']:>9} "
              f"{n['applied_index']:>9}")  # fmt: skip
    print("CHUNKSERVERS")
    print(f"  {'id':>16} {'address':<22} {'zone':<6} {'state':<9} {'capacity':>11} "
          f"{'free':>11}")  # fmt: skip
    for s in doc["chunkservers"]:
        print(f"  {s['server_id']:>16} {s['addr']:<22} {s['zone'] or '-':<6} {s['state']:<9} "
              f"{_human(s['capacity_bytes']):>11} {_human(s['free_bytes']):>11}")  # fmt: skip
    _print_redundancy(doc)


async def _members(args: argparse.Namespace) -> dict[str, Any]:
    catalog, transport, _ = _connect(args)
    try:
        if args.action == "list":
            st = await catalog.status()
            assert isinstance(st, ClusterStatusResponse)
            return asdict(st)
        if args.action == "transfer-leader":
            st = await catalog.transfer_leader(args.node_id)
            assert isinstance(st, ClusterStatusResponse)
            return asdict(st)
        address = ""
        if args.action == "add":
            if not args.address:
                raise ConfigError("members add needs the new node's HOST:PORT")
            try:
                address = str(parse_address(args.address))
            except ValueError as e:
                raise ConfigError(f"address: {e}") from None
        action = "add-learner" if args.action == "add" and args.learner else args.action
        result = await catalog.change_membership(action, args.node_id, address)
        return {"voters": list(result.voters), "learners": list(result.learners)}
    finally:
        await transport.close()


async def _chunkservers(args: argparse.Namespace) -> dict[str, Any]:
    catalog, transport, _ = _connect(args)
    try:
        if args.action != "list":
            state = {"drain": "draining", "undrain": "up"}[args.action]
            r = await catalog.execute(SetChunkserverState(args.server_id, state))  # type: ignore[arg-type]
            assert isinstance(r, ChunkserverUpdated)
            return {"chunkserver": _server(r.server)}
        servers = await catalog.query(ListChunkserversQuery())
        assert isinstance(servers, tuple)
        return {"chunkservers": [_server(s) for s in servers]}
    finally:
        await transport.close()


def _run_chunkservers(args: argparse.Namespace) -> int:
    doc = asyncio.run(_chunkservers(args))
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return 0
    rows = doc.get("chunkservers") or [doc["chunkserver"]]
    print(f"{'id':>16} {'address':<22} {'zone':<6} {'state':<9} {'capacity':>11} {'free':>11}")
    for s in rows:
        print(f"{s['server_id']:>16} {s['addr']:<22} {s['zone'] or '-':<6} {s['state']:<9} "
              f"{_human(s['capacity_bytes']):>11} {_human(s['free_bytes']):>11}")  # fmt: skip
    if args.action == "drain":
        print("draining: repair moves its shards off; state becomes 'drained' when none remain")
    return 0


def _run(
    coro: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        doc = asyncio.run(coro(args))
        if args.json or coro is not _status:
            print(json.dumps(doc, indent=2, default=str))
        else:
            _print_status(doc)
        return 0

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("admin", help="cluster administration (status, members)")
    admin.add_argument("--meta", default=DEFAULT_META, help="metadata nodes HOST:PORT,...")
    admin.add_argument("--data", default="./blobstore-data", help="local cluster data dir")
    admin.add_argument("--secret-file", help="cluster secret (default: <data>/cluster.secret)")
    admin.add_argument("--json", action="store_true", help="machine-readable output")
    tls = "for a cluster with mutual TLS (the roles' tls_ca set)"
    for flag, what in (("cert", "certificate"), ("key", "private key"), ("ca", "CA bundle")):
        admin.add_argument(
            f"--tls-{flag}",
            default=os.environ.get(f"BLOBSTORE_TLS_{flag.upper()}") or None,
            help=f"TLS {what} (PEM) {tls}; default $BLOBSTORE_TLS_{flag.upper()}",
        )
    cmds = admin.add_subparsers(dest="admin_command", metavar="COMMAND")
    cmds.required = True

    status = cmds.add_parser("status", help="metadata nodes, leader, terms, chunkservers")
    status.set_defaults(func=_run(_status))

    members = cmds.add_parser("members", help="metadata Raft membership")
    actions = members.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    actions.add_parser("list", help="members and their replication progress")
    add = actions.add_parser("add", help="add a node (start it with --join first)")
    add.add_argument("node_id", type=int)
    add.add_argument("address", help="the new node's HOST:PORT")
    add.add_argument("--learner", action="store_true", help="add as a non-voting learner")
    remove = actions.add_parser("remove", help="remove a node")
    remove.add_argument("node_id", type=int)
    transfer = actions.add_parser("transfer-leader", help="move leadership to a node")
    transfer.add_argument("node_id", type=int)
    members.set_defaults(func=_run(_members))

    servers = cmds.add_parser("chunkserver", help="chunkservers: list, drain, undrain")
    cs_actions = servers.add_subparsers(dest="action", metavar="ACTION")
    cs_actions.required = True
    cs_actions.add_parser("list", help="chunkservers and their states")
    drain = cs_actions.add_parser("drain", help="move every shard off a server, then 'drained'")
    drain.add_argument("server_id", type=int)
    undrain = cs_actions.add_parser("undrain", help="return a draining/drained server to 'up'")
    undrain.add_argument("server_id", type=int)
    servers.set_defaults(func=_run_chunkservers)

    users.register(cmds, _user_connect)  # `admin user ...` (blobstore/cli/users.py)
