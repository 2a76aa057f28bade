"""HL7 v2 acknowledgments: build them (original and enhanced mode) and read them.

Building (:func:`build_ack`)
- Original mode: MSA-1 is AA, AE or AR, and an ACK is always sent.
- Enhanced mode (MSH-15 or MSH-16 valued, or forced by configuration): the listener's ACK is an
  accept acknowledgment, CA, CE or CR, sent according to MSH-15: AL (always; also when MSH-15 is
  empty), NE (never), ER (only CE/CR), SU (only CA). Application acknowledgments (MSH-16) belong to
  the application behind the engine, not to the listener.
- MSH-3/4 and MSH-5/6 of the message are swapped into the ACK; MSH-7 carries a time zone; MSH-9 is
  ``ACK^<trigger>^ACK``; MSH-10 is a new id; MSH-11, MSH-12 and MSH-18 are copied; MSA-2 is the
  message's MSH-10; the ACK uses the message's delimiters and character set.
- ERR segments name a location (ERR-2 ``PID^1^5``, or ERR-1 before v2.5) and an HL7 table 0357
  code, plus PyHeart's stable error code. They never carry field values: a NAK goes back to the
  sender's interface logs, and values there are PHI too.

Reading (:func:`parse_ack`): MSA-1, MSA-2, and the ERR locations and codes (validated, value-free).
"""

from __future__ import annotations

import enum
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pyheart.broker.errors import ParseError
from pyheart.broker.hl7v2 import DEFAULT_DELIMITERS, Delimiters, Hl7Message, escape, parse_message


class Outcome(enum.Enum):
    """What happened to a message, before it is spelled as an acknowledgment code."""

    ACCEPT = "A"  # stored (AA / CA)
    ERROR = "E"  # not stored for a reason the sender may retry (AE / CE)
    REJECT = "R"  # not acceptable as sent; retrying the same bytes will not help (AR / CR)


class AckMode(enum.StrEnum):
    """How the listener chooses between original and enhanced acknowledgment."""

    AUTO = "auto"  # enhanced when MSH-15 or MSH-16 is valued (the standard's rule), else original
    ORIGINAL = "original"
    ENHANCED = "enhanced"


class HL7ErrorCode(enum.IntEnum):
    """HL7 table 0357, message error condition codes."""

    ACCEPTED = 0
    SEGMENT_SEQUENCE_ERROR = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE_ERROR = 102
    TABLE_VALUE_NOT_FOUND = 103
    VALUE_TOO_LONG = 104
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT_CODE = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION_ID = 203
    UNKNOWN_KEY_IDENTIFIER = 204
    DUPLICATE_KEY_IDENTIFIER = 205
    APPLICATION_RECORD_LOCKED = 206
    APPLICATION_INTERNAL_ERROR = 207

    @property
    def text(self) -> str:
        """The table's display text."""
        return _ERROR_TEXT[self]


_ERROR_TEXT: dict[HL7ErrorCode, str] = {
    HL7ErrorCode.ACCEPTED: "Message accepted",
    HL7ErrorCode.SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    HL7ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    HL7ErrorCode.DATA_TYPE_ERROR: "Data type error",
    HL7ErrorCode.TABLE_VALUE_NOT_FOUND: "Table value not found",
    HL7ErrorCode.VALUE_TOO_LONG: "Value too long",
    HL7ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    HL7ErrorCode.UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    HL7ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    HL7ErrorCode.UNSUPPORTED_VERSION_ID: "Unsupported version id",
    HL7ErrorCode.UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    HL7ErrorCode.DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
    HL7ErrorCode.APPLICATION_RECORD_LOCKED: "Application record locked",
    HL7ErrorCode.APPLICATION_INTERNAL_ERROR: "Application internal error",
}

#: Coding system of PyHeart's own error codes in ERR-5 (a local table: HL7 reserves "99" prefixes).
LOCAL_CODING_SYSTEM = "99PYH"

#: PyHeart locations: ``PID-5``, ``PID-5.1``, ``PID-5.1.2``, ``PID[2]-3`` (2nd PID), ``MSH-9``.
_LOCATION = re.compile(
    r"^([A-Z][A-Z0-9]{2})(?:\[(\d{1,4})\])?(?:-(\d{1,3})(?:\.(\d{1,3}))?(?:\.(\d{1,3}))?)?$"
)
#: What any location or text put into an ERR segment may contain (value-free by construction).
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9 .,:;()\[\]/_'-]{0,120}$")
_SAFE_CODE = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


@dataclass(frozen=True, slots=True)
class AckError:
    """One ERR segment: a location, an HL7 error code, PyHeart's code and a value-free text.

    ``location`` uses PyHeart's notation (``PID-5.1``, ``PID[2]-3``, ``MSH-9`` or ``segment 3``);
    ``text`` is a fixed description chosen by the caller, never derived from field values.
    """

    code: HL7ErrorCode
    location: str = ""
    app_code: str = ""
    text: str = ""
    severity: str = "E"


