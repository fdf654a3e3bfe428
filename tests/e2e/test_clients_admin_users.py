"""``blobstore admin user ...`` against a real ``blobstore server``, used through boto3.

A user made with ``admin user add`` creates and uses its own bucket (data checked by
SHA-256), sees only its own buckets, and gets 403 AccessDenied on the admin's bucket
(read, write, list, delete); the admin still reaches the user's bucket. An extra key from
``admin user key add`` works until ``admin user key remove``; after ``admin user remove``
the user's keys get 403 InvalidAccessKeyId (polled: the gateway caches keys a few
seconds). The admin commands run as real subprocesses (``python -m blobstore admin``) on
the cluster's metadata ports and secret.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.e2e.cluster import Cluster
from tests.e2e.conftest import collect_leaked_sockets, empty_bucket, local_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return local_cluster(request, "blobstore_cluster")


def admin(cluster: Cluster, *args: str) -> Any:
    """Run ``blobstore admin ... --json`` on the cluster; its parsed output."""
    argv = cluster.admin_argv(*args, "--json")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout)


def s3(cluster: Cluster, access_key: str, secret_key: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=cluster.endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def error_code(call: Any, **kwargs: Any) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a call that must fail."""
    try:
        call(**kwargs)
    except ClientError as e:
        return int(e.response["ResponseMetadata"]["HTTPStatusCode"]), str(
            e.response["Error"]["Code"]
        )
    pytest.fail(f"{call.__name__}({kwargs}) succeeded")


def wait_for_error(call: Any, code: str, timeout_s: float = 30.0, **kwargs: Any) -> None:
    """Poll ``call`` until it fails with ``code`` (the gateway's key cache expires)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            call(**kwargs)
            got = "success"
        except ClientError as e:
            got = str(e.response["Error"]["Code"])
        if got == code:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{call.__name__} still answers {got!r}, want {code!r}")
        time.sleep(0.2)  # poll interval, bounded by the deadline above


@pytest.fixture
def root(cluster: Cluster) -> Iterator[Any]:
    client = s3(cluster, cluster.access_key, cluster.secret_key)
    yield client
    client.close()
    collect_leaked_sockets()


def test_user_lifecycle(cluster: Cluster, root: Any) -> None:
    name = f"user-{uuid.uuid4().hex[:8]}"
    made = admin(cluster, "user", "add", name)
    assert made["user"] == name and made["is_admin"] is False
    user = s3(cluster, made["access_key"], made["secret_key"])
    own, admins = f"{name}-own", f"{name}-admin"
    root.create_bucket(Bucket=admins)
    root.put_object(Bucket=admins, Key="secret.txt", Body=b"admin only")
    try:
        # the user's own bucket: create, write, read back by hash, list
        user.create_bucket(Bucket=own)
        body = random.Random(6).randbytes(300_000)  # erasure-coded, not inline
        user.put_object(Bucket=own, Key="dir/data.bin", Body=body)
        got = user.get_object(Bucket=own, Key="dir/data.bin")["Body"].read()
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
        assert [o["Key"] for o in user.list_objects_v2(Bucket=own)["Contents"]] == ["dir/data.bin"]
        assert [b["Name"] for b in user.list_buckets()["Buckets"]] == [own]

        # the admin's bucket is off limits
        assert error_code(user.get_object, Bucket=admins, Key="secret.txt") == (403, "AccessDenied")
        assert error_code(user.put_object, Bucket=admins, Key="x", Body=b"x") == (
            403,
            "AccessDenied",
        )
        assert error_code(user.list_objects_v2, Bucket=admins) == (403, "AccessDenied")
        assert error_code(user.delete_bucket, Bucket=admins) == (403, "AccessDenied")
        assert [o["Key"] for o in root.list_objects_v2(Bucket=admins)["Contents"]] == ["secret.txt"]
        # ... while the admin reaches the user's bucket
        assert root.get_object(Bucket=own, Key="dir/data.bin")["Body"].read() == body

        listed = {u["name"]: u for u in admin(cluster, "user", "list")}
        assert listed[name]["is_admin"] is False and listed[name]["buckets"] == 1
        assert listed["root"]["is_admin"] is True

        # a second key works until it is removed
        extra = admin(cluster, "user", "key", "add", name)
        user2 = s3(cluster, extra["access_key"], extra["secret_key"])
        assert user2.get_object(Bucket=own, Key="dir/data.bin")["Body"].read() == body
        assert admin(cluster, "user", "key", "remove", extra["access_key"]) == {
            "access_key": extra["access_key"]
        }
        wait_for_error(user2.list_buckets, "InvalidAccessKeyId")
        user2.close()
        assert user.list_buckets()["Buckets"][0]["Name"] == own  # the first key still works

        # removing the user revokes its key; its bucket stays (admins can empty it)
        removed = admin(cluster, "user", "remove", name)
        assert removed == {"name": name, "access_keys": 1, "buckets_left": 1}
        wait_for_error(user.list_buckets, "InvalidAccessKeyId")
        status, code = error_code(user.get_object, Bucket=own, Key="dir/data.bin")
        assert (status, code) == (403, "InvalidAccessKeyId")
        assert name not in {u["name"] for u in admin(cluster, "user", "list")}
        assert root.get_object(Bucket=own, Key="dir/data.bin")["Body"].read() == body
    finally:
        user.close()
        empty_bucket(root, own)
        empty_bucket(root, admins)
        collect_leaked_sockets()
