"""Example tests of the ER7 parser: API behaviour, escape sequences, and every error text."""

from __future__ import annotations

import codecs

import pytest

from pyheart.broker.errors import ParseError
from pyheart.broker.hl7v2.parser import (
    Delimiters,
    charset_codec,
    escape,
    parse_batch,
    parse_batch_file,
    parse_message,
    unescape,
)

MSH = "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01^ADT_A01|CTRL1|P|2.5.1"
ADT = "\r".join(
    [
        MSH,
        "EVN|A01|20240101120000",
        "PID|1||123^^^HOSP^MR~456^^^SSA^SS||Doe^John^Q&Jr||19800101|M",
        "PV1|1|I|W^1^2",
        "ZPI|custom|a&b^c",
    ]
)


def _error(data: bytes | str) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_message(data)
    return caught.value


# --------------------------------------------------------------------------------------- header facts
def test_header_facts() -> None:
    """Type, event, structure, control id and version come from MSH."""
    m = parse_message(ADT)
    assert (m.message_type, m.trigger_event, m.structure, m.control_id, m.version) == (
        "ADT",
        "A01",
        "ADT_A01",
        "CTRL1",
        "2.5.1",
    )


def test_msh_field_numbering() -> None:
    """MSH-1 is the field separator and MSH-2 the encoding characters, as in the standard."""
    msh = parse_message(ADT).msh
    assert (msh.get(1), msh.get(2), msh.get(3)) == ("|", "^~\\&", "APP")


def test_repetitions_components_subcomponents() -> None:
    """get() walks repetition, component and sub-component."""
    pid = parse_message(ADT).segment("PID")
    assert pid is not None
    assert pid.get(3, 1, repetition=1) == "456"
    assert pid.get(5, 3, 2) == "Jr"
    assert pid.get(5, 3) == "Q"


def test_absent_positions_are_empty() -> None:
    """Positions beyond what was sent read as the empty string."""
    pid = parse_message(ADT).segment("PID")
    assert pid is not None
    assert [pid.get(99), pid.get(5, 9), pid.get(5, 1, 2), pid.get(3, repetition=5)] == ["", "", "", ""]


def test_reps_skips_empty_repetitions() -> None:
    """reps() returns the non-empty repetitions only."""
    m = parse_message(MSH + "\rPID|1||~A~~B")
    pid = m.segment("PID")
    assert pid is not None
    assert [r.get() for r in pid.reps(3)] == ["A", "B"]


def test_value_component_parts() -> None:
    """A component Value's parts are its sub-components."""
    zpi = parse_message(ADT).segment("ZPI")
    assert zpi is not None
    assert zpi.value(2).component(1).parts() == ["a", "b"]


def test_hl7_null_is_falsy() -> None:
    """The HL7 null ``""`` and the empty value are falsy; a present value is truthy."""
    pid = parse_message(MSH + '\rPID|1||""|').segment("PID")
    assert pid is not None
    assert (bool(pid.value(3)), bool(pid.value(4)), bool(pid.value(1))) == (False, False, True)


def test_z_segments_kept() -> None:
    """Z-segments are kept in order like any other segment."""
    assert [s.name for s in parse_message(ADT)] == ["MSH", "EVN", "PID", "PV1", "ZPI"]


def test_segments_named() -> None:
    """segments_named returns every segment of that name in order."""
    m = parse_message(MSH + "\rOBX|1\rNTE|1\rOBX|2")
    assert [s.get(1) for s in m.segments_named("OBX")] == ["1", "2"]


def test_to_er7_round_trip() -> None:
    """to_er7 gives the message back as written."""
    assert parse_message(ADT).to_er7() == ADT + "\r"


def test_repr_hides_values() -> None:
    """Reprs of messages, segments and values show no field value."""
    m = parse_message(ADT)
    pid = m.segment("PID")
    assert pid is not None
    text = repr(m) + repr(pid) + repr(pid.value(5))
    assert "Doe" not in text


# --------------------------------------------------------------------------------------- delimiters
def test_five_encoding_characters() -> None:
    """v2.7+ ``^~\\&#`` declares a truncation character; ``\\P\\`` decodes to it."""
    m = parse_message("MSH|^~\\&#|A||||||ADT^A01|1|P|2.7\rNTE|1||a\\P\\b#c")
    nte = m.segment("NTE")
    assert nte is not None
    assert m.delimiters.truncation == "#"
    assert nte.get(3) == "a#b#c"


def test_three_encoding_characters() -> None:
    """An old sender's ``^~\\`` (no sub-component separator) leaves ``&`` as text."""
    m = parse_message("MSH|^~\\|A||||||ADT^A01|1|P|2.1\rPID|1||a&b^c")
    pid = m.segment("PID")
    assert pid is not None
    assert (pid.get(3, 1), pid.get(3, 2), m.delimiters.encoding_characters) == ("a&b", "c", "^~\\")


