"""``cp``, ``mv`` and ``sync``: plan the jobs (``locations``, ``syncplan``) and run them
through the transfer engine, a file per worker thread (``--concurrency``); ``-`` streams
stdin or stdout. ``mv`` deletes each source once its copy succeeded.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from blobstore.cli.command import EXIT_OK, Context, delete_keys, error_text
from blobstore.cli.locations import (
    Job,
    S3Url,
    join,
    list_sync_root,
    parse_s3_url,
    plan_cp,
    with_local_etags,
)
from blobstore.cli.syncplan import Compare, SyncAction, plan_sync
from blobstore.durable import fsync_path
from blobstore.errors import ConfigError

__all__ = ["cp", "mv", "sync"]


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
        ctx.out.error(f"{op} {job.src} to {job.dst}: {error_text(e)}", **fields)
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
            why = f"copied, but the source was not deleted: {error_text(e)}"
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


def cp(args: argparse.Namespace, ctx: Context) -> int:
    if args.src == "-" or args.dst == "-":
        return _cp_stream(args, ctx)
    jobs = plan_cp(
        ctx.client, args.src, args.dst, recursive=args.recursive, filters=args.filters or ()
    )
    _run_jobs(ctx, jobs, dry_run=args.dry_run)
    return EXIT_OK


def mv(args: argparse.Namespace, ctx: Context) -> int:
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


def sync(args: argparse.Namespace, ctx: Context) -> int:
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
                ctx.out.error(f"delete {target}: {error_text(e)}", op="delete", dst=str(target))
    remote_deletes = [a.key for a in deletes if isinstance(dst_root, S3Url)]
    if remote_deletes and not args.dry_run and isinstance(dst_root, S3Url):
        delete_keys(ctx, dst_root.bucket, [dst_root.key + k for k in remote_deletes])
    return EXIT_OK
