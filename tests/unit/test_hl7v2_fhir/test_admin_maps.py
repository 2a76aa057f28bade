"""Financial, pharmacy, scheduling and document maps: Coverage, Account, ChargeItem, medication
orders and dispenses, appointments and documents (every value synthetic)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F||||||||||ACC1^^^HOSP&1.2.3&ISO^AN"
ADT = "ADT^A01^ADT_A01"
DFT = "DFT^P03^DFT_P03"


def _in1(h: ModuleType, **extra: str) -> str:
    fields = {1: "1", 2: "PLAN1^Gold Plan", 4: "Payer Inc", 17: "SPO^Spouse", 16: "Roe^Ann", 36: "POL1"}
    fields.update({int(k[1:]): v for k, v in extra.items()})
    return str(h.seg("IN1", fields))


def _coverage(h: ModuleType, *segments: str) -> dict[str, Any]:
    return dict(h.one(h.run(ADT, PID, *segments), "Coverage"))


def test_coverage_plan_class(h: ModuleType) -> None:
    """IN1-2 (health plan id) is also the Coverage's plan class, IN1-2.2 its name."""
    cov = _coverage(h, _in1(h))
    plan = [c for c in cov["class"] if c["type"]["coding"][0]["code"] == "plan"]
    assert [(c["value"], c["name"]) for c in plan] == [("PLAN1", "Gold Plan")]


def test_coverage_group_class(h: ModuleType) -> None:
    """IN1-8 (group number) with IN1-9 (group name) is the Coverage's group class."""
    cov = _coverage(h, _in1(h, f8="GRP7", f9="Acme Staff"))
    group = [c for c in cov["class"] if c["type"]["coding"][0]["code"] == "group"]
    assert [(c["value"], c["name"]) for c in group] == [("GRP7", "Acme Staff")]


def test_coverage_deductible(h: ModuleType) -> None:
    """IN1-37 (policy deductible, CP) is a costToBeneficiary of type deductible."""
    cov = _coverage(h, _in1(h, f37="150&USD^DC"))
    cost = cov["costToBeneficiary"][0]
    assert (cost["type"]["coding"][0]["code"], cost["valueMoney"]) == (
        "deductible",
        {"value": 150, "currency": "USD"},
    )


def test_coverage_deleted(h: ModuleType) -> None:
    """IN1-55 (insurance action code) D marks the Coverage entered-in-error."""
    assert _coverage(h, _in1(h, f55="D"))["status"] == "entered-in-error"


def test_in2_medicare_identifier(h: ModuleType) -> None:
    """IN2-6 (Medicare number) identifies the Coverage with the us-medicare system."""
    cov = _coverage(h, _in1(h), str(h.seg("IN2", {6: "MCARE9"})))
    ident = next(i for i in cov["identifier"] if i["value"] == "MCARE9")
    assert (ident["system"], ident["type"]["coding"][0]["code"]) == (
        "http://hl7.org/fhir/sid/us-medicare",
        "MC",
    )


def test_in2_medicaid_identifier(h: ModuleType) -> None:
    """IN2-8 (Medicaid case number) identifies the Coverage, typed MA."""
    cov = _coverage(h, _in1(h), str(h.seg("IN2", {8: "MCAID4"})))
    ident = next(i for i in cov["identifier"] if i["value"] == "MCAID4")
    assert ident["type"]["coding"][0]["code"] == "MA"


def test_in2_insured_ssn(h: ModuleType) -> None:
    """IN2-2 (insured's SSN) identifies the insured RelatedPerson (Coverage.subscriber)."""
    bundle = h.run(ADT, PID, _in1(h), str(h.seg("IN2", {2: "999-00-1234"})))
    insured = next(
        r for r in h.resources(bundle, "RelatedPerson") if r.get("name", [{}])[0].get("family") == "Roe"
    )
    ssn = [i for i in insured["identifier"] if i.get("system") == "http://hl7.org/fhir/sid/us-ssn"]
    assert [i["value"] for i in ssn] == ["999-00-1234"]


def test_in2_insured_of_self_coverage_ignored(h: ModuleType) -> None:
    """When the insured is the patient (IN1-17 SEL), IN2 person fields make no RelatedPerson."""
    bundle = h.run(ADT, PID, _in1(h, f17="SEL"), str(h.seg("IN2", {2: "999-00-1234"})))
    assert h.resources(bundle, "RelatedPerson") == []


def _gt1(h: ModuleType, relation: str) -> str:
    return str(h.seg("GT1", {1: "1", 3: "Roe^Max", 11: relation, 13: "20200101", 14: "20201231"}))


def test_guarantor_on_account(h: ModuleType) -> None:
    """GT1 adds a guarantor to the patient's Account (PID-18) with GT1-13/14 as its period."""
    account = h.one(h.run(ADT, PID, _gt1(h, "FTH")), "Account")
    assert account["guarantor"][0]["period"] == {"start": "2020-01-01", "end": "2020-12-31"}


