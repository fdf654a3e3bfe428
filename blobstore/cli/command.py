"""What every object command (``blobstore.cli.s3``, ``blobstore.cli.cp``) shares: its
``Context`` (endpoint, S3 client, output, progress, transfer engine), the runner that
turns a command's failures into one ``error: ...`` line and an exit status (``command``),
the text of an S3 or OS error (``error_text``) and batched deletes (``delete_keys``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blobstore.cli.endpoint import Endpoint, EndpointOptions, make_client, resolve_endpoint
from blobstore.cli.progress import Output, Progress
from blobstore.cli.resume import default_state_dir
from blobstore.cli.transfer import TransferConfig, Transfers
from blobstore.errors import ConfigError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Context",
    "MiB",
    "build_context",
    "command",
    "delete_keys",
    "error_text",
]

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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


def error_text(exc: BaseException) -> str:
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


def command(
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
            print(f"error: {args.command}: {error_text(e)}", file=sys.stderr)
            return EXIT_FAILURE
        finally:
            ctx.transfers.close()

    return run


def delete_keys(ctx: Context, bucket: str, keys: list[str]) -> None:
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
