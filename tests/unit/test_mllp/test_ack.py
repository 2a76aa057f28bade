"""HL7 acknowledgments: building them in both modes, and reading them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pyheart.adapters.mllp.ack import (
    AckError,
    AckMode,
    HL7ErrorCode,
    Outcome,
    build_ack,
    hl7_timestamp,
    parse_ack,
    read_header,
)
from pyheart.broker.errors import ParseError
from pyheart.broker.hl7v2 import Hl7Message, parse_message

CANARY = "ZQXCANARY77"


def message(version: str = "2.5.1", msh15: str = "", msh16: str = "", extra: str = "") -> Hl7Message:
    msh = (
        f"MSH|^~\\&|SENDAPP|SENDFAC|RECVAPP|RECVFAC|20240101120000||ADT^A01^ADT_A01|CTRL0001|P|{version}"
        f"|||{msh15}|{msh16}{extra}"
    )
    return parse_message(f"{msh}\rPID|1||12345^^^HOSP^MR||{CANARY}^JANE\r")


def segments(payload: bytes) -> list[list[str]]:
    return [s.split("|") for s in payload.decode().split("\r") if s]


def field(payload: bytes, segment: str, n: int) -> str:
    for seg in segments(payload):
        if seg[0] == segment:
            # MSH-1 is the separator itself, so MSH fields sit one position to the left.
            index = n - 1 if segment == "MSH" else n
            return seg[index] if index < len(seg) else ""
    raise AssertionError(f"no {segment} segment")


def test_original_mode_accept_is_aa() -> None:
    """A stored message without MSH-15/16 gets AA."""
    assert build_ack(message(), Outcome.ACCEPT).code == "AA"


@pytest.mark.parametrize(("outcome", "code"), [(Outcome.ERROR, "AE"), (Outcome.REJECT, "AR")])
def test_original_mode_error_codes(outcome: Outcome, code: str) -> None:
    """Original mode spells errors AE and rejections AR."""
    assert build_ack(message(), outcome).code == code


def test_msa2_is_the_message_control_id() -> None:
    """MSA-2 echoes MSH-10 of the acknowledged message."""
    ack = build_ack(message(), Outcome.ACCEPT)
    assert field(ack.payload, "MSA", 2) == "CTRL0001"


def test_sender_and_receiver_are_swapped() -> None:
    """MSH-3..6 of the ACK are MSH-5, MSH-6, MSH-3, MSH-4 of the message."""
    ack = build_ack(message(), Outcome.ACCEPT).payload
    assert [field(ack, "MSH", n) for n in (3, 4, 5, 6)] == ["RECVAPP", "RECVFAC", "SENDAPP", "SENDFAC"]


def test_msh7_carries_a_time_zone() -> None:
    """MSH-7 is a DTM with fractional seconds and a +/-ZZZZ offset."""
    ack = build_ack(message(), Outcome.ACCEPT).payload
    assert re.fullmatch(r"\d{14}\.\d{4}[+-]\d{4}", field(ack, "MSH", 7))


def test_hl7_timestamp_keeps_the_given_offset() -> None:
    """A local time with an offset is written with that offset."""
    when = datetime(2024, 3, 5, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=-5)))
    assert hl7_timestamp(when) == "20240305070809.1234-0500"


def test_msh9_is_ack_with_the_trigger() -> None:
    """MSH-9 is ACK^<trigger>^ACK."""
    assert field(build_ack(message(), Outcome.ACCEPT).payload, "MSH", 9) == "ACK^A01^ACK"


def test_msh10_is_a_new_short_control_id() -> None:
    """The ACK's own MSH-10 is new and fits the 20-character limit of older versions."""
    ack = build_ack(message(), Outcome.ACCEPT).payload
    control = field(ack, "MSH", 10)
    assert (control != "CTRL0001", 0 < len(control) <= 20) == (True, True)


