"""The ``blobstore`` command line: role processes, the local cluster, S3 copy and admin.

The entry point is ``blobstore.cli.main:main`` (also ``python -m blobstore``).
"""

__all__: list[str] = []
