"""IG segment maps for roles (ROL/PRT/OBX performers), order details (TQ1, ORC, OBR specimen)
and the smaller PID/PD1/PV1/DG1/NK1/IN1/MSH field rows."""

from __future__ import annotations

from types import ModuleType

from pyheart.transformers.hl7v2_fhir import convert

PID = "PID|1||MRN1^^^HOSP^MR||Doe^Jane||19800203|F"
PV1 = "PV1|1|I|ICU^12^B^GHH"
ORU = "ORU^R01^ORU_R01"
ADT = "ADT^A01^ADT_A01"


def test_rol_practitioner_role_participant(h: ModuleType) -> None:
    """ROL after PV1 -> a PractitionerRole (ROL-3 through the IG ProviderRole map) as participant."""
    rol = h.seg("ROL", {1: "R1", 2: "AD", 3: "AT^Attending^HL70443", 4: "77^Role^Ron"})
    bundle = h.run(ADT, PID, PV1, rol)
    role = h.one(bundle, "PractitionerRole")
    assert role["code"][0]["coding"][0]["code"] == "ATND"
    participant = h.one(bundle, "Encounter")["participant"][-1]
    assert participant["individual"]["reference"] == h.entries(bundle, "PractitionerRole")[0]["fullUrl"]


def test_rol_role_id_independent_of_bundle_type(h: ModuleType) -> None:
    """A PractitionerRole's id is the same in transaction and batch bundles."""
    rol = h.seg("ROL", {2: "AD", 3: "AT^Attending^HL70443", 4: "77^Role^Ron"})
    ids = {
        h.entries(h.run(ADT, PID, PV1, rol, bundle_type=kind), "PractitionerRole")[0]["fullUrl"]
        for kind in ("transaction", "batch")
    }
    assert len(ids) == 1


def test_obx_responsible_observer_role(h: ModuleType) -> None:
    """OBX-16 -> performer PractitionerRole coded responsibleObserver (IG assignment)."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F", 16: "9^Obs^Olga"})
    role = h.one(h.run(ORU, PID, "OBR|1|P1|F1", obx), "PractitionerRole")
    assert role["code"][0]["coding"][0]["code"] == "responsibleObserver"


def test_obx_medical_director_of_organization(h: ModuleType) -> None:
    """OBX-25 -> PractitionerRole MDIR of the OBX-23 organization, whose address is OBX-24."""
    obx = h.seg(
        "OBX",
        {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F", 23: "Lab Inc", 24: "1 Lab Rd^^Town", 25: "8^Dir^Dan"},
    )
    bundle = h.run(ORU, PID, "OBR|1|P1|F1", obx)
    role = h.one(bundle, "PractitionerRole")
    org = next(o for o in h.resources(bundle, "Organization") if o.get("name") == "Lab Inc")
    assert role["code"][0]["coding"][0]["code"] == "MDIR"
    assert org["address"][0]["line"] == ["1 Lab Rd"]


def test_obx_equipment_device(h: ModuleType) -> None:
    """OBX-18 -> Observation.device, a Device with the EI as identifier."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F", 18: "EQ1^LAB"})
    bundle = h.run(ORU, PID, "OBR|1|P1|F1", obx)
    assert h.one(bundle, "Device")["identifier"][0]["value"] == "EQ1"
    assert "device" in h.one(bundle, "Observation")


def test_obx_observation_type_category(h: ModuleType) -> None:
    """OBX-29 -> Observation.category coded in table 0936."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F", 29: "RSLT"})
    category = h.one(h.run(ORU, PID, "OBR|1|P1|F1", obx), "Observation")["category"][0]["coding"][0]
    assert category["system"].endswith("v2-0936")


def test_prt_observation_location(h: ModuleType) -> None:
    """PRT-9 after OBX without a person -> the Observation's event-location extension."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F"})
    prt = h.seg("PRT", {2: "AD", 4: "PO^Performing Org^HL70912", 9: "Bench 4^^^Main Lab"})
    observation = h.one(h.run(ORU, PID, "OBR|1|P1|F1", obx, prt), "Observation")
    assert observation["extension"][0]["url"] == "http://hl7.org/fhir/StructureDefinition/event-location"


