"""ErasureCoder contract, ZfecCoder and the registry."""

from __future__ import annotations

import importlib.util
import itertools
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.codec.ec import (
    ZFEC,
    ErasureCoder,
    NotEnoughPieces,
    ZfecCoder,
    coder_names,
    codes_inline,
    ec_worker_count,
    get_coder,
    register_coder,
)


def _pieces(k: int, size: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(k)]


@pytest.mark.parametrize(("k", "m"), [(4, 2), (1, 2), (3, 0), (6, 3), (2, 1)])
def test_every_k_subset_decodes(k: int, m: int) -> None:
    coder = ZfecCoder(k, m)
    data = _pieces(k, 37, seed=k * 10 + m)
    parity = coder.encode(data)
    assert len(parity) == m
    assert all(len(p) == 37 for p in parity)
    everything = list(enumerate(data + parity))
    for subset in itertools.combinations(everything, k):
        assert coder.decode(list(subset)) == data
        assert coder.decode(list(reversed(subset))) == data


@settings(deadline=None, max_examples=60)
@given(
    st.integers(1, 8),
    st.integers(0, 4),
    st.integers(1, 300),
    st.randoms(use_true_random=False),
)
def test_random_losses_decode(k: int, m: int, size: int, rng: random.Random) -> None:
    coder = ZfecCoder(k, m)
    data = [rng.randbytes(size) for _ in range(k)]
    parity = coder.encode(data)
    pieces = list(enumerate(data + parity))
    rng.shuffle(pieces)
    survivors = pieces[: k + rng.randint(0, m)]
    assert coder.decode(survivors) == data


def test_systematic_healthy_decode_returns_data_untouched() -> None:
    coder = ZfecCoder(4, 2)
    data = _pieces(4, 16, 1)
    # Garbage parity is never looked at when all data pieces are present.
    assert coder.decode([(i, p) for i, p in enumerate(data)] + [(4, bytes(16))]) == data


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 200), st.randoms(use_true_random=False))
def test_encode_chosen_parity_equals_full_encode(
    k: int, m: int, size: int, rng: random.Random
) -> None:
    coder = ZfecCoder(k, m)
    data = [rng.randbytes(size) for _ in range(k)]
    full = coder.encode(data)
    chosen = rng.sample(range(k, k + m), rng.randint(1, m))
    assert coder.encode(data, chosen) == [full[i - k] for i in chosen]
    assert coder.encode(data, ()) == []
    with pytest.raises(ValueError, match="parity indexes"):
        coder.encode(data, (k - 1,))


def test_decode_passes_given_data_pieces_through_uncopied() -> None:
    coder = ZfecCoder(4, 2)
    data = _pieces(4, 64, 7)
    parity = coder.encode(data)
    views = [memoryview(p) for p in data]
    out = coder.decode([(0, views[0]), (4, parity[0]), (2, views[2]), (3, views[3])])
    assert out[0] is views[0] and out[2] is views[2] and out[3] is views[3]
    assert [bytes(p) for p in out] == data


def test_decode_errors() -> None:
    coder = ZfecCoder(4, 2)
    data = _pieces(4, 8, 2)
    with pytest.raises(NotEnoughPieces):
        coder.decode([(0, data[0]), (1, data[1]), (1, data[1]), (2, data[2])])
    with pytest.raises(ValueError):
        coder.decode([(0, data[0]), (1, data[1]), (2, data[2]), (6, data[3])])
    with pytest.raises(ValueError):
        coder.decode([(0, data[0]), (1, data[1]), (2, data[2]), (3, b"x")])
    with pytest.raises(ValueError):
        coder.encode(data[:3])
    with pytest.raises(ValueError):
        coder.encode([*data[:3], b"short"])
    with pytest.raises(ValueError):
        ZfecCoder(0, 2)
    with pytest.raises(ValueError):
        ZfecCoder(200, 100)


def test_known_parity_bytes() -> None:
    """zfec's parity must not change under us: shards on disk depend on it."""
    coder = ZfecCoder(4, 2)
    parity = coder.encode([bytes([i]) * 8 for i in range(4)])
    assert parity == [b'""""""""', b"\t\t\t\t\t\t\t\t"]


def test_registry() -> None:
    coder = get_coder(ZFEC, 4, 2)
    assert isinstance(coder, ErasureCoder)
    assert (coder.name, coder.k, coder.m) == ("zfec", 4, 2)
    assert get_coder("zfec", 4, 2) is coder
    assert get_coder("zfec", 3, 2) is not coder
    assert ZFEC in coder_names()
    with pytest.raises(ValueError, match="unknown erasure coder"):
        get_coder("nope", 4, 2)
    with pytest.raises(ValueError):
        get_coder("zfec", 0, 2)
    with pytest.raises(ValueError):
        register_coder("zfec", lambda k, m: ZfecCoder(k, m))
    with pytest.raises(ValueError):
        register_coder("a-name-longer-than-16", ZfecCoder)
    register_coder("zfec", ZfecCoder)  # same factory again is fine


def test_worker_count() -> None:
    assert ec_worker_count(8) == 8
    assert ec_worker_count(None) == 1
    assert ec_worker_count(64) == 32
    assert ec_worker_count(8, releases_gil=False) == 1


def test_one_coder_shared_by_threads() -> None:
    """Callers share one coder across asyncio.to_thread workers: results must not mix."""
    coder = get_coder(ZFEC, 4, 2)
    cases = [_pieces(4, 4096, seed) for seed in range(16)]
    expected = [coder.encode(d) for d in cases]

    def work(i: int) -> bool:
        data = cases[i]
        parity = coder.encode(data)
        rebuilt = coder.decode([(2, data[2]), (3, data[3]), (4, parity[0]), (5, parity[1])])
        return parity == expected[i] and rebuilt == data

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, list(range(16)) * 4))


def test_ec_bench_smoke() -> None:
    """bench/ec_bench.py stays runnable and reports the agreed keys."""
    path = Path(__file__).resolve().parents[3] / "bench" / "ec_bench.py"
    spec = importlib.util.spec_from_file_location("ec_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run(4, 2, 4096, 0.01, repeats=1)
    assert {
        "bench",
        "encode_mb_s_1t",
        "encode_mb_s_2t",
        "decode_mb_s_1t",
        "decode_mb_s_2t",
        "releases_gil",
    } <= set(result)
    assert result["bench"] == "ec"
    assert result["encode_mb_s_1t"] > 0


def test_zfec_codes_only_short_pieces_inline() -> None:
    coder = ZfecCoder(4, 2)
    assert codes_inline(coder, 64 * 1024 - 1)
    assert not codes_inline(coder, 64 * 1024)  # ~0.3 ms of zfec work: a worker thread
