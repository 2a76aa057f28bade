"""Clinical mappings: Observation components from a repeating OBX-5 (and their fold back into one
OBX), result status, sub-type and attachments; the segments without IG tables that carry clinical
data (ACC, PDA, DB1); the Encounter status from the trigger event (IG MSH[Encounter]), PV1/PV2
locations, priority and narrative; alternate codes through the field's concept map; procedures
(PR1), allergies (IAM, IAM-17 on both FHIR status axes) and diagnoses (DG1); specimens (SPM, SAC
containers) and order details (TQ1, ORC-7 timing, the ordering facility and device Provenance)."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest

from pyheart.broker.hl7v2 import parse_message
from pyheart.transformers.fhir_hl7v2 import fhir_to_hl7v2
from pyheart.transformers.hl7v2_fhir.api import convert

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
OBX_REPEATED = "OBX|1|NM|8867-4^Heart rate^LN||60~120|/min^^UCUM|70-80|||||F"
ACC = "ACC|20140317||Route 50 intersection||Y|N|D123^Smith^Ann|car accident||Y|1 Main St^^Fairfax^VA||R77"
PDA = "PDA|||Y|20211102123000|D1^Cert^Rob|Y|20211102103000^20211102113000|D2^Path^Jo|N"
PV1_PREADMIT = "PV1|1|P|WARD^101^A||||||||TEMP^9^B"
SPM = "SPM|1|SP1&LAB||SER^Serum^HL70487"
_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def _observation(h: ModuleType, *segments: str) -> dict[str, object]:
    return h.one(h.run("ORU^R01^ORU_R01", PID, "OBR|1|P1|F1|24323-8^Panel^LN", *segments), "Observation")


def test_repeating_obx5_becomes_one_component_per_value(h: ModuleType) -> None:
    """A repeating NM OBX-5 gives one component per value, each with the OBX-6 unit."""
    obs = _observation(h, OBX_REPEATED)
    assert [c["valueQuantity"]["value"] for c in obs["component"]] == [60, 120]


def test_components_carry_the_obx3_code(h: ModuleType) -> None:
    """Each component's code is the OBX-3 code (IG component[each].code)."""
    obs = _observation(h, OBX_REPEATED)
    assert {c["code"]["coding"][0]["code"] for c in obs["component"]} == {"8867-4"}


def test_components_take_the_reference_range(h: ModuleType) -> None:
    """OBX-7 is each component's reference range, not the parent's (IG component[each])."""
    obs = _observation(h, OBX_REPEATED)
    assert ([c["referenceRange"][0]["text"] for c in obs["component"]], "referenceRange" in obs) == (
        ["70-80", "70-80"],
        False,
    )


def test_components_leave_the_parent_without_a_value(h: ModuleType) -> None:
    """An Observation with components from OBX-5 has no value[x] of its own."""
    obs = _observation(h, OBX_REPEATED)
    assert [k for k in obs if k.startswith("value")] == []


def test_coded_repetitions_become_coded_components(h: ModuleType) -> None:
    """A repeating CWE OBX-5 gives valueCodeableConcept components."""
    obs = _observation(h, "OBX|1|CWE|5678-9^Organism^LN||A^Alpha^L~B^Beta^L||||||F")
    assert [c["valueCodeableConcept"]["coding"][0]["code"] for c in obs["component"]] == ["A", "B"]


def test_text_repetitions_stay_one_string(h: ModuleType) -> None:
    """TX repetitions are the lines of one text: one valueString, no components."""
    obs = _observation(h, "OBX|1|TX|1234-5^Note^LN||line one~line two||||||F")
    assert (obs["valueString"], "component" in obs) == ("line one\nline two", False)


def test_single_value_has_no_components(h: ModuleType) -> None:
    """A single OBX-5 value stays Observation.value[x]."""
    obs = _observation(h, "OBX|1|NM|8867-4^Heart rate^LN||60|/min^^UCUM|||||F")
    assert (obs["valueQuantity"]["value"], "component" in obs) == (60, False)


def test_components_fold_back_into_one_obx(h: ModuleType) -> None:
    """FHIR -> HL7 v2 folds components with the Observation's own code into one OBX whose OBX-5
    repeats, so HL7 v2 -> FHIR -> HL7 v2 keeps one OBX."""
    bundle = h.run("ORU^R01^ORU_R01", PID, "OBR|1|P1|F1|24323-8^Panel^LN", OBX_REPEATED)
    (back,) = fhir_to_hl7v2(json.dumps(bundle))
    obx = parse_message(back).segments_named("OBX")
    assert [[r.get(1) for r in s.reps(5)] for s in obx] == [["60", "120"]]


def test_acc_makes_an_injury_observation(h: ModuleType) -> None:
    """ACC -> an Observation coded injury-incident with ACC-8 as its text value and ACC-1 as when."""
    obs = h.one(h.run("ADT^A01^ADT_A01", PID, ACC), "Observation")
    assert (obs["code"]["coding"][0]["code"], obs["valueString"], obs["effectiveDateTime"]) == (
        "injury-incident",
        "car accident",
        "2014-03-17",
    )


