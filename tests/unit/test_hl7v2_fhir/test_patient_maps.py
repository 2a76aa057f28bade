"""Patient, RelatedPerson and security-label maps: PID/NK1 telecom use and languages, US Core
race and ethnicity, ARV access restrictions, MSH-8, DB1 identifiers, the PID-12 county."""

from __future__ import annotations

import io
import logging
from types import ModuleType
from typing import Any

from pyheart.broker.contracts import Format, Message
from pyheart.broker.logs import configure_logging
from pyheart.transformers.hl7v2_fhir import Hl7v2ToFhir, convert

ADT = "ADT^A01^ADT_A01"
PID = "PID|1||MRN1^^^HOSP^MR||Doe^Jane||19800203|F"
PV1 = "PV1|1|I|ICU^12^B||||||||||||||||VN1^^^HOSP^VN"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
RANGE = "http://hl7.org/fhir/uv/v2mappings/StructureDefinition/access-restriction-range"
CANARY = "Qzxcanary7731"


def _patient(h: ModuleType, *segments: str) -> dict[str, Any]:
    return dict(h.one(h.run(ADT, *segments), "Patient"))


def _codes(res: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    return [(s.get("system"), s.get("code")) for s in res.get("meta", {}).get("security", [])]


def _ext(res: dict[str, Any], suffix: str) -> dict[str, Any]:
    return next(e for e in res["extension"] if e["url"].endswith(suffix))


# ------------------------------------------------------------------------------ PID / NK1


def test_pid13_cell_phone_without_use_is_home(h: ModuleType) -> None:
    """PID-13 without XTN.2 is a home number even when XTN.3 says cell phone (IG assignment)."""
    pat = _patient(h, h.seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 5: "Doe^Jane", 13: "555-1234^^CP"}))
    assert pat["telecom"] == [{"use": "home", "system": "phone", "value": "555-1234"}]


def test_pid14_without_use_is_work(h: ModuleType) -> None:
    """PID-14 without XTN.2 is a work number."""
    pat = _patient(h, h.seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 5: "Doe^Jane", 14: "555-9876^^CP"}))
    assert pat["telecom"][0]["use"] == "work"


def test_pid13_use_from_xtn2_wins(h: ModuleType) -> None:
    """PID-13 with XTN.2 keeps the use XTN.2 gives."""
    pat = _patient(h, h.seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 5: "Doe^Jane", 13: "555-1234^WPN^PH"}))
    assert pat["telecom"][0]["use"] == "work"


def test_nk1_business_phone_without_use_is_work(h: ModuleType) -> None:
    """NK1-6 without XTN.2 is a work number on the RelatedPerson."""
    nk1 = h.seg("NK1", {1: "1", 2: "Doe^John", 3: "SPO", 6: "555-2222^^CP"})
    rp = h.one(h.run(ADT, PID, nk1), "RelatedPerson")
    assert rp["telecom"] == [{"use": "work", "system": "phone", "value": "555-2222"}]


def test_pid15_alternate_language_in_bcp47(h: ModuleType) -> None:
    """PID-15's alternate ISO 639-2 code (CWE.4) also becomes its BCP 47 coding."""
    pid = h.seg(
        "PID", {1: "1", 3: "MRN1^^^HOSP^MR", 5: "Doe^Jane", 15: "ara^Arabic^HL70296^eng^English^HL70296"}
    )
    pat = _patient(h, pid)
    codings = pat["communication"][0]["language"]["coding"]
    assert {"system": "urn:ietf:bcp:47", "code": "en", "display": "English"} in codings


def test_pid15_unknown_alternate_language_adds_no_coding(h: ModuleType) -> None:
    """An alternate language code with no BCP 47 equivalent keeps only the sender's coding."""
    pid = h.seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 15: "^^^xkl^Klingon^L"})
    codings = _patient(h, pid)["communication"][0]["language"]["coding"]
    assert [c["code"] for c in codings] == ["xkl"]


def test_nk1_primary_language_is_preferred(h: ModuleType) -> None:
    """NK1-20 (the next of kin's primary language) is a preferred communication language."""
    nk1 = h.seg("NK1", {1: "1", 2: "Doe^John", 3: "SPO", 20: "ger^German^HL70296"})
    rp = h.one(h.run(ADT, PID, nk1), "RelatedPerson")
    assert rp["communication"][0]["preferred"] is True
    assert rp["communication"][0]["language"]["coding"][0]["code"] == "de"


def test_nk1_race_us_core(h: ModuleType) -> None:
    """NK1-35 -> US Core race on the RelatedPerson, displayed as the OMB category is."""
    nk1 = h.seg("NK1", {1: "1", 2: "Doe^John", 3: "SPO", 35: "2106-3^Caucasian^CDCREC"})
    rp = h.one(h.run(ADT, PID, nk1), "RelatedPerson")
    race = _ext(rp, "us-core-race")
    assert race["extension"] == [
        {
            "url": "ombCategory",
            "valueCoding": {
                "system": "urn:oid:2.16.840.1.113883.6.238",
                "code": "2106-3",
                "display": "White",
            },
        },
        {"url": "text", "valueString": "White"},
    ]


