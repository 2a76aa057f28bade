"""Segment maps: each segment's resource and how the message structure links them."""

from __future__ import annotations

import base64
from types import ModuleType

from pyheart.transformers.hl7v2_fhir import convert

PID = "PID|1||MRN1^^^HOSP^MR~999-11-2222^^^SSA^SS||Doe^Jane^Q||19800203|F|||1 Elm St^^Town^ST^12345^USA^H||555-1234^PRN^PH|||M^Married^HL70002"
PV1 = "|".join(
    ["PV1", "1", "I", "ICU^12^B^GHH", "", "", "", "1234^Careful^Carl^^^Dr", "", "", "MED"]
    + [""] * 8
    + ["VN77^^^HOSP^VN"]
    + [""] * 24
    + ["20240102080000-0500"]
)


def test_pid_patient(h: ModuleType) -> None:
    """PID -> Patient: identifiers, name, birth date, gender, address, telecom, marital status."""
    pat = h.one(h.run("ADT^A01^ADT_A01", PID), "Patient")
    assert (pat["name"][0]["family"], pat["birthDate"], pat["gender"]) == ("Doe", "1980-02-03", "female")
    assert [i["value"] for i in pat["identifier"]] == ["MRN1", "999-11-2222"]
    assert pat["address"][0]["city"] == "Town"
    assert pat["telecom"][0] == {"use": "home", "system": "phone", "value": "555-1234"}
    assert pat["maritalStatus"]["coding"][0]["code"] == "M"


def test_pid_home_phone_default_use(h: ModuleType) -> None:
    """PID-13 without XTN.2 is a home number (IG assignment)."""
    pat = h.one(h.run("ADT^A01^ADT_A01", "PID|1||M1^^^H||Doe^J||||||||555-1234"), "Patient")
    assert pat["telecom"][0]["use"] == "home"


def test_pid_birth_time(h: ModuleType) -> None:
    """PID-7 with a time keeps the time in the patient-birthTime extension."""
    pat = h.one(h.run("ADT^A01^ADT_A01", "PID|1||M1^^^H||Doe^J||198002031015"), "Patient")
    assert pat["birthDate"] == "1980-02-03"
    assert pat["_birthDate"]["extension"][0]["valueDateTime"] == "1980-02-03T10:15:00-05:00"


def test_pid_race_us_core(h: ModuleType) -> None:
    """PID-10 -> US Core race with the OMB category."""
    pat = h.one(h.run("ADT^A01^ADT_A01", "PID|1||M1^^^H||Doe^J|||||2106-3^White^CDCREC"), "Patient")
    ext = next(e for e in pat["extension"] if e["url"].endswith("us-core-race"))
    assert ext["extension"][0] == {
        "url": "ombCategory",
        "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3", "display": "White"},
    }


def test_pid_account(h: ModuleType) -> None:
    """PID-18 -> Account of the patient."""
    acct = h.one(h.run("ADT^A01^ADT_A01", "PID|1||M1^^^H||Doe^J|||||||||||||AC123^^^H"), "Account")
    assert acct["identifier"][0]["value"] == "AC123"


def test_pv1_encounter(h: ModuleType) -> None:
    """PV1 -> Encounter: class from table 0004, visit number, attending participant, period."""
    enc = h.one(h.run("ADT^A01^ADT_A01", PID, PV1), "Encounter")
    assert enc["class"]["code"] == "IMP"
    assert enc["identifier"][0]["value"] == "VN77"
    assert enc["participant"][0]["type"][0]["coding"][0]["code"] == "ATND"
    assert enc["period"]["start"] == "2024-01-02T08:00:00-05:00"
    assert enc["status"] == "in-progress"


def test_pv1_discharge_finishes(h: ModuleType) -> None:
    """PV1-45 (discharge time) makes the Encounter finished."""
    pv1 = h.seg("PV1", {1: "1", 2: "I", 19: "V1", 44: "20240101", 45: "20240105"})
    assert h.one(h.run("ADT^A03^ADT_A03", PID, pv1), "Encounter")["status"] == "finished"


def test_pv1_location(h: ModuleType) -> None:
    """PV1-3 -> Encounter.location referencing the bed Location."""
    bundle = h.run("ADT^A01^ADT_A01", PID, PV1)
    enc = h.one(bundle, "Encounter")
    names = {e["fullUrl"]: e["resource"].get("name") for e in h.entries(bundle, "Location")}
    assert names[enc["location"][0]["location"]["reference"]] == "B"


def test_encounter_without_class_is_valid(h: ModuleType) -> None:
    """Encounter.class is required: an absent PV1-2 gives the v3 'unknown' null flavor."""
    enc = h.one(h.run("ADT^A01^ADT_A01", PID, "PV1|1"), "Encounter")
    assert enc["class"]["code"] == "UNK"


def test_nk1_related_person_and_contact(h: ModuleType) -> None:
    """NK1 -> RelatedPerson (IG NK1[RelatedPerson]) and Patient.contact (IG NK1[Patient])."""
    bundle = h.run("ADT^A01^ADT_A01", PID, "NK1|1|Doe^John|SPO^Spouse^HL70063")
    rp = h.one(bundle, "RelatedPerson")
    assert rp["name"][0]["family"] == "Doe"
    assert rp["relationship"][0]["coding"][0]["code"] == "SPS"
    assert h.one(bundle, "Patient")["contact"][0]["name"]["given"] == ["John"]


