"""The object commands (``blobstore mb/rb/ls/cp/mv/sync/rm/cat/stat/presign``) as a user
runs them: real subprocesses against the in-process gateway (``s3_server``), data checked
by hash through an independent boto3 client.

Runs once over plain HTTP; the TLS test re-runs a subset over HTTPS with a CA bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config

from tests.e2e.conftest import S3Endpoint, collect_leaked_sockets

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


CLI = [sys.executable, "-m", "blobstore"]


@pytest.fixture
def variant() -> str:
    return "http-default"


@pytest.fixture
def s3(s3_server: S3Endpoint) -> Iterator[BaseClient]:
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name="us-east-1",
        verify=s3_server.ca_bundle or True,
        config=Config(s3={"addressing_style": "path"}),
    )
    yield client
    client.close()
    collect_leaked_sockets()


@pytest.fixture
def bucket(s3: BaseClient) -> Iterator[str]:
    name = f"cli-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys})
    for up in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    s3.delete_bucket(Bucket=name)


class Cli:
    def __init__(self, ep: S3Endpoint, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BLOBSTORE_"))}
        self.env.update(
            BLOBSTORE_ENDPOINT=ep.endpoint_url,
            BLOBSTORE_ACCESS_KEY=ep.access_key,
            BLOBSTORE_SECRET_KEY=ep.secret_key,
            BLOBSTORE_STATE_DIR=str(cwd / "state"),
            HOME=str(cwd),
        )
        if ep.ca_bundle:
            self.env["AWS_CA_BUNDLE"] = ep.ca_bundle

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        check: int | None = 0,
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            [*CLI, *args],
            input=input,
            capture_output=True,
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            timeout=120,
        )
        if check is not None:
            assert proc.returncode == check, (args, proc.returncode, proc.stderr.decode())
        return proc

    def text(self, *args: str, **kw: Any) -> str:
        return self.run(*args, **kw).stdout.decode()

    def json(self, *args: str, **kw: Any) -> list[dict[str, Any]]:
        out = self.run(*args, "--json", **kw).stdout.decode()
        return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def cli(s3_server: S3Endpoint, tmp_path: Path) -> Cli:
    return Cli(s3_server, tmp_path)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _object(s3: BaseClient, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _random_file(path: Path, size: int, seed: int = 0) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def test_bucket_commands(cli: Cli, s3: BaseClient) -> None:
    name = f"cli-mb-{uuid.uuid4().hex[:12]}"
    assert cli.text("mb", f"s3://{name}") == f"make_bucket: {name}\n"
    assert name in cli.text("ls")
    assert {"type": "bucket", "name": name}.items() <= next(
        d for d in cli.json("ls") if d["name"] == name
    ).items()
    assert cli.text("ls", f"s3://{name}") == ""
    assert "error:" in cli.run("mb", f"s3://{name}", check=1).stderr.decode()
    s3.put_object(Bucket=name, Key="a/b", Body=b"x")
    assert "BucketNotEmpty" in cli.run("rb", f"s3://{name}", check=1).stderr.decode()
    assert cli.text("stat", f"s3://{name}") == f"bucket: {name}\n"
    out = cli.text("rb", f"s3://{name}", "--force")
    assert out == f"delete: s3://{name}/a/b\nremove_bucket: {name}\n"
    assert name not in cli.text("ls")
    assert "NoSuchBucket" in cli.run("ls", f"s3://{name}", check=1).stderr.decode()


def test_cp_30mib_both_ways(cli: Cli, s3: BaseClient, bucket: str, tmp_path: Path) -> None:
    data = _random_file(tmp_path / "big.bin", 30 * MiB + 123)
    [up] = cli.json("cp", "big.bin", f"s3://{bucket}/dir/")
    assert up["status"] == "ok" and up["multipart"] and up["parts_uploaded"] == 4
    assert up["dst"] == f"s3://{bucket}/dir/big.bin"
    assert _md5(_object(s3, bucket, "dir/big.bin")) == _md5(data)

    [st] = cli.json("stat", f"s3://{bucket}/dir/big.bin")
    assert st["size"] == len(data) and st["etag"].endswith("-4")
    assert "30.0 MiB" in cli.text("ls", f"s3://{bucket}/dir/", "--human")
    ls = cli.text("ls", f"s3://{bucket}")
    assert ls.split() == ["PRE", "dir/"]

    out = cli.text("cp", f"s3://{bucket}/dir/big.bin", "down.bin", "--concurrency", "3")
    assert out == f"download: s3://{bucket}/dir/big.bin to down.bin\n"
    [down] = cli.json("cp", f"s3://{bucket}/dir/big.bin", "down2.bin", "--part-size", "5MiB")
    assert down["verified"] and down["multipart"]  # checked against the multipart ETag
    assert _md5((tmp_path / "down2.bin").read_bytes()) == _md5(data)
    assert _md5((tmp_path / "down.bin").read_bytes()) == _md5(data)
    head = s3.head_object(Bucket=bucket, Key="dir/big.bin")
    assert (tmp_path / "down.bin").stat().st_mtime == head["LastModified"].timestamp()
    assert _md5(cli.run("cat", f"s3://{bucket}/dir/big.bin").stdout) == _md5(data)


def test_recursive_cp_and_sync(cli: Cli, s3: BaseClient, bucket: str, tmp_path: Path) -> None:
    tree = {"a.txt": b"alpha", "sub/b.bin": os.urandom(3000), "sub/deep/c": b"", "d e.txt": b"d"}
    for rel, data in tree.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_bytes(data)
    results = cli.json("cp", "-r", "src", f"s3://{bucket}/tree")
    assert sorted(r["dst"] for r in results) == sorted(f"s3://{bucket}/tree/{k}" for k in tree)
    keys = cli.text("ls", "-r", f"s3://{bucket}/tree/").splitlines()
    assert sorted(line.split(maxsplit=3)[3] for line in keys) == sorted(f"tree/{k}" for k in tree)
    assert cli.text("sync", "src", f"s3://{bucket}/tree") == ""  # nothing to do

    # down into a fresh directory, then again: nothing to do
    down = cli.json("sync", f"s3://{bucket}/tree", "dst")
    assert len(down) == len(tree)
    for rel, data in tree.items():
        assert (tmp_path / "dst" / rel).read_bytes() == data
    assert cli.text("sync", f"s3://{bucket}/tree", "dst") == ""

    # a changed file goes up alone; --dry-run does nothing; --delete removes extras
    (tmp_path / "src" / "a.txt").write_bytes(b"alpha, longer now")
    s3.put_object(Bucket=bucket, Key="tree/extra", Body=b"x")
    dry = cli.text("sync", "src", f"s3://{bucket}/tree", "--delete", "--dry-run")
    assert dry.splitlines() == [
        f"(dryrun) upload: src/a.txt to s3://{bucket}/tree/a.txt",
        f"(dryrun) delete: s3://{bucket}/tree/extra",
    ]
    assert _object(s3, bucket, "tree/a.txt") == b"alpha"
    out = cli.text("sync", "src", f"s3://{bucket}/tree", "--delete")
    assert out.splitlines() == [
        f"upload: src/a.txt to s3://{bucket}/tree/a.txt",
        f"delete: s3://{bucket}/tree/extra",
    ]
    assert _object(s3, bucket, "tree/a.txt") == b"alpha, longer now"
    assert cli.text("sync", "src", f"s3://{bucket}/tree", "--delete") == ""

    # same size, older local mtime, different bytes: only --checksum notices
    (tmp_path / "src" / "d e.txt").write_bytes(b"D")
    os.utime(tmp_path / "src" / "d e.txt", (1_000_000_000, 1_000_000_000))
    assert cli.text("sync", "src", f"s3://{bucket}/tree") == ""
    out = cli.text("sync", "src", f"s3://{bucket}/tree", "--checksum")
    assert out == f"upload: src/d e.txt to s3://{bucket}/tree/d e.txt\n"
    assert cli.text("sync", "src", f"s3://{bucket}/tree", "--checksum") == ""

    # recursive download and recursive server-side copy
    cli.run("cp", "-r", f"s3://{bucket}/tree/", "copy", "-q")
    assert (tmp_path / "copy" / "sub" / "b.bin").read_bytes() == tree["sub/b.bin"]
    cli.run("cp", "-r", f"s3://{bucket}/tree", f"s3://{bucket}/tree2", "-q")
    assert _object(s3, bucket, "tree2/sub/b.bin") == tree["sub/b.bin"]

    filtered = cli.json(
        "cp", "-r", "src", f"s3://{bucket}/f", "--exclude", "sub/*", "--include", "sub/deep/*"
    )
    assert sorted(r["dst"] for r in filtered) == [
        f"s3://{bucket}/f/{k}" for k in ("a.txt", "d e.txt", "sub/deep/c")
    ]
    assert len(cli.json("rm", "-r", f"s3://{bucket}/tree2")) == len(tree)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="tree2/")


def test_stdin_stdout_streaming(cli: Cli, s3: BaseClient, bucket: str) -> None:
    data = random.Random(7).randbytes(12 * MiB + 5)
    [r] = cli.json("cp", "-", f"s3://{bucket}/stream", "--part-size", "5MiB", input=data)
    assert r["multipart"] and r["size"] == len(data)
    assert _md5(_object(s3, bucket, "stream")) == _md5(data)
    out = cli.run("cp", f"s3://{bucket}/stream", "-").stdout
    assert _md5(out) == _md5(data)
    cli.run("cp", "-", f"s3://{bucket}/small", input=b"hello\n", check=0)
    assert cli.run("cat", f"s3://{bucket}/small").stdout == b"hello\n"


def test_server_side_copy(cli: Cli, s3: BaseClient, bucket: str) -> None:
    big = random.Random(3).randbytes(30 * MiB)
    s3.put_object(Bucket=bucket, Key="src/big", Body=big)
    s3.put_object(Bucket=bucket, Key="src/small", Body=b"small", ContentType="text/plain")
    [r] = cli.json("cp", f"s3://{bucket}/src/big", f"s3://{bucket}/dst/big")
    assert r["op"] == "copy" and r["multipart"] and r["parts_uploaded"] == 4  # UploadPartCopy
    assert _md5(_object(s3, bucket, "dst/big")) == _md5(big)
    [r] = cli.json("cp", f"s3://{bucket}/src/small", f"s3://{bucket}/dst/")
    assert r["dst"] == f"s3://{bucket}/dst/small" and not r["multipart"]  # CopyObject
    head = s3.head_object(Bucket=bucket, Key="dst/small")
    assert head["ContentType"] == "text/plain" and _object(s3, bucket, "dst/small") == b"small"


def test_resume_after_interrupted_upload(
    cli: Cli, s3: BaseClient, bucket: str, tmp_path: Path
) -> None:
    data = _random_file(tmp_path / "resume.bin", 30 * MiB + 1, seed=11)  # 4 parts of 8 MiB
    first = cli.run(
        "cp",
        "resume.bin",
        f"s3://{bucket}/r",
        "--concurrency",
        "1",
        env={"BLOBSTORE_CLI_FAIL_AFTER_PARTS": "2"},
        check=130,
    )
    assert first.stdout == b""
    [upload] = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    parts = s3.list_parts(Bucket=bucket, Key="r", UploadId=upload["UploadId"])["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 2]
    assert len(list((tmp_path / "state").glob("*.json"))) == 1

    [r] = cli.json("cp", "resume.bin", f"s3://{bucket}/r")
    assert (r["parts_reused"], r["parts_uploaded"]) == (2, 2)
    assert _md5(_object(s3, bucket, "r")) == _md5(data)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert list((tmp_path / "state").glob("*.json")) == []
    # a completed upload is not resumed again: a fresh run uploads everything
    [again] = cli.json("cp", "resume.bin", f"s3://{bucket}/r")
    assert (again["parts_reused"], again["parts_uploaded"]) == (0, 4)


def test_rm_cat_stat_and_errors(cli: Cli, s3: BaseClient, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", Metadata={"color": "blue"})
    out = cli.text("stat", f"s3://{bucket}/k")
    assert "size:          1 (1 B)" in out and "meta color:    blue" in out
    assert cli.text("rm", f"s3://{bucket}/k") == f"delete: s3://{bucket}/k\n"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    err = cli.run("rm", f"s3://{bucket}/k", check=1).stderr.decode()
    assert err.startswith("error: rm: NotFound")
    assert cli.run("cat", f"s3://{bucket}/nope", check=1).stderr.decode().startswith("error:")
    assert cli.run("stat", f"s3://{bucket}/nope", check=1).stderr.startswith(b"error:")
    assert cli.run("cp", "missing.txt", f"s3://{bucket}/", check=2).stderr.startswith(b"error:")
    bad = cli.run("ls", env={"BLOBSTORE_SECRET_KEY": "wrong-secret-key"}, check=1)
    assert bad.stderr.startswith(b"error: ls: ")
    unreachable = cli.run("ls", "--endpoint", "http://127.0.0.1:9", check=1)
    assert unreachable.stderr.startswith(b"error:")
    no_creds = cli.run("ls", env={"BLOBSTORE_ACCESS_KEY": "", "BLOBSTORE_SECRET_KEY": ""}, check=2)
    assert b"no credentials" in no_creds.stderr
    assert cli.run("cp", "a", "b", check=2).stderr.startswith(b"error:")


@pytest.mark.parametrize("variant", ["https-default"])
def test_over_https_with_ca_bundle(
    cli: Cli, s3: BaseClient, bucket: str, tmp_path: Path, s3_server: S3Endpoint
) -> None:
    assert s3_server.endpoint_url.startswith("https://")
    data = _random_file(tmp_path / "f", 9 * MiB)
    cli.run("cp", "f", f"s3://{bucket}/f", "-q")
    assert _md5(_object(s3, bucket, "f")) == _md5(data)
    assert _md5(cli.run("cat", f"s3://{bucket}/f").stdout) == _md5(data)
    env = {"AWS_CA_BUNDLE": ""}
    assert cli.run("ls", env=env, check=1).stderr.startswith(b"error:")  # untrusted cert
    assert bucket in cli.text("ls", "--no-verify-ssl", env=env)


def test_mv_moves_files_and_objects(cli: Cli, s3: BaseClient, bucket: str, tmp_path: Path) -> None:
    """Each source is deleted only after its copy succeeded; a move onto itself and a
    failed copy delete nothing."""
    big = _random_file(tmp_path / "up" / "big.bin", 20 * MiB + 3, seed=21)  # multipart
    small = _random_file(tmp_path / "up" / "d" / "small.txt", 100, seed=22)
    [r1, r2] = sorted(cli.json("mv", "-r", "up", f"s3://{bucket}/m/"), key=lambda r: r["src"])
    assert {r1["op"], r2["op"], r1["status"], r2["status"]} == {"move", "ok"}
    assert _object(s3, bucket, "m/big.bin") == big
    assert _object(s3, bucket, "m/d/small.txt") == small
    assert not (tmp_path / "up" / "big.bin").exists()
    assert not (tmp_path / "up" / "d" / "small.txt").exists()
    # s3 -> s3 (server-side), then s3 -> local
    [r] = cli.json("mv", f"s3://{bucket}/m/big.bin", f"s3://{bucket}/n/big.bin")
    assert r["op"] == "move" and r["multipart"]
    assert _object(s3, bucket, "n/big.bin") == big
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert "m/big.bin" not in keys
    [r] = cli.json("mv", f"s3://{bucket}/n/big.bin", "down/big.bin")
    assert (tmp_path / "down" / "big.bin").read_bytes() == big
    assert "n/big.bin" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    # onto itself: refused before anything is copied or deleted
    same = cli.run("mv", f"s3://{bucket}/m/d/small.txt", f"s3://{bucket}/m/d/small.txt", check=2)
    assert b"both the source and the destination" in same.stderr
    assert _object(s3, bucket, "m/d/small.txt") == small
    # a failed copy (no such bucket) keeps the source
    failed = cli.run("mv", "down/big.bin", "s3://no-such-bucket-mv/x", check=1)
    assert failed.stderr.startswith(b"error: move")
    assert (tmp_path / "down" / "big.bin").read_bytes() == big
    # dry run: nothing moves
    [dry] = cli.json("mv", "down/big.bin", f"s3://{bucket}/dry", "--dry-run")
    assert dry["dry_run"] and (tmp_path / "down" / "big.bin").exists()


def test_presign_gives_a_working_url(cli: Cli, s3: BaseClient, bucket: str) -> None:
    body = random.Random(23).randbytes(300_000)
    s3.put_object(Bucket=bucket, Key="shared/file.bin", Body=body)
    url = cli.text("presign", f"s3://{bucket}/shared/file.bin", "--expires-in", "600").strip()
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=600" in url
    ctx = None
    if url.startswith("https://") and cli.env.get("AWS_CA_BUNDLE"):
        ctx = ssl.create_default_context(cafile=cli.env["AWS_CA_BUNDLE"])
    with urllib.request.urlopen(url, timeout=30, context=ctx) as resp:
        assert resp.read() == body
    tampered = url.replace("shared/file.bin", "shared/other.bin")
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(tampered, timeout=30, context=ctx)
    assert denied.value.code == 403
    denied.value.close()  # its response holds the connection
    assert cli.run("presign", f"s3://{bucket}/k", "--expires-in", "0", check=2).stderr
    assert cli.run("presign", f"s3://{bucket}", check=2).stderr