def test_acc_indicators_are_components(h: ModuleType) -> None:
    """ACC-5/6/10 (job related, death, police notified) are yes/no components (table 0136)."""
    obs = h.one(h.run("ADT^A01^ADT_A01", PID, ACC), "Observation")
    got = {
        c["code"]["coding"][0]["code"]: c["valueCodeableConcept"]["coding"][0]["code"]
        for c in obs["component"]
    }
    assert got == {"AJRI": "Y", "ADI": "N", "PNI": "Y"}


def test_acc_location_is_the_event_location(h: ModuleType) -> None:
    """ACC-3 (name) and ACC-11 (address) make the Location the event-location extension refers to."""
    bundle = h.run("ADT^A01^ADT_A01", PID, ACC)
    location = h.one(bundle, "Location")
    assert (location["name"], location["address"]["city"]) == ("Route 50 intersection", "Fairfax")


def test_acc_local_codes_use_the_configured_base(h: ModuleType) -> None:
    """The local observation code system is named under the configured code system base."""
    obs = h.one(h.run("ADT^A01^ADT_A01", PID, ACC, system_base="urn:test:"), "Observation")
    assert obs["code"]["coding"][0]["system"] == "urn:test:observation-code"


def test_pda_indicators_are_observations(h: ModuleType) -> None:
    """PDA-3/6/9 (death certified, autopsy, coroner) are one yes/no Observation each."""
    found = h.resources(h.run("ADT^A03^ADT_A03", PID, PDA), "Observation")
    got = {o["code"]["coding"][0]["code"]: o["valueCodeableConcept"]["coding"][0]["code"] for o in found}
    assert got == {"death-certificate": "Y", "autopsy": "Y", "coroner": "N"}


def test_pda_autopsy_is_a_procedure_with_its_period(h: ModuleType) -> None:
    """PDA-7 (autopsy start and end) and PDA-8 (by whom) make a completed autopsy Procedure."""
    procs = h.resources(h.run("ADT^A03^ADT_A03", PID, PDA), "Procedure")
    autopsy = next(p for p in procs if p["code"]["coding"][0]["code"] == "autopsy-performed")
    assert (
        autopsy["status"],
        autopsy["performedPeriod"]["start"][:10],
        autopsy["performer"][0]["function"],
    ) == (
        "completed",
        "2021-11-02",
        {"text": "Autopsy Performed By"},
    )


def test_pda_death_certification_is_a_procedure(h: ModuleType) -> None:
    """PDA-4 (certificate signed) is the performed time of a death-certification Procedure."""
    procs = h.resources(h.run("ADT^A03^ADT_A03", PID, PDA), "Procedure")
    cert = next(p for p in procs if p["code"]["coding"][0]["code"] == "death-certification")
    assert cert["performedDateTime"].startswith("2021-11-02T12:30:00")


def test_db1_identifier_joins_the_patient(h: ModuleType) -> None:
    """DB1-3 of a disabled patient (DB1-2 'PT') is one more Patient identifier."""
    patient = h.one(h.run("ADT^A01^ADT_A01", PID, "DB1|1|PT|DB123^^^HOSP&1.2.3&ISO^MR|Y"), "Patient")
    assert "DB123" in [i["value"] for i in patient["identifier"]]


def test_db1_of_another_person_is_not_the_patients(h: ModuleType) -> None:
    """DB1-3 of a guarantor (DB1-2 'GT') does not join Patient.identifier."""
    patient = h.one(h.run("ADT^A01^ADT_A01", PID, "DB1|1|GT|DB123^^^HOSP&1.2.3&ISO^MR|Y"), "Patient")
    assert "DB123" not in [i["value"] for i in patient["identifier"]]


def test_acc_observation_does_not_come_back_as_obx(h: ModuleType) -> None:
    """FHIR -> HL7 v2 does not turn the ACC Observation (not a result) into an OBX."""
    bundle = h.run("ADT^A01^ADT_A01", PID, "PV1|1|I", ACC)
    (back,) = fhir_to_hl7v2(json.dumps(bundle))
    assert parse_message(back).segments_named("OBX") == []


def test_pda_cause_of_death_is_a_condition(h: ModuleType) -> None:
    """PDA-1 (death cause) is a Condition of the patient with that code."""
    bundle = h.run("ADT^A03^ADT_A03", PID, "PDA|I21^Acute myocardial infarction^I10")
    assert h.one(bundle, "Condition")["code"]["coding"][0]["code"] == "I21"


def test_obr_with_results_outside_result_messages_makes_a_report(h: ModuleType) -> None:
    """An OBR followed by OBX in a message without an IG map (DFT) reports results: a
    DiagnosticReport whose result is the Observation."""
    bundle = h.run(
        "DFT^P03^DFT_P03",
        PID,
        "ORC|RE|P1|F1",
        "OBR|1|P1|F1|57698-3^Lipid panel^LN",
        "OBX|1|NM|2093-3^Chol^LN||5",
    )
    report = h.one(bundle, "DiagnosticReport")
    assert (report["code"]["coding"][0]["code"], len(report["result"])) == ("57698-3", 1)


def test_order_obr_makes_no_report(h: ModuleType) -> None:
    """In an order message (ORM) an OBR with OBX (order details) makes no DiagnosticReport."""
    bundle = h.run(
        "ORM^O01^ORM_O01", PID, "ORC|NW|P1", "OBR|1|P1||57698-3^Lipid panel^LN", "OBX|1|NM|1-1^Q^LN||5"
    )
    assert h.resources(bundle, "DiagnosticReport") == []