def test_prt_observation_location_address(h: ModuleType) -> None:
    """IG PRT[Observation-Location] PRT-14: the address of the place the observation was made."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F"})
    prt = h.seg(
        "PRT", {2: "AD", 4: "PO^Performing Org^HL70912", 9: "Bench 4^^^Main Lab", 14: "1 Lab Way^^Town"}
    )
    bundle = h.run(ORU, PID, "OBR|1|P1|F1", obx, prt)
    addresses = [loc["address"] for loc in h.resources(bundle, "Location") if "address" in loc]
    assert addresses == [{"line": ["1 Lab Way"], "city": "Town"}]


def test_prt_action_delete_links_no_participant(h: ModuleType) -> None:
    """IG PRT-2 'D' inactivates the participation: the PRT adds no performer."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F"})
    person = "1234^Careful^Carl"
    kept = h.run(ORU, PID, "OBR|1|P1|F1", obx, h.seg("PRT", {2: "UC", 4: "RO", 5: person}))
    dropped = h.run(ORU, PID, "OBR|1|P1|F1", obx, h.seg("PRT", {2: "D", 4: "RO", 5: person}))
    assert ("performer" in h.one(kept, "Observation"), "performer" in h.one(dropped, "Observation")) == (
        True,
        False,
    )


def test_prt_preferred_method_of_contact(h: ModuleType) -> None:
    """IG PRT-23 (table 0185, 'E' e-mail): the PRT-15 e-mail address is marked preferred."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F"})
    telecom = "^WPN^PH^^^555^1234567~^NET^Internet^carl@example.org"
    prt = h.seg("PRT", {2: "UC", 4: "RO", 5: "1234^Careful^Carl", 15: telecom, 23: "E^E-mail^HL70185"})
    (role,) = h.resources(h.run(ORU, PID, "OBR|1|P1|F1", obx, prt), "PractitionerRole")
    email = next(t for t in role["telecom"] if t["system"] == "email")
    assert email["extension"] == [
        {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-preferred", "valueBoolean": True}
    ]


def test_prt_preferred_cell_phone_sent_as_home_use(h: ModuleType) -> None:
    """PRT-23 'C' names the cellular phone by its equipment (XTN.3 CP) whatever its use code."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F"})
    telecom = "^PRN^PH^^^555^1111111~^PRN^CP^^1^555^9999999"
    prt = h.seg("PRT", {2: "UC", 4: "RO", 5: "1234^Careful^Carl", 15: telecom, 23: "C"})
    (role,) = h.resources(h.run(ORU, PID, "OBR|1|P1|F1", obx, prt), "PractitionerRole")
    preferred = [
        t["value"]
        for t in role["telecom"]
        if any(e["url"].endswith("iso21090-preferred") for e in t["extension"])
    ]
    assert preferred == ["+1 555 9999999"]


def test_rol_organization_unit_type(h: ModuleType) -> None:
    """IG ROL-10 (organization unit type): the type of the ROL-14 Organization."""
    rol = h.seg(
        "ROL",
        {
            1: "R1",
            2: "AD",
            3: "FHCP^Family Health Care Professional",
            4: "77^Kay^Ann",
            10: "1^Hospital^HL70406",
            14: "Good Clinic",
        },
    )
    org = next(o for o in h.resources(h.run(ADT, PID, rol), "Organization") if o.get("name") == "Good Clinic")
    assert org["type"][0]["coding"][0]["code"] == "1"


def test_pd1_place_of_worship(h: ModuleType) -> None:
    """PD1-14 -> the patient-congregation extension."""
    pat = h.one(h.run(ADT, PID, h.seg("PD1", {14: "St Mary Church"})), "Patient")
    ext = next(e for e in pat["extension"] if e["url"].endswith("patient-congregation"))
    assert ext["valueString"] == "St Mary Church"


def test_dg1_diagnosis_use(h: ModuleType) -> None:
    """DG1-6 'A' -> Encounter.diagnosis.use AD (IG DiagnosisType map)."""
    dg1 = h.seg("DG1", {1: "1", 3: "R07.9^Chest pain^I10", 6: "A"})
    diagnosis = h.one(h.run(ADT, PID, PV1, dg1), "Encounter")["diagnosis"][0]
    assert diagnosis["use"]["coding"][0]["code"] == "AD"


