"""Codecs: erasure coding (``ec``) and chunk/stripe/range arithmetic (``ranges``), pure."""

from blobstore.codec.ec import ErasureCoder, NotEnoughPieces, ZfecCoder, get_coder
from blobstore.codec.ranges import Layout

__all__ = ["ErasureCoder", "Layout", "NotEnoughPieces", "ZfecCoder", "get_coder"]
