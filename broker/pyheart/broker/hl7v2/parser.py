"""A lazy, fast ER7 (pipe-and-hat) parser for HL7 v2.1-2.8.

Segments are split once; fields are split the first time a segment is read, and repetitions,
components and sub-components only for the values that are read. Escape sequences are decoded
only for the values that are read. Errors say where (segment index and name, field) and never
quote values.

Positions follow HL7 numbering: ``seg.get(5, 1)`` is PID-5.1. For MSH (and the batch headers FHS
and BHS), field 1 is the field separator and field 2 the encoding characters, as in the standard.

What is accepted, to survive real senders:

* the encoding characters MSH-2 declares: the usual four (``^~\\&``), the five of v2.7+ with the
  truncation character (``^~\\&#``), and the shorter sets of old senders (``^~\\``): a delimiter
  a message does not declare never splits anything;
* CR, LF or CRLF segment terminators (mixed too), a leading UTF-8 BOM, MLLP framing bytes and
  blank lines around the message;
* bytes in the charset MSH-18 names (HL7 table 0211, or a Python codec name), else UTF-8 when
  valid, else the configurable fallback;
* Z-segments, which are kept like any other segment;
* an escape character doubled in MSH-2 (``^~\\\\&``, a string-escaping slip seen in the wild);
* with ``join_wrapped=True``, segments broken by hard line wraps (by default such a line is an
  error: the message is damaged).

Blanks and control characters at the very end of a message are trimmed with the framing.
Batches (FHS/BHS ... BTS/FTS, or messages one after the other) go through :func:`parse_batch`,
or :func:`parse_batch_file` for the envelope segments too.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass

from pyheart.broker.errors import ParseError

_BOM = "\ufeff"
_HEADER_SEGMENTS = frozenset({"MSH", "FHS", "BHS"})
_BATCH_SEGMENTS = frozenset({"FHS", "BHS", "BTS", "FTS"})
_LEAD_JUNK = "\ufeff\r\n\t \x0b\x00"
_TRAIL_JUNK = "\r\n\t \x1c\x00"
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NAME_CHARS = _UPPER | frozenset("0123456789")
#: Segment names seen to be well-formed (at most 26 * 36 * 36 entries).
_GOOD_NAMES: set[str] = set()
#: Stand-ins for delimiters a message does not declare (Unicode non-characters: never in text).
_ABSENT = ("\ufdd0", "\ufdd1", "\ufdd2", "\ufdd3", "\ufdd4")

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
        """MSH-2 as it is written (delimiters the message did not declare are left out)."""
        base = f"{self.component}{self.repetition}{self.escape}{self.subcomponent}"
        return "".join(c for c in base if c not in _ABSENT) + (self.truncation or "")

    @classmethod
    def from_msh(cls, field: str, encoding: str) -> Delimiters:
        """Delimiters from MSH-1 and MSH-2 (1 to 5 characters; missing ones split nothing)."""
        chars = [*encoding[:4], *_ABSENT[len(encoding) : 4]]
        return cls(field, chars[0], chars[1], chars[2], chars[3], encoding[4] if len(encoding) > 4 else None)


DEFAULT_DELIMITERS = Delimiters()


def charset_codec(declared: str) -> str | None:
    """The Python codec for an MSH-18 value (table 0211 or a codec name), or None when unknown."""
    name = declared.strip().upper()
    if not name:
        return None
    found = CHARSETS.get(name)
    if found:
        return found
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


# --------------------------------------------------------------------------------------- escapes
def unescape(text: str, d: Delimiters = DEFAULT_DELIMITERS, charset: str = "utf-8") -> str:
    r"""Decode HL7 escape sequences in ``text``.

    ``\F\ \S\ \T\ \R\ \E\`` and ``\P\`` (v2.7 truncation) give the delimiters; ``\Xhh..\`` is hex
    decoded with ``charset``; ``\.br\`` and ``\.sp n\`` give line breaks, ``\.sk n\`` spaces, the
    other formatting commands (``.in .ti .ce .fi .nf``) nothing, as do highlighting ``\H\ \N\``
    and character-set switches ``\C..\ \M..\`` and the locally defined ``\Z..\``. Anything else,
    and a lone escape character, stays as written.
    """
    esc = d.escape
    if esc not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        j = text.find(esc, i)
        if j < 0:
            out.append(text[i:])
            break
        if j > i:
            out.append(text[i:j])
        end = text.find(esc, j + 1)
        if end < 0:  # a lone escape character: keep it literally
            out.append(text[j:])
            break
        seq = text[j + 1 : end]
        raw = _hex(seq)
        if raw is not None:
            # Adjacent \Xhh\ sequences may split one multi-byte character: decode them together.
            while end + 1 < n and text[end + 1] == esc:
                after = text.find(esc, end + 2)
                more = _hex(text[end + 2 : after]) if after > 0 else None
                if more is None:
                    break
                raw += more
                end = after
            out.append(_decode_bytes(raw, charset))
        else:
            out.append(_decode_escape(seq, d, charset, text[j : end + 1]))
        i = end + 1
    return "".join(out)


def _hex(seq: str) -> bytes | None:
    """The bytes of an ``Xhh..`` escape body, or None when it is not one."""
    if len(seq) < 3 or seq[0] != "X":
        return None
    try:
        return bytes.fromhex(seq[1:])
    except ValueError:
        return None


def _decode_bytes(raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return raw.decode("latin-1")


def _count(arg: str) -> int:
    arg = arg.strip()
    return int(arg) if arg.isdigit() else 1


def _decode_escape(seq: str, d: Delimiters, charset: str, literal: str) -> str:
    if len(seq) == 1:
        one = {
            "F": d.field,
            "S": d.component,
            "T": d.subcomponent,
            "R": d.repetition,
            "E": d.escape,
            "H": "",
            "N": "",
        }.get(seq)
        if one is not None and one not in _ABSENT:
            return one
        if seq == "P" and d.truncation:
            return d.truncation
        return literal
    if not seq:
        return literal
    head = seq[0]
    if head == ".":
        cmd = seq[1:3]
        if cmd == "br":
            return "\n"
        if cmd == "sp":
            return "\n" * _count(seq[3:])
        if cmd == "sk":
            return " " * _count(seq[3:])
        if cmd in ("in", "ti", "ce", "fi", "nf"):
            return ""
        return literal
    if head in "CMZ":
        return ""
    return literal


def escape(text: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Encode ``text`` so it can stand as one ER7 value (delimiters and line breaks escaped).

    CR LF and LF become ``\\.br\\``; a lone CR becomes ``\\X0D\\``.
    """
    esc = d.escape
    if esc in _ABSENT:
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
    if "." in (esc, d.field, d.component, d.repetition, d.subcomponent, d.truncation):
        # ``.br`` would be split on the delimiter, or read as an empty escape when ``.`` escapes.
        table["\n"] = f"{esc}X0A{esc}"
    if d.truncation:
        table[d.truncation] = f"{esc}P{esc}"
    for absent in _ABSENT:
        table.pop(absent, None)
    if not any(c in text for c in table):
        return text
    text = text.replace("\r\n", "\n")
    return "".join(table.get(c, c) for c in text)