def test_al1_allergy(h: ModuleType) -> None:
    """AL1 -> AllergyIntolerance: category, code, criticality, reaction."""
    allergy = h.one(
        h.run("ADT^A01^ADT_A01", PID, "AL1|1|DA|1605^Penicillin^RXNORM|SV|Hives"), "AllergyIntolerance"
    )
    assert allergy["category"] == ["medication"]
    assert allergy["code"]["coding"][0]["system"] == "http://www.nlm.nih.gov/research/umls/rxnorm"
    assert allergy["criticality"] == "high"
    assert allergy["reaction"][0]["manifestation"][0]["text"] == "Hives"


def test_dg1_condition(h: ModuleType) -> None:
    """DG1 -> Condition (encounter diagnosis) listed in Encounter.diagnosis."""
    bundle = h.run("ADT^A01^ADT_A01", PID, PV1, "DG1|1||R07.9^Chest pain^I10")
    cond = h.one(bundle, "Condition")
    assert cond["code"]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/icd-10",
        "code": "R07.9",
        "display": "Chest pain",
    }
    assert h.one(bundle, "Encounter")["diagnosis"][0]["condition"]["reference"].startswith("urn:uuid:")


def test_pr1_procedure(h: ModuleType) -> None:
    """PR1 -> Procedure with its code and time."""
    proc = h.one(h.run("ADT^A01^ADT_A01", PID, "PR1|1||0JH60DZ^Insert pacemaker^I10P||20240102"), "Procedure")
    assert (proc["code"]["coding"][0]["code"], proc["performedDateTime"]) == ("0JH60DZ", "2024-01-02")


def test_in1_coverage(h: ModuleType) -> None:
    """IN1 -> Coverage with payor Organization and beneficiary."""
    bundle = h.run("ADT^A01^ADT_A01", PID, "IN1|1|PLAN1^Gold|IC1|Acme Insurance")
    cov = h.one(bundle, "Coverage")
    assert cov["status"] == "active"
    assert cov["beneficiary"] == {"reference": cov["payor"][0]["reference"]} or cov["payor"]


def test_obx_numeric(h: ModuleType) -> None:
    """OBX NM -> valueQuantity with the UCUM unit, range text, interpretation and status."""
    bundle = h.run(
        "ORU^R01^ORU_R01",
        PID,
        "OBR|1|P1|F1^LAB|24323-8^Panel^LN|||20240102",
        "OBX|1|NM|2345-7^Glucose^LN||182|mg/dL^mg/dL^UCUM|70-105|H|||F",
    )
    obs = h.one(bundle, "Observation")
    assert obs["valueQuantity"] == {
        "value": 182,
        "unit": "mg/dL",
        "system": "http://unitsofmeasure.org",
        "code": "mg/dL",
    }
    assert (obs["referenceRange"][0]["text"], obs["status"]) == ("70-105", "final")
    assert obs["interpretation"][0]["coding"][0]["code"] == "H"


def test_obx_structured_numeric_comparator(h: ModuleType) -> None:
    """OBX SN '<^5' -> valueQuantity with comparator."""
    obs = h.one(h.run("ORU^R01^ORU_R01", PID, "OBR|1|P1|F1", "OBX|1|SN|X^Y^L||<^5||||||F"), "Observation")
    assert obs["valueQuantity"] == {"value": 5, "comparator": "<"}


def test_obx_structured_numeric_ratio(h: ModuleType) -> None:
    """OBX SN '^1^:^128' -> valueRatio, the SN as written its originalText (IG SN[Ratio])."""
    obs = h.one(
        h.run("ORU^R01^ORU_R01", PID, "OBR|1|P1|F1", "OBX|1|SN|X^Y^L||^1^:^128||||||F"), "Observation"
    )
    assert obs["valueRatio"] == {
        "numerator": {"value": 1},
        "denominator": {"value": 128},
        "extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/originalText", "valueString": "1 : 128"}
        ],
    }


def test_obx_structured_numeric_suffix_kept(h: ModuleType) -> None:
    """OBX SN '^5^+' ("5+") -> valueQuantity 5 whose originalText keeps the '+' (IG SN[Quantity])."""
    obs = h.one(h.run("ORU^R01^ORU_R01", PID, "OBR|1|P1|F1", "OBX|1|SN|X^Y^L||^5^+||||||F"), "Observation")
    assert obs["valueQuantity"] == {
        "value": 5,
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/originalText", "valueString": "5 +"}],
    }


def test_obx_coded(h: ModuleType) -> None:
    """OBX CWE -> valueCodeableConcept."""
    obs = h.one(
        h.run("ORU^R01^ORU_R01", PID, "OBR|1|P1|F1", "OBX|1|CWE|X^Y^L||260373001^Detected^SCT||||||F"),
        "Observation",
    )
    assert obs["valueCodeableConcept"]["coding"][0]["code"] == "260373001"


def test_obx_text_repetitions_join(h: ModuleType) -> None:
    """OBX TX repetitions join into one valueString."""
    obs = h.one(
        h.run("ORU^R01^ORU_R01", PID, "OBR|1|P1|F1", "OBX|1|TX|X^Y^L||line one~line two||||||F"),
        "Observation",
    )
    assert obs["valueString"] == "line one\nline two"


