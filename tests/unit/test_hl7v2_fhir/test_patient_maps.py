"""Patient, RelatedPerson, Account and security-label maps: PID/NK1 telecom use and languages, US
Core race and ethnicity, the PID-12 county, PID-27 veteran status, ARV access restrictions, MSH-8
and PV2-22 security labels, DB1 identifiers, CTD contacts, the PID-33/34 update Provenance, PD1-7
living will and PD1-16 registry status, IN1-17/IN2 insurance numbers, the self- and organisation
guarantor (GT1, GT1-22 billing hold), the billing account (BLG, Account.coverage) and MRG-3
account merges (every value synthetic)."""

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
PID_ACCOUNT = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F||||||||||ACC1^^^HOSP&1.2.3&ISO^AN"
ORM = "ORM^O01^ORM_O01"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
GUARANTOR_CANARY = "Qzxcanary4417"


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


# ----------------------------------------------- Insurance, guarantor and account (PID with a PID-18 account)


def _patient_with_account(
    h: ModuleType, *segments: str, msg_type: str = ADT, **options: Any
) -> dict[str, Any]:
    return dict(h.one(h.run(msg_type, PID_ACCOUNT, *segments, **options), "Patient"))


def _ident(res: dict[str, Any], value: str) -> dict[str, Any]:
    return next(i for i in res.get("identifier", []) if i.get("value") == value)


def _type_code(ident: dict[str, Any]) -> tuple[str, str, str]:
    c = ident["type"]["coding"][0]
    return (c["system"], c["code"], c.get("display", ""))


def _in1(h: ModuleType, relation: str = "SPO^Spouse") -> str:
    return str(h.seg("IN1", {1: "1", 2: "PLAN1", 4: "Payer Inc", 16: "Roe^Ann", 17: relation, 36: "POL1"}))


def _gt1(h: ModuleType, **extra: str) -> str:
    fields = {1: "1", 2: "G77^^^HOSP^MR", 3: "Doe^Jane", 5: "1 Main St^^Town^ST^11111", 11: "SEL^Self"}
    fields.update({int(k[1:]): v for k, v in extra.items()})
    return str(h.seg("GT1", fields))


# ------------------------------------------------------------------------------ IN2 -> Patient


def test_in2_medicare_number_identifies_patient(h: ModuleType) -> None:
    """IN2-6 (the patient's Medicare number) is a Patient identifier of type MC, us-medicare."""
    pat = _patient_with_account(h, _in1(h), str(h.seg("IN2", {6: "MCARE9"})))
    ident = _ident(pat, "MCARE9")
    assert (ident["system"], _type_code(ident)) == (
        "http://hl7.org/fhir/sid/us-medicare",
        (V2_0203, "MC", "Patient's Medicare number"),
    )


def test_in2_medicaid_number_identifies_patient(h: ModuleType) -> None:
    """IN2-8 (Medicaid case number) is a Patient identifier of type MA."""
    pat = _patient_with_account(h, _in1(h), str(h.seg("IN2", {8: "MCAID4"})))
    assert _type_code(_ident(pat, "MCAID4")) == (V2_0203, "MA", "Patient Medicaid number")


def test_in2_military_id_identifies_patient(h: ModuleType) -> None:
    """IN2-10 (military id number) is a Patient identifier of type MI."""
    pat = _patient_with_account(h, _in1(h), str(h.seg("IN2", {10: "MIL5"})))
    assert _type_code(_ident(pat, "MIL5")) == (V2_0203, "MI", "Military ID number")


def test_in2_member_number_identifies_patient(h: ModuleType) -> None:
    """IN2-61 (patient member number, CX) is a Patient identifier with its CX type and system."""
    pat = _patient_with_account(h, _in1(h), str(h.seg("IN2", {61: "MB8^^^PAYER&1.2.9&ISO^MB"})))
    ident = _ident(pat, "MB8")
    assert (ident["system"], _type_code(ident)[1]) == ("urn:oid:1.2.9", "MB")


