"""A lazy, fast ER7 (pipe-and-hat) parser for HL7 v2.1-2.8.

Segments are split once; fields, repetitions, components and sub-components are split on demand
and escape sequences are decoded only for the values that are read. Errors say where (segment
index and name, field) and never quote values.

Positions follow HL7 numbering: ``seg.get(5, 1)`` is PID-5.1. For MSH, field 1 is the field
separator and field 2 the encoding characters, as in the standard.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pyheart.broker.errors import ParseError

_SEGMENT_SPLIT = re.compile(r"\r\n|\r|\n")
_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_BOM = "\ufeff"

#: HL7 table 0211 (alternate character sets) to Python codec names.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859-2",
    "ISO IR101": "iso8859-2",
    "8859/3": "iso8859-3",
    "ISO IR109": "iso8859-3",
    "8859/4": "iso8859-4",
    "ISO IR110": "iso8859-4",
    "8859/5": "iso8859-5",
    "ISO IR144": "iso8859-5",
    "8859/6": "iso8859-6",
    "ISO IR127": "iso8859-6",
    "8859/7": "iso8859-7",
    "ISO IR126": "iso8859-7",
    "8859/8": "iso8859-8",
    "ISO IR138": "iso8859-8",
    "8859/9": "iso8859-9",
    "ISO IR148": "iso8859-9",
    "8859/15": "iso8859-15",
    "ISO IR14": "shift_jis",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_2",
    "ISO IR192": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "CNS 11643-1992": "big5",
    "BIG-5": "big5",
}


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The encoding characters a message declares in MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str | None = None

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as it is written."""
        base = f"{self.component}{self.repetition}{self.escape}{self.subcomponent}"
        return base + (self.truncation or "")


DEFAULT_DELIMITERS = Delimiters()


def unescape(text: str, d: Delimiters = DEFAULT_DELIMITERS, charset: str = "utf-8") -> str:
    r"""Decode HL7 escape sequences (``\F\ \S\ \T\ \R\ \E\ \P\ \Xhh\ \.br\`` ...) in ``text``."""
    esc = d.escape
    if not esc or esc not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != esc:
            j = text.find(esc, i)
            if j < 0:
                out.append(text[i:])
                break
            out.append(text[i:j])
            i = j
            continue
        end = text.find(esc, i + 1)
        if end < 0:  # a lone escape character: keep it literally
            out.append(text[i:])
            break
        seq = text[i + 1 : end]
        out.append(_decode_escape(seq, d, charset, text[i : end + 1]))
        i = end + 1
    return "".join(out)


def _decode_escape(seq: str, d: Delimiters, charset: str, literal: str) -> str:
    if seq == "F":
        return d.field
    if seq == "S":
        return d.component
    if seq == "T":
        return d.subcomponent
    if seq == "R":
        return d.repetition
    if seq == "E":
        return d.escape
    if seq == "P" and d.truncation:
        return d.truncation
    if seq.startswith("X") and len(seq) > 1:
        try:
            raw = bytes.fromhex(seq[1:])
        except ValueError:
            return literal
        try:
            return raw.decode(charset)
        except (UnicodeDecodeError, LookupError):
            return raw.decode("latin-1")
    if seq.startswith("."):
        cmd = seq[1:3]
        if cmd in ("br", "sp"):
            return "\n"
        return ""  # formatting commands (.in .ti .sk .ce .fi .nf) carry no text
    if seq in ("H", "N"):
        return ""  # highlighting on/off
    if seq[:1] in ("C", "M", "Z"):
        return ""  # character-set switches and locally defined escapes
    return literal