def test_oru_report_links(h: ModuleType) -> None:
    """ORU: OBR -> ServiceRequest + DiagnosticReport; the report's results are the OBX Observations."""
    bundle = h.run(
        "ORU^R01^ORU_R01",
        PID,
        "ORC|RE|P1|F1",
        h.seg("OBR", {1: "1", 2: "P1", 3: "F1", 4: "24323-8^Panel^LN", 25: "F"}),
        "OBX|1|NM|2345-7^Glucose^LN||182||||||F",
        "OBX|2|NM|2160-0^Creatinine^LN||1.1||||||F",
    )
    report = h.one(bundle, "DiagnosticReport")
    obs_urls = [e["fullUrl"] for e in h.entries(bundle, "Observation")]
    assert [r["reference"] for r in report["result"]] == obs_urls
    assert report["basedOn"][0]["reference"] == h.entries(bundle, "ServiceRequest")[0]["fullUrl"]
    assert report["status"] == "final"


def test_nte_note_on_observation(h: ModuleType) -> None:
    """NTE after OBX -> Observation.note."""
    obs = h.one(
        h.run("ORU^R01^ORU_R01", PID, "OBR|1|P1|F1", "OBX|1|ST|X^Y^L||pos||||||F", "NTE|1||Check again"),
        "Observation",
    )
    assert obs["note"] == [{"text": "Check again"}]


def test_spm_specimen(h: ModuleType) -> None:
    """SPM -> Specimen with type and collection time, referenced by the report."""
    bundle = h.run(
        "ORU^R01^ORU_R01",
        PID,
        "OBR|1|P1|F1",
        "SPM|1|S1&LAB||119297000^Blood^SCT|||||||||||||20240102",
    )
    spec = h.one(bundle, "Specimen")
    assert spec["type"]["coding"][0]["code"] == "119297000"
    assert spec["collection"]["collectedDateTime"] == "2024-01-02"
    assert (
        h.one(bundle, "DiagnosticReport")["specimen"][0]["reference"]
        == h.entries(bundle, "Specimen")[0]["fullUrl"]
    )


def test_orm_service_request(h: ModuleType) -> None:
    """ORM: ORC + OBR -> one ServiceRequest with status from ORC-5 and both order numbers."""
    bundle = h.run("ORM^O01^ORM_O01", PID, "ORC|NW|P1^EHR|F1^LAB||IP", "OBR|1|||71020^Chest X-ray^C4")
    sr = h.one(bundle, "ServiceRequest")
    assert (sr["status"], sr["intent"]) == ("active", "order")
    assert [i["value"] for i in sr["identifier"]] == ["P1", "F1"]
    assert sr["code"]["coding"][0]["system"] == "http://www.ama-assn.org/go/cpt"
    assert h.resources(bundle, "DiagnosticReport") == []


def test_orc_alone_is_service_request(h: ModuleType) -> None:
    """An ORC without a detail segment is a ServiceRequest of its own."""
    sr = h.one(h.run("ORM^O01^ORM_O01", PID, "ORC|CA|P1^EHR"), "ServiceRequest")
    assert sr["status"] == "active"


def test_vxu_immunization(h: ModuleType) -> None:
    """VXU: ORC + RXA + RXR -> Immunization with vaccine, dose, lot, route and identifiers."""
    bundle = h.run(
        "VXU^V04^VXU_V04",
        PID,
        "ORC|RE|P1^EHR|F1^IIS",
        "RXA|0|1|20240102||08^HepB^CVX|0.5|mL^mL^UCUM||||||||LOT1||MSD^Merck^MVX|||CP",
        "RXR|C28161^Intramuscular^NCIT|LD^Left deltoid^HL70163",
    )
    imm = h.one(bundle, "Immunization")
    assert imm["vaccineCode"]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/cvx",
        "code": "08",
        "display": "HepB",
    }
    assert (imm["status"], imm["lotNumber"], imm["doseQuantity"]["value"]) == ("completed", "LOT1", 0.5)
    assert imm["route"]["coding"][0]["code"] == "C28161"
    assert [i["value"] for i in imm["identifier"]] == ["P1", "F1"]


def test_rxa_deleted_is_entered_in_error(h: ModuleType) -> None:
    """RXA-21 'D' marks the Immunization entered-in-error."""
    rxa = "RXA|0|1|20240102||08^HepB^CVX|999||||||||||||||CP|D"
    assert h.one(h.run("VXU^V04^VXU_V04", PID, rxa), "Immunization")["status"] == "entered-in-error"


def test_rde_medication_request(h: ModuleType) -> None:
    """RDE: ORC + RXE + RXR -> MedicationRequest with route."""
    bundle = h.run(
        "RDE^O11^RDE_O11",
        PID,
        "ORC|NW|P1^EHR",
        "RXE||313782^Acetaminophen 325 MG^RXNORM",
        "RXR|PO^Oral^HL70162",
    )
    mr = h.one(bundle, "MedicationRequest")
    assert mr["medicationCodeableConcept"]["coding"][0]["code"] == "313782"
    assert mr["dosageInstruction"][0]["route"]["coding"][0]["code"] == "PO"