def test_in2_medicaid_case_name_not_patient_name(h: ModuleType) -> None:
    """IN2-7 (Medicaid case name, the head of household) is not a Patient name."""
    pat = _patient_with_account(h, _in1(h), str(h.seg("IN2", {7: "Roe^Head"})))
    assert [n["family"] for n in pat["name"]] == ["Doe"]


def test_in2_military_id_of_dependent_not_patients(h: ModuleType) -> None:
    """IN2-10 of a military dependent (IN2-11 valued) is the sponsor's, no Patient identifier."""
    pat = _patient_with_account(h, _in1(h), str(h.seg("IN2", {10: "MIL5", 11: "Y"})))
    assert "MIL5" not in [i["value"] for i in pat["identifier"]]


def test_in2_employer_contact_on_policy_holder(h: ModuleType) -> None:
    """IN2-49/50 (insured's employer contact person, phone) are a contact of the policy holder
    Organization (IN1-11, the insured's group employer)."""
    in1 = str(h.seg("IN1", {1: "1", 2: "PLAN1", 4: "Payer Inc", 11: "Acme Works", 17: "SPO", 36: "POL1"}))
    bundle = h.run(ADT, PID_ACCOUNT, in1, str(h.seg("IN2", {49: "Poe^Max", 50: "5550001111"})))
    employer = next(o for o in h.resources(bundle, "Organization") if o.get("name") == "Acme Works")
    assert employer["contact"] == [
        {"name": {"family": "Poe", "given": ["Max"]}, "telecom": [{"system": "phone", "value": "5550001111"}]}
    ]


def test_in2_employer_phone_on_policy_holder(h: ModuleType) -> None:
    """IN2-64 (insured's employer phone) is a telecom of the policy holder Organization."""
    in1 = str(h.seg("IN1", {1: "1", 2: "PLAN1", 4: "Payer Inc", 11: "Acme Works", 17: "SPO", 36: "POL1"}))
    bundle = h.run(ADT, PID_ACCOUNT, in1, str(h.seg("IN2", {64: "5550002222^^FX"})))
    employer = next(o for o in h.resources(bundle, "Organization") if o.get("name") == "Acme Works")
    assert employer["telecom"] == [{"system": "fax", "value": "5550002222"}]


def test_in2_repeated_numbers_listed_once(h: ModuleType) -> None:
    """The same IN2 number in two insurance groups is one Patient identifier."""
    in2 = str(h.seg("IN2", {6: "MCARE9"}))
    pat = _patient_with_account(h, _in1(h), in2, _in1(h), in2)
    assert [i["value"] for i in pat["identifier"]].count("MCARE9") == 1


def test_in2_numbers_also_identify_coverage(h: ModuleType) -> None:
    """The IN2 Medicare number still identifies the Coverage too."""
    bundle = h.run(ADT, PID_ACCOUNT, _in1(h), str(h.seg("IN2", {6: "MCARE9"})))
    assert "MCARE9" in [i["value"] for i in h.one(bundle, "Coverage")["identifier"]]


# ------------------------------------------------------------------------------ GT1 self


def test_self_guarantor_makes_no_related_person(h: ModuleType) -> None:
    """A guarantor who is the patient (GT1-11 SEL) is no RelatedPerson."""
    bundle = h.run(ADT, PID_ACCOUNT, _gt1(h))
    assert h.resources(bundle, "RelatedPerson") == []


def test_self_guarantor_identifier_on_patient(h: ModuleType) -> None:
    """GT1-2 (guarantor number) of a self-guarantor is a Patient identifier."""
    pat = _patient_with_account(h, _gt1(h))
    assert _type_code(_ident(pat, "G77"))[1] == "MR"


def test_self_guarantor_ssn_on_patient(h: ModuleType) -> None:
    """GT1-12 (guarantor SSN) of a self-guarantor is the Patient's us-ssn identifier."""
    pat = _patient_with_account(h, _gt1(h, f12="999-11-2222"))
    assert _ident(pat, "999-11-2222")["system"] == "http://hl7.org/fhir/sid/us-ssn"


