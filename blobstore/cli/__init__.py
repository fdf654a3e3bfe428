"""The ``blobstore`` command line: role processes, the local cluster, S3 copy and admin."""

__all__ = ["main"]

from blobstore.cli.main import main
