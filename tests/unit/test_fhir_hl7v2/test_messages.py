"""FHIR R4 -> HL7 v2: which messages an input yields, what their segments carry, and that every
message passes hl7apy's STRICT validation."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest

from pyheart.broker.hl7v2 import Hl7Message, Segment, parse_message
from pyheart.transformers.fhir_hl7v2 import fhir_to_hl7v2


def seg(msg: Hl7Message, name: str) -> Segment:
    """The first ``name`` segment of ``msg`` (which must have one)."""
    found = msg.segment(name)
    assert found is not None, name
    return found


def convert(data: dict[str, Any], **config: Any) -> list[Hl7Message]:
    """Convert and parse every output message."""
    return [parse_message(m) for m in fhir_to_hl7v2(json.dumps(data), config)]


def kinds(messages: list[Hl7Message]) -> list[str]:
    """MSH-9 of each message."""
    return [m.msh.raw(9) for m in messages]


def adt_input(fx: ModuleType) -> dict[str, Any]:
    """Patient with next of kin and insurance."""
    p = fx.patient()
    org = fx.organization()
    bundle: dict[str, Any] = fx.bundle(p, fx.related_person(p), org, fx.coverage(p, org))
    return bundle


CASES: dict[str, Callable[[ModuleType], dict[str, Any]]] = {
    "adt": adt_input,
    "encounter": lambda fx: fx.bundle(fx.patient(), fx.practitioner(), fx.encounter(fx.patient())),
    "oru": lambda fx: fx.oru_bundle(),
    "order": lambda fx: fx.bundle(
        fx.patient(), fx.practitioner(), fx.service_request(fx.patient()), fx.specimen(fx.patient())
    ),
    "vxu": lambda fx: fx.bundle(fx.patient(), fx.practitioner(), fx.immunization(fx.patient())),
    "siu": lambda fx: fx.bundle(fx.patient(), fx.practitioner(), fx.appointment(fx.patient())),
}


# ------------------------------------------------------------------------------------------ selection
def test_patient_gives_adt_a04_by_default(fx: ModuleType) -> None:
    """A Patient on its own becomes ADT^A04 (structure ADT_A01)."""
    assert kinds(convert(fx.patient())) == ["ADT^A04^ADT_A01"]


@pytest.mark.parametrize(("event", "expected"), [("A08", "ADT^A08^ADT_A01"), ("A31", "ADT^A31^ADT_A05")])
def test_patient_event_is_configurable(fx: ModuleType, event: str, expected: str) -> None:
    """``patient_event`` picks A04, A08 or A31."""
    assert kinds(convert(fx.patient(), patient_event=event)) == [expected]


@pytest.mark.parametrize(
    ("status", "expected"),
    [("in-progress", "ADT^A01^ADT_A01"), ("finished", "ADT^A03^ADT_A03"), ("planned", "ADT^A08^ADT_A01")],
)
def test_encounter_status_picks_the_adt_event(fx: ModuleType, status: str, expected: str) -> None:
    """An in-progress encounter is an admit/visit, a finished one a discharge, others an update."""
    p = fx.patient()
    assert kinds(convert(fx.bundle(p, fx.encounter(p, status)))) == [expected]


@pytest.mark.parametrize(("klass", "expected"), [("IMP", "ADT^A01^ADT_A01"), ("EMER", "ADT^A04^ADT_A01")])
def test_encounter_class_picks_admit_or_register(fx: ModuleType, klass: str, expected: str) -> None:
    """An in-progress inpatient stay is admitted (A01); an emergency visit is registered (A04)."""
    p = fx.patient()
    assert kinds(convert(fx.bundle(p, fx.encounter(p, "in-progress", klass)))) == [expected]


def test_encounter_with_a_completed_prior_location_is_a_transfer(fx: ModuleType) -> None:
    """An active location after a completed one makes ADT^A02 with PV1-6 the prior location."""
    p = fx.patient()
    enc = fx.encounter(p)
    enc["location"] = [
        {"location": {"display": "Ward 1"}, "status": "completed"},
        {"location": {"display": "Ward 3"}, "status": "active"},
    ]
    (msg,) = convert(fx.bundle(p, enc))
    assert (msg.msh.raw(9), seg(msg, "PV1").get(3), seg(msg, "PV1").get(6)) == (
        "ADT^A02^ADT_A02",
        "Ward 3",
        "Ward 1",
    )


def test_encounter_event_can_be_forced(fx: ModuleType) -> None:
    """``encounter_event`` overrides the choice by status."""
    p = fx.patient()
    assert kinds(convert(fx.bundle(p, fx.encounter(p, "finished")), encounter_event="A08")) == [
        "ADT^A08^ADT_A01"
    ]


def test_report_bundle_gives_one_oru(fx: ModuleType) -> None:
    """Patient, order, specimen, report and observations make one ORU^R01 and nothing else."""
    assert kinds(convert(fx.oru_bundle())) == ["ORU^R01^ORU_R01"]


@pytest.mark.parametrize(
    ("setting", "expected"), [("ORM^O01", "ORM^O01^ORM_O01"), ("OML^O21", "OML^O21^OML_O21")]
)
def test_service_request_gives_the_configured_order_message(
    fx: ModuleType, setting: str, expected: str
) -> None:
    """A ServiceRequest that no report answers is an ORM^O01 or an OML^O21."""
    p = fx.patient()
    assert kinds(convert(fx.bundle(p, fx.service_request(p)), order_message=setting)) == [expected]


def test_immunization_gives_vxu(fx: ModuleType) -> None:
    """An Immunization is a VXU^V04."""
    p = fx.patient()
    assert kinds(convert(fx.bundle(p, fx.immunization(p)))) == ["VXU^V04^VXU_V04"]


def test_appointment_gives_siu_and_uses_the_patient(fx: ModuleType) -> None:
    """An Appointment is an SIU^S12 whose PID is its patient (no separate ADT)."""
    p = fx.patient()
    assert kinds(convert(fx.bundle(p, fx.practitioner(), fx.appointment(p)))) == ["SIU^S12^SIU_S12"]


def test_message_header_event_decides_the_message(fx: ModuleType) -> None:
    """A MessageHeader with a v2 event code (as HL7 -> FHIR writes it) names the message to build."""
    p = fx.patient()
    header = {
        "resourceType": "MessageHeader",
        "id": "mh1",
        "eventCoding": {"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": "A08"},
        "source": {"endpoint": "urn:oid:1.2.3"},
    }
    assert kinds(convert(fx.bundle(header, p, fx.encounter(p)))) == ["ADT^A08^ADT_A01"]


# ------------------------------------------------------------------------------------------ content
def test_pid_carries_identifier_with_assigning_authority(fx: ModuleType) -> None:
    """PID-3 is value ^^^ &OID&ISO ^ type code."""
    pid = seg(convert(fx.patient())[0], "PID")
    assert (pid.get(3, 1), pid.get(3, 4, 2), pid.get(3, 4, 3), pid.get(3, 5)) == (
        "MRN-001",
        "2.16.840.1.113883.19.5",
        "ISO",
        "MR",
    )


def test_pid_carries_name_birth_date_and_sex(fx: ModuleType) -> None:
    """PID-5 family/given/middle/prefix/type, PID-7 and PID-8."""
    pid = seg(convert(fx.patient())[0], "PID")
    assert [pid.get(5, i) for i in (1, 2, 3, 5, 7)] + [pid.get(7), pid.get(8)] == [
        "Testperson",
        "Alex",
        "Quinn",
        "Dr",
        "L",
        "19800203",
        "F",
    ]


def test_pid_splits_home_and_work_telecom(fx: ModuleType) -> None:
    """Home phone and e-mail in PID-13, work phone in PID-14."""
    pid = seg(convert(fx.patient())[0], "PID")
    assert (pid.get(13, 1), pid.get(13, 4, repetition=1), pid.get(14, 1), pid.get(14, 2)) == (
        "555-0100",
        "alex@example.org",
        "555-0199",
        "WPN",
    )


def test_related_person_and_coverage_become_nk1_and_in1(fx: ModuleType) -> None:
    """NK1-2/3 from the RelatedPerson, IN1-2/3/4/36 from the Coverage and its payor."""
    msg = convert(adt_input(fx))[0]
    nk1 = seg(msg, "NK1")
    in1 = seg(msg, "IN1")
    assert [nk1.get(2), nk1.get(3), in1.get(2), in1.get(3), in1.get(4), in1.get(36)] == [
        "Testperson",
        "MTH",
        "PLAN-A",
        "INS-77",
        "Acme Health Plan",
        "POL-123",
    ]


def test_pv1_carries_class_location_attending_and_visit_number(fx: ModuleType) -> None:
    """PV1-2 from Encounter.class, PV1-3 location, PV1-7 attending, PV1-19 visit number, PV1-44."""
    p = fx.patient()
    pv1 = seg(convert(fx.bundle(p, fx.practitioner(), fx.encounter(p)))[0], "PV1")
    assert [pv1.get(2), pv1.get(3), pv1.get(7, 1), pv1.get(7, 2), pv1.get(19), pv1.get(44)] == [
        "I",
        "Ward 3",
        "1234567893",
        "Carer",
        "V-100",
        "20240506070000+0200",
    ]


def test_oru_carries_order_report_and_results(fx: ModuleType) -> None:
    """ORC-2/OBR-2 placer, OBR-3 filler, OBR-4 code, OBR-25 status, then OBX per observation."""
    msg = convert(fx.oru_bundle())[0]
    obr = seg(msg, "OBR")
    assert [seg(msg, "ORC").get(2), obr.get(2), obr.get(3), obr.get(4), obr.get(25)] == [
        "PLC-1",
        "PLC-1",
        "FIL-9",
        "24323-8",
        "F",
    ]


def test_obx_value_types_units_range_and_flags(fx: ModuleType) -> None:
    """Quantity -> NM with units, range and interpretation; coded -> CE; text -> ST."""
    obx = convert(fx.oru_bundle())[0].segments_named("OBX")
    first = obx[0]
    assert [first.get(2), first.get(5), first.get(6), first.get(7), first.get(8), first.get(11)] == [
        "NM",
        "105",
        "mg/dL",
        "70-99",
        "H",
        "F",
    ]
    assert [(o.get(2), o.get(5)) for o in obx[1:]] == [
        ("CE", "260385009"),
        ("ST", "see | note ^ with ~ delimiters & more"),
    ]


def test_observation_note_becomes_nte_after_its_obx(fx: ModuleType) -> None:
    """Observation.note follows its OBX as NTE-3."""
    names = [s.name for s in convert(fx.oru_bundle())[0]]
    assert names[-3:] == ["OBX", "NTE", "SPM"]


def test_specimen_becomes_spm(fx: ModuleType) -> None:
    """SPM-2 identifier, SPM-4 type, SPM-17 collection time."""
    spm = seg(convert(fx.oru_bundle())[0], "SPM")
    assert [spm.get(2), spm.get(4), spm.get(17)] == ["SPC-1", "119297000", "20240506063000+0000"]


def test_loose_observation_gets_its_own_obr(fx: ModuleType) -> None:
    """An Observation outside any report is an OBR (its code) with one OBX."""
    p = fx.patient()
    obs = fx.observation("o9", p, valueQuantity={"value": 1.5})
    msg = convert(fx.bundle(p, obs))[0]
    assert (seg(msg, "OBR").get(4), seg(msg, "OBX").get(5)) == ("2345-7", "1.5")


def test_observation_components_share_a_sub_id(fx: ModuleType) -> None:
    """A blood pressure's components are two OBX with the same OBX-4."""
    p = fx.patient()
    bp = fx.observation("bp", p)
    bp["code"] = {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}
    bp["component"] = [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {"value": 120},
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {"value": 80},
        },
    ]
    obx = convert(fx.bundle(p, bp))[0].segments_named("OBX")
    assert [(o.get(3), o.get(4), o.get(5)) for o in obx] == [("8480-6", "1", "120"), ("8462-4", "1", "80")]