# --------------------------------------------------------------------------------------- values
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
        parts = self._parts
        if parts is None:
            parts = self._split()
        if position < 1 or position > len(parts):
            return ""
        part = parts[position - 1]
        if not part:
            return ""
        d = self._d
        if self._level == 0:
            if d.subcomponent in part:
                subs = part.split(d.subcomponent)
                part = subs[subcomponent - 1] if 1 <= subcomponent <= len(subs) else ""
            elif subcomponent != 1:
                return ""
        return unescape(part, d, self._charset) if d.escape in part else part

    @property
    def level(self) -> int:
        """0 for a field repetition (parts are components), 1 for a component (sub-components)."""
        return self._level

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


_NO_SPLIT = Delimiters(component="\x00", repetition="\x01", escape="\x03", subcomponent="\x02")


# --------------------------------------------------------------------------------------- segments
class Segment:
    """One segment. Fields are 1-based; ``name`` is field 0. Fields are split on first read."""

    __slots__ = ("_charset", "_d", "_fields", "_line", "index", "name")

    def __init__(
        self,
        name: str,
        fields: list[str] | None,
        d: Delimiters,
        index: int,
        charset: str = "utf-8",
        line: str | None = None,
    ) -> None:
        # ``fields`` None: split ``line`` (the segment as written) on first read.
        self.name = name
        self._fields = fields
        self._line = line
        self._d = d
        self.index = index
        self._charset = charset

    def _split(self) -> list[str]:
        fields = self._fields
        if fields is None:
            line = self._line or self.name
            fs = self._d.field
            if self.name in _HEADER_SEGMENTS:
                fields = [self.name, fs, *line[4:].split(fs)] if len(line) > 3 else [self.name]
            else:
                fields = line.split(fs)
            self._fields = fields
        return fields

    @property
    def fields(self) -> list[str]:
        """Every field as written, the name first (a copy)."""
        return list(self._split())

    def raw_fields(self) -> list[str]:
        """Every field as written, the name first: the segment's own list, not a copy (for
        readers that scan many fields; never change it)."""
        fields = self._fields
        return fields if fields is not None else self._split()

    def raw(self, n: int) -> str:
        """Field ``n`` exactly as written (escapes and delimiters intact)."""
        fields = self._fields if self._fields is not None else self._split()
        return fields[n] if 0 <= n < len(fields) else ""

    def reps(self, n: int) -> list[Value]:
        """The non-empty repetitions of field ``n``."""
        raw = self.raw(n)
        if not raw:
            return []
        if n in (1, 2) and self.name in _HEADER_SEGMENTS:
            return [Value(raw, _NO_SPLIT, 0, self._charset)]
        return [Value(r, self._d, 0, self._charset) for r in raw.split(self._d.repetition) if r]

    def repetitions(self, n: int) -> int:
        """How many repetitions field ``n`` has as written (empty ones included; 0 when empty)."""
        raw = self.raw(n)
        if not raw:
            return 0
        if n in (1, 2) and self.name in _HEADER_SEGMENTS:
            return 1
        return raw.count(self._d.repetition) + 1

    def value(self, n: int, repetition: int = 0) -> Value:
        """Repetition ``repetition`` (0-based) of field ``n``; an empty :class:`Value` when absent."""
        raw = self.raw(n)
        if n in (1, 2) and self.name in _HEADER_SEGMENTS:
            return Value(raw, _NO_SPLIT, 0, self._charset)
        if self._d.repetition in raw:
            reps = raw.split(self._d.repetition)
            raw = reps[repetition] if 0 <= repetition < len(reps) else ""
        elif repetition:
            raw = ""
        return Value(raw, self._d, 0, self._charset)

    def get(self, n: int, component: int = 1, subcomponent: int = 1, repetition: int = 0) -> str:
        """Decoded text of field ``n``, component, sub-component, repetition (``""`` when absent)."""
        fields = self._fields if self._fields is not None else self._split()
        if not 0 <= n < len(fields):
            return ""
        raw = fields[n]
        if not raw:
            return ""
        if n < 3 and self.name in _HEADER_SEGMENTS:
            if n == 0 or (component == 1 and subcomponent == 1 and repetition == 0):
                return raw
            if n in (1, 2):
                return ""
        d = self._d
        if d.repetition in raw:
            reps = raw.split(d.repetition)
            if not 0 <= repetition < len(reps):
                return ""
            raw = reps[repetition]
        elif repetition:
            return ""
        if d.component in raw:
            comps = raw.split(d.component)
            if not 1 <= component <= len(comps):
                return ""
            raw = comps[component - 1]
        elif component != 1:
            return ""
        if d.subcomponent in raw:
            subs = raw.split(d.subcomponent)
            if not 1 <= subcomponent <= len(subs):
                return ""
            raw = subs[subcomponent - 1]
        elif subcomponent != 1:
            return ""
        return unescape(raw, d, self._charset) if d.escape in raw else raw

    def __len__(self) -> int:
        """Number of fields, counting the name as field 0."""
        return len(self._split())

    def to_er7(self) -> str:
        """The segment as ER7 text."""
        if self._fields is None and self._line is not None:
            return self._line
        fields = self._split()
        if self.name in _HEADER_SEGMENTS and len(fields) > 1:
            return self.name + self._d.field + self._d.field.join(fields[2:])
        return self._d.field.join(fields)

    def __repr__(self) -> str:
        return f"<Segment {self.name} #{self.index} fields={len(self._split()) - 1}>"