def test_order_obr_specimen_is_the_requests_specimen(h: ModuleType) -> None:
    """In an order message the OBR's specimen data (OBR-7) is a Specimen of the ServiceRequest
    (IG OML_O21 OBR[Specimen])."""
    bundle = h.run("OML^O21^OML_O21", PID, "ORC|NW|P1", "OBR|1|P1||57698-3^Lipid panel^LN|||20240101120000")
    specimen = h.one(bundle, "Specimen")
    request = h.one(bundle, "ServiceRequest")
    assert (specimen["collection"]["collectedDateTime"][:10], len(request["specimen"])) == ("2024-01-01", 1)


def test_tq1_condition_text_is_as_needed(h: ModuleType) -> None:
    """TQ1-10 (condition text) is the ServiceRequest's asNeededCodeableConcept text."""
    bundle = h.run("ORM^O01^ORM_O01", PID, "ORC|NW|P1", "TQ1|1|||||||||if pain", "OBR|1|P1||1-1^Test^LN")
    assert h.one(bundle, "ServiceRequest")["asNeededCodeableConcept"] == {"text": "if pain"}


def test_rpt_offset_in_seconds_is_whole_minutes(h: ModuleType) -> None:
    """An RPT offset of 120 s is Timing.repeat.offset 2 (minutes)."""
    bundle = h.run(
        "ORM^O01^ORM_O01", PID, "ORC|NW|P1", "TQ1|1||Q1H^^^^1^h^^PC^120^s", "OBR|1|P1||1-1^Test^LN"
    )
    assert h.one(bundle, "ServiceRequest")["occurrenceTiming"]["repeat"]["offset"] == 2


def test_procedure_minutes_give_a_period(h: ModuleType) -> None:
    """PR1-7 (minutes) after a PR1-5 with a time gives performedPeriod start and end (IG)."""
    proc = h.one(h.run("ADT^A01^ADT_A01", PID, "PR1|1||1^Biopsy^SCT||200501251140+0100||90"), "Procedure")
    assert proc["performedPeriod"] == {
        "start": "2005-01-25T11:40:00+01:00",
        "end": "2005-01-25T13:10:00+01:00",
    }


def test_procedure_modifiers_join_the_code(h: ModuleType) -> None:
    """PR1-16 modifiers join the procedure code with ':' (IG PR1-16)."""
    proc = h.one(h.run("ADT^A01^ADT_A01", PID, "PR1|1||99213^Visit^C4|||||||||||||25~59"), "Procedure")
    assert proc["code"]["coding"][0]["code"] == "99213:25:59"


def test_blank_procedure_modifier_leaves_the_code_valid(h: ModuleType) -> None:
    """A blank PR1-16 (spaces) or a coding without a code adds no ':' (the code stays a FHIR code)."""
    blank = h.one(h.run("ADT^A01^ADT_A01", PID, "PR1|1||99213^Visit^C4|||||||||||||  |X"), "Procedure")
    assert blank["code"]["coding"][0]["code"] == "99213"
    textual = h.one(h.run("ADT^A01^ADT_A01", PID, "PR1|1||^Visit^C4|||||||||||||25"), "Procedure")
    assert all(":" not in c.get("code", "") for c in textual["code"].get("coding", []))


def test_surgeon_function_has_text(h: ModuleType) -> None:
    """PR1-11's performer function carries its text as well as the SNOMED coding."""
    proc = h.one(h.run("ADT^A01^ADT_A01", PID, "PR1|1||1^Biopsy^SCT||||||||S1^Cut^Sam"), "Procedure")
    assert proc["performer"][0]["function"]["text"] == "Surgeon"