def test_vxu_carries_vaccine_dose_lot_route_and_site(fx: ModuleType) -> None:
    """RXA-5 vaccine, RXA-6/7 dose, RXA-15 lot, RXA-20 completion, RXR-1/2 route and site."""
    p = fx.patient()
    msg = convert(fx.bundle(p, fx.practitioner(), fx.immunization(p)))[0]
    rxa, rxr = seg(msg, "RXA"), seg(msg, "RXR")
    assert [rxa.get(5), rxa.get(6), rxa.get(7), rxa.get(15), rxa.get(20), rxr.get(1), rxr.get(2)] == [
        "208",
        "0.3",
        "mL",
        "LOT42",
        "CP",
        "IM",
        "LA",
    ]


def test_siu_carries_schedule_service_location_and_personnel(fx: ModuleType) -> None:
    """SCH-1 id, SCH-25 status, AIS-3 service, AIL-3 room, AIP-3 practitioner."""
    p = fx.patient()
    msg = convert(fx.bundle(p, fx.practitioner(), fx.appointment(p)))[0]
    assert [
        seg(msg, "SCH").get(1),
        seg(msg, "SCH").get(25),
        seg(msg, "AIS").get(3),
        seg(msg, "AIL").get(3),
        seg(msg, "AIP").get(3, 2),
    ] == ["APT-1", "Booked", "394814009", "Room 1", "Carer"]