def test_self_guarantor_employee_id_on_patient(h: ModuleType) -> None:
    """GT1-19 (guarantor employee id, CX) of a self-guarantor is a Patient identifier."""
    pat = _patient_with_account(h, _gt1(h, f19="E55^^^^EI"))
    assert _type_code(_ident(pat, "E55"))[1] == "EI"


def test_self_guarantor_address_on_patient(h: ModuleType) -> None:
    """GT1-5 (guarantor address) of a self-guarantor is a Patient address."""
    pat = _patient_with_account(h, _gt1(h))
    assert {"line": ["1 Main St"], "city": "Town", "state": "ST", "postalCode": "11111"} in pat["address"]


def test_self_guarantor_phones_home_and_work(h: ModuleType) -> None:
    """GT1-6 / GT1-7 phones of a self-guarantor are Patient telecoms, home and work."""
    pat = _patient_with_account(h, _gt1(h, f6="5551111111", f7="5552222222"))
    uses = {t["value"]: t["use"] for t in pat["telecom"]}
    assert (uses["5551111111"], uses["5552222222"]) == ("home", "work")


def test_self_guarantor_name_on_patient(h: ModuleType) -> None:
    """GT1-3 (guarantor name) of a self-guarantor is a Patient name (listed once when equal)."""
    pat = _patient_with_account(h, _gt1(h, f3="Doe^Janie"))
    assert {"family": "Doe", "given": ["Janie"]} in pat["name"]


def test_self_guarantor_spouse_is_next_of_kin_contact(h: ModuleType) -> None:
    """GT1-4 (guarantor spouse name) of a self-guarantor is a next-of-kin Patient.contact."""
    pat = _patient_with_account(h, _gt1(h, f4="Doe^John"))
    contact = next(c for c in pat["contact"] if c["name"] == {"family": "Doe", "given": ["John"]})
    assert contact["relationship"][0]["coding"][0]["code"] == "N"


def test_self_guarantor_employer_contact(h: ModuleType) -> None:
    """GT1-16/17/18 (employer name, address, phone) and GT1-31/32 (employment) are an employer
    Patient.contact."""
    gt1 = _gt1(
        h, f16="Acme Works", f17="9 Mill Rd^^Town", f18="5553333333^^PH", f31="20200101", f32="20211231"
    )
    contact = next(
        c for c in _patient_with_account(h, gt1)["contact"] if c["name"] == {"family": "Acme Works"}
    )
    assert (
        contact["relationship"][0]["coding"][0]["code"],
        contact["address"]["line"],
        contact["telecom"][0]["value"],
        contact["period"],
    ) == ("E", ["9 Mill Rd"], "5553333333", {"start": "2020-01-01", "end": "2021-12-31"})


def test_self_guarantor_employment_dates_alone_make_no_contact(h: ModuleType) -> None:
    """Employment dates without an employer name, address or phone make no Patient.contact."""
    pat = _patient_with_account(h, _gt1(h, f31="20200101"))
    assert "contact" not in pat


def test_self_guarantor_contact_person(h: ModuleType) -> None:
    """GT1-45/46 (contact person name and phone) of a self-guarantor are a Patient.contact."""
    pat = _patient_with_account(h, _gt1(h, f45="Poe^Max", f46="5554444444^^PH"))
    assert pat["contact"] == [
        {
            "name": {"family": "Poe", "given": ["Max"]},
            "telecom": [{"system": "phone", "value": "5554444444"}],
        }
    ]


def test_self_guarantor_contacts_follow_patient_contacts_option(h: ModuleType) -> None:
    """With patient_contacts off the self-guarantor adds no Patient.contact."""
    pat = _patient_with_account(h, _gt1(h, f4="Doe^John"), patient_contacts=False)
    assert "contact" not in pat


