"""Property tests of the ER7 parser: escapes, build-then-parse round trips, encodings, terminators."""

from __future__ import annotations

import codecs

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pyheart.broker.errors import ParseError
from pyheart.broker.hl7v2.parser import Delimiters, escape, parse_batch, parse_message, unescape

# Characters a sender may pick as delimiters: printable, not alphanumeric, not blank.
DELIMITER_CHARS = "|^~\\&#!$%*+/:;<=>?@[]{}`'_-.,\"()"


@st.composite
def delimiter_sets(draw: st.DrawFn) -> Delimiters:
    """Distinct field separator plus four or five encoding characters."""
    size = draw(st.sampled_from([5, 6]))
    chars = draw(st.permutations(DELIMITER_CHARS).map(lambda p: p[:size]))
    return Delimiters(chars[0], chars[1], chars[2], chars[3], chars[4], chars[5] if size == 6 else None)


text_values = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\ufdd0\ufdd1\ufdd2\ufdd3"))
leaf_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@settings(deadline=None)  # shared CI machines: timing is not what is tested
@given(text_values, delimiter_sets())
def test_escape_unescape_round_trip(text: str, d: Delimiters) -> None:
    """unescape(escape(t)) gives t back (CR LF normalised to LF) for any delimiter set."""
    assert unescape(escape(text, d), d) == text.replace("\r\n", "\n")


@settings(deadline=None)  # shared CI machines: timing is not what is tested
@given(text_values, delimiter_sets())
def test_escaped_text_has_no_delimiters(text: str, d: Delimiters) -> None:
    """Escaped text holds no delimiter but the escape character, and no line break."""
    out = escape(text, d)
    forbidden = {d.field, d.component, d.repetition, d.subcomponent, "\r", "\n"}
    if d.truncation:
        forbidden.add(d.truncation)
    assert not forbidden & set(out)


Field = list[list[list[str]]]  # repetitions -> components -> sub-components


fields_strategy = st.lists(
    st.lists(st.lists(leaf_text, min_size=1, max_size=3), min_size=1, max_size=3), min_size=1, max_size=3
)


def _render(field: Field, d: Delimiters) -> str:
    return d.repetition.join(
        d.component.join(d.subcomponent.join(escape(s, d) for s in comp) for comp in rep) for rep in field
    )


def _msh(d: Delimiters, charset: str = "") -> str:
    fields = ["MSH", d.encoding_characters, "APP", "FAC", "RCV", "RFAC", "20240101", "", "ADT^A01", "1", "P"]
    fields += ["2.5.1", "", "", "", "", "", charset]
    return d.field.join(fields[:1]) + d.field + d.field.join(fields[1:])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(fields_strategy, min_size=1, max_size=6),
    delimiter_sets(),
    st.sampled_from(["ZPI", "PID", "OBX"]),
)
def test_build_then_parse(fields: list[Field], d: Delimiters, name: str) -> None:
    """Every sub-component written into a segment is read back at its position."""
    segment = d.field.join([name, *(_render(f, d) for f in fields)])
    message = parse_message(_msh(d) + "\r" + segment + "\rZEN" + d.field + "end")
    parsed = message.segments[1]
    assert parsed.name == name
    for n, field in enumerate(fields, start=1):
        for r, rep in enumerate(field):
            for c, comp in enumerate(rep, start=1):
                for s, sub in enumerate(comp, start=1):
                    assert parsed.get(n, c, s, r) == sub.replace("\r\n", "\n")


@settings(max_examples=60, deadline=None)
@given(st.lists(fields_strategy, min_size=1, max_size=4), delimiter_sets())
def test_build_then_to_er7(fields: list[Field], d: Delimiters) -> None:
    """A parsed message writes back the exact ER7 it was read from."""
    segment = d.field.join(["ZZZ", *(_render(f, d) for f in fields)])
    er7 = _msh(d) + "\r" + segment + "\rZEN" + d.field + "end\r"  # trailing blanks are trimmed
    assert parse_message(er7).to_er7() == er7


latin1_text = st.text(st.characters(min_codepoint=0xA0, max_codepoint=0xFF), min_size=1, max_size=20)
unicode_text = st.text(
    st.characters(min_codepoint=0xA0, max_codepoint=0x2FFF, exclude_categories=["Cs"]), min_size=1
)


@settings(deadline=None)  # shared CI machines: timing is not what is tested
@given(latin1_text)
def test_latin1_declared_in_msh18(name: str) -> None:
    """Latin-1 bytes with MSH-18 ``8859/1`` decode to the original text."""
    d = Delimiters()
    data = (_msh(d, "8859/1") + "\rPID|||1||" + escape(name, d)).encode("latin-1")
    message = parse_message(data)
    assert message.charset == "latin-1"
    assert message.segment("PID").get(5) == name  # type: ignore[union-attr]


