"""Message shapes the codec must handle, registered under the test tags (80-89)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from blobstore.rpc.codec import register

__all__ = [
    "Color",
    "Conf",
    "Echo",
    "Everything",
    "Meta",
    "Slow",
    "Snap",
    "Upload",
]


class Color(IntEnum):
    RED = 0
    GREEN = 1
    BLUE = 7


@dataclass(frozen=True, slots=True)
class Conf:
    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()
    auto_leave: bool = False


@dataclass(frozen=True, slots=True)
class Meta:
    index: int = 0
    term: int = 0
    conf: Conf = field(default_factory=Conf)


@dataclass(frozen=True, slots=True)
class Snap:
    meta: Meta = field(default_factory=Meta)
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Everything:
    i: int
    f: float
    s: str
    b: bytes
    flag: bool
    nothing: None
    color: Color
    snaps: tuple[Snap, ...]
    pair: tuple[int, str]
    labels: dict[str, str]
    by_id: dict[int, Meta]
    scores: dict[int, float]
    maybe: int | None = None
    maybe_snap: Snap | None = None
    either: Conf | Meta | None = None


@dataclass(frozen=True, slots=True)
class Echo:
    seq: int
    text: str = ""
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Upload:
    name: str


@dataclass(frozen=True, slots=True)
class Slow:
    seconds: float


register(80, Conf)
register(81, Meta)
register(82, Snap)
register(83, Everything)
register(84, Echo)
register(85, Upload)
register(86, Slow)