def test_processing_id_and_version_are_copied() -> None:
    """MSH-11 and MSH-12 are those of the message."""
    ack = build_ack(message("2.3"), Outcome.ACCEPT).payload
    assert (field(ack, "MSH", 11), field(ack, "MSH", 12)) == ("P", "2.3")


def test_msh18_is_copied() -> None:
    """The ACK declares the message's character set."""
    msg = message(extra="||8859/1")
    assert field(build_ack(msg, Outcome.ACCEPT).payload, "MSH", 18) == "8859/1"


def test_ack_is_encoded_in_the_message_charset() -> None:
    """A Latin-1 message with a non-ASCII facility gets a Latin-1 ACK."""
    raw = "MSH|^~\\&|APP|KLINIKUM MÜNSTER|R|RF|20240101||ADT^A01|C9|P|2.5|||||DE|8859/1\r".encode("latin-1")
    ack = build_ack(parse_message(raw), Outcome.ACCEPT).payload
    assert "KLINIKUM MÜNSTER".encode("latin-1") in ack


def test_ack_uses_the_message_delimiters() -> None:
    """A message with unusual encoding characters gets an ACK written with them."""
    msg = parse_message("MSH#$~\\&#S#F#R#RF#20240101##ADT$A04#C7#P#2.5\r")
    ack = build_ack(msg, Outcome.ACCEPT).payload.decode()
    assert (ack[:18], ack.split("#")[8]) == ("MSH#$~\\&#R#RF#S#F#", "ACK$A04$ACK")


def test_five_encoding_characters_are_kept() -> None:
    """The v2.7 truncation character survives in the ACK's MSH-2."""
    msg = parse_message("MSH|^~\\&#|S|F|R|RF|20240101||ADT^A01|C8|P|2.7\r")
    assert build_ack(msg, Outcome.ACCEPT).payload.startswith(b"MSH|^~\\&#|R|RF|S|F|")


def test_auto_mode_uses_enhanced_codes_when_msh15_is_valued() -> None:
    """MSH-15 valued -> the accept acknowledgment is CA."""
    assert build_ack(message(msh15="AL", msh16="NE"), Outcome.ACCEPT).code == "CA"


def test_auto_mode_uses_enhanced_codes_when_only_msh16_is_valued() -> None:
    """MSH-16 alone also selects enhanced mode."""
    assert build_ack(message(msh16="AL"), Outcome.REJECT).code == "CR"


def test_forced_original_mode_ignores_msh15() -> None:
    """ack_mode original answers AA even when the sender asked for enhanced mode."""
    assert build_ack(message(msh15="AL"), Outcome.ACCEPT, mode=AckMode.ORIGINAL).code == "AA"


def test_forced_enhanced_mode_without_msh15() -> None:
    """ack_mode enhanced answers CE for an error even without MSH-15."""
    assert build_ack(message(), Outcome.ERROR, mode=AckMode.ENHANCED).code == "CE"


@pytest.mark.parametrize(
    ("msh15", "outcome", "send"),
    [
        ("AL", Outcome.ACCEPT, True),
        ("AL", Outcome.REJECT, True),
        ("NE", Outcome.ACCEPT, False),
        ("NE", Outcome.ERROR, False),
        ("ER", Outcome.ACCEPT, False),
        ("ER", Outcome.ERROR, True),
        ("ER", Outcome.REJECT, True),
        ("SU", Outcome.ACCEPT, True),
        ("SU", Outcome.ERROR, False),
        ("SU", Outcome.REJECT, False),
    ],
)
def test_msh15_decides_whether_the_accept_ack_is_sent(msh15: str, outcome: Outcome, send: bool) -> None:
    """Enhanced mode follows MSH-15: AL always, NE never, ER on errors, SU on success."""
    assert build_ack(message(msh15=msh15, msh16="AL"), outcome).send is send