def test_other_guarantor_stays_related_person(h: ModuleType) -> None:
    """A guarantor who is not the patient (GT1-11 SPO) stays a RelatedPerson, the Patient as is."""
    bundle = h.run(ADT, PID_ACCOUNT, _gt1(h, f11="SPO^Spouse", f3="Doe^John"))
    names = [n["family"] + n["given"][0] for n in h.one(bundle, "Patient")["name"]]
    assert (len(h.resources(bundle, "RelatedPerson")), names) == (1, ["DoeJane"])


# ------------------------------------------------------------------------------ GT1-21


def test_organization_guarantor_is_account_guarantor(h: ModuleType) -> None:
    """GT1-21 (guarantor organisation name) makes the Organization the Account guarantor."""
    bundle = h.run(ADT, PID_ACCOUNT, _gt1(h, f21="Acme Works"))
    org_url = next(
        e["fullUrl"] for e in h.entries(bundle, "Organization") if e["resource"].get("name") == "Acme Works"
    )
    assert h.one(bundle, "Account")["guarantor"][0]["party"] == {"reference": org_url}


def test_organization_guarantor_makes_no_related_person(h: ModuleType) -> None:
    """An organisation guarantor is no RelatedPerson and adds nothing to the Patient."""
    bundle = h.run(ADT, PID_ACCOUNT, _gt1(h, f21="Acme Works", f11="SPO"))
    assert (h.resources(bundle, "RelatedPerson"), h.one(bundle, "Patient")["identifier"][0]["value"]) == (
        [],
        "MRN1",
    )


def test_organization_guarantor_contact_person(h: ModuleType) -> None:
    """GT1-45/46/47 (contact person, phone, reason) are a contact of the guarantor Organization,
    further GT1-45 names contacts of their own."""
    gt1 = _gt1(h, f21="Acme Works", f45="Poe^Max~Roe", f46="5550003333", f47="Billing")
    bundle = h.run(ADT, PID_ACCOUNT, gt1)
    org = next(o for o in h.resources(bundle, "Organization") if o.get("name") == "Acme Works")
    assert org["contact"] == [
        {
            "name": {"family": "Poe", "given": ["Max"]},
            "telecom": [{"system": "phone", "value": "5550003333"}],
            "purpose": {"coding": [{"code": "Billing"}]},
        },
        {"name": {"family": "Roe"}},
    ]


# ------------------------------------------------------------------------------ GT1-22, Account


def test_guarantor_billing_hold_flag(h: ModuleType) -> None:
    """GT1-22 (billing hold flag) Y is the Account guarantor's onHold true."""
    account = h.one(h.run(ADT, PID_ACCOUNT, _gt1(h, f22="Y")), "Account")
    assert account["guarantor"][0]["onHold"] is True


def test_guarantor_billing_hold_no(h: ModuleType) -> None:
    """GT1-22 N is onHold false."""
    account = h.one(h.run(ADT, PID_ACCOUNT, _gt1(h, f22="N")), "Account")
    assert account["guarantor"][0]["onHold"] is False


def test_guarantor_billing_hold_absent(h: ModuleType) -> None:
    """Without GT1-22 the guarantor has no onHold."""
    account = h.one(h.run(ADT, PID_ACCOUNT, _gt1(h)), "Account")
    assert "onHold" not in account["guarantor"][0]


def test_blg_account(h: ModuleType) -> None:
    """BLG-3 (account id, CX) is an active Account of the patient."""
    bundle = h.run(ORM, PID_ACCOUNT, "ORC|NW|P1", "OBR|1|P1||T1^Test^L", "BLG|||BA9^^^HOSP&1.2.3&ISO^AN")
    account = next(a for a in h.resources(bundle, "Account") if a["identifier"][0]["value"] == "BA9")
    patient_url = h.entries(bundle, "Patient")[0]["fullUrl"]
    assert (account["status"], account["subject"]) == ("active", [{"reference": patient_url}])


