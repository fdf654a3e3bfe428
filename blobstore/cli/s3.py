"""Object commands: ``mb rb ls cp mv sync rm cat stat presign`` against any S3 endpoint.

``register(sub)`` adds them as top-level ``blobstore`` sub-commands sharing one set of
endpoint/output flags (``_common_parser``) and, for ``cp``/``mv``/``sync`` (``cp.py``),
transfer flags. Every command runs in a ``command.Context`` through ``command.command``.
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
import sys
from datetime import datetime
from typing import Any

from blobstore.cli import cp
from blobstore.cli.command import (
    EXIT_FAILURE,
    EXIT_OK,
    Context,
    MiB,
    command,
    delete_keys,
)
from blobstore.cli.locations import dir_prefix, iter_listing, iter_objects, parse_s3_url
from blobstore.cli.progress import format_bytes
from blobstore.cli.syncplan import PathFilter
from blobstore.errors import ConfigError

__all__ = ["EXIT_HELP", "parse_size", "register"]

MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4's limit

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


# -- bucket commands --------------------------------------------------------------------
def _mb(args: argparse.Namespace, ctx: Context) -> int:
    url = parse_s3_url(args.bucket)
    ctx.client.create_bucket(Bucket=url.bucket)
    ctx.out.result(f"make_bucket: {url.bucket}", op="make_bucket", bucket=url.bucket)
    return EXIT_OK


def _rb(args: argparse.Namespace, ctx: Context) -> int:
    url = parse_s3_url(args.bucket)
    if args.force:
        delete_keys(ctx, url.bucket, [o.key for o in iter_objects(ctx.client, url.bucket, "")])
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
        delete_keys(ctx, url.bucket, keys)
        return EXIT_OK
    if not url.key:
        raise ConfigError("rm needs s3://BUCKET/KEY (or --recursive for a prefix)")
    ctx.client.head_object(Bucket=url.bucket, Key=url.key)  # missing key -> 404 -> exit 1
    if not args.dry_run:
        ctx.client.delete_object(Bucket=url.bucket, Key=url.key)
    tag = "(dryrun) " if args.dry_run else ""
    ctx.out.result(f"{tag}delete: {url}", op="delete", dst=str(url), status="ok")
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
    p.set_defaults(func=command(_mb))

    p = add("rb", "remove a bucket")
    p.add_argument("bucket", metavar="s3://BUCKET")
    p.add_argument("--force", action="store_true", help="delete its objects and uploads first")
    p.set_defaults(func=command(_rb))

    p = add("ls", "list buckets, or objects and prefixes under s3://BUCKET[/PREFIX]")
    p.add_argument("target", nargs="?", metavar="s3://BUCKET[/PREFIX]")
    p.add_argument("-r", "--recursive", action="store_true", help="all keys, no '/' grouping")
    p.add_argument("-H", "--human", action="store_true", help="sizes in KiB/MiB/GiB")
    p.add_argument("--summarize", action="store_true", help="print object count and total size")
    p.set_defaults(func=command(_ls))

    for name, fn, what in (
        ("cp", cp.cp, "copy files/objects: local<->s3, s3->s3 (server-side), '-' = stdin/stdout"),
        ("mv", cp.mv, "move files/objects: cp, then delete each source once its copy succeeded"),
    ):
        p = add(name, what, transfer)
        p.add_argument("src", metavar="SRC")
        p.add_argument("dst", metavar="DST")
        p.add_argument("-r", "--recursive", action="store_true", help="a directory / prefix")
        p.set_defaults(func=command(fn))

    p = add("sync", "make DST match SRC (size+mtime, or --checksum); local<->s3, s3->s3", transfer)
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--checksum", action="store_true", help="compare MD5/ETag when sizes match")
    p.add_argument("--delete", action="store_true", help="delete DST files missing in SRC")
    p.set_defaults(func=command(cp.sync))

    p = add("rm", "delete an object, or every object under a prefix with --recursive")
    p.add_argument("target", metavar="s3://BUCKET/KEY")
    p.add_argument("-r", "--recursive", action="store_true", help="delete everything under it")
    p.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    p.set_defaults(func=command(_rm))

    p = add("cat", "write an object to stdout")
    p.add_argument("target", metavar="s3://BUCKET/KEY")
    p.set_defaults(func=command(_cat, progress_ok=False))

    p = add("stat", "show an object's size, ETag, date, type and metadata")
    p.add_argument("target", metavar="s3://BUCKET/KEY")
    p.set_defaults(func=command(_stat))

    p = add("presign", "print a URL that GETs an object without credentials until it expires")
    p.add_argument("target", metavar="s3://BUCKET/KEY")
    p.add_argument(
        "--expires-in",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="validity (default 3600, at most 604800 = 7 days)",
    )
    p.set_defaults(func=command(_presign, progress_ok=False))