# --------------------------------------------------------------------------------------- messages
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
                found = idx.get(seg.name)
                if found is None:
                    idx[seg.name] = [seg]
                else:
                    found.append(seg)
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

    def __len__(self) -> int:
        return len(self.segments)

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


@dataclass(frozen=True, slots=True)
class Hl7Batch:
    """A batch file: the FHS/BHS headers and BTS/FTS trailers (when present) and the messages.

    ``declared_count`` is BTS-1 (the batch message count) when the sender gave one.
    """

    messages: list[Hl7Message]
    file_header: Segment | None = None
    batch_header: Segment | None = None
    batch_trailer: Segment | None = None
    file_trailer: Segment | None = None

    @property
    def declared_count(self) -> int | None:
        """BTS-1 as an integer, or None when absent or not a number."""
        if self.batch_trailer is None:
            return None
        text = self.batch_trailer.get(1).strip()
        return int(text) if text.isdigit() else None


# --------------------------------------------------------------------------------------- decoding
def _msh18(data: bytes) -> str | None:
    """The codec MSH-18 declares, read from the raw bytes, or None."""
    start = data.find(b"MSH")
    if start < 0 or len(data) < start + 8:
        return None
    fs = data[start + 3 : start + 4]
    end = len(data)
    for term in (b"\r", b"\n"):
        pos = data.find(term, start, end)
        if pos >= 0:
            end = pos
    if data.count(fs, start, end) < 17:
        return None
    fields = data[start:end].split(fs)
    declared = fields[17]
    for sep in (data[start + 5 : start + 6], data[start + 4 : start + 5]):  # repetition, component
        if sep and sep != fs:
            declared = declared.split(sep)[0]
    return charset_codec(declared.decode("ascii", "replace")) if declared.strip() else None


