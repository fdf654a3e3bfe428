"""Repair primitive: rebuild one shard of a chunk from any k good shards, streaming.

``rebuilt_pieces(ref, shard_index, ...)`` yields piece ``shard_index`` of every stripe,
in order, rebuilt from k readable shards (the chunkserver's repair handler writes them
straight into its local store). ``rebuild_shard`` streams the same pieces into a
``WriteShard`` call on another server.

``rebuild_shard(ref, shard_index, target, ...)`` reads whole pieces of every stripe from k
readable shards (data shards first; ``ChunkReader.data_pieces`` handles failures and
decodes), re-encodes just that parity piece when the lost shard is a parity shard, and streams piece
``shard_index`` of each stripe into a ``WriteShard`` call on ``target``. Memory is a few
stripes (the write pipe is bounded like the writer's).

Because coding is deterministic, the rebuilt shard's checksum must equal the one the
catalog recorded for that shard index (when it recorded one); a mismatch raises
``CorruptShard`` and deletes the rebuilt shard. The caller (the metadata service's repair
scheduler) commits the returned ``ShardRef`` as the chunk's new placement.

Must not import: gateway or metadata packages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from blobstore import errors
from blobstore.codec.ec import Buffer, get_coder
from blobstore.codec.ranges import ChunkSpan, StripeSpan, stripe_spans
from blobstore.datapath.reader import ChunkReader, OnBadShard, ReadOptions
from blobstore.datapath.refs import BadShard, ChunkRef, ServerDirectory, ShardRef, Target
from blobstore.datapath.stripes import coded
from blobstore.log import get_logger
from blobstore.rpc.transport import Transport
from chunkserver.messages import DeleteShardRequest, WriteShardRequest, WriteShardResponse

__all__ = ["rebuild_shard", "rebuilt_pieces"]


def _ignore(_: BadShard) -> None:
    return None


log = get_logger(__name__)


def _all_stripes(ref: ChunkRef) -> list[StripeSpan]:
    if ref.data_length == 0:
        return []
    span = ChunkSpan(
        chunk=0,
        chunk_offset=0,
        chunk_len=ref.data_length,
        start=0,
        length=ref.data_length,
        first_stripe=0,
        last_stripe=(ref.data_length - 1) // ref.stripe_bytes,
    )
    return list(stripe_spans(ref.layout, span))


async def rebuilt_pieces(
    ref: ChunkRef,
    shard_index: int,
    *,
    directory: ServerDirectory,
    transport: Transport,
    options: ReadOptions | None = None,
    on_bad_shard: OnBadShard | None = None,
) -> AsyncGenerator[Buffer, None]:
    """Piece ``shard_index`` of each stripe of ``ref``, rebuilt from the other shards."""
    n = ref.k + ref.m
    if not 0 <= shard_index < n:
        raise errors.InvalidArgument(f"shard index {shard_index} outside 0..{n - 1}")
    coder = get_coder(ref.coder, ref.k, ref.m)
    reader = ChunkReader(
        ref,
        directory=directory,
        transport=transport,
        options=options,
        exclude=(shard_index,),
        on_bad_shard=on_bad_shard if on_bad_shard is not None else _ignore,
    )
    async with contextlib.aclosing(reader.data_pieces(_all_stripes(ref))) as stripes:
        async for _, data in stripes:
            if shard_index < ref.k:
                yield data[shard_index]
            else:  # data pieces are whole (padded) pieces: encode just the one parity piece
                (piece,) = await coded(coder, len(data[0]), coder.encode, data, (shard_index,))
                yield piece


async def rebuild_shard(
    ref: ChunkRef,
    shard_index: int,
    target: Target,
    *,
    directory: ServerDirectory,
    transport: Transport,
    options: ReadOptions | None = None,
    on_bad_shard: OnBadShard | None = None,
    call_timeout_s: float = 3600.0,
    pipe_depth: int = 4,
) -> ShardRef:
    """Rebuild shard ``shard_index`` of ``ref`` onto ``target``; its new ``ShardRef``."""
    if not 0 <= shard_index < ref.k + ref.m:  # before any call (the generator checks lazily)
        raise errors.InvalidArgument(f"shard index {shard_index} outside 0..{ref.k + ref.m - 1}")
    pieces = rebuilt_pieces(
        ref,
        shard_index,
        directory=directory,
        transport=transport,
        options=options,
        on_bad_shard=on_bad_shard,
    )
    queue: asyncio.Queue[Buffer | None] = asyncio.Queue(pipe_depth)

    async def produce() -> None:
        async with contextlib.aclosing(pieces) as stream:
            async for piece in stream:
                await queue.put(piece)
        await queue.put(None)

    async def body() -> AsyncIterator[Buffer]:
        while (item := await queue.get()) is not None:
            yield item

    req = WriteShardRequest(
        ref.chunk_id.bytes, shard_index, ref.k, ref.m, ref.coder, ref.stripe_bytes, ref.data_length
    )
    producer = asyncio.create_task(produce())
    call = asyncio.create_task(
        transport.call(target.addr, req, timeout_s=call_timeout_s, body=body())
    )
    try:
        await asyncio.wait([producer, call], return_when=asyncio.FIRST_EXCEPTION)
        if producer.done() and producer.exception() is not None:
            call.cancel()
            raise producer.exception()  # type: ignore[misc]
        reply = await call
        await producer
    finally:
        for t in (producer, call):
            if not t.done():
                t.cancel()
        await asyncio.gather(producer, call, return_exceptions=True)
    if not isinstance(reply, WriteShardResponse):
        raise errors.ProtocolError(f"WriteShard answered {type(reply).__name__}")
    known = ref.shard(shard_index)
    if known is not None and known.checksum != reply.checksum:
        with contextlib.suppress(errors.BlobstoreError):
            await transport.call(
                target.addr, DeleteShardRequest(ref.chunk_id.bytes, shard_index), timeout_s=10.0
            )
        raise errors.CorruptShard(
            f"rebuilt shard {shard_index} of chunk {ref.chunk_id} has checksum "
            f"{reply.checksum:#x}, the catalog recorded {known.checksum:#x}",
            chunk_id=str(ref.chunk_id),
            shard=str(shard_index),
        )
    log.info(
        "shard rebuilt",
        chunk_id=str(ref.chunk_id),
        shard=shard_index,
        server_id=target.server_id,
        bytes=reply.data_bytes,
    )
    return ShardRef(target.server_id, shard_index, reply.checksum)
