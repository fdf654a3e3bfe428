"""Erasure-coded reads: any byte range of an object, streamed, degraded when needed.

``read_range(chunks, start, length, ...)`` yields the bytes of ``[start, start+length)``
of the object described by ``chunks`` (chunk offsets are the running sum of their
lengths), in order, as ``memoryview`` s of the received frames (no copy: a
piece's bytes go from the socket into their buffer and on to the caller; buffers are
never reused, so a view stays valid as long as the caller keeps it). All views of a
stripe are yielded together, once the whole stripe portion arrived.

Healthy path: the stripes of a chunk are read in runs of ``run_stripes``; for each run,
every data shard the range touches gets ONE ranged ``ReadShard`` call covering exactly
its needed bytes of the run (for one data shard those bytes are contiguous in its shard
data), all in parallel. A stripe is yielded only once all its slices arrived, so no
partial stripe is ever emitted (a failure mid-run re-reads from the first stripe not
yet yielded).

End to end: the calls ask for piece checksums (``ReadOptions.checksums``), and every
piece a call covers whole is checked again on arrival (``piececheck``) before any of its
bytes is used: a piece changed after its chunkserver's own check (its memory, a bug, the
network) fails that shard as ``CORRUPT``, and the read goes on around it.

Degraded path: when a slice fails (``CorruptShard``, ``NoSuchShard``, connection loss,
deadline), that shard is given up on and the rest of the run is re-read as whole pieces
from k other shards (data shards first, then parity), decoded in a worker thread (on the
loop when the pieces are short enough for the coder: ``stripes.coded``).

Hedging races, it does not switch: when a slice lags longer than ``hedge_delay_s``, the
rest of the run is read as whole pieces from the same k shards *plus* a spare (parity)
shard, and every stripe uses whichever k pieces arrive first (data preferred: a late data
shard that catches up spares the decode). Each further ``hedge_delay_s`` a stripe waits
adds another spare. A shard is dropped only when it fails or falls several stripes
behind the race (reported ``SLOW`` then, unless it was a hedge that lost). Every shard
given up on is reported once through ``on_bad_shard`` with its reason. Only when fewer
than k shards of a chunk can be read does the read fail (``Unavailable``). A shard that
lagged a whole hedge delay marks its server in ``ServerHealth`` even if the read then
completes without dropping it: later reads ask that server last, so a paused or
black-holed chunkserver (calls that neither answer nor fail) costs one hedge delay, not
one per read of a small object.

Runs are pipelined: once half of a run has been consumed, the next run's calls are opened
(the next chunk's first run, at the end of a chunk), so the chunkservers are already
reading it when the reader gets there.

Memory: the calls of a run are bounded by the RPC stream windows (k streams); at most
two runs' calls are open per read, plus one stripe being assembled or decoded.

Must not import: gateway or metadata packages.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from blobstore import errors
from blobstore.codec.ec import Buffer, ErasureCoder, get_coder
from blobstore.codec.ranges import StripeSpan, chunk_spans, piece_segments, stripe_spans
from blobstore.datapath.health import ServerHealth
from blobstore.datapath.piececheck import PieceCheck, PieceMismatch
from blobstore.datapath.refs import BadShard, BadShardReason, ChunkRef, ServerDirectory
from blobstore.datapath.stripes import coded
from blobstore.log import get_logger
from blobstore.rpc.transport import Transport
from blobstore.types import Address
from chunkserver.messages import ReadShardRequest, ReadShardResponse

__all__ = [
    "ChunkReader",
    "OnBadShard",
    "ReadOptions",
    "object_size",
    "read_range",
]

log = get_logger(__name__)

OnBadShard = Callable[[BadShard], None]


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """Tuning of reads."""

    hedge_delay_s: float = 0.5  # a stripe waiting this long gets a spare shard racing
    call_timeout_s: float = 120.0  # deadline of one ranged ReadShard call (one run)
    # stripes covered by one ranged call per shard: 32 x 256 KiB pieces (4+2, 1 MiB
    # stripes) = one 8 MiB stream window; healthy reads of 256 MiB objects ran 5-15%
    # faster than with 16 (fewer calls to open), and no faster with 64, which would
    # leave up to a whole chunk to the slower hedged path after one slow piece
    run_stripes: int = 32
    cache: bool = True  # False: bytes read once (repair); see ReadShardRequest.cache
    # whole pieces checked again on arrival, end to end (see blobstore.datapath.piececheck)
    checksums: bool = True


def _ignore(_: BadShard) -> None:
    return None


def object_size(chunks: Sequence[ChunkRef]) -> int:
    """Bytes of the object made of ``chunks``."""
    return sum(c.data_length for c in chunks)


class _Failed(Exception):
    """Internal: shard ``index`` could not deliver (reason, cause)."""

    def __init__(self, index: int, reason: BadShardReason, cause: BaseException | str) -> None:
        super().__init__(f"shard {index}: {reason.value}: {cause}")
        self.index, self.reason, self.cause = index, reason, cause


def _classify(exc: BaseException) -> BadShardReason:
    if isinstance(exc, errors.CorruptShard):
        return BadShardReason.CORRUPT
    if isinstance(exc, errors.NoSuchShard):
        return BadShardReason.MISSING
    return BadShardReason.UNREACHABLE


class _Stream:
    """Exact-length reads from one ranged ReadShard call (opened in the background).

    When the chunkserver grants ``checksums`` (the request asks unless
    ``ReadOptions.checksums`` is off), whole pieces are checked again as they arrive
    (``PieceCheck``) and none of a piece's bytes is handed on before its check.
    """

    __slots__ = ("_body", "_check", "_open", "_ready", "_segments", "index")

    def __init__(
        self,
        index: int,
        transport: Transport,
        addr: Address,
        req: ReadShardRequest,
        timeout_s: float,
        segments: Iterable[tuple[int, bool]],
    ) -> None:
        self.index = index
        self._open = asyncio.ensure_future(transport.call_stream(addr, req, timeout_s=timeout_s))
        self._body: AsyncIterator[memoryview] | None = None
        self._segments = segments  # the range piece by piece (read only if checks are on)
        self._check: PieceCheck | None = None
        self._ready: collections.deque[memoryview] = collections.deque()

    async def take(self, n: int) -> list[memoryview]:
        """Exactly the next ``n`` bytes, as views (raises ``_Failed``)."""
        parts: list[memoryview] = []
        ready = self._ready
        try:
            body: AsyncIterator[memoryview]
            if self._body is None:
                header, body = await asyncio.shield(self._open)
                self._body = body
                if isinstance(header, ReadShardResponse) and header.checksums:
                    self._check = PieceCheck(self._segments)
            else:
                body = self._body
            while n:
                if not ready:
                    got = await anext(body)
                    if self._check is None:
                        ready.append(got)
                    else:
                        ready.extend(self._check.feed(got))
                    continue
                head = ready[0]
                part = head[:n]
                if len(part) == len(head):
                    ready.popleft()
                else:
                    ready[0] = head[len(part) :]
                if part:
                    parts.append(part)
                    n -= len(part)
        except StopAsyncIteration:
            raise _Failed(self.index, BadShardReason.CORRUPT, "stream ended early") from None
        except PieceMismatch as exc:
            raise _Failed(self.index, BadShardReason.CORRUPT, f"on arrival: {exc}") from None
        except errors.BlobstoreError as exc:
            raise _Failed(self.index, _classify(exc), exc) from None
        except OSError as exc:
            raise _Failed(self.index, BadShardReason.UNREACHABLE, exc) from None
        return parts

    async def close(self) -> None:
        if not self._open.done():
            self._open.cancel()
            with contextlib.suppress(BaseException):
                await self._open
            return
        if self._open.cancelled() or self._open.exception() is not None:
            return
        body = self._body if self._body is not None else self._open.result()[1]
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def _take(stream: _Stream, n: int, timeout_s: float | None) -> list[memoryview]:
    if timeout_s is None:
        return await stream.take(n)
    try:
        async with asyncio.timeout(timeout_s):
            return await stream.take(n)
    except TimeoutError:
        raise _Failed(stream.index, BadShardReason.SLOW, f"no data for {timeout_s} s") from None


_LAG_STRIPES = 4  # a racer this many stripes behind the assembled ones is dropped


class _Racer:
    """One shard's whole pieces of a run, fetched in the background for a race.

    Keeps the pieces of stripes not yet assembled (at most ``_LAG_STRIPES`` ahead of the
    reader); pieces of stripes assembled without it are read and dropped (the stream is
    sequential). Sets ``wake`` on every piece and on failure.
    """

    __slots__ = (
        "_floor",
        "_limit",
        "_room",
        "_stream",
        "_task",
        "_wake",
        "failed",
        "hedge",
        "index",
        "next",
        "pieces",
        "started",
    )

    def __init__(
        self,
        stream: _Stream,
        run: Sequence[StripeSpan],
        at: int,
        wake: asyncio.Event,
        *,
        hedge: bool,
    ) -> None:
        self.index = stream.index
        self.hedge = hedge  # joined as a hedge (a lost hedge is not a bad shard)
        self.started = asyncio.get_running_loop().time()
        self.next = at  # next stripe (index in the run) this stream delivers
        self.pieces: dict[int, Buffer] = {}
        self.failed: _Failed | None = None
        self._stream = stream
        self._wake = wake
        self._floor = at
        self._limit = at + _LAG_STRIPES
        self._room = asyncio.Event()
        self._task = asyncio.ensure_future(self._fetch(run))

    async def _fetch(self, run: Sequence[StripeSpan]) -> None:
        try:
            while self.next < len(run):
                while self.next >= self._limit:
                    self._room.clear()
                    await self._room.wait()
                piece = _join(await self._stream.take(run[self.next].piece_len))
                if self.next >= self._floor:
                    self.pieces[self.next] = piece
                self.next += 1
                self._wake.set()
        except _Failed as f:
            self.failed = f
            self._wake.set()

    def advance(self, floor: int) -> None:
        """Stripes below ``floor`` are assembled: drop their pieces, allow fetching on."""
        self._floor = floor
        for i in [i for i in self.pieces if i < floor]:
            del self.pieces[i]
        self._limit = floor + _LAG_STRIPES
        self._room.set()

    async def close(self) -> None:
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
        await self._stream.close()


def _decode(coder: ErasureCoder, pieces: dict[int, Buffer]) -> list[Buffer]:
    return list(coder.decode(list(pieces.items())))


class ChunkReader:
    """Reads one chunk's bytes or data pieces, tolerating up to m bad shards."""

    def __init__(
        self,
        ref: ChunkRef,
        *,
        directory: ServerDirectory,
        transport: Transport,
        options: ReadOptions | None = None,
        on_bad_shard: OnBadShard = _ignore,
        exclude: Sequence[int] = (),
        health: ServerHealth | None = None,
    ) -> None:
        self.ref = ref
        # servers found slow or unreachable lately: asked last, not first
        self.health = health if health is not None else ServerHealth()
        self._opts = options or ReadOptions()
        self._transport = transport
        self._on_bad = on_bad_shard
        self._coder = get_coder(ref.coder, ref.k, ref.m)
        self._where: dict[int, tuple[int, Address]] = {}
        self.bad: set[int] = set(exclude)
        self._lagging: set[int] = set()  # shards this read marked in ``health``
        self._prefetched: _Prefetched | None = None  # a read whose first run is open
        for s in ref.shards:
            addr = directory.address_of(s.server_id)
            if addr is None:
                self._give_up(s.shard_index, BadShardReason.MISSING, "server address unknown")
            else:
                self._where[s.shard_index] = (s.server_id, addr)

    # -- bookkeeping --------------------------------------------------------------------
    def _give_up(self, index: int, reason: BadShardReason, cause: BaseException | str) -> None:
        if index in self.bad:
            return
        self.bad.add(index)
        server = self.ref.shard(index)
        if reason in (BadShardReason.SLOW, BadShardReason.UNREACHABLE):
            self._lagged(index)
        bad = BadShard(
            self.ref.chunk_id, index, server.server_id if server else -1, reason, str(cause)
        )
        log.info(
            "read gave up on a shard",
            chunk_id=str(self.ref.chunk_id),
            shard=index,
            reason=reason.value,
            error=str(cause),
        )
        self._on_bad(bad)

    def _lagged(self, index: int) -> None:
        """Shard ``index`` was slow or unreachable: other reads ask its server last for a
        while. This one goes on racing it (a late data shard spares the decode)."""
        server = self.ref.shard(index)
        if server is not None:
            self.health.mark(server.server_id)
            self._lagging.add(index)

    def usable(self) -> list[int]:
        """Shard indexes still worth asking: data shards first, avoided servers last."""
        ok = [i for i in range(self.ref.k + self.ref.m) if i in self._where and i not in self.bad]
        return sorted(ok, key=self._avoided)

    def _avoided(self, index: int) -> bool:
        """Marked in the shared health by another read (this read's own marks excepted)."""
        return (
            index in self._where
            and index not in self._lagging
            and self.health.is_avoided(self._where[index][0])
        )

    def _open(self, index: int, offset: int, length: int) -> _Stream:
        _, addr = self._where[index]
        ref, opts = self.ref, self._opts
        cid = ref.chunk_id.bytes
        req = ReadShardRequest(cid, index, offset, length, opts.cache, opts.checksums)
        segments = piece_segments(ref.layout, ref.data_length, offset, length)
        return _Stream(index, self._transport, addr, req, opts.call_timeout_s, segments)

    # -- object bytes -------------------------------------------------------------------
    async def read(
        self, start: int, length: int, *, on_last_run: Callable[[], None] | None = None
    ) -> AsyncGenerator[memoryview, None]:
        """Bytes ``[start, start + length)`` of the chunk, as views (see the module doc).

        Once half of a run is consumed, the next run's ranged calls are opened, so the
        chunkservers are not idle between runs (a run boundary would otherwise cost a
        round trip plus a file open and first read on every shard) while at most one run
        and a half per read is in flight. ``on_last_run`` is called at that point of the
        last run: ``read_range`` opens the next chunk's first run then (``prefetch``).
        """
        pre, self._prefetched = self._prefetched, None
        if pre is not None and (pre.start, pre.length) == (start, length):
            runs, opened = pre.runs, pre.opened
        else:
            if pre is not None and pre.opened is not None:  # opened for another range
                await _close_all(pre.opened)
            runs = self._runs(start, length)
            opened = self._open_run(runs[0]) if runs else None
        for i, run in enumerate(runs):
            ahead = _Ahead(self, runs[i + 1] if i + 1 < len(runs) else None, on_last_run)
            try:
                async with contextlib.aclosing(self._read_run(run, opened, ahead)) as blocks:
                    async for block in blocks:
                        yield block
                ahead()
            except BaseException:
                if ahead.opened is not None:
                    await _close_all(ahead.opened)
                raise
            opened = ahead.opened

    def prefetch(self, start: int, length: int) -> None:
        """Open the first run of ``read(start, length)`` now; ``read`` picks it up (else
        ``drop_prefetch`` closes it)."""
        if self._prefetched is None:
            runs = self._runs(start, length)
            opened = self._open_run(runs[0]) if runs else None
            self._prefetched = _Prefetched(start, length, runs, opened)

    async def drop_prefetch(self) -> None:
        got, self._prefetched = self._prefetched, None
        if got is not None and got.opened is not None:
            await _close_all(got.opened)

    def _runs(self, start: int, length: int) -> list[list[StripeSpan]]:
        """The runs of ``run_stripes`` consecutive stripes covering the range."""
        runs: list[list[StripeSpan]] = []
        for span in chunk_spans(self.ref.layout, self.ref.data_length, start, length):
            stripes = stripe_spans(self.ref.layout, span)
            while run := list(itertools.islice(stripes, self._opts.run_stripes)):
                runs.append(run)
        return runs

    def _open_run(self, run: list[StripeSpan]) -> dict[int, _Stream] | None:
        """One ranged call per data shard the run touches, or None if one of those shards
        is bad or avoided (the run is then read whole pieces, racing, possibly degraded)."""
        touched = {sl.shard for sp in run for sl in sp.slices}
        if touched & self.bad or not touched <= set(self._where):
            return None
        if any(self._avoided(j) for j in touched):
            return None
        ranges: dict[int, list[int]] = {}
        for sp in run:
            for sl in sp.slices:
                lo_hi = ranges.setdefault(sl.shard, [sl.offset, sl.offset + sl.length])
                lo_hi[0] = min(lo_hi[0], sl.offset)
                lo_hi[1] = max(lo_hi[1], sl.offset + sl.length)
        return {j: self._open(j, lo, hi - lo) for j, (lo, hi) in ranges.items()}

    async def _read_run(
        self, run: list[StripeSpan], opened: dict[int, _Stream] | None, halfway: Callable[[], None]
    ) -> AsyncGenerator[memoryview, None]:
        """The bytes of one run; ``halfway()`` is called once half of it was yielded (at
        once if the run has to race whole pieces)."""
        done = 0
        hedge_now = False
        if opened is not None and set(opened) & self.bad:  # given up on since it was opened
            await _close_all(opened)
            opened = None
        if opened is not None:
            try:
                async with contextlib.aclosing(self._sliced(run, opened)) as sliced:
                    async for parts in sliced:  # a whole stripe portion: no partial stripe
                        done += 1
                        for part in parts:
                            yield part
                        if 2 * done >= len(run):
                            halfway()
                return
            except _Failed as f:
                if f.reason is BadShardReason.SLOW:
                    hedge_now = True  # race the laggard against a spare, do not drop it
                    self._lagged(f.index)
                else:
                    self._give_up(f.index, f.reason, f.cause)
        halfway()
        pieces = self.data_pieces(run[done:], hedge_now=hedge_now)
        async with contextlib.aclosing(pieces) as stripes:
            async for sp, data in stripes:
                for part in _cut(sp, data):
                    yield part

    async def _sliced(
        self, run: list[StripeSpan], streams: dict[int, _Stream]
    ) -> AsyncGenerator[list[memoryview], None]:
        hedge = self._opts.hedge_delay_s if len(self.usable()) > self.ref.k else None
        try:
            for sp in run:
                parts: list[memoryview] = []
                for sl in sp.slices:
                    parts.extend(await _take(streams[sl.shard], sl.length, hedge))
                yield parts
        finally:
            await _close_all(streams)

    # -- data pieces (degraded reads, repair) -------------------------------------------
    async def data_pieces(
        self, run: Sequence[StripeSpan], *, decode_ahead: int = 2, hedge_now: bool = False
    ) -> AsyncGenerator[tuple[StripeSpan, list[Buffer]], None]:
        """For each stripe of ``run`` (consecutive), its k data pieces, decoding if needed.

        Shards race: k readable shards (data first) stream whole pieces of the run; when a
        stripe is not complete ``hedge_delay_s`` after the reader began waiting for it, a
        spare shard (parity, or another data shard) joins the race from that stripe on,
        and each stripe uses whichever k pieces arrived first (data pieces preferred, so a
        late data shard that catches up spares the decode). A shard that fails is given
        up on (reported) and replaced; one that falls ``_LAG_STRIPES`` behind the stripes
        already assembled is dropped: reported ``SLOW`` unless it was a hedge that lost.
        ``hedge_now`` starts one hedge at once (the caller already waited a hedge delay).

        Decoding runs in worker threads (inline for short pieces: ``stripes.coded``), up to
        ``decode_ahead`` stripes behind the fetch, so fetching and decoding overlap.
        Memory: each racer buffers at most ``_LAG_STRIPES`` pieces beyond the stripe being
        assembled.
        """
        k = self.ref.k
        loop = asyncio.get_running_loop()
        delay = self._opts.hedge_delay_s
        wake = asyncio.Event()
        racers: dict[int, _Racer] = {}
        inflight: collections.deque[tuple[StripeSpan, asyncio.Future[list[Buffer]]]]
        inflight = collections.deque()

        def start(j: int, at: int, hedge: bool) -> None:
            first, last = run[at], run[-1]
            lo, hi = first.piece_offset, last.piece_offset + last.piece_len
            racers[j] = _Racer(self._open(j, lo, hi - lo), run, at, wake, hedge=hedge)

        def spares() -> list[int]:
            return [j for j in self.usable() if j not in racers]

        def fill(at: int) -> None:
            for j in spares()[: max(0, k - len(racers))]:
                start(j, at, hedge=False)
            if len(racers) < k:
                raise errors.Unavailable(
                    f"chunk {self.ref.chunk_id}: only {len(racers)} of {k + self.ref.m} "
                    f"shards readable, {k} needed",
                    chunk_id=str(self.ref.chunk_id),
                )

        async def drop(j: int) -> _Racer:
            racer = racers.pop(j)
            await racer.close()
            return racer

        try:
            if run:
                fill(0)
                if hedge_now and spares():
                    start(spares()[0], 0, hedge=True)
            for pos, sp in enumerate(run):
                hedge_at = loop.time() + delay
                while True:
                    for j, r in list(racers.items()):
                        if r.failed is not None:
                            await drop(j)
                            self._give_up(j, r.failed.reason, r.failed.cause)
                        elif r.next < pos - _LAG_STRIPES:
                            await drop(j)
                            if not r.hedge:
                                behind = f"{pos - r.next} stripes behind the race"
                                self._give_up(j, BadShardReason.SLOW, behind)
                    fill(pos)
                    ready = [j for j, r in racers.items() if pos in r.pieces]
                    if len(ready) >= k:
                        break
                    can_hedge = bool(spares())
                    if can_hedge and loop.time() >= hedge_at:
                        for j, r in racers.items():  # the laggards of a whole hedge delay
                            if pos not in r.pieces and loop.time() - r.started >= delay:
                                self._lagged(j)
                        start(spares()[0], pos, hedge=True)
                        hedge_at = loop.time() + delay
                        continue
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout_at(hedge_at if can_hedge else None):
                            await wake.wait()
                chosen = sorted(ready, key=lambda j: (j >= k, j))[:k]  # data pieces first
                pieces = {j: racers[j].pieces[pos] for j in chosen}
                inflight.append((sp, self._data_of(pieces)))
                for r in racers.values():
                    r.advance(pos + 1)
                while len(inflight) > decode_ahead:
                    sp0, fut = inflight.popleft()
                    yield sp0, await fut
            while inflight:
                sp0, fut = inflight.popleft()
                yield sp0, await fut
        finally:
            for _, fut in inflight:
                fut.cancel()
            await asyncio.gather(*(r.close() for r in racers.values()))

    def _data_of(self, pieces: dict[int, Buffer]) -> asyncio.Future[list[Buffer]]:
        if all(j < self.ref.k for j in pieces):
            fut: asyncio.Future[list[Buffer]] = asyncio.get_running_loop().create_future()
            fut.set_result([pieces[j] for j in range(self.ref.k)])
            return fut
        return coded(self._coder, len(next(iter(pieces.values()))), _decode, self._coder, pieces)


