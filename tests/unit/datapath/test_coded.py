"""``stripes.coded``: coding work runs on the loop for short pieces, in a thread otherwise."""

from __future__ import annotations

import threading

from blobstore.codec.ec import ZfecCoder
from blobstore.datapath.stripes import coded


async def test_short_pieces_are_coded_on_the_calling_thread() -> None:
    coder = ZfecCoder(4, 2)
    fut = coded(coder, 4096, threading.get_ident)
    assert fut.done()  # no hop: the result is there at once
    assert await fut == threading.get_ident()


async def test_long_pieces_are_coded_in_a_worker_thread() -> None:
    coder = ZfecCoder(4, 2)
    fut = coded(coder, coder.inline_piece_bytes, threading.get_ident)
    assert await fut != threading.get_ident()


async def test_the_coded_result_is_the_coders() -> None:
    coder = ZfecCoder(4, 2)
    data = [bytes([i]) * 1000 for i in range(4)]
    (parity,) = await coded(coder, 1000, coder.encode, data, (5,))
    assert parity == coder.encode(data)[1]