def test_blg_without_account_adds_nothing(h: ModuleType) -> None:
    """A BLG without BLG-3 adds no Account."""
    bundle = h.run(ORM, PID_ACCOUNT, "ORC|NW|P1", "OBR|1|P1||T1^Test^L", "BLG|1|CH")
    assert [a["identifier"][0]["value"] for a in h.resources(bundle, "Account")] == ["ACC1"]


# ------------------------------------------------------------------------------ PD1-16


def test_registry_status_active(h: ModuleType) -> None:
    """PD1-16 (immunization registry status) A is Patient.active true."""
    pat = _patient_with_account(h, str(h.seg("PD1", {16: "A^Active^HL70441"})))
    assert pat["active"] is True


def test_registry_status_moved_inactive(h: ModuleType) -> None:
    """PD1-16 M (moved or gone elsewhere) is Patient.active false."""
    pat = _patient_with_account(h, str(h.seg("PD1", {16: "M"})))
    assert pat["active"] is False


def test_registry_status_unknown_omitted(h: ModuleType) -> None:
    """PD1-16 U (unknown) says nothing about Patient.active."""
    pat = _patient_with_account(h, str(h.seg("PD1", {16: "U"})))
    assert "active" not in pat


# ------------------------------------------------------------------------------ PHI


def test_in2_gt1_canary_only_in_bundle(h: ModuleType) -> None:
    """IN2 and self-guarantor values reach the Bundle, and no log line or header."""
    stream = io.StringIO()
    configure_logging(logging.DEBUG, stream)
    in2 = str(h.seg("IN2", {6: GUARANTOR_CANARY, 49: GUARANTOR_CANARY, 61: GUARANTOR_CANARY}))
    gt1 = _gt1(h, f3=GUARANTOR_CANARY, f4=GUARANTOR_CANARY, f12=GUARANTOR_CANARY, f45=GUARANTOR_CANARY)
    msg = h.er7(ADT, PID_ACCOUNT, _in1(h), in2, gt1).encode()
    out = Hl7v2ToFhir().transform(Message(msg, Format.HL7V2))
    assert GUARANTOR_CANARY.encode() in out.payload
    assert all(GUARANTOR_CANARY not in v for v in out.headers.values())
    assert GUARANTOR_CANARY not in stream.getvalue()


# ------------------------------------------------------------------------------ IN1-17


def test_coverage_relationship_subscriber_code(h: ModuleType) -> None:
    """IN1-17 SPO is also the subscriber-relationship code spouse, after the IG's RoleCode SPS."""
    cov = h.one(h.run(ADT, PID_ACCOUNT, _in1(h)), "Coverage")
    assert [(c["system"].rsplit("/", 1)[-1], c["code"]) for c in cov["relationship"]["coding"]] == [
        ("v3-RoleCode", "SPS"),
        ("subscriber-relationship", "spouse"),
    ]


def test_coverage_relationship_unknown_adds_no_subscriber_code(h: ModuleType) -> None:
    """IN1-17 UNK (unknown) gets no subscriber-relationship code."""
    cov = h.one(h.run(ADT, PID_ACCOUNT, _in1(h, "UNK")), "Coverage")
    systems = [c["system"] for c in cov["relationship"]["coding"]]
    assert "http://terminology.hl7.org/CodeSystem/subscriber-relationship" not in systems


def test_insured_coded_01_is_not_the_patient(h: ModuleType) -> None:
    """IN1-17 01 (spouse in the X12 / NUBC codes) keeps the insured a RelatedPerson."""
    bundle = h.run(ADT, PID_ACCOUNT, _in1(h, "01"))
    subscriber = h.one(bundle, "Coverage")["subscriber"]["reference"]
    assert subscriber == h.entries(bundle, "RelatedPerson")[0]["fullUrl"]


# ------------------------------------------------------------------------------ MRG-3


