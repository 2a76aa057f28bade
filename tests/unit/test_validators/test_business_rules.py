"""Business rules from configuration: HL7 locations, FHIR paths, filters, config errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyheart.broker.contracts import Format, Message, ValidationReport
from pyheart.broker.errors import PluginConfigError
from pyheart.validators.business_rules import BusinessRulesValidator, parse_location

MSH = "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01^ADT_A01|CTRL1|P|2.5"
ADT = "\r".join([MSH, "EVN|A01", "PID|1||~123^^^H^MR||Doe^John||19800101|M", "PV1|1|I"])


def _hl7(er7: str, *rules: dict[str, Any]) -> ValidationReport:
    plugin = BusinessRulesValidator(config={"rules": list(rules)})
    return plugin.validate(Message(er7.encode(), Format.HL7V2))


def _fhir(doc: dict[str, Any], *rules: dict[str, Any]) -> ValidationReport:
    plugin = BusinessRulesValidator(config={"rules": list(rules)})
    return plugin.validate(Message(json.dumps(doc).encode(), Format.FHIR_JSON))


def _found(report: ValidationReport) -> list[tuple[str, str, str]]:
    return [(i.code, i.location, i.message) for i in report.issues]


def test_required_satisfied_by_any_repetition() -> None:
    """A required HL7 location is met when any repetition has a value."""
    assert _hl7(ADT, {"id": "mrn", "location": "PID-3.1", "required": True}).issues == ()


def test_required_missing() -> None:
    """An empty required location is an AE error naming the rule and location."""
    report = _hl7(ADT, {"id": "ssn", "location": "PID-19", "required": True})
    assert _found(report) == [("rule-ssn", "PID-19", "rule ssn: required value is missing")]
    assert report.ack_code() == "AE"


def test_required_segment_missing() -> None:
    """A required location in an absent segment fails, naming the segment."""
    report = _hl7(ADT, {"id": "nk1", "location": "NK1-2", "required": True, "description": "next of kin"})
    assert _found(report) == [("rule-nk1", "NK1-2", "next of kin: segment NK1 is missing")]


def test_hl7_null_is_missing() -> None:
    """The HL7 null ``""`` does not satisfy a required rule."""
    report = _hl7(ADT.replace("|M\r", '|""\r'), {"id": "sex", "location": "PID-8", "required": True})
    assert [i.code for i in report.issues] == ["rule-sex"]


def test_enum() -> None:
    """A value outside the enum fails with a value-free text."""
    report = _hl7(ADT.replace("|M\r", "|Q\r"), {"id": "sex", "location": "PID-8", "enum": ["F", "M"]})
    assert _found(report) == [("rule-sex", "PID-8", "rule sex: value is not one of the allowed values")]


def test_pattern_and_lengths() -> None:
    """Pattern, min_length and max_length each report their own failure."""
    rule = {"id": "dob", "location": "PID-7", "pattern": "^\\d{4}-", "min_length": 10, "max_length": 6}
    assert [i.message for i in _hl7(ADT, rule).issues] == [
        "rule dob: value does not match the required pattern",
        "rule dob: value is shorter than 10 characters",
        "rule dob: value is longer than 6 characters",
    ]


def test_specific_repetition_and_subcomponent() -> None:
    """``PID-3[2].4.1`` reads the second repetition's fourth component, first sub-component."""
    rule = {"id": "aa", "location": "PID-3[2].4.1", "enum": ["H"]}
    assert _hl7(ADT, rule).issues == ()
    assert [i.code for i in _hl7(ADT, {**rule, "enum": ["X"]}).issues] == ["rule-aa"]


def test_every_segment_occurrence_checked() -> None:
    """Rules apply to each occurrence of a repeating segment, naming which one failed."""
    er7 = ADT + "\rOBX|1|ST|c||v\rOBX|2|ST|c||"
    report = _hl7(er7, {"id": "val", "location": "OBX-5", "required": True})
    assert _found(report) == [("rule-val", "OBX-5", "rule val: required value is missing (segment 6)")]


@pytest.mark.parametrize(
    ("types", "applies"), [(["ADT"], True), (["ADT^A0*"], True), (["ORU"], False), (["ADT^A08"], False)]
)
def test_message_type_filter(types: list[str], applies: bool) -> None:
    """message_types filters by type or TYPE^EVENT, with wildcards."""
    rule = {"id": "ssn", "location": "PID-19", "required": True, "message_types": types}
    assert bool(_hl7(ADT, rule).issues) is applies