def test_odd_delimiters() -> None:
    """Any distinct non-alphanumeric characters work as delimiters."""
    m = parse_message("MSH#$%*!#A######ADT$A01#1#P#2.4\rPID#1##a$b%c!d")
    pid = m.segment("PID")
    assert pid is not None
    assert (pid.get(3, 2), pid.get(3, 1, 1, 1), pid.get(3, 1, 2, 1)) == ("b", "c", "d")


# --------------------------------------------------------------------------------------- escapes
@pytest.mark.parametrize(
    ("written", "decoded"),
    [
        ("\\F\\", "|"),
        ("\\S\\", "^"),
        ("\\T\\", "&"),
        ("\\R\\", "~"),
        ("\\E\\", "\\"),
        ("a\\.br\\b", "a\nb"),
        ("a\\.sp2\\b", "a\n\nb"),
        ("a\\.sk3\\b", "a   b"),
        ("a\\.in+4\\b", "ab"),
        ("\\H\\bold\\N\\", "bold"),
        ("\\X41\\", "A"),
        ("\\XC3A9\\", "é"),
        ("a\\C2842\\b", "ab"),
        ("a\\M2442\\b", "ab"),
        ("a\\Zlocal\\b", "ab"),
        ("C:\\temp\\x", "C:\\temp\\x"),
        ("lone \\ escape", "lone \\ escape"),
        ("\\Xzz\\", "\\Xzz\\"),
    ],
)
def test_unescape(written: str, decoded: str) -> None:
    """Each escape sequence decodes as the standard says; unknown ones stay as written."""
    assert unescape(written) == decoded


def test_adjacent_hex_escapes_decode_together() -> None:
    """A multi-byte character split over two ``\\Xhh\\`` sequences decodes as one."""
    assert unescape("\\XC3\\\\XA9\\") == "é"


def test_hex_escape_falls_back_to_latin1() -> None:
    """Hex bytes that are not valid in the charset decode as Latin-1 rather than failing."""
    assert unescape("\\XE9\\", charset="utf-8") == "é"


def test_escape_encodes_delimiters() -> None:
    """escape() encodes every delimiter and line breaks."""
    assert escape("a|b^c&d~e\\f\ng\rh") == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\g\\X0D\\h"


def test_escape_truncation_character() -> None:
    """With five encoding characters the truncation character is escaped as ``\\P\\``."""
    d = Delimiters(truncation="#")
    assert escape("1#2", d) == "1\\P\\2"


# --------------------------------------------------------------------------------------- charsets
def test_charset_codec_table_0211_and_aliases() -> None:
    """Table 0211 names and Python codec names map to codecs; unknown names to None."""
    assert [charset_codec(x) for x in ("8859/1", "UNICODE UTF-8", "UTF-8", "nope", "")] == [
        "latin-1",
        "utf-8",
        "utf-8",
        None,
        None,
    ]


def test_msh18_repetition_uses_first_charset() -> None:
    """A repeating MSH-18 uses its first repetition as the message charset."""
    data = (MSH + "|||||8859/1~ISO IR87\rPID|1||\xe9").encode("latin-1")
    assert parse_message(data).charset == "latin-1"


def test_str_input_reads_msh18_for_hex_escapes() -> None:
    """For text input, ``\\Xhh\\`` is decoded with the charset MSH-18 names."""
    nte = parse_message(MSH + "|||||8859/1\rNTE|1||\\XE9\\").segment("NTE")
    assert nte is not None
    assert nte.get(3) == "é"


def test_utf16_bom() -> None:
    """A UTF-16 BOM decodes the message as UTF-16."""
    m = parse_message(codecs.BOM_UTF16_LE + ADT.encode("utf-16-le"))
    assert (m.charset, m.message_type) == ("utf-16", "ADT")


def test_mllp_framing_and_blank_lines() -> None:
    """MLLP start/end bytes and blank lines around the message are ignored."""
    m = parse_message(b"\x0b\r\n" + ADT.encode() + b"\r\r\x1c\r")
    assert len(m.segments) == 5


# --------------------------------------------------------------------------------------- wrapped lines
def test_join_wrapped_appends_continuation() -> None:
    """With join_wrapped a line that starts no segment is appended to the one before."""
    m = parse_message(MSH + "\rPID|1||(608)258-\n8866|x", join_wrapped=True)
    pid = m.segment("PID")
    assert pid is not None
    assert (pid.get(3), pid.get(4)) == ("(608)258-8866", "x")


# --------------------------------------------------------------------------------------- batches
BATCH = "\r".join(
    ["FHS|^~\\&|SND", "BHS|^~\\&|SND", MSH, "PID|1", MSH.replace("CTRL1", "CTRL2"), "PID|2", "BTS|2", "FTS|1"]
)