def test_guarantor_party_is_related_person(h: ModuleType) -> None:
    """A guarantor other than the patient is the Account guarantor's party as a RelatedPerson."""
    bundle = h.run(ADT, PID, _gt1(h, "FTH"))
    person = h.entries(bundle, "RelatedPerson")[0]["fullUrl"]
    assert h.one(bundle, "Account")["guarantor"][0]["party"] == {"reference": person}


def test_guarantor_self_party_is_patient(h: ModuleType) -> None:
    """GT1-11 SEL (the guarantor is the patient) makes the Patient the guarantor's party."""
    bundle = h.run(ADT, PID, _gt1(h, "SEL"))
    patient = h.entries(bundle, "Patient")[0]["fullUrl"]
    assert h.one(bundle, "Account")["guarantor"][0]["party"] == {"reference": patient}


def _ft1(h: ModuleType, **extra: str) -> str:
    fields = {1: "1", 2: "T100", 4: "20240101", 5: "20240102", 6: "CG", 7: "99011^Visit^C4"}
    fields.update({int(k[1:]): v for k, v in extra.items()})
    return str(h.seg("FT1", fields))


def test_charge_entered_date(h: ModuleType) -> None:
    """FT1-5 (posting date) is the ChargeItem's enteredDate."""
    assert h.one(h.run(DFT, PID, _ft1(h)), "ChargeItem")["enteredDate"] == "2024-01-02"


def test_charge_reason(h: ModuleType) -> None:
    """FT1-19 (diagnosis codes) are the ChargeItem's reasons."""
    charge = h.one(h.run(DFT, PID, _ft1(h, f19="R07.9^Chest pain^I10~R09.81^Congestion^I10")), "ChargeItem")
    assert [r["coding"][0]["code"] for r in charge["reason"]] == ["R07.9", "R09.81"]


def test_charge_price_extended_amount(h: ModuleType) -> None:
    """FT1-11 (extended amount) is the price, preferred to FT1-12 (unit amount)."""
    charge = h.one(h.run(DFT, PID, _ft1(h, f11="100&USD", f12="50&USD")), "ChargeItem")
    assert charge["priceOverride"] == {"value": 100, "currency": "USD"}


def test_charge_price_unit_amount(h: ModuleType) -> None:
    """Without FT1-11 the unit amount (FT1-12) is the price."""
    charge = h.one(h.run(DFT, PID, _ft1(h, f12="50&USD")), "ChargeItem")
    assert charge["priceOverride"] == {"value": 50, "currency": "USD"}


def test_charge_occurrence_range(h: ModuleType) -> None:
    """An FT1-4 range (DR with an end) is the ChargeItem's occurrencePeriod."""
    charge = h.one(h.run(DFT, PID, _ft1(h, f4="20240101^20240103")), "ChargeItem")
    assert (charge.get("occurrenceDateTime"), charge["occurrencePeriod"]) == (
        None,
        {"start": "2024-01-01", "end": "2024-01-03"},
    )


def test_charge_procedure_service(h: ModuleType) -> None:
    """FT1-25 (procedure code) is a Procedure the ChargeItem names as its service."""
    bundle = h.run(DFT, PID, _ft1(h, f25="71045^Chest X-ray^C4"))
    entry = h.entries(bundle, "Procedure")[0]
    assert h.one(bundle, "ChargeItem")["service"] == [{"reference": entry["fullUrl"], "type": "Procedure"}]


def test_charge_drug_dispense(h: ModuleType) -> None:
    """FT1-29 (NDC code) with FT1-43 quantity and FT1-42 prescription number is a MedicationDispense."""
    bundle = h.run(DFT, PID, _ft1(h, f29="0182-1061-05^Aspirin^NDC", f42="RX9", f43="5^C48480&Capsule&NCI"))
    dispense = h.one(bundle, "MedicationDispense")
    assert (dispense["quantity"]["value"], dispense["authorizingPrescription"][0]["identifier"]) == (
        5,
        {"value": "RX9"},
    )


def test_charge_account(h: ModuleType) -> None:
    """The ChargeItem is charged to the patient's Account (PID-18)."""
    bundle = h.run(DFT, PID, _ft1(h))
    account = h.entries(bundle, "Account")[0]["fullUrl"]
    assert h.one(bundle, "ChargeItem")["account"] == [{"reference": account}]


RDE = "RDE^O11^RDE_O11"
ORC_NW = "ORC|NW|P1^EHR"


