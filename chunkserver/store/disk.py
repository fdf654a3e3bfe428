"""``DiskShardStore``: shard files in a directory of a local file system.

Directory layout under ``root``::

    shards/ab/cd/<chunk id hex>.<shard index>   visible shards (fan-out on the first two
                                                byte pairs of the chunk id: at most 65536
                                                leaf directories, none with millions of
                                                entries)
    shards/ab/cd/<shard file name>.<token>.tmp  a write in progress, beside its target

Write protocol (crash-safe): check free space against the reserve → create the fan-out
directories if needed → stream into a temp file in the target's directory → fsync →
rename onto the target name → fsync the directory (and the parents of new directories) →
return the receipt. A crash before the directory's fsync leaves at most a temp file,
which ``start`` removes (its walk counting used bytes sees every leaf; no write runs
before it returns); after it, the shard is complete and durable. Inventories skip temp
files.

The temp file lives in the target's directory, not in a shared ``tmp/`` (as before): the
rename then changes one directory, which the one directory fsync makes durable (a rename
across directories changes two, and the source's was never fsynced: without a journal,
a crash could leave the temp name behind as a second link to the shard's inode, which
start-up would then unlink). It is also cheaper here: ext4 allocates a new file's inode
in its directory's block group, and on this VM's journal-less ext4 the allocator skips
inodes deleted in the last minutes one by one (``recently_deleted``), so one ``tmp/``
that took every write cost ~300 us of CPU per create against ~100 us spread over the
fan-out directories; 256 KiB shard writes took 8-15% less CPU (session 7).

Writes run in worker threads (``asyncio.to_thread``) in batches of at least
``batch_bytes`` (1 MiB): per-call thread hops cost, so pieces are gathered and written
with one ``os.writev`` per batch (measured faster than aiofiles' one hop per write).
Bigger write batches were measured worse: at 4 MiB the chunkservers' CPU per written
byte rose by a third (the received frames are no longer in cache when copied).
Checksumming happens in the same hop, off the event loop. Written shards keep their
page-cache pages, but only the newest ``write_cache_bytes`` of them (``_WrittenLately``):
older ones are dropped as new writes arrive, and those writes reuse the freed pages.

Reads go in batches of ``batch_bytes`` of file: whatever of a batch is in the page cache
is copied by the event loop itself with ``preadv2(RWF_NOWAIT)`` (which never waits for
the disk), only the uncached rest is read in a worker thread. The read is scattered:
pieces land back to back in one buffer and their checksums in another, so after every
piece is verified the batch is yielded as one contiguous view (no copy, no join).
Profiled on the healthy-read bench, the thread hop per batch (futex + self-pipe wake-ups)
and the join copy were most of the store's CPU; this halved it. Batches of 1 MiB rather
than 4 (session 9): the copy out of the page cache, the checksum and the socket send then
work on a buffer still in the CPU's cache; healthy reads of 256 MiB objects went 2.31 ->
2.62 GB/s (four interleaved pairs of runs) and the servers' CPU per GB 0.51 -> 0.45;
512 KiB and 2 MiB measured no better. An fd is never closed while a thread still uses
it, even when the calling task is cancelled.

Shard files read lately stay open (``OPEN_FILES``, least recently used out): a read of
one skips the thread hop that opens the file and parses its header, and only ``stat`` s
its path to check it is still the same file (deleted → ``NoSuchShard``; replaced →
reopened). On 1 MiB S3 GETs (four 256 KiB shard reads each) that hop was ~20% of the
chunkservers' CPU; GETs went 17% faster. The scrubber opens files on its own, so a
damaged header is still found.

``statvfs`` is injectable so tests can simulate a full disk.
Must not import network or gateway code.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import os
import secrets
import threading
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from blobstore.durable import fsync_path
from blobstore.errors import InsufficientSpace, NoSuchShard
from blobstore.log import get_logger
from blobstore.rawbuf import uninitialized
from chunkserver.shardfile import (
    CHECKSUM_BYTES,
    DEFAULT_BATCH_BYTES,
    Buffer,
    ShardEncoder,
    ShardHeader,
    ShardReader,
    ShardReceipt,
    check_identity,
    file_length,
    unreadable,
)
from chunkserver.store.base import InventoryCursor, InventoryPage, ShardInfo, SpaceInfo
from chunkserver.store.pagecache import drop, drop_path, drop_read

__all__ = ["WRITE_CACHE_BYTES", "DiskShardStore", "StatVfs", "parse_shard_name", "shard_name"]

log = get_logger(__name__)
T = TypeVar("T")
_Key = tuple[uuid.UUID, int]  # (chunk id, shard index)

_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)
_IOV_MAX = 1024
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
WRITE_CACHE_BYTES = 1 << 30  # newest written shard bytes kept in the page cache (_WrittenLately)
OPEN_FILES = 256  # shard files kept open for reads (_OpenShards)
TEMP_SUFFIX = ".tmp"  # a write in progress: <shard file name>.<token>.tmp beside its target


class StatVfs(Protocol):
    """The fields of ``os.statvfs_result`` the store uses."""

    @property
    def f_frsize(self) -> int: ...

    @property
    def f_blocks(self) -> int: ...

    @property
    def f_bavail(self) -> int: ...


def shard_name(chunk_id: uuid.UUID, shard_index: int) -> str:
    """File name of a shard: ``<chunk id hex>.<shard index>``."""
    return f"{chunk_id.hex}.{shard_index}"


def parse_shard_name(name: str) -> tuple[uuid.UUID, int] | None:
    """Inverse of :func:`shard_name`; None for names that are not shard files."""
    hex_id, dot, index = name.partition(".")
    if not dot or len(hex_id) != 32 or not index.isdigit() or not index.isascii():
        return None
    try:
        return uuid.UUID(hex=hex_id), int(index)
    except ValueError:
        return None


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``asyncio.to_thread`` that, if cancelled, still waits for the thread to finish.

    Callers close fds after this returns or raises; closing an fd a thread is still
    writing could redirect the write to a newly opened file that reuses the number.
    """
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: the caller is cancelled, nobody else will
        raise