def test_siu_appointment(h: ModuleType) -> None:
    """SIU: SCH -> Appointment with start/end from SCH-11 and the patient as participant."""
    bundle = h.run(
        "SIU^S12^SIU_S12",
        h.seg("SCH", {1: "A1^EHR", 2: "F1^SCHED", 11: "^^^202401021000-0500^202401021030-0500"}),
        PID,
        "AIP|1||1234^Careful^Carl",
    )
    appt = h.one(bundle, "Appointment")
    assert (appt["status"], appt["start"], appt["end"]) == (
        "booked",
        "2024-01-02T10:00:00-05:00",
        "2024-01-02T10:30:00-05:00",
    )
    actors = [p["actor"]["reference"] for p in appt["participant"]]
    assert h.entries(bundle, "Patient")[0]["fullUrl"] in actors
    assert len(actors) == 2


def test_siu_cancel_event(h: ModuleType) -> None:
    """SIU^S15 (cancellation) without SCH-25 gives a cancelled Appointment."""
    appt = h.one(h.run("SIU^S15^SIU_S12", "SCH|A1^EHR", PID), "Appointment")
    assert appt["status"] == "cancelled"


def test_mdm_document(h: ModuleType) -> None:
    """MDM: TXA -> DocumentReference; OBX text becomes its base64 text/plain content."""
    bundle = h.run(
        "MDM^T02^MDM_T02",
        PID,
        "TXA|1|CN^Consult note|TX|||||||||DOC1^EHR",
        "OBX|1|TX|X^Y^L||First line",
        "OBX|2|TX|X^Y^L||Second line",
    )
    doc = h.one(bundle, "DocumentReference")
    att = doc["content"][0]["attachment"]
    assert base64.b64decode(att["data"]).decode() == "First line\nSecond line"
    assert doc["masterIdentifier"]["value"] == "DOC1"
    assert h.resources(bundle, "Observation") == []


def test_dft_charge_item(h: ModuleType) -> None:
    """DFT: FT1 -> ChargeItem with code and quantity."""
    item = h.one(
        h.run("DFT^P03^DFT_P03", PID, "FT1|1|T1||20240102||CG|99213^Office visit^C4|||2"), "ChargeItem"
    )
    assert (item["code"]["coding"][0]["code"], item["quantity"]["value"]) == ("99213", 2)


def test_evn_provenance(h: ModuleType) -> None:
    """EVN -> Provenance targeting the MessageHeader, with recorded time and reason."""
    bundle = h.run("ADT^A01^ADT_A01", "EVN|A01|20240102120000-0500||01^Patient request^HL70062", PID)
    header_url = h.entries(bundle, "MessageHeader")[0]["fullUrl"]
    evn = next(p for p in h.resources(bundle, "Provenance") if "reason" in p)
    assert evn["recorded"] == "2024-01-02T12:00:00-05:00"
    assert evn["target"] == [{"reference": header_url}]


def test_message_header(h: ModuleType) -> None:
    """MSH -> MessageHeader: event, source, destination, sender Organization, focus."""
    bundle = h.run("ADT^A01^ADT_A01", PID)
    mh = h.one(bundle, "MessageHeader")
    assert mh["eventCoding"] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0003",
        "code": "A01",
        "display": "ADT^A01^ADT_A01",
    }
    assert (mh["source"]["name"], mh["destination"][0]["name"]) == ("SENDAPP", "RECVAPP")
    assert mh["focus"][0]["reference"] == h.entries(bundle, "Patient")[0]["fullUrl"]


def test_unknown_segments_ignored(h: ModuleType) -> None:
    """Z-segments and unmapped segments do not stop the conversion."""
    bundle = h.run("ADT^A01^ADT_A01", PID, "ZPI|1|custom")
    assert h.one(bundle, "Patient")["name"][0]["family"] == "Doe"


def test_pv1_episode_of_care(h: ModuleType) -> None:
    """PV1-54 -> EpisodeOfCare of the patient, referenced by the Encounter."""
    bundle = h.run("ADT^A01^ADT_A01", PID, h.seg("PV1", {1: "1", 2: "I", 54: "EOC1^^^HOSP"}))
    eoc = h.entries(bundle, "EpisodeOfCare")[0]
    assert (eoc["resource"]["identifier"][0]["value"], eoc["resource"]["status"]) == ("EOC1", "active")
    assert h.one(bundle, "Encounter")["episodeOfCare"] == [{"reference": eoc["fullUrl"]}]


def test_in1_insured_subscriber(h: ModuleType) -> None:
    """IN1-16..19 (insured other than the patient) -> RelatedPerson as Coverage.subscriber."""
    in1 = h.seg(
        "IN1", {1: "1", 2: "PLAN1", 16: "Doe^John", 17: "SPO^Spouse^HL70063", 18: "19790101", 36: "POL9"}
    )
    bundle = h.run("ADT^A01^ADT_A01", PID, in1)
    cov = h.one(bundle, "Coverage")
    insured = h.entries(bundle, "RelatedPerson")[0]
    assert cov["subscriber"] == {"reference": insured["fullUrl"]}
    assert (cov["subscriberId"], insured["resource"]["birthDate"]) == ("POL9", "1979-01-01")


def test_in1_self_subscriber_is_patient(h: ModuleType) -> None:
    """IN1-17 'SEL': the patient is the subscriber."""
    bundle = h.run("ADT^A01^ADT_A01", PID, h.seg("IN1", {1: "1", 2: "PLAN1", 16: "Doe^Jane", 17: "SEL"}))
    assert h.one(bundle, "Coverage")["subscriber"] == {
        "reference": h.entries(bundle, "Patient")[0]["fullUrl"]
    }


