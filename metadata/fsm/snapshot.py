"""Catalog snapshot format: the whole ordered KV, serialized deterministically.

Byte layout (version 1; integers big-endian)::

    magic        8 bytes   b"BSCATLG\\x00"
    version      u16       FORMAT_VERSION
    flags        u16       0 (reserved)
    count        u64       number of records
    records      count x (key: msgpack bin, value: catalog value, see codec.py)
    crc32        u32       zlib.crc32 of every preceding byte

Records are written in key order, so equal catalogs give equal bytes. Encoding reads a frozen
``KVReader`` (``MemoryKV.snapshot()``), so it may run on a background thread while apply
keeps going; ``on_progress`` is called every ``progress_every`` records (a background caller
can pass ``lambda: time.sleep(0)`` to hand the GIL back promptly). Decoding checks magic,
version, CRC and key order, and raises ``ValueError`` on anything malformed.
Pure: stdlib, msgpack and sibling modules; no files (callers hand bytes to a SnapshotStore).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator

import msgpack

from metadata.fsm.codec import make_packer, unpacker_options
from metadata.fsm.kv import DEFAULT_LOAD, KVReader, MemoryKV

__all__ = ["FORMAT_VERSION", "MAGIC", "decode_snapshot", "encode_snapshot"]

MAGIC = b"BSCATLG\x00"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sHHQ")
_CRC = struct.Struct(">I")


def encode_snapshot(
    view: KVReader,
    *,
    on_progress: Callable[[], None] | None = None,
    progress_every: int = 2048,
) -> bytes:
    """Serialize every record of ``view`` (a frozen snapshot) into the snapshot format."""
    packer = make_packer()
    out = io.BytesIO()  # grows by realloc; getvalue() hands over its buffer without a copy
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(view))
    out.write(header)
    crc = zlib.crc32(header)
    pack = packer.pack
    write = out.write
    n = 0
    for key, value in view.scan(b""):
        rec = pack(key)  # key and value back to back: no per-record tuple for the GC
        write(rec)
        crc = zlib.crc32(rec, crc)
        rec = pack(value)
        write(rec)
        crc = zlib.crc32(rec, crc)
        n += 1
        if on_progress is not None and n % progress_every == 0:
            on_progress()
    if n != len(view):
        raise RuntimeError("snapshot view changed while being encoded")
    out.write(_CRC.pack(crc))
    return out.getvalue()


def _records(data: bytes, count: int) -> Iterator[tuple[bytes, object]]:
    unpacker = msgpack.Unpacker(
        strict_map_key=False, max_buffer_size=len(data) + 1, **unpacker_options()
    )
    unpacker.feed(memoryview(data)[_HEADER.size : len(data) - _CRC.size])
    n = 0
    it = iter(unpacker)
    for key in it:
        value = next(it, None)
        if not isinstance(key, bytes) or value is None:
            raise ValueError("snapshot record is not a key followed by a value")
        n += 1
        yield key, value
    if n != count:
        raise ValueError(f"snapshot holds {n} records, header says {count}")


def decode_snapshot(data: bytes, *, load: int = DEFAULT_LOAD) -> MemoryKV:
    """Rebuild the ordered KV from snapshot bytes; raises ValueError if malformed."""
    if len(data) < _HEADER.size + _CRC.size:
        raise ValueError("snapshot is truncated")
    magic, version, _flags, count = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("not a catalog snapshot (bad magic)")
    if version != FORMAT_VERSION:
        raise ValueError(f"unsupported catalog snapshot version {version}")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(memoryview(data)[: len(data) - _CRC.size]) != crc:
        raise ValueError("catalog snapshot checksum mismatch")
    try:
        return MemoryKV.from_sorted(_records(data, count), load=load)
    except (TypeError, msgpack.UnpackException) as e:
        raise ValueError(f"malformed catalog snapshot: {e}") from e
