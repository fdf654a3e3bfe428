"""Codecs: erasure coding (``ec``, ``isal``) and chunk/stripe/range arithmetic (``ranges``), pure.

Importing the package registers the coders: zfec (always) and ISA-L's Cauchy code
(``isal-cauchy``), preferred for new chunks when its native library loads.
"""

from blobstore.codec.ec import ErasureCoder, NotEnoughPieces, ZfecCoder, get_coder, register_coder
from blobstore.codec.isal import ISAL, NATIVE, IsalCoder
from blobstore.codec.ranges import Layout

register_coder(ISAL, IsalCoder, preferred=NATIVE)

__all__ = ["ErasureCoder", "IsalCoder", "Layout", "NotEnoughPieces", "ZfecCoder", "get_coder"]
