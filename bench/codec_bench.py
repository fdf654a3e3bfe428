"""Codec benchmark: the msgpack codec against json and hand-written struct framing.

Shapes are the ones our RPCs carry: a small shard-read request header, a Raft append with
64 entries of 100 bytes, and a nested snapshot header (Snapshot > SnapshotMeta > ConfState).
For each, measures encode+decode round trip time (microseconds, best of 5 runs) and the
encoded size:
  * msgpack: ``blobstore.rpc.codec`` (generic, schema-checked, registered dataclasses);
  * json: the same array layout through the stdlib json module (bytes as base64);
  * struct: a hand-written ``struct`` layout per shape (the floor for a custom framing:
    no generality, no schema evolution, one function pair per message type).

Prints a table, then one JSON line:
  {"bench": "codec", "results": {shape: {codec: {"us": N, "bytes": N}}}, "choice": "msgpack"}
Usage: python bench/codec_bench.py [--runs 5]

Recorded 2026-11-26 (2 cpus, shared host, load average ~3; round trip us / bytes):
    shape             msgpack        json           struct
    small_request      5.2 / 42      18.4 / 58       3.4 / 46
    raft_append_64   186.6 / 6990   644.1 / 9813   134.8 / 7789
    snapshot_header    9.5 / 219     35.1 / 311      6.6 / 252
  On a quieter moment: msgpack 2.3 / 152.9 / 5.8 us, struct 1.7-2.5 / 75 / 3.4 us.
Choice: msgpack. It is 3-4x faster than json and 20-30% smaller; hand-written struct
framing is only 1.3-2x faster still, at the price of one hand-maintained layout per message
type, no schema evolution and no generic validation -- and either way the per-call cost is
dominated by the event loop (tens of us per RPC), not by the codec (a few us).
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import struct
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blobstore.rpc import codec

__all__ = ["main"]


@dataclass(frozen=True, slots=True)
class ReadShard:
    chunk_id: str
    shard_index: int
    offset: int
    length: int
    checksum: bytes


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Append:
    term: int
    leader: int
    prev_index: int
    prev_term: int
    commit: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Conf:
    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()
    auto_leave: bool = False


@dataclass(frozen=True, slots=True)
class Meta:
    index: int = 0
    term: int = 0
    conf: Conf = field(default_factory=Conf)


@dataclass(frozen=True, slots=True)
class Snap:
    meta: Meta
    data: bytes


for _tag, _cls in ((95, ReadShard), (96, Entry), (97, Append), (98, Conf), (99, Meta)):
    codec.register(_tag, _cls)
codec.register(89, Snap)  # borrowed from the test range: bench and tests never share a process

SAMPLES: dict[str, Any] = {
    "small_request": ReadShard("c-0123456789abcdef", 3, 1 << 20, 1 << 20, b"\x01" * 8),
    "raft_append_64": Append(
        7, 1, 1000, 7, 990, tuple(Entry(7, 1001 + i, 0, bytes(100)) for i in range(64))
    ),
    "snapshot_header": Snap(Meta(12345, 7, Conf((1, 2, 3), (4,), False)), b"x" * 200),
}


# -- json: the same layout, bytes as base64 ---------------------------------------------------
def _to_json(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode()
    if isinstance(obj, tuple):
        return [_to_json(x) for x in obj]
    if hasattr(obj, "__dataclass_fields__"):
        return [codec.tag_of(type(obj)), *(_to_json(getattr(obj, f)) for f in obj.__slots__)]
    return obj


def _from_json(v: Any) -> Any:
    tag = v[0]
    if tag == 95:
        return ReadShard(v[1], v[2], v[3], v[4], base64.b64decode(v[5]))
    if tag == 97:
        entries = tuple(Entry(e[1], e[2], e[3], base64.b64decode(e[4])) for e in v[6])
        return Append(v[1], v[2], v[3], v[4], v[5], entries)
    if tag == 89:
        m = v[1]
        c = m[3]
        return Snap(Meta(m[1], m[2], Conf(tuple(c[1]), tuple(c[2]), c[3])), base64.b64decode(v[2]))
    raise ValueError(tag)


def json_encode(obj: Any) -> bytes:
    return json.dumps(_to_json(obj), separators=(",", ":")).encode()


def json_decode(data: bytes) -> Any:
    return _from_json(json.loads(data))


# -- struct: hand-written per shape ---------------------------------------------------------
_RS = struct.Struct("!HBQQ8s")
_AP = struct.Struct("!QQQQQI")
_EN = struct.Struct("!QQBI")
_SN = struct.Struct("!QQBBB")


def struct_encode(obj: Any) -> bytes:
    if isinstance(obj, ReadShard):
        cid = obj.chunk_id.encode()
        return (
            b"\x01"
            + _RS.pack(len(cid), obj.shard_index, obj.offset, obj.length, obj.checksum)
            + cid
        )
    if isinstance(obj, Append):
        parts = [
            b"\x02",
            _AP.pack(
                obj.term, obj.leader, obj.prev_index, obj.prev_term, obj.commit, len(obj.entries)
            ),
        ]
        for e in obj.entries:
            parts.append(_EN.pack(e.term, e.index, e.type, len(e.data)))
            parts.append(e.data)
        return b"".join(parts)
    if isinstance(obj, Snap):
        c = obj.meta.conf
        ids = struct.pack(f"!{len(c.voters) + len(c.learners)}Q", *c.voters, *c.learners)
        head = _SN.pack(obj.meta.index, obj.meta.term, len(c.voters), len(c.learners), c.auto_leave)
        return b"\x03" + head + ids + obj.data
    raise TypeError(type(obj))


def struct_decode(data: bytes) -> Any:
    kind = data[0]
    if kind == 1:
        n, idx, off, length, ck = _RS.unpack_from(data, 1)
        start = 1 + _RS.size
        return ReadShard(data[start : start + n].decode(), idx, off, length, ck)
    if kind == 2:
        term, leader, pi, pt, commit, count = _AP.unpack_from(data, 1)
        pos = 1 + _AP.size
        entries = []
        for _ in range(count):
            et, ei, ety, n = _EN.unpack_from(data, pos)
            pos += _EN.size
            entries.append(Entry(et, ei, ety, data[pos : pos + n]))
            pos += n
        return Append(term, leader, pi, pt, commit, tuple(entries))
    if kind == 3:
        index, term, nv, nl, auto = _SN.unpack_from(data, 1)
        pos = 1 + _SN.size
        ids = struct.unpack_from(f"!{nv + nl}Q", data, pos)
        pos += 8 * (nv + nl)
        conf = Conf(ids[:nv], ids[nv:], bool(auto))
        return Snap(Meta(index, term, conf), data[pos:])
    raise ValueError(kind)


CODECS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "msgpack": (codec.encode, codec.decode),
    "json": (json_encode, json_decode),
    "struct": (struct_encode, struct_decode),
}


def _round_trip(enc: Callable[[Any], bytes], dec: Callable[[bytes], Any], obj: Any) -> Any:
    return dec(enc(obj))


def measure(runs: int) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {}
    for shape, obj in SAMPLES.items():
        results[shape] = {}
        for name, (enc, dec) in CODECS.items():
            data = enc(obj)
            assert dec(data) == obj, (name, shape)
            timer = timeit.Timer(functools.partial(_round_trip, enc, dec, obj))
            loops, _ = timer.autorange()
            best = min(timer.repeat(repeat=runs, number=loops)) / loops
            results[shape][name] = {"us": round(best * 1e6, 2), "bytes": len(data)}
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    results = measure(args.runs)
    names = list(CODECS)
    print(f"{'shape':18}" + "".join(f"{n + ' us':>12}{n + ' B':>12}" for n in names))
    for shape, row in results.items():
        cells = "".join(f"{row[n]['us']:>12.2f}{row[n]['bytes']:>12}" for n in names)
        print(f"{shape:18}{cells}")
    print(json.dumps({"bench": "codec", "results": results, "choice": "msgpack"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
