"""Checked-in format-version-1 shard files must keep parsing to the same bytes.

The fixtures in ``tests/fixtures/shards/`` were written by ``build_v1_fixtures`` below
(``python -m tests.unit.chunkserver.test_shardfile_fixture --write`` regenerates them,
which is only legitimate when adding a *new* version's fixtures: v1 bytes never change).
A 150-byte object (bytes 0..149), chunk id 00112233-..., zfec 4+2, 64-byte stripes:
stripes of 64, 64 and 22 bytes, pieces of 16, 16 and 6 bytes. Shard 1 holds object
data, shard 4 the first parity piece of each stripe.
"""

from __future__ import annotations

import io
import sys
import uuid
from pathlib import Path

import xxhash

from blobstore.codec.ec import ZfecCoder
from blobstore.codec.ranges import Layout, split_stripe
from chunkserver.shardfile import ShardHeader, ShardReader, write_shard

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "shards"
CID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
OBJECT = bytes(range(150))
LAYOUT = Layout(chunk_bytes=192, stripe_bytes=64, k=4, m=2)
# xxh3-128 of each fixture file, recorded when the v1 format was fixed.
DIGESTS = {
    "v1-zfec-4+2-shard1.shard": "85b18df2bc1070841ba26602ca651c50",
    "v1-zfec-4+2-shard4.shard": "78b7cada7ca6bd5a2ff30ad9cdf42c16",
}


def _pieces(shard: int) -> list[bytes]:
    coder = ZfecCoder(LAYOUT.k, LAYOUT.m)
    out = []
    for s in range(0, len(OBJECT), LAYOUT.stripe_bytes):
        data = split_stripe(LAYOUT, OBJECT[s : s + LAYOUT.stripe_bytes])
        out.append((data + coder.encode(data))[shard])
    return out


def build_v1_fixtures() -> dict[str, bytes]:
    files = {}
    for shard in (1, 4):
        header = ShardHeader(CID, shard, 4, 2, "zfec", 64, len(OBJECT))
        buf = io.BytesIO()
        write_shard(buf, header, _pieces(shard))
        files[f"v1-zfec-4+2-shard{shard}.shard"] = buf.getvalue()
    return files


def test_fixture_files_are_unchanged() -> None:
    for name, digest in DIGESTS.items():
        assert xxhash.xxh3_128_hexdigest((FIXTURES / name).read_bytes()) == digest, name


def test_v1_fixtures_parse_and_read_back() -> None:
    for shard in (1, 4):
        raw = (FIXTURES / f"v1-zfec-4+2-shard{shard}.shard").read_bytes()
        assert len(raw) == 72 + 16 + 16 + 6 + 3 * 8
        assert raw[:10] == b"BSSHARD\x00\x01\x00"
        reader = ShardReader.from_bytes(raw)
        assert reader.header == ShardHeader(CID, shard, 4, 2, "zfec", 64, 150)
        assert reader.read_range() == b"".join(_pieces(shard))
        assert reader.verify() == ()
    # Shard 1 is plain object data: bytes 16..31 of stripe 0, 80..95 of stripe 1, ...
    raw1 = (FIXTURES / "v1-zfec-4+2-shard1.shard").read_bytes()
    assert ShardReader.from_bytes(raw1).read_range(0, 16) == bytes(range(16, 32))
    assert raw1[72:88] == bytes(range(16, 32))
    assert ShardReader.from_bytes(raw1).read_range(32, 6) == bytes(range(134, 140))


def test_current_writer_still_produces_v1_bytes() -> None:
    for name, data in build_v1_fixtures().items():
        assert (FIXTURES / name).read_bytes() == data, name


if __name__ == "__main__":
    if "--write" in sys.argv:
        FIXTURES.mkdir(parents=True, exist_ok=True)
        for fname, fdata in build_v1_fixtures().items():
            (FIXTURES / fname).write_bytes(fdata)
            print(fname, xxhash.xxh3_128_hexdigest(fdata))