def test_dg1_delete_entered_in_error(h: ModuleType) -> None:
    """DG1-21 'D' -> Condition.verificationStatus entered-in-error."""
    dg1 = h.seg("DG1", {1: "1", 3: "R07.9^Chest pain^I10", 21: "D"})
    condition = h.one(h.run(ADT, PID, PV1, dg1), "Condition")
    assert condition["verificationStatus"]["coding"][0]["code"] == "entered-in-error"


def test_nk1_organization_contact_person(h: ModuleType) -> None:
    """NK1-30 -> the contact person of the NK1-13 organization."""
    nk1 = h.seg("NK1", {1: "1", 13: "Acme Corp", 30: "Boss^Betty"})
    bundle = h.run(ADT, PID, nk1)
    org = next(o for o in h.resources(bundle, "Organization") if o.get("name") == "Acme Corp")
    assert org["contact"][0]["name"]["family"] == "Boss"


def test_orc_ordering_facility_requester_role(h: ModuleType) -> None:
    """ORC-12 with ORC-21 -> requester PractitionerRole of the ordering facility."""
    orc = h.seg("ORC", {1: "NW", 2: "P1", 12: "5^Order^Olly", 21: "Clinic One"})
    bundle = h.run("ORM^O01^ORM_O01", PID, orc, "OBR|1|P1||X^Y^LN")
    request = h.one(bundle, "ServiceRequest")
    assert request["requester"]["reference"] == h.entries(bundle, "PractitionerRole")[0]["fullUrl"]


def test_orc_provenance_author(h: ModuleType) -> None:
    """ORC-9/ORC-12 -> a Provenance of the order: activity CREATE (ORC-1 NW), ORC-12 as author."""
    orc = h.seg("ORC", {1: "NW", 2: "P1", 9: "20240102101500-0500", 12: "5^Order^Olly"})
    bundle = h.run("ORM^O01^ORM_O01", PID, orc, "OBR|1|P1||X^Y^LN")
    prov = next(
        p
        for p in h.resources(bundle, "Provenance")
        if p.get("activity", {}).get("coding", [{}])[0].get("code") == "CREATE"
    )
    assert prov["agent"][0]["type"]["coding"][0]["code"] == "author"


def test_tq1_before_obr_timing(h: ModuleType) -> None:
    """TQ1 between ORC and OBR -> the ServiceRequest's occurrenceTiming bounds."""
    tq1 = h.seg("TQ1", {1: "1", 7: "20240105080000-0500", 8: "20240106080000-0500"})
    bundle = h.run("ORM^O01^ORM_O01", PID, "ORC|NW|P1", tq1, "OBR|1|P1||X^Y^LN")
    bounds = h.one(bundle, "ServiceRequest")["occurrenceTiming"]["repeat"]["boundsPeriod"]
    assert bounds == {"start": "2024-01-05T08:00:00-05:00", "end": "2024-01-06T08:00:00-05:00"}


def test_tq1_medication_dosage_timing(h: ModuleType) -> None:
    """TQ1 after RXE -> the MedicationRequest dosage's timing code (table 0335) and text."""
    rxe = h.seg("RXE", {2: "1234^Drug^RXNORM"})
    tq1 = h.seg("TQ1", {1: "1", 3: "BID", 11: "Take with food"})
    dosage = h.one(h.run("RDE^O11^RDE_O11", PID, "ORC|NW|P1", rxe, tq1), "MedicationRequest")[
        "dosageInstruction"
    ][0]
    assert (dosage["timing"]["code"]["coding"][0]["code"], dosage["text"]) == ("BID", "Take with food")


def test_tq1_and_tq_repeat_patterns_share_the_ig_map(h: ModuleType) -> None:
    """TQ1-3 RPT.1 and ORC-7 TQ.2 RI.1 both go through the IG's RepeatPattern map (both datatype
    maps name it): the same code gives the same Timing.code; an unmapped one stays in 0335."""
    codes = []
    for segments in (("ORC|NW|P1", h.seg("TQ1", {1: "1", 3: "TID"})), ("ORC|NW|P1|||||^TID",)):
        bundle = h.run("ORM^O01^ORM_O01", PID, *segments, "OBR|1|P1||X^Y^LN")
        codes.append(h.one(bundle, "ServiceRequest")["occurrenceTiming"]["code"]["coding"][0])
    assert codes[0] == codes[1]
    assert codes[0]["system"] == "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
    bundle = h.run("ORM^O01^ORM_O01", PID, "ORC|NW|P1", h.seg("TQ1", {1: "1", 3: "XYZ"}), "OBR|1|P1||X^Y^LN")
    coding = h.one(bundle, "ServiceRequest")["occurrenceTiming"]["code"]["coding"][0]
    assert coding == {"system": "http://terminology.hl7.org/CodeSystem/v2-0335", "code": "XYZ"}


