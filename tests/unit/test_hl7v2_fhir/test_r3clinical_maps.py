"""Round-3 clinical mappings: IAM-17 (allergy clinical status, v2 table 0438) on both FHIR status axes."""

from __future__ import annotations

from types import ModuleType
from typing import Any

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def _allergy(h: ModuleType, status: str) -> dict[str, Any]:
    iam = h.seg("IAM", {1: "1", 2: "FA^Food allergy^HL70127", 3: "P1^Peanut^L", 6: "A", 17: status})
    return h.one(h.run("ADT^A60^ADT_A60", PID, iam), "AllergyIntolerance")


def test_confirmed_status_is_active_and_confirmed(h: ModuleType) -> None:
    """IAM-17 'C' (confirmed or verified) gives clinicalStatus active and verificationStatus confirmed."""
    res = _allergy(h, "C^Confirmed or verified^HL70438")
    assert res["clinicalStatus"]["coding"][0] == {"system": _CLINICAL, "code": "active", "display": "Active"}
    assert res["verificationStatus"]["coding"] == [
        {"system": _VERIFICATION, "code": "confirmed", "display": "Confirmed"}
    ]


def test_v2_status_coding_is_kept_with_its_table(h: ModuleType) -> None:
    """The sent IAM-17 code stays in clinicalStatus, with the table 0438 system when none was sent."""
    res = _allergy(h, "C^Confirmed or verified")
    assert res["clinicalStatus"]["coding"][1] == {
        "code": "C",
        "display": "Confirmed or verified",
        "system": "http://terminology.hl7.org/CodeSystem/v2-0438",
    }


def test_inactive_status_is_inactive_and_confirmed(h: ModuleType) -> None:
    """IAM-17 'I' (confirmed but inactive) gives clinicalStatus inactive."""
    res = _allergy(h, "I")
    assert res["clinicalStatus"]["coding"][0]["code"] == "inactive"
    assert res["verificationStatus"]["coding"][0]["code"] == "confirmed"


def test_suspect_status_is_unconfirmed(h: ModuleType) -> None:
    """IAM-17 'S' (suspect) gives verificationStatus unconfirmed."""
    res = _allergy(h, "S")
    assert res["verificationStatus"]["coding"][0]["code"] == "unconfirmed"


def test_erroneous_status_drops_the_clinical_status(h: ModuleType) -> None:
    """IAM-17 'E' is entered in error, and FHIR ait-2 forbids a clinicalStatus then."""
    res = _allergy(h, "E")
    assert res["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "clinicalStatus" not in res


def test_local_status_code_stays_as_sent(h: ModuleType) -> None:
    """A status code of another code system is mapped as the IG row says, without FHIR codings."""
    res = _allergy(h, "C^Current^LOCAL")
    assert res["clinicalStatus"]["coding"] == [{"system": "urn:id:LOCAL", "code": "C", "display": "Current"}]
    assert "verificationStatus" not in res


def test_diagnosis_sent_before_the_visit_joins_its_encounter(h: ModuleType) -> None:
    """A DG1 before the PV1 (REF^I12 order) still becomes an Encounter.diagnosis with its rank."""
    dg1 = h.seg("DG1", {1: "1", 3: "K63.3^Ulcer of intestine^I10", 6: "A", 15: "1"})
    bundle = h.run("REF^I12^REF_I12", PID, dg1, "PV1|1|O|CLINIC^1^A")
    diagnosis = h.one(bundle, "Encounter")["diagnosis"]
    assert [d["rank"] for d in diagnosis] == [1]


def test_diagnosis_sent_before_the_visit_names_the_encounter(h: ModuleType) -> None:
    """The Condition of a DG1 sent before the PV1 refers to the Encounter that PV1 makes."""
    dg1 = h.seg("DG1", {1: "1", 3: "K63.3^Ulcer of intestine^I10"})
    bundle = h.run("REF^I12^REF_I12", PID, dg1, "PV1|1|O|CLINIC^1^A")
    encounter_url = next(
        e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"
    )
    assert h.one(bundle, "Condition")["encounter"] == {"reference": encounter_url}


def test_unmapped_diagnosis_type_keeps_its_v2_table(h: ModuleType) -> None:
    """DG1-6 'F' (final), which the IG DiagnosisType map does not translate, is coded in table 0052."""
    dg1 = h.seg("DG1", {1: "1", 3: "K63.3^Ulcer of intestine^I10", 6: "F"})
    bundle = h.run("ADT^A03^ADT_A03", PID, "PV1|1|I|WARD^1^A", dg1)
    assert h.one(bundle, "Encounter")["diagnosis"][0]["use"]["coding"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/v2-0052", "code": "F", "display": "Final"}
    ]
