"""Round-2 Patient / RelatedPerson / Account maps: IN2 patient numbers, the self-guarantor (GT1),
the guarantor billing hold (GT1-22), the registry status (PD1-16) and the billing account (BLG)
(every value synthetic)."""

from __future__ import annotations

import io
import logging
from types import ModuleType
from typing import Any

from pyheart.broker.contracts import Format, Message
from pyheart.broker.logs import configure_logging
from pyheart.transformers.hl7v2_fhir import Hl7v2ToFhir

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F||||||||||ACC1^^^HOSP&1.2.3&ISO^AN"
ADT = "ADT^A01^ADT_A01"
ORM = "ORM^O01^ORM_O01"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CANARY = "Qzxcanary4417"


def _patient(h: ModuleType, *segments: str, msg_type: str = ADT, **options: Any) -> dict[str, Any]:
    return dict(h.one(h.run(msg_type, PID, *segments, **options), "Patient"))


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
    pat = _patient(h, _in1(h), str(h.seg("IN2", {6: "MCARE9"})))
    ident = _ident(pat, "MCARE9")
    assert (ident["system"], _type_code(ident)) == (
        "http://hl7.org/fhir/sid/us-medicare",
        (V2_0203, "MC", "Patient's Medicare number"),
    )


def test_in2_medicaid_number_identifies_patient(h: ModuleType) -> None:
    """IN2-8 (Medicaid case number) is a Patient identifier of type MA."""
    pat = _patient(h, _in1(h), str(h.seg("IN2", {8: "MCAID4"})))
    assert _type_code(_ident(pat, "MCAID4")) == (V2_0203, "MA", "Patient Medicaid number")


def test_in2_military_id_identifies_patient(h: ModuleType) -> None:
    """IN2-10 (military id number) is a Patient identifier of type MI."""
    pat = _patient(h, _in1(h), str(h.seg("IN2", {10: "MIL5"})))
    assert _type_code(_ident(pat, "MIL5")) == (V2_0203, "MI", "Military ID number")


def test_in2_member_number_identifies_patient(h: ModuleType) -> None:
    """IN2-61 (patient member number, CX) is a Patient identifier with its CX type and system."""
    pat = _patient(h, _in1(h), str(h.seg("IN2", {61: "MB8^^^PAYER&1.2.9&ISO^MB"})))
    ident = _ident(pat, "MB8")
    assert (ident["system"], _type_code(ident)[1]) == ("urn:oid:1.2.9", "MB")


def test_in2_medicaid_case_name_not_patient_name(h: ModuleType) -> None:
    """IN2-7 (Medicaid case name, the head of household) is not a Patient name."""
    pat = _patient(h, _in1(h), str(h.seg("IN2", {7: "Roe^Head"})))
    assert [n["family"] for n in pat["name"]] == ["Doe"]


def test_in2_military_id_of_dependent_not_patients(h: ModuleType) -> None:
    """IN2-10 of a military dependent (IN2-11 valued) is the sponsor's, no Patient identifier."""
    pat = _patient(h, _in1(h), str(h.seg("IN2", {10: "MIL5", 11: "Y"})))
    assert "MIL5" not in [i["value"] for i in pat["identifier"]]


def test_in2_employer_contact_on_policy_holder(h: ModuleType) -> None:
    """IN2-49/50 (insured's employer contact person, phone) are a contact of the policy holder
    Organization (IN1-11, the insured's group employer)."""
    in1 = str(h.seg("IN1", {1: "1", 2: "PLAN1", 4: "Payer Inc", 11: "Acme Works", 17: "SPO", 36: "POL1"}))
    bundle = h.run(ADT, PID, in1, str(h.seg("IN2", {49: "Poe^Max", 50: "5550001111"})))
    employer = next(o for o in h.resources(bundle, "Organization") if o.get("name") == "Acme Works")
    assert employer["contact"] == [
        {"name": {"family": "Poe", "given": ["Max"]}, "telecom": [{"system": "phone", "value": "5550001111"}]}
    ]


def test_in2_employer_phone_on_policy_holder(h: ModuleType) -> None:
    """IN2-64 (insured's employer phone) is a telecom of the policy holder Organization."""
    in1 = str(h.seg("IN1", {1: "1", 2: "PLAN1", 4: "Payer Inc", 11: "Acme Works", 17: "SPO", 36: "POL1"}))
    bundle = h.run(ADT, PID, in1, str(h.seg("IN2", {64: "5550002222^^FX"})))
    employer = next(o for o in h.resources(bundle, "Organization") if o.get("name") == "Acme Works")
    assert employer["telecom"] == [{"system": "fax", "value": "5550002222"}]


