"""Clinical mappings: Observation components from a repeating OBX-5 (and their fold back into one
OBX), and the segments without IG tables that carry clinical data (ACC, PDA, DB1)."""

from __future__ import annotations

import json
from types import ModuleType

from pyheart.broker.hl7v2 import parse_message
from pyheart.transformers.fhir_hl7v2 import fhir_to_hl7v2

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
OBX_REPEATED = "OBX|1|NM|8867-4^Heart rate^LN||60~120|/min^^UCUM|70-80|||||F"
ACC = "ACC|20140317||Route 50 intersection||Y|N|D123^Smith^Ann|car accident||Y|1 Main St^^Fairfax^VA||R77"
PDA = "PDA|||Y|20211102123000|D1^Cert^Rob|Y|20211102103000^20211102113000|D2^Path^Jo|N"


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
