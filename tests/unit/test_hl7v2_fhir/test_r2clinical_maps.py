"""Round-2 clinical mappings: the Encounter status from the trigger event (IG MSH[Encounter]),
PV1 location statuses, alternate codes through the field's concept map, and SAC containers."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from pyheart.broker.hl7v2 import parse_message
from pyheart.transformers.fhir_hl7v2 import fhir_to_hl7v2
from pyheart.transformers.hl7v2_fhir.api import convert

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
PV1_PREADMIT = "PV1|1|P|WARD^101^A||||||||TEMP^9^B"
SPM = "SPM|1|SP1&LAB||SER^Serum^HL70487"


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
