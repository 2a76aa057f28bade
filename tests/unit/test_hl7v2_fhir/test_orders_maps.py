"""Order maps beyond the roles and order basics of test_roles_orders.py: clinical trials (CTI),
pharmacy orders and dispenses (RXO, RXE, RXD, ORC-7 timing on the dosage), scheduling (SCH, AIS,
AIP, AIL, AIG), referrals (REF event, RF1), documents (TXA), diet and supply orders (ODS, RQD),
charges (FT1), immunization order groups (VXU OBX) and the DB1 disability extensions (every value
synthetic)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from pyheart.transformers.hl7v2_fhir import convert

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
ORM = "ORM^O01^ORM_O01"
ORC = "ORC|NW|PL1^PLACER|FL1^FILLER"
OBR = "OBR|1|PL1^PLACER|FL1^FILLER|1234-5^Panel^LN"
ADT = "ADT^A01^ADT_A01"
REF = "REF^I12^REF_I12"
_LOCAL = "urn:id:StructureDefinition/"


# ------------------------- Clinical trials, pharmacy, scheduling, referrals, documents, diet, supply, charges


def _reference(h: ModuleType, bundle: dict[str, Any], rtype: str) -> str:
    return str(h.entries(bundle, rtype)[0]["fullUrl"])


def test_cti_research_study(h: ModuleType) -> None:
    """CTI-1 (sponsor study id) identifies a ResearchStudy, CTI-2 is its phase, status active."""
    cti = "CTI|STUDY9^Sponsor^1.2.840.99^ISO|2^Phase two^HL70396"
    study = h.one(h.run(ORM, PID, ORC, OBR, cti), "ResearchStudy")
    assert (study["identifier"][0]["value"], study["phase"]["coding"][0]["code"], study["status"]) == (
        "STUDY9",
        "2",
        "active",
    )


def test_cti_supports_the_order(h: ModuleType) -> None:
    """The order group's ServiceRequest names the CTI's ResearchStudy as supporting information."""
    bundle = h.run(ORM, PID, ORC, OBR, "CTI|STUDY9")
    request = h.one(bundle, "ServiceRequest")
    assert request["supportingInfo"] == [{"reference": _reference(h, bundle, "ResearchStudy")}]


def test_cti_without_study_id(h: ModuleType) -> None:
    """A CTI without a sponsor study id makes no ResearchStudy."""
    assert h.resources(h.run(ORM, PID, ORC, OBR, "CTI||2^Phase two^HL70396"), "ResearchStudy") == []


RDE = "RDE^O11^RDE_O11"
RXO = "RXO|1234^Drug^RXNORM|2||mg^mg^UCUM"
RXE = "RXE||1234^Drug^RXNORM|5||mg^mg^UCUM|||||||||RX77"


def _requests(h: ModuleType, *segments: str) -> dict[str, dict[str, Any]]:
    return {r["intent"]: r for r in h.resources(h.run(RDE, PID, ORC, *segments), "MedicationRequest")}


def test_rxe_alone_is_a_filler_order(h: ModuleType) -> None:
    """An RXE (the pharmacy's encoding of an order) is a filler-order MedicationRequest."""
    assert list(_requests(h, RXE)) == ["filler-order"]


def test_rxe_identified_by_prescription_number(h: ModuleType) -> None:
    """An RXE after an RXO gets an entry of its own, keyed by its prescription number (RXE-15)."""
    bundle = h.run(RDE, PID, ORC, RXO, RXE)
    assert len(h.resources(bundle, "MedicationRequest")) == 2


def test_rxe_timing_and_route_stay_on_rxe(h: ModuleType) -> None:
    """The TQ1 and RXR after the RXE describe the filler-order, those after the RXO the original."""
    requests = _requests(h, RXO, "RXR|PO^Oral^HL70162", RXE, "TQ1|1||Q6H", "RXR|IV^Intravenous^HL70162")
    routes = {k: r["dosageInstruction"][0]["route"]["coding"][0]["code"] for k, r in requests.items()}
    timing = requests["filler-order"]["dosageInstruction"][0]["timing"]["code"]["coding"][0]["code"]
    assert (routes, timing) == ({"original-order": "PO", "filler-order": "IVINJ"}, "Q6H")


def test_rxe_administration_instructions(h: ModuleType) -> None:
    """RXE-7 (give administration instructions) are additionalInstructions of the one dosage."""
    rxe = "RXE||1234^Drug^RXNORM|5||mg^mg^UCUM||^Take with food~^Avoid sunlight"
    dosage = _requests(h, rxe)["filler-order"]["dosageInstruction"]
    assert [len(dosage), [i["text"] for i in dosage[0]["additionalInstruction"]]] == [
        1,
        ["Take with food", "Avoid sunlight"],
    ]


def test_tq1_duration_unit_any_case(h: ModuleType) -> None:
    """TQ1-6 service duration units in upper case (ISO+ 'D') are the UCUM day."""
    request = h.one(h.run(ORM, PID, ORC, "TQ1|1|||||3^D&day&ISO+", OBR), "ServiceRequest")
    bound = request["occurrenceTiming"]["repeat"]["boundsDuration"]
    assert (bound["value"], bound["system"], bound["code"]) == (3, "http://unitsofmeasure.org", "d")


def test_tq1_occurrence_duration_in_years(h: ModuleType) -> None:
    """TQ1-13 occurrence duration in ISO+ 'ann' (annum) is a duration in UCUM years."""
    request = h.one(h.run(ORM, PID, ORC, "TQ1|1||||||||||||1^ann", OBR), "ServiceRequest")
    repeat = request["occurrenceTiming"]["repeat"]
    assert (repeat["duration"], repeat["durationUnit"]) == (1, "a")


SIU = "SIU^S12^SIU_S12"
SCH_ORDER = "SCH|A1^EHR|F1^SCHED" + "|" * 23 + "Booked|PO9^EHR|FO9^LAB"
AIS_1 = "AIS|1|A|70450^CT head^C4|202401021000-0500|||30|min"
AIS_2 = "AIS|2|A|70551^MR brain^C4|202401021100-0500"


def test_sch_without_order_numbers_makes_no_service_request(h: ModuleType) -> None:
    """IG SIU_S12: without SCH-26/27 (order numbers) the SCH and AIS make no ServiceRequest."""
    sch = "SCH|A1^EHR|F1^SCHED"
    assert h.resources(h.run(SIU, sch, PID, "RGS|1", AIS_1), "ServiceRequest") == []


def test_sch_order_numbers_identify_service_request(h: ModuleType) -> None:
    """SCH-26/27 (placer/filler order numbers) identify the SCH's ServiceRequest, intent order."""
    request = h.one(h.run(SIU, SCH_ORDER, PID), "ServiceRequest")
    idents = [(i["type"]["coding"][0]["code"], i["value"]) for i in request["identifier"]]
    assert (idents, request["intent"], request["status"]) == (
        [("PLAC", "PO9"), ("FILL", "FO9")],
        "order",
        "active",
    )


def test_sch_service_request_subject_from_later_pid(h: ModuleType) -> None:
    """The SCH's ServiceRequest, made before the PID, has the patient as its subject."""
    bundle = h.run(SIU, SCH_ORDER, PID)
    assert h.one(bundle, "ServiceRequest")["subject"] == {
        "reference": h.entries(bundle, "Patient")[0]["fullUrl"]
    }


def test_sch_cancelled_order_revoked(h: ModuleType) -> None:
    """SCH-25 Cancelled (table 0278) makes the SCH's ServiceRequest revoked."""
    sch = SCH_ORDER.replace("Booked", "Cancelled")
    assert h.one(h.run(SIU, sch, PID), "ServiceRequest")["status"] == "revoked"


def test_appointment_based_on_sch_service_request(h: ModuleType) -> None:
    """The Appointment is basedOn the ServiceRequest of its SCH order numbers."""
    bundle = h.run(SIU, SCH_ORDER, PID)
    url = h.entries(bundle, "ServiceRequest")[0]["fullUrl"]
    assert [r["reference"] for r in h.one(bundle, "Appointment")["basedOn"]] == [url]


def test_ais_service_request_per_service(h: ModuleType) -> None:
    """Each AIS is a ServiceRequest of its own with the SCH's order numbers and its service code."""
    bundle = h.run(SIU, SCH_ORDER, PID, "RGS|1", AIS_1, AIS_2)
    codes = sorted(r["code"]["coding"][0]["code"] for r in h.resources(bundle, "ServiceRequest"))
    assert codes == ["70450", "70551"]


def test_ais_service_identifier(h: ModuleType) -> None:
    """IG AIS-3: the universal service identifier is also an identifier of the ServiceRequest."""
    request = h.one(h.run(SIU, SCH_ORDER, PID, "RGS|1", AIS_1), "ServiceRequest")
    assert [i["value"] for i in request["identifier"]] == ["PO9", "FO9", "70450"]


def test_ais_service_period(h: ModuleType) -> None:
    """AIS-4 starts the ServiceRequest's occurrencePeriod, AIS-7/8 (duration) ends it."""
    request = h.one(h.run(SIU, SCH_ORDER, PID, "RGS|1", AIS_1), "ServiceRequest")
    assert request["occurrencePeriod"] == {
        "start": "2024-01-02T10:00:00-05:00",
        "end": "2024-01-02T10:30:00-05:00",
    }


def test_aip_filler_status_cancelled(h: ModuleType) -> None:
    """AIP-12 filler status Cancelled (table 0278) makes that participant declined."""
    aip = "AIP|1||1234^Careful^Carl|||202401021015-0500||||||Cancelled"
    appt = h.one(h.run(SIU, "SCH|A1|A2", PID, aip), "Appointment")
    assert appt["participant"][-1]["status"] == "declined"


def test_ail_filler_status_pending(h: ModuleType) -> None:
    """AIL-12 filler status Pending makes the location participant tentative."""
    ail = "AIL|1||Room1^^^Clinic|||202401021015-0500||||||Pending"
    appt = h.one(h.run(SIU, "SCH|A1|A2", PID, ail), "Appointment")
    assert appt["participant"][-1]["status"] == "tentative"


def test_referral_cancel_event_revokes(h: ModuleType) -> None:
    """REF^I14 (cancel patient referral) makes the RF1's ServiceRequest revoked."""
    rf1 = "RF1|P^Pending^HL70283||||||||||R100^EHR"
    request = h.one(h.run("REF^I14^REF_I12", rf1, PID), "ServiceRequest")
    assert request["status"] == "revoked"


def _rxo(**fields: str) -> str:
    values = {1: "1234^Drug^RXNORM", **{int(k[1:]): v for k, v in fields.items()}}
    return "|".join(["RXO", *(values.get(i, "") for i in range(1, max(values) + 1))])


def test_rxo_administration_instructions_patient_instruction(h: ModuleType) -> None:
    """RXO-7 (provider's administration instructions) is the dosage's patientInstruction."""
    request = _requests(h, _rxo(f7="^1 tablet twice daily"))["original-order"]
    assert request["dosageInstruction"][0]["patientInstruction"] == "1 tablet twice daily"


def test_rxo_dispensing_interval(h: ModuleType) -> None:
    """RXO-28 (dispensing interval) is the dispenseRequest's dispenseInterval in days."""
    request = _requests(h, _rxo(f28="5"))["original-order"]
    assert request["dispenseRequest"]["dispenseInterval"] == {
        "value": 5,
        "unit": "days",
        "system": "http://unitsofmeasure.org",
        "code": "d",
    }


def test_rxo_dispensing_pharmacy(h: ModuleType) -> None:
    """RXO-32 (dispensing pharmacy) is the dispenseRequest's performer Organization."""
    bundle = h.run(RDE, PID, ORC, _rxo(f32="Corner Pharmacy"))
    performer = h.one(bundle, "MedicationRequest")["dispenseRequest"]["performer"]
    org = next(
        e["resource"] for e in h.entries(bundle, "Organization") if e["fullUrl"] == performer["reference"]
    )
    assert org["name"] == "Corner Pharmacy"


def test_rxe_initial_dispense_amount(h: ModuleType) -> None:
    """RXE-39 (initial dispense amount) in the RXE-11 units is the dispenseRequest's initialFill."""
    rxe = "RXE||1234^Drug^RXNORM|5||mg^mg^UCUM|||||3|BG^Bag" + "|" * 28 + "39"
    request = _requests(h, rxe)["filler-order"]
    assert request["dispenseRequest"]["initialFill"] == {"quantity": {"value": 39, "unit": "Bag"}}


MDM = "MDM^T02^MDM_T02"


def _txa(**fields: str) -> str:
    values = {1: "1", 2: "DS^Summary", 12: "DOC1^EHR", 17: "AU", **{int(k[1:]): v for k, v in fields.items()}}
    return "|".join(["TXA", *(values.get(i, "") for i in range(1, max(values) + 1))])


def test_txa_edit_time_last_updated(h: ModuleType) -> None:
    """TXA-8 (edit date/time) is the DocumentReference's meta.lastUpdated."""
    doc = h.one(h.run(MDM, PID, _txa(f8="202401021130-0500"), "OBX|1|TX|||Text"), "DocumentReference")
    assert doc["meta"]["lastUpdated"] == "2024-01-02T11:30:00-05:00"


def test_txa_folder_assignment_category(h: ModuleType) -> None:
    """TXA-24 (folder assignment) is a category of the DocumentReference."""
    doc = h.one(h.run(MDM, PID, _txa(f24="RAD^Radiology^L"), "OBX|1|TX|||Text"), "DocumentReference")
    assert doc["category"][0]["coding"][0]["code"] == "RAD"


ORC_NW = "ORC|NW|PL1^PLACER|FL1^FILLER||||||202401021000-0500|||1234^Careful^Carl"


def test_ods_diet_nutrition_order(h: ModuleType) -> None:
    """ODS type D: ODS-3 is the NutritionOrder's oral diet type, ODS-4 its instruction."""
    ods = "ODS|D||LOWNA^Low sodium^L|No added salt"
    order = h.one(h.run(ORM, PID, ORC_NW, ods), "NutritionOrder")
    assert (order["oralDiet"]["type"][0]["coding"][0]["code"], order["oralDiet"]["instruction"]) == (
        "LOWNA",
        "No added salt",
    )


def test_ods_order_elements_from_orc(h: ModuleType) -> None:
    """The NutritionOrder takes the ORC's order numbers, time (dateTime) and intent order."""
    order = h.one(h.run(ORM, PID, ORC_NW, "ODS|D||LOWNA^Low sodium^L"), "NutritionOrder")
    assert ([i["value"] for i in order["identifier"]], order["dateTime"], order["intent"]) == (
        ["PL1", "FL1"],
        "2024-01-02T10:00:00-05:00",
        "order",
    )


def test_ods_group_makes_one_nutrition_order(h: ModuleType) -> None:
    """The ODS segments of one ORC group (diet, supplement, preference) make one NutritionOrder."""
    bundle = h.run(ORM, PID, ORC_NW, "ODS|D||LOWNA^Low sodium^L", "ODS|S||ENS^Ensure^L", "ODS|P||VEG^Vegan^L")
    order = h.one(bundle, "NutritionOrder")
    assert (
        order["supplement"][0]["type"]["coding"][0]["code"],
        order["foodPreferenceModifier"][0]["coding"][0]["code"],
    ) == (
        "ENS",
        "VEG",
    )


def test_ods_replaces_orc_service_request(h: ModuleType) -> None:
    """An ORC group with an ODS makes no ServiceRequest of its own."""
    assert h.resources(h.run(ORM, PID, ORC_NW, "ODS|D||LOWNA^Low sodium^L"), "ServiceRequest") == []


def test_rqd_supply_request(h: ModuleType) -> None:
    """RQD: item codes RQD-2/4, quantity RQD-5/6, date needed RQD-10 make a SupplyRequest."""
    rqd = "RQD|1|23455^Hip implant^L||I45323^Implant^L|2|EA^each^L||||20240105"
    supply = h.one(h.run(ORM, PID, ORC_NW, rqd), "SupplyRequest")
    codes = [c["code"] for c in supply["itemCodeableConcept"]["coding"]]
    assert (codes, supply["quantity"]["value"], supply["occurrenceDateTime"]) == (
        ["23455", "I45323"],
        2,
        "2024-01-05",
    )


def test_rqd_cancelled_order(h: ModuleType) -> None:
    """ORC-5 CA (order cancelled) makes the SupplyRequest cancelled."""
    orc = "ORC|NW|PL1^PLACER|FL1^FILLER||CA"
    supply = h.one(h.run(ORM, PID, orc, "RQD|1|23455^Hip implant^L|||1"), "SupplyRequest")
    assert supply["status"] == "cancelled"


def test_rqd_without_quantity_makes_no_supply_request(h: ModuleType) -> None:
    """An RQD without a quantity (a required element) makes no SupplyRequest."""
    assert h.resources(h.run(ORM, PID, ORC_NW, "RQD|1|23455^Hip implant^L"), "SupplyRequest") == []


def test_nutrition_and_supply_bundles_valid(h: ModuleType) -> None:
    """Bundles with a NutritionOrder and a SupplyRequest pass fhir.resources R4B validation."""
    from fhir.resources.R4B.bundle import Bundle

    diet = h.run(ORM, PID, ORC_NW, "ODS|P||VEG^Vegan^L|No meat", "NTE|1||Note")
    supply = h.run(ORM, PID, ORC_NW, "RQD|1|23455^Hip implant^L|||1|EA^each^L|||ORSUP^Supply^L|20240105")
    assert [Bundle.model_validate(b).type for b in (diet, supply)] == ["transaction", "transaction"]


def test_rxd_dosage_form_medication(h: ModuleType) -> None:
    """RXD-6 (actual dosage form) puts the dispensed drug in a Medication with that form."""
    rxd = "RXD|1|1234^Drug^RXNORM|20240101|10|TAB^Tablet^L|TAB^Tablet^L"
    bundle = h.run("RDS^O13^RDS_O13", PID, ORC, rxd)
    dispense = h.one(bundle, "MedicationDispense")
    medication = next(
        e["resource"]
        for e in h.entries(bundle, "Medication")
        if e["fullUrl"] == dispense["medicationReference"]["reference"]
    )
    assert (medication["code"]["coding"][0]["code"], medication["form"]["coding"][0]["code"]) == (
        "1234",
        "TAB",
    )


def test_rxd_supplementary_code(h: ModuleType) -> None:
    """RXD-25 (supplementary code) is another coding of the dispensed Medication's code."""
    rxd = "RXD|1|1234^Drug^RXNORM|20240101|10" + "|" * 21 + "418739006^Drug 150 mg tablet^SCT"
    bundle = h.run("RDS^O13^RDS_O13", PID, ORC, rxd)
    medication = h.one(bundle, "Medication")
    assert [c["code"] for c in medication["code"]["coding"]] == ["1234", "418739006"]


def test_aig_equipment_device(h: ModuleType) -> None:
    """AIG-3 of a resource type that is no location (equipment) is a Device actor named by CWE.2."""
    aig = "AIG|1||5001^Video Scope^L^5002|101^Equipment^L"
    bundle = h.run(SIU, "SCH|A1|A2", PID, aig)
    part = next(p for p in h.one(bundle, "Appointment")["participant"] if "type" in p)
    device = next(
        e["resource"] for e in h.entries(bundle, "Device") if e["fullUrl"] == part["actor"]["reference"]
    )
    assert ([i["value"] for i in device["identifier"]], device["deviceName"][0]["name"]) == (
        ["5001", "5002"],
        "Video Scope",
    )


def test_orc4_eip_placer_and_filler_groups(h: ModuleType) -> None:
    """ORC-4 sent as an EIP: EIP.1 is the requisition (PGN), EIP.2 a filler group identifier."""
    orc = "ORC|NW|PL1^PLACER|FL1^FILLER|PG1&EHR^FG1&LAB"
    request = h.one(h.run(ORM, PID, orc, OBR), "ServiceRequest")
    fgn = [i["value"] for i in request["identifier"] if i["type"]["coding"][0]["code"] == "FGN"]
    assert (request["requisition"]["value"], fgn) == ("PG1", ["FG1"])


def test_medication_request_ordering_facility(h: ModuleType) -> None:
    """ORC-21/22 (ordering facility, address) make the MedicationRequest's requester a
    PractitionerRole in that Organization, as for a ServiceRequest."""
    orc = "ORC|NW|PL1^PLACER|FL1^FILLER|||||||||1234^Careful^Carl|||||||||Lake Clinic|1 Main St^^Lake^IL"
    bundle = h.run(RDE, PID, orc, RXE)
    role_url = h.one(bundle, "MedicationRequest")["requester"]["reference"]
    role = next(e["resource"] for e in h.entries(bundle, "PractitionerRole") if e["fullUrl"] == role_url)
    org = next(
        e["resource"]
        for e in h.entries(bundle, "Organization")
        if e["fullUrl"] == role["organization"]["reference"]
    )
    assert (org["name"], org["address"][0]["city"]) == ("Lake Clinic", "Lake")


def test_rxo_dispensing_pharmacy_address_and_phone(h: ModuleType) -> None:
    """RXO-33 (dispensing pharmacy address) and RXO-36 (its phone) complete the pharmacy."""
    bundle = h.run(
        RDE, PID, ORC, _rxo(f32="Corner Pharmacy", f33="2 Oak St^^Town^WI", f36="^WPN^PH^^^608^5550100")
    )
    performer = h.one(bundle, "MedicationRequest")["dispenseRequest"]["performer"]
    org = next(
        e["resource"] for e in h.entries(bundle, "Organization") if e["fullUrl"] == performer["reference"]
    )
    assert (org["address"][0]["city"], len(org["telecom"])) == ("Town", 1)


DFT = "DFT^P03^DFT_P03"


def _ft1(**fields: str) -> str:
    values = {1: "1", 4: "20240102", 6: "CG", 7: "99213^Office visit^C4", 10: "1"}
    values.update({int(k[1:]): v for k, v in fields.items()})
    return "|".join(["FT1", *(values.get(i, "") for i in range(1, max(values) + 1))])


def _charge_org(h: ModuleType, bundle: dict[str, Any], key: str) -> dict[str, Any]:
    ref = h.one(bundle, "ChargeItem")[key]["reference"]
    return dict(next(e["resource"] for e in h.entries(bundle, "Organization") if e["fullUrl"] == ref))


def test_ft1_department_cost_center(h: ModuleType) -> None:
    """FT1-13 (department code) is the ChargeItem's costCenter Organization."""
    bundle = h.run(DFT, PID, _ft1(f13="RAD-1^Radiology^L"))
    assert _charge_org(h, bundle, "costCenter")["name"] == "Radiology"


def test_ft1_performing_and_ordering_facility(h: ModuleType) -> None:
    """FT1-32/33 (performing/ordering facility) are the performing/requesting Organizations."""
    bundle = h.run(DFT, PID, _ft1(f32="Lab Inc", f33="Clinic Inc"))
    names = (
        _charge_org(h, bundle, "performingOrganization")["name"],
        _charge_org(h, bundle, "requestingOrganization")["name"],
    )
    assert names == ("Lab Inc", "Clinic Inc")


def test_ft1_entered_by(h: ModuleType) -> None:
    """FT1-24 (entered by code) is the ChargeItem's enterer; FT1-21 (ordered by) is not."""
    bundle = h.run(DFT, PID, _ft1(f21="111^Orderer^Olga", f24="222^Clerk^Carl"))
    ref = h.one(bundle, "ChargeItem")["enterer"]["reference"]
    clerk = next(e["resource"] for e in h.entries(bundle, "Practitioner") if e["fullUrl"] == ref)
    assert clerk["identifier"][0]["value"] == "222"


def test_ft1_item_product_device(h: ModuleType) -> None:
    """FT1-34/35 (item and model number) are the ChargeItem's product, a Device."""
    bundle = h.run(DFT, PID, _ft1(f34="Item-1^^L", f35="Model-9"))
    device = next(r for r in h.resources(bundle, "Device") if r.get("modelNumber"))
    url = next(e["fullUrl"] for e in h.entries(bundle, "Device") if e["resource"] is device)
    assert (
        h.one(bundle, "ChargeItem")["productReference"]["reference"],
        device["identifier"][0]["value"],
    ) == (url, "Item-1")


def _actor(h: ModuleType, bundle: dict[str, Any], rtype: str, ref: dict[str, str]) -> dict[str, Any]:
    return dict(next(e["resource"] for e in h.entries(bundle, rtype) if e["fullUrl"] == ref["reference"]))


def test_sch_placer_contact_phone_and_address(h: ModuleType) -> None:
    """SCH-13/14 (placer contact phone, address) complete the SCH-12 placer contact Practitioner."""
    sch = "SCH|A1|A2||||||||||123^Placer^Pat|^WPN^PH^^^608^5550100|1 Main St^^Town^WI"
    bundle = h.run(SIU, sch, PID)
    person = next(r for r in h.resources(bundle, "Practitioner") if r["identifier"][0]["value"] == "123")
    assert (person["telecom"][0]["value"], person["address"][0]["city"]) == ("608 5550100", "Town")


def test_ail_location_type(h: ModuleType) -> None:
    """AIL-4 (location resource type) is the type of the AIL-3 Location."""
    ail = "AIL|1||Room1^^^Clinic|C^Clinic^HL70305"
    bundle = h.run(SIU, "SCH|A1|A2", PID, ail)
    location = _actor(h, bundle, "Location", h.one(bundle, "Appointment")["participant"][-1]["actor"])
    assert location["type"][0]["coding"][0]["code"] == "C"


def test_ordering_provider_role_code(h: ModuleType) -> None:
    """The ORC-12 requester's PractitionerRole in the ORC-21 facility has the code OP (0443)."""
    orc = "ORC|NW|PL1^PLACER|FL1^FILLER|||||||||1234^Careful^Carl|||||||||Lake Clinic"
    bundle = h.run(ORM, PID, orc, OBR)
    role = _actor(h, bundle, "PractitionerRole", h.one(bundle, "ServiceRequest")["requester"])
    assert role["code"][0]["coding"][0]["code"] == "OP"


def test_orc9_authored_on_only_for_new_orders(h: ModuleType) -> None:
    """IG ORC-9: authoredOn for a new order (ORC-1 NW), not for a status change (SC)."""
    new = h.one(h.run(ORM, PID, ORC_NW, OBR), "ServiceRequest")
    changed = h.one(h.run(ORM, PID, ORC_NW.replace("ORC|NW", "ORC|SC"), OBR), "ServiceRequest")
    assert (new.get("authoredOn"), changed.get("authoredOn")) == ("2024-01-02T10:00:00-05:00", None)


def test_ais_notes_are_appointment_comments(h: ModuleType) -> None:
    """IG SIU_S12: an NTE after an AIS is an appointment comment, not a note of the DG1's Condition."""
    dg1 = "DG1|1||K63.3^Ulcer^I10"
    bundle = h.run(SIU, "SCH|A1|A2", PID, dg1, "RGS|1", AIS_1, "NTE|1||Fast before")
    assert (h.one(bundle, "Appointment")["comment"], "note" in h.one(bundle, "Condition")) == (
        "Fast before",
        False,
    )


def test_aip_notes_not_on_earlier_resource(h: ModuleType) -> None:
    """An NTE after an AIP (no IG target) is not a note of the resource made before it."""
    dg1 = "DG1|1||K63.3^Ulcer^I10"
    bundle = h.run(SIU, "SCH|A1|A2", PID, dg1, "RGS|1", "AIP|1||1234^Careful^Carl", "NTE|1||Ready")
    assert "note" not in h.one(bundle, "Condition")


def test_diet_order_repeated_keeps_every_ods(h: ModuleType) -> None:
    """An ORC/ODS group repeated with the same order number is one NutritionOrder holding every
    diet of both groups."""
    orc = "ORC|NW|DIET1^HOSP|||||||20240101"
    bundle = h.run(
        "OMD^O03^OMD_O03",
        PID,
        "PV1|1|I",
        orc,
        "ODS|D||DIAB^Diabetic diet^L",
        orc,
        "ODS|D||LOWNA^Low sodium diet^L",
        "ODS|D||GLUT^Gluten free^L",
    )
    types = [t["coding"][0]["code"] for t in h.one(bundle, "NutritionOrder")["oralDiet"]["type"]]
    assert sorted(types) == ["DIAB", "GLUT", "LOWNA"]


@pytest.mark.parametrize(
    "resource", ["AIP|1||1234^Careful^Carl", "AIL|1||Room1^^^Clinic", "AIG|1||5001^Scope^L|101^Equipment"]
)
def test_resource_notes_kept_outside_the_comment(h: ModuleType, resource: str) -> None:
    """NTEs after AIG/AIL/AIP (no IG target) are not lost: each stays whole as an R5
    Appointment.note, while Appointment.comment keeps only the SCH and AIS notes (IG)."""
    bundle = h.run(
        SIU,
        "SCH|A1|A2",
        "NTE|1||Booked",
        PID,
        "RGS|1",
        AIS_1,
        "NTE|1||Fast",
        resource,
        "NTE|1||Ready",
        AIS_1,
        "NTE|1||Again",
    )
    appt = h.one(bundle, "Appointment")
    notes = [e["valueAnnotation"]["text"] for e in appt["extension"] if e["url"].endswith("Appointment.note")]
    assert (appt["comment"], notes) == ("Booked\nFast\nAgain", ["Booked", "Fast", "Ready", "Again"])


# ------------------------------------------ DB1 disability, RF1 description, ORC-7 on the dosage, VXU funding


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


RXO_CODE_ONLY = "RXO|1234^Drug^RXNORM"


def _medication_request(h: ModuleType, orc7: str) -> dict[str, Any]:
    orc = "ORC|NW|PL1^PLACER|||||" + orc7
    return dict(h.one(h.run(ORM, PID, orc, RXO_CODE_ONLY), "MedicationRequest"))


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


# ------------------------------------------------------------------ OBR-15 specimen source, MSH-11


def test_obr15_specimen_source_parts(h: ModuleType) -> None:
    """IG OBR-15 (SPS[Specimen-Source]): SPS.1 the type, SPS.2 the additive, SPS.3 a note,
    SPS.4 the collection body site; the parts never mix into one coding."""
    obr = h.seg(
        "OBR",
        {
            1: "1",
            2: "P1^EHR",
            4: "1234-5^Panel^LN",
            7: "20240101",
            15: "BLD&Blood&HL70070^HEP&Heparin&HL70371^Fasting^LA&Left Arm&HL70163",
        },
    )
    spec = h.one(h.run("OML^O21^OML_O21", PID, "ORC|NW|P1^EHR", obr), "Specimen")
    assert spec["type"]["coding"][0]["code"] == "BLD"
    assert [c["code"] for c in spec["type"]["coding"]] == ["BLD"]
    assert spec["container"][0]["additiveCodeableConcept"]["coding"][0]["code"] == "HEP"
    assert spec["note"] == [{"text": "Fasting"}]
    assert spec["collection"]["bodySite"]["coding"][0]["code"] == "LA"
    assert "collectedDateTime" in spec["collection"]


def test_msh11_processing_mode_tag(h: ModuleType) -> None:
    """IG MSH-11 (PT[Meta]): the processing id and the processing mode (PT.2) are both tags."""
    msg = h.er7("ADT^A01^ADT_A01", PID).replace("|P|2.5.1", "|P^T|2.5.1", 1)
    header = h.one(convert(msg), "MessageHeader")
    assert [t["code"] for t in header["meta"]["tag"]] == ["P", "T"]