def _write_all(fd: int, bufs: list[Buffer]) -> None:
    """``os.writev`` the buffers, finishing any short write."""
    views = [memoryview(b) for b in bufs if len(b)]
    while views:
        done = os.writev(fd, views[:1024])  # IOV_MAX
        while views and done >= len(views[0]):
            done -= len(views[0])
            views.pop(0)
        if done:
            views[0] = views[0][done:]


def _scatter(data: bytearray, checksums: bytearray, lengths: list[int]) -> list[memoryview]:
    """The iovecs of a batch read: each piece into ``data``, each checksum into ``checksums``.

    The file interleaves pieces and their 8-byte checksums; a scattered read lays the
    pieces back to back in one buffer, so a batch is yielded as one view, with no copy.
    """
    dv, cv = memoryview(data), memoryview(checksums)
    iov: list[memoryview] = []
    pos = 0
    for i, plen in enumerate(lengths):
        iov.append(dv[pos : pos + plen])
        iov.append(cv[i * CHECKSUM_BYTES : (i + 1) * CHECKSUM_BYTES])
        pos += plen
    return iov


def _skip(iov: list[memoryview], n: int) -> list[memoryview]:
    """``iov`` without its first ``n`` bytes."""
    out = list(iov)
    while out and n >= len(out[0]):
        n -= len(out[0])
        out.pop(0)
    if n:
        out[0] = out[0][n:]
    return out


def _read_cached(fd: int, iov: list[memoryview], offset: int) -> int:
    """Bytes of ``iov`` filled from the page cache without blocking (0 if none cached).

    ``preadv2(RWF_NOWAIT)`` never waits for the disk: it copies what is cached and stops,
    so the event loop can read hot data itself instead of paying a thread hop per batch.
    """
    if _NOWAIT is None:
        return 0
    total = sum(len(v) for v in iov)
    got = 0
    while got < total:
        try:
            n = os.preadv(fd, _skip(iov, got)[:_IOV_MAX], offset + got, _NOWAIT)
        except (BlockingIOError, InterruptedError):
            break
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                break  # file system without RWF_NOWAIT: the thread path reads it
            raise
        if n <= 0:
            break
        got += n
    return got


