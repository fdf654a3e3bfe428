"""A metadata node process: the Raft node, the catalog, and the catalog RPC service.

``serve(config)`` is what ``blobstore metadata`` runs. It wires the durable stores under
``<data>/raft``, the catalog state machine, the Raft driver and an authenticated
``RpcServer`` that answers:
- ``ProposeRequest``: on the leader, replicate the command and answer with its result;
  elsewhere ``NotLeader`` naming the leader's address so clients re-route;
- ``HeartbeatRequest``: the same for a chunkserver's heartbeat, replicated only when the
  maintenance driver says the catalog must learn something (``maintenance.liveness``);
- ``QueryRequest``: linearizable by default (ReadIndex barrier, then the local catalog);
- ``ClusterStatusQuery``, ``MembershipChangeRequest``, ``TransferLeaderRequest`` (admin).
It also runs the ``MaintenanceDriver`` (failure detection, repair, drain), which acts only
while this node leads; ``RepairStatusQuery`` is answered from it.
SIGTERM/SIGINT stop it cleanly; a Raft node that fails to persist stops the process so
the supervisor restarts it from disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from blobstore.config import MetadataConfig, load_secret
from blobstore.errors import BlobstoreError, InvalidArgument, NotLeader, Unavailable
from blobstore.log import get_logger
from blobstore.obs.metadata import attach_metadata
from blobstore.obs.rpc import ObservedRpcServer, rpc_metrics
from blobstore.rpc import CallContext, RpcClient, RpcServer
from blobstore.rpc.tls import internal_contexts
from blobstore.types import Address
from metadata import wire
from metadata.api import (
    ClusterStatusQuery,
    ClusterStatusResponse,
    HeartbeatRequest,
    MembershipChangeRequest,
    MembershipChangeResponse,
    MemberStatus,
    ProposeRequest,
    ProposeResponse,
    QueryRequest,
    QueryResponse,
    ReadMode,
    RedundancyQuery,
    RepairStatusQuery,
    TransferLeaderRequest,
    run_query,
)
from metadata.fsm.codec import encode_value
from metadata.fsm.commands import ChunkserverHeartbeat
from metadata.fsm.machine import CatalogStateMachine, decode_entry
from metadata.maintenance.driver import MaintenanceDriver, MaintenanceOptions, RaftLeader
from metadata.maintenance.health import redundancy_summary
from metadata.node import NodeOptions, RaftNode
from metadata.raft.messages import ConfChange, ConfChangeType, ConfState, Message
from metadata.storage.disk import DiskLogStore, DiskSnapshotStore

__all__ = ["MetadataService", "serve"]

log = get_logger(__name__)

_MIN_TIMEOUT_S = 0.05


def _remaining(ctx: CallContext) -> float:
    return max(_MIN_TIMEOUT_S, ctx.deadline - asyncio.get_running_loop().time())


class MetadataService:
    """The RPC face of one metadata node."""

    def __init__(
        self,
        node: RaftNode,
        fsm: CatalogStateMachine,
        maintenance: MaintenanceDriver | None = None,
    ) -> None:
        self.node = node
        self.fsm = fsm
        self.maintenance = maintenance

    def install(self, server: RpcServer) -> None:
        server.on_message(Message, self.node.step)
        server.handle(ProposeRequest, self.propose)
        server.handle(HeartbeatRequest, self.heartbeat)
        server.handle(QueryRequest, self.query)
        server.handle(ClusterStatusQuery, self.status)
        server.handle(MembershipChangeRequest, self.change_membership)
        server.handle(TransferLeaderRequest, self.transfer_leader)

    def _leader_hint(self) -> NotLeader:
        lead = self.node.leader_id
        addr = self.node.peer_address(lead) if lead else None
        return NotLeader(
            "not the leader", leader_id=str(lead), leader=str(addr) if addr and lead else ""
        )

    async def propose(self, req: ProposeRequest, ctx: CallContext) -> ProposeResponse:
        if not self.node.is_leader:
            raise self._leader_hint()
        result = await self.node.propose(req.entry, timeout_s=_remaining(ctx))
        return ProposeResponse(encode_value(result), self.node.applied_index)

    async def heartbeat(self, req: HeartbeatRequest, ctx: CallContext) -> ProposeResponse:
        if not self.node.is_leader:
            raise self._leader_hint()
        try:
            command = decode_entry(req.entry).command
        except ValueError as e:
            raise InvalidArgument(f"undecodable heartbeat: {e}") from None
        if not isinstance(command, ChunkserverHeartbeat):
            raise InvalidArgument(f"not a heartbeat: {type(command).__name__}")
        noted = self.maintenance.note_heartbeat(command) if self.maintenance else None
        if noted is not None:  # nothing the catalog must learn: liveness is the leader's
            return ProposeResponse(encode_value(noted), self.node.applied_index)
        return await self.propose(ProposeRequest(req.entry), ctx)

    async def query(self, req: QueryRequest, ctx: CallContext) -> QueryResponse:
        if req.mode == ReadMode.LINEARIZABLE:
            if not self.node.is_leader:
                raise self._leader_hint()
            await self.node.read_barrier(timeout_s=_remaining(ctx))
        try:
            if isinstance(req.query, RepairStatusQuery) and self.maintenance is not None:
                answer: object = self.maintenance.status()
            elif isinstance(req.query, RedundancyQuery):
                # O(catalog): scan a frozen view in a thread, never stall the Raft loop
                view = self.fsm.catalog.snapshot_view()
                answer = await asyncio.to_thread(redundancy_summary, view)
            else:
                answer = run_query(self.fsm.catalog, req.query)  # type: ignore[arg-type]
        except BlobstoreError as e:
            answer = e
        except TypeError:
            raise InvalidArgument(f"unknown query {type(req.query).__name__}") from None
        return QueryResponse(encode_value(answer))

    async def status(self, req: ClusterStatusQuery, ctx: CallContext) -> ClusterStatusResponse:
        st = self.node.status()
        peers = self.node.peers()
        progress = dict(st.progress)
        members = []
        for node_id in sorted(set(st.conf.voters) | set(st.conf.learners)):
            p = progress.get(node_id)
            members.append(
                MemberStatus(
                    node_id=node_id,
                    address=str(peers.get(node_id, "")),
                    match_index=p.match if p else 0,
                    is_learner=node_id in st.conf.learners,
                    recent_active=p.recent_active if p else False,
                )
            )
        lead_addr = peers.get(st.lead)
        return ClusterStatusResponse(
            node_id=st.id,
            leader_id=st.lead,
            leader_address=str(lead_addr) if lead_addr else "",
            term=st.term,
            commit_index=st.commit,
            applied_index=st.applied,
            role=st.state.name.lower(),
            members=tuple(members),
        )

    async def change_membership(
        self, req: MembershipChangeRequest, ctx: CallContext
    ) -> MembershipChangeResponse:
        if not self.node.is_leader:
            raise self._leader_hint()
        kinds = {
            "add": ConfChangeType.ADD_NODE,
            "add-learner": ConfChangeType.ADD_LEARNER_NODE,
            "remove": ConfChangeType.REMOVE_NODE,
        }
        kind = kinds.get(req.action)
        if kind is None:
            raise InvalidArgument(f"unknown membership action {req.action!r}")
        if kind != ConfChangeType.REMOVE_NODE and not req.address:
            raise InvalidArgument("adding a member needs its address (HOST:PORT)")
        cc = ConfChange(kind, req.node_id, req.address.encode())
        conf = await self.node.propose_conf_change(cc, timeout_s=_remaining(ctx))
        assert isinstance(conf, ConfState)
        return MembershipChangeResponse(conf.voters, conf.learners)

    async def transfer_leader(
        self, req: TransferLeaderRequest, ctx: CallContext
    ) -> ClusterStatusResponse:
        if not self.node.is_leader:
            raise self._leader_hint()
        self.node.transfer_leadership(req.node_id)
        loop = asyncio.get_running_loop()
        while self.node.leader_id != req.node_id:
            if loop.time() > ctx.deadline - _MIN_TIMEOUT_S:
                raise Unavailable(f"leadership did not move to {req.node_id} in time")
            await asyncio.sleep(0.01)  # poll interval of a deadline-bounded wait
        return await self.status(ClusterStatusQuery(), ctx)


async def serve(config: MetadataConfig) -> None:
    """Run one metadata node until SIGTERM/SIGINT (or a fatal storage failure)."""
    wire.register_all()
    common = config.common
    secret = load_secret(common)
    raft_dir = Path(common.data) / "raft"
    raft_dir.mkdir(parents=True, exist_ok=True)
    log_store = DiskLogStore(raft_dir)
    snapshots = DiskSnapshotStore(raft_dir)
    tls, client_tls = internal_contexts(common.tls_cert, common.tls_key, common.tls_ca)
    peers: dict[int, Address] = dict(config.peers) or {config.id: config.listen}
    fsm = CatalogStateMachine()
    transport = RpcClient(secret, ssl_context=client_tls)
    options = NodeOptions(
        tick_s=config.tick_ms / 1000,
        election_ticks=config.election_ticks,
        heartbeat_ticks=config.heartbeat_ticks,
        snapshot_entries=config.snapshot_entries,
        join=config.join,
    )
    node = RaftNode(config.id, peers, log_store, snapshots, fsm, transport, options=options)
    server = ObservedRpcServer(secret, observer=rpc_metrics(), ssl_context=tls)
    repair_transport = RpcClient(secret, ssl_context=client_tls, fail_fast=True)
    maintenance = MaintenanceDriver(
        RaftLeader(node),
        fsm.catalog,
        repair_transport,
        MaintenanceOptions(
            interval_s=config.maintenance_interval_s,
            suspect_after_s=config.suspect_after_s,
            down_after_s=config.down_after_s,
            repair_concurrency=config.repair_concurrency,
            repair_mb_s=config.repair_mb_s,
            heartbeat_commit_s=config.heartbeat_commit_s,
        ),
    )
    MetadataService(node, fsm, maintenance).install(server)
    await node.start()
    maintenance.start()
    addr = await server.start(config.listen)
    detach_obs = attach_metadata(node, fsm.catalog, repair=maintenance)  # /metrics, /health/*
    log.info("metadata node serving", node=config.id, listen=str(addr), peers=len(peers))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    watchdog = asyncio.create_task(node.failure.wait())
    await asyncio.wait({waiter, watchdog}, return_when=asyncio.FIRST_COMPLETED)
    for task in (waiter, watchdog):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    log.info("metadata node stopping", node=config.id)
    detach_obs()
    await maintenance.stop()
    await repair_transport.close()
    await server.stop()
    await node.stop()
    await transport.close()
    log_store.close()
    if node.failed:
        raise SystemExit(1)