def test_batch_messages() -> None:
    """parse_batch returns the messages between the envelope segments."""
    assert [m.control_id for m in parse_batch(BATCH)] == ["CTRL1", "CTRL2"]


def test_batch_envelope_facts() -> None:
    """parse_batch_file exposes FHS/BHS/BTS/FTS and BTS-1 as the declared count."""
    batch = parse_batch_file(BATCH)
    assert batch.file_header is not None
    assert (batch.file_header.get(3), batch.declared_count, len(batch.messages)) == ("SND", 2, 2)


def test_concatenated_messages_without_envelope() -> None:
    """Messages one after the other, without FHS/BHS, are a batch too."""
    assert len(parse_batch(ADT + "\n" + ADT)) == 2


# --------------------------------------------------------------------------------------- errors
def test_error_empty() -> None:
    """An empty payload is a parse error at segment 1."""
    err = _error(b"\r\n")
    assert (str(err), err.locations) == ("message is empty", ["segment 1"])


def test_error_not_msh() -> None:
    """A payload that does not start with MSH says so."""
    err = _error("PID|1")
    assert (str(err), err.locations) == ("message must start with an MSH segment", ["segment 1"])


def test_error_batch_given_to_parse_message() -> None:
    """A batch envelope passed to parse_message points to parse_batch."""
    assert str(_error(BATCH)) == "batch envelope: use parse_batch()"


def test_error_truncated_msh() -> None:
    """MSH without encoding characters is truncated."""
    err = _error("MSH|")
    assert (str(err), err.locations) == ("MSH segment is truncated", ["MSH-2"])


def test_error_bad_field_separator() -> None:
    """An alphanumeric field separator is rejected at MSH-1."""
    err = _error("MSHA^~\\&A")
    assert (str(err), err.locations) == ("MSH-1 field separator is invalid", ["MSH-1"])


def test_error_bad_encoding_characters() -> None:
    """Six or alphanumeric encoding characters are rejected at MSH-2."""
    err = _error("MSH|^~\\&#!|A")
    assert (str(err), err.locations) == ("MSH-2 encoding characters are invalid", ["MSH-2"])


def test_error_delimiters_not_distinct() -> None:
    """Repeated (non-adjacent) delimiters are rejected at MSH-2."""
    err = _error("MSH|^~^&|A")
    assert (str(err), err.locations) == ("MSH-1/MSH-2 delimiters are not distinct", ["MSH-2"])


def test_error_invalid_segment_name() -> None:
    """A line that is not a segment names its segment number, not its content."""
    err = _error(MSH + "\rPID|1\rSecretName|x")
    assert (str(err), err.locations) == ("segment 3 has an invalid segment name", ["segment 3"])


def test_error_second_msh() -> None:
    """Two MSH segments in one message point to parse_batch."""
    err = _error(MSH + "\r" + MSH)
    assert str(err) == "segment 2 (MSH): a second MSH in one message (use parse_batch())"


def test_error_empty_msh9() -> None:
    """An empty MSH-9 is an error at MSH-9."""
    err = _error("MSH|^~\\&|A||||||||1|P|2.5")
    assert (str(err), err.locations) == ("MSH-9 (message type) is empty", ["MSH-9"])


def test_error_batch_segment_before_msh() -> None:
    """In a batch, a segment before the first MSH is located by line."""
    with pytest.raises(ParseError) as caught:
        parse_batch("PID|1\r" + MSH)
    assert (str(caught.value), caught.value.locations) == ("line 1: segment before the first MSH", ["PID"])


def test_error_batch_second_header() -> None:
    """A second BHS in one batch is an error naming the line."""
    with pytest.raises(ParseError) as caught:
        parse_batch("BHS|^~\\&\rBHS|^~\\&\r" + MSH)
    assert str(caught.value) == "line 2 (BHS): a second BHS in one batch"


def test_error_batch_locates_message() -> None:
    """In a batch, errors name the message number."""
    with pytest.raises(ParseError) as caught:
        parse_batch(MSH + "\rPID|1\r" + MSH + "\rbad line")
    assert (str(caught.value), caught.value.locations) == (
        "message 2, segment 2 has an invalid segment name",
        ["message 2, segment 2"],
    )


def test_error_texts_carry_no_values() -> None:
    """A canary value in a broken message appears in no error text."""
    canary = "CANARY7731"
    for bad in (f"{canary}|x", f"MSH|^~\\&|{canary}\r{canary}", f"MSH|^~\\&|{canary}|||||||1"):
        err = _error(bad)
        assert canary not in str(err)
        assert canary not in " ".join(err.locations)
        assert err.__cause__ is None
