"""Catalog state-machine benchmark: apply rate, listing latency, snapshot cost and pause.

Builds a catalog of N objects (default 1,000,000; one erasure-coded chunk each, keys spread
over 1000 "directories") by applying real ``CommitObject`` entries through exactly-once
sessions, then measures:
- apply_ops_s: CommitObject entries applied per second (during the build);
- list_first_page_ms_1m: first ListObjectsV2 page (1000 keys; and with delimiter "/");
- snapshot_1m_s: encoding the frozen view of the whole catalog on a background thread;
- snapshot_max_pause_ms: the longest single apply (or the freeze itself) while that
  background encode runs, i.e. how long request processing stalls;
- restore time and snapshot size.

GC policy (the node must do the same): CPython's cyclic GC periodically walks *every*
tracked object; with millions of catalog records one full pass stalls the process for
100 ms - 1 s. Catalog records are acyclic (refcounting frees them), so the bench calls
``gc.freeze()`` every FREEZE_EVERY applies, moving survivors to the permanent generation;
the GC then only ever walks recent allocations.
Prints a table; the last line is JSON. Usage: ``python bench/catalog_bench.py [--objects N]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import threading
import time

from metadata.fsm.commands import ClientCommand, CommitObject, CreateBucket
from metadata.fsm.kv import DEFAULT_LOAD, MemoryKV
from metadata.fsm.records import Chunk, ShardPlacement
from metadata.fsm.state import Catalog

__all__ = ["main"]

CLIENTS = 64
FREEZE_EVERY = 1_000


def _commit(i: int, tag: str = "") -> CommitObject:
    key = f"dir{i % 1000:04d}/obj{i:08d}{tag}"
    shards = tuple(ShardPlacement(1 + (i + s) % 12, s, "0123456789abcdef") for s in range(6))
    chunk = Chunk(f"chunk-{i:010d}{tag}", "zfec", 4, 2, 1 << 20, 4096, shards)
    return CommitObject("bench", key, f"v{i}{tag}", "alice", 4096, f"{i:032x}", chunks=(chunk,))


def _gc_row(passes: list[tuple[float, float, int]]) -> str:
    if not passes:
        return "none"
    wall, cpu, gen = max(passes)
    return f"{wall:.2f} ms wall, {cpu:.2f} ms CPU (gen {gen}; {len(passes)} passes)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--leaf-load", type=int, default=DEFAULT_LOAD, help="MemoryKV leaf size")
    args = parser.parse_args()
    n: int = args.objects
    gc.freeze()  # long-lived records: keep the cyclic GC from rescanning them all
    cat = Catalog(kv=MemoryKV(args.leaf_load))
    seqs = [0] * CLIENTS

    def entry(i: int, cmd: object, now_ms: int) -> ClientCommand:
        if i % FREEZE_EVERY == 0:
            gc.freeze()  # the node's GC policy, see the module docstring
        c = i % CLIENTS
        seqs[c] += 1
        return ClientCommand(f"gw-{c}", seqs[c], now_ms, cmd)  # type: ignore[arg-type]

    cat.apply(ClientCommand("", 0, 1, CreateBucket("bench", "alice")))
    t0 = time.perf_counter()
    applying = 0.0
    clock = time.perf_counter
    for i in range(n):
        e = entry(i, _commit(i), 1_000 + i // 1000)
        a = clock()
        cat.apply(e)
        applying += clock() - a
    build_s = time.perf_counter() - t0
    apply_ops_s = n / applying
    gc.freeze()

    t0 = time.perf_counter()
    page = cat.list_objects_v2("bench", max_keys=1000)
    list_ms = (time.perf_counter() - t0) * 1000
    assert page.key_count == min(1000, n)
    t0 = time.perf_counter()
    dpage = cat.list_objects_v2("bench", delimiter="/", max_keys=1000)
    list_delim_ms = (time.perf_counter() - t0) * 1000
    assert dpage.key_count == min(1000, n)

    # Snapshot: freeze inline, encode on a thread, keep applying and time every apply.
    # What the node does when it snapshots: move every live object into the GC's permanent
    # generation (O(1); the catalog's records are acyclic, so refcounting still frees them),
    # otherwise one full GC pass over a million-record catalog stalls the loop for ~1 s.
    gc.freeze()
    t0 = time.perf_counter()
    view = cat.snapshot_view()
    freeze_ms = (time.perf_counter() - t0) * 1000
    out: list[bytes] = []
    done = threading.Event()

    def encode() -> None:
        from metadata.fsm.snapshot import encode_snapshot

        start = time.perf_counter()
        out.append(encode_snapshot(view))
        out.append(str(time.perf_counter() - start).encode())
        done.set()

    gc_pauses: list[tuple[float, float, int]] = []  # wall ms, thread-CPU ms, generation
    gc_start = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[:] = [time.perf_counter(), time.thread_time()]
        else:
            wall = (time.perf_counter() - gc_start[0]) * 1000
            cpu = (time.thread_time() - gc_start[1]) * 1000
            gc_pauses.append((wall, cpu, info["generation"]))

    gc.callbacks.append(on_gc)
    worker = threading.Thread(target=encode)
    worker.start()
    pauses: list[float] = []
    i = n
    while not done.is_set():
        a = time.perf_counter()
        cat.apply(entry(i, _commit(i, "x"), 10_000_000 + i))
        pauses.append((time.perf_counter() - a) * 1000)
        i += 1
    worker.join()
    gc.callbacks.remove(on_gc)
    data, snap_s = out[0], float(out[1])
    during = len(pauses)
    max_pause_ms = max([freeze_ms, *pauses])
    pauses.sort()
    p99 = pauses[int(0.99 * (len(pauses) - 1))] if pauses else 0.0

    t0 = time.perf_counter()
    other = Catalog()
    other.restore(data)
    restore_s = time.perf_counter() - t0

    rows = [
        ("objects", f"{n:,}"),
        ("build (apply CommitObject)", f"{build_s:.1f} s"),
        ("apply rate (time inside apply)", f"{apply_ops_s:,.0f} ops/s"),
        ("ListObjectsV2 first page (1000)", f"{list_ms:.2f} ms"),
        ("ListObjectsV2 delimiter '/' first page", f"{list_delim_ms:.2f} ms"),
        ("snapshot freeze (inline)", f"{freeze_ms:.3f} ms"),
        ("snapshot encode (background)", f"{snap_s:.1f} s"),
        ("snapshot size", f"{len(data) / 1e6:.0f} MB"),
        ("applies during encode", f"{during:,}"),
        ("apply p99 during encode", f"{p99:.3f} ms"),
        ("max pause during snapshot", f"{max_pause_ms:.2f} ms"),
        ("longest GC pass during snapshot", _gc_row(gc_pauses)),
        ("load average at end", " ".join(f"{x:.1f}" for x in os.getloadavg())),
        ("restore", f"{restore_s:.1f} s"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(
        json.dumps(
            {
                "bench": "catalog",
                "snapshot_1m_s": round(snap_s, 2),
                "snapshot_max_pause_ms": round(max_pause_ms, 2),
                "list_first_page_ms_1m": round(list_ms, 2),
                "apply_ops_s": round(apply_ops_s),
            }
        )
    )


if __name__ == "__main__":
    main()
