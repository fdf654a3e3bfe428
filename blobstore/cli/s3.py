"""Object commands: ``mb rb ls cp mv sync rm cat stat presign`` against any S3 endpoint.

``register(sub)`` adds them as top-level ``blobstore`` sub-commands sharing one set of
endpoint/output flags (``_common_parser``) and, for ``cp``/``mv``/``sync``, transfer flags.
Endpoint and credentials come from ``endpoint.py``, transfers from ``transfer.py``, output
from ``progress.py``, paths from ``locations.py``, sync decisions from ``syncplan.py``.
botocore is imported lazily (only when an object command runs) so role processes start
fast.

Exit status (documented in every command's ``--help``): 0 success; 1 a request or transfer
failed (for many files: at least one did; the others were still done); 2 usage or
configuration error; 130 interrupted (an interrupted upload resumes on the next run); 141
the output was closed early (``blobstore.cli.main`` ends the command quietly).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from blobstore.cli.endpoint import Endpoint, EndpointOptions, make_client, resolve_endpoint
from blobstore.cli.locations import (
    Job,
    S3Url,
    dir_prefix,
    iter_listing,
    iter_objects,
    join,
    list_sync_root,
    parse_s3_url,
    plan_cp,
    with_local_etags,
)
from blobstore.cli.progress import Output, Progress, format_bytes
from blobstore.cli.resume import default_state_dir
from blobstore.cli.syncplan import Compare, PathFilter, SyncAction, plan_sync
from blobstore.cli.transfer import TransferConfig, Transfers
from blobstore.durable import fsync_path
from blobstore.errors import ConfigError

__all__ = ["EXIT_HELP", "Context", "build_context", "parse_size", "register"]

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4's limit
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_HELP = """exit status:
  0    success
  1    a request or transfer failed (with many files: at least one; the rest were done)
  2    usage or configuration error (bad arguments, no credentials)
  130  interrupted (re-run the same upload to resume it)
  141  the output was closed early (e.g. piped into head); nothing more is written

