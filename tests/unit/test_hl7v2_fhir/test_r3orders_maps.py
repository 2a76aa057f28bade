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


ORM = "ORM^O01^ORM_O01"
RXO = "RXO|1234^Drug^RXNORM"


def _medication_request(h: ModuleType, orc7: str) -> dict[str, Any]:
    orc = "ORC|NW|PL1^PLACER|||||" + orc7
    return dict(h.one(h.run(ORM, PID, orc, RXO), "MedicationRequest"))


def test_orc7_timing_on_the_dosage(h: ModuleType) -> None:
    """ORC-7 TQ.2 (interval) gives the dosage timing's code and time of day (IG TQ[MedicationRequest])."""
    dosage = _medication_request(h, "^Q6H&0800")["dosageInstruction"][0]
    assert (dosage["timing"]["code"]["coding"][0]["code"], dosage["timing"]["repeat"]["timeOfDay"]) == (
        "Q6H",
        ["08:00:00"],
    )


def test_orc7_duration_bounds_and_count(h: ModuleType) -> None:
    """ORC-7 TQ.3 duration, TQ.4/5 bounds and TQ.12 total occurrences go to timing.repeat."""
    repeat = _medication_request(h, "^^M30^20200101^20200201^^^^^^^5")["dosageInstruction"][0]["timing"][
        "repeat"
    ]
    assert repeat == {
        "duration": 30,
        "durationUnit": "min",
        "boundsPeriod": {"start": "2020-01-01", "end": "2020-02-01"},
        "count": 5,
    }


def test_orc7_quantity_is_the_dose(h: ModuleType) -> None:
    """ORC-7 TQ.1 (quantity) is the dosage's dose quantity."""
    dosage = _medication_request(h, "2&mg")["dosageInstruction"][0]
    assert dosage["doseAndRate"] == [{"doseQuantity": {"value": 2, "unit": "mg"}}]


def test_orc7_repetitions_are_dosages(h: ModuleType) -> None:
    """Each ORC-7 repetition is a dosage instruction of its own."""
    request = _medication_request(h, "^BID~^TID")
    assert [d["timing"]["code"]["coding"][0]["code"] for d in request["dosageInstruction"]] == ["BID", "TID"]


def test_orc7_text_is_a_note(h: ModuleType) -> None:
    """ORC-7 TQ.8 (text) is a note on the MedicationRequest, as the IG maps it."""
    assert _medication_request(h, "^^^^^^^Take with food")["note"] == [{"text": "Take with food"}]


def test_orc7_priority(h: ModuleType) -> None:
    """ORC-7 TQ.6 (priority) gives the request's priority."""
    assert _medication_request(h, "^^^^^S")["priority"] == "stat"


VXU = "VXU^V04^VXU_V04"
VXU_ORDER = ("ORC|RE||IMM1^REG", "RXA|0|1|20210818||49281021588^TENIVAC^NDC|0.5|mL^mL^UCUM")


def test_vxu_funding_source(h: ModuleType) -> None:
    """An order-group OBX 30963-3 (vaccine funding source) is the Immunization's fundingSource."""
    obx = "OBX|1|CE|30963-3^Vaccine Funding Source^LN|1|PHC70^Private^CDCPHINVS||||||F"
    immunization = h.one(h.run(VXU, PID, *VXU_ORDER, obx), "Immunization")
    assert immunization["fundingSource"] == {
        "coding": [{"system": "urn:id:CDCPHINVS", "code": "PHC70", "display": "Private"}]
    }


def test_vxu_program_eligibility(h: ModuleType) -> None:
    """An order-group OBX 64994-7 (funding program eligibility) is a programEligibility."""
    obx = "OBX|1|CE|64994-7^Eligibility^LN|1|V01^Not VFC Eligible^HL70064||||||F"
    immunization = h.one(h.run(VXU, PID, *VXU_ORDER, obx), "Immunization")
    assert [c["coding"][0]["code"] for c in immunization["programEligibility"]] == ["V01"]


def test_vxu_other_obx_leaves_immunization(h: ModuleType) -> None:
    """Another order-group OBX adds neither fundingSource nor programEligibility."""
    obx = "OBX|1|CE|69764-9^Document Type^LN|1|253088698300028811170411^VIS^cdcgs1vis||||||F"
    immunization = h.one(h.run(VXU, PID, *VXU_ORDER, obx), "Immunization")
    assert {"fundingSource", "programEligibility"} & set(immunization) == set()
