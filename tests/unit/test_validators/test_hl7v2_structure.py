"""The fast HL7 v2 structure gate: each check, its code, location and ACK mapping."""

from __future__ import annotations

from typing import Any

from corpus_paths import CORPUS

from pyheart.broker.contracts import Format, Message, ValidationReport
from pyheart.validators.hl7v2_structure import Hl7v2StructureValidator

MSH = "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01^ADT_A01|CTRL1|P|2.5"
ADT = "\r".join([MSH, "EVN|A01|20240101", "PID|1||123^^^H^MR||Doe^John", "PV1|1|I"])


def _check(er7: str | bytes, **config: Any) -> ValidationReport:
    payload = er7.encode() if isinstance(er7, str) else er7
    return Hl7v2StructureValidator(config=config).validate(Message(payload, Format.HL7V2))


def _found(report: ValidationReport) -> list[tuple[str, str, str]]:
    return [(i.severity.value, i.code, i.location) for i in report.issues]


def test_valid_message_accepted() -> None:
    """A well-formed ADT^A01 with its required segments gets AA and no issues."""
    report = _check(ADT)
    assert (report.issues, report.ack_code()) == ((), "AA")


def test_parse_failure_is_fatal_and_located() -> None:
    """A payload that does not parse is rejected with the parser's location and text."""
    report = _check("PID|1")
    assert _found(report) == [("fatal", "hl7v2-parse", "segment 1")]
    assert report.issues[0].message == "message must start with an MSH segment"
    assert report.ack_code() == "AR"


def test_missing_required_segment() -> None:
    """A structure's required segment that is absent is an AR error located at the segment."""
    report = _check("\r".join([MSH, "EVN|A01", "PID|1"]))
    assert _found(report) == [("error", "hl7v2-required-segment", "PV1")]
    assert report.issues[0].message == "required segment is missing (structure ADT_A01)"
    assert report.ack_code(enhanced=True) == "CR"


def test_structure_derived_from_event() -> None:
    """Without MSH-9.3 the structure comes from table 0354 (ADT^A04 uses ADT_A01)."""
    report = _check(
        ADT.replace("ADT^A01^ADT_A01", "ADT^A04").replace("EVN|A01", "EVN|A04").replace("PV1|1|I", "")
    )
    assert _found(report) == [("error", "hl7v2-required-segment", "PV1")]


def test_node_invalid_siu_lacks_sch() -> None:
    """The node-hl7-complete invalid SIU^S12 is rejected: SCH and RGS are missing."""
    data = (CORPUS / "node-hl7-complete/invalid/misc/bad-phone-example.hl7").read_bytes()
    assert [i.location for i in _check(data).issues] == ["SCH", "RGS"]


def test_msh_required_fields() -> None:
    """Missing trigger event, control id, processing id and version are located at MSH."""
    report = _check("MSH|^~\\&|A||||||ADT\rPID|1")
    assert [i.location for i in report.issues] == ["MSH-9.2", "MSH-10", "MSH-11", "MSH-12"]
    assert report.ack_code() == "AR"


def test_ack_needs_no_trigger_event() -> None:
    """ACK may omit MSH-9.2."""
    report = _check("MSH|^~\\&|A||||||ACK|1|P|2.3\rMSA|AA|1")
    assert report.issues == ()


def test_bad_processing_id() -> None:
    """MSH-11 other than P, D or T is an error at MSH-11.1."""
    assert _found(_check(ADT.replace("|P|2.5", "|X|2.5"))) == [("error", "hl7v2-processing-id", "MSH-11.1")]


def test_unknown_version_levels() -> None:
    """A version outside the list is an error by default, a warning or nothing when configured."""
    odd = ADT.replace("|P|2.5", "|P|3.0")
    assert _found(_check(odd)) == [("error", "hl7v2-unsupported-version", "MSH-12")]
    assert _found(_check(odd, unknown_version="warning")) == [
        ("warning", "hl7v2-unsupported-version", "MSH-12")
    ]
    assert _check(odd, unknown_version="ignore").issues == ()


def test_versions_option_restricts() -> None:
    """Only the configured versions are accepted."""
    assert _found(_check(ADT, versions=["2.7"])) == [("error", "hl7v2-unsupported-version", "MSH-12")]


def test_nonstandard_encoding_characters_warn() -> None:
    """Three encoding characters are accepted with a warning at MSH-2."""
    report = _check(ADT.replace("^~\\&", "^~\\", 1))
    assert _found(report) == [("warning", "hl7v2-msh2-nonstandard", "MSH-2")]
    assert report.ack_code() == "AA"


def test_truncation_character_before_27_warns() -> None:
    """Five encoding characters in a v2.5 message are a warning."""
    assert _found(_check(ADT.replace("^~\\&", "^~\\&#", 1))) == [
        ("warning", "hl7v2-msh2-truncation", "MSH-2")
    ]


def test_five_encoding_characters_v27() -> None:
    """The v2.7 five-character header passes."""
    assert _check(ADT.replace("^~\\&", "^~\\&#", 1).replace("|P|2.5", "|P|2.7")).issues == ()


def test_z_segments_allowed_or_refused() -> None:
    """Z-segments pass by default and are errors with allow_z_segments false."""
    with_z = ADT + "\rZPI|1"
    assert _check(with_z).issues == ()
    report = _check(with_z, allow_z_segments=False)
    assert _found(report) == [("error", "hl7v2-z-segment", "ZPI")]
    assert report.issues[0].message == "Z-segment in segment 5 is not accepted"


def test_unknown_segment_warns() -> None:
    """A non-Z segment the version does not define is a warning by default."""
    assert _found(_check(ADT + "\rQQQ|1")) == [("warning", "hl7v2-unknown-segment", "QQQ")]


def test_max_length() -> None:
    """A payload over max_length is rejected before parsing."""
    report = _check(ADT, max_length=10)
    assert [(i.code, i.message) for i in report.issues] == [
        ("hl7v2-too-long", "message is longer than 10 bytes")
    ]


def test_max_segments() -> None:
    """More segments than max_segments is an error."""
    assert _found(_check(ADT, max_segments=3)) == [("error", "hl7v2-too-many-segments", "message")]


def test_unknown_structure_is_information() -> None:
    """A type the version has no structure for is reported as information only."""
    report = _check("MSH|^~\\&|A||||||ZZZ^Z01|1|P|2.5\rPID|1")
    assert _found(report) == [("information", "hl7v2-unknown-structure", "MSH-9")]
    assert report.ack_code() == "AA"


def test_join_wrapped_option() -> None:
    """A hard-wrapped segment is a parse failure unless join_wrapped is set."""
    wrapped = ADT.replace("Doe^John", "Doe^Jo\nhn")
    assert _found(_check(wrapped)) == [("fatal", "hl7v2-parse", "segment 4")]
    assert _check(wrapped, join_wrapped=True).issues == ()


async def test_preload_versions() -> None:
    """initialize loads the tables of preload_versions and succeeds twice."""
    gate = Hl7v2StructureValidator(config={"preload_versions": ["2.5.1", "2.7.1"]})
    assert [await gate.initialize(), await gate.initialize()] == [True, True]
    assert gate.validate(Message(ADT.encode(), Format.HL7V2)).issues == ()