class _Prefetched(NamedTuple):
    """A read whose first run's calls were opened ahead (``ChunkReader.prefetch``)."""

    start: int
    length: int
    runs: list[list[StripeSpan]]
    opened: dict[int, _Stream] | None


class _Ahead:
    """Called once, part-way through a run: opens the next run (or, for the last run,
    calls ``on_last_run``); ``opened`` holds the calls opened."""

    __slots__ = ("_done", "_on_last", "_reader", "_run", "opened")

    def __init__(
        self,
        reader: ChunkReader,
        run: list[StripeSpan] | None,
        on_last_run: Callable[[], None] | None,
    ) -> None:
        self._reader, self._run, self._on_last = reader, run, on_last_run
        self._done = False
        self.opened: dict[int, _Stream] | None = None

    def __call__(self) -> None:
        if self._done:
            return
        self._done = True
        if self._run is not None:
            self.opened = self._reader._open_run(self._run)
        elif self._on_last is not None:
            self._on_last()


async def _close_all(streams: dict[int, _Stream]) -> None:
    await asyncio.gather(*(s.close() for s in streams.values()))


def _join(parts: list[memoryview]) -> Buffer:
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _cut(sp: StripeSpan, data: Sequence[Buffer]) -> list[memoryview]:
    return [
        memoryview(data[sl.shard])[sl.offset - sp.piece_offset :][: sl.length] for sl in sp.slices
    ]


