"""The Bundle: transaction shape, deterministic ids, conditional requests, merges, status updates."""

from __future__ import annotations

from types import ModuleType
from urllib.parse import unquote

from pyheart.transformers.hl7v2_fhir import Options, convert

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
PID_OTHER_NAME = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe-Smith^Jane||19800203|F"
ORC = "ORC|RE|P1^EHR|F1^LAB"


def _obr(h: ModuleType, status: str) -> str:
    return str(h.seg("OBR", {1: "1", 2: "P1^EHR", 3: "F1^LAB", 4: "24323-8^Panel^LN", 25: status}))


def test_transaction_bundle(h: ModuleType) -> None:
    """The output is a transaction Bundle whose entries all have a urn:uuid fullUrl and a PUT."""
    bundle = h.run("ADT^A01^ADT_A01", PID)
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "transaction")
    assert all(
        e["fullUrl"].startswith("urn:uuid:") and e["request"]["method"] == "PUT" for e in bundle["entry"]
    )


def test_patient_conditional_update(h: ModuleType) -> None:
    """The Patient is a conditional update on its PID-3 identifier (system|value)."""
    entry = h.entries(h.run("ADT^A01^ADT_A01", PID), "Patient")[0]
    assert unquote(entry["request"]["url"]) == "Patient?identifier=urn:oid:1.2.3|MRN1"


def test_same_patient_same_id_across_messages(h: ModuleType) -> None:
    """Two different messages about one patient give the same Patient id and conditional URL."""
    first = h.entries(h.run("ADT^A01^ADT_A01", PID, ctl="A"), "Patient")[0]
    second = h.entries(h.run("ADT^A08^ADT_A01", PID_OTHER_NAME, ctl="B"), "Patient")[0]
    assert (first["fullUrl"], first["request"]) == (second["fullUrl"], second["request"])


def test_different_patients_different_ids(h: ModuleType) -> None:
    """Different identifiers give different Patient ids."""
    a = h.entries(h.run("ADT^A01^ADT_A01", PID), "Patient")[0]["fullUrl"]
    b = h.entries(h.run("ADT^A01^ADT_A01", PID.replace("MRN1", "MRN2")), "Patient")[0]["fullUrl"]
    assert a != b


def test_conversion_is_deterministic(h: ModuleType) -> None:
    """The same message converts to the same Bundle, ids included."""
    segs = (PID, "PV1|1|I", ORC, _obr(h, "F"), "OBX|1|NM|2345-7^Glucose^LN||5||||||F")
    assert h.run("ORU^R01^ORU_R01", *segs) == h.run("ORU^R01^ORU_R01", *segs)


def test_unidentified_resource_put_by_id(h: ModuleType) -> None:
    """A resource without a business identifier is a PUT by its message-derived id."""
    entry = h.entries(h.run("ADT^A01^ADT_A01", PID, "PV1|1|I"), "Encounter")[0]
    rid = entry["resource"]["id"]
    assert (entry["request"]["url"], entry["fullUrl"]) == (f"Encounter/{rid}", f"urn:uuid:{rid}")


def test_conditional_entry_has_no_id(h: ModuleType) -> None:
    """A conditional update leaves the id to the server's match."""
    entry = h.entries(h.run("ADT^A01^ADT_A01", PID), "Patient")[0]
    assert "id" not in entry["resource"]


def test_identifier_without_authority_uses_sender(h: ModuleType) -> None:
    """An identifier without an assigning authority is scoped to the sender (MSH-4)."""
    entry = h.entries(h.run("ADT^A01^ADT_A01", "PID|1||MRN9||Doe^J"), "Patient")[0]
    assert unquote(entry["request"]["url"]) == "Patient?identifier=urn:id:SENDFAC|MRN9"


def test_references_resolve_within_bundle(h: ModuleType) -> None:
    """Every urn:uuid reference points at an entry of the same Bundle."""
    bundle = h.run("ORU^R01^ORU_R01", PID, "PV1|1|I|W^1^A", ORC, _obr(h, "F"), "OBX|1|NM|X^Y^LN||5||||||F")
    urls = {e["fullUrl"] for e in bundle["entry"]}
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str):
                refs.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([e["resource"] for e in bundle["entry"]])
    assert refs
    assert set(refs) <= urls


def test_merge_links_patients(h: ModuleType) -> None:
    """A40 merge: the surviving Patient 'replaces' the prior one, which is inactive and 'replaced-by'."""
    bundle = h.run("ADT^A40^ADT_A39", "EVN|A40|20240102", PID, "MRG|OLD7^^^HOSP&1.2.3&ISO^MR")
    new_entry, old_entry = h.entries(bundle, "Patient")
    assert new_entry["resource"]["link"] == [
        {"other": {"reference": old_entry["fullUrl"]}, "type": "replaces"}
    ]
    assert old_entry["resource"]["link"] == [
        {"other": {"reference": new_entry["fullUrl"]}, "type": "replaced-by"}
    ]
    assert old_entry["resource"]["active"] is False
    assert unquote(old_entry["request"]["url"]) == "Patient?identifier=urn:oid:1.2.3|OLD7"