def test_enhanced_mode_with_empty_msh15_always_sends() -> None:
    """Enhanced mode chosen by MSH-16 with MSH-15 empty acknowledges (as AL)."""
    assert build_ack(message(msh16="AL"), Outcome.ACCEPT).send is True


def test_original_mode_always_sends() -> None:
    """Original mode has no conditions: the ACK is always sent."""
    assert build_ack(message(msh15="NE"), Outcome.ACCEPT, mode=AckMode.ORIGINAL).send is True


def test_enhanced_ack_does_not_ask_for_acks_itself() -> None:
    """An accept acknowledgment sets its own MSH-15/16 to NE."""
    ack = build_ack(message(msh15="AL"), Outcome.ACCEPT).payload
    assert (field(ack, "MSH", 15), field(ack, "MSH", 16)) == ("NE", "NE")


def test_err_segment_names_location_and_code_in_v25() -> None:
    """From v2.5 ERR-2 holds the location (PID^1^5) and ERR-3 the table 0357 code."""
    err = AckError(HL7ErrorCode.DATA_TYPE_ERROR, "PID-5", "parse-error", "bad data type")
    ack = build_ack(message(), Outcome.REJECT, errors=[err]).payload
    assert [field(ack, "ERR", n) for n in (2, 3, 4, 5)] == [
        "PID^1^5",
        "102^Data type error^HL70357",
        "E",
        "parse-error^^99PYH",
    ]


def test_err_location_with_component_and_sequence() -> None:
    """PID[2]-5.1 becomes ERL PID^2^5^1^1 (segment, sequence, field, repetition, component)."""
    err = AckError(HL7ErrorCode.REQUIRED_FIELD_MISSING, "PID[2]-5.1")
    assert field(build_ack(message(), Outcome.REJECT, errors=[err]).payload, "ERR", 2) == "PID^2^5^1^1"


def test_err_segment_before_v25_uses_err1() -> None:
    """Before v2.5 the location and code go into ERR-1 (ELD)."""
    err = AckError(HL7ErrorCode.DATA_TYPE_ERROR, "PID-5")
    ack = build_ack(message("2.3"), Outcome.REJECT, errors=[err]).payload
    assert field(ack, "ERR", 1) == "PID^1^5^102&Data type error&HL70357"


def test_msa3_text_before_v24() -> None:
    """Old receivers display MSA-3, so errors before v2.4 carry the code's text there."""
    err = AckError(HL7ErrorCode.REQUIRED_FIELD_MISSING, "MSH-10")
    ack = build_ack(message("2.3"), Outcome.REJECT, errors=[err]).payload
    assert field(ack, "MSA", 3) == "Required field missing"


def test_err_diagnostic_is_location_and_fixed_text() -> None:
    """ERR-7 combines the location with the caller's fixed, value-free text."""
    err = AckError(HL7ErrorCode.SEGMENT_SEQUENCE_ERROR, "segment 3", "parse-error", "invalid segment name")
    ack = build_ack(message(), Outcome.REJECT, errors=[err]).payload
    assert (field(ack, "ERR", 2), field(ack, "ERR", 7)) == ("", "segment 3: invalid segment name")


def test_err_drops_text_that_is_not_a_plain_description() -> None:
    """A location or text with delimiters or other odd characters is left out, not escaped in."""
    err = AckError(HL7ErrorCode.DATA_TYPE_ERROR, "PID-5|x", "code", f"{CANARY}^DOE")
    ack = build_ack(message(), Outcome.REJECT, errors=[err]).payload
    assert (field(ack, "ERR", 2), field(ack, "ERR", 7)) == ("", "")


def test_ack_never_quotes_patient_values() -> None:
    """Nothing of the message body (here a canary family name in PID-5) reaches the ACK."""
    err = AckError(HL7ErrorCode.DATA_TYPE_ERROR, "PID-5", "parse-error", "bad value")
    for outcome in Outcome:
        assert CANARY.encode() not in build_ack(message(), outcome, errors=[err]).payload


