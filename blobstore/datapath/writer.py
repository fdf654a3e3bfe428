"""Erasure-coded object writes: stream bytes in, k+m shards out, chunk refs back.

``write_object`` consumes an async stream of bytes, cuts it into chunks and stripes
(``blobstore.codec.ranges``), encodes each stripe's parity in a worker thread (zfec
releases the GIL) or, for pieces short enough for the coder, on the loop (``coded``),
and streams piece ``i`` of every stripe to the chunkserver holding
shard ``i`` (one ``WriteShard`` call per shard, its body fed from a bounded pipe). The
input is cut into stripes by ``stripes.StripeSource``; the MD5 of the whole object (the
ETag) is computed off the loop, in order, by ``md5.OrderedMd5`` (unless ``etag_md5`` is
off: a caller that hashes the body itself, as the gateway does for a request announcing
Content-MD5, should not pay for it twice).

Flow control: each shard's pipe holds at most ``stripes_in_flight`` pieces; the encoder
pushes a stripe only when every live pipe has room, so the slowest shard paces the write.
A shard that stays full for ``straggler_timeout_s`` while a write quorum of the others
keeps up is abandoned (its call cancelled, its temp file discarded by the chunkserver)
and reported as missing; so is one that took all its data but sends no receipt for
``stall_timeout_s`` (a server gone silent mid-fsync, its connection not broken). Memory
is therefore about ``(stripes_in_flight + encode_ahead)`` stripes times ``(k+m)/k``,
independent of the object size, when the size is known.
With an unknown size (``size_bytes=None``) the writer must see how long a chunk is before
its shards' headers can be sent, so it reads up to one chunk ahead, and cuts such objects
into chunks of ``WriteOptions.unknown_size_chunk_bytes`` (8 MiB) rather than the layout's
(up to 64 MiB): memory is then that much more, still independent of the object size.
Callers that know the size (S3 Content-Length) pass it.

Placement may offer fewer than k+m servers (some are down or full): target ``i`` still
receives shard ``i``, and the shards past the last target -- parity, once there are k
targets -- are reported missing for repair to place later, so writes go on while a write
quorum of servers is up (DESIGN.md, failure model). Fewer targets than the quorum fail
the write before any byte is sent. Servers whose shards missed a chunk are marked in the
caller's ``ServerHealth``, which its placement may consult for the next chunks.

Success: every chunk has at least ``write_quorum`` shards durable (default k+1, capped at
k+m) with receipts whose checksum matches the checksum computed here from the pieces
sent. Failure: ``InsufficientSpace`` if that is why the quorum was lost, else
``Unavailable``; shards already written are deleted best effort (GC covers the rest).

Must not import: gateway or metadata packages.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import struct
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import xxhash

from blobstore import errors
from blobstore.codec.ec import AUTO, Buffer, ErasureCoder, get_coder, resolve_coder
from blobstore.codec.ranges import Layout, ceil_div
from blobstore.datapath.health import ServerHealth
from blobstore.datapath.md5 import OrderedMd5
from blobstore.datapath.refs import (
    ChunkRef,
    MissingShard,
    PlacementSource,
    ShardRef,
    Target,
    WriteResult,
)
from blobstore.datapath.stripes import StripeSource, coded, encode_stripe
from blobstore.log import get_logger
from blobstore.rpc.transport import Transport
from blobstore.types import Address
from chunkserver.messages import DeleteShardRequest, WriteShardRequest, WriteShardResponse

__all__ = ["WriteOptions", "write_object"]

log = get_logger(__name__)

_U64 = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """Tuning of one write (defaults suit 1 MiB stripes on a LAN)."""

    coder: str = AUTO  # a registered coder, or "auto": the preferred one (blobstore.codec)
    write_quorum: int | None = None  # shards per chunk that must be durable; None = k+1
    stripes_in_flight: int = 4  # pieces buffered per shard pipe
    encode_ahead: int = 3  # stripes being encoded ahead of the pipes
    straggler_timeout_s: float = 5.0  # a full pipe this long (quorum keeping up) is dropped
    # no quorum of shards accepting data this long: fail; also the longest wait for a
    # shard's receipt once it took all its data (then it is reported missing)
    stall_timeout_s: float = 120.0
    call_timeout_s: float = 3600.0  # deadline of one WriteShard call (a whole chunk)
    # after a quorum of receipts the rest get as long again as the quorum took, within
    # these bounds (then they are reported missing, for repair); after a lost quorum,
    # finish_grace_s (see _ChunkWrite.finish)
    finish_grace_min_s: float = 1.0
    finish_grace_s: float = 10.0
    cleanup_timeout_s: float = 5.0
    etag_md5: bool = True  # compute the object's MD5 (WriteResult.md5; None when off)
    # chunk size (whole stripes) of a write of unknown size: the read-ahead it costs
    unknown_size_chunk_bytes: int = 8 << 20

    def quorum(self, k: int, m: int) -> int:
        q = k + 1 if self.write_quorum is None else self.write_quorum
        if not k <= q <= k + m:
            raise errors.InvalidArgument(f"write quorum {q} must be in {k}..{k + m}")
        return min(q, k + m)


class _Pipe:
    """A bounded FIFO of pieces feeding one WriteShard body."""

    __slots__ = ("_data", "_items", "_last_pull", "_space", "_taken_all", "dead", "depth")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._items: collections.deque[Buffer | None] = collections.deque()
        self._data = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self.dead = False
        self._taken_all = False  # the consumer took the end of the body
        self._last_pull = asyncio.get_running_loop().time()

    def idle_since(self, now: float) -> float:
        """Seconds the consumer has left queued items untaken (0 if nothing is queued)."""
        return now - self._last_pull if self._items else 0.0

    def stall_at(self, after_s: float) -> float:
        return self._last_pull + after_s if self._items else float("inf")

    def answer_due(self, after_s: float) -> float:
        """``after_s`` past the moment the consumer took the end of the body (else inf)."""
        return self._last_pull + after_s if self._taken_all else float("inf")

    def has_room(self) -> bool:
        return self.dead or len(self._items) < self.depth

    async def wait_room(self) -> None:
        while not self.has_room():
            self._space.clear()
            await self._space.wait()

    def push(self, item: Buffer | None) -> None:
        if not self._items:
            self._last_pull = asyncio.get_running_loop().time()
        self._items.append(item)
        self._data.set()

    def kill(self) -> None:
        self.dead = True
        self._items.clear()
        self._space.set()

    async def body(self) -> AsyncIterator[Buffer]:
        while True:
            while not self._items:
                self._data.clear()
                await self._data.wait()
            item = self._items.popleft()
            self._last_pull = asyncio.get_running_loop().time()
            self._space.set()
            if item is None:
                self._taken_all = True
                return
            yield item


@dataclass(slots=True)
class _Shard:
    index: int
    target: Target
    pipe: _Pipe
    task: asyncio.Task[WriteShardResponse]
    expected: xxhash.xxh3_64
    receipt: WriteShardResponse | None = None
    error: BaseException | None = None
    settled: bool = False


class _ChunkWrite:
    """The k+m WriteShard calls of one chunk."""

    def __init__(
        self,
        index: int,
        chunk_id: uuid.UUID,
        length: int,
        layout: Layout,
        opts: WriteOptions,
        quorum: int,
        targets: Sequence[Target],
        transport: Transport,
        health: ServerHealth | None,
    ) -> None:
        self.index, self.chunk_id, self.length = index, chunk_id, length
        self.layout, self.opts, self.quorum = layout, opts, quorum
        self.transport, self.health = transport, health
        self.changed = asyncio.Event()
        self.started = asyncio.get_running_loop().time()
        self.shards: list[_Shard] = []
        for i, target in enumerate(targets):
            pipe = _Pipe(opts.stripes_in_flight)
            req = WriteShardRequest(
                chunk_id.bytes, i, layout.k, layout.m, opts.coder, layout.stripe_bytes, length
            )
            task = asyncio.create_task(
                _call_write(transport, target.addr, req, opts.call_timeout_s, pipe.body())
            )
            shard = _Shard(i, target, pipe, task, xxhash.xxh3_64())
            task.add_done_callback(functools.partial(self._done, shard))
            self.shards.append(shard)

    def _done(self, shard: _Shard, task: asyncio.Task[WriteShardResponse]) -> None:
        if shard.settled:
            return
        shard.settled = True
        shard.pipe.kill()
        if task.cancelled():
            shard.error = shard.error or asyncio.CancelledError("abandoned")
        elif task.exception() is not None:
            shard.error = task.exception()
        else:
            receipt = task.result()
            if receipt.checksum != shard.expected.intdigest() or receipt.shard_index != shard.index:
                shard.error = errors.CorruptShard(
                    f"shard {shard.index} receipt checksum {receipt.checksum:#x} does not match "
                    f"the pieces sent ({shard.expected.intdigest():#x})"
                )
            else:
                shard.receipt = receipt
        self.changed.set()

    def _settle_all(self) -> None:
        for s in self.shards:
            if s.task.done():  # its done-callback may not have run yet
                self._done(s, s.task)

    def live(self) -> list[_Shard]:
        return [s for s in self.shards if not s.pipe.dead]

    def _check_live(self) -> None:
        if len(self.live()) < self.quorum:
            raise self.failure()

    async def push(self, pieces: Sequence[Buffer], checksums: Sequence[int]) -> None:
        """Hand one stripe's pieces to the pipes once every live pipe has room."""
        loop = asyncio.get_running_loop()
        stall_at = loop.time() + self.opts.stall_timeout_s
        while True:
            self._check_live()
            lagging = [s for s in self.live() if not s.pipe.has_room()]
            if not lagging:
                break
            straggle_at = min(loop.time() + self.opts.straggler_timeout_s, stall_at)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(straggle_at):
                    for s in lagging:
                        await s.pipe.wait_room()
            lagging = [s for s in self.live() if not s.pipe.has_room()]
            if not lagging:
                break
            if len(self.live()) - len(lagging) >= self.quorum:
                self._abandon(lagging, "shard write fell behind the quorum")
            elif loop.time() >= stall_at:
                raise errors.DeadlineExceeded(
                    f"chunk {self.index}: fewer than {self.quorum} chunkservers accepted data "
                    f"for {self.opts.stall_timeout_s} s"
                )
        for s in self.live():
            s.pipe.push(pieces[s.index])
            s.expected.update(_U64.pack(checksums[s.index]))

    async def finish(self) -> tuple[ChunkRef, list[MissingShard]]:
        """End the bodies; wait for a quorum of receipts (then a grace for the rest).

        The grace after a quorum is as long as the chunk took to reach it (at least
        ``finish_grace_min_s``, at most ``finish_grace_s``): a healthy straggler finishes in
        comparable time, while a chunkserver that stopped answering (paused, black-holed,
        not yet marked suspect) costs each write about a second, not ten; its shard is
        reported missing and repaired.

        Once the quorum is out of reach the rest are still waited for (``finish_grace_s``):
        a shard that had all its data may be fsyncing, and only its receipt tells the
        failure path (``delete_written``) that there is a file to delete. Left behind, each
        failed write on a filling disk would leave up to quorum - 1 orphans until GC's
        grace period, filling the disks that still had room.
        """
        for s in self.live():
            s.pipe.push(None)
        loop = asyncio.get_running_loop()
        grace_end: float | None = None
        straggle, stall = self.opts.straggler_timeout_s, self.opts.stall_timeout_s
        while True:
            self._settle_all()
            ok = [s for s in self.shards if s.receipt is not None]
            pending = [s for s in self.shards if not s.task.done()]
            if not pending:
                break
            now = loop.time()
            if grace_end is None and len(ok) >= self.quorum:
                took = now - self.started
                opts = self.opts
                grace_end = now + min(opts.finish_grace_s, max(opts.finish_grace_min_s, took))
            elif grace_end is None and len(ok) + len(pending) < self.quorum:
                grace_end = now + self.opts.finish_grace_s
            if grace_end is not None and now >= grace_end:
                self._abandon(pending, "no receipt within the grace period")
                await asyncio.wait([s.task for s in pending])
                break
            # a shard that has not taken data for a while (peer down, dial retrying) is
            # abandoned; one that took everything and is fsyncing is waited for, up to
            # stall_timeout_s (a server that went silent without breaking the connection
            # would otherwise hold the write for the whole call timeout)
            stalled = [s for s in pending if s.pipe.idle_since(now) >= straggle]
            mute = [s for s in pending if s.pipe.answer_due(stall) <= now]
            if stalled or mute:
                self._abandon(stalled, f"took no data for {straggle} s")
                self._abandon(mute, f"no receipt {stall} s after its data")
                await asyncio.wait([s.task for s in stalled + mute])
                continue
            wakes = [min(s.pipe.stall_at(straggle), s.pipe.answer_due(stall)) for s in pending]
            if grace_end is not None:
                wakes.append(grace_end)
            wake = min(wakes)
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(wake if wake != float("inf") else None):
                    await self.changed.wait()
        self._settle_all()
        ok = [s for s in self.shards if s.receipt is not None]
        if self.health is not None:  # failed, stalled or late: the next chunks go elsewhere
            for s in self.shards:
                if s.receipt is None:
                    self.health.mark(s.target.server_id)
        if len(ok) < self.quorum:
            raise self.failure()
        ref = ChunkRef(
            chunk_id=self.chunk_id,
            coder=self.opts.coder,
            k=self.layout.k,
            m=self.layout.m,
            stripe_bytes=self.layout.stripe_bytes,
            data_length=self.length,
            shards=tuple(
                ShardRef(s.target.server_id, s.index, s.receipt.checksum)
                for s in ok
                if s.receipt is not None
            ),
        )
        missing = [
            MissingShard(self.index, self.chunk_id, s.index, s.target.server_id, _describe(s))
            for s in self.shards
            if s.receipt is None
        ]
        missing += [
            MissingShard(self.index, self.chunk_id, i, 0, "no chunkserver was available")
            for i in range(len(self.shards), self.layout.n)
        ]
        return ref, missing

    def _abandon(self, shards: Sequence[_Shard], why: str) -> None:
        for s in shards:
            log.warning(
                "abandoning a shard write",
                chunk_id=str(self.chunk_id),
                shard=s.index,
                server_id=s.target.server_id,
                reason=why,
            )
            if s.error is None:
                s.error = errors.DeadlineExceeded(why)
            s.pipe.kill()
            s.task.cancel()

    def failure(self) -> errors.BlobstoreError:
        self._settle_all()
        failed = [s for s in self.shards if s.error is not None]
        space = [s for s in failed if isinstance(s.error, errors.InsufficientSpace)]
        ok = sum(1 for s in self.shards if s.receipt is not None)
        detail = "; ".join(f"shard {s.index}@{s.target.server_id}: {_describe(s)}" for s in failed)
        msg = (
            f"chunk {self.index} ({self.chunk_id}): write quorum {self.quorum} of "
            f"{len(self.shards)} not reached ({ok} durable): {detail}"
        )
        if space and len(space) > len(self.shards) - self.quorum:
            return errors.InsufficientSpace(msg, chunk_id=str(self.chunk_id))
        return errors.Unavailable(msg, chunk_id=str(self.chunk_id))

    async def abort(self) -> None:
        for s in self.shards:
            s.pipe.kill()
            s.task.cancel()
        await asyncio.wait([s.task for s in self.shards])

    async def delete_written(self) -> None:
        async def one(s: _Shard) -> None:
            with contextlib.suppress(Exception):
                await self.transport.call(
                    s.target.addr,
                    DeleteShardRequest(self.chunk_id.bytes, s.index),
                    timeout_s=self.opts.cleanup_timeout_s,
                )

        written = [s for s in self.shards if s.receipt is not None]
        if written:
            await asyncio.gather(*(one(s) for s in written))