def test_conditional_reference_resolves_by_identifier(fx: ModuleType) -> None:
    """``Patient?identifier=system|value`` finds the Patient in the Bundle."""
    p = fx.patient()
    obs = fx.observation("o1", p, valueString="x")
    obs["subject"] = {"reference": "Patient?identifier=urn:oid:2.16.840.1.113883.19.5|MRN-001"}
    other = fx.patient("p2", "MRN-002")
    msg = convert(fx.bundle(other, p, obs))
    assert seg(msg[0], "PID").get(3) == "MRN-001"


# ------------------------------------------------------------------------------------------ framing
def test_msh7_has_a_time_zone(fx: ModuleType) -> None:
    """MSH-7 is a full timestamp with a UTC offset."""
    assert re.fullmatch(r"\d{14}[+-]\d{4}", convert(fx.patient())[0].msh.get(7))


def test_msh10_is_unique_per_message(fx: ModuleType) -> None:
    """Every emitted message has its own control id, within and across calls."""
    ids = [m.control_id for _ in range(20) for m in convert(fx.oru_bundle())]
    assert len(set(ids)) == len(ids)


def test_clock_and_control_id_are_injectable(fx: ModuleType) -> None:
    """MSH-7 and MSH-10 come from the given clock and id source."""
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    (er7,) = fhir_to_hl7v2(json.dumps(fx.patient()), clock=lambda: moment, control_id=lambda: "CTRL1")
    msh = parse_message(er7).msh
    assert (msh.get(7), msh.get(10)) == ("20240102030405+0000", "CTRL1")