def test_in2_repeated_numbers_listed_once(h: ModuleType) -> None:
    """The same IN2 number in two insurance groups is one Patient identifier."""
    in2 = str(h.seg("IN2", {6: "MCARE9"}))
    pat = _patient(h, _in1(h), in2, _in1(h), in2)
    assert [i["value"] for i in pat["identifier"]].count("MCARE9") == 1


def test_in2_numbers_also_identify_coverage(h: ModuleType) -> None:
    """The IN2 Medicare number still identifies the Coverage too."""
    bundle = h.run(ADT, PID, _in1(h), str(h.seg("IN2", {6: "MCARE9"})))
    assert "MCARE9" in [i["value"] for i in h.one(bundle, "Coverage")["identifier"]]


# ------------------------------------------------------------------------------ GT1 self


def test_self_guarantor_makes_no_related_person(h: ModuleType) -> None:
    """A guarantor who is the patient (GT1-11 SEL) is no RelatedPerson."""
    bundle = h.run(ADT, PID, _gt1(h))
    assert h.resources(bundle, "RelatedPerson") == []


def test_self_guarantor_identifier_on_patient(h: ModuleType) -> None:
    """GT1-2 (guarantor number) of a self-guarantor is a Patient identifier."""
    pat = _patient(h, _gt1(h))
    assert _type_code(_ident(pat, "G77"))[1] == "MR"


def test_self_guarantor_ssn_on_patient(h: ModuleType) -> None:
    """GT1-12 (guarantor SSN) of a self-guarantor is the Patient's us-ssn identifier."""
    pat = _patient(h, _gt1(h, f12="999-11-2222"))
    assert _ident(pat, "999-11-2222")["system"] == "http://hl7.org/fhir/sid/us-ssn"


def test_self_guarantor_employee_id_on_patient(h: ModuleType) -> None:
    """GT1-19 (guarantor employee id, CX) of a self-guarantor is a Patient identifier."""
    pat = _patient(h, _gt1(h, f19="E55^^^^EI"))
    assert _type_code(_ident(pat, "E55"))[1] == "EI"


def test_self_guarantor_address_on_patient(h: ModuleType) -> None:
    """GT1-5 (guarantor address) of a self-guarantor is a Patient address."""
    pat = _patient(h, _gt1(h))
    assert {"line": ["1 Main St"], "city": "Town", "state": "ST", "postalCode": "11111"} in pat["address"]


def test_self_guarantor_phones_home_and_work(h: ModuleType) -> None:
    """GT1-6 / GT1-7 phones of a self-guarantor are Patient telecoms, home and work."""
    pat = _patient(h, _gt1(h, f6="5551111111", f7="5552222222"))
    uses = {t["value"]: t["use"] for t in pat["telecom"]}
    assert (uses["5551111111"], uses["5552222222"]) == ("home", "work")


def test_self_guarantor_name_on_patient(h: ModuleType) -> None:
    """GT1-3 (guarantor name) of a self-guarantor is a Patient name (listed once when equal)."""
    pat = _patient(h, _gt1(h, f3="Doe^Janie"))
    assert {"family": "Doe", "given": ["Janie"]} in pat["name"]


def test_self_guarantor_spouse_is_next_of_kin_contact(h: ModuleType) -> None:
    """GT1-4 (guarantor spouse name) of a self-guarantor is a next-of-kin Patient.contact."""
    pat = _patient(h, _gt1(h, f4="Doe^John"))
    contact = next(c for c in pat["contact"] if c["name"] == {"family": "Doe", "given": ["John"]})
    assert contact["relationship"][0]["coding"][0]["code"] == "N"


def test_self_guarantor_employer_contact(h: ModuleType) -> None:
    """GT1-16/17/18 (employer name, address, phone) and GT1-31/32 (employment) are an employer
    Patient.contact."""
    gt1 = _gt1(
        h, f16="Acme Works", f17="9 Mill Rd^^Town", f18="5553333333^^PH", f31="20200101", f32="20211231"
    )
    contact = next(c for c in _patient(h, gt1)["contact"] if c["name"] == {"family": "Acme Works"})
    assert (
        contact["relationship"][0]["coding"][0]["code"],
        contact["address"]["line"],
        contact["telecom"][0]["value"],
        contact["period"],
    ) == ("E", ["9 Mill Rd"], "5553333333", {"start": "2020-01-01", "end": "2021-12-31"})


def test_self_guarantor_employment_dates_alone_make_no_contact(h: ModuleType) -> None:
    """Employment dates without an employer name, address or phone make no Patient.contact."""
    pat = _patient(h, _gt1(h, f31="20200101"))
    assert "contact" not in pat


