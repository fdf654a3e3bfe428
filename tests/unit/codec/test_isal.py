"""The isal-cauchy coder: ISA-L's Cauchy Reed-Solomon, native (libisal) and pure Python."""

from __future__ import annotations

import ctypes
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.codec import get_coder
from blobstore.codec.ec import (
    AUTO,
    ZFEC,
    NotEnoughPieces,
    codes_inline,
    register_coder,
    resolve_coder,
)
from blobstore.codec.isal import ISAL, NATIVE, IsalCoder, cauchy_matrix, gf_mul

needs_native = pytest.mark.skipif(not NATIVE, reason="libisal.so.2 (Debian libisal2) missing")


def _coders(k: int, m: int) -> list[IsalCoder]:
    out = [IsalCoder(k, m, native=False)]
    if NATIVE:
        out.append(IsalCoder(k, m))
    return out


def test_known_answer() -> None:
    # chunks outlive code versions: the parity bytes of this code must never change
    data = [bytes(range(i * 16, i * 16 + 16)) for i in range(4)]
    for coder in _coders(4, 2):
        parity = [bytes(p) for p in coder.encode(data)]
        assert parity == [
            bytes.fromhex("e8c8a88868482808f5d5b59575553515"),
            bytes.fromhex("d2f292b252721232cfef8faf4f6f0f2f"),
        ]


def test_gf_arithmetic() -> None:
    assert gf_mul(0, 7) == 0 and gf_mul(1, 0xAB) == 0xAB
    assert gf_mul(2, 0x80) == 0x1D  # reduction by x^8 + x^4 + x^3 + x^2 + 1
    for a in range(1, 256):
        assert any(gf_mul(a, b) == 1 for b in range(1, 256))


@needs_native
@pytest.mark.parametrize(("k", "m"), [(4, 2), (1, 1), (6, 3), (10, 4), (12, 4)])
def test_matrix_is_isal_cauchy1(k: int, m: int) -> None:
    lib = ctypes.CDLL("libisal.so.2")
    n = k + m
    a = (ctypes.c_ubyte * (n * k))()
    lib.gf_gen_cauchy1_matrix(a, n, k)
    assert tuple(a) == tuple(v for row in cauchy_matrix(k, m) for v in row)


@pytest.mark.parametrize(("k", "m"), [(4, 2), (1, 2), (3, 0), (6, 3), (2, 1)])
def test_every_k_subset_decodes(k: int, m: int) -> None:
    rng = random.Random(k * 10 + m)
    data = [rng.randbytes(41) for _ in range(k)]
    for coder in _coders(k, m):
        parity = coder.encode(data)
        everything = list(enumerate(data + [bytes(p) for p in parity]))
        for subset in itertools.combinations(everything, k):
            assert [bytes(p) for p in coder.decode(list(subset))] == data


@settings(deadline=None, max_examples=40)
@given(
    st.integers(1, 8), st.integers(1, 4), st.integers(1, 3000), st.randoms(use_true_random=False)
)
def test_native_and_python_agree(k: int, m: int, size: int, rng: random.Random) -> None:
    data = [rng.randbytes(size) for _ in range(k)]
    coders = _coders(k, m)
    parities = [[bytes(p) for p in c.encode(data)] for c in coders]
    assert all(p == parities[0] for p in parities)
    pieces = list(enumerate(data + parities[0]))
    rng.shuffle(pieces)
    survivors = pieces[:k]
    for c in coders:  # a chunk written by either decodes with the other
        assert [bytes(p) for p in c.decode(survivors)] == data
    chosen = rng.sample(range(k, k + m), rng.randint(1, m))
    for c in coders:
        assert [bytes(p) for p in c.encode(data, chosen)] == [parities[0][i - k] for i in chosen]


def test_read_only_views_and_untouched_data_pieces() -> None:
    rng = random.Random(5)
    data = [rng.randbytes(4096) for _ in range(4)]
    for coder in _coders(4, 2):
        views = [memoryview(d)[:] for d in data]  # read-only views of bytes
        parity = coder.encode(views)
        assert [bytes(p) for p in parity] == [bytes(p) for p in coder.encode(data)]
        out = coder.decode([(0, views[0]), (4, parity[0]), (2, views[2]), (3, views[3])])
        assert out[0] is views[0] and bytes(out[1]) == data[1]


def test_errors() -> None:
    coder = IsalCoder(4, 2, native=False)
    with pytest.raises(NotEnoughPieces):
        coder.decode([(0, b"a"), (1, b"b"), (2, b"c")])
    with pytest.raises(ValueError, match="same length"):
        coder.decode([(0, b"a"), (1, b"b"), (2, b"c"), (4, b"dd")])
    with pytest.raises(ValueError, match="outside"):
        coder.decode([(6, b"a")])
    with pytest.raises(ValueError, match="parity indexes"):
        coder.encode([b"a"] * 4, (3,))
    with pytest.raises(ValueError, match="4 data pieces"):
        coder.encode([b"a"] * 3)
    with pytest.raises(ValueError):
        IsalCoder(0, 2)


def test_registry_prefers_it_only_when_native() -> None:
    assert get_coder(ISAL, 4, 2).name == ISAL
    assert resolve_coder(AUTO) == (ISAL if NATIVE else ZFEC)
    assert resolve_coder(ZFEC) == ZFEC
    with pytest.raises(ValueError, match="auto"):
        register_coder(AUTO, IsalCoder)


def test_only_the_native_coder_codes_default_stripes_inline() -> None:
    # 4+2 over 1 MiB stripes: 256 KiB pieces, about a worker-thread hop of native work
    python = IsalCoder(4, 2, native=False)
    assert not codes_inline(python, 256 * 1024)
    assert codes_inline(python, 4096)
    if NATIVE:
        native = IsalCoder(4, 2)
        assert codes_inline(native, 256 * 1024)
        assert not codes_inline(native, 1 << 20)