def test_rxe_dose_and_rate(h: ModuleType) -> None:
    """RXE-3/5 give amount and units -> doseQuantity; RXE-23/24 -> rateQuantity."""
    rxe = h.seg("RXE", {2: "1234^Drug^RXNORM", 3: "5", 5: "mg^mg^UCUM", 23: "25", 24: "mL/h^mL/h^UCUM"})
    mr = h.one(h.run("RDE^O11^RDE_O11", PID, "ORC|NW|P1^EHR", rxe), "MedicationRequest")
    dose_rate = mr["dosageInstruction"][0]["doseAndRate"][0]
    assert (dose_rate["doseQuantity"]["value"], dose_rate["doseQuantity"]["code"]) == (5, "mg")
    assert dose_rate["rateQuantity"]["value"] == 25


def test_nte_author_and_time(h: ModuleType) -> None:
    """NTE-5/NTE-6 -> the note's author Practitioner and time."""
    nte = h.seg("NTE", {1: "1", 3: "Recheck", 5: "77^Nurse^Nina", 6: "202401021200-0500"})
    bundle = h.run("ORU^R01^ORU_R01", PID, "OBR|1|P1|F1", "OBX|1|ST|X^Y^L||pos||||||F", nte)
    note = h.one(bundle, "Observation")["note"][0]
    assert note["time"] == "2024-01-02T12:00:00-05:00"
    assert note["authorReference"]["reference"] in {e["fullUrl"] for e in h.entries(bundle, "Practitioner")}


def test_obr_parent_order(h: ModuleType) -> None:
    """OBR-29 -> basedOn the parent order by its placer and filler numbers."""
    obr = h.seg("OBR", {1: "1", 2: "P2", 3: "F2", 29: "P1&EHR^F1&LAB"})
    sr = h.one(h.run("ORM^O01^ORM_O01", PID, "ORC|NW|P2", obr), "ServiceRequest")
    assert [b["identifier"]["value"] for b in sr["basedOn"]] == ["P1", "F1"]


def test_message_header_endpoint_absent(h: ModuleType) -> None:
    """MSH-3 without a universal id: the required endpoint carries data-absent-reason (IG)."""
    mh = h.one(h.run("ADT^A01^ADT_A01", PID), "MessageHeader")
    assert mh["source"]["_endpoint"]["extension"][0]["valueCode"] == "unknown"


def test_message_header_endpoint_oid(h: ModuleType) -> None:
    """MSH-3 with an ISO universal id: the endpoint is its urn:oid."""
    msg = h.er7("ADT^A01^ADT_A01", PID).replace("|SENDAPP|", "|SENDAPP^1.2.3^ISO|")

    assert h.one(convert(msg), "MessageHeader")["source"]["endpoint"] == "urn:oid:1.2.3"


def test_prt_primary_care_provider(h: ModuleType) -> None:
    """PRT-4 'PP' after PID -> Patient.generalPractitioner, a PractitionerRole (IG)."""
    bundle = h.run(
        "ADT^A01^ADT_A01", PID, h.seg("PRT", {4: "PP^Primary Care Provider^HL70912", 5: "55^Gp^Gail"})
    )
    gp = h.one(bundle, "Patient")["generalPractitioner"][0]["reference"]
    assert gp == h.entries(bundle, "PractitionerRole")[0]["fullUrl"]


def test_prt_practitioner_role(h: ModuleType) -> None:
    """PRT -> PractitionerRole with PRT-4 as code and PRT-5 as practitioner."""
    bundle = h.run(
        "ADT^A01^ADT_A01", PID, h.seg("PRT", {4: "PP^Primary Care Provider^HL70912", 5: "55^Gp^Gail"})
    )
    role = h.one(bundle, "PractitionerRole")
    assert role["code"][0]["coding"][0]["code"] == "PP"
    assert role["practitioner"]["reference"] == h.entries(bundle, "Practitioner")[0]["fullUrl"]


def test_prt_observation_device(h: ModuleType) -> None:
    """PRT with a device (PRT-10) after OBX -> Observation.device."""
    prt = h.seg("PRT", {4: "EQUIP^Equipment^HL70912", 10: "DEV1^LAB"})
    bundle = h.run("ORU^R01^ORU_R01", PID, "OBR|1|P1|F1", "OBX|1|NM|X^Y^LN||5||||||F", prt)
    assert h.one(bundle, "Observation")["device"] == {"reference": h.entries(bundle, "Device")[0]["fullUrl"]}


def test_blank_trigger_event_gives_no_event_code(h: ModuleType) -> None:
    """MSH-9.2 of blanks is no code: the header's event falls back to the message type."""
    text = h.er7("ADT^  ^ADT_A01", "PID|1||MRN1^^^HOSP^MR||Doe^Jane")
    header = h.one(convert(text), "MessageHeader")
    assert header["eventCoding"]["code"] == "ADT"


def test_tm_value_with_fraction_and_zone(h: ModuleType) -> None:
    """OBX TM 'HHMMSS.SSSS+ZZZZ' -> valueTime HH:MM:SS; an impossible time gives no value."""
    obx = "OBX|1|TM|X^Y^LN||{}||||||F"
    results = [
        h.one(h.run("ORU^R01^ORU_R01", "PID|1||MRN1", "OBR|1|P1|F1|X^Y^LN", obx.format(t)), "Observation")
        for t in ("123456.1234+0100", "9999")
    ]
    assert results[0]["valueTime"] == "12:34:56"
    assert "valueTime" not in results[1]