def test_nk1_ethnic_group_us_core(h: ModuleType) -> None:
    """NK1-28 (table 0189) -> US Core ethnicity on the RelatedPerson."""
    nk1 = h.seg("NK1", {1: "1", 2: "Doe^John", 3: "SPO", 28: "H^Hispanic^HL70189"})
    rp = h.one(h.run(ADT, PID, nk1), "RelatedPerson")
    coding = _ext(rp, "us-core-ethnicity")["extension"][0]["valueCoding"]
    assert (coding["code"], coding["display"]) == ("2135-2", "Hispanic or Latino")


def test_race_unknown_is_null_flavor(h: ModuleType) -> None:
    """PID-10 UNK is the OMB category of the v3 NullFlavor system, as US Core binds it."""
    pat = _patient(h, h.seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 5: "Doe^Jane", 10: "UNK^Unknown"}))
    coding = _ext(pat, "us-core-race")["extension"][0]["valueCoding"]
    assert coding["system"] == "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"


def test_race_keeps_coding_version(h: ModuleType) -> None:
    """PID-10's CWE.7 (the code system version) stays on the race coding."""
    pid = h.seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 10: "2106-3^White^CDCREC^^^^1.2"})
    coding = _ext(_patient(h, pid), "us-core-race")["extension"][0]["valueCoding"]
    assert coding["version"] == "1.2"


def test_race_local_code_is_text_only(h: ModuleType) -> None:
    """A PID-10 code that is not a CDC race code gives the race text only, no CDC coding."""
    pid = h.seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 10: "W^White^L"})
    assert _ext(_patient(h, pid), "us-core-race")["extension"] == [{"url": "text", "valueString": "White"}]


def test_county_with_address_county_text_is_own_address(h: ModuleType) -> None:
    """PID-12 goes to an address of its own when PID-11.9 is valued, even by a text only."""
    pat = _patient(
        h, h.seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 11: "1 Elm St^^Town^ST^^^^^&Dane", 12: "CTY"})
    )
    assert pat["address"][-1] == {"district": "CTY"}


def test_county_equal_to_address_county_adds_nothing(h: ModuleType) -> None:
    """PID-12 equal to the only address's county adds no address."""
    pat = _patient(h, h.seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 11: "1 Elm St^^Town^ST^^^^^CTY", 12: "CTY"}))
    assert len(pat["address"]) == 1


# ------------------------------------------------------------------------------ ARV


def test_arv_after_pid_labels_patient(h: ModuleType) -> None:
    """ARV after PID -> the Patient's security labels (action, value, reason)."""
    pat = _patient(h, PID, "ARV|1|A|DEM|PAT")
    assert _codes(pat) == [(ACT, "LABEL"), (ACT, "DEMO"), (ACT, "PRS")]


def test_arv_after_pv1_labels_encounter(h: ModuleType) -> None:
    """ARV after PV1 -> the Encounter's security labels, not the Patient's."""
    bundle = h.run(ADT, PID, PV1, "ARV|1|X|LOC|PHY")
    assert _codes(h.one(bundle, "Encounter")) == [(ACT, "PERSISTLABEL"), (ACT, "LOCIS"), (ACT, "PHY")]
    assert "meta" not in h.one(bundle, "Patient")


def test_arv_instructions_are_local_label(h: ModuleType) -> None:
    """ARV-5 -> a label of the local code system with the instructions as display."""
    pat = _patient(h, PID, "ARV|1|A|||Ask the privacy officer")
    assert pat["meta"]["security"][-1] == {
        "system": "urn:id:additional-security-label",
        "code": "special-access-restriction-instructions",
        "display": "Ask the privacy officer",
    }


def test_arv_date_range_extends_each_label(h: ModuleType) -> None:
    """ARV-6 -> the access-restriction-range extension on each label of the ARV."""
    pat = _patient(h, PID, "ARV|1|A|DEM|||20240101^20241231")
    exts = [label["extension"] for label in pat["meta"]["security"]]
    assert exts == [[{"url": RANGE, "valuePeriod": {"start": "2024-01-01", "end": "2024-12-31"}}]] * 2


def test_arv_delete_adds_no_label(h: ModuleType) -> None:
    """ARV-2 D (delete the restriction) adds no security label."""
    assert "meta" not in _patient(h, PID, "ARV|1|D|DEM|PAT")


def test_arv_without_content_adds_no_meta(h: ModuleType) -> None:
    """An ARV with nothing to label adds no (empty) meta.security."""
    assert "meta" not in _patient(h, PID, "ARV|1")


def test_arv_unmapped_value_keeps_v2_code(h: ModuleType) -> None:
    """An ARV-3 code without an HL7 security label stays a code of v2 table 0717."""
    pat = _patient(h, PID, "ARV|1||ZZZ")
    assert _codes(pat) == [("http://terminology.hl7.org/CodeSystem/v2-0717", "ZZZ")]