def test_temporary_location_is_classified(h: ModuleType) -> None:
    """PV1-11 (temporary location) carries the subject-locationClassification 'temporary' (IG)."""
    enc = h.one(h.run("ADT^A01^ADT_A01", PID, "PV1|1|I|||||||||X-RAY^1"), "Encounter")
    (loc,) = [loc for loc in enc["location"] if "extension" in loc]
    assert loc["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "temporary"


def test_episode_description(h: ModuleType) -> None:
    """PV1-53 (service episode description) is the EpisodeOfCare's resource-instance-description."""
    pv1 = h.seg("PV1", {1: "1", 2: "I", 53: "Chemo cycle 2", 54: "EOC1^^^HOSP"})
    eoc = h.one(h.run("ADT^A01^ADT_A01", PID, pv1), "EpisodeOfCare")
    assert eoc["extension"][0]["valueString"] == "Chemo cycle 2"


def test_visit_number_type_is_the_igs(h: ModuleType) -> None:
    """PV1-19 with CX.5 'VN' gets the IG's VN type with its 'visit number' text."""
    pv1 = h.seg("PV1", {1: "1", 2: "I", 19: "V1^^^HOSP^VN"})
    enc = h.one(h.run("ADT^A01^ADT_A01", PID, pv1), "Encounter")
    assert enc["identifier"][0]["type"]["text"] == "visit number"


def test_rp_result_is_a_presented_form_link(h: ModuleType) -> None:
    """An RP OBX in a report is a presentedForm with the pointer as url and a MIME type from
    RP.3/RP.4 (IG RP[Attachment], table 0191 IM -> image)."""
    bundle = h.run(
        "ORU^R01^ORU_R01",
        PID,
        "OBR|1|P1|F1|1-1^Slide^L",
        "OBX|1|RP|2-2^Scan^L||http://x.test/s1^^IM^MRXS||||||F",
    )
    form = h.one(bundle, "DiagnosticReport")["presentedForm"][0]
    assert form == {"url": "http://x.test/s1", "contentType": "image/mrxs"}


def test_blank_rp_type_gives_no_content_type(h: ModuleType) -> None:
    """An RP whose type (RP.3) is blank spaces keeps its url and no contentType (a MIME type has no
    spaces); found by the mutation fuzz."""
    bundle = h.run(
        "ORU^R01^ORU_R01",
        PID,
        "OBR|1|P1|F1|1-1^Slide^L",
        "OBX|1|RP|2-2^Scan^L||http://x.test/s1^^  ^MRXS||||||F",
    )
    assert h.one(bundle, "DiagnosticReport")["presentedForm"][0] == {"url": "http://x.test/s1"}


def test_ed_outside_a_report_is_a_value_attachment(h: ModuleType) -> None:
    """An ED OBX outside a report keeps its content as the valueAttachment extension (IG OBX-5 ED)."""
    obs = h.one(
        h.run("ADT^A01^ADT_A01", PID, "OBX|1|ED|1-1^Image^L||^AP^PDF^Base64^QUJD||||||F"), "Observation"
    )
    ext = obs["extension"][0]
    assert (ext["url"].endswith("extension-Observation.valueAttachment"), ext["valueAttachment"]) == (
        True,
        {"contentType": "application/pdf", "data": "QUJD"},
    )


def test_results_to_follow_order_makes_a_report(h: ModuleType) -> None:
    """An OBR whose ORC says results follow (ORC-1 'RE') is reported even without OBX (DFT)."""
    bundle = h.run("DFT^P03^DFT_P03", PID, "ORC|RE|P1|F1", "OBR|1|P1|F1|57698-3^Lipid panel^LN")
    assert h.one(bundle, "DiagnosticReport")["code"]["coding"][0]["code"] == "57698-3"


def test_orc7_timing_is_the_requests_timing(h: ModuleType) -> None:
    """ORC-7 (TQ) gives quantity, repeat code, times, bounds, count and note (IG TQ[ServiceRequest])."""
    orc = h.seg("ORC", {1: "NW", 2: "P1", 7: "12&lb^BID&1230^^20020315^20030315^^^Take with food^^^^21"})
    request = h.one(h.run("ORM^O01^ORM_O01", PID, orc, "OBR|1|P1||1-1^Test^LN"), "ServiceRequest")
    timing = request["occurrenceTiming"]
    assert (
        request["quantityQuantity"]["value"],
        timing["code"]["coding"][0]["code"],
        timing["repeat"]["timeOfDay"],
        timing["repeat"]["boundsPeriod"]["start"],
        timing["repeat"]["count"],
        request["note"][0]["text"],
    ) == (12, "BID", ["12:30:00"], "2002-03-15", 21, "Take with food")


def test_tq_duration_is_bounds_duration(h: ModuleType) -> None:
    """TQ.3 'M30' (30 minutes) without start/end is the timing's boundsDuration."""
    orc = h.seg("ORC", {1: "NW", 2: "P1", 7: "^Q1H^M30"})
    request = h.one(h.run("ORM^O01^ORM_O01", PID, orc, "OBR|1|P1||1-1^Test^LN"), "ServiceRequest")
    assert request["occurrenceTiming"]["repeat"]["boundsDuration"]["code"] == "min"


def test_iam_self_reported_recorder_is_the_patient(h: ModuleType) -> None:
    """IAM-14 reported by the patient (IAM-15 'SEL') makes the patient the recorder."""
    iam = h.seg("IAM", {1: "1", 3: "P^Penicillin^L", 14: "Doe^Jane", 15: "SEL"})
    allergy = h.one(h.run("ADT^A60^ADT_A60", PID, iam), "AllergyIntolerance")
    assert allergy["recorder"] == allergy["patient"]


def test_iam_relative_recorder_is_a_related_person(h: ModuleType) -> None:
    """IAM-14 with a relationship (IAM-15) other than SEL makes a RelatedPerson recorder."""
    iam = h.seg("IAM", {1: "1", 3: "P^Penicillin^L", 14: "Doe^John", 15: "FTH^Father^HL70063"})
    bundle = h.run("ADT^A60^ADT_A60", PID, iam)
    assert h.one(bundle, "RelatedPerson")["name"][0]["family"] == "Doe"


def test_iam_clinician_code_is_another_coding(h: ModuleType) -> None:
    """IAM-27 (clinician identified code) is one more coding of the allergen code."""
    iam = h.seg("IAM", {1: "1", 3: "P^Penicillin^L", 27: "7980^Penicillin^RXNORM"})
    allergy = h.one(h.run("ADT^A60^ADT_A60", PID, iam), "AllergyIntolerance")
    assert [c["code"] for c in allergy["code"]["coding"]] == ["P", "7980"]


def test_not_asked_result_has_a_data_absent_reason(h: ModuleType) -> None:
    """OBX-11 'N' (not asked) is the data-absent reason not-asked (IG OBX-11)."""
    obs = _observation(h, "OBX|1|ST|1-1^Q^L||||||||N")
    assert obs["dataAbsentReason"]["coding"][0]["code"] == "not-asked"


def test_observation_sub_type_extension(h: ModuleType) -> None:
    """OBX-30 (observation sub-type) is the observation-structure-type extension (IG)."""
    obs = _observation(h, h.seg("OBX", {1: "1", 2: "ST", 3: "1-1^Q^L", 5: "x", 11: "F", 30: "AOE"}))
    (ext,) = [e for e in obs.get("extension", []) if e["url"].endswith("observation-structure-type")]
    assert ext["valueCodeableConcept"]["coding"][0]["code"] == "AOE"


def test_discharge_destination_is_a_location(h: ModuleType) -> None:
    """PV1-37 (discharged to location) is hospitalization.destination, a Location of that kind."""
    pv1 = h.seg("PV1", {1: "1", 2: "I", 37: "SNF^20240105"})
    bundle = h.run("ADT^A03^ADT_A03", PID, pv1)
    (dest,) = [loc for loc in h.resources(bundle, "Location") if "type" in loc]
    assert (
        dest["type"][0]["coding"][0]["code"],
        "destination" in h.one(bundle, "Encounter")["hospitalization"],
    ) == (
        "SNF",
        True,
    )


def test_order_callback_phone_is_on_the_requester(h: ModuleType) -> None:
    """OBR-17 (order callback phone) is an extension of the requester reference (IG OBR-17)."""
    obr = h.seg("OBR", {1: "1", 2: "P1", 4: "1-1^Test^LN", 16: "D1^Doe^Ann", 17: "^WPN^PH^^^555^1234567"})
    request = h.one(h.run("ORM^O01^ORM_O01", PID, "ORC|NW|P1", obr), "ServiceRequest")
    ext = request["requester"]["extension"][0]
    assert (ext["url"].endswith("order-callback-phone-number"), "valueContactPoint" in ext) == (True, True)


def test_sac_container_identifier_joins_the_specimen(h: ModuleType) -> None:
    """SAC-3 (container identifier) after an SPM is the Specimen's container identifier."""
    bundle = h.run(
        "OML^O21^OML_O21",
        PID,
        "ORC|NW|P1",
        "OBR|1|P1||1-1^Test^LN",
        "SPM|1|S1||SER^Serum^HL70487",
        "SAC|1|ACC9|C77",
    )
    spec = h.one(bundle, "Specimen")
    assert (spec["container"][0]["identifier"][0]["value"], spec["accessionIdentifier"]["value"]) == (
        "C77",
        "ACC9",
    )


def test_spm_handling_code_is_special_handling(h: ModuleType) -> None:
    """SPM-15 (handling code) is the collection's specimen-specialHandling extension."""
    spm = h.seg("SPM", {1: "1", 2: "S1", 4: "SER^Serum^HL70487", 15: "AMB^Ambient Temperature^HL70376"})
    spec = h.one(h.run("OML^O21^OML_O21", PID, "ORC|NW|P1", "OBR|1|P1||1-1^Test^LN", spm), "Specimen")
    ext = spec["collection"]["extension"][0]
    assert (
        ext["url"].endswith("specimen-specialHandling"),
        ext["valueCodeableConcept"]["coding"][0]["code"],
    ) == (
        True,
        "AMB",
    )


def test_same_death_record_same_ids_across_messages(h: ModuleType) -> None:
    """PDA resources of one patient keep their ids in a later message (it updates them)."""
    first = h.run("ADT^A03^ADT_A03", PID, PDA, ctl="A")
    second = h.run("ADT^A08^ADT_A01", PID, PDA, ctl="B")
    urls = [
        sorted(e["fullUrl"] for e in h.entries(b, "Observation") + h.entries(b, "Procedure"))
        for b in (first, second)
    ]
    assert urls[0] == urls[1]


def test_same_accident_same_id_across_messages(h: ModuleType) -> None:
    """An ACC without an identifier is named by patient and accident time: the same in each message."""
    acc = ACC.rsplit("|", 1)[0]  # without ACC-13
    first = h.entries(h.run("ADT^A01^ADT_A01", PID, acc, ctl="A"), "Observation")[0]["fullUrl"]
    second = h.entries(h.run("ADT^A08^ADT_A01", PID, acc, ctl="B"), "Observation")[0]["fullUrl"]
    assert first == second


def test_bed_status_is_the_beds_operational_status(h: ModuleType) -> None:
    """PV1-40 (bed status) is the operational status of the PV1-3 bed Location (IG PV1-40)."""
    pv1 = h.seg("PV1", {1: "1", 2: "I", 3: "4E^401^B^HOSP", 40: "O"})
    locations = h.resources(h.run("ADT^A01^ADT_A01", PID, pv1), "Location")
    assert [loc["operationalStatus"]["code"] for loc in locations if "operationalStatus" in loc] == ["O"]


# ------------------------------- Encounter status and locations, alternate codes, specimens, order Provenance


def _encounter(h: ModuleType, msg_type: str, *segments: str) -> dict[str, Any]:
    return h.one(h.run(msg_type, PID, *segments), "Encounter")


@pytest.mark.parametrize(
    ("event", "status"),
    [("A01", "in-progress"), ("A03", "finished"), ("A05", "planned"), ("A11", "cancelled")],
)
def test_adt_event_gives_the_encounter_status(h: ModuleType, event: str, status: str) -> None:
    """An ADT trigger event in the IG Event[EncounterStatus] map sets Encounter.status."""
    enc = _encounter(h, f"ADT^{event}^ADT_{event}", "PV1|1|I|WARD^101^A")
    assert enc["status"] == status


def test_event_status_wins_over_the_discharge_time(h: ModuleType) -> None:
    """A cancel-discharge (A13) with a PV1-45 is in progress again, not finished."""
    enc = _encounter(h, "ADT^A13^ADT_A13", "PV1|1|I|WARD^101^A" + "|" * 42 + "20240101120000")
    assert enc["status"] == "in-progress"


def test_update_event_leaves_the_status_to_pv1(h: ModuleType) -> None:
    """An A08 (event status "unknown") keeps the PV1-2 derived status."""
    enc = _encounter(h, "ADT^A08^ADT_A08", "PV1|1|I|WARD^101^A")
    assert enc["status"] == "in-progress"


def test_non_adt_message_keeps_the_patient_class_status(h: ModuleType) -> None:
    """Outside ADT the event map does not apply: PV1-2 "P" gives "planned"."""
    bundle = h.run("ORU^R01^ORU_R01", PID, PV1_PREADMIT, "OBR|1|P1|F1|24323-8^Panel^LN")
    assert h.one(bundle, "Encounter")["status"] == "planned"


def test_preadmit_plans_only_the_assigned_location(h: ModuleType) -> None:
    """PV1-2 "P": the PV1-3 location is "planned", the PV1-11 temporary location "active"."""
    enc = _encounter(h, "ADT^A05^ADT_A05", PV1_PREADMIT)
    assert [loc["status"] for loc in enc["location"]] == ["planned", "active"]


def test_alternate_priority_code_goes_through_the_concept_map(h: ModuleType) -> None:
    """PV2-25 CWE.4 without a coding system is a table 0217 code: mapped to ActPriority too."""
    enc = _encounter(h, "ADT^A01^ADT_A01", "PV1|1|I|WARD^101^A", "PV2|" + "|" * 24 + "2^^^3")
    assert [c["code"] for c in enc["priority"]["coding"]] == ["UR", "EL"]


def test_alternate_code_of_a_named_table_keeps_the_senders_coding(h: ModuleType) -> None:
    """A CWE.4 of an HL7 table is mapped, and the sender's coding follows the mapped one."""
    enc = _encounter(h, "ADT^A01^ADT_A01", "PV1|1|I|WARD^101^A", "PV2|" + "|" * 24 + "2^^^3^^HL70217")
    assert [c["code"] for c in enc["priority"]["coding"]] == ["UR", "EL", "3"]


def test_alternate_specimen_type_is_coded_in_table_0487(h: ModuleType) -> None:
    """SPM-4 CWE.4 without a system gets the SpecimenType map's v2-0487 system."""
    bundle = h.run("OUL^R22^OUL_R22", PID, "SPM|1|SP1&LAB||ASERU^Serum^^FUR")
    codings = h.one(bundle, "Specimen")["type"]["coding"]
    assert codings[1]["system"] == "http://terminology.hl7.org/CodeSystem/v2-0487"


def _specimen(h: ModuleType, *after_spm: str) -> dict[str, Any]:
    bundle = h.run("OUL^R22^OUL_R22", PID, SPM, *after_spm)
    return h.one(bundle, "Specimen")


def test_sac_after_the_specimens_obx_still_describes_the_specimen(h: ModuleType) -> None:
    """A SAC that follows the SPM's OBX gives the specimen its container identifier."""
    spec = _specimen(h, "OBX|1|NM|8867-4^Heart rate^LN||60||||||F", "SAC||ACC9|CONT7")
    assert spec["container"][0]["identifier"][0]["value"] == "CONT7"


def test_sac_gives_the_accession_identifier(h: ModuleType) -> None:
    """SAC-2 is the specimen's accession identifier when SPM-30 gave none."""
    spec = _specimen(h, "SAC||ACC9|CONT7")
    assert spec["accessionIdentifier"]["value"] == "ACC9"


def test_sac_volumes_become_capacity_and_quantity(h: ModuleType) -> None:
    """SAC-21 container volume -> capacity, SAC-22 available volume -> specimenQuantity (SAC-24 unit)."""
    spec = _specimen(h, "SAC|1|ACC9|CONT7" + "|" * 18 + "10|5|7|mL^^UCUM")
    box = spec["container"][0]
    assert (box["capacity"]["value"], box["specimenQuantity"]["value"], box["capacity"]["code"]) == (
        10,
        5,
        "mL",
    )


def test_sac_in_a_new_order_group_does_not_touch_the_old_specimen(h: ModuleType) -> None:
    """A SAC after a later OBR (no SPM of its own) is not the earlier specimen's container."""
    spec = _specimen(h, "OBR|2|P2|F2|24323-8^Panel^LN", "SAC||ACC9|CONT7")
    assert "container" not in spec


def test_sac_values_stay_out_of_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """A unique SAC value never reaches a log record (PHI canary)."""
    canary = "CANARY9041"
    raw = "\r".join(
        [
            "MSH|^~\\&|A|B|C|D|20240102123000||OUL^R22^OUL_R22|C1|P|2.5.1",
            PID,
            SPM,
            f"SAC||{canary}|{canary}" + "|" * 18 + f"{canary}|x|y|{canary}",
        ]
    )
    bundle = convert(raw)
    assert (canary in str(bundle), canary in caplog.text) == (True, False)


ORC_FACILITY = {
    1: "NW",
    2: "P1",
    3: "F1",
    9: "20240101120000",
    12: "D12^Order^Olivia",
    21: "Good Hospital^L^^^^HOSP&1.2.3&ISO^XX^^^GH1",
    22: "1 Main St^^Town^ST^12345",
    23: "^WPN^PH^^1^555^1234567",
    24: "2 Side St^^Town^ST^12345",
}


def _order_provenance(h: ModuleType) -> tuple[dict[str, Any], dict[str, Any]]:
    bundle = h.run("ORM^O01^ORM_O01", PID, h.seg("ORC", ORC_FACILITY), "OBR|1|P1|F1|X^Y^L")
    prov = next(p for p in h.resources(bundle, "Provenance") if "location" in p)
    return bundle, prov


def test_ordering_facility_is_the_provenance_location(h: ModuleType) -> None:
    """ORC-21 (XON[Location]) is the order Provenance's location, named by XON.1."""
    bundle, prov = _order_provenance(h)
    rid = prov["location"]["reference"]
    place = next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == rid)
    assert (place["name"], place["identifier"][0]["value"]) == ("Good Hospital", "GH1")