def _read_into(fd: int, iov: list[memoryview], start: int, offset: int) -> int:
    """Fill ``iov`` past its first ``start`` bytes from the file; bytes read (short at EOF)."""
    total = sum(len(v) for v in iov)
    got = start
    while got < total:
        n = os.preadv(fd, _skip(iov, got)[:_IOV_MAX], offset + got)
        if n <= 0:
            break
        got += n
    return got - start


class _TempShard:
    """One write in progress: temp file → fsync → rename → fsync directory.

    Methods run in a worker thread, one at a time.

    Without ``keep_cache`` the file's pages leave the page cache right after the fsync
    (``POSIX_FADV_DONTNEED``; dirty pages cannot be dropped, clean ones can), as Swift's
    object server does for large writes. Freed at once, those pages are what the next
    writes get: on this kind of VM a page the kernel has not used lately was handed back
    to the hypervisor, and touching it again costs a host fault (buffered writes of new
    data: 0.7-1.6 CPU-s per GiB, against ~0.2 with pages freed a moment before). For
    shards nobody reads soon (repairs) nothing is lost by not caching them.
    """

    __slots__ = ("before_open", "enc", "fd", "final", "keep_cache", "new_dirs", "path", "swap")

    def __init__(
        self,
        path: Path,
        final: Path,
        enc: ShardEncoder,
        before_open: Callable[[], None],
        swap: threading.Lock,
        *,
        keep_cache: bool = True,
    ) -> None:
        self.path, self.final, self.enc = path, final, enc
        self.swap = swap  # held while a file takes the final name (see DiskShardStore.delete)
        self.before_open = before_open  # the free-space check, in the same thread hop
        self.keep_cache = keep_cache
        self.new_dirs: list[Path] = []  # fan-out directories this write created
        self.fd = -1

    def write(self, chunks: list[Buffer]) -> None:
        if self.fd < 0:  # first batch: check space and create the temp file now
            self.before_open()
            d = self.final.parent
            self.new_dirs = [p for p in (d.parent, d) if not p.exists()]
            d.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        out: list[Buffer] = [] if self.enc.started else self.enc.start()
        for chunk in chunks:
            out.extend(self.enc.feed(chunk))
        _write_all(self.fd, out)

    def commit(self, chunks: list[Buffer], stale: Sequence[str] = ()) -> tuple[ShardReceipt, int]:
        """Finish, make durable and visible; (receipt, size of the file it replaced).
        Then drop the page-cache pages of the files ``stale`` (``_WrittenLately``)."""
        self.write(chunks)
        receipt = self.enc.finish()
        os.fsync(self.fd)
        if not self.keep_cache:
            drop(self.fd)
        fd, self.fd = self.fd, -1
        os.close(fd)
        with self.swap:
            try:
                replaced = self.final.stat().st_size
            except FileNotFoundError:
                replaced = 0
            os.rename(self.path, self.final)  # within one directory: one entry block changes
        fsync_path(self.final.parent)
        for d in self.new_dirs:  # a new directory's own entry lives in its parent
            fsync_path(d.parent)
        for path in stale:
            drop_path(path)
        return receipt, replaced

    def discard(self) -> None:
        """Undo a failed write (no-op for the parts already undone)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class _WrittenLately:
    """The shards written lately whose pages the page cache may keep: ``budget`` bytes.

    Ordinary writes keep their pages (S3 reads often follow writes), but only the newest
    ``budget`` bytes of them: each write that takes the total above it names the oldest
    files to drop (``POSIX_FADV_DONTNEED``, once the write is durable). On the VMs this
    runs on, a page the kernel has not reused for a few seconds is handed back to the
    hypervisor and costs a host fault when touched again, so an unbounded page cache made
    every new shard byte land in such pages: sustained 256 MiB writes fell from ~380 to
    ~230 MB/s once ~1 GiB per chunkserver had been written (chunkservers 1.9 -> 5.2
    CPU-s per GB; ``copy_folio_from_iter_atomic`` was 46% of all CPU). Dropping the
    oldest files hands their pages straight to the next writes: with a 128 MiB budget the
    same runs held 360-425 MB/s. Reads do not count (the kernel ages what reads cached).
    """

    __slots__ = ("_bytes", "_files", "budget")

    def __init__(self, budget: int) -> None:
        self.budget = max(0, budget)
        self._files: collections.OrderedDict[_Key, int] = collections.OrderedDict()
        self._bytes = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def admit(self, key: _Key, size: int) -> list[_Key]:
        """``key`` was (is being) written with ``size`` bytes: the oldest files whose pages
        to drop now, so the newest ``budget`` bytes stay (the new file always stays)."""
        self.forget(key)
        self._files[key] = size
        self._bytes += size
        stale: list[_Key] = []
        while self._bytes > self.budget and len(self._files) > 1:
            old, n = self._files.popitem(last=False)
            self._bytes -= n
            stale.append(old)
        return stale

    def forget(self, key: _Key) -> None:
        """``key`` was deleted, rewritten uncached, or its write failed."""
        self._bytes -= self._files.pop(key, 0)


class _Open:
    """One open shard file: its fd, parsed header and inode. Closed once it is out of the
    cache (``evicted``) and no read uses it any more."""

    __slots__ = ("evicted", "fd", "ino", "reader", "users")

    def __init__(self, fd: int, reader: ShardReader, ino: int) -> None:
        self.fd, self.reader, self.ino = fd, reader, ino
        self.users = 0
        self.evicted = False

    def release(self) -> None:
        """A read is done with it."""
        self.users -= 1
        self._close_if_done()

    def evict(self) -> None:
        self.evicted = True
        self._close_if_done()

    def _close_if_done(self) -> None:
        if self.evicted and self.users == 0:
            os.close(self.fd)


class _OpenShards:
    """Shard files read lately, kept open (least recently used first out).

    A read of a cached shard skips the worker-thread hop that opens the file and parses
    its header (on small reads that hop was most of the store's cost); it only ``stat`` s
    the path, whose entry is in the kernel's cache since the open, to see that the file is
    still the one opened: a deleted or replaced file (a rewrite, a repair, a hand-made
    change) drops the entry. The store also drops entries itself when it deletes or
    rewrites a shard.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = max(0, capacity)
        self._lru: collections.OrderedDict[tuple[uuid.UUID, int], _Open] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._lru)

    def use(self, key: tuple[uuid.UUID, int], path: str) -> _Open | None:
        """The cached open file of ``key`` if ``path`` still names it, counted as in use
        until ``release``; raises ``FileNotFoundError`` if the file is gone."""
        entry = self._lru.get(key)
        if entry is None:
            return None
        try:
            ino = os.stat(path).st_ino
        except FileNotFoundError:
            self.forget(key)
            raise
        if ino != entry.ino:
            self.forget(key)
            return None
        self._lru.move_to_end(key)
        entry.users += 1
        return entry

    def add(self, key: tuple[uuid.UUID, int], entry: _Open) -> _Open:
        """Cache a newly opened file, counted as in use until ``release``."""
        entry.users += 1
        self.forget(key)
        self._lru[key] = entry
        while len(self._lru) > self._capacity:
            self._lru.popitem(last=False)[1].evict()
        return entry

    def forget(self, key: tuple[uuid.UUID, int]) -> None:
        entry = self._lru.pop(key, None)
        if entry is not None:
            entry.evict()

    def clear(self) -> None:
        while self._lru:
            self._lru.popitem()[1].evict()


