"""Domain errors, raised by every service and carried across RPC.

Services raise these; only ``gateway/errors.py`` maps them to S3 codes and HTTP statuses,
and only ``blobstore/rpc/codec.py`` turns them into bytes. Each error has a stable ``code``
(its class name) and a flat ``details`` mapping of strings, so it survives a round trip
through the wire: ``from_wire(e.code, e.message, e.details)`` rebuilds an equal error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

__all__ = [
    "AccessDenied",
    "AuthenticationFailed",
    "BadDigest",
    "BlobstoreError",
    "BucketAlreadyExists",
    "BucketAlreadyOwnedByYou",
    "BucketNotEmpty",
    "ChunkFenced",
    "ConfigError",
    "CorruptShard",
    "DeadlineExceeded",
    "InsufficientSpace",
    "InternalError",
    "InvalidArgument",
    "InvalidBucketName",
    "InvalidPart",
    "InvalidPartOrder",
    "InvalidRange",
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchShard",
    "NoSuchUpload",
    "NotLeader",
    "PreconditionFailed",
    "ProtocolError",
    "Unavailable",
    "from_wire",
]


class BlobstoreError(Exception):
    """Base of every domain error. ``details`` holds the structured fields (all strings)."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str = "", **details: str) -> None:
        super().__init__(message or type(self).__name__)
        self.message = message or type(self).__name__
        self.details: dict[str, str] = {k: str(v) for k, v in details.items()}

    @property
    def code(self) -> str:
        return type(self).__name__

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, BlobstoreError)
            and type(self) is type(other)
            and self.message == other.message
            and self.details == other.details
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"{self.code}({self.message!r}, {self.details!r})"


# -- availability (clients retry these) -------------------------------------------------
class Unavailable(BlobstoreError):
    """No quorum, no leader, or a dependency is down; the caller may retry."""

    retryable = True


class DeadlineExceeded(Unavailable):
    """A call did not complete before its deadline; its outcome is unknown."""


class NotLeader(Unavailable):
    """This metadata node is not the leader; ``details['leader']`` names it if known."""


# -- catalog ----------------------------------------------------------------------------
class NoSuchBucket(BlobstoreError):
    pass


class NoSuchKey(BlobstoreError):
    pass


class NoSuchUpload(BlobstoreError):
    pass


class BucketAlreadyExists(BlobstoreError):
    pass


class BucketAlreadyOwnedByYou(BlobstoreError):
    pass


class BucketNotEmpty(BlobstoreError):
    pass


class InvalidBucketName(BlobstoreError):
    pass


class PreconditionFailed(BlobstoreError):
    pass


class InvalidPart(BlobstoreError):
    pass


class InvalidPartOrder(BlobstoreError):
    pass


class InvalidArgument(BlobstoreError):
    pass


class InvalidRange(BlobstoreError):
    pass


class BadDigest(BlobstoreError):
    pass


class ChunkFenced(BlobstoreError):
    """A commit named a chunk id that garbage collection has fenced (its shards are being
    deleted): nothing was committed; retry the whole write (it gets fresh chunk ids)."""

    retryable = True


# -- auth -------------------------------------------------------------------------------
class AccessDenied(BlobstoreError):
    pass


class AuthenticationFailed(BlobstoreError):
    """A peer failed the cluster-secret handshake."""


# -- data path --------------------------------------------------------------------------
class CorruptShard(BlobstoreError):
    """A shard piece failed its checksum (or its header is unreadable)."""


class NoSuchShard(BlobstoreError):
    pass


class InsufficientSpace(BlobstoreError):
    """The disk is at or below its free-space reserve."""


# -- plumbing ---------------------------------------------------------------------------
class ProtocolError(BlobstoreError):
    """A malformed frame or message on an internal link."""


class ConfigError(BlobstoreError):
    """Invalid configuration; the message says which setting and why."""


class InternalError(BlobstoreError):
    """An unexpected failure; carries the original exception's text."""


def _all_errors() -> dict[str, type[BlobstoreError]]:
    found: dict[str, type[BlobstoreError]] = {}
    stack: list[type[BlobstoreError]] = [BlobstoreError]
    while stack:
        cls = stack.pop()
        found[cls.__name__] = cls
        stack.extend(cls.__subclasses__())
    return found


def from_wire(code: str, message: str, details: Mapping[str, str]) -> BlobstoreError:
    """Rebuild an error from its wire form; unknown codes become InternalError."""
    cls = _all_errors().get(code)
    if cls is None:
        return InternalError(f"{code}: {message}", **details)
    return cls(message, **details)