def test_arv_canary_only_in_bundle(h: ModuleType) -> None:
    """ARV values reach the Bundle, and no log line or header."""
    stream = io.StringIO()
    configure_logging(logging.DEBUG, stream)
    msg = h.er7(ADT, PID, f"ARV|1|A|{CANARY}|PAT|{CANARY}|{CANARY}^{CANARY}").encode()
    out = Hl7v2ToFhir().transform(Message(msg, Format.HL7V2))
    assert CANARY.encode() in out.payload
    assert all(CANARY not in v for v in out.headers.values())
    assert CANARY not in stream.getvalue()


# ------------------------------------------------------------------------------ MSH-8, DB1


def test_msh8_security_code_and_display(h: ModuleType) -> None:
    """MSH-8 -> MessageHeader.meta.security with the text as code and display."""
    msg = h.er7(ADT, PID).replace("20240102123000-0500||", "20240102123000-0500|RESTRICTED|", 1)
    header = h.one(convert(msg), "MessageHeader")
    assert header["meta"]["security"] == [{"code": "RESTRICTED", "display": "RESTRICTED"}]


def test_db1_patient_identifier(h: ModuleType) -> None:
    """DB1 about the patient (DB1-2 PT) -> DB1-3 as a Patient identifier."""
    pat = _patient(h, PID, "DB1|1|PT|DIS77^^^HOSP^MR|Y")
    assert [i["value"] for i in pat["identifier"]] == ["MRN1", "DIS77"]


def test_db1_other_person_ignored(h: ModuleType) -> None:
    """DB1 about another person (DB1-2 GT, the guarantor) adds nothing to the Patient."""
    pat = _patient(h, PID, "DB1|1|GT|DIS77^^^HOSP^MR|Y")
    assert [i["value"] for i in pat["identifier"]] == ["MRN1"]


# ------------------------------------------------------------------------------ CTD

CTD = "CTD|C^Emergency Contact^HL70131|Roe^Rita|1 Oak St^^Town^ST^12345^^B||^WPN^PH^^^^^^^^^555-3333"


def test_ctd_patient_contact(h: ModuleType) -> None:
    """CTD -> a Patient.contact with the contact role, name, address and telecom."""
    bundle = h.run("ORM^O01^ORM_O01", PID, "ORC|NW|P1", CTD)
    contact = h.one(bundle, "Patient")["contact"][0]
    assert contact["relationship"][0]["coding"][0]["code"] == "C"
    assert contact["name"] == {"family": "Roe", "given": ["Rita"]}
    assert contact["address"]["use"] == "work"
    assert contact["telecom"] == [{"system": "phone", "value": "555-3333", "use": "work"}]


def test_ctd_without_patient_contacts_option(h: ModuleType) -> None:
    """With patient_contacts off, CTD adds no Patient.contact."""
    bundle = h.run("ORM^O01^ORM_O01", PID, "ORC|NW|P1", CTD, patient_contacts=False)
    assert "contact" not in h.one(bundle, "Patient")


# ------------------------------------------------------------------------------ IG side tables


def test_pid33_34_provenance_of_patient_update(h: ModuleType) -> None:
    """PID-33/PID-34 -> a Provenance of the Patient: an UPDATE by the last-update facility."""
    pid = h.seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 5: "Doe^Jane", 33: "20240101101500", 34: "UPDFAC"})
    bundle = h.run(ADT, pid)
    prov = next(
        p
        for p in h.resources(bundle, "Provenance")
        if p.get("activity", {}).get("coding", [{}])[0].get("code") == "UPDATE"
    )
    assert prov["occurredDateTime"] == "2024-01-01T10:15:00-05:00"
    assert prov["agent"][0]["type"]["coding"][0]["code"] == "performer"
    org = next(o for o in h.resources(bundle, "Organization") if o.get("name") == "UPDFAC")
    assert prov["agent"][0]["who"]["reference"].endswith(org["id"])


def test_pd1_living_will_observation(h: ModuleType) -> None:
    """PD1-7 -> an Observation (LOINC 75320-2) of the patient with the mapped living-will code."""
    obs = h.one(h.run(ADT, PID, "PD1|||||||F"), "Observation")
    assert obs["code"]["coding"][0] == {"system": "http://loinc.org", "code": "75320-2"}
    assert (
        obs["valueCodeableConcept"]["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/v2-0315"
    )


def test_mrg3_prior_account(h: ModuleType) -> None:
    """MRG-3 -> the prior Account of the patient, status unknown."""
    bundle = h.run("ADT^A40^ADT_A39", PID, "MRG|OLD1^^^HOSP^MR||ACCT9^^^HOSP^AN")
    acct = h.one(bundle, "Account")
    assert (acct["identifier"][0]["value"], acct["status"]) == ("ACCT9", "unknown")