def test_self_guarantor_contact_person(h: ModuleType) -> None:
    """GT1-45/46 (contact person name and phone) of a self-guarantor are a Patient.contact."""
    pat = _patient(h, _gt1(h, f45="Poe^Max", f46="5554444444^^PH"))
    assert pat["contact"] == [
        {
            "name": {"family": "Poe", "given": ["Max"]},
            "telecom": [{"system": "phone", "value": "5554444444"}],
        }
    ]


def test_self_guarantor_contacts_follow_patient_contacts_option(h: ModuleType) -> None:
    """With patient_contacts off the self-guarantor adds no Patient.contact."""
    pat = _patient(h, _gt1(h, f4="Doe^John"), patient_contacts=False)
    assert "contact" not in pat


def test_other_guarantor_stays_related_person(h: ModuleType) -> None:
    """A guarantor who is not the patient (GT1-11 SPO) stays a RelatedPerson, the Patient as is."""
    bundle = h.run(ADT, PID, _gt1(h, f11="SPO^Spouse", f3="Doe^John"))
    names = [n["family"] + n["given"][0] for n in h.one(bundle, "Patient")["name"]]
    assert (len(h.resources(bundle, "RelatedPerson")), names) == (1, ["DoeJane"])


# ------------------------------------------------------------------------------ GT1-21


def test_organization_guarantor_is_account_guarantor(h: ModuleType) -> None:
    """GT1-21 (guarantor organisation name) makes the Organization the Account guarantor."""
    bundle = h.run(ADT, PID, _gt1(h, f21="Acme Works"))
    org_url = next(
        e["fullUrl"] for e in h.entries(bundle, "Organization") if e["resource"].get("name") == "Acme Works"
    )
    assert h.one(bundle, "Account")["guarantor"][0]["party"] == {"reference": org_url}


def test_organization_guarantor_makes_no_related_person(h: ModuleType) -> None:
    """An organisation guarantor is no RelatedPerson and adds nothing to the Patient."""
    bundle = h.run(ADT, PID, _gt1(h, f21="Acme Works", f11="SPO"))
    assert (h.resources(bundle, "RelatedPerson"), h.one(bundle, "Patient")["identifier"][0]["value"]) == (
        [],
        "MRN1",
    )


def test_organization_guarantor_contact_person(h: ModuleType) -> None:
    """GT1-45/46/47 (contact person, phone, reason) are a contact of the guarantor Organization,
    further GT1-45 names contacts of their own."""
    gt1 = _gt1(h, f21="Acme Works", f45="Poe^Max~Roe", f46="5550003333", f47="Billing")
    bundle = h.run(ADT, PID, gt1)
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
    account = h.one(h.run(ADT, PID, _gt1(h, f22="Y")), "Account")
    assert account["guarantor"][0]["onHold"] is True


def test_guarantor_billing_hold_no(h: ModuleType) -> None:
    """GT1-22 N is onHold false."""
    account = h.one(h.run(ADT, PID, _gt1(h, f22="N")), "Account")
    assert account["guarantor"][0]["onHold"] is False


def test_guarantor_billing_hold_absent(h: ModuleType) -> None:
    """Without GT1-22 the guarantor has no onHold."""
    account = h.one(h.run(ADT, PID, _gt1(h)), "Account")
    assert "onHold" not in account["guarantor"][0]


def test_blg_account(h: ModuleType) -> None:
    """BLG-3 (account id, CX) is an active Account of the patient."""
    bundle = h.run(ORM, PID, "ORC|NW|P1", "OBR|1|P1||T1^Test^L", "BLG|||BA9^^^HOSP&1.2.3&ISO^AN")
    account = next(a for a in h.resources(bundle, "Account") if a["identifier"][0]["value"] == "BA9")
    patient_url = h.entries(bundle, "Patient")[0]["fullUrl"]
    assert (account["status"], account["subject"]) == ("active", [{"reference": patient_url}])


def test_blg_without_account_adds_nothing(h: ModuleType) -> None:
    """A BLG without BLG-3 adds no Account."""
    bundle = h.run(ORM, PID, "ORC|NW|P1", "OBR|1|P1||T1^Test^L", "BLG|1|CH")
    assert [a["identifier"][0]["value"] for a in h.resources(bundle, "Account")] == ["ACC1"]


# ------------------------------------------------------------------------------ PD1-16


def test_registry_status_active(h: ModuleType) -> None:
    """PD1-16 (immunization registry status) A is Patient.active true."""
    pat = _patient(h, str(h.seg("PD1", {16: "A^Active^HL70441"})))
    assert pat["active"] is True