def test_account_merge_linkage(h: ModuleType) -> None:
    """MRG-3 (prior account) makes a Linkage: the PID-18 Account the source, the prior historical."""
    bundle = h.run("ADT^A41^ADT_A41", PID_ACCOUNT, "MRG|||OLDACC^^^HOSP&1.2.3&ISO^AN")
    linkage = h.one(bundle, "Linkage")
    items = [
        (i["type"], i["resource"]["type"], i["resource"]["identifier"]["value"]) for i in linkage["item"]
    ]
    assert items == [("source", "Account", "ACC1"), ("historical", "Account", "OLDACC")]


def test_account_merge_without_current_account_no_linkage(h: ModuleType) -> None:
    """Without a PID-18 account the prior account (MRG-3) is linked to nothing."""
    pid = PID_ACCOUNT.rsplit("|", 1)[0] + "|"
    bundle = h.run("ADT^A41^ADT_A41", pid, "MRG|||OLDACC^^^HOSP&1.2.3&ISO^AN")
    assert h.resources(bundle, "Linkage") == []


# ------------------------------------------------------------------------------ PID-27


def test_veteran_status_extension(h: ModuleType) -> None:
    """PID-27 (veterans military status) is the IG's veteranMilitaryStatus extension, a local one
    under the configured system base (HL7 defines none)."""
    pid = str(h.seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 27: "VET^Veteran^L"}))
    pat = h.one(h.run(ADT, pid), "Patient")
    ext = next(e for e in pat["extension"] if e["url"].endswith("patient-veteranMilitaryStatus"))
    assert (ext["url"], ext["valueCodeableConcept"]["coding"][0]["code"]) == (
        "urn:id:StructureDefinition/patient-veteranMilitaryStatus",
        "VET",
    )


# ------------------------------------------------------------------------------ PV2-22


def _encounter_security(h: ModuleType, flag: str) -> list[dict[str, Any]]:
    pv2 = str(h.seg("PV2", {22: flag}))
    enc = h.one(h.run(ADT, PID_ACCOUNT, "PV1|1|I|WARD^101^A", pv2), "Encounter")
    return list(enc.get("meta", {}).get("security", []))


def test_visit_protection_yes_restricted(h: ModuleType) -> None:
    """PV2-22 (visit protection indicator) Y labels the Encounter restricted (v3-Confidentiality R)."""
    assert _encounter_security(h, "Y") == [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
            "code": "R",
            "display": "restricted",
        }
    ]


def test_visit_protection_no_normal(h: ModuleType) -> None:
    """PV2-22 N labels the Encounter normal (v3-Confidentiality N)."""
    assert [s["code"] for s in _encounter_security(h, "N")] == ["N"]


def test_visit_protection_other_value_no_label(h: ModuleType) -> None:
    """A PV2-22 value other than Y/N adds no security label."""
    assert _encounter_security(h, "X") == []


# ------------------------------------------------------------------------------ Account.coverage, GT1-51


def test_account_paid_by_coverage(h: ModuleType) -> None:
    """The IN1 Coverage is listed in the patient's Account (PID-18) coverage."""
    bundle = h.run(ADT, PID_ACCOUNT, _in1(h))
    coverage_url = h.entries(bundle, "Coverage")[0]["fullUrl"]
    assert h.one(bundle, "Account")["coverage"] == [{"coverage": {"reference": coverage_url}}]


def test_self_guarantor_employer_organization(h: ModuleType) -> None:
    """GT1-51 (guarantor employer's organisation) is the employer contact's organization."""
    bundle = h.run(ADT, PID_ACCOUNT, _gt1(h, f51="Acme Works"))
    org_url = next(
        e["fullUrl"] for e in h.entries(bundle, "Organization") if e["resource"].get("name") == "Acme Works"
    )
    contact = h.one(bundle, "Patient")["contact"][0]
    assert (contact["organization"], contact["relationship"][0]["coding"][0]["code"]) == (
        {"reference": org_url},
        "E",
    )