def test_tq1_offset_from_repeat_pattern(h: ModuleType) -> None:
    """TQ1-3 RPT.9/RPT.10 (1 hour) -> repeat.offset in minutes."""
    tq1 = h.seg("TQ1", {1: "1", 3: "Once^^^^^^^AC^1^h"})
    bundle = h.run("ORM^O01^ORM_O01", PID, "ORC|NW|P1", tq1, "OBR|1|P1||X^Y^LN")
    assert h.one(bundle, "ServiceRequest")["occurrenceTiming"]["repeat"]["offset"] == 60


def test_obr_specimen(h: ModuleType) -> None:
    """OBR-7 and OBR-15 -> a Specimen (collected time, type) that the DiagnosticReport names."""
    obr = h.seg("OBR", {1: "1", 2: "P1", 3: "F1", 4: "X^Y^LN", 7: "20240102080000-0500", 15: "BLD^Blood"})
    bundle = h.run(ORU, PID, obr)
    spec = h.one(bundle, "Specimen")
    assert spec["collection"]["collectedDateTime"] == "2024-01-02T08:00:00-05:00"
    assert (
        h.one(bundle, "DiagnosticReport")["specimen"][0]["reference"]
        == h.entries(bundle, "Specimen")[0]["fullUrl"]
    )


def test_pl_universal_id_identifier(h: ModuleType) -> None:
    """A PL component with an HD universal id -> a second Location identifier (urn:oid)."""
    pv1 = "PV1|1|I|ICU&1.2.3&ISO^12^B^GHH"
    bundle = h.run(ADT, PID, pv1)
    values = [i["value"] for loc in h.resources(bundle, "Location") for i in loc["identifier"]]
    assert "urn:oid:1.2.3" in values


def test_msh_receiving_responsible_organization(h: ModuleType) -> None:
    """MSH-23 -> MessageHeader.destination.receiver instead of MSH-6."""
    msg = h.er7(ADT, PID).replace("|2.5.1", "|2.5.1" + "|" * 11 + "Receiver Org", 1)
    bundle = convert(msg)
    receiver = h.one(bundle, "MessageHeader")["destination"][0]["receiver"]["reference"]
    org = next(e for e in h.entries(bundle, "Organization") if e["fullUrl"] == receiver)
    assert org["resource"]["name"] == "Receiver Org"


def test_pid_county_district(h: ModuleType) -> None:
    """PID-12 -> the district of the patient's single address."""
    pid = h.seg("PID", {1: "1", 3: "M1^^^H", 5: "Doe^J", 11: "1 Elm St^^Town", 12: "C042"})
    assert h.one(h.run(ADT, pid), "Patient")["address"][0]["district"] == "C042"


def test_in1_insured_id_subscriber(h: ModuleType) -> None:
    """IN1-49 -> Coverage.subscriberId."""
    in1 = h.seg("IN1", {1: "1", 2: "PLAN1", 4: "Payer Co", 17: "SEL", 36: "POL9", 49: "SUB7"})
    assert h.one(h.run(ADT, PID, in1), "Coverage")["subscriberId"] == "SUB7"


def test_pv1_visit_number_type(h: ModuleType) -> None:
    """PV1-19 is typed VN (IG assignment) even when CX.5 says otherwise."""
    pv1 = h.seg("PV1", {1: "1", 2: "I", 19: "V1^^^HOSP^MR"})
    ident = h.one(h.run(ADT, PID, pv1), "Encounter")["identifier"][0]
    assert ident["type"]["coding"][0]["code"] == "VN"


def test_pr1_status_unknown(h: ModuleType) -> None:
    """PR1 -> Procedure.status 'unknown' (the IG's value when the message context is unclear)."""
    pr1 = h.seg("PR1", {1: "1", 3: "76164006^Biopsy^SCT", 5: "20240102"})
    assert h.one(h.run(ADT, PID, PV1, pr1), "Procedure")["status"] == "unknown"