def test_rxo_total_daily_dose(h: ModuleType) -> None:
    """RXO-23 (total daily dose, CQ) is the dosage's maxDosePerPeriod per 1 day (IG RXO)."""
    rxo = h.seg("RXO", {1: "1234^Drug^RXNORM", 23: "2^&capsule"})
    mr = h.one(h.run(RDE, PID, ORC_NW, rxo), "MedicationRequest")
    assert mr["dosageInstruction"][0]["maxDosePerPeriod"] == {
        "numerator": {"value": 2, "unit": "capsule"},
        "denominator": {"value": 1, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"},
    }


def test_rxo_indication(h: ModuleType) -> None:
    """RXO-20 (indication) is the MedicationRequest's reasonCode."""
    rxo = h.seg("RXO", {1: "1234^Drug^RXNORM", 20: "I10^Hypertension^I10"})
    mr = h.one(h.run(RDE, PID, ORC_NW, rxo), "MedicationRequest")
    assert mr["reasonCode"][0]["coding"][0]["code"] == "I10"


def test_rxo_rate(h: ModuleType) -> None:
    """RXO-21/22 (requested give rate and units) are the dosage's rateQuantity."""
    rxo = h.seg("RXO", {1: "1234^Drug^RXNORM", 21: "25", 22: "mL/h^mL/h^UCUM"})
    mr = h.one(h.run(RDE, PID, ORC_NW, rxo), "MedicationRequest")
    assert mr["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]["value"] == 25


def test_rxe_prescription_number(h: ModuleType) -> None:
    """RXE-15 (prescription number) identifies the MedicationRequest."""
    rxe = h.seg("RXE", {2: "1234^Drug^RXNORM", 15: "RX77"})
    mr = h.one(h.run(RDE, PID, ORC_NW, rxe), "MedicationRequest")
    assert "RX77" in [i["value"] for i in mr["identifier"]]


def test_rxe_after_rxo_is_a_filler_order(h: ModuleType) -> None:
    """An RXE after its RXO (one ORC group) is a filler-order based on the RXO's original order."""
    rxo = h.seg("RXO", {1: "1234^Drug^RXNORM", 2: "2", 4: "mg^mg^UCUM"})
    rxe = h.seg("RXE", {2: "1234^Drug^RXNORM", 3: "5", 5: "mg^mg^UCUM", 15: "RX77"})
    bundle = h.run(RDE, PID, ORC_NW, rxo, rxe, "RXR|PO^Oral^HL70162")
    urls = {e["resource"]["intent"]: e["fullUrl"] for e in h.entries(bundle, "MedicationRequest")}
    by_intent = {r["intent"]: r for r in h.resources(bundle, "MedicationRequest")}
    original = urls["original-order"]
    filler = by_intent["filler-order"]
    assert (
        filler["basedOn"],
        filler["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"],
        "route" in filler["dosageInstruction"][0],
    ) == ([{"reference": original}], 5, True)


def test_rxe_dosage_form_makes_medication(h: ModuleType) -> None:
    """RXE-6 (give dosage form) puts the drug in a Medication with that form."""
    rxe = h.seg("RXE", {2: "1234^Drug^RXNORM", 6: "TAB^Tablet^HL70906"})
    bundle = h.run(RDE, PID, ORC_NW, rxe)
    medication = h.one(bundle, "Medication")
    assert (medication["code"]["coding"][0]["code"], medication["form"]["coding"][0]["code"]) == (
        "1234",
        "TAB",
    )


def test_rxc_ingredient(h: ModuleType) -> None:
    """RXC is an ingredient of the order's Medication at strength RXC-5/6 per RXC-8/9."""
    rxe = h.seg("RXE", {2: "1234^Drug^RXNORM"})
    rxc = "RXC|A|5555^Additive^NDC|20|meq^meq^UCUM|2|meq^meq^UCUM||1|mL^mL^UCUM"
    bundle = h.run(RDE, PID, ORC_NW, rxe, rxc)
    mr = h.one(bundle, "MedicationRequest")
    order_med = next(
        e["resource"]
        for e in h.entries(bundle, "Medication")
        if e["fullUrl"] == mr["medicationReference"]["reference"]
    )
    strength = order_med["ingredient"][0]["strength"]
    assert (strength["numerator"]["value"], strength["denominator"]["value"]) == (2, 1)


def test_rxc_component_amount(h: ModuleType) -> None:
    """The RXC component is a Medication of its own whose amount is RXC-3/4."""
    rxe = h.seg("RXE", {2: "1234^Drug^RXNORM"})
    rxc = "RXC|A|5555^Additive^NDC|20|meq^meq^UCUM"
    bundle = h.run(RDE, PID, ORC_NW, rxe, rxc)
    component = next(r for r in h.resources(bundle, "Medication") if r["code"]["coding"][0]["code"] == "5555")
    assert component["amount"]["numerator"]["value"] == 20


RDS = "RDS^O13^RDS_O13"


def _rxd(h: ModuleType, **extra: str) -> str:
    fields = {1: "1", 2: "1234^Drug^RXNORM", 3: "20240101", 4: "10", 5: "TAB^Tablet^HL70906", 7: "RX77"}
    fields.update({int(k[1:]): v for k, v in extra.items()})
    return str(h.seg("RXD", fields))


def test_rxd_quantity_units(h: ModuleType) -> None:
    """RXD-5 (actual dispense units) is the dispensed quantity's unit."""
    dispense = h.one(h.run(RDS, PID, ORC_NW, _rxd(h)), "MedicationDispense")
    assert dispense["quantity"]["unit"] == "Tablet"


def test_rxd_prescription_number(h: ModuleType) -> None:
    """RXD-7 (prescription number) identifies the authorizing MedicationRequest."""
    dispense = h.one(h.run(RDS, PID, ORC_NW, _rxd(h)), "MedicationDispense")
    assert dispense["authorizingPrescription"][0]["identifier"] == {"value": "RX77"}


def test_rxd_notes_and_type(h: ModuleType) -> None:
    """RXD-9 (dispense notes) is a note and RXD-33 (dispense type) the dispense's type."""
    dispense = h.one(
        h.run(RDS, PID, ORC_NW, _rxd(h, f9="After food", f33="R^Refill^HL70484")), "MedicationDispense"
    )
    assert (dispense["note"], dispense["type"]["coding"][0]["code"]) == ([{"text": "After food"}], "R")


REF = "REF^I12^REF_I12"
RF1 = "RF1|P^Pending^HL70283|S^Stat^HL70280|Med^Medical^HL70281||O^Outpatient^HL70284|R100^EHR|20240105|20240205|20240104|O^Provider Ordered^HL70336"


def _referral(h: ModuleType, *segments: str) -> dict[str, Any]:
    bundle = h.run(REF, *segments)
    return next(r for r in h.resources(bundle, "ServiceRequest") if r["identifier"][0]["value"] == "R100")


def test_referral_before_pid_gets_the_patient(h: ModuleType) -> None:
    """RF1 (before the PID in REF messages) is a ServiceRequest whose subject is the patient."""
    bundle = h.run(REF, RF1, PID)
    patient = h.entries(bundle, "Patient")[0]["fullUrl"]
    assert h.one(bundle, "ServiceRequest")["subject"] == {"reference": patient}


def test_referral_without_patient_dropped(h: ModuleType) -> None:
    """Without a PID the referral has no subject (required), so no ServiceRequest is made."""
    assert h.resources(h.run(REF, RF1), "ServiceRequest") == []


def test_referral_status_and_priority(h: ModuleType) -> None:
    """RF1-1 P (pending) is status on-hold; RF1-2 S is priority stat."""
    sr = _referral(h, RF1, PID)
    assert (sr["status"], sr["priority"]) == ("on-hold", "stat")


def test_referral_category(h: ModuleType) -> None:
    """A referral is categorised "patient referral" (SNOMED 3457005) and by RF1-3 (type)."""
    codes = [c["coding"][0]["code"] for c in _referral(h, RF1, PID)["category"]]
    assert codes == ["3457005", "Med"]


def test_referral_period_and_dates(h: ModuleType) -> None:
    """RF1-7/8 (effective/expiration) are the occurrence period, RF1-9 (processed) authoredOn."""
    sr = _referral(h, RF1, PID)
    assert (sr["occurrencePeriod"], sr["authoredOn"]) == (
        {"start": "2024-01-05", "end": "2024-02-05"},
        "2024-01-04",
    )


def test_referral_reason(h: ModuleType) -> None:
    """RF1-10 (referral reason) is the reasonCode."""
    assert _referral(h, RF1, PID)["reasonCode"][0]["coding"][0]["code"] == "O"


AUT = "AUT|PPO|HC02|Health Insurer|20240110|20240310|AUTH1|175&USD|1|1|20240109"


def test_authorization_claim_response(h: ModuleType) -> None:
    """AUT is a preauthorization ClaimResponse identified by AUT-6 for the patient."""
    bundle = h.run(REF, RF1, AUT, PID)
    claim = h.one(bundle, "ClaimResponse")
    patient = h.entries(bundle, "Patient")[0]["fullUrl"]
    assert (claim["use"], claim["identifier"][0]["value"], claim["patient"]) == (
        "preauthorization",
        "AUTH1",
        {"reference": patient},
    )


def test_authorization_period_and_benefit(h: ModuleType) -> None:
    """AUT-4/5 are the preauthorization period, AUT-7 the benefit total, AUT-10 the created date."""
    claim = h.one(h.run(REF, RF1, AUT, PID), "ClaimResponse")
    assert (claim["preAuthPeriod"], claim["total"][0]["amount"], claim["created"]) == (
        {"start": "2024-01-10", "end": "2024-03-10"},
        {"value": 175, "currency": "USD"},
        "2024-01-09",
    )


def test_authorization_insurer(h: ModuleType) -> None:
    """AUT-2/3 (payor company id and name) are the insurer Organization."""
    bundle = h.run(REF, RF1, AUT, PID)
    insurer = h.one(bundle, "ClaimResponse")["insurer"]["reference"]
    org = next(e["resource"] for e in h.entries(bundle, "Organization") if e["fullUrl"] == insurer)
    assert (org["name"], org["identifier"][0]["value"]) == ("Health Insurer", "HC02")


MDM = "MDM^T02^MDM_T02"


def _txa(h: ModuleType, **extra: str) -> str:
    fields = {
        1: "1",
        2: "DS^Discharge summary",
        3: "TX",
        4: "202401021000",
        6: "202401021100",
        12: "DOC1^EHR",
    }
    fields.update({int(k[1:]): v for k, v in extra.items()})
    return str(h.seg("TXA", fields))


def _doc(h: ModuleType, *segments: str, msg_type: str = MDM) -> dict[str, Any]:
    return dict(h.one(h.run(msg_type, PID, *segments), "DocumentReference"))


def test_document_activity_period(h: ModuleType) -> None:
    """TXA-4 (activity date/time) starts the DocumentReference's context period."""
    assert _doc(h, _txa(h))["context"]["period"]["start"] == "2024-01-02T10:00:00-05:00"


def test_document_attachment_creation(h: ModuleType) -> None:
    """TXA-6 (origination date/time) is each content attachment's creation time."""
    doc = _doc(h, _txa(h), "OBX|1|TX|||Some text")
    assert [c["attachment"]["creation"] for c in doc["content"]] == ["2024-01-02T11:00:00-05:00"]


def test_document_completion_status(h: ModuleType) -> None:
    """TXA-17 (completion status, IG docStatus) AU is final and IP preliminary."""
    statuses = [_doc(h, _txa(h, f17=code)).get("docStatus") for code in ("AU", "IP")]
    assert statuses == ["final", "preliminary"]


def test_document_availability_status(h: ModuleType) -> None:
    """TXA-19 (availability, IG status) OB is superseded; AV and none are current."""
    statuses = [_doc(h, _txa(h, f19=code))["status"] for code in ("OB", "AV", "")]
    assert statuses == ["superseded", "current", "current"]


def test_document_parent_appended(h: ModuleType) -> None:
    """TXA-13 (parent document) is a relatesTo the document appends (an addendum, T06)."""
    doc = _doc(h, _txa(h, f13="DOC0^EHR"), msg_type="MDM^T06^MDM_T06")
    relation = doc["relatesTo"][0]
    assert (relation["code"], relation["target"]["identifier"]["value"]) == ("appends", "DOC0")


def test_document_parent_replaced(h: ModuleType) -> None:
    """In a replacement notification (T10), the TXA-13 parent is the document replaced."""
    doc = _doc(h, _txa(h, f13="DOC0^EHR"), msg_type="MDM^T10^MDM_T10")
    assert doc["relatesTo"][0]["code"] == "replaces"


SIU = "SIU^S12^SIU_S12"


def _sch(h: ModuleType, **extra: str) -> str:
    fields = {1: "A1^EHR", 2: "F1^SCHED", 11: "^^^202401021000-0500^202401021100-0500"}
    fields.update({int(k[1:]): v for k, v in extra.items()})
    return str(h.seg("SCH", fields))


def test_appointment_duration_in_seconds(h: ModuleType) -> None:
    """SCH-9 (duration) in SCH-10 units: 3600 s is 60 minutes."""
    appt = h.one(h.run(SIU, _sch(h, f9="3600", f10="s"), PID), "Appointment")
    assert appt["minutesDuration"] == 60


def test_appointment_duration_in_hours(h: ModuleType) -> None:
    """SCH-9 with SCH-10 h (hours) is converted to minutes."""
    appt = h.one(h.run(SIU, _sch(h, f9="2", f10="h"), PID), "Appointment")
    assert appt["minutesDuration"] == 120


def test_participant_period(h: ModuleType) -> None:
    """AIP-6 (start) and AIP-9/10 (duration) are that participant's period (IG AIP)."""
    aip = "AIP|1||1234^Careful^Carl|||202401021015-0500|||30|min"
    appt = h.one(h.run(SIU, _sch(h), PID, aip), "Appointment")
    period = next(p["period"] for p in appt["participant"] if "period" in p)
    assert period == {"start": "2024-01-02T10:15:00-05:00", "end": "2024-01-02T10:45:00-05:00"}


def test_participant_start_offset(h: ModuleType) -> None:
    """Without AIL-6, AIL-7/8 (offset) after the appointment start begins the location's period."""
    ail = "AIL|1||Room1^^^Clinic||||15|min"
    appt = h.one(h.run(SIU, _sch(h), PID, ail), "Appointment")
    period = next(p["period"] for p in appt["participant"] if "period" in p)
    assert period == {"start": "2024-01-02T10:15:00-05:00"}


def test_discontinued_appointment_cancelled(h: ModuleType) -> None:
    """Without SCH-25, an S16 (discontinuation) appointment is cancelled."""
    appt = h.one(h.run("SIU^S16^SIU_S12", _sch(h), PID), "Appointment")
    assert appt["status"] == "cancelled"


VXU = "VXU^V04^VXU_V04"


def _rxa(h: ModuleType, notes: str) -> str:
    return str(h.seg("RXA", {1: "0", 2: "1", 3: "20240101", 5: "88^Influenza^CVX", 6: "0.5", 9: notes}))


def test_immunization_new_record_primary_source(h: ModuleType) -> None:
    """RXA-9 00 (NIP001 new record) makes the Immunization a primary source, without origin."""
    imm = h.one(h.run(VXU, PID, "ORC|RE", _rxa(h, "00^New Record^NIP001")), "Immunization")
    assert (imm["primarySource"], "reportOrigin" in imm) == (True, False)


def test_immunization_historical_report_origin(h: ModuleType) -> None:
    """RXA-9 01 (historical) makes it a secondary source whose reportOrigin is that code."""
    imm = h.one(h.run(VXU, PID, "ORC|RE", _rxa(h, "01^Historical^NIP001")), "Immunization")
    assert (imm["primarySource"], imm["reportOrigin"]["coding"][0]["code"]) == (False, "01")


def test_immunization_free_text_note(h: ModuleType) -> None:
    """RXA-9 text that is not an NIP001 code is an Immunization note."""
    imm = h.one(h.run(VXU, PID, "ORC|RE", _rxa(h, "^Given in clinic")), "Immunization")
    assert imm["note"] == [{"text": "Given in clinic"}]


OUL = "OUL^R22^OUL_R22"
INV = "INV|SI1^Reagent A^HL70451|OK^OK^HL70383|RC^Calibrator^HL70384|C1^Container^LAB||||30|25||mL^mL^UCUM|20250131||||T1|LOT9"


def test_inventory_substance(h: ModuleType) -> None:
    """INV is a Substance: INV-1 code, INV-2 OK active, INV-3 category, INV-16/17 identifiers."""
    sub = h.one(h.run(OUL, PID, INV), "Substance")
    assert (
        sub["code"]["coding"][0]["code"],
        sub["status"],
        sub["category"][0]["coding"][0]["code"],
        [i["value"] for i in sub["identifier"]],
    ) == ("SI1", "active", "RC", ["T1", "LOT9"])


def test_inventory_instance(h: ModuleType) -> None:
    """The INV container (INV-4), current quantity (INV-8, INV-11 units) and expiry are the instance."""
    instance = h.one(h.run(OUL, PID, INV), "Substance")["instance"][0]
    assert (instance["identifier"]["value"], instance["quantity"]["value"], instance["expiry"]) == (
        "C1",
        30,
        "2025-01-31",
    )


def _payor(h: ModuleType, bundle: dict[str, Any]) -> dict[str, Any]:
    ref = h.one(bundle, "Coverage")["payor"][0]["reference"]
    return dict(next(e["resource"] for e in h.entries(bundle, "Organization") if e["fullUrl"] == ref))


def test_payor_identifier(h: ModuleType) -> None:
    """IN1-3 (insurance company id) identifies the payor Organization."""
    payor = _payor(h, h.run(ADT, PID, _in1(h, f3="IC-9^^^&2.16.840.1.113883.1.1&ISO^NIIP")))
    assert [(i["system"], i["value"]) for i in payor["identifier"]] == [
        ("urn:oid:2.16.840.1.113883.1.1", "IC-9")
    ]


def test_payor_telecom_and_contact(h: ModuleType) -> None:
    """IN1-7 (phone) is the payor's telecom and IN1-6 (contact person) its contact's name."""
    payor = _payor(h, h.run(ADT, PID, _in1(h, f6="Roth^Rony", f7="(555)555-5555^WPN^PH")))
    assert (payor["telecom"][0]["value"], payor["contact"][0]["name"]["family"]) == ("(555)555-5555", "Roth")


def test_policy_holder_identifier_and_address(h: ModuleType) -> None:
    """IN1-10 (IG) identifies the policy holder Organization (IN1-11); IN1-44 is its address."""
    bundle = h.run(ADT, PID, _in1(h, f10="E55^^^EMP", f11="Acme Corp", f44="1 Main St^^Town^WI"))
    ref = h.one(bundle, "Coverage")["policyHolder"]["reference"]
    holder = next(e["resource"] for e in h.entries(bundle, "Organization") if e["fullUrl"] == ref)
    assert (holder["identifier"][0]["value"], holder["address"][0]["city"]) == ("E55", "Town")


def test_general_resource_actor(h: ModuleType) -> None:
    """AIG-3 (resource id) of a location resource type is the participant's actor, a Location so
    identified (IG AIG)."""
    aig = "AIG|1||5001^Video Suite^L|102^Location^L"
    bundle = h.run(SIU, _sch(h), PID, aig)
    part = next(p for p in h.one(bundle, "Appointment")["participant"] if "type" in p)
    location = next(
        e["resource"] for e in h.entries(bundle, "Location") if e["fullUrl"] == part["actor"]["reference"]
    )
    assert (location["identifier"][0]["value"], location["name"]) == ("5001", "Video Suite")


CON = "CON|1|001^Release of information^HL70496|F-2||Privacy form|||||W|A|202401011200|202401011205|20240101|20241231"


def test_consent_privacy(h: ModuleType) -> None:
    """CON-2 001 (release of information) is a privacy Consent categorised by that type."""
    consent = h.one(h.run(MDM, PID, CON, _txa(h)), "Consent")
    assert (consent["scope"]["coding"][0]["code"], consent["category"][0]["coding"][0]["code"]) == (
        "patient-privacy",
        "001",
    )


def test_consent_status_rule_and_dates(h: ModuleType) -> None:
    """CON-11 A is active, CON-5 the policy rule, CON-13 the date, CON-14/15 the provision period."""
    consent = h.one(h.run(MDM, PID, CON, _txa(h)), "Consent")
    assert (consent["status"], consent["policyRule"]["text"], consent["dateTime"], consent["provision"]) == (
        "active",
        "Privacy form",
        "2024-01-01T12:05:00-05:00",
        {"period": {"start": "2024-01-01", "end": "2024-12-31"}},
    )


def test_consent_other_type_scope_text(h: ModuleType) -> None:
    """A consent type other than a privacy one gives the scope as its text."""
    con = CON.replace("001^Release of information", "002^Medical procedure")
    assert h.one(h.run(MDM, PID, con, _txa(h)), "Consent")["scope"] == {"text": "Medical procedure"}


PRD_RP = "PRD|RP^Referring Provider^HL70286|Powell^Robert^^^Dr|1 Care Dr^^Ann Arbor^MI||||PLN1^SL^^20250112|20200112|20250112|Good Hospital"
PRD_RT = "PRD|RT^Referred to Provider^HL70286|Mac^Paul^^^Dr"


def test_provider_practitioner(h: ModuleType) -> None:
    """PRD-2/3 (name, address) and PRD-7 (PLN: id, type, expiry) make the provider's Practitioner."""
    bundle = h.run(REF, RF1, PRD_RP, PID)
    person = next(r for r in h.resources(bundle, "Practitioner") if r["name"][0]["family"] == "Powell")
    assert (
        person["address"][0]["city"],
        person["identifier"][0]["value"],
        person["identifier"][0]["period"],
    ) == (
        "Ann Arbor",
        "PLN1",
        {"end": "2025-01-12"},
    )


def test_provider_role(h: ModuleType) -> None:
    """PRD-1 (role) and PRD-8/9 (period) make the PractitionerRole, with PRD-10 its organization."""
    bundle = h.run(REF, RF1, PRD_RP, PID)
    role = h.one(bundle, "PractitionerRole")
    assert (role["code"][0]["coding"][0]["code"], role["period"], "organization" in role) == (
        "RP",
        {"start": "2020-01-12", "end": "2025-01-12"},
        True,
    )


def test_referral_requester_and_performer(h: ModuleType) -> None:
    """In a referral the RP provider's role is the requester and the RT provider's a performer."""
    bundle = h.run(REF, RF1, PRD_RP, PRD_RT, PID)
    roles = {
        e["resource"]["code"][0]["coding"][0]["code"]: e["fullUrl"]
        for e in h.entries(bundle, "PractitionerRole")
    }
    sr = _referral(h, RF1, PRD_RP, PRD_RT, PID)
    assert (sr["requester"], sr["performer"]) == ({"reference": roles["RP"]}, [{"reference": roles["RT"]}])


def test_guarantor_employee_identifier(h: ModuleType) -> None:
    """GT1-19 (guarantor employee id) identifies the guarantor RelatedPerson."""
    gt1 = str(h.seg("GT1", {1: "1", 3: "Roe^Max", 11: "FTH", 19: "E77^^^ACME^EI"}))
    person = h.one(h.run(ADT, PID, gt1), "RelatedPerson")
    assert [i["value"] for i in person["identifier"]] == ["E77"]


def test_guarantor_home_phone(h: ModuleType) -> None:
    """GT1-6 (guarantor home phone) without a use code is a home telecom."""
    gt1 = str(h.seg("GT1", {1: "1", 3: "Roe^Max", 6: "5551234^^PH"}))
    person = h.one(h.run(ADT, PID, gt1), "RelatedPerson")
    assert person["telecom"][0]["use"] == "home"


def test_absurd_duration_tolerated(h: ModuleType) -> None:
    """An out-of-range AIP duration or SCH-9 leaves the period end and minutesDuration out."""
    aip = "AIP|1||1234^Careful^Carl|||202401021015-0500|||99999999999999999|d"
    appt = h.one(h.run(SIU, _sch(h, f9="99999999999999999", f10="d"), PID, aip), "Appointment")
    period = next(p["period"] for p in appt["participant"] if "period" in p)
    assert ("end" in period, "minutesDuration" in appt) == (False, False)


def test_malformed_financial_segments_convert(h: ModuleType) -> None:
    """Garbage in RF1/AUT/IN1 dates, amounts and codes converts (those elements left out)."""
    junk = "x\\X0D\\y"
    bundle = h.run(
        REF,
        f"RF1|P|R|{junk}||O|R1^EHR|{junk}|99999999|{junk}",
        f"AUT|PPO|HC|Ins|{junk}||A1|{junk}&USD",
        PID,
        f"IN1|1|P^Plan||Payer|||||||||||||||||||||||||||||||||||{junk}&USD",
    )
    claim = h.one(bundle, "ClaimResponse")
    assert ("preAuthPeriod" in claim, "total" in claim, "costToBeneficiary" in h.one(bundle, "Coverage")) == (
        False,
        False,
        False,
    )


_VALID_CASES = {
    "referral": (
        REF,
        RF1,
        AUT,
        PRD_RP,
        PRD_RT,
        PID,
        "IN1|1|P^Plan|IC1^^^A&1.2&ISO|Payer|||||G1|Grp||||||Roe^Ann|SPO|||||||||||||||||||||150&USD",
        "IN2||999-00-1234||||MC1||MA1",
    ),
    "charges": (DFT, PID, "GT1|1||Roe^Max||||||||FTH||20200101|20201231", "FT1-CASE"),
    "pharmacy": (
        RDE,
        PID,
        ORC_NW,
        "RXO|1234^Drug^RXNORM|2||mg^mg^UCUM|||||||||||||||I10^HTN^I10|25|mL/h^mL/h^UCUM|2^&capsule",
        "RXE||1234^Drug^RXNORM|5||mg^mg^UCUM|TAB^Tablet^HL70906||||||||RX77||||3^mg",
        "RXC|A|5555^Additive^NDC|20|meq^meq^UCUM|2|meq^meq^UCUM||1|mL^mL^UCUM",
    ),
    "dispense": (
        RDS,
        PID,
        ORC_NW,
        "RXD|1|1234^Drug^RXNORM|20240101|10|TAB^Tablet^HL70906||RX77||After food|||1^&tablet",
    ),
    "document": (
        MDM,
        PID,
        CON,
        "TXA|1|DS^Summary|TX|202401021000||202401021100|||||||DOC1^EHR|DOC0^EHR|||AU||OB",
        "OBX|1|TX|||Text",
    ),
    "appointment": (
        "SIU^S16^SIU_S12",
        "SCH|A1^EHR|F1^SCHED|||||||3600|s|^^^202401021000-0500^202401021100-0500",
        PID,
        "AIG|1||5001^Scope^L|101^Equipment^L||||202401021000-0500|||50|min",
        "AIL|1||Room1^^^Clinic||||15|min",
        "AIP|1||1234^Careful^Carl|||202401021015-0500|||30|min",
    ),
    "inventory": (OUL, PID, INV),
    "immunization": (VXU, PID, "ORC|RE", "RXA|0|1|20240101||88^Influenza^CVX|0.5|||01^Historical^NIP001"),
}


@pytest.mark.parametrize("case", sorted(_VALID_CASES))
def test_bundle_valid(h: ModuleType, case: str) -> None:
    """Bundles with the resources these maps add pass fhir.resources R4B validation."""
    msg_type, *segments = _VALID_CASES[case]
    ft1 = _ft1(h, f4="20240101^20240102", f11="100&USD", f19="R07.9^Pain^I10", f25="71045^Xray^C4")
    ft1 += "|" * 4 + "0182-1061-05^Aspirin^NDC" + "|" * 13 + "RX9|5^C48480&Capsule&NCI"
    Bundle.model_validate(h.run(msg_type, *(ft1 if s == "FT1-CASE" else s for s in segments)))


def test_rxe_form_after_rxo_adds_no_orphan_medication(h: ModuleType) -> None:
    """Every Medication made for an RXO and its RXE (with dosage forms) is a request's medication."""
    rxo = h.seg("RXO", {1: "1234^Drug^RXNORM", 5: "TAB^Tablet^HL70906"})
    rxe = h.seg("RXE", {2: "1234^Drug^RXNORM", 6: "TAB^Tablet^HL70906"})
    bundle = h.run(RDE, PID, ORC_NW, rxo, rxe)
    medications = sorted(e["fullUrl"] for e in h.entries(bundle, "Medication"))
    used = sorted(r["medicationReference"]["reference"] for r in h.resources(bundle, "MedicationRequest"))
    assert medications == used
