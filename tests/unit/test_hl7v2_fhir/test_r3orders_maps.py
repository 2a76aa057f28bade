"""Round-3 order and patient maps: disability (DB1) and referral description (RF1) (every value
synthetic)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
ADT = "ADT^A01^ADT_A01"
REF = "REF^I12^REF_I12"
_LOCAL = "urn:id:StructureDefinition/"


def _extension(patient: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in patient.get("extension", []) if e["url"] == _LOCAL + name]


def test_db1_disability_indicator(h: ModuleType) -> None:
    """DB1-4 'Y' becomes a local patient-disabilityIndicator extension, true."""
    patient = h.one(h.run(ADT, PID, "DB1|1|PT||Y"), "Patient")
    assert _extension(patient, "patient-disabilityIndicator") == [
        {"url": _LOCAL + "patient-disabilityIndicator", "valueBoolean": True}
    ]


def test_db1_disability_indicator_no(h: ModuleType) -> None:
    """DB1-4 'N' is the indicator false."""
    patient = h.one(h.run(ADT, PID, "DB1|1|PT||N"), "Patient")
    assert _extension(patient, "patient-disabilityIndicator")[0]["valueBoolean"] is False


def test_db1_disability_period(h: ModuleType) -> None:
    """DB1-5/6 (disability start and end dates) become a patient-disabilityPeriod extension."""
    patient = h.one(h.run(ADT, PID, "DB1|1|PT||Y|20200101|20201231"), "Patient")
    assert _extension(patient, "patient-disabilityPeriod")[0]["valuePeriod"] == {
        "start": "2020-01-01",
        "end": "2020-12-31",
    }


def test_db1_about_someone_else(h: ModuleType) -> None:
    """A DB1 about another person (DB1-2 not PT) leaves the Patient without disability extensions."""
    patient = h.one(h.run(ADT, PID, "DB1|1|GT||Y|20200101"), "Patient")
    assert _extension(patient, "patient-disabilityIndicator") == []


RF1 = "RF1|A^Accepted^HL70283|R^Routine^HL70280"


def test_rf1_description_is_reason_text(h: ModuleType) -> None:
    """RF1-14 (referral description) is the text of the RF1-10 reason."""
    rf1 = RF1 + "||||||||R1^Back pain^L||||Fractured spine"
    request = h.one(h.run(REF, PID, rf1), "ServiceRequest")
    assert request["reasonCode"] == [
        {"coding": [{"system": "urn:id:L", "code": "R1", "display": "Back pain"}], "text": "Fractured spine"}
    ]


def test_rf1_description_without_reason(h: ModuleType) -> None:
    """Without RF1-10, RF1-14 is a reason of its own, as text."""
    request = h.one(h.run(REF, PID, RF1 + "||||||||||||Fractured spine"), "ServiceRequest")
    assert request["reasonCode"] == [{"text": "Fractured spine"}]