def test_ordering_facility_has_address_and_phone(h: ModuleType) -> None:
    """ORC-22 / ORC-23 are the ordering facility Location's address and telecom."""
    bundle, prov = _order_provenance(h)
    place = next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == prov["location"]["reference"])
    assert (place["address"]["line"], place["telecom"][0]["value"][-7:]) == (["1 Main St"], "1234567")


def test_ordering_provider_address(h: ModuleType) -> None:
    """ORC-24 is the ordering provider's (ORC-12, the author agent) address."""
    bundle, prov = _order_provenance(h)
    author = next(a for a in prov["agent"] if a["type"]["coding"][0]["code"] == "author")
    doctor = next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == author["who"]["reference"])
    assert doctor["address"][0]["line"] == ["2 Side St"]


def test_translated_codings_keep_the_coding_system_versions(h: ModuleType) -> None:
    """CWE.7 / CWE.8 stay the version of the first / alternate coding after the concept map."""
    pv2 = "PV2|" + "|" * 24 + "2^^^3^^^V1.2^V1.3"
    enc = _encounter(h, "ADT^A01^ADT_A01", "PV1|1|I|WARD^101^A", pv2)
    assert [c.get("version") for c in enc["priority"]["coding"]] == ["V1.2", "V1.3"]


def test_unmapped_code_keeps_its_version_once(h: ModuleType) -> None:
    """A code the map does not know keeps CWE.7 as it always did (no second version)."""
    pv2 = "PV2|" + "|" * 24 + "9^^LOCAL^^^^V2"
    enc = _encounter(h, "ADT^A01^ADT_A01", "PV1|1|I|WARD^101^A", pv2)
    assert enc["priority"]["coding"] == [{"system": "urn:id:LOCAL", "code": "9", "version": "V2"}]


