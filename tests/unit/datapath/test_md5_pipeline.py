"""The writer's MD5 pipeline: in-order updates on a shared pool, many objects at once."""

from __future__ import annotations

import asyncio
import hashlib
import random

from blobstore.datapath.md5 import OrderedMd5


async def _digest(pieces: list[bytes], max_pending: int) -> bytes:
    md5 = OrderedMd5(max_pending)
    try:
        for p in pieces:
            await md5.update(memoryview(p))
        return await md5.digest()
    finally:
        md5.close()


async def test_concurrent_objects_hash_in_order() -> None:
    rng = random.Random(7)
    objects = [
        [rng.randbytes(rng.choice((10, 70_000, 300_000))) for _ in range(rng.randint(0, 12))]
        for _ in range(16)
    ]
    digests = await asyncio.gather(*(_digest(o, max_pending=2) for o in objects))
    for pieces, digest in zip(objects, digests, strict=True):
        assert digest == hashlib.md5(b"".join(pieces)).digest()


async def test_close_drops_queued_work_without_waiting() -> None:
    md5 = OrderedMd5(max_pending=100)
    for _ in range(20):
        await md5.update(bytes(200_000))
    md5.close()  # queued updates are cancelled; nothing hangs
    md5.close()