@dataclass(frozen=True, slots=True)
class Ack:
    """A built acknowledgment: its MSA-1 code, its ER7 bytes, and whether MSH-15 says to send it."""

    code: str
    payload: bytes
    send: bool = True


def is_enhanced(header: Hl7Message | None, mode: AckMode) -> bool:
    """Whether the acknowledgment to ``header`` uses enhanced codes (CA/CE/CR)."""
    if mode is AckMode.ORIGINAL:
        return False
    if mode is AckMode.ENHANCED:
        return True
    if header is None:
        return False
    return bool(header.msh.get(15).strip() or header.msh.get(16).strip())


def ack_code(outcome: Outcome, enhanced: bool) -> str:
    """MSA-1 for ``outcome``: AA/AE/AR, or CA/CE/CR when ``enhanced``."""
    return ("C" if enhanced else "A") + outcome.value


def should_send(header: Hl7Message | None, outcome: Outcome, enhanced: bool) -> bool:
    """MSH-15 rules for an accept acknowledgment in enhanced mode; original mode always sends."""
    if not enhanced or header is None:
        return True
    condition = header.msh.get(15).strip().upper()
    if condition == "NE":
        return False
    if condition == "ER":
        return outcome is not Outcome.ACCEPT
    if condition == "SU":
        return outcome is Outcome.ACCEPT
    return True  # AL, empty, or a value outside table 0155: acknowledge


_SECOND_CACHE: list[tuple[int, str]] = [(-1, "")]


def hl7_timestamp(now: datetime | None = None) -> str:
    """An HL7 DTM with four fractional digits and a time zone (``YYYYMMDDHHMMSS.SSSS+ZZZZ``)."""
    if now is None:
        # The hot path (one ACK per message): format the UTC second once per second.
        stamp = time.time()
        second = int(stamp)
        cached_second, text = _SECOND_CACHE[0]
        if cached_second != second:
            text = time.strftime("%Y%m%d%H%M%S", time.gmtime(second))
            _SECOND_CACHE[0] = (second, text)
        return f"{text}.{int((stamp - second) * 10_000):04d}+0000"
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return f"{now:%Y%m%d%H%M%S}.{now.microsecond // 100:04d}{now:%z}"


def _version(header: Hl7Message | None) -> tuple[int, ...]:
    text = header.msh.get(12, 1) if header is not None else ""
    parts = re.findall(r"\d+", text)
    return tuple(int(p) for p in parts[:3]) if parts else (2, 5)


def _erl(location: str, d: Delimiters) -> list[str]:
    """ERL components (segment, sequence, field, repetition, component, sub-component)."""
    match = _LOCATION.match(location)
    if match is None:
        return []
    seg, seq, fld, comp, sub = match.groups()
    parts = [seg, seq or "1"]
    if fld:
        parts.append(fld)
        if comp:
            parts += ["1", comp]
            if sub:
                parts.append(sub)
    return parts


def _err_segment(err: AckError, d: Delimiters, version: tuple[int, ...]) -> str:
    location = err.location if _SAFE_TEXT.match(err.location) else ""
    text = err.text if _SAFE_TEXT.match(err.text) else ""
    app_code = err.app_code if _SAFE_CODE.match(err.app_code) else ""
    code = f"{int(err.code)}"
    erl = _erl(location, d)
    fs, cs, ss = d.field, d.component, d.subcomponent
    if version < (2, 5):
        # ERR-1 (ELD): segment ^ sequence ^ field ^ code&text&HL70357
        eld = (erl[:3] + [""] * 3)[:3] if erl else ["", "", ""]
        eld.append(ss.join([code, escape(err.code.text, d), "HL70357"]))
        return "ERR" + fs + cs.join(eld).rstrip(cs)
    fields = [
        "",  # ERR-1 (deprecated since v2.5)
        cs.join(erl),  # ERR-2 error location
        cs.join([code, escape(err.code.text, d), "HL70357"]),  # ERR-3 HL7 error code
        err.severity if err.severity in ("E", "W", "I", "F") else "E",  # ERR-4 severity
        cs.join([app_code, "", LOCAL_CODING_SYSTEM]) if app_code else "",  # ERR-5 application code
        "",  # ERR-6 application error parameter: would be a value, never filled
        escape(f"{location}: {text}" if location and text else location or text, d),  # ERR-7 diagnostic
    ]
    return "ERR" + fs + fs.join(fields).rstrip(fs)


