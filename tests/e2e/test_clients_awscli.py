"""The aws CLI (Debian's v2 2.9, also over https; v1 from PyPI in its own venv) against a real
cluster.

``s3 cp`` of a 50 MiB file both ways (multipart up, ranged GETs down) and within the
cluster (UploadPartCopy), ``s3 mv``, ``s3 presign`` + a plain GET, ``s3 ls``,
``s3 sync`` of a 200-file tree (plus awkward key names and one multipart file) both ways,
a second sync of each that must transfer nothing, an edit + ``--delete`` sync that
transfers exactly the change, and ``s3 rm --recursive``. Every byte is checked by SHA-256:
what the CLI uploaded is read back with boto3, what it downloaded is hashed on disk.
"""

from __future__ import annotations

import functools
import random
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    S3Endpoint,
    bucket_digest,
    client_env,
    make_tree,
    run_cli,
    sha256_file,
    tree_digest,
)

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


@dataclass(frozen=True)
class Aws:
    path: str
    version: str
    env: dict[str, str]
    endpoint: str

    def __call__(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv = [self.path, "--endpoint-url", self.endpoint, *args]
        return run_cli(argv, self.env, cwd=cwd)

    def s3(self, *args: str) -> list[str]:
        """Run ``aws s3 ...`` (transfer commands, no progress); its output lines."""
        extra = ["--no-progress"] if args[0] in ("cp", "mv", "sync") else []
        out = self("s3", *args, *extra).stdout
        return [line for line in out.splitlines() if line.strip()]


# awscli v1 pins its own botocore, so scripts/install-test-deps.sh gives it a venv of its own
AWSCLI_V1 = Path(__file__).resolve().parents[2] / ".venv" / "clients" / "awscli-v1" / "bin" / "aws"


@functools.cache
def _find(major: str) -> str | None:
    """An aws CLI of the given major version: Debian's /usr/bin/aws (v2), the PyPI v1 in
    ``.venv/clients/awscli-v1``, else whichever ``aws`` is on PATH."""
    for candidate in ("/usr/bin/aws", str(AWSCLI_V1), shutil.which("aws")):
        if not candidate or not Path(candidate).exists():
            continue
        try:
            out = subprocess.run(
                [candidate, "--version"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env=client_env(),
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if re.match(rf"aws-cli/{major}\.", (out.stdout + out.stderr).strip()):
            return candidate
    return None


ALL = pytest.mark.parametrize("aws_path", ["v2", "v1", "v2-https"], indirect=True)
PLAIN = pytest.mark.parametrize("aws_path", ["v2", "v1"], indirect=True)


@pytest.fixture(scope="module")
def aws_path(request: pytest.FixtureRequest) -> str:
    major = str(request.param)[1]
    path = _find(major)
    if path is None:
        if major == "2":
            pytest.skip("aws CLI v2 is not installed (Debian package awscli)")
        pytest.skip(
            f"aws CLI v1 is not installed ({AWSCLI_V1}: PyPI awscli, "
            "scripts/install-test-deps.sh creates it; needs the PyPI index)"
        )
    return path


@pytest.fixture
def client_endpoint(request: pytest.FixtureRequest, aws_path: str) -> S3Endpoint:
    """v2 also over https (where it signs UNSIGNED-PAYLOAD)."""
    https = request.node.callspec.params["aws_path"].endswith("https")
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint_https" if https else "s3_endpoint")
    return endpoint


@pytest.fixture
def aws(aws_path: str, client_endpoint: S3Endpoint, tmp_path: Path) -> Aws:
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config"
    config.write_text("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n")
    env = client_env(
        HOME=str(home),
        AWS_ACCESS_KEY_ID=client_endpoint.access_key,
        AWS_SECRET_ACCESS_KEY=client_endpoint.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_PAGER="",
    )
    if client_endpoint.ca_bundle:
        env["AWS_CA_BUNDLE"] = client_endpoint.ca_bundle
    version = "v2" if aws_path == _find("2") else "v1"
    return Aws(aws_path, version, env, client_endpoint.endpoint_url)


@pytest.fixture
def bucket(aws: Aws, fresh_bucket: str) -> Iterator[str]:
    aws.s3("mb", f"s3://{fresh_bucket}")
    yield fresh_bucket


def _transfers(lines: list[str], verb: str) -> list[str]:
    return [line for line in lines if line.startswith(f"{verb}:")]


@ALL
def test_cp_50mib_both_ways(aws: Aws, bucket: str, verifier: Any, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(random.Random(50).randbytes(50 * MiB))
    want = sha256_file(src)

    aws.s3("cp", str(src), f"s3://{bucket}/dir/big.bin")
    head = verifier.head_object(Bucket=bucket, Key="dir/big.bin")
    assert head["ContentLength"] == 50 * MiB
    assert re.fullmatch(r'"[0-9a-f]{32}-\d+"', head["ETag"]), "expected a multipart upload"
    assert bucket_digest(verifier, bucket) == {"dir/big.bin": want}

    dst = tmp_path / "back.bin"
    aws.s3("cp", f"s3://{bucket}/dir/big.bin", str(dst))
    assert dst.stat().st_size == 50 * MiB
    assert sha256_file(dst) == want

    # server-side: a multipart copy (UploadPartCopy with ranges), then a move
    aws.s3("cp", f"s3://{bucket}/dir/big.bin", f"s3://{bucket}/copy.bin")
    aws.s3("mv", f"s3://{bucket}/copy.bin", f"s3://{bucket}/moved.bin")
    assert bucket_digest(verifier, bucket) == {"dir/big.bin": want, "moved.bin": want}


@ALL
def test_presign_and_ls(aws: Aws, bucket: str, verifier: Any) -> None:
    body = random.Random(4).randbytes(100_000)
    verifier.put_object(Bucket=bucket, Key="p/obj name+1.bin", Body=body)
    url = aws("s3", "presign", f"s3://{bucket}/p/obj name+1.bin").stdout.strip()
    ca = aws.env.get("AWS_CA_BUNDLE")
    with httpx.Client(verify=ssl.create_default_context(cafile=ca) if ca else True) as http:
        got = http.get(url)
    assert got.status_code == 200 and got.content == body
    listed = aws("s3", "ls", "--recursive", f"s3://{bucket}").stdout.splitlines()
    assert [line.split(maxsplit=3)[2:] for line in listed] == [["100000", "p/obj name+1.bin"]]


@PLAIN
def test_sync_tree_both_ways(aws: Aws, bucket: str, verifier: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    want = make_tree(src, 200, seed=7, big=(9 * MiB,))
    assert len(want) == 207

    up = aws.s3("sync", str(src), f"s3://{bucket}/tree")
    assert len(_transfers(up, "upload")) == len(want)
    assert bucket_digest(verifier, bucket, "tree/") == want
    again = aws.s3("sync", str(src), f"s3://{bucket}/tree")
    assert again == [], f"second sync transferred: {again[:5]}"

    dst = tmp_path / "dst"
    down = aws.s3("sync", f"s3://{bucket}/tree", str(dst))
    assert len(_transfers(down, "download")) == len(want)
    assert tree_digest(dst) == want
    again = aws.s3("sync", f"s3://{bucket}/tree", str(dst))
    assert again == [], f"second sync transferred: {again[:5]}"

    # one edit (a different size, so any sync notices), one local delete
    (src / "d1/s1/f0001.bin").write_bytes(b"changed" * 1000)
    (src / "d2/s2/f0002.bin").unlink()
    changed = aws.s3("sync", "--delete", str(src), f"s3://{bucket}/tree")
    uploads = _transfers(changed, "upload")
    assert len(uploads) == 1
    assert uploads[0].endswith(f"d1/s1/f0001.bin to s3://{bucket}/tree/d1/s1/f0001.bin")
    assert _transfers(changed, "delete") == [f"delete: s3://{bucket}/tree/d2/s2/f0002.bin"]
    assert bucket_digest(verifier, bucket, "tree/") == tree_digest(src)


@PLAIN
def test_rm_recursive(aws: Aws, bucket: str, verifier: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 30, seed=3)
    aws.s3("sync", str(src), f"s3://{bucket}/gone")
    aws.s3("cp", str(src / "d0/s0/f0000.bin"), f"s3://{bucket}/kept/f.bin")
    removed = aws.s3("rm", "--recursive", f"s3://{bucket}/gone")
    assert len(_transfers(removed, "delete")) == 36
    assert list(bucket_digest(verifier, bucket)) == ["kept/f.bin"]
