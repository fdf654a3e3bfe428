"""Internal RPC: typed messages, one codec, framed TCP transport, simulated network.

Public names: ``codec`` functions (``register``, ``encode``, ``decode``, ``registered``,
``validate``), the ``Transport`` Protocol with its TCP (``RpcClient``/``RpcServer``) and
simulated (``SimNetwork``/``SimTransport``) implementations, and the handler-side types.

Usage::

    @dataclass(frozen=True, slots=True)
    class ReadShardRequest: ...
    register(2002, ReadShardRequest)            # once, at import of your messages module

    server = RpcServer(secret, ssl_context=ctx)
    server.handle(ReadShardRequest, read_shard)  # async (req, ctx: CallContext) -> reply
    addr = await server.start(Address("0.0.0.0", 7100))

    client = RpcClient(secret)                   # one per process; links are shared
    header, body = await client.call_stream(addr, ReadShardRequest(...), timeout_s=10)
    async for chunk in body: ...                 # memoryviews, flow-controlled
    reply = await client.call(addr, WriteShardRequest(...), timeout_s=30, body=chunks())
"""

from blobstore.rpc.client import RpcClient
from blobstore.rpc.codec import decode, encode, message, register, registered, tag_of, validate
from blobstore.rpc.link import StreamBudget
from blobstore.rpc.messages import Ping, Pong
from blobstore.rpc.server import RpcServer
from blobstore.rpc.sim import SimNetwork, SimStats, SimTransport, TraceEntry
from blobstore.rpc.tls import build_ssl_context
from blobstore.rpc.transport import (
    BodyChunk,
    CallContext,
    Handler,
    MessageHandler,
    StreamResponse,
    Transport,
    empty_body,
)

__all__ = [
    "BodyChunk",
    "CallContext",
    "Handler",
    "MessageHandler",
    "Ping",
    "Pong",
    "RpcClient",
    "RpcServer",
    "SimNetwork",
    "SimStats",
    "SimTransport",
    "StreamBudget",
    "StreamResponse",
    "TraceEntry",
    "Transport",
    "build_ssl_context",
    "decode",
    "empty_body",
    "encode",
    "message",
    "register",
    "registered",
    "tag_of",
    "validate",
]
