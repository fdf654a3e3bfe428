"""blobstore.rawbuf: uninitialised bytearrays for buffers that I/O fills at once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from blobstore.rawbuf import ARENA_MAX, uninitialized


@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 256 * 1024, 4 * 1024 * 1024 + 3])
def test_size_and_type(n: int) -> None:
    buf = uninitialized(n)
    assert type(buf) is bytearray
    assert len(buf) == n
    buf[:] = b"\x5a" * n  # writable, resizable like any bytearray
    assert buf.count(0x5A) == n
    buf.extend(b"xy")
    assert len(buf) == n + 2


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        uninitialized(-1)


def test_small_buffers_are_zeroed() -> None:
    # below the threshold it is a plain bytearray(n): zero-filled
    assert uninitialized(100) == bytearray(100)


# A fresh interpreter: allocate and free bulk buffers of sizes glibc's heuristics handle
# badly (cycling through 1.8, 3.9 and 2 MiB, like chunkserver read batches and received
# frames), print the page faults of the second half (after the heap reached its size).
_CHURN = """
import resource, sys
from blobstore.rawbuf import tune_allocator, uninitialized
print(tune_allocator())
def churn(n):
    live = []
    for i in range(n):
        buf = uninitialized((1835064, 4063296, 2 << 20)[i % 3])
        buf[::4096] = b"x" * len(range(0, len(buf), 4096))  # touch every page
        live.append(buf)
        if len(live) > 4:
            live.pop(0)
churn(60)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn(120)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _fresh(script: str, **settings: str) -> tuple[bool, int]:
    """Run ``script`` in a fresh interpreter under these environment settings, with any
    malloc settings of the test run's own environment removed; (whether tune_allocator
    applied, the number it printed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, **settings},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "True", int(out[1])


def _churn(**settings: str) -> tuple[bool, int]:
    """(whether tune_allocator applied, page faults)."""
    return _fresh(_CHURN, **settings)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_tuned_allocator_reuses_bulk_buffers() -> None:
    applied, faults = _churn()
    if not applied:
        pytest.skip("not glibc (no mallopt)")
    assert faults < 256, faults  # glibc left to its heuristics: ~3.9k here


@pytest.mark.parametrize(
    ("name", "value", "applied"),
    [
        ("MALLOC_TRIM_THRESHOLD_", str(1 << 20), False),
        ("MALLOC_MMAP_THRESHOLD_", str(1 << 20), False),
        ("MALLOC_ARENA_MAX", "4", False),
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576", False),
        ("GLIBC_TUNABLES", "glibc.rtld.nns=4", True),  # not about malloc
    ],
)
def test_the_operators_malloc_settings_win(name: str, value: str, applied: bool) -> None:
    tuned, _ = _churn(**{name: value})
    if applied and not tuned:
        pytest.skip("not glibc (no mallopt)")
    assert tuned == applied


# Six threads at once each allocate 48 MiB, then free it. glibc gives each thread an
# arena of its own (up to 8 per core), and each arena keeps up to the trim threshold of
# freed heap: 288 MiB stayed resident here, 60-204 MiB with ARENA_MAX arenas (it depends
# on how the threads share them). The test counts the arenas (``malloc_info``'s heaps),
# which is exact, rather than the resident memory, which varies.
_THREADS = """
import ctypes, os, sys, tempfile, threading
from blobstore.rawbuf import tune_allocator, uninitialized
print(tune_allocator())
barrier = threading.Barrier(6)
def work():
    barrier.wait()
    live = [uninitialized(4 << 20) for _ in range(12)]
    for b in live:
        b[::4096] = b"x" * len(range(0, len(b), 4096))
    barrier.wait()  # all six hold their buffers at once: six arenas if glibc may
    del live
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "malloc_info.xml").encode()
    f = libc.fopen(path, b"w")
    libc.malloc_info(0, f)
    libc.fclose(f)
    with open(path) as xml:
        print(xml.read().count("<heap nr="))
"""


def _arenas(**settings: str) -> tuple[bool, int]:
    """(whether tune_allocator applied, malloc arenas after six threads allocated)."""
    return _fresh(_THREADS, **settings)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_threads_share_at_most_arena_max_arenas() -> None:
    applied, arenas = _arenas()
    if not applied:
        pytest.skip("not glibc (no mallopt)")
    assert 1 <= arenas <= ARENA_MAX
    # the count is meaningful: allowed more, the six threads take arenas of their own
    _, operators = _arenas(MALLOC_ARENA_MAX="16")
    assert operators > ARENA_MAX