def test_schedule_without_patient_or_resource_has_a_participant(h: ModuleType) -> None:
    """Appointment.participant is required: an SCH naming no one gets one 'unknown' participant,
    also when a second SCH follows."""
    bundle = h.run("SIU^S12^SIU_S12", "SCH|A1|F1", "SCH|A2|F2")
    appointments = h.resources(bundle, "Appointment")
    assert len(appointments) == 2
    for appt in appointments:
        assert appt["participant"] == [{"type": [{"text": "unknown"}], "status": "needs-action"}]


def test_procedure_minutes_beyond_calendar_give_no_period(h: ModuleType) -> None:
    """PR1-7 minutes too large for any date leave performedDateTime alone, not a failed message."""
    pr1 = "PR1|1||P1^Proc^SCT||202401011200+0000||99999999999999"
    proc = h.one(h.run("ADT^A01^ADT_A01", "PID|1||MRN1", "PV1|1|I", pr1), "Procedure")
    assert proc["performedDateTime"] == "2024-01-01T12:00:00+00:00"


def test_appointment_status_from_sch25_then_ais10_then_event(h: ModuleType) -> None:
    """Appointment.status: SCH-25 wins, else the first AIS-10 (IG FillerStatusCodes map), else
    what the trigger event implies (S15 cancelled)."""
    pid = "PID|1||MRN1^^^HOSP^MR||Doe^Jane"
    ais = "AIS|1||X1^Exam^L" + "|" * 7 + "Complete"

    def status(event: str, *segments: str) -> str:
        return str(h.one(h.run(f"SIU^{event}^SIU_S12", *segments), "Appointment")["status"])

    sch25 = "SCH|A1|F1" + "|" * 23 + "Booked"
    assert status("S12", sch25, pid, ais) == "booked"
    assert status("S12", "SCH|A1|F1", pid, ais) == "fulfilled"
    assert status("S15", "SCH|A1|F1", pid) == "cancelled"


def test_msa_is_the_header_response(h: ModuleType) -> None:
    """IG MSA[MessageHeader]: MSA-1 (table 0008) -> response.code, MSA-2 -> response.identifier;
    a control id that is no FHIR id leaves the response out (both parts are required)."""

    def response(msa: str) -> object:
        return h.one(convert(h.er7("ACK^A01^ACK", msa)), "MessageHeader").get("response")

    assert response("MSA|AE|CTRL-1.5") == {"identifier": "CTRL-1.5", "code": "fatal-error"}
    assert response("MSA|AR|C1")["code"] == "transient-error"  # type: ignore[index]
    assert response("MSA|CA|C1")["code"] == "ok"  # type: ignore[index]
    assert response("MSA|AA|C 1/2") is None


def test_patient_rol_other_than_pp_is_a_care_team_member(h: ModuleType) -> None:
    """IG ADT_A01 PID.ROL / ROL[CareTeam]: a ROL after PID that is not PP joins the patient's
    CareTeam (role, member, organisation, period, reason, telecom); PP stays the patient's
    general practitioner; a ROL after PV1 stays an Encounter participant."""
    pid = "PID|1||MRN1^^^HOSP^MR||Doe^Jane"
    rol = h.seg(
        "ROL",
        {
            2: "AD",
            3: "CP^Consulting Provider^HL70443",
            4: "77^Kay^Ann",
            5: "20240101",
            6: "20241231",
            8: "R1^Follow-up",
            12: "^WPN^PH^^^^^^^^^555-0101",
            14: "Clinic A",
        },
    )
    pp = h.seg("ROL", {2: "AD", 3: "PP^Primary Care Provider^HL70443", 4: "88^Lee^Bo"})
    bundle = h.run(
        "ADT^A01^ADT_A01", pid, rol, pp, "PV1|1|I", h.seg("ROL", {2: "AD", 3: "AT", 4: "99^Ng^Al"})
    )
    team = h.one(bundle, "CareTeam")
    (part,) = team["participant"]
    assert "CP" in [c["code"] for c in part["role"][0]["coding"]]
    assert (part["period"], team["reasonCode"][0]["coding"][0]["code"]) == (
        {"start": "2024-01-01", "end": "2024-12-31"},
        "R1",
    )
    assert team["telecom"][0]["value"] == "555-0101"
    assert team["subject"]["reference"] == h.entries(bundle, "Patient")[0]["fullUrl"]
    members = {e["fullUrl"]: e["resource"] for e in h.entries(bundle, "Practitioner")}
    assert members[part["member"]["reference"]]["name"][0]["family"] == "Kay"
    assert "onBehalfOf" in part
    assert len(h.one(bundle, "Patient")["generalPractitioner"]) == 1
    assert len(h.one(bundle, "Encounter")["participant"]) == 1