def test_untranslated_result_status_is_kept_as_an_alternate_code(h: ModuleType) -> None:
    """OBX-11 'S' (no IG target) gives status unknown with the v2 code in alternate-codes."""
    bundle = h.run("ORU^R01^ORU_R01", PID, "OBR|1|P1|F1|24323-8^Panel^LN", "OBX|1|NM|1-8^X^LN||5||||||S")
    obs = h.one(bundle, "Observation")
    ext = obs["_status"]["extension"][0]
    assert (obs["status"], ext["valueCodeableConcept"]["coding"][0]["code"]) == ("unknown", "S")


def test_visit_description_is_the_encounter_narrative(h: ModuleType) -> None:
    """PV2-12 is the Encounter's narrative (IG text.div), status "additional", text escaped."""
    enc = _encounter(h, "ADT^A01^ADT_A01", "PV1|1|I|WARD^101^A", "PV2|" + "|" * 11 + "Check <up> \\T\\ go")
    assert enc["text"] == {
        "status": "additional",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml">Check &lt;up&gt; &amp; go</div>',
    }


def test_container_type_and_additive_are_one_container(h: ModuleType) -> None:
    """SPM-27 (container type) and SPM-6 (additive) describe the same Specimen.container."""
    spm = h.seg(
        "SPM", {1: "1", 2: "SP1&LAB", 4: "SER^Serum^HL70487", 6: "HEP^Heparin^HL70371", 27: "TUBE^Tube^L"}
    )
    spec = h.one(h.run("OUL^R22^OUL_R22", PID, spm), "Specimen")
    assert [sorted(c) for c in spec["container"]] == [["additiveCodeableConcept", "type"]]


