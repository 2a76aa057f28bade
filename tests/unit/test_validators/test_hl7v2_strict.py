"""The strict HL7 v2 gate (hl7apy): structure, fields, data types, versions, no values in texts."""

from __future__ import annotations

from typing import Any

from corpus_paths import CORPUS

from pyheart.broker.contracts import Format, Message, ValidationReport
from pyheart.validators.hl7v2_strict import Hl7v2StrictValidator

MSH = "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01^ADT_A01|CTRL1|P|2.5"
ADT = "\r".join([MSH, "EVN|A01|20240101", "PID|1||123^^^H^MR||Doe^John||19800101|M", "PV1|1|I"])


def _check(er7: str | bytes, **config: Any) -> ValidationReport:
    payload = er7.encode() if isinstance(er7, str) else er7
    return Hl7v2StrictValidator(config=config).validate(Message(payload, Format.HL7V2))


def _found(report: ValidationReport) -> list[tuple[str, str, str]]:
    return [(i.severity.value, i.code, i.location) for i in report.issues]


def test_conforming_message_accepted() -> None:
    """A conforming ADT^A01 gets AA."""
    report = _check(ADT)
    assert (report.issues, report.ack_code()) == ((), "AA")


def test_nist_oru_accepted() -> None:
    """The NIST ELR ORU^R01 test case 1 conforms to v2.5.1."""
    data = (CORPUS / "node-hl7-complete/valid/nist/ORU_R01_2.5.1_SampleTestCase1.hl7").read_bytes()
    assert _check(data).issues == ()


def test_missing_segment_rejects() -> None:
    """A missing required segment is a structure failure (AR) located at the segment."""
    report = _check(ADT.replace("\rPV1|1|I", ""))
    assert _found(report) == [("error", "hl7v2-strict-missing-segment", "PV1")]
    assert report.issues[0].message == "required segment is missing before segment 4 (group ADT_A01)"
    assert report.ack_code() == "AR"


def test_unexpected_segment_rejects() -> None:
    """A segment out of order is reported where it stands."""
    report = _check("\r".join([MSH, "PID|1||123", "EVN|A01", "PV1|1|I"]))
    assert ("error", "hl7v2-strict-unexpected-segment", "EVN") in _found(report)
    assert report.reject


def test_bad_date_is_content_error() -> None:
    """A malformed date is an AE data-type error at PID-7."""
    report = _check(ADT.replace("19800101", "1980x101"))
    assert _found(report) == [("error", "hl7v2-strict-datatype", "PID-7")]
    assert report.issues[0].message == "value is not valid for its data type (segment 3)"
    assert report.ack_code() == "AE"


def test_required_field_missing() -> None:
    """An empty required field (PID-3) is reported at PID-3."""
    report = _check(ADT.replace("PID|1||123^^^H^MR|", "PID|1|||"))
    assert _found(report) == [("error", "hl7v2-strict-required-field", "PID-3")]


def test_too_many_repetitions() -> None:
    """A non-repeating field with two repetitions is reported."""
    report = _check(ADT.replace("|M\r", "|M~F\r"))
    assert _found(report) == [("error", "hl7v2-strict-repetitions", "PID-8")]


def test_unknown_segment() -> None:
    """A non-Z segment the version does not define rejects the message."""
    report = _check(ADT + "\rPRT|1", check_structure=False)
    assert _found(report) == [("error", "hl7v2-strict-unknown-segment", "PRT")]
    assert report.reject


def test_five_encoding_characters() -> None:
    """A v2.7 message with ``^~\\&#`` is validated (hl7apy gets the delimiters explicitly)."""
    report = _check(ADT.replace("^~\\&", "^~\\&#", 1).replace("|P|2.5", "|P|2.7"))
    assert report.ack_code() == "AA"


def test_unsupported_version() -> None:
    """A version without hl7apy tables is an error (configurable)."""
    odd = ADT.replace("|P|2.5", "|P|2.9")
    assert _found(_check(odd)) == [("error", "hl7v2-strict-unsupported-version", "MSH-12")]
    assert _found(_check(odd, unsupported_version="warning")) == [
        ("warning", "hl7v2-strict-unsupported-version", "MSH-12")
    ]


def test_unknown_structure() -> None:
    """A message type without a structure in the version is rejected at MSH-9."""
    assert _found(_check("MSH|^~\\&|A||||20240101||ZZZ^Z01|1|P|2.5")) == [
        ("error", "hl7v2-strict-unknown-structure", "MSH-9")
    ]


def test_max_issues() -> None:
    """No more than max_issues issues are reported."""
    many = ADT + "".join(f"\rOBX|{i}|NM|c||notanumber" for i in range(10))
    assert len(_check(many, max_issues=3, check_structure=False).issues) == 3


def test_parse_failure() -> None:
    """A payload that does not parse is fatal, with the parser's location."""
    assert _found(_check(MSH + "\rbad line")) == [("fatal", "hl7v2-parse", "segment 2")]


def test_issue_texts_carry_no_values() -> None:
    """Values from the message (a bad date, an over-long code) never reach issue texts."""
    canary = "19CANARY55"
    report = _check(ADT.replace("19800101", canary).replace("|M\r", f"|{'M' * 300}{canary}\r"))
    text = " ".join(f"{i.code} {i.location} {i.message}" for i in report.issues)
    assert report.issues
    assert canary not in text


def test_withdrawn_component_located() -> None:
    """A component the version withdrew (XTN.1 in v2.8) is located down to the component."""
    v28 = ADT.replace("|P|2.5", "|P|2.8").replace("|M\r", "|M|||||555123^^CP\r")
    report = _check(v28)
    assert [(i.code, i.location, i.message) for i in report.issues] == [
        (
            "hl7v2-strict-structure",
            "PID-13.1",
            "component is withdrawn in this version or repeated (segment 3)",
        )
    ]