def test_severity_and_custom_code() -> None:
    """A rule's severity and code are used as given; warnings keep AA."""
    rule = {"id": "ssn", "location": "PID-19", "required": True, "severity": "warning", "code": "site.ssn"}
    report = _hl7(ADT, rule)
    assert [(i.severity.value, i.code) for i in report.issues] == [("warning", "site.ssn")]
    assert report.ack_code() == "AA"


def test_reject_rule() -> None:
    """A failing rule with reject: true maps to AR."""
    assert _hl7(ADT, {"id": "ssn", "location": "PID-19", "required": True, "reject": True}).ack_code() == "AR"


BUNDLE = {
    "resourceType": "Bundle",
    "type": "batch",
    "entry": [
        {
            "resource": {
                "resourceType": "Patient",
                "birthDate": "1980",
                "name": [{"given": ["A"]}, {"family": "B"}],
            }
        },
        {"resource": {"resourceType": "Patient", "gender": "male"}},
        {"resource": {"resourceType": "Observation", "status": "final"}},
    ],
}


def test_fhir_paths_in_bundle_entries() -> None:
    """FHIR rules apply to each entry resource of the type, with indexed locations."""
    report = _fhir(
        BUNDLE, {"id": "bd", "location": "Patient.birthDate", "required": True, "pattern": "^\\d{4}-"}
    )
    assert _found(report) == [
        (
            "rule-bd",
            "Bundle.entry[0].resource.birthDate",
            "rule bd: value does not match the required pattern",
        ),
        ("rule-bd", "Bundle.entry[1].resource.birthDate", "rule bd: required value is missing"),
    ]


def test_fhir_arrays_fan_out() -> None:
    """A path through arrays reads every item; any value satisfies required."""
    assert _fhir(BUNDLE, {"id": "fam", "location": "Patient.name.family", "required": True}).issues[
        0
    ].location == ("Bundle.entry[1].resource.name.family")


def test_fhir_root_resource_and_enum() -> None:
    """A root resource is checked directly; booleans compare as JSON text."""
    doc = {"resourceType": "Patient", "active": True, "gender": "x"}
    rules = [
        {"id": "g", "location": "Patient.gender", "enum": ["male", "female"]},
        {"id": "a", "location": "Patient.active", "enum": ["true"]},
    ]
    assert _found(_fhir(doc, *rules)) == [
        ("rule-g", "Patient.gender", "rule g: value is not one of the allowed values")
    ]


def test_fhir_rules_skip_hl7_and_back() -> None:
    """FHIR rules leave HL7 messages alone and HL7 rules leave FHIR documents alone."""
    assert _hl7(ADT, {"id": "bd", "location": "Patient.birthDate", "required": True}).issues == ()
    assert _fhir(BUNDLE, {"id": "ssn", "location": "PID-19", "required": True}).issues == ()


def test_config_errors_name_paths() -> None:
    """Bad locations, patterns and duplicate ids are config errors naming the rule path."""
    rules = [
        {"id": "a", "location": "not a location"},
        {"id": "b", "location": "PID-3", "pattern": "("},
        {"id": "b", "location": "PID-4"},
    ]
    with pytest.raises(PluginConfigError) as caught:
        BusinessRulesValidator(config={"rules": rules}).settings()
    assert str(caught.value) == (
        "plugin 'business-rules': invalid config: rules[0].location: must be an HL7 location (PID-3.1) "
        "or a FHIR path (Patient.birthDate) [location]; rules[1].pattern: is not a regular expression "
        "[pattern]; rules[2].id: rule ids must be unique [unique]"
    )


def test_config_rule_unknown_key() -> None:
    """A rule with an undeclared key is rejected by the schema."""
    with pytest.raises(PluginConfigError) as caught:
        BusinessRulesValidator(config={"rules": [{"id": "a", "location": "PID-3", "bogus": 1}]}).settings()
    assert "rules[0].bogus: unknown key" in str(caught.value)


def test_parse_location() -> None:
    """HL7 locations and FHIR paths are told apart; anything else is None."""
    hl7 = parse_location("PID-3[2].4.1")
    assert hl7 is not None
    assert not hasattr(hl7, "steps")
    fhir = parse_location("Patient.name[0].family")
    assert fhir is not None
    assert hasattr(fhir, "steps")
    assert parse_location("pid-3") is None