class DiskShardStore:
    """A ``ShardStore`` over a directory; refuses writes below ``reserve_bytes`` free."""

    def __init__(
        self,
        root: Path,
        reserve_bytes: int,
        *,
        statvfs: Callable[[Path], StatVfs] = os.statvfs,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        open_files: int = OPEN_FILES,
        write_cache_bytes: int = WRITE_CACHE_BYTES,
    ) -> None:
        if reserve_bytes < 0:
            raise ValueError(f"reserve_bytes must be >= 0, got {reserve_bytes}")
        self._root = Path(root)
        self._shards = self._root / "shards"
        self._shards_str = str(self._shards)
        self._legacy_tmp = self._root / "tmp"
        self._reserve = reserve_bytes
        self._statvfs = statvfs
        self._batch = max(1, batch_bytes)
        self._used = 0
        self._open = _OpenShards(open_files)
        # held (briefly, in worker threads) by every rename onto a shard's name and by a
        # compare-and-delete, so a delete never removes a file renamed in after its check
        self._swap = threading.Lock()
        self._written = _WrittenLately(write_cache_bytes)

    @property
    def root(self) -> Path:
        return self._root

    def shard_path(self, chunk_id: uuid.UUID, shard_index: int) -> Path:
        """Where the shard's file lives (whether or not it exists)."""
        return Path(self._shard_path(chunk_id, shard_index))

    def _shard_path(self, chunk_id: uuid.UUID, shard_index: int) -> str:
        h = chunk_id.hex
        return f"{self._shards_str}/{h[0:2]}/{h[2:4]}/{shard_name(chunk_id, shard_index)}"

    @property
    def open_files(self) -> int:
        """Shard files kept open for reads (see ``_OpenShards``)."""
        return len(self._open)

    def close(self) -> None:
        """Close the shard files kept open (those still being read close when done)."""
        self._open.clear()

    # -- start-up -----------------------------------------------------------------------
    async def start(self) -> None:
        """Create directories, remove temp files of interrupted writes, count used bytes.

        No write runs before ``start`` returns, so every temp file found is a crashed
        write's; the walk that counts used bytes removes them on the way."""
        removed = await asyncio.to_thread(self._prepare)
        used = 0
        for top in await asyncio.to_thread(_list_dirs, self._shards):
            found, gone = await asyncio.to_thread(_scan_top, top, remove_temps=True)
            used += sum(info.size_bytes for info in found)
            removed += gone
        self._used = used
        log.info("shard store started", root=str(self._root), temp_removed=removed, used=used)

    def _prepare(self) -> int:
        """Create ``shards/``; empty and remove ``tmp/``, where earlier versions kept
        writes in progress (count of files removed)."""
        self._shards.mkdir(parents=True, exist_ok=True)
        removed = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(self._legacy_tmp) as it:
            for entry in it:
                if entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
        with contextlib.suppress(OSError):  # gone already, or holds something not ours
            self._legacy_tmp.rmdir()
        return removed

    # -- write --------------------------------------------------------------------------
    async def write(
        self, header: ShardHeader, data: AsyncIterable[Buffer], *, cache: bool = True
    ) -> ShardReceipt:
        """Thread hops: one per ``batch_bytes`` of data, the last one also makes the shard
        durable; the free-space check and the temp file's creation ride along with the
        first (a small shard costs one hop in all). ``cache=False``: see ``_TempShard``."""
        needed = file_length(header)
        key = (header.chunk_id, header.shard_index)
        final = self.shard_path(*key)
        tmp = _TempShard(
            final.with_name(f"{final.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"),
            final,
            ShardEncoder(header),
            functools.partial(self._check_free, needed),
            self._swap,
            keep_cache=cache,
        )
        try:
            pending: list[Buffer] = []
            pending_bytes = 0
            async for chunk in data:
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= self._batch:
                    await _in_thread(tmp.write, pending)
                    pending, pending_bytes = [], 0
            if cache:
                stale = [self._shard_path(*k) for k in self._written.admit(key, needed)]
            else:
                self._written.forget(key)
                stale = []
            receipt, replaced = await _in_thread(tmp.commit, pending, stale)
        except BaseException as exc:
            self._written.forget(key)
            await asyncio.to_thread(tmp.discard)
            if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
                # the disk filled up below the reserve check (another writer, a reserve
                # of 0): the same typed answer as the check, not an internal error
                raise InsufficientSpace(
                    f"disk {self._root} is full: {exc.strerror}", needed_bytes=str(needed)
                ) from None
            raise
        self._open.forget(key)  # a rewrite: new file
        self._used += receipt.file_bytes - replaced
        return receipt

    def _check_free(self, needed: int) -> None:
        """Raise ``InsufficientSpace`` unless ``needed`` bytes fit above the reserve
        (blocking: runs in the write's worker thread)."""
        st = self._statvfs(self._root)
        free = st.f_bavail * st.f_frsize
        if free - needed < self._reserve:
            raise InsufficientSpace(
                f"disk {self._root}: {free} bytes free, writing {needed} more "
                f"would go below the reserve of {self._reserve} bytes",
                free_bytes=str(free),
                reserve_bytes=str(self._reserve),
                needed_bytes=str(needed),
            )

    # -- read ---------------------------------------------------------------------------
    async def read(
        self,
        chunk_id: uuid.UUID,
        shard_index: int,
        offset: int = 0,
        length: int | None = None,
        *,
        cache: bool = True,
        checksums: bool = False,
    ) -> AsyncGenerator[Buffer, None]:
        """See ``ShardStore.read``. With ``cache=False`` each batch's pages are dropped
        once read (``pagecache.drop_read``), cached before or not: with the disk's readahead
        (8 MiB here) pages found in the cache are mostly ones this read's own previous
        batch pulled in, so residency cannot tell a hot shard from a cold one."""
        key = (chunk_id, shard_index)
        path = self._shard_path(chunk_id, shard_index)
        try:
            shard = self._open.use(key, path)
        except FileNotFoundError:
            raise _no_such_shard(chunk_id, shard_index, self._root) from None
        if shard is None:
            shard = self._open.add(key, await self._open_file(path, chunk_id, shard_index))
        fd, reader = shard.fd, shard.reader
        try:
            for batch in reader.plan(offset, length, batch_bytes=self._batch):
                if checksums:  # sent as stored: the file's bytes, in one buffer
                    data = uninitialized(batch.file_bytes)  # checked: filled up to `got`
                    iov = [memoryview(data)]
                else:  # pieces back to back in one buffer, their checksums in another
                    lengths = reader.piece_lengths(batch)
                    data = uninitialized(sum(lengths))  # verify_scattered checks it was filled
                    stored = bytearray(CHECKSUM_BYTES * len(lengths))
                    iov = _scatter(data, stored, lengths)
                try:
                    got = _read_cached(fd, iov, batch.file_offset)
                    if got < batch.file_bytes:  # not all in the page cache: rest in a thread
                        got += await _in_thread(_read_into, fd, iov, got, batch.file_offset)
                except OSError as exc:  # a media error: the shard is lost, say so
                    lost = unreadable(exc, reader.header)
                    if lost is None:
                        raise
                    raise lost from exc
                if not cache:
                    drop_read(fd, batch.file_offset, got, file_length(reader.header))
                if not checksums:
                    yield reader.verify_scattered(batch, data, stored, got)
                    continue
                for part in reader.checksummed_views(batch, memoryview(data)[:got]):
                    yield part
        finally:
            shard.release()

    async def _open_file(self, path: str, chunk_id: uuid.UUID, shard_index: int) -> _Open:
        opening = asyncio.ensure_future(
            asyncio.to_thread(self._open_shard, path, chunk_id, shard_index)
        )
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:  # do not leak the fd the thread may still open
            await asyncio.wait({opening})
            if not opening.cancelled() and opening.exception() is None:
                os.close(opening.result().fd)
            raise
        except FileNotFoundError:
            raise _no_such_shard(chunk_id, shard_index, self._root) from None

    @staticmethod
    def _open_shard(path: str, chunk_id: uuid.UUID, shard_index: int) -> _Open:
        fd = os.open(path, os.O_RDONLY)
        try:
            reader = ShardReader.from_fd(fd)
            check_identity(reader.header, chunk_id, shard_index)
            return _Open(fd, reader, os.fstat(fd).st_ino)
        except BaseException:
            os.close(fd)
            raise

    # -- metadata -----------------------------------------------------------------------
    async def stat(self, chunk_id: uuid.UUID, shard_index: int) -> ShardInfo | None:
        try:
            st = await asyncio.to_thread(os.stat, self.shard_path(chunk_id, shard_index))
        except FileNotFoundError:
            return None
        return _info(chunk_id, shard_index, st)

    async def delete(
        self, chunk_id: uuid.UUID, shard_index: int, *, expect: ShardInfo | None = None
    ) -> bool:
        path = self.shard_path(chunk_id, shard_index)

        def unlink() -> int | None:
            with self._swap:
                st = os.stat(path)
                if expect is not None and _info(chunk_id, shard_index, st) != expect:
                    return None  # rewritten since the caller looked: keep
                os.unlink(path)
                return st.st_size

        try:
            size = await asyncio.to_thread(unlink)
        except FileNotFoundError:
            size = None
        if size is None:
            return False
        self._open.forget((chunk_id, shard_index))
        self._written.forget((chunk_id, shard_index))
        self._used -= size
        return True

    async def absent(self, keys: Sequence[_Key]) -> list[_Key]:
        def check() -> list[_Key]:
            gone: list[_Key] = []
            for key in keys:
                try:
                    os.stat(self._shard_path(*key))
                except FileNotFoundError:
                    gone.append(key)
            return gone

        return await asyncio.to_thread(check)

    async def inventory(self) -> AsyncIterator[ShardInfo]:
        try:
            tops = await asyncio.to_thread(_list_dirs, self._shards)
        except FileNotFoundError:
            return
        for top in tops:  # one thread hop per top-level directory (<= 256 leaves)
            found, _ = await asyncio.to_thread(_scan_top, top)
            for info in found:
                yield info

    async def inventory_page(self, after: InventoryCursor | None, limit: int) -> InventoryPage:
        """An ordered walk of the fan-out directories from the cursor (one thread hop).

        The fan-out directories are the chunk id's first hex digits, so hex order of
        directory names, then of (chunk id, shard index) within a leaf, is the page order:
        only the directories from the cursor on are listed, only the page's files are
        stat'ed, and the walk stops after ``limit + 1`` shards.
        """
        return await asyncio.to_thread(_inventory_page, self._shards, after, max(1, limit))

    async def space(self) -> SpaceInfo:
        st = await asyncio.to_thread(self._statvfs, self._root)
        return SpaceInfo(
            capacity_bytes=st.f_blocks * st.f_frsize,
            free_bytes=st.f_bavail * st.f_frsize,
            used_bytes=self._used,
            reserve_bytes=self._reserve,
        )