def test_registry_status_moved_inactive(h: ModuleType) -> None:
    """PD1-16 M (moved or gone elsewhere) is Patient.active false."""
    pat = _patient(h, str(h.seg("PD1", {16: "M"})))
    assert pat["active"] is False


def test_registry_status_unknown_omitted(h: ModuleType) -> None:
    """PD1-16 U (unknown) says nothing about Patient.active."""
    pat = _patient(h, str(h.seg("PD1", {16: "U"})))
    assert "active" not in pat


# ------------------------------------------------------------------------------ PHI


def test_in2_gt1_canary_only_in_bundle(h: ModuleType) -> None:
    """IN2 and self-guarantor values reach the Bundle, and no log line or header."""
    stream = io.StringIO()
    configure_logging(logging.DEBUG, stream)
    in2 = str(h.seg("IN2", {6: CANARY, 49: CANARY, 61: CANARY}))
    gt1 = _gt1(h, f3=CANARY, f4=CANARY, f12=CANARY, f45=CANARY)
    msg = h.er7(ADT, PID, _in1(h), in2, gt1).encode()
    out = Hl7v2ToFhir().transform(Message(msg, Format.HL7V2))
    assert CANARY.encode() in out.payload
    assert all(CANARY not in v for v in out.headers.values())
    assert CANARY not in stream.getvalue()


# ------------------------------------------------------------------------------ IN1-17


def test_coverage_relationship_subscriber_code(h: ModuleType) -> None:
    """IN1-17 SPO is also the subscriber-relationship code spouse, after the IG's RoleCode SPS."""
    cov = h.one(h.run(ADT, PID, _in1(h)), "Coverage")
    assert [(c["system"].rsplit("/", 1)[-1], c["code"]) for c in cov["relationship"]["coding"]] == [
        ("v3-RoleCode", "SPS"),
        ("subscriber-relationship", "spouse"),
    ]


def test_coverage_relationship_unknown_adds_no_subscriber_code(h: ModuleType) -> None:
    """IN1-17 UNK (unknown) gets no subscriber-relationship code."""
    cov = h.one(h.run(ADT, PID, _in1(h, "UNK")), "Coverage")
    systems = [c["system"] for c in cov["relationship"]["coding"]]
    assert "http://terminology.hl7.org/CodeSystem/subscriber-relationship" not in systems


def test_insured_coded_01_is_not_the_patient(h: ModuleType) -> None:
    """IN1-17 01 (spouse in the X12 / NUBC codes) keeps the insured a RelatedPerson."""
    bundle = h.run(ADT, PID, _in1(h, "01"))
    subscriber = h.one(bundle, "Coverage")["subscriber"]["reference"]
    assert subscriber == h.entries(bundle, "RelatedPerson")[0]["fullUrl"]


# ------------------------------------------------------------------------------ MRG-3


def test_account_merge_linkage(h: ModuleType) -> None:
    """MRG-3 (prior account) makes a Linkage: the PID-18 Account the source, the prior historical."""
    bundle = h.run("ADT^A41^ADT_A41", PID, "MRG|||OLDACC^^^HOSP&1.2.3&ISO^AN")
    linkage = h.one(bundle, "Linkage")
    items = [
        (i["type"], i["resource"]["type"], i["resource"]["identifier"]["value"]) for i in linkage["item"]
    ]
    assert items == [("source", "Account", "ACC1"), ("historical", "Account", "OLDACC")]


def test_account_merge_without_current_account_no_linkage(h: ModuleType) -> None:
    """Without a PID-18 account the prior account (MRG-3) is linked to nothing."""
    pid = PID.rsplit("|", 1)[0] + "|"
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
    enc = h.one(h.run(ADT, PID, "PV1|1|I|WARD^101^A", pv2), "Encounter")
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
    bundle = h.run(ADT, PID, _in1(h))
    coverage_url = h.entries(bundle, "Coverage")[0]["fullUrl"]
    assert h.one(bundle, "Account")["coverage"] == [{"coverage": {"reference": coverage_url}}]


def test_self_guarantor_employer_organization(h: ModuleType) -> None:
    """GT1-51 (guarantor employer's organisation) is the employer contact's organization."""
    bundle = h.run(ADT, PID, _gt1(h, f51="Acme Works"))
    org_url = next(
        e["fullUrl"] for e in h.entries(bundle, "Organization") if e["resource"].get("name") == "Acme Works"
    )
    contact = h.one(bundle, "Patient")["contact"][0]
    assert (contact["organization"], contact["relationship"][0]["coding"][0]["code"]) == (
        {"reference": org_url},
        "E",
    )
