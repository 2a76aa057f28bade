"""MLLP framing: a sans-I/O decoder tolerant of real senders, and the encoder.

An MLLP frame is ``<SB> payload <EB> <CR>`` with SB = 0x0B, EB = 0x1C, CR = 0x0D. Real senders
bend this, and :class:`MllpDecoder` accepts what they do:

- several frames per connection, and frames split across TCP packets at any byte;
- a missing trailing CR after EB (the frame ends at EB; a CR that follows is swallowed);
- junk, NULs or line breaks between frames (skipped up to the next SB and counted);
- a new SB before EB (the sender restarted the frame: the partial frame is dropped and reported);
- frames larger than ``max_size``: the rest of the frame is discarded without being buffered and
  an :class:`Oversized` event keeps only the head (enough for the MSH segment, to address a NAK);
  the stream resynchronises at the next SB or EB.

MLLP release 2 adds commit acknowledgments that are frames of one byte: ACK (0x06) or NAK (0x15).
:func:`commit_ack` builds them and :func:`commit_ack_value` recognises them.
"""

from __future__ import annotations

from dataclasses import dataclass

SB = 0x0B
EB = 0x1C
CR = 0x0D
ACK_BYTE = 0x06
NAK_BYTE = 0x15

_SB = b"\x0b"
_EB_CR = b"\x1c\r"

#: Bytes that separate frames harmlessly (not counted as junk).
_SEPARATORS = b"\r\n\x00 \t"

#: Default largest payload accepted (below Kafka's default record limit of ~1 MiB).
DEFAULT_MAX_SIZE = 1_000_000
#: How much of an oversized frame is kept to read its MSH segment.
HEAD_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete frame's payload (between SB and EB)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Oversized:
    """A frame longer than the limit was dropped; ``head`` is its beginning, ``size`` its length."""

    head: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Discarded:
    """Bytes dropped outside a frame (``junk``), or a frame abandoned by a new SB (``restart``)."""

    size: int
    reason: str


Event = Frame | Oversized | Discarded

_IDLE = 0
_IN_FRAME = 1
_DISCARDING = 2


class MllpDecoder:
    """Incremental MLLP frame decoder. Feed it bytes; it returns the events they complete."""

    __slots__ = (
        "_buf",
        "_expect_cr",
        "_head",
        "_head_size",
        "_max_size",
        "_scan",
        "_skipped",
        "_state",
        "_too_big",
    )

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE, head_size: int = HEAD_SIZE) -> None:
        if max_size < 1:
            raise ValueError("max_size must be positive")
        self._max_size = max_size
        self._head_size = min(head_size, max_size)
        self._buf = bytearray()
        self._state = _IDLE
        self._scan = 0  # bytes of _buf already searched for EB/SB while in a frame
        self._expect_cr = False
        self._head = b""
        self._too_big = 0  # bytes of the oversized frame seen so far
        self._skipped = 0  # junk bytes skipped while idle, not yet reported

    @property
    def max_size(self) -> int:
        """The largest payload delivered as a :class:`Frame`."""
        return self._max_size

    @property
    def in_frame(self) -> bool:
        """True when a frame has started and not ended (bytes are pending)."""
        return self._state != _IDLE

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data``; return the frames (and oversize / discard reports) it completes."""
        events: list[Event] = []
        if not data:
            return events
        buf = self._buf
        buf += data
        while buf:
            if self._state == _IDLE:
                if self._expect_cr:
                    self._expect_cr = False
                    if buf[0] == CR:
                        del buf[0]
                        continue
                start = buf.find(_SB)
                junk = len(buf) if start < 0 else start
                if junk:
                    self._skipped += len(bytes(buf[:junk]).translate(None, _SEPARATORS))
                if start < 0:
                    buf.clear()
                    break
                self._flush_skipped(events)
                del buf[: start + 1]
                self._state = _IN_FRAME
                self._scan = 0
            elif self._state == _IN_FRAME:
                end = buf.find(EB, self._scan)
                limit = len(buf) if end < 0 else end
                restart = buf.find(SB, self._scan, limit)
                if restart >= 0:
                    events.append(Discarded(restart, "restart"))
                    del buf[: restart + 1]
                    self._scan = 0
                    continue
                if end < 0:
                    if len(buf) > self._max_size:
                        self._start_discarding(len(buf))
                        buf.clear()
                    else:
                        self._scan = len(buf)
                    break
                if end > self._max_size:
                    events.append(Oversized(bytes(buf[: self._head_size]), end))
                else:
                    events.append(Frame(bytes(buf[:end])))
                del buf[: end + 1]
                self._end_frame()
            else:  # discarding the rest of an oversized frame
                end = buf.find(EB)
                restart = buf.find(SB, 0, len(buf) if end < 0 else end)
                if restart >= 0:
                    events.append(Oversized(self._head, self._too_big + restart))
                    del buf[: restart + 1]
                    self._state = _IN_FRAME
                    self._scan = 0
                    self._head = b""
                    continue
                if end < 0:
                    self._too_big += len(buf)
                    buf.clear()
                    break
                events.append(Oversized(self._head, self._too_big + end))
                del buf[: end + 1]
                self._head = b""
                self._end_frame()
        return events

    def close(self) -> list[Event]:
        """The connection ended: report whatever was pending (a partial frame is discarded)."""
        events: list[Event] = []
        self._flush_skipped(events)
        if self._state == _IN_FRAME and self._buf:
            events.append(Discarded(len(self._buf), "incomplete"))
        elif self._state == _DISCARDING:
            events.append(Oversized(self._head, self._too_big + len(self._buf)))
        self._buf.clear()
        self._state = _IDLE
        self._head = b""
        self._too_big = 0
        self._expect_cr = False
        return events

    def _start_discarding(self, seen: int) -> None:
        self._head = bytes(self._buf[: self._head_size])
        self._too_big = seen
        self._state = _DISCARDING

    def _end_frame(self) -> None:
        self._state = _IDLE
        self._scan = 0
        self._too_big = 0
        self._expect_cr = True

    def _flush_skipped(self, events: list[Event]) -> None:
        if self._skipped:
            events.append(Discarded(self._skipped, "junk"))
            self._skipped = 0


def encode_frame(payload: bytes) -> bytes:
    """Wrap ``payload`` in an MLLP frame."""
    return _SB + payload + _EB_CR


def commit_ack(accepted: bool) -> bytes:
    """An MLLP release 2 commit acknowledgment frame: ACK (0x06) or NAK (0x15)."""
    return encode_frame(bytes((ACK_BYTE if accepted else NAK_BYTE,)))


def commit_ack_value(payload: bytes) -> bool | None:
    """True for an MLLPv2 ACK payload, False for a NAK, None when ``payload`` is not a byte ACK."""
    if payload == b"\x06":
        return True
    if payload == b"\x15":
        return False
    return None


__all__ = [
    "ACK_BYTE",
    "CR",
    "DEFAULT_MAX_SIZE",
    "EB",
    "HEAD_SIZE",
    "NAK_BYTE",
    "SB",
    "Discarded",
    "Event",
    "Frame",
    "MllpDecoder",
    "Oversized",
    "commit_ack",
    "commit_ack_value",
    "encode_frame",
]
