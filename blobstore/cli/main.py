"""``blobstore`` entry point: one argparse tree, one module per command group.

Every command module exposes ``register(subparsers)`` which adds its sub-commands, each
with ``func(args) -> int``. Errors that users cause (bad flags, bad config, unreachable
cluster) end as one ``error: ...`` line and exit status 2 (usage) or 1 (failure), never
a traceback. A reader that goes away (`| head`) ends the command quietly with status 141.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from blobstore import __version__
from blobstore.cli import admin, roles, s3, server
from blobstore.errors import BlobstoreError, ConfigError
from blobstore.rawbuf import tune_allocator
from blobstore.supervisor import die_with_parent_from_env

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # what a shell reports for a tool killed by SIGPIPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blobstore",
        description="blobstore: an erasure-coded, S3-compatible object store with Raft metadata.",
        epilog=s3.EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"blobstore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    roles.register(sub)
    server.register(sub)
    admin.register(sub)
    s3.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    die_with_parent_from_env()  # a harness asked for it (blobstore.supervisor)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        tune_allocator()  # every command moves bulk buffers (roles, cp, ...)
        status = int(args.func(args))
        sys.stdout.flush()  # an EPIPE shows here, not at interpreter exit
        return status
    except BrokenPipeError:  # `blobstore ls | head`: the reader left, as with any Unix tool
        # point stdout at /dev/null so the interpreter's final flush does not complain
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except ConfigError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except BlobstoreError as e:
        print(f"error: {e.code}: {e.message}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
