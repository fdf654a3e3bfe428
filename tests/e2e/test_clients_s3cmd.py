"""s3cmd (Debian's 2.3) with a generated path-style ``.s3cfg`` against a real cluster.

s3cmd lists with ListObjects v1 (no encoding-type), signs payloads fully, sends
``x-amz-meta-s3cmd-attrs`` and a storage class, uploads multipart above
``multipart_chunk_size_mb`` (5 MiB here), checks the MD5 of downloads against the ETag, and
its ``cp`` is CopyObject + PutObjectAcl; ``info`` reads ``?acl``, ``?policy``, ``?cors``.
Covered: mb, put (small and multipart), get, info, cp, sync up/down (second sync moves
nothing), del, del --recursive, rb; every byte is checked by SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import (
    S3Endpoint,
    bucket_digest,
    client_env,
    make_tree,
    require_tool,
    run_cli,
    sha256_file,
    tree_digest,
)

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


@dataclass(frozen=True)
class S3cmd:
    path: str
    config: Path
    env: dict[str, str]

    def __call__(self, *args: str) -> list[str]:
        argv = [self.path, "--config", str(self.config), "--no-progress", *args]
        out = run_cli(argv, self.env).stdout
        return [line for line in out.splitlines() if line.strip()]


@pytest.fixture
def s3cmd(client_endpoint: S3Endpoint, tmp_path: Path) -> S3cmd:
    path = require_tool("s3cmd")
    url = urlsplit(client_endpoint.endpoint_url)
    https = url.scheme == "https"
    config = tmp_path / "s3cfg"
    config.write_text(
        "[default]\n"
        f"access_key = {client_endpoint.access_key}\n"
        f"secret_key = {client_endpoint.secret_key}\n"
        f"host_base = {url.netloc}\n"
        f"host_bucket = {url.netloc}\n"  # no %(bucket)s: path-style addressing
        "bucket_location = us-east-1\n"
        f"use_https = {https}\n"
        f"ca_certs_file = {client_endpoint.ca_bundle or ''}\n"
        "check_ssl_certificate = True\n"
        "signature_v2 = False\n"
        "multipart_chunk_size_mb = 5\n"
        "progress_meter = False\n"
    )
    return S3cmd(path, config, client_env(HOME=str(tmp_path)))


def test_put_get_info_cp_del(
    s3cmd: S3cmd, fresh_bucket: str, verifier: Any, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    make_tree(tmp_path / "gen", 0, seed=1, odd_names=False, big=(13 * MiB + 7,))
    (tmp_path / "gen/big/b0.bin").rename(big)
    small = tmp_path / "small name+x.txt"
    small.write_bytes(b"hello s3cmd\n" * 100)

    s3cmd("mb", f"s3://{fresh_bucket}")
    s3cmd("put", str(big), f"s3://{fresh_bucket}/big.bin")
    s3cmd("put", str(small), f"s3://{fresh_bucket}/dir/small name+x.txt")
    assert verifier.head_object(Bucket=fresh_bucket, Key="big.bin")["ETag"].endswith('-3"')
    assert bucket_digest(verifier, fresh_bucket) == {
        "big.bin": sha256_file(big),
        "dir/small name+x.txt": sha256_file(small),
    }

    got = tmp_path / "got.bin"
    s3cmd("get", f"s3://{fresh_bucket}/big.bin", str(got))
    assert sha256_file(got) == sha256_file(big)
    got_small = tmp_path / "got-small.txt"
    s3cmd("get", f"s3://{fresh_bucket}/dir/small name+x.txt", str(got_small))
    assert got_small.read_bytes() == small.read_bytes()

    info = "\n".join(s3cmd("info", f"s3://{fresh_bucket}/big.bin"))
    assert "File size: 13631495" in info
    bucket_info = "\n".join(s3cmd("info", f"s3://{fresh_bucket}"))
    assert "Policy:    none" in bucket_info or "Policy: none" in bucket_info.replace("  ", " ")

    s3cmd("cp", f"s3://{fresh_bucket}/big.bin", f"s3://{fresh_bucket}/copy/big.bin")
    s3cmd("cp", f"s3://{fresh_bucket}/dir/small name+x.txt", f"s3://{fresh_bucket}/copy/s.txt")
    digest = bucket_digest(verifier, fresh_bucket, "copy/")
    assert digest == {"big.bin": sha256_file(big), "s.txt": sha256_file(small)}

    listing = s3cmd("ls", "--recursive", f"s3://{fresh_bucket}")
    assert len(listing) == 4
    assert any(line.endswith(f"s3://{fresh_bucket}/dir/small name+x.txt") for line in listing)

    s3cmd("del", f"s3://{fresh_bucket}/big.bin")
    s3cmd("del", "--recursive", "--force", f"s3://{fresh_bucket}/copy/")
    assert list(bucket_digest(verifier, fresh_bucket)) == ["dir/small name+x.txt"]
    s3cmd("del", f"s3://{fresh_bucket}/dir/small name+x.txt")
    s3cmd("rb", f"s3://{fresh_bucket}")
    assert fresh_bucket not in [b["Name"] for b in verifier.list_buckets()["Buckets"]]


def test_sync_both_ways(s3cmd: S3cmd, fresh_bucket: str, verifier: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    want = make_tree(src, 80, seed=9, big=(6 * MiB,))
    s3cmd("mb", f"s3://{fresh_bucket}")

    up = s3cmd("sync", f"{src}/", f"s3://{fresh_bucket}/tree/")
    assert sum(line.startswith("upload:") for line in up) == len(want)
    assert bucket_digest(verifier, fresh_bucket, "tree/") == want
    again = s3cmd("sync", f"{src}/", f"s3://{fresh_bucket}/tree/")
    assert not [line for line in again if line.startswith(("upload:", "remote copy:"))], again

    dst = tmp_path / "dst"
    down = s3cmd("sync", f"s3://{fresh_bucket}/tree/", f"{dst}/")
    assert sum(line.startswith("download:") for line in down) == len(want)
    assert tree_digest(dst) == want
    again = s3cmd("sync", f"s3://{fresh_bucket}/tree/", f"{dst}/")
    assert not [line for line in again if line.startswith("download:")], again

    (src / "d5/s2/f0005.bin").write_bytes(b"changed by the test")
    (src / "d6/s0/f0006.bin").unlink()
    changed = s3cmd("sync", "--delete-removed", f"{src}/", f"s3://{fresh_bucket}/tree/")
    assert [line for line in changed if line.startswith("upload:")] != []
    assert bucket_digest(verifier, fresh_bucket, "tree/") == tree_digest(src)