def test_prior_patient_id_matches_its_own_messages(h: ModuleType) -> None:
    """The merged-away Patient has the id earlier messages about it produced."""
    before = h.entries(h.run("ADT^A01^ADT_A01", PID.replace("MRN1", "OLD7")), "Patient")[0]["fullUrl"]
    merge = h.run("ADT^A40^ADT_A39", PID, "MRG|OLD7^^^HOSP&1.2.3&ISO^MR")
    assert before == h.entries(merge, "Patient")[1]["fullUrl"]


def test_result_status_update_same_observation(h: ModuleType) -> None:
    """A preliminary then a corrected result update the same Observation, with the new status."""
    prelim = h.run(
        "ORU^R01^ORU_R01", PID, ORC, _obr(h, "P"), "OBX|1|NM|2345-7^Glucose^LN||182||||||P", ctl="1"
    )
    final = h.run(
        "ORU^R01^ORU_R01", PID, ORC, _obr(h, "C"), "OBX|1|NM|2345-7^Glucose^LN||180||||||C", ctl="2"
    )
    (p_entry,), (f_entry,) = h.entries(prelim, "Observation"), h.entries(final, "Observation")
    assert (p_entry["fullUrl"], p_entry["request"]) == (f_entry["fullUrl"], f_entry["request"])
    assert (p_entry["resource"]["status"], f_entry["resource"]["status"]) == ("preliminary", "corrected")


def test_report_status_update_same_report(h: ModuleType) -> None:
    """OBR-25 preliminary then final: the same DiagnosticReport, status preliminary then final."""
    prelim = h.run("ORU^R01^ORU_R01", PID, ORC, _obr(h, "P"), ctl="1")
    final = h.run("ORU^R01^ORU_R01", PID, ORC, _obr(h, "F"), ctl="2")
    (p_entry,), (f_entry,) = h.entries(prelim, "DiagnosticReport"), h.entries(final, "DiagnosticReport")
    assert p_entry["request"] == f_entry["request"]
    assert (p_entry["resource"]["status"], f_entry["resource"]["status"]) == ("preliminary", "final")


def test_segments_after_a_merged_duplicate_complete_the_stored_resource(h: ModuleType) -> None:
    """Two order groups with the same order numbers are one DiagnosticReport and one
    ServiceRequest (same identifiers, same resource): the second group's results, notes and
    performers complete that resource instead of a discarded copy."""
    obx_1 = "OBX|1|NM|2345-7^Glucose^LN||182||||||F"
    obx_2 = "OBX|2|NM|2951-2^Sodium^LN||140||||||F"
    bundle = h.run(
        "ORU^R01^ORU_R01",
        PID,
        ORC,
        _obr(h, "F"),
        obx_1,
        ORC,
        _obr(h, "F"),
        "NTE|1||Second group note",
        obx_2,
        "NTE|1||Sodium note",
    )
    report = h.one(bundle, "DiagnosticReport")
    assert len(report["result"]) == 2
    assert [n["text"] for n in h.one(bundle, "ServiceRequest")["note"]] == ["Second group note"]
    sodium = next(o for o in h.resources(bundle, "Observation") if o["code"]["coding"][0]["code"] == "2951-2")
    assert sodium["note"] == [{"text": "Sodium note"}]


def test_a_repeated_segment_adds_no_repeated_items(h: ModuleType) -> None:
    """An OBX sent twice (same identifiers) with its NTE each time: one Observation, one note."""
    obx = "OBX|1|NM|2345-7^Glucose^LN||182||||||F"
    bundle = h.run("ORU^R01^ORU_R01", PID, ORC, _obr(h, "F"), obx, "NTE|1||Fasting", obx, "NTE|1||Fasting")
    (observation,) = h.resources(bundle, "Observation")
    assert observation["note"] == [{"text": "Fasting"}]
    assert len(h.one(bundle, "DiagnosticReport")["result"]) == 1


def test_an_order_number_reused_for_another_patient_is_kept_apart(h: ModuleType) -> None:
    """Two patients' order groups with the same order numbers: never one resource. The second
    patient's order and report are their own (an id of their own in this message), with that
    patient's note and result; nothing of theirs lands on the first patient's."""
    other = "PID|2||MRN2^^^HOSP&1.2.3&ISO^MR||Roe^Bob||19700101|M"
    bundle = h.run(
        "ORU^R01^ORU_R01",
        PID,
        _obr(h, "F"),
        "OBX|1|NM|2345-7^Glucose^LN||100||||||F",
        other,
        _obr(h, "F"),
        "NTE|1||Second patient's note",
        "OBX|2|NM|718-7^Hemoglobin^LN||9||||||F",
    )
    urls = {id(e["resource"]): e["fullUrl"] for e in bundle["entry"]}
    for rtype in ("ServiceRequest", "DiagnosticReport", "Observation"):
        found = h.resources(bundle, rtype)
        assert len({r["subject"]["reference"] for r in found}) == 2, rtype
    for report in h.resources(bundle, "DiagnosticReport"):
        for result in report["result"]:
            observation = next(
                o for o in h.resources(bundle, "Observation") if urls[id(o)] == result["reference"]
            )
            assert observation["subject"] == report["subject"]
    noted = [o for o in h.resources(bundle, "ServiceRequest") if "note" in o]
    patients = {urls[id(p)]: p["name"][0]["family"] for p in h.resources(bundle, "Patient")}
    assert [patients[o["subject"]["reference"]] for o in noted] == ["Roe"]