def test_patient_prt_is_a_care_team_member_in_adt_not_oru(h: ModuleType) -> None:
    """IG PRT[CareTeam]: a PRT after PID with a role of the IG's list (AT) joins the CareTeam in
    ADT; the IG's ORU_R01 map reads that PRT otherwise, so an ORU gets no CareTeam."""
    pid = "PID|1||MRN1^^^HOSP^MR||Doe^Jane"
    prt = h.seg("PRT", {2: "AD", 4: "AT^Attending^HL70912", 5: "77^Kay^Ann", 15: "^WPN^PH^^^^^^^^^555-0102"})
    adt = h.run("ADT^A01^ADT_A01", pid, prt, "PV1|1|I")
    part = h.one(adt, "CareTeam")["participant"][0]
    assert part["role"][0]["coding"][0]["code"] == "AT"
    member = next(
        e["resource"] for e in h.entries(adt, "Practitioner") if e["fullUrl"] == part["member"]["reference"]
    )
    assert member["telecom"][0]["value"] == "555-0102"
    oru = h.run("ORU^R01^ORU_R01", pid, prt, "OBR|1|P1|F1|X^Y^LN")
    assert h.resources(oru, "CareTeam") == []


def test_oru_patient_prt_is_a_related_person(h: ModuleType) -> None:
    """IG ORU_R01 PATIENT.PRT (not PP) / PRT[RelatedPerson]: the person related to the patient,
    with PRT-4 as relationship, PRT-5's identifier (authority as system) and name, PRT-11/12
    period, PRT-14 address and PRT-15 telecom; no Practitioner is made of it."""
    pid = "PID|1||MRN1^^^HOSP^MR||Doe^Jane"
    prt = h.seg(
        "PRT",
        {
            2: "AD",
            4: "EP^Emergency contact^HL70912",
            5: "55^Roe^Rita^^^^^^HOSP&1.2.3&ISO",
            11: "20240101",
            14: "1 Main St^^Town^ST^11111",
            15: "^PRN^PH^^^^^^^^^555-0199",
        },
    )
    bundle = h.run("ORU^R01^ORU_R01", pid, prt, "OBR|1|P1|F1|X^Y^LN")
    person = h.one(bundle, "RelatedPerson")
    ident = person["identifier"][0]
    assert (ident["system"], ident["value"]) == ("urn:oid:1.2.3", "55")
    assert person["relationship"][0]["coding"][0]["code"] == "EP"
    assert (person["name"][0]["family"], person["period"]) == ("Roe", {"start": "2024-01-01"})
    assert person["address"][0]["city"] == "Town"
    assert person["telecom"][0]["value"] == "555-0199"
    assert person["patient"]["reference"] == h.entries(bundle, "Patient")[0]["fullUrl"]
    assert h.resources(bundle, "Practitioner") == []


def test_pv1_financial_class_types_the_coverage(h: ModuleType) -> None:
    """IG PV1[Coverage]: PV1-20 is the type of the IN1 Coverage (table 0064) unless IN1-15 (plan
    type) gives one."""
    pid = "PID|1||MRN1^^^HOSP^MR||Doe^Jane"
    pv1 = h.seg("PV1", {1: "1", 2: "I", 20: "MC"})
    in1 = h.seg("IN1", {1: "1", 2: "PLAN1", 3: "PAYER1^^^HOSP", 4: "Acme Insurance"})
    coverage = h.one(h.run("ADT^A01^ADT_A01", pid, pv1, in1), "Coverage")
    assert coverage["type"]["coding"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/v2-0064", "code": "MC"}
    ]
    typed = h.seg("IN1", {1: "1", 2: "PLAN1", 3: "PAYER1^^^HOSP", 4: "Acme Insurance", 15: "HMO"})
    coverage = h.one(h.run("ADT^A01^ADT_A01", pid, pv1, typed), "Coverage")
    assert coverage["type"]["coding"][0]["code"] != "MC"