def build_ack(
    header: Hl7Message | None,
    outcome: Outcome,
    *,
    mode: AckMode = AckMode.AUTO,
    errors: Sequence[AckError] = (),
    now: datetime | None = None,
    control_id: str | None = None,
) -> Ack:
    """Build the acknowledgment of the message whose MSH is ``header``.

    ``header`` may be None when not even MSH could be read: the ACK then uses default delimiters
    and an empty MSA-2. The bytes are encoded in the message's character set.
    """
    enhanced = is_enhanced(header, mode)
    code = ack_code(outcome, enhanced)
    d = header.delimiters if header is not None else DEFAULT_DELIMITERS
    version = _version(header)
    msh = header.msh if header is not None else None

    def raw(n: int) -> str:
        return msh.raw(n) if msh is not None else ""

    trigger = msh.get(9, 2) if msh is not None else ""
    fields: dict[int, str] = {
        3: raw(5),
        4: raw(6),
        5: raw(3),
        6: raw(4),
        7: hl7_timestamp(now),
        9: d.component.join(["ACK", escape(trigger, d), "ACK"]) if trigger else "ACK",
        10: control_id or uuid.uuid4().hex[:20],
        11: raw(11) or "P",
        12: raw(12) or "2.5.1",
    }
    if enhanced:
        fields[15] = "NE"
        fields[16] = "NE"
    if raw(18):
        fields[18] = raw(18)
    last = max(fields)
    msh_text = (
        "MSH"
        + d.field
        + d.encoding_characters
        + d.field
        + d.field.join(fields.get(i, "") for i in range(3, last + 1))
    )
    msa = ["MSA", code, raw(10)]
    if outcome is not Outcome.ACCEPT and version < (2, 4):
        # MSA-3 text message: the only error channel many v2.1-2.3 receivers display.
        first = errors[0].code if errors else HL7ErrorCode.APPLICATION_INTERNAL_ERROR
        msa.append(escape(first.text, d))
    segments = [msh_text, d.field.join(msa)]
    segments += [_err_segment(e, d, version) for e in errors]
    text = "\r".join(segments) + "\r"
    charset = header.charset if header is not None else "ascii"
    try:
        payload = text.encode(charset)
    except (UnicodeEncodeError, LookupError):
        payload = text.encode("utf-8", errors="replace")
    return Ack(code, payload, should_send(header, outcome, enhanced))


def read_header(data: bytes, *, fallback_charset: str = "latin-1") -> Hl7Message | None:
    """The MSH segment of ``data`` alone, parsed (to address an ACK); None when it is unreadable.

    Used when the whole message cannot be parsed or was too large to keep.
    """
    start = data.find(b"MSH")
    if start < 0:
        return None
    end = len(data)
    for terminator in (b"\r", b"\n"):
        pos = data.find(terminator, start)
        if 0 <= pos < end:
            end = pos
    try:
        return parse_message(data[start:end], fallback_charset=fallback_charset)
    except ParseError:
        return None


# --------------------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class AckResult:
    """What an acknowledgment says: MSA-1, MSA-2, and ERR locations and codes (value-free)."""

    code: str
    control_id: str
    locations: tuple[str, ...] = ()
    error_codes: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        """AA or CA."""
        return self.code in ("AA", "CA")

    @property
    def rejected(self) -> bool:
        """AR or CR: the receiver will not take this message as it is."""
        return self.code in ("AR", "CR")


_ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})
_DIGITS = re.compile(r"^\d{1,4}$")


def _location_from(seg: str, seq: str, fld: str, comp: str = "", sub: str = "") -> str:
    if not re.match(r"^[A-Z][A-Z0-9]{2}$", seg):
        return ""
    out = seg
    if _DIGITS.match(seq) and seq not in ("", "1"):
        out += f"[{seq}]"
    if _DIGITS.match(fld):
        out += f"-{int(fld)}"
        if _DIGITS.match(comp):
            out += f".{int(comp)}"
            if _DIGITS.match(sub):
                out += f".{int(sub)}"
    return out


def parse_ack(data: bytes, *, fallback_charset: str = "latin-1") -> AckResult:
    """Read an HL7 acknowledgment. Raises :class:`ParseError` (naming MSA-1 or MSA-2) when it is not one."""
    message = parse_message(data, fallback_charset=fallback_charset)
    msa = message.segment("MSA")
    if msa is None:
        raise ParseError("acknowledgment has no MSA segment", locations=["MSA"])
    code = msa.get(1).strip().upper()
    if code not in _ACK_CODES:
        raise ParseError("MSA-1 is not an acknowledgment code", locations=["MSA-1"])
    locations: list[str] = []
    codes: list[str] = []
    for err in message.segments_named("ERR"):
        if err.raw(2):  # v2.5+: ERR-2 (ERL) and ERR-3 (CWE)
            loc = _location_from(err.get(2, 1), err.get(2, 2), err.get(2, 3), err.get(2, 5), err.get(2, 6))
            err_code = err.get(3, 1)
        else:  # v2.1-2.4: ERR-1 (ELD) segment ^ sequence ^ field ^ code&text&system
            loc = _location_from(err.get(1, 1), err.get(1, 2), err.get(1, 3))
            err_code = err.get(1, 4, 1) or err.get(3, 1)
        if loc:
            locations.append(loc)
        if _DIGITS.match(err_code):
            codes.append(err_code)
    return AckResult(code, msa.get(2), tuple(locations), tuple(codes))


__all__ = [
    "LOCAL_CODING_SYSTEM",
    "Ack",
    "AckError",
    "AckMode",
    "AckResult",
    "HL7ErrorCode",
    "Outcome",
    "ack_code",
    "build_ack",
    "hl7_timestamp",
    "is_enhanced",
    "parse_ack",
    "read_header",
    "should_send",
]