def test_sending_and_receiving_applications_come_from_config(fx: ModuleType) -> None:
    """MSH-3..6 are the configured applications and facilities."""
    msh = convert(
        fx.patient(),
        sending_application="APP",
        sending_facility="FAC",
        receiving_application="RAPP",
        receiving_facility="RFAC",
    )[0].msh
    assert [msh.get(n) for n in (3, 4, 5, 6)] == ["APP", "FAC", "RAPP", "RFAC"]


def test_version_is_configurable(fx: ModuleType) -> None:
    """MSH-12 is the configured version."""
    assert convert(fx.patient(), version="2.6")[0].version == "2.6"


def test_delimiters_in_values_are_escaped(fx: ModuleType) -> None:
    """Values holding | ^ ~ \\ & and line breaks survive as one value."""
    p = fx.patient()
    tricky = "O|Br^i~e\\n&Co\nLine"
    p["name"][0]["family"] = tricky
    pid = seg(convert(p)[0], "PID")
    assert pid.get(5, 1) == tricky


def test_over_long_values_are_cut_to_the_datatype_limit(
    fx: ModuleType, strict: Callable[[str], None]
) -> None:
    """A 300-character family name is cut to ST's 199 characters, and the message stays valid."""
    p = fx.patient()
    p["name"][0]["family"] = "x" * 300
    (er7,) = fhir_to_hl7v2(json.dumps(p))
    strict(er7)
    assert seg(parse_message(er7), "PID").get(5, 1) == "x" * 199