def test_appointment_nte_is_comment_and_whole_note(h: ModuleType) -> None:
    """IG NTE[Appointment-Comment]: every NTE is a line of Appointment.comment, and each stays
    whole (NTE-5 author, NTE-6 time, NTE-4 type) as an R5 Appointment.note extension."""
    pid = "PID|1||MRN1^^^HOSP^MR||Doe^Jane"
    nte = h.seg(
        "NTE", {1: "1", 3: "Fasting", 4: "PI^Patient Instructions", 5: "77^Kay^Ann", 6: "20240105080000+0000"}
    )
    appt = h.one(h.run("SIU^S12^SIU_S12", "SCH|A1|F1", nte, "NTE|2||Bring list", pid), "Appointment")
    assert appt["comment"] == "Fasting\nBring list"
    notes = [
        e["valueAnnotation"] for e in appt["extension"] if e["url"].endswith("extension-Appointment.note")
    ]
    assert [n["text"] for n in notes] == ["Fasting", "Bring list"]
    assert notes[0]["time"] == "2024-01-05T08:00:00+00:00"
    assert "authorReference" in notes[0]
    assert notes[0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "PI"


def test_appointment_nte_coded_comment(h: ModuleType) -> None:
    """IG NTE-9 (coded comment): each coded form of an appointment note is an alternate-codes
    extension of that note."""
    pid = "PID|1||MRN1^^^HOSP^MR||Doe^Jane"
    nte = h.seg("NTE", {1: "1", 3: "Fasting", 9: "FAST^Fasting required^L~NPO^Nil by mouth^L"})
    appt = h.one(h.run("SIU^S12^SIU_S12", "SCH|A1|F1", nte, pid), "Appointment")
    (note,) = [e["valueAnnotation"] for e in appt["extension"] if e["url"].endswith("Appointment.note")]
    codes = [
        e["valueCodeableConcept"]["coding"][0]["code"]
        for e in note["extension"]
        if e["url"].endswith("alternate-codes")
    ]
    assert codes == ["FAST", "NPO"]


def test_in3_case_manager_joins_the_care_team(h: ModuleType) -> None:
    """IG IN3[CareTeam]: IN3-21 (the case manager's name) is a CareTeam participant in the SNOMED
    case-manager role."""
    pid = "PID|1||MRN1^^^HOSP^MR||Doe^Jane"
    in1 = h.seg("IN1", {1: "1", 2: "PLAN1", 3: "PAYER1^^^HOSP", 4: "Acme Insurance"})
    bundle = h.run("ADT^A01^ADT_A01", pid, "PV1|1|I", in1, h.seg("IN3", {1: "1", 21: "Pat Case"}))
    (part,) = h.one(bundle, "CareTeam")["participant"]
    assert part["member"] == {"display": "Pat Case"}
    assert part["role"][0]["coding"][0]["code"] == "768832004"


def test_care_team_per_patient_in_a_two_patient_message(h: ModuleType) -> None:
    """An A17 (swap) carries two patients: each patient's ROLs make that patient's CareTeam."""
    bundle = h.run(
        "ADT^A17^ADT_A17",
        "PID|1||111^^^HOSP^MR||One^Ann",
        h.seg("ROL", {2: "AD", 3: "FHCP^Family Health Care Professional^HL70443", 4: "71^DocA^Al"}),
        "PV1|1|I",
        "PID|2||222^^^HOSP^MR||Two^Bo",
        h.seg("ROL", {2: "AD", 3: "FHCP^Family Health Care Professional^HL70443", 4: "72^DocB^Bea"}),
        "PV1|2|I",
    )
    teams = h.resources(bundle, "CareTeam")
    assert len(teams) == 2
    assert len({t["subject"]["reference"] for t in teams}) == 2
    assert all(len(t["participant"]) == 1 for t in teams)


def test_care_team_role_member_has_no_on_behalf_of(h: ModuleType) -> None:
    """R4 ctm-1: onBehalfOf only with a Practitioner member; a PRT with PRT-6 makes the member a
    PractitionerRole, which carries the organisation itself."""
    prt = h.seg(
        "PRT",
        {2: "AD", 4: "CP^Consulting^HL70912", 5: "1234^Smith^Ann", 6: "PRV^Provider^HL70406", 8: "Org One"},
    )
    bundle = h.run("ADT^A01^ADT_A01", "PID|1||MRN1^^^HOSP^MR||Doe^Jane", prt, "PV1|1|I")
    part = h.one(bundle, "CareTeam")["participant"][0]
    assert "onBehalfOf" not in part
    assert part["member"]["reference"] in [e["fullUrl"] for e in h.entries(bundle, "PractitionerRole")]


def test_oru_patient_prt_with_a_name_only_is_a_related_person(h: ModuleType) -> None:
    """A patient PRT naming a person without an id still makes the RelatedPerson; 'pp' in any
    case is the general practitioner, not a relative."""
    pid = "PID|1||MRN1^^^HOSP^MR||Doe^Jane"
    named = h.seg("PRT", {2: "AD", 4: "MTH^Mother^HL70063", 5: "^Doe^Janet"})
    bundle = h.run("ORU^R01^ORU_R01", pid, named, "OBR|1|P1|F1|X^Y^LN")
    assert h.one(bundle, "RelatedPerson")["name"][0]["given"] == ["Janet"]
    gp = h.seg("PRT", {2: "AD", 4: "pp", 5: "9^Lee^Bo"})
    bundle = h.run("ORU^R01^ORU_R01", pid, gp, "OBR|1|P1|F1|X^Y^LN")
    assert h.resources(bundle, "RelatedPerson") == []
    assert len(h.one(bundle, "Patient")["generalPractitioner"]) == 1


def test_cancel_event_outranks_ais10_but_not_sch25(h: ModuleType) -> None:
    """An S15 (cancel) whose AIS-10 still says Booked is cancelled; SCH-25 still wins."""
    pid = "PID|1||MRN1^^^HOSP^MR||Doe^Jane"
    ais = "AIS|1||X1^Exam^L" + "|" * 7 + "Booked"

    def status(*segments: str) -> str:
        return str(h.one(h.run("SIU^S15^SIU_S12", *segments), "Appointment")["status"])

    assert status("SCH|A1|F1", pid, ais) == "cancelled"
    assert status("SCH|A1|F1" + "|" * 23 + "Complete", pid, ais) == "fulfilled"


def test_compound_components_replace_the_drug_as_its_own_ingredient(h: ModuleType) -> None:
    """RXO-18/19 make the drug its own ingredient; an order with RXC components lists those
    components instead (a mixture's strength names no one ingredient)."""
    rxo = "RXO|IVMIX^IV mix^L" + "|" * 17 + "5|mg"
    rxc = ["RXC|B|NACL^Saline^L|100|mL", "RXC|A|KCL^Potassium^L|20|meq"]
    bundle = h.run("OMP^O09^OMP_O09", "PID|1||MRN1^^^HOSP^MR||Doe^Jane", "ORC|NW|P1", rxo, *rxc)
    medication = next(
        m for m in h.resources(bundle, "Medication") if m["code"]["coding"][0]["code"] == "IVMIX"
    )
    assert [i.get("itemCodeableConcept") for i in medication["ingredient"]] == [None, None]
    assert len(medication["ingredient"]) == 2