def test_a_repeated_pid_completes_the_patient(h: ModuleType) -> None:
    """A second PID with the same identifiers adds what the first lacked (PID-10 race)."""
    race_pid = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F||2106-3^White^CDCREC"
    patient = h.one(h.run("ADT^A08^ADT_A01", PID, race_pid), "Patient")
    assert any(e["url"].endswith("us-core-race") for e in patient.get("extension", []))


def test_a_repeated_dg1_is_one_diagnosis(h: ModuleType) -> None:
    """The same DG1 twice: one Condition, listed once on the Encounter."""
    dg1 = "DG1|1||I10^Hypertension^I10||20240101|A"
    bundle = h.run("ADT^A08^ADT_A01", PID, "PV1|1|I", dg1, dg1)
    (condition,) = h.resources(bundle, "Condition")
    assert len(h.one(bundle, "Encounter")["diagnosis"]) == 1
    assert condition["code"]["coding"][0]["code"] == "I10"


def test_batch_bundle_uses_ids(h: ModuleType) -> None:
    """bundle_type batch: PUT Type/id everywhere and references of the form Type/id."""
    bundle = h.run("ADT^A01^ADT_A01", PID, "PV1|1|I", bundle_type="batch")
    patient = h.entries(bundle, "Patient")[0]
    assert patient["request"]["url"] == f"Patient/{patient['resource']['id']}"
    assert h.one(bundle, "Encounter")["subject"] == {"reference": f"Patient/{patient['resource']['id']}"}


def test_batch_and_transaction_share_ids(h: ModuleType) -> None:
    """The deterministic Patient id is the same whichever bundle type is asked for."""
    tx = h.entries(h.run("ADT^A01^ADT_A01", PID), "Patient")[0]["fullUrl"]
    batch = h.entries(h.run("ADT^A01^ADT_A01", PID, bundle_type="batch"), "Patient")[0]["fullUrl"]
    assert tx == batch


def test_options_drop_header_and_provenance(h: ModuleType) -> None:
    """message_header/provenance off: no MessageHeader and no Provenance."""
    bundle = h.run("ADT^A01^ADT_A01", "EVN|A01|20240102120000", PID, message_header=False, provenance=False)
    assert h.resources(bundle, "MessageHeader") == h.resources(bundle, "Provenance") == []


def test_no_zone_anywhere_keeps_date(h: ModuleType) -> None:
    """Without a zone in the value or in MSH-7, a time keeps day precision."""
    msg = h.er7("ADT^A01^ADT_A01", "PID|1||M1||Doe^J", "PV1|1|I" + "|" * 42 + "202401020800").replace(
        "20240102123000-0500", "20240102123000"
    )

    assert h.one(convert(msg), "Encounter")["period"]["start"] == "2024-01-02"


def test_default_timezone_option(h: ModuleType) -> None:
    """default_timezone supplies the zone when neither the value nor MSH-7 has one."""
    msg = h.er7("ADT^A01^ADT_A01", "PID|1||M1||Doe^J", "PV1|1|I" + "|" * 42 + "202401020800").replace(
        "20240102123000-0500", "20240102123000"
    )

    enc = h.one(convert(msg, Options(default_timezone="+01:00")), "Encounter")
    assert enc["period"]["start"] == "2024-01-02T08:00:00+01:00"


def test_patient_id_from_medical_record_number(h: ModuleType) -> None:
    """The Patient id follows the MR identifier whatever position it has in PID-3."""
    a = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR~X9^^^OTHER^PI||Doe^Jane"
    b = "PID|1||X9^^^OTHER^PI~MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane"
    first = h.entries(h.run("ADT^A01^ADT_A01", a), "Patient")[0]
    second = h.entries(h.run("ADT^A08^ADT_A01", b), "Patient")[0]
    assert (first["fullUrl"], first["request"]) == (second["fullUrl"], second["request"])


def test_merge_linkage(h: ModuleType) -> None:
    """A merge also records a Linkage: the surviving Patient is the source, the prior historical."""
    bundle = h.run("ADT^A40^ADT_A39", PID, "MRG|OLD7^^^HOSP&1.2.3&ISO^MR")
    new_entry, old_entry = h.entries(bundle, "Patient")
    items = h.one(bundle, "Linkage")["item"]
    assert [(i["type"], i["resource"]["reference"]) for i in items] == [
        ("source", new_entry["fullUrl"]),
        ("historical", old_entry["fullUrl"]),
    ]