# ------------------------------------------------------------------------------------------ hl7apy STRICT
@pytest.mark.parametrize("version", ["2.5", "2.5.1", "2.6"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_message_passes_hl7apy_strict(
    fx: ModuleType, strict: Callable[[str], None], case: str, version: str
) -> None:
    """Each kind of message, in each supported version, passes hl7apy STRICT validation."""
    messages = fhir_to_hl7v2(json.dumps(CASES[case](fx)), {"version": version})
    for er7 in messages:
        strict(er7)
    assert messages


@pytest.mark.parametrize(
    "config",
    [{"order_message": "OML^O21"}, {"patient_event": "A31"}, {"patient_event": "A08"}],
)
def test_configured_variants_pass_hl7apy_strict(
    fx: ModuleType, strict: Callable[[str], None], config: dict[str, str]
) -> None:
    """OML^O21 and the A31/A08 patient events pass hl7apy STRICT validation."""
    p = fx.patient()
    messages = fhir_to_hl7v2(json.dumps(fx.bundle(p, fx.service_request(p), fx.specimen(p))), config)
    messages += fhir_to_hl7v2(json.dumps(adt_input(fx)), config)
    for er7 in messages:
        strict(er7)
    assert len(messages) == 2


@pytest.mark.parametrize("status", ["in-progress", "finished", "planned"])
def test_adt_events_pass_hl7apy_strict(fx: ModuleType, strict: Callable[[str], None], status: str) -> None:
    """ADT A01, A03 and A08 from encounters pass hl7apy STRICT validation."""
    p = fx.patient()
    org = fx.organization()
    data = fx.bundle(
        p, fx.practitioner(), fx.encounter(p, status), fx.related_person(p), org, fx.coverage(p, org)
    )
    (er7,) = fhir_to_hl7v2(json.dumps(data))
    strict(er7)
    assert seg(parse_message(er7), "IN1") is not None


def test_minimal_resources_pass_hl7apy_strict(fx: ModuleType, strict: Callable[[str], None]) -> None:
    """Resources with only their required elements still give valid messages (HL7 nulls where needed)."""
    inputs = [
        {"resourceType": "Patient"},
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": {"text": "v"},
            "patient": {"reference": "Patient/1"},
            "occurrenceDateTime": "2024",
        },
        {"resourceType": "Appointment", "status": "proposed", "participant": [{"status": "needs-action"}]},
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/1"},
        },
        {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        },
    ]
    messages = [er7 for data in inputs for er7 in fhir_to_hl7v2(json.dumps(data))]
    for er7 in messages:
        strict(er7)
    assert len(messages) == len(inputs)


def test_input_is_not_mutated(fx: ModuleType) -> None:
    """Converting a dict leaves it unchanged."""
    data = fx.oru_bundle()
    before = copy.deepcopy(data)
    fhir_to_hl7v2(data)
    assert data == before


def test_long_text_result_is_one_repetition_per_line(fx: ModuleType, strict: Callable[[str], None]) -> None:
    """A multi-line text value is a TX with one OBX-5 repetition per line, and stays valid."""
    p = fx.patient()
    lines = [f"line {n} | with ^ delimiters " + "x" * 120 for n in range(12)]
    obs = fx.observation("o1", p, valueString="\n".join(lines))
    (er7,) = fhir_to_hl7v2(json.dumps(fx.bundle(p, obs)))
    strict(er7)
    obx = seg(parse_message(er7), "OBX")
    assert (obx.get(2), [r.text() for r in obx.reps(5)]) == ("TX", lines)


def test_over_long_text_line_is_cut_into_pieces(fx: ModuleType, strict: Callable[[str], None]) -> None:
    """One line longer than 199 characters becomes several repetitions that join back to it."""
    p = fx.patient()
    text = "y|" * 300
    (er7,) = fhir_to_hl7v2(json.dumps(fx.bundle(p, fx.observation("o1", p, valueString=text))))
    strict(er7)
    assert "".join(r.text() for r in seg(parse_message(er7), "OBX").reps(5)) == text


def test_contained_patient_is_resolved(fx: ModuleType) -> None:
    """A subject pointing at a contained Patient (``#id``) fills PID."""
    p = fx.patient("pc")
    obs = fx.observation("o1", p, valueString="x")
    obs["contained"] = [p]
    obs["subject"] = {"reference": "#pc"}
    assert seg(convert(obs)[0], "PID").get(3) == "MRN-001"