def test_pr1_part_of(h: ModuleType) -> None:
    """PR1-25 -> Procedure.partOf, the parent Procedure found by its identifier."""
    pr1 = h.seg("PR1", {1: "1", 3: "76164006^Biopsy^SCT", 19: "P2^LAB", 25: "P1^LAB"})
    bundle = h.run(ADT, PID, PV1, pr1)
    child = next(p for p in h.resources(bundle, "Procedure") if "partOf" in p)
    parent = next(
        e for e in h.entries(bundle, "Procedure") if e["fullUrl"] == child["partOf"][0]["reference"]
    )
    assert parent["resource"]["identifier"][0]["value"] == "P1"


def test_dg1_asserted_date_extension(h: ModuleType) -> None:
    """DG1-19 -> Condition.recordedDate and the condition-assertedDate extension."""
    dg1 = h.seg("DG1", {1: "1", 3: "R07.9^Chest pain^I10", 19: "20240102"})
    condition = h.one(h.run(ADT, PID, PV1, dg1), "Condition")
    assert condition["extension"][0] == {
        "url": "http://hl7.org/fhir/StructureDefinition/condition-assertedDate",
        "valueDateTime": "2024-01-02",
    }


def test_dg1_episode_of_care_diagnosis(h: ModuleType) -> None:
    """DG1 after a PV1 with PV1-54 -> EpisodeOfCare.diagnosis with DG1-6 as role."""
    pv1 = h.seg("PV1", {1: "1", 2: "I", 54: "EOC1^^^HOSP"})
    dg1 = h.seg("DG1", {1: "1", 3: "R07.9^Chest pain^I10", 6: "A"})
    diagnosis = h.one(h.run(ADT, PID, pv1, dg1), "EpisodeOfCare")["diagnosis"][0]
    assert diagnosis["role"]["coding"][0]["code"] == "AD"


def test_tq1_appointment_times(h: ModuleType) -> None:
    """TQ1 after SCH -> Appointment.start and end (v2.6+ timing)."""
    sch = h.seg("SCH", {1: "A1", 2: "A2"})
    tq1 = h.seg("TQ1", {7: "20240105080000-0500", 8: "20240105083000-0500"})
    appt = h.one(h.run("SIU^S12^SIU_S12", sch, tq1, PID), "Appointment")
    assert (appt["start"], appt["end"]) == ("2024-01-05T08:00:00-05:00", "2024-01-05T08:30:00-05:00")


def test_sch_based_on_orders(h: ModuleType) -> None:
    """SCH-26 -> Appointment.basedOn, the placer order by identifier."""
    sch = h.seg("SCH", {1: "A1", 2: "A2", 26: "ORD9^EHR"})
    appt = h.one(h.run("SIU^S12^SIU_S12", sch, PID), "Appointment")
    assert appt["basedOn"][0]["identifier"]["value"] == "ORD9"


def test_aip_participant_type(h: ModuleType) -> None:
    """AIP-4 -> the type of the AIP-3 participant."""
    aip = h.seg("AIP", {1: "1", 3: "12^Doc^Dora", 4: "010^Gastroenterologist^L"})
    appt = h.one(h.run("SIU^S12^SIU_S12", "SCH|A1|A2", PID, aip), "Appointment")
    typed = [p for p in appt["participant"] if "type" in p]
    assert typed[0]["type"][0]["coding"][0]["code"] == "010"


def test_spm_parent_specimen(h: ModuleType) -> None:
    """SPM-3 -> Specimen.parent, the parent Specimen by its identifiers."""
    spm = h.seg("SPM", {1: "1", 2: "S2^LAB", 3: "S1^LAB", 4: "BLD^Blood"})
    bundle = h.run(ORU, PID, "OBR|1|P1|F1|X^Y^LN", spm)
    child = next(s for s in h.resources(bundle, "Specimen") if "parent" in s)
    assert child["parent"][0]["reference"] != h.entries(bundle, "DiagnosticReport")[0]["fullUrl"]
    assert len(h.resources(bundle, "Specimen")) == 2


def test_obr_specimen_defers_to_spm(h: ModuleType) -> None:
    """An order group with SPM gets its Specimen from SPM, not from OBR-7."""
    obr = h.seg("OBR", {1: "1", 2: "P1", 3: "F1", 4: "X^Y^LN", 7: "20240102080000-0500"})
    spm = h.seg("SPM", {1: "1", 2: "S2^LAB", 4: "BLD^Blood"})
    assert len(h.resources(h.run(ORU, PID, obr, spm), "Specimen")) == 1