def _info(chunk_id: uuid.UUID, shard_index: int, st: os.stat_result) -> ShardInfo:
    return ShardInfo(chunk_id, shard_index, st.st_size, st.st_mtime, st.st_ino)


def _no_such_shard(chunk_id: uuid.UUID, shard_index: int, root: Path) -> NoSuchShard:
    return NoSuchShard(
        f"no shard {shard_index} of chunk {chunk_id} on {root}",
        chunk_id=str(chunk_id),
        shard=str(shard_index),
    )


def _list_dirs(path: Path) -> list[Path]:
    with os.scandir(path) as it:
        return sorted(Path(e.path) for e in it if e.is_dir(follow_symlinks=False))


def _sorted_subdirs(path: Path, at_least: str) -> list[str]:
    """Names of the fan-out subdirectories of ``path`` that sort at or after ``at_least``."""
    try:
        with os.scandir(path) as it:
            names = [e.name for e in it if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n >= at_least)


def _inventory_page(root: Path, after: InventoryCursor | None, limit: int) -> InventoryPage:
    cursor = (after[0].bytes, after[1]) if after is not None else None
    h = after[0].hex if after is not None else ""
    top0, leaf0 = h[0:2], h[2:4]
    found: list[ShardInfo] = []
    for top in _sorted_subdirs(root, top0):
        for leaf in _sorted_subdirs(root / top, leaf0 if top == top0 else ""):
            try:
                with os.scandir(root / top / leaf) as it:
                    entries = [(parse_shard_name(e.name), e) for e in it]
            except FileNotFoundError:
                continue
            keyed = sorted(((p[0].bytes, p[1]), p, e) for p, e in entries if p is not None)
            for key, (cid, idx), entry in keyed:
                if cursor is not None and key <= cursor:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted meanwhile
                    continue
                if len(found) == limit:
                    return InventoryPage(tuple(found), True)
                found.append(_info(cid, idx, st))
    return InventoryPage(tuple(found), False)


def _scan_top(top: Path, *, remove_temps: bool = False) -> tuple[list[ShardInfo], int]:
    """The shards under fan-out directory ``top``, and how many temp files were removed
    (``remove_temps``: at start-up, when every temp file is a crashed write's)."""
    found: list[ShardInfo] = []
    removed = 0
    try:
        leaves = _list_dirs(top)
    except FileNotFoundError:
        return found, removed
    for leaf in leaves:
        try:
            with os.scandir(leaf) as it:
                entries = list(it)
        except FileNotFoundError:
            continue
        for entry in entries:
            parsed = parse_shard_name(entry.name)
            if parsed is None:
                if not entry.name.endswith(TEMP_SUFFIX):
                    log.warning("stray file in shard directory", path=entry.path)
                elif remove_temps:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # deleted meanwhile
                continue
            found.append(_info(parsed[0], parsed[1], st))
    return found, removed