endpoint: --endpoint URL (or BLOBSTORE_ENDPOINT) with credentials from
BLOBSTORE_ACCESS_KEY/BLOBSTORE_SECRET_KEY, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or
--profile NAME; default: the local cluster http://127.0.0.1:9000 with
./blobstore-data/credentials.toml (or --data DIR)."""


# -- locations --------------------------------------------------------------------------
def parse_size(text: str) -> int:
    """``8MiB``, ``8M``, ``8MB`` (all binary: 8 * 2**20), ``512KiB``, ``1G``, ``5242880``."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    for suffix, m in (("K", 1024), ("M", MiB), ("G", 1024 * MiB)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    try:
        value = float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (e.g. 8MiB, 16M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return int(value * mult)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# -- context ----------------------------------------------------------------------------
@dataclass
class Context:
    endpoint: Endpoint
    client: Any
    out: Output
    progress: Progress
    transfers: Transfers
    concurrency: int


def build_context(args: argparse.Namespace, *, progress_ok: bool = True) -> Context:
    """Endpoint, client, output and transfer engine for one command run."""
    ep = resolve_endpoint(
        EndpointOptions(
            args.endpoint,
            args.data,
            args.profile,
            args.region,
            args.ca_bundle,
            not args.no_verify_ssl,
        )
    )
    concurrency = getattr(args, "concurrency", 8)
    attempts = getattr(args, "retries", 3) + 1
    client = make_client(ep, max_connections=concurrency * 2 + 2, retries=2)
    is_tty = sys.stderr.isatty()
    width = shutil.get_terminal_size((100, 24)).columns
    progress = Progress(
        sys.stderr,
        width=max(40, min(width, 160)),
        enabled=progress_ok and getattr(args, "dst", None) != "-" and not (args.quiet or args.json),
        is_tty=is_tty,
    )
    out = Output(quiet=args.quiet, as_json=args.json, progress=progress)
    fail_after = os.environ.get("BLOBSTORE_CLI_FAIL_AFTER_PARTS")
    state_dir = getattr(args, "state_dir", None)
    config = TransferConfig(
        part_size=getattr(args, "part_size", 8 * MiB),
        concurrency=concurrency,
        attempts=attempts,
        resume=not getattr(args, "no_resume", False),
        state_dir=Path(state_dir) if state_dir else default_state_dir(),
        fail_after_parts=int(fail_after) if fail_after else None,
    )
    return Context(
        ep, client, out, progress, Transfers(client, config, progress, ep.url), concurrency
    )


_HEAD_CODES = {
    "404": ("NotFound", "no such bucket or key"),
    "403": ("AccessDenied", "access denied"),
    "412": ("PreconditionFailed", "the object changed"),
}


def _error_text(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        code = err.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        msg = err.get("Message") or ""
        if str(code) in _HEAD_CODES:  # HEAD responses carry no error body
            code, msg = _HEAD_CODES[str(code)]
        return f"{code}: {msg}" if msg else str(code)
    if type(exc).__module__.startswith("botocore"):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return f"{type(exc).__name__}: {exc}"


def _command(
    fn: Callable[[argparse.Namespace, Context], int], *, progress_ok: bool = True
) -> Callable[[argparse.Namespace], int]:
    """Run ``fn`` with a context; failures become ``error: ...`` and exit 1."""

    def run(args: argparse.Namespace) -> int:
        if getattr(args, "part_size", MIN_PART_SIZE) < MIN_PART_SIZE:
            raise ConfigError("--part-size must be at least 5MiB (the S3 minimum)")
        if getattr(args, "part_size", 0) > MAX_PART_SIZE:
            raise ConfigError("--part-size must be at most 5GiB (the S3 maximum)")
        ctx = build_context(args, progress_ok=progress_ok)
        try:
            status = fn(args, ctx)
            ctx.progress.clear()
            return EXIT_FAILURE if status == EXIT_OK and ctx.out.failures else status
        except KeyboardInterrupt:
            ctx.progress.clear()
            print("error: interrupted (re-run the same command to resume uploads)", file=sys.stderr)
            sys.stderr.flush()
            ctx.transfers.remove_temp_files()
            os._exit(EXIT_INTERRUPTED)  # don't wait for in-flight parts
        except (ConfigError, BrokenPipeError):  # reported by blobstore.cli.main
            raise
        except Exception as e:
            ctx.progress.clear()
            print(f"error: {args.command}: {_error_text(e)}", file=sys.stderr)
            return EXIT_FAILURE
        finally:
            ctx.transfers.close()

    return run


# -- bucket commands --------------------------------------------------------------------
def _mb(args: argparse.Namespace, ctx: Context) -> int:
    url = parse_s3_url(args.bucket)
    ctx.client.create_bucket(Bucket=url.bucket)
    ctx.out.result(f"make_bucket: {url.bucket}", op="make_bucket", bucket=url.bucket)
    return EXIT_OK


def _delete_keys(ctx: Context, bucket: str, keys: list[str]) -> None:
    for i in range(0, len(keys), 1000):
        batch = keys[i : i + 1000]
        resp = ctx.client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
        )
        failed = {e["Key"]: e for e in resp.get("Errors", [])}
        for k in batch:
            url = f"s3://{bucket}/{k}"
            if k in failed:
                e = failed[k]
                ctx.out.error(
                    f"delete {url}: {e.get('Code')}: {e.get('Message')}", op="delete", dst=url
                )
            else:
                ctx.out.result(f"delete: {url}", op="delete", dst=url, status="ok")


def _rb(args: argparse.Namespace, ctx: Context) -> int:
    url = parse_s3_url(args.bucket)
    if args.force:
        _delete_keys(ctx, url.bucket, [o.key for o in iter_objects(ctx.client, url.bucket, "")])
        ups = ctx.client.list_multipart_uploads(Bucket=url.bucket).get("Uploads", [])
        for up in ups:
            ctx.client.abort_multipart_upload(
                Bucket=url.bucket, Key=up["Key"], UploadId=up["UploadId"]
            )
    if ctx.out.failures:
        return EXIT_FAILURE
    ctx.client.delete_bucket(Bucket=url.bucket)
    ctx.out.result(f"remove_bucket: {url.bucket}", op="remove_bucket", bucket=url.bucket)
    return EXIT_OK


def _fmt_time(t: datetime) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _ls(args: argparse.Namespace, ctx: Context) -> int:
    size = format_bytes if args.human else str
    if not args.target:
        for b in ctx.client.list_buckets().get("Buckets", []):
            ctx.out.result(
                f"{_fmt_time(b['CreationDate'])} {b['Name']}",
                type="bucket",
                name=b["Name"],
                created=b["CreationDate"].isoformat(),
            )
        return EXIT_OK
    url = parse_s3_url(args.target)
    base = url.key[: url.key.rfind("/") + 1]  # names are shown relative to the "directory"
    count = total = 0
    for item in iter_listing(ctx.client, url.bucket, url.key, None if args.recursive else "/"):
        if isinstance(item, str):
            ctx.out.result(
                f"{'PRE':>30} {item[len(base) :]}", type="prefix", bucket=url.bucket, prefix=item
            )
            continue
        count += 1
        total += item.size
        name = item.key if args.recursive else item.key[len(base) :]
        ctx.out.result(
            f"{_fmt_time(item.last_modified)} {size(item.size):>10} {name}",
            type="object",
            bucket=url.bucket,
            key=item.key,
            size=item.size,
            last_modified=item.last_modified.isoformat(),
            etag=item.etag,
        )
    if args.summarize:
        ctx.out.result(
            f"\nTotal Objects: {count}\n   Total Size: {size(total)}",
            type="summary",
            objects=count,
            size=total,
        )
    return EXIT_OK


# -- object commands --------------------------------------------------------------------
def _stat(args: argparse.Namespace, ctx: Context) -> int:
    url = parse_s3_url(args.target)
    if not url.key:
        ctx.client.head_bucket(Bucket=url.bucket)
        ctx.out.result(f"bucket: {url.bucket}", type="bucket", bucket=url.bucket)
        return EXIT_OK
    h = ctx.client.head_object(Bucket=url.bucket, Key=url.key)
    doc = {
        "type": "object",
        "bucket": url.bucket,
        "key": url.key,
        "size": int(h["ContentLength"]),
        "etag": str(h.get("ETag", "")).strip('"'),
        "last_modified": h["LastModified"].isoformat(),
        "content_type": h.get("ContentType", ""),
        "metadata": h.get("Metadata", {}),
    }
    lines = [
        f"{'key:':<15}{url}",
        f"{'size:':<15}{doc['size']} ({format_bytes(doc['size'])})",
        f"{'etag:':<15}{doc['etag']}",
        f"{'last modified:':<15}{_fmt_time(h['LastModified'])}",
        f"{'content type:':<15}{doc['content_type']}",
        *(f"{'meta ' + k + ':':<15}{v}" for k, v in sorted(doc["metadata"].items())),
    ]
    ctx.out.result("\n".join(lines), **doc)
    return EXIT_OK


def _cat(args: argparse.Namespace, ctx: Context) -> int:
    url = parse_s3_url(args.target)
    if not url.key:
        raise ConfigError("cat needs s3://BUCKET/KEY")
    ctx.transfers.download_stream(url.bucket, url.key, sys.stdout.buffer)
    return EXIT_OK


def _rm(args: argparse.Namespace, ctx: Context) -> int:
    url = parse_s3_url(args.target)
    if args.recursive:
        keys = [o.key for o in iter_objects(ctx.client, url.bucket, dir_prefix(url.key))]
        if args.dry_run:
            for k in keys:
                ctx.out.result(
                    f"(dryrun) delete: s3://{url.bucket}/{k}",
                    op="delete",
                    dst=f"s3://{url.bucket}/{k}",
                    dry_run=True,
                )
            return EXIT_OK
        _delete_keys(ctx, url.bucket, keys)
        return EXIT_OK
    if not url.key:
        raise ConfigError("rm needs s3://BUCKET/KEY (or --recursive for a prefix)")
    ctx.client.head_object(Bucket=url.bucket, Key=url.key)  # missing key -> 404 -> exit 1
    if not args.dry_run:
        ctx.client.delete_object(Bucket=url.bucket, Key=url.key)
    tag = "(dryrun) " if args.dry_run else ""
    ctx.out.result(f"{tag}delete: {url}", op="delete", dst=str(url), status="ok")
    return EXIT_OK


# -- cp / sync --------------------------------------------------------------------------
def _run_job(ctx: Context, job: Job, *, dry_run: bool = False, move: bool = False) -> None:
    """Transfer one file or object; with ``move``, delete the source once the copy has
    succeeded (an acknowledged upload or copy is durable; a download is complete and
    checked)."""
    op = "move" if move else job.op
    fields: dict[str, Any] = {"op": op, "src": str(job.src), "dst": str(job.dst)}
    if dry_run:
        ctx.out.result(f"(dryrun) {op}: {job.src} to {job.dst}", **fields, dry_run=True)
        return
    try:
        if isinstance(job.src, Path):
            assert isinstance(job.dst, S3Url)
            r = ctx.transfers.upload_file(job.src, job.dst.bucket, job.dst.key)
        elif isinstance(job.dst, Path):
            r = ctx.transfers.download_file(
                job.src.bucket, job.src.key, job.dst, count_total=job.size is None
            )
        else:
            r = ctx.transfers.copy_object(
                job.src.bucket,
                job.src.key,
                job.dst.bucket,
                job.dst.key,
                count_total=job.size is None,
            )
    except (KeyboardInterrupt, ConfigError):
        raise
    except Exception as e:
        ctx.out.error(f"{op} {job.src} to {job.dst}: {_error_text(e)}", **fields)
        return
    finally:
        ctx.progress.file_done()
    if move:
        try:
            if isinstance(job.src, Path):
                job.src.unlink()
            else:
                if isinstance(job.dst, Path):  # the local copy must outlive a crash first
                    fsync_path(job.dst)
                    fsync_path(job.dst.parent)
                ctx.client.delete_object(Bucket=job.src.bucket, Key=job.src.key)
        except Exception as e:
            why = f"copied, but the source was not deleted: {_error_text(e)}"
            ctx.out.error(f"{op} {job.src} to {job.dst}: {why}", **fields)
            return
    ctx.out.result(
        f"{op}: {job.src} to {job.dst}",
        **fields,
        status="ok",
        size=r.size,
        etag=r.etag,
        multipart=r.multipart,
        parts_uploaded=r.parts_uploaded,
        parts_reused=r.parts_reused,
        verified=r.verified,
    )


def _run_jobs(ctx: Context, jobs: list[Job], *, dry_run: bool = False, move: bool = False) -> None:
    for j in jobs:
        ctx.progress.add_total(j.size or 0)
    if len(jobs) == 1:
        _run_job(ctx, jobs[0], dry_run=dry_run, move=move)
        return
    with ThreadPoolExecutor(ctx.concurrency, thread_name_prefix="file") as pool:
        for f in [pool.submit(_run_job, ctx, j, dry_run=dry_run, move=move) for j in jobs]:
            f.result()


def _cp(args: argparse.Namespace, ctx: Context) -> int:
    if args.src == "-" or args.dst == "-":
        return _cp_stream(args, ctx)
    jobs = plan_cp(
        ctx.client, args.src, args.dst, recursive=args.recursive, filters=args.filters or ()
    )
    _run_jobs(ctx, jobs, dry_run=args.dry_run)
    return EXIT_OK


def _mv(args: argparse.Namespace, ctx: Context) -> int:
    if args.src == "-" or args.dst == "-":
        raise ConfigError("mv: '-' (stdin/stdout) cannot be moved; use cp")
    jobs = plan_cp(
        ctx.client, args.src, args.dst, recursive=args.recursive, filters=args.filters or ()
    )
    for j in jobs:  # moving onto itself would copy, then delete the only copy
        if j.src == j.dst:
            raise ConfigError(f"mv: {j.src} is both the source and the destination")
    _run_jobs(ctx, jobs, dry_run=args.dry_run, move=True)
    return EXIT_OK


def _cp_stream(args: argparse.Namespace, ctx: Context) -> int:
    if args.recursive:
        raise ConfigError("cp: '-' (stdin/stdout) cannot be --recursive")
    if args.src == "-":
        dst = parse_s3_url(args.dst)
        if not dst.key or dst.key.endswith("/"):
            raise ConfigError("cp -: DST needs a full key")
        r = ctx.transfers.upload_stream(sys.stdin.buffer, dst.bucket, dst.key)
        ctx.out.result(
            f"upload: - to {dst}",
            op="upload",
            src="-",
            dst=str(dst),
            status="ok",
            size=r.size,
            etag=r.etag,
            multipart=r.multipart,
        )
        return EXIT_OK
    src = parse_s3_url(args.src)
    if not src.key:
        raise ConfigError("cp ... -: SRC needs a key")
    ctx.transfers.download_stream(src.bucket, src.key, sys.stdout.buffer)
    return EXIT_OK


def _sync(args: argparse.Namespace, ctx: Context) -> int:
    if not (args.src.startswith("s3://") or args.dst.startswith("s3://")):
        raise ConfigError("sync: one of SRC and DST must be s3://BUCKET[/PREFIX]")
    filters = args.filters or ()
    src_root, src = list_sync_root(ctx.client, args.src, must_exist=True, filters=filters)
    dst_root, dst = list_sync_root(ctx.client, args.dst, filters=filters)
    compare = Compare.CHECKSUM if args.checksum else Compare.SIZE_MTIME
    if compare is Compare.CHECKSUM:
        if isinstance(src_root, Path):
            src = with_local_etags(src_root, src, dst, args.part_size)
        if isinstance(dst_root, Path):
            dst = with_local_etags(dst_root, dst, src, args.part_size)
    actions = plan_sync(src.values(), dst.values(), compare=compare, delete=args.delete)
    jobs: list[Job] = []
    deletes: list[SyncAction] = []
    for a in actions:
        if a.kind == "delete":
            deletes.append(a)
        else:
            jobs.append(Job(join(src_root, a.key), join(dst_root, a.key), a.size))
    if jobs:
        _run_jobs(ctx, jobs, dry_run=args.dry_run)
    for a in deletes:
        target = join(dst_root, a.key)
        if args.dry_run:
            ctx.out.result(f"(dryrun) delete: {target}", op="delete", dst=str(target), dry_run=True)
        elif isinstance(target, Path):
            try:
                target.unlink()
                ctx.out.result(f"delete: {target}", op="delete", dst=str(target), status="ok")
            except OSError as e:
                ctx.out.error(f"delete {target}: {_error_text(e)}", op="delete", dst=str(target))
    remote_deletes = [a.key for a in deletes if isinstance(dst_root, S3Url)]
    if remote_deletes and not args.dry_run and isinstance(dst_root, S3Url):
        _delete_keys(ctx, dst_root.bucket, [dst_root.key + k for k in remote_deletes])
    return EXIT_OK


def _presign(args: argparse.Namespace, ctx: Context) -> int:
    url = parse_s3_url(args.target)
    if not url.key:
        raise ConfigError("presign needs s3://BUCKET/KEY")
    if not 1 <= args.expires_in <= MAX_PRESIGN_S:
        raise ConfigError(f"--expires-in must be 1..{MAX_PRESIGN_S} seconds (7 days, as S3)")
    signed = ctx.client.generate_presigned_url(
        "get_object", Params={"Bucket": url.bucket, "Key": url.key}, ExpiresIn=args.expires_in
    )
    ctx.out.result(signed, op="presign", src=str(url), url=signed, expires_in=args.expires_in)
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------
def _common_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("endpoint and output")
    g.add_argument("--endpoint", metavar="URL", help="S3 endpoint (default: local cluster)")
    g.add_argument("--data", metavar="DIR", help="local cluster data dir holding credentials.toml")
    g.add_argument("--profile", metavar="NAME", help="profile in ~/.aws/credentials")
    g.add_argument("--region", help="signing region (default us-east-1)")
    g.add_argument("--ca-bundle", metavar="PEM", help="CA bundle for https endpoints")
    g.add_argument("--no-verify-ssl", action="store_true", help="do not verify TLS certificates")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress and no result lines")
    g.add_argument("--json", action="store_true", help="one JSON object per result line")
    return p


def _transfer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("transfer")
    g.add_argument(
        "--part-size",
        type=parse_size,
        default=8 * MiB,
        metavar="SIZE",
        help="multipart part / download range size (default 8MiB, min 5MiB)",
    )
    g.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="parallel part requests (default 8)",
    )
    g.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="retries per part after the first attempt (default 3)",
    )
    g.add_argument(
        "--no-resume",
        action="store_true",
        help="start interrupted uploads afresh instead of resuming them",
    )
    g.add_argument(
        "--state-dir",
        metavar="DIR",
        help="resume state (default $BLOBSTORE_STATE_DIR or ~/.local/state/blobstore/uploads)",
    )
    g.add_argument("--dry-run", action="store_true", help="show what would be done")
    g.add_argument(
        "--exclude",
        action="append",
        dest="filters",
        metavar="GLOB",
        type=lambda p: PathFilter(False, p),
        help="skip relative paths matching GLOB (repeatable; the last matching filter wins)",
    )
    g.add_argument(
        "--include",
        action="append",
        dest="filters",
        metavar="GLOB",
        type=lambda p: PathFilter(True, p),
        help="take back paths matching GLOB after an --exclude",
    )
    return p


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mb rb ls cp mv sync rm cat stat presign`` to the ``blobstore`` parser."""
    common, transfer = _common_parser(), _transfer_parser()
    fmt = argparse.RawDescriptionHelpFormatter

    def add(name: str, help_text: str, *parents: argparse.ArgumentParser) -> Any:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXIT_HELP,
            formatter_class=fmt,
            parents=[common, *parents],
        )

    p = add("mb", "make a bucket")
    p.add_argument("bucket", metavar="s3://BUCKET")
    p.set_defaults(func=_command(_mb))

    p = add("rb", "remove a bucket")
    p.add_argument("bucket", metavar="s3://BUCKET")
    p.add_argument("--force", action="store_true", help="delete its objects and uploads first")
    p.set_defaults(func=_command(_rb))

    p = add("ls", "list buckets, or objects and prefixes under s3://BUCKET[/PREFIX]")
    p.add_argument("target", nargs="?", metavar="s3://BUCKET[/PREFIX]")
    p.add_argument("-r", "--recursive", action="store_true", help="all keys, no '/' grouping")
    p.add_argument("-H", "--human", action="store_true", help="sizes in KiB/MiB/GiB")
    p.add_argument("--summarize", action="store_true", help="print object count and total size")
    p.set_defaults(func=_command(_ls))

    for name, fn, what in (
        ("cp", _cp, "copy files/objects: local<->s3, s3->s3 (server-side), '-' = stdin/stdout"),
        ("mv", _mv, "move files/objects: cp, then delete each source once its copy succeeded"),
    ):
        p = add(name, what, transfer)
        p.add_argument("src", metavar="SRC")
        p.add_argument("dst", metavar="DST")
        p.add_argument("-r", "--recursive", action="store_true", help="a directory / prefix")
        p.set_defaults(func=_command(fn))

    p = add("sync", "make DST match SRC (size+mtime, or --checksum); local<->s3, s3->s3", transfer)
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--checksum", action="store_true", help="compare MD5/ETag when sizes match")
    p.add_argument("--delete", action="store_true", help="delete DST files missing in SRC")
    p.set_defaults(func=_command(_sync))

    p = add("rm", "delete an object, or every object under a prefix with --recursive")
    p.add_argument("target", metavar="s3://BUCKET/KEY")
    p.add_argument("-r", "--recursive", action="store_true", help="delete everything under it")
    p.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    p.set_defaults(func=_command(_rm))

    p = add("cat", "write an object to stdout")
    p.add_argument("target", metavar="s3://BUCKET/KEY")
    p.set_defaults(func=_command(_cat, progress_ok=False))

    p = add("stat", "show an object's size, ETag, date, type and metadata")
    p.add_argument("target", metavar="s3://BUCKET/KEY")
    p.set_defaults(func=_command(_stat))

    p = add("presign", "print a URL that GETs an object without credentials until it expires")
    p.add_argument("target", metavar="s3://BUCKET/KEY")
    p.add_argument(
        "--expires-in",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="validity (default 3600, at most 604800 = 7 days)",
    )
    p.set_defaults(func=_command(_presign, progress_ok=False))
