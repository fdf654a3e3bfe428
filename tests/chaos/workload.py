"""A mixed S3 workload for the chaos tests, recorded as a register history.

Worker threads issue PUT (sizes from inline to multi-stripe, and two-part multipart
uploads), GET (every body's SHA-256 must be one some PUT of that key wrote: "no reader ever
received wrong bytes"), DELETE and LIST over a small shared key space. Each key is a
register for the linearizability checker: a PUT writes the tag of its body, a DELETE
writes absent, a GET reads a tag (or absent on NoSuchKey).

Outcomes: a 2xx is ``ok``; a 4xx is ``fail`` (no effect); a 5xx or a transport error is
``info`` for PUT/DELETE (it may have taken effect) and ``fail`` for GET (reads have no
effect). A multipart upload is one PUT, invoked before CreateMultipartUpload and completed
with the outcome of CompleteMultipartUpload (earlier failures are ``fail``: nothing can
become visible without Complete).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from blobstore.testing.history import HistoryRecorder, Operation

__all__ = ["Workload"]

MIB = 1 << 20
_SIZES = (48, 3000, 70_000, 300_000, 1_300_000)
_SIZE_WEIGHTS = (2, 2, 3, 2, 1)
_PART_BYTES = 5 * MIB  # the S3 minimum for all but the last part


def _why(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "?"))
    return type(exc).__name__


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


@dataclass
class Workload:
    client: Callable[[], BaseClient]
    bucket: str
    seed: int
    keys: tuple[str, ...] = tuple(f"obj-{n:02d}" for n in range(10))
    multipart_share: float = 0.06
    recorder: HistoryRecorder = field(default_factory=lambda: HistoryRecorder(time.monotonic))
    violations: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    _bodies: dict[str, tuple[str, str]] = field(default_factory=dict)  # sha -> (key, tag)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the workers -------------------------------------------------------------------------
    def run(self, workers: int, stop: threading.Event) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._worker, args=(n, stop), name=f"chaos-{n}", daemon=True)
            for n in range(workers)
        ]
        for t in threads:
            t.start()
        return threads

    def _worker(self, n: int, stop: threading.Event) -> None:
        rng = random.Random(self.seed * 1000 + n)
        client = self.client()
        serial = 0
        try:
            while not stop.is_set():
                serial += 1
                key = rng.choice(self.keys)
                r = rng.random()
                if r < 0.45:
                    self.put(client, n, key, f"c{n}-{serial}", rng)
                elif r < 0.8:
                    self.get(client, n, key)
                elif r < 0.9:
                    self.delete(client, n, key)
                else:
                    self.list(client)
        finally:
            client.close()

    def _body(self, key: str, tag: str, size: int, rng: random.Random) -> bytes:
        body = tag.encode() + b"|" + rng.randbytes(max(0, size - len(tag) - 1))
        with self._lock:
            self._bodies[hashlib.sha256(body).hexdigest()] = (key, tag)
        return body

    # -- operations ---------------------------------------------------------------------------
    def put(self, client: BaseClient, n: int, key: str, tag: str, rng: random.Random) -> None:
        if rng.random() < self.multipart_share:
            self._multipart(client, n, key, tag, rng)
            return
        size = rng.choices(_SIZES, _SIZE_WEIGHTS)[0]
        body = self._body(key, tag, rng.randint(size // 2, size), rng)
        token = self.recorder.invoke(n, "put", key, tag)
        try:
            client.put_object(Bucket=self.bucket, Key=key, Body=body)
        except ClientError as e:
            self._done(token, None, "info" if _status(e) >= 500 else "fail", "put", e)
        except (BotoCoreError, OSError) as e:
            self._done(token, None, "info", "put", e)
        else:
            self._done(token, None, "ok", "put")

    def _multipart(
        self, client: BaseClient, n: int, key: str, tag: str, rng: random.Random
    ) -> None:
        body = self._body(key, tag, _PART_BYTES + rng.randint(1, 300_000), rng)
        token = self.recorder.invoke(n, "put", key, tag)
        upload_id = ""
        try:
            upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
            parts = []
            for number, (lo, hi) in enumerate(((0, _PART_BYTES), (_PART_BYTES, len(body))), 1):
                got = client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body[lo:hi],
                )
                parts.append({"PartNumber": number, "ETag": got["ETag"]})
        except (ClientError, BotoCoreError, OSError) as e:
            self._done(token, None, "fail", "put-multipart")
            self.counts[f"multipart-part-error:{_why(e)}"] += 1
            self._abort(client, key, upload_id)
            return
        try:
            client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except ClientError as e:
            self._done(token, None, "info" if _status(e) >= 500 else "fail", "put-multipart")
            self.counts[f"multipart-complete-error:{_why(e)}"] += 1
            self._abort(client, key, upload_id)
        except (BotoCoreError, OSError):
            self._done(token, None, "info", "put-multipart")
        else:
            self._done(token, None, "ok", "put-multipart")

    def _abort(self, client: BaseClient, key: str, upload_id: str) -> None:
        if upload_id:  # else abandoned: its parts' shards are garbage-collected
            with contextlib.suppress(ClientError, BotoCoreError, OSError):
                client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def get(self, client: BaseClient, n: int, key: str) -> Operation | None:
        token = self.recorder.invoke(n, "get", key)
        try:
            body = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "NoSuchKey":
                return self._done(token, None, "ok", "get")
            self._done(token, None, "fail", "get", e)
            return None
        except (BotoCoreError, OSError) as e:
            self._done(token, None, "fail", "get", e)
            return None
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            known = self._bodies.get(digest)
        if known is None or known[0] != key:
            self.violations.append(f"GET {key} returned {len(body)} bytes never written there")
            return self._done(token, f"WRONG-{digest[:12]}", "ok", "get")
        return self._done(token, known[1], "ok", "get")

    def delete(self, client: BaseClient, n: int, key: str) -> None:
        token = self.recorder.invoke(n, "delete", key)
        try:
            client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            self._done(token, None, "info" if _status(e) >= 500 else "fail", "delete", e)
        except (BotoCoreError, OSError) as e:
            self._done(token, None, "info", "delete", e)
        else:
            self._done(token, None, "ok", "delete")

    def list(self, client: BaseClient) -> None:
        try:
            page = client.list_objects_v2(Bucket=self.bucket)
        except (ClientError, BotoCoreError, OSError):
            self.counts["list-fail"] += 1
            return
        stray = [o["Key"] for o in page.get("Contents", []) if o["Key"] not in self.keys]
        if stray:
            self.violations.append(f"LIST returned keys never written: {stray}")
        self.counts["list-ok"] += 1

    def _done(
        self,
        token: int,
        result: str | None,
        status: str,
        what: str,
        error: Exception | None = None,
    ) -> Operation:
        self.counts[f"{what}-{status}"] += 1
        if error is not None:
            self.counts[f"{what}-error:{_why(error)}"] += 1
            if not isinstance(error, ClientError):
                time.sleep(0.05)  # client think time: don't spin on a refused connection
        return self.recorder.complete(token, result, status)  # type: ignore[arg-type]