def detect_charset(data: bytes, fallback: str = "latin-1") -> str:
    """Python codec for the bytes: MSH-18 when declared, else UTF-8 if valid, else ``fallback``."""
    declared = _msh18(data)
    if declared:
        return declared
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return fallback
    return "utf-8"


def decode(data: bytes, fallback: str = "latin-1") -> tuple[str, str]:
    """Bytes to text per MSH-18 (see :func:`detect_charset`); returns ``(text, codec)``.

    A leading UTF-8 BOM is dropped; a UTF-16 BOM decodes the message as UTF-16.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), "utf-16"
    declared = _msh18(data)
    if declared is None:
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            declared = fallback
    for codec in dict.fromkeys((declared, fallback)):
        try:
            return data.decode(codec), codec
        except (UnicodeDecodeError, LookupError):
            continue
    try:
        return data.decode(fallback, errors="replace"), fallback
    except LookupError:
        return data.decode("latin-1"), "latin-1"


# --------------------------------------------------------------------------------------- parsing
def _check_name(name: str) -> bool:
    if name in _GOOD_NAMES:
        return True
    if len(name) == 3 and name[0] in _UPPER and name[1] in _NAME_CHARS and name[2] in _NAME_CHARS:
        _GOOD_NAMES.add(name)
        return True
    return False


def _header_delimiters(text: str, name: str = "MSH") -> Delimiters:
    """Delimiters from the first line of ``text``, which starts with an MSH/FHS/BHS segment."""
    # The result depends on text[3:10] only (separator, at most five encoding characters and
    # what ends them), and senders repeat their header: remember the answers.
    key = text[3:10]
    found = _HEADER_CACHE.get(key)
    if found is not None:
        return found
    d = _read_delimiters(text, name)
    if len(_HEADER_CACHE) > 4096:
        _HEADER_CACHE.clear()
    _HEADER_CACHE[key] = d
    return d


_HEADER_CACHE: dict[str, Delimiters] = {}


def _read_delimiters(text: str, name: str) -> Delimiters:
    if len(text) < 5 or text[3] in "\r\n":
        raise ParseError(f"{name} segment is truncated", locations=[f"{name}-2"])
    fs = text[3]
    if fs.isalnum() or fs.isspace():
        raise ParseError(f"{name}-1 field separator is invalid", locations=[f"{name}-1"])
    end = len(text)
    for stop in (fs, "\r", "\n"):
        pos = text.find(stop, 4, end)
        if pos >= 0:
            end = pos
    enc = text[4:end]
    if len(set(enc)) != len(enc):
        # Some senders double the escape character (``^~\\&``, a string-escaping slip).
        enc = "".join(c for i, c in enumerate(enc) if i == 0 or c != enc[i - 1])
    if not 1 <= len(enc) <= 5 or any(c.isalnum() or c.isspace() for c in enc):
        raise ParseError(f"{name}-2 encoding characters are invalid", locations=[f"{name}-2"])
    if len(set(enc)) != len(enc) or fs in enc:
        raise ParseError(f"{name}-1/{name}-2 delimiters are not distinct", locations=[f"{name}-2"])
    return Delimiters.from_msh(fs, enc)


def _lines(text: str) -> list[str]:
    if "\n" in text:
        if "\r" not in text:
            return text.split("\n")
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    return text.split("\r")


def _clean(text: str) -> str:
    return text.lstrip(_LEAD_JUNK).rstrip(_TRAIL_JUNK)


def _text_and_charset(data: bytes | str, fallback: str) -> tuple[str, str | None]:
    if isinstance(data, bytes | bytearray | memoryview):
        return decode(bytes(data), fallback)
    return data, None


def _build(
    lines: list[str],
    d: Delimiters,
    charset: str | None,
    where: str = "",
    join_wrapped: bool = False,
) -> Hl7Message:
    """Segments from ``lines`` (the first is MSH); ``charset`` None means: read it from MSH-18."""
    msh = Segment("MSH", None, d, 0, charset or "utf-8", lines[0])
    if charset is None:
        charset = charset_codec(msh.get(18)) or "utf-8"
        msh._charset = charset
    segments = [msh]
    append = segments.append
    fs = d.field
    good = _GOOD_NAMES
    for i, line in enumerate(lines[1:], start=2):
        if not line or line[0] in " \t":
            line = line.strip()
            if not line:
                continue
        name = line[:3]
        if (name not in good and not _check_name(name)) or (len(line) > 3 and line[3] != fs):
            if join_wrapped:
                prev = segments[-1]
                prev._line = prev.to_er7() + line
                prev._fields = None
                continue
            raise ParseError(
                f"{where}segment {i} has an invalid segment name", locations=[f"{where}segment {i}"]
            )
        if name == "MSH":
            raise ParseError(
                f"{where}segment {i} (MSH): a second MSH in one message (use parse_batch())",
                locations=[f"{where}segment {i}"],
            )
        append(Segment(name, None, d, len(segments), charset, line))
    if not msh.get(9, 1):
        raise ParseError(f"{where}MSH-9 (message type) is empty", locations=[f"{where}MSH-9"])
    return Hl7Message(segments, d, charset)


def parse_message(
    data: bytes | str, *, fallback_charset: str = "latin-1", join_wrapped: bool = False
) -> Hl7Message:
    """Parse one ER7 message (CR, LF or CRLF terminators, optional BOM, leading blank lines).

    Raises :class:`~pyheart.broker.errors.ParseError` naming the segment or field that is wrong.
    ``join_wrapped`` accepts segments broken by a hard line wrap (a line that does not start
    with a segment name is appended to the segment before it); by default such a line is an
    error, since the message is damaged.
    """
    text, charset = _text_and_charset(data, fallback_charset)
    text = _clean(text)
    if not text:
        raise ParseError("message is empty", locations=["segment 1"])
    if not text.startswith("MSH"):
        if text[:3] in ("FHS", "BHS"):
            raise ParseError("batch envelope: use parse_batch()", locations=["segment 1"])
        raise ParseError("message must start with an MSH segment", locations=["segment 1"])
    d = _header_delimiters(text)
    return _build(_lines(text), d, charset, join_wrapped=join_wrapped)


def parse_batch_file(
    data: bytes | str, *, fallback_charset: str = "latin-1", join_wrapped: bool = False
) -> Hl7Batch:
    """Parse a batch file (FHS/BHS ... BTS/FTS) or several concatenated messages.

    Errors are located as ``message 2, segment 3`` (segments counted within the message).
    """
    text, charset = _text_and_charset(data, fallback_charset)
    text = _clean(text)
    headers: dict[str, Segment] = {}
    groups: list[tuple[int, list[str]]] = []
    for n, line in enumerate(_lines(text), start=1):
        if not line or line[0] in " \t":
            line = line.strip()
            if not line:
                continue
        tag = line[:3]
        if tag in _BATCH_SEGMENTS:
            if tag in headers:
                raise ParseError(f"line {n} ({tag}): a second {tag} in one batch", locations=[tag])
            d = _header_delimiters(line, tag) if tag in _HEADER_SEGMENTS else DEFAULT_DELIMITERS
            if tag in ("BTS", "FTS"):
                d = next((s._d for s in headers.values()), d)
            headers[tag] = Segment(tag, None, d, 0, charset or "utf-8", line)
        elif tag == "MSH":
            groups.append((len(groups) + 1, [line]))
        elif groups:
            groups[-1][1].append(line)
        else:
            raise ParseError(
                f"line {n}: segment before the first MSH",
                locations=[tag if _check_name(tag) else f"line {n}"],
            )
    messages = []
    for number, lines in groups:
        where = f"message {number}, "
        try:
            d = _header_delimiters(lines[0])
        except ParseError as exc:
            raise ParseError(f"{where}{exc}", locations=[f"{where}{loc}" for loc in exc.locations]) from None
        messages.append(_build(lines, d, charset, where, join_wrapped))
    return Hl7Batch(
        messages,
        file_header=headers.get("FHS"),
        batch_header=headers.get("BHS"),
        batch_trailer=headers.get("BTS"),
        file_trailer=headers.get("FTS"),
    )


def parse_batch(
    data: bytes | str, *, fallback_charset: str = "latin-1", join_wrapped: bool = False
) -> list[Hl7Message]:
    """Parse a file or batch (FHS/BHS ... BTS/FTS) or several concatenated messages."""
    return parse_batch_file(data, fallback_charset=fallback_charset, join_wrapped=join_wrapped).messages


__all__ = [
    "CHARSETS",
    "DEFAULT_DELIMITERS",
    "Delimiters",
    "Hl7Batch",
    "Hl7Message",
    "Segment",
    "Value",
    "charset_codec",
    "decode",
    "detect_charset",
    "escape",
    "parse_batch",
    "parse_batch_file",
    "parse_message",
    "unescape",
]
