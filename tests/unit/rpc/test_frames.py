"""FrameDecoder: any split of the byte stream yields the same frames; bad headers raise."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.errors import ProtocolError
from blobstore.rpc.frames import HEADER, FrameDecoder, FrameType, pack_header


def _frame(ftype: int, sid: int, payload: bytes, flags: int = 0) -> bytes:
    return pack_header(ftype, flags, sid, len(payload)) + payload


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(FrameType)),
            st.integers(0, 2**32 - 1),
            st.tuples(
                st.sampled_from([0, 1, 100, 33_000, 70_000, 140_000]), st.integers(0, 2**32)
            ).map(lambda size_seed: random.Random(size_seed[1]).randbytes(size_seed[0])),
        ),
        max_size=6,
    ),
    st.lists(st.integers(1, 200_000), max_size=20),
)
def test_any_split_gives_the_same_frames(
    frames: list[tuple[FrameType, int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(_frame(t, sid, p) for t, sid, p in frames)
    dec = FrameDecoder(scratch_size=128 * 1024, big_threshold=32 * 1024)
    got = []
    pos = 0
    for cut in [*cuts, len(stream)]:
        end = min(len(stream), pos + cut)
        got.extend(dec.feed(stream[pos:end]))
        pos = end
    assert [(t, s, bytes(p)) for t, _, s, p in got] == [(int(t), s, p) for t, s, p in frames]
    assert dec.buffered == 0


def test_a_big_data_payload_received_in_scratch_is_handed_over_not_copied() -> None:
    """A DATA payload of at least half the scratch buffer that arrived whole in it is
    delivered as a view of it; the decoder moves on to a new scratch buffer, so the view
    stays intact whatever is received next."""
    dec = FrameDecoder(scratch_size=128 * 1024, big_threshold=32 * 1024)
    first, second = random.randbytes(70_000), random.randbytes(70_000)
    small = _frame(FrameType.RESPONSE, 3, b"r" * 40)
    stream = small + _frame(FrameType.DATA, 3, first) + _frame(FrameType.DATA, 3, second)
    buf = dec.get_buffer()
    n = min(len(buf), len(stream))
    buf[:n] = stream[:n]  # one recv: the RESPONSE, all of the first DATA, part of the next
    got = dec.buffer_updated(n)
    assert [(t, len(p)) for t, _, _, p in got] == [
        (FrameType.RESPONSE, 40),
        (FrameType.DATA, 70_000),
    ]
    handed = got[1][3]
    assert isinstance(handed, memoryview) and isinstance(got[0][3], bytes)  # small: copied
    rest = dec.feed(stream[n:])
    assert [bytes(p) for _, _, _, p in rest] == [second]
    assert bytes(handed) == first  # not overwritten by what came after
    # a big non-DATA payload (a large reply) is still copied out
    dec = FrameDecoder(scratch_size=128 * 1024, big_threshold=32 * 1024)
    (reply,) = dec.feed(_frame(FrameType.RESPONSE, 5, first))
    assert isinstance(reply[3], bytes | bytearray) and bytes(reply[3]) == first


def test_truncated_frame_stays_buffered() -> None:
    dec = FrameDecoder()
    data = _frame(FrameType.DATA, 1, b"x" * 100)
    assert dec.feed(data[:50]) == []
    assert dec.buffered == 50


@pytest.mark.parametrize(
    "header",
    [
        HEADER.pack(17 * 1024 * 1024, 4, 0, 0, 1),  # over the cap
        HEADER.pack(1, 0, 0, 0, 1),  # type 0
        HEADER.pack(1, 99, 0, 0, 1),  # unknown type
        HEADER.pack(1, 2, 0x80, 0, 1),  # unknown flag
        HEADER.pack(1, 2, 0, 5, 1),  # reserved bits
    ],
)
def test_malformed_headers_raise(header: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(header + b"\0")


def test_pre_auth_cap_is_enforced() -> None:
    dec = FrameDecoder(max_payload=4096)
    with pytest.raises(ProtocolError):
        dec.feed(pack_header(FrameType.AUTH, 0, 0, 5000))
