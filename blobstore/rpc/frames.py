"""Frame layout of internal links, and an incremental frame decoder (pure, no I/O).

Every frame is a 12-byte header followed by ``length`` payload bytes::

    offset size field
    0      4    length     u32 big-endian, payload bytes (<= the link's frame cap)
    4      1    type       FrameType
    5      1    flags      bit 0: HAS_BODY (REQUEST/RESPONSE is followed by DATA... END)
    6      2    reserved   must be 0
    8      4    stream_id  u32 call id (0 for AUTH and MESSAGE frames)

Frame types: AUTH (handshake message), REQUEST (codec-encoded CallHeader), RESPONSE
(codec-encoded reply or error), DATA (raw bulk bytes of a stream), END (end of a bulk
stream; empty payload = complete, else a codec-encoded error = aborted), WINDOW (u32
big-endian credit grant for a stream), CANCEL (the caller gave up on a call), MESSAGE
(one-way codec-encoded message).

A header with an unknown type, non-zero reserved bits, unknown flags, or a length above
the cap is malformed: ``FrameDecoder`` raises ``ProtocolError`` and the link must close.

``FrameDecoder`` is written for ``asyncio.BufferedProtocol``: ``get_buffer()`` hands out
space in a scratch buffer for small frames, and for a large payload a buffer of exactly
its size, so the kernel writes bulk bytes straight into the payload that is handed to the
consumer (no extra copy). Small payloads are copied out of the scratch buffer.

A large DATA payload often lands in the scratch buffer anyway: a recv at a frame boundary
cannot know what comes next, so the RESPONSE of a shard read and most of its one 256 KiB
DATA frame arrive together. Such a payload (at least half the scratch buffer) is not
copied out: the consumer gets a view of it and the decoder takes a new scratch buffer
(moving only the bytes after the frame). Before, 97% of the bytes of 1 MiB object reads
(four 256 KiB shard reads) were received into scratch and then copied; the reader's CPU
per read fell by ~12% without that copy (6 interleaved pairs of runs). A view pins the
whole scratch buffer (320 KiB) while its consumer holds it: at most twice its payload.

Must not import: asyncio, sockets, service packages.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from blobstore.errors import ProtocolError
from blobstore.rawbuf import uninitialized

__all__ = [
    "FLAG_HAS_BODY",
    "HEADER",
    "HEADER_SIZE",
    "MAX_FRAME_PAYLOAD",
    "Frame",
    "FrameDecoder",
    "FrameType",
    "Payload",
    "pack_header",
]

HEADER = struct.Struct("!IBBHI")
HEADER_SIZE = HEADER.size
MAX_FRAME_PAYLOAD = 16 * 1024 * 1024
FLAG_HAS_BODY = 0x01
_KNOWN_FLAGS = FLAG_HAS_BODY


class FrameType(IntEnum):
    AUTH = 1
    REQUEST = 2
    RESPONSE = 3
    DATA = 4
    END = 5
    WINDOW = 6
    CANCEL = 7
    MESSAGE = 8


_MAX_TYPE = max(FrameType)

# (type, flags, stream_id, payload); a memoryview only for a DATA payload handed over
# from the scratch buffer (see above)
Payload = bytes | bytearray | memoryview
Frame = tuple[int, int, int, Payload]
_DATA = int(FrameType.DATA)


def pack_header(ftype: int, flags: int, stream_id: int, length: int) -> bytes:
    """The 12-byte header of a frame."""
    return HEADER.pack(length, ftype, flags, 0, stream_id)


class FrameDecoder:
    """Turns a byte stream into frames; raises ProtocolError on malformed input."""

    def __init__(
        self,
        max_payload: int = MAX_FRAME_PAYLOAD,
        *,
        scratch_size: int = 320 * 1024,
        big_threshold: int = 64 * 1024,
    ) -> None:
        if big_threshold + HEADER_SIZE > scratch_size:
            raise ValueError("scratch buffer must hold any small frame")
        self.max_payload = max_payload
        self._scratch = bytearray(scratch_size)
        self._view = memoryview(self._scratch)
        self._start = 0
        self._end = 0
        self._big_threshold = big_threshold
        # DATA payloads this big are handed over in the scratch buffer (a view pins the
        # whole buffer: at most twice the payload's size); 256 KiB pieces fit
        self._handoff_min = max(big_threshold, scratch_size // 2)
        self._filling = False  # a handed-over-to-be DATA frame is being received in scratch
        self._big: bytearray | None = None
        self._big_pos = 0
        self._big_head: tuple[int, int, int] = (0, 0, 0)
        self._after_big = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames (a truncated frame at EOF)."""
        if self._big is not None:
            return HEADER_SIZE + self._big_pos
        return self._end - self._start

    def get_buffer(self) -> memoryview:
        """Where the next received bytes should be written."""
        if self._big is not None:
            return memoryview(self._big)[self._big_pos :]
        if self._start == self._end:
            self._start = self._end = 0
            if self._after_big:
                # bulk streams are back-to-back big frames: read just the next header so
                # its payload can go straight into its own buffer (no copy out of scratch)
                return self._view[:HEADER_SIZE]
        elif (
            not self._filling and len(self._scratch) - self._end < HEADER_SIZE + self._big_threshold
        ):
            n = self._end - self._start
            self._scratch[:n] = self._view[self._start : self._end]
            self._start, self._end = 0, n
        return self._view[self._end :]

    def buffer_updated(self, nbytes: int) -> list[Frame]:
        """``nbytes`` were written into the last ``get_buffer()``; return complete frames."""
        frames: list[Frame] = []
        if self._big is not None:
            self._big_pos += nbytes
            if self._big_pos < len(self._big):
                return frames
            ftype, flags, sid = self._big_head
            frames.append((ftype, flags, sid, self._big))
            self._big = None
            self._after_big = True
            return frames
        self._after_big = False
        self._end += nbytes
        self._parse(frames)
        return frames

    def _new_scratch(self) -> memoryview:
        """Leave the scratch buffer to the payload just handed over; continue in a new one
        holding the bytes received after it."""
        rest = self._view[self._start : self._end]
        self._scratch = uninitialized(len(self._scratch))
        self._view = memoryview(self._scratch)
        n = len(rest)
        self._view[:n] = rest
        self._start, self._end = 0, n
        return self._view

    def feed(self, data: bytes) -> list[Frame]:
        """Convenience for tests and non-buffered protocols: copy ``data`` in and parse."""
        frames: list[Frame] = []
        mv = memoryview(data)
        while mv:
            buf = self.get_buffer()
            n = min(len(buf), len(mv))
            buf[:n] = mv[:n]
            mv = mv[n:]
            frames.extend(self.buffer_updated(n))
        return frames

    def _parse(self, frames: list[Frame]) -> None:
        view = self._view
        self._filling = False
        while self._end - self._start >= HEADER_SIZE:
            start = self._start
            length, ftype, flags, reserved, sid = HEADER.unpack_from(view, start)
            if (
                length > self.max_payload
                or not 1 <= ftype <= _MAX_TYPE
                or reserved
                or flags & ~_KNOWN_FLAGS
            ):
                raise ProtocolError(
                    f"malformed frame header: length={length} type={ftype} "
                    f"flags={flags} reserved={reserved}"
                )
            have = self._end - start - HEADER_SIZE
            handoff = ftype == _DATA and length >= self._handoff_min
            if have >= length:
                body = start + HEADER_SIZE
                if handoff:
                    frames.append((ftype, flags, sid, view[body : body + length]))
                    self._start = body + length
                    view = self._new_scratch()
                    continue
                frames.append((ftype, flags, sid, bytes(view[body : body + length])))
                self._start = body + length
                continue
            if handoff and start + HEADER_SIZE + length <= len(self._scratch):
                self._filling = True  # the rest fits: keep receiving into scratch
                return
            if length >= self._big_threshold:
                big = uninitialized(length)  # delivered only once recv filled it all
                big[:have] = view[start + HEADER_SIZE : self._end]
                self._big, self._big_pos, self._big_head = big, have, (ftype, flags, sid)
                self._start = self._end = 0
            return