def test_entering_device_is_a_provenance_agent(h: ModuleType) -> None:
    """ORC-18 (CWE[Device]) is an agent of the order Provenance: a Device with id and name."""
    bundle = h.run(
        "ORM^O01^ORM_O01", PID, h.seg("ORC", {**ORC_FACILITY, 18: "DEV1^Order kiosk^L"}), "OBR|1|P1|F1|X^Y^L"
    )
    prov = next(p for p in h.resources(bundle, "Provenance") if "location" in p)
    refs = [a["who"]["reference"] for a in prov["agent"] if "type" not in a]
    device = next(e["resource"] for e in bundle["entry"] if e["fullUrl"] in refs)
    assert (device["identifier"][0]["value"], device["deviceName"][0]["name"]) == ("DEV1", "Order kiosk")


def test_event_without_operator_is_authored_by_the_responsible_organization(h: ModuleType) -> None:
    """No EVN-5: the EVN Provenance's agent is the MSH-22 sending responsible organisation."""
    raw = "\r".join(
        [
            "MSH|^~\\&|APP|FAC|R|RF|20240102123000-0500||ADT^A01^ADT_A01|C1|P|2.8"
            + "|" * 10
            + "Resp Org^^^^^^^^^RO1",
            "EVN|A01|20240102123000",
            PID,
            "PV1|1|I|WARD^101^A",
        ]
    )
    bundle = convert(raw)
    prov = next(
        p
        for p in h.resources(bundle, "Provenance")
        if p.get("activity", {}).get("coding", [{}])[0].get("code") == "A01"
    )
    org = next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == prov["agent"][0]["who"]["reference"])
    assert org["name"] == "Resp Org"