def test_rol_practitioner_address(h: ModuleType) -> None:
    """ROL-11 -> the role person's Practitioner.address."""
    rol = h.seg(
        "ROL", {2: "AD", 3: "PP^Primary Care Provider^HL70443", 4: "77^Role^Ron", 11: "9 Oak Rd^^Town"}
    )
    practitioner = h.one(h.run(ADT, PID, rol), "Practitioner")
    assert practitioner["address"][0]["city"] == "Town"


def test_ei_guid_system(h: ModuleType) -> None:
    """An EI with a GUID universal id (table 0301: same as UUID) has a urn:uuid system."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F", 18: "EQ1^^ABCDEF01-2345^GUID"})
    device = h.one(h.run(ORU, PID, "OBR|1|P1|F1", obx), "Device")
    assert device["identifier"][0]["system"] == "urn:uuid:abcdef01-2345"


def test_rxo_original_order_with_medication(h: ModuleType) -> None:
    """RXO -> MedicationRequest intent original-order, RXO-1/RXO-5 as a Medication it references."""
    rxo = h.seg("RXO", {1: "00047040230^Ampicillin 250 mg caps^NDC", 5: "CAP^Capsule"})
    bundle = h.run("OMP^O09^OMP_O09", PID, "ORC|NW|P1", rxo)
    request = h.one(bundle, "MedicationRequest")
    medication = h.one(bundle, "Medication")
    assert request["intent"] == "original-order"
    assert request["medicationReference"]["reference"] == h.entries(bundle, "Medication")[0]["fullUrl"]
    assert (medication["code"]["coding"][0]["code"], medication["form"]["coding"][0]["code"]) == (
        "00047040230",
        "CAP",
    )


def test_rxo_ordered_dose_range(h: ModuleType) -> None:
    """RXO-2/RXO-3 with units RXO-4 -> an ordered doseRange."""
    rxo = h.seg("RXO", {1: "1^Drug^NDC", 2: "1", 3: "2", 4: "TAB^tablet"})
    request = h.one(h.run("OMP^O09^OMP_O09", PID, "ORC|NW|P1", rxo), "MedicationRequest")
    dose = request["dosageInstruction"][0]["doseAndRate"][0]
    assert (dose["doseRange"]["low"]["value"], dose["doseRange"]["high"]["unit"]) == (1, "tablet")
    assert dose["type"]["coding"][0]["code"] == "ordered"


def test_orc_numbers_on_diagnostic_report(h: ModuleType) -> None:
    """ORC-2/ORC-3 -> DiagnosticReport identifiers after the OBR's own (IG ORC[DiagnosticReport])."""
    bundle = h.run(ORU, PID, "ORC|RE|P9^EHR|F9^LAB", "OBR|1|P1^EHR|F1^LAB|X^Y^LN")
    values = [i["value"] for i in h.one(bundle, "DiagnosticReport")["identifier"]]
    assert values == ["P1", "F1", "P9", "F9"]


def test_ndl_location_status(h: ModuleType) -> None:
    """IG NDL.8 (location status): the status of every level of the NDL's location."""
    ndl = "123&Doe&Jim^20230401^20230501^Point of Care^Room 101^Bed A^Hospital A^active"
    obr = h.seg("OBR", {1: "1", 2: "P1", 3: "F1", 4: "1^T^LN", 25: "F", 32: ndl})
    locations = h.resources(h.run(ORU, PID, obr), "Location")
    assert len(locations) == 4
    assert {loc.get("status") for loc in locations} == {"active"}


def test_tq1_repeat_pattern_days_of_week(h: ModuleType) -> None:
    """IG RPT.3/RPT.4 with calendar alignment DW (week begins Monday): dayOfWeek mon and fri."""
    tq1 = h.seg("TQ1", {1: "1", 3: "Q1W^DW^1^5"})
    order = h.one(
        h.run("ORM^O01^ORM_O01", PID, "ORC|NW|P1^EHR", tq1, "OBR|1|P1^EHR||1234-5^Panel^LN"), "ServiceRequest"
    )
    assert order["occurrenceTiming"]["repeat"]["dayOfWeek"] == ["mon", "fri"]