def escape(text: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Encode ``text`` so it can stand as one ER7 value (delimiters and line breaks escaped)."""
    esc = d.escape
    specials = {d.field, d.component, d.repetition, esc, d.subcomponent, "\r", "\n"}
    if d.truncation:
        specials.add(d.truncation)
    if not any(c in text for c in specials):
        return text
    table = {
        esc: f"{esc}E{esc}",
        d.field: f"{esc}F{esc}",
        d.component: f"{esc}S{esc}",
        d.subcomponent: f"{esc}T{esc}",
        d.repetition: f"{esc}R{esc}",
        "\r": f"{esc}X0D{esc}",
        "\n": f"{esc}.br{esc}",
    }
    if d.truncation:
        table[d.truncation] = f"{esc}P{esc}"
    text = text.replace("\r\n", "\n")
    return "".join(table.get(c, c) for c in text)


class Value:
    """One repetition of a field (level 0: split on components), or one component (level 1:
    split on sub-components). ``get`` returns decoded text; missing parts are ``""``."""

    __slots__ = ("_charset", "_d", "_level", "_parts", "raw")

    def __init__(self, raw: str, d: Delimiters, level: int = 0, charset: str = "utf-8") -> None:
        self.raw = raw
        self._d = d
        self._level = level
        self._parts: list[str] | None = None
        self._charset = charset

    def _split(self) -> list[str]:
        if self._parts is None:
            sep = self._d.component if self._level == 0 else self._d.subcomponent
            self._parts = self.raw.split(sep)
        return self._parts

    def get(self, position: int = 1, subcomponent: int = 1) -> str:
        """The decoded text at ``position`` (1-based) and, for a repetition, its ``subcomponent``."""
        parts = self._split()
        if position < 1 or position > len(parts):
            return ""
        part = parts[position - 1]
        if self._level == 0:
            if self._d.subcomponent in part:
                subs = part.split(self._d.subcomponent)
                part = subs[subcomponent - 1] if subcomponent <= len(subs) else ""
            elif subcomponent != 1:
                return ""
        return unescape(part, self._d, self._charset) if self._d.escape in part else part

    def component(self, position: int) -> Value:
        """Component ``position`` as a :class:`Value` whose parts are its sub-components."""
        parts = self._split()
        raw = parts[position - 1] if 1 <= position <= len(parts) else ""
        return Value(raw, self._d, self._level + 1, self._charset)

    def parts(self) -> list[str]:
        """Every component (or sub-component), decoded."""
        return [unescape(p, self._d, self._charset) for p in self._split()]

    def text(self) -> str:
        """The whole value, decoded, with delimiters kept as they are."""
        return unescape(self.raw, self._d, self._charset)

    def __len__(self) -> int:
        return len(self._split())

    def __bool__(self) -> bool:
        return bool(self.raw) and self.raw != '""'

    def __repr__(self) -> str:  # values are PHI: never show them
        return f"<Value level={self._level} parts={len(self._split())}>"


class Segment:
    """One segment. Fields are 1-based; ``name`` is field 0."""

    __slots__ = ("_charset", "_d", "_fields", "index", "name")

    def __init__(
        self, name: str, fields: list[str], d: Delimiters, index: int, charset: str = "utf-8"
    ) -> None:
        self.name = name
        self._fields = fields
        self._d = d
        self.index = index
        self._charset = charset

    def raw(self, n: int) -> str:
        """Field ``n`` exactly as written (escapes and delimiters intact)."""
        return self._fields[n] if 0 <= n < len(self._fields) else ""

    def reps(self, n: int) -> list[Value]:
        """The non-empty repetitions of field ``n``."""
        raw = self.raw(n)
        if not raw:
            return []
        if self.name == "MSH" and n in (1, 2):
            return [Value(raw, _NO_SPLIT, 0, self._charset)]
        return [Value(r, self._d, 0, self._charset) for r in raw.split(self._d.repetition) if r]

    def value(self, n: int, repetition: int = 0) -> Value:
        """Repetition ``repetition`` (0-based) of field ``n``; an empty :class:`Value` when absent."""
        raw = self.raw(n)
        if self.name == "MSH" and n in (1, 2):
            return Value(raw, _NO_SPLIT, 0, self._charset)
        if self._d.repetition in raw:
            reps = raw.split(self._d.repetition)
            raw = reps[repetition] if repetition < len(reps) else ""
        elif repetition:
            raw = ""
        return Value(raw, self._d, 0, self._charset)

    def get(self, n: int, component: int = 1, subcomponent: int = 1, repetition: int = 0) -> str:
        """Decoded text of field ``n``, component, sub-component, repetition (``""`` when absent)."""
        raw = self.raw(n)
        if not raw:
            return ""
        if self.name == "MSH" and n in (1, 2):
            return raw if component == 1 else ""
        d = self._d
        if d.repetition in raw:
            reps = raw.split(d.repetition)
            if repetition >= len(reps):
                return ""
            raw = reps[repetition]
        elif repetition:
            return ""
        if d.component in raw or component != 1:
            comps = raw.split(d.component)
            if component > len(comps):
                return ""
            raw = comps[component - 1]
        if d.subcomponent in raw or subcomponent != 1:
            subs = raw.split(d.subcomponent)
            if subcomponent > len(subs):
                return ""
            raw = subs[subcomponent - 1]
        return unescape(raw, d, self._charset) if d.escape in raw else raw

    def __len__(self) -> int:
        """Number of fields, counting the name as field 0."""
        return len(self._fields)

    def to_er7(self) -> str:
        """The segment as ER7 text."""
        if self.name == "MSH":
            return "MSH" + self._d.field + self._d.field.join(self._fields[2:])
        return self._d.field.join(self._fields)

    def __repr__(self) -> str:
        return f"<Segment {self.name} #{self.index} fields={len(self._fields) - 1}>"


_NO_SPLIT = Delimiters(component="\x00", repetition="\x01", escape="", subcomponent="\x02")


class Hl7Message:
    """A parsed HL7 v2 message: segments plus the header facts the engine routes on."""

    __slots__ = ("_by_name", "charset", "delimiters", "segments")

    def __init__(self, segments: list[Segment], delimiters: Delimiters, charset: str) -> None:
        self.segments = segments
        self.delimiters = delimiters
        self.charset = charset
        self._by_name: dict[str, list[Segment]] | None = None

    def _index(self) -> dict[str, list[Segment]]:
        if self._by_name is None:
            idx: dict[str, list[Segment]] = {}
            for seg in self.segments:
                idx.setdefault(seg.name, []).append(seg)
            self._by_name = idx
        return self._by_name

    def segment(self, name: str) -> Segment | None:
        """The first segment called ``name``, or None."""
        found = self._index().get(name)
        return found[0] if found else None

    def segments_named(self, name: str) -> list[Segment]:
        """Every segment called ``name``, in order."""
        return list(self._index().get(name, ()))

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    @property
    def msh(self) -> Segment:
        """The MSH segment (always the first)."""
        return self.segments[0]

    @property
    def message_type(self) -> str:
        """MSH-9.1, e.g. ``ADT``."""
        return self.msh.get(9, 1)

    @property
    def trigger_event(self) -> str:
        """MSH-9.2, e.g. ``A01``."""
        return self.msh.get(9, 2)

    @property
    def structure(self) -> str:
        """MSH-9.3, e.g. ``ADT_A01`` (may be empty in older versions)."""
        return self.msh.get(9, 3)

    @property
    def control_id(self) -> str:
        """MSH-10."""
        return self.msh.get(10)

    @property
    def version(self) -> str:
        """MSH-12.1, e.g. ``2.5.1``."""
        return self.msh.get(12, 1)

    def to_er7(self, terminator: str = "\r") -> str:
        """The message as ER7 text, segments ended by ``terminator``."""
        return terminator.join(s.to_er7() for s in self.segments) + terminator

    def __repr__(self) -> str:
        return f"<Hl7Message {self.message_type}^{self.trigger_event} segments={len(self.segments)}>"


def detect_charset(data: bytes, fallback: str = "latin-1") -> str:
    """Python codec for the bytes: MSH-18 when declared, else UTF-8 if valid, else ``fallback``."""
    start = data.find(b"MSH")
    if start >= 0 and len(data) > start + 8:
        fs = data[start + 3 : start + 4]
        end = len(data)
        for term in (b"\r", b"\n"):
            pos = data.find(term, start)
            if 0 <= pos < end:
                end = pos
        fields = data[start:end].split(fs)
        if len(fields) > 18 - 0:
            declared = fields[17].split(data[start + 4 : start + 5] or b"^")[0]
            declared = declared.split(data[start + 5 : start + 6] or b"~")[0].strip()
            if declared:
                name = CHARSETS.get(declared.decode("ascii", "replace").upper())
                if name:
                    return name
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return fallback
    return "utf-8"


def decode(data: bytes, fallback: str = "latin-1") -> tuple[str, str]:
    """Bytes to text per MSH-18 (see :func:`detect_charset`); returns ``(text, codec)``."""
    charset = detect_charset(data, fallback)
    try:
        return data.decode(charset), charset
    except (UnicodeDecodeError, LookupError):
        return data.decode(fallback, errors="replace"), fallback


def parse_message(data: bytes | str, *, fallback_charset: str = "latin-1") -> Hl7Message:
    """Parse one ER7 message (CR, LF or CRLF terminators, optional BOM, leading blank lines)."""
    if isinstance(data, bytes):
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        text, charset = decode(data, fallback_charset)
    else:
        text, charset = data, "utf-8"
    text = text.lstrip(_BOM).lstrip("\r\n\t \x0b\x00")
    text = text.rstrip("\r\n\t \x1c\x00")
    if not text.startswith("MSH"):
        if text[:3] in ("FHS", "BHS"):
            raise ParseError("batch envelope: use parse_batch()", locations=["segment 1"])
        raise ParseError("message must start with an MSH segment", locations=["segment 1"])
    if len(text) < 8:
        raise ParseError("MSH segment is truncated", locations=["MSH-2"])
    fs = text[3]
    enc_end = text.find(fs, 4)
    if enc_end < 0:
        enc_end = len(text)
    enc = text[4:enc_end]
    if len(enc) < 4 or len(enc) > 5 or fs in enc or fs.isalnum() or any(c.isalnum() for c in enc):
        raise ParseError("MSH-2 encoding characters are invalid", locations=["MSH-2"])
    if len(set(enc + fs)) != len(enc) + 1:
        raise ParseError("MSH-1/MSH-2 delimiters are not distinct", locations=["MSH-2"])
    d = Delimiters(fs, enc[0], enc[1], enc[2], enc[3], enc[4] if len(enc) == 5 else None)
    segments: list[Segment] = []
    for i, line in enumerate(_SEGMENT_SPLIT.split(text), start=1):
        if not line.strip():
            continue
        name = line[:3]
        if not _SEGMENT_NAME.match(name) or (len(line) > 3 and line[3] != fs):
            raise ParseError(f"segment {i} has an invalid segment name", locations=[f"segment {i}"])
        if name == "MSH":
            if segments:
                raise ParseError(f"segment {i}: a second MSH (use parse_batch())", locations=[f"segment {i}"])
            fields = ["MSH", fs, *line[4:].split(fs)]
        else:
            fields = line.split(fs)
        segments.append(Segment(name, fields, d, len(segments), charset))
    msh = segments[0]
    if not msh.get(9, 1):
        raise ParseError("MSH-9 (message type) is empty", locations=["MSH-9"])
    return Hl7Message(segments, d, charset)


def parse_batch(data: bytes | str, *, fallback_charset: str = "latin-1") -> list[Hl7Message]:
    """Parse a file or batch (FHS/BHS ... BTS/FTS) or several concatenated messages."""
    if isinstance(data, bytes):
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        text, _ = decode(data, fallback_charset)
    else:
        text = data
    text = text.lstrip(_BOM)
    messages: list[list[str]] = []
    for line in _SEGMENT_SPLIT.split(text):
        if not line.strip():
            continue
        tag = line[:3]
        if tag in ("FHS", "BHS", "BTS", "FTS"):
            continue
        if tag == "MSH":
            messages.append([line])
        elif messages:
            messages[-1].append(line)
        else:
            raise ParseError(
                "segment before the first MSH", locations=[tag if _SEGMENT_NAME.match(tag) else "segment"]
            )
    return [parse_message("\r".join(m), fallback_charset=fallback_charset) for m in messages]


__all__ = [
    "CHARSETS",
    "DEFAULT_DELIMITERS",
    "Delimiters",
    "Hl7Message",
    "Segment",
    "Value",
    "decode",
    "detect_charset",
    "escape",
    "parse_batch",
    "parse_message",
    "unescape",
]