def test_preadmit_plans_an_assigned_location_without_point_of_care(h: ModuleType) -> None:
    """PV1-3 with only room and bed (no PL.1) is still the planned assigned location."""
    enc = _encounter(h, "ADT^A05^ADT_A05", "PV1|1|P|^101^A||||||||TEMP^9^B")
    assert [loc["status"] for loc in enc["location"]] == ["planned", "active"]


def test_specimen_amount_unit_given_by_its_text(h: ModuleType) -> None:
    """SPM-12 '40^&lbs' (units with text only): the Quantity's unit is that text."""
    spm = h.seg("SPM", {1: "1", 2: "SP1&LAB", 4: "SER^Serum^HL70487", 12: "40^&lbs"})
    spec = h.one(h.run("OUL^R22^OUL_R22", PID, spm), "Specimen")
    assert spec["collection"]["quantity"] == {"value": 40, "unit": "lbs"}


def test_tq1_quantity_unit_given_by_its_text(h: ModuleType) -> None:
    """TQ1-2 '54^&lbs' gives the ServiceRequest quantity with unit 'lbs'."""
    bundle = h.run("ORM^O01^ORM_O01", PID, "ORC|NW|P1|F1", "TQ1|1|54^&lbs", "OBR|1|P1|F1|X^Y^L")
    assert h.one(bundle, "ServiceRequest")["quantityQuantity"] == {"value": 54, "unit": "lbs"}


def test_prior_temporary_location_is_a_completed_temporary_location(h: ModuleType) -> None:
    """PV1-43 is an Encounter.location "completed", classified temporary."""
    enc = _encounter(h, "ADT^A01^ADT_A01", "PV1|1|I" + "|" * 41 + "XRAY^1^A")
    loc = enc["location"][0]
    kind = loc["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]
    assert (loc["status"], kind) == ("completed", "temporary")


def test_temporary_locations_do_not_return_as_assigned_or_prior(h: ModuleType) -> None:
    """HL7 -> FHIR -> HL7 keeps PV1-3 and PV1-6 when PV1-11 / PV1-43 temporary locations exist."""
    pv1 = h.seg("PV1", {1: "1", 2: "I", 3: "WARD^101^A", 6: "OLD^9^B", 11: "TEMP^1^C", 43: "XRAY^2^D"})
    back = parse_message(fhir_to_hl7v2(h.run("ADT^A02^ADT_A02", PID, pv1))[0])
    seg = next(s for s in back.segments if s.name == "PV1")
    assert (seg.get(3), seg.get(6)) == ("WARD", "OLD")


def test_death_location_is_a_completed_location_of_the_visit(h: ModuleType) -> None:
    """PDA-2 (no IG table) adds the death location to the Encounter as "completed"."""
    bundle = h.run("ADT^A03^ADT_A03", PID, "PV1|1|I", "PDA||ICU^1^A")
    enc = h.one(bundle, "Encounter")
    place = next(
        e["resource"] for e in bundle["entry"] if e["fullUrl"] == enc["location"][0]["location"]["reference"]
    )
    assert (enc["location"][0]["status"], place["name"]) == ("completed", "A")


def test_discharge_location_kind_reads_the_subcomponents(h: ModuleType) -> None:
    """PV1-37 DLD.1 '22&Homes&FDK' gives a kind Location coded 22 (FDK) and named Homes."""
    bundle = h.run("ADT^A03^ADT_A03", PID, "PV1|1|I" + "|" * 35 + "22&Homes&FDK")
    enc = h.one(bundle, "Encounter")
    ref = enc["hospitalization"]["destination"]["reference"]
    place = next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == ref)
    assert (place["name"], place["type"][0]["coding"][0]["code"]) == ("Homes", "22")


# ------------------------------------------ Allergy clinical status (IAM-17), diagnoses sent before the visit


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