def test_ack_without_a_readable_header() -> None:
    """When not even MSH could be read the ACK uses default delimiters and an empty MSA-2."""
    ack = build_ack(None, Outcome.REJECT).payload
    assert (ack.startswith(b"MSH|^~\\&|"), field(ack, "MSA", 1), field(ack, "MSA", 2)) == (True, "AR", "")


def test_fixed_clock_and_control_id() -> None:
    """MSH-7 and MSH-10 can be pinned (for reproducible ACKs)."""
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    ack = build_ack(message(), Outcome.ACCEPT, now=when, control_id="ACK1").payload
    assert (field(ack, "MSH", 7), field(ack, "MSH", 10)) == ("20240102030405.0000+0000", "ACK1")


def test_read_header_parses_only_msh() -> None:
    """The head of an oversized or broken message still yields its MSH for addressing the NAK."""
    data = b"MSH|^~\\&|S|F|R|RF|20240101||ORU^R01|C5|P|2.5\rOBX|1|ED|" + b"A" * 100
    header = read_header(data)
    assert header is not None
    assert (header.control_id, len(header.segments)) == ("C5", 1)


def test_read_header_returns_none_without_msh() -> None:
    """Bytes without an MSH segment give no header."""
    assert read_header(b"PID|1||X\r") is None


def test_parse_ack_reads_msa() -> None:
    """parse_ack returns MSA-1 and MSA-2."""
    result = parse_ack(b"MSH|^~\\&|R|RF|S|F|20240101||ACK^A01^ACK|A1|P|2.5.1\rMSA|AA|CTRL0001\r")
    assert (result.code, result.control_id, result.accepted, result.rejected) == (
        "AA",
        "CTRL0001",
        True,
        False,
    )


def test_parse_ack_round_trips_our_nak() -> None:
    """Reading a NAK we built returns its code, control id, locations and error codes."""
    err = AckError(HL7ErrorCode.REQUIRED_FIELD_MISSING, "PID-3", "x")
    result = parse_ack(build_ack(message(), Outcome.REJECT, errors=[err]).payload)
    assert (result.code, result.control_id, result.locations, result.error_codes) == (
        "AR",
        "CTRL0001",
        ("PID-3",),
        ("101",),
    )


def test_parse_ack_reads_v24_err1_locations() -> None:
    """An old-style ERR-1 (ELD) is read into the same location notation."""
    ack = b"MSH|^~\\&|R|RF|S|F|20240101||ACK|A1|P|2.4\rMSA|AE|C1\rERR|PV1^1^3^103&Table value not found&HL70357\r"
    result = parse_ack(ack)
    assert (result.locations, result.error_codes) == (("PV1-3",), ("103",))


def test_parse_ack_ignores_location_text_that_is_not_a_location() -> None:
    """A receiver that writes a value into ERR-2 does not get it into our locations."""
    ack = f"MSH|^~\\&|R|RF|S|F|20240101||ACK|A1|P|2.5\rMSA|AE|C1\rERR||{CANARY}^1^5|102\r".encode()
    assert parse_ack(ack).locations == ()


def test_parse_ack_without_msa_names_msa() -> None:
    """A message that is not an acknowledgment is reported at MSA."""
    with pytest.raises(ParseError, match="acknowledgment has no MSA segment") as info:
        parse_ack(b"MSH|^~\\&|R|RF|S|F|20240101||ADT^A01|A1|P|2.5\r")
    assert info.value.locations == ["MSA"]


def test_parse_ack_with_bad_code_names_msa1() -> None:
    """An MSA-1 outside AA/AE/AR/CA/CE/CR is reported at MSA-1."""
    with pytest.raises(ParseError, match="MSA-1 is not an acknowledgment code") as info:
        parse_ack(b"MSH|^~\\&|R|RF|S|F|20240101||ACK|A1|P|2.5\rMSA|OK|C1\r")
    assert info.value.locations == ["MSA-1"]