@settings(deadline=None)  # shared CI machines: timing is not what is tested
@given(unicode_text)
def test_utf8_declared_in_msh18(name: str) -> None:
    """UTF-8 bytes with MSH-18 ``UNICODE UTF-8`` decode to the original text."""
    d = Delimiters()
    data = (_msh(d, "UNICODE UTF-8") + "\rPID|||1||" + escape(name, d)).encode("utf-8")
    assert parse_message(data).segment("PID").get(5) == name  # type: ignore[union-attr]


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(deadline=None)  # shared CI machines: timing is not what is tested
@given(latin1_text)
def test_undeclared_latin1_uses_fallback(name: str) -> None:
    """Bytes that are not UTF-8 and declare no charset decode with the fallback charset."""
    d = Delimiters()
    data = (_msh(d) + "\rPID|||1||" + escape(name, d)).encode("latin-1")
    assume(not _is_utf8(data))  # latin-1 bytes that are valid UTF-8 are read as UTF-8, by design
    message = parse_message(data, fallback_charset="latin-1")
    assert message.segment("PID").get(5) == name  # type: ignore[union-attr]


@settings(deadline=None)  # shared CI machines: timing is not what is tested
@given(st.integers(min_value=0xA0, max_value=0xFF))
def test_hex_escape_uses_message_charset(code: int) -> None:
    r"""``\Xhh\`` is decoded with the charset MSH-18 declares."""
    data = (_msh(Delimiters(), "8859/1") + f"\rNTE|1||\\X{code:02X}\\").encode("latin-1")
    assert parse_message(data).segment("NTE").get(3) == chr(code)  # type: ignore[union-attr]


@settings(deadline=None)  # shared CI machines: timing is not what is tested
@given(
    st.sampled_from(["\r", "\n", "\r\n"]),
    st.booleans(),
    st.booleans(),
    st.lists(st.sampled_from(["PID|1||X", "PV1|1|I", "OBX|1|ST|C||v", "ZXY|a^b~c"]), min_size=1, max_size=5),
)
def test_terminators_and_bom(terminator: str, bom: bool, trailing: bool, lines: list[str]) -> None:
    """CR, LF and CRLF terminators, a BOM and a trailing terminator give the same segments."""
    text = terminator.join([_msh(Delimiters()), *lines]) + (terminator if trailing else "")
    data = (codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8")
    message = parse_message(data)
    assert [s.to_er7() for s in message.segments[1:]] == lines


@settings(deadline=None)  # shared CI machines: timing is not what is tested
@given(st.integers(min_value=1, max_value=5), st.sampled_from(["\r", "\n"]))
def test_batch_of_n_messages(count: int, terminator: str) -> None:
    """A batch envelope around n messages yields n messages and the declared count."""
    body = [f"{_msh(Delimiters())}{terminator}PID|{i}" for i in range(count)]
    text = terminator.join(["FHS|^~\\&|A", "BHS|^~\\&|A", *body, f"BTS|{count}", "FTS|1"])
    assert [m.segment("PID").get(1) for m in parse_batch(text)] == [str(i) for i in range(count)]  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.builds(lambda b: b"MSH" + b, st.binary(max_size=200)))
def test_arbitrary_bytes_parse_or_parse_error(data: bytes) -> None:
    """Any payload either parses or raises ParseError; reading every field never raises."""
    try:
        message = parse_message(data)
    except ParseError as exc:
        locations = exc.locations
        message = None
    if message is None:
        assert locations
        return
    for seg in message.segments:
        for n in range(len(seg)):
            seg.get(n, 2, 2, 1)
            seg.value(n).parts()


@settings(deadline=None)  # shared CI machines: timing is not what is tested
@given(text_values, delimiter_sets(), st.sampled_from(["utf-8", "latin-1", "utf-16", "shift_jis"]))
def test_unescape_total(text: str, d: Delimiters, charset: str) -> None:
    """unescape accepts any text in any charset without raising."""
    assert isinstance(unescape(text, d, charset), str)


def test_line_break_round_trips_when_dot_is_the_escape_character() -> None:
    """With '.' as the escape character a line break is written as hex, not as the ambiguous '..br.'."""
    d = Delimiters("|", "^", "~", ".", "&")
    assert escape("a\nb", d) == "a.X0A.b"
    assert unescape(escape("a\nb", d), d) == "a\nb"