async def _call_write(
    transport: Transport,
    addr: Address,
    req: WriteShardRequest,
    timeout_s: float,
    body: AsyncIterator[Buffer],
) -> WriteShardResponse:
    reply = await transport.call(addr, req, timeout_s=timeout_s, body=body)
    if not isinstance(reply, WriteShardResponse):
        raise errors.ProtocolError(f"WriteShard answered {type(reply).__name__}")
    return reply


def _describe(s: _Shard) -> str:
    err = s.error
    if err is None:
        return "unknown"
    if isinstance(err, errors.BlobstoreError):
        return f"{err.code}: {err.message}"
    return f"{type(err).__name__}: {err}"


def _check_targets(targets: Sequence[Target], n: int, quorum: int, chunk_index: int) -> None:
    distinct = len({t.server_id for t in targets})
    if len(targets) > n or distinct != len(targets):
        raise errors.InternalError(
            f"placement for chunk {chunk_index} returned {len(targets)} targets "
            f"({distinct} distinct); need at most {n}, all distinct"
        )
    if len(targets) < quorum:
        raise errors.Unavailable(
            f"only {len(targets)} chunkservers are up with room; a write needs {quorum} (k+m = {n})"
        )


async def write_object(
    data: AsyncIterable[Buffer],
    *,
    layout: Layout,
    placement: PlacementSource,
    transport: Transport,
    size_bytes: int | None = None,
    options: WriteOptions | None = None,
    new_chunk_id: Callable[[], uuid.UUID] = uuid.uuid4,
    health: ServerHealth | None = None,
) -> WriteResult:
    """Erasure-code and store the bytes of ``data``; see the module docstring.

    ``health``: marked with the server of every shard that missed its chunk (see
    ``blobstore.datapath.health``), as each chunk finishes, so that a placement consulting
    it can steer the object's later chunks away.

    Buffers yielded by ``data`` must not be modified afterwards (they may be sent as is).
    """
    opts = options or WriteOptions()
    opts = dataclasses.replace(opts, coder=resolve_coder(opts.coder))  # what chunks record
    coder = get_coder(opts.coder, layout.k, layout.m)
    quorum = opts.quorum(layout.k, layout.m)
    if size_bytes is not None and size_bytes < 0:
        raise errors.InvalidArgument(f"size must be >= 0, got {size_bytes}")
    source = StripeSource(data, layout, size_bytes, opts.unknown_size_chunk_bytes)
    md5 = OrderedMd5(opts.encode_ahead + opts.stripes_in_flight) if opts.etag_md5 else None
    chunks: list[_ChunkWrite] = []
    finishing: list[asyncio.Task[tuple[ChunkRef, list[MissingShard]]]] = []
    try:
        index = 0
        while True:
            length = await source.chunk_length()
            if length == 0:
                break
            targets = await placement.allocate(index)
            _check_targets(targets, layout.n, quorum, index)
            chunk = _ChunkWrite(
                index, new_chunk_id(), length, layout, opts, quorum, targets, transport, health
            )
            chunks.append(chunk)
            await _stream_chunk(chunk, source, coder, md5, opts)
            finishing.append(asyncio.create_task(chunk.finish()))
            # bound chunks in flight; wait on unfinished ones only (a finished task in the
            # set would end every wait at once: a busy loop until the next one finished)
            while len(unfinished := [t for t in finishing if not t.done()]) > 1:
                await asyncio.wait(unfinished, return_when=asyncio.FIRST_COMPLETED)
                for t in finishing:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
            index += 1
        if size_bytes is not None:
            await source.check_end()
        results = await asyncio.gather(*finishing)
        digest = await md5.digest() if md5 is not None else None
    except BaseException:
        for t in finishing:
            t.cancel()
        await asyncio.gather(*finishing, return_exceptions=True)
        await asyncio.gather(*(c.abort() for c in chunks), return_exceptions=True)
        await asyncio.gather(*(c.delete_written() for c in chunks), return_exceptions=True)
        raise
    finally:
        if md5 is not None:
            md5.close()
    refs = tuple(r for r, _ in results)
    missing = tuple(m for _, ms in results for m in ms)
    if missing:
        log.warning("write completed without some shards", missing=len(missing))
    return WriteResult(source.consumed, digest, refs, missing)


async def _stream_chunk(
    chunk: _ChunkWrite,
    source: StripeSource,
    coder: ErasureCoder,
    md5: OrderedMd5 | None,
    opts: WriteOptions,
) -> None:
    layout = chunk.layout
    encoding: collections.deque[asyncio.Future[tuple[list[Buffer], list[int]]]] = (
        collections.deque()
    )
    remaining = chunk.length
    try:
        while remaining or encoding:
            while remaining and len(encoding) < opts.encode_ahead:
                want = min(layout.stripe_bytes, remaining)
                stripe = await source.next_stripe(want)
                remaining -= want
                if md5 is not None:
                    await md5.update(stripe)
                # ISA-L's default 256 KiB pieces are coded on the loop (``coded``): x1
                # 256 MiB writes then took 4-10% less client CPU
                piece_bytes = ceil_div(len(stripe), coder.k)
                encoding.append(coded(coder, piece_bytes, encode_stripe, coder, stripe))
            pieces, checksums = await encoding.popleft()
            await chunk.push(pieces, checksums)
    finally:
        for fut in encoding:
            fut.cancel()