async def read_range(
    chunks: Sequence[ChunkRef],
    start: int,
    length: int,
    *,
    directory: ServerDirectory,
    transport: Transport,
    options: ReadOptions | None = None,
    on_bad_shard: OnBadShard = _ignore,
    health: ServerHealth | None = None,
) -> AsyncGenerator[memoryview, None]:
    """The bytes ``[start, start + length)`` of the object made of ``chunks``, in order."""
    total = object_size(chunks)
    if start < 0 or length < 0 or start + length > total:
        raise errors.InvalidRange(f"range {start}+{length} outside an object of {total} bytes")
    health = health if health is not None else ServerHealth()
    parts: list[tuple[ChunkRef, int, int]] = []  # (chunk, start in it, length)
    offset, end = 0, start + length
    for ref in chunks:
        c0, c1 = offset, offset + ref.data_length
        offset = c1
        if c1 <= start or c0 >= end or ref.data_length == 0:
            continue
        lo, hi = max(start, c0) - c0, min(end, c1) - c0
        parts.append((ref, lo, hi - lo))
    readers: dict[int, ChunkReader] = {}  # the chunk being read and the next one

    def reader(i: int) -> ChunkReader:
        if i not in readers:
            readers[i] = ChunkReader(
                parts[i][0],
                directory=directory,
                transport=transport,
                options=options,
                on_bad_shard=on_bad_shard,
                health=health,
            )
        return readers[i]

    def prefetch(i: int) -> None:
        reader(i).prefetch(parts[i][1], parts[i][2])

    try:
        for i, (_, lo, n) in enumerate(parts):
            # the next chunk's first run opens as this chunk's last run starts
            last = functools.partial(prefetch, i + 1) if i + 1 < len(parts) else None
            async with contextlib.aclosing(reader(i).read(lo, n, on_last_run=last)) as blocks:
                async for block in blocks:
                    yield block
            del readers[i]
    finally:
        await asyncio.gather(*(r.drop_prefetch() for r in readers.values()))
