"""Round trips through the HL7v2 -> FHIR transformer: HL7 v2 -> FHIR -> HL7 v2 keeps every field
the mappings cover (corpus messages), and FHIR -> HL7 v2 -> FHIR keeps the core elements
(hand-built input). Fields lossy by design are listed in docs/fhir-to-hl7v2-lossy-fields.md."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from corpus_paths import CORPUS

from pyheart.broker.hl7v2 import Hl7Message, parse_message
from pyheart.transformers.fhir_hl7v2 import fhir_to_hl7v2
from pyheart.transformers.hl7v2_fhir import convert

#: Corpus messages of the kinds FHIR -> HL7 v2 emits (ADT, ORU, ORM/OML, VXU, SIU).
MESSAGES = [
    "ms-fhir-converter/hl7v2/ADT-A01-01.hl7",
    "ms-fhir-converter/hl7v2/ADT-A01-02.hl7",
    "ms-fhir-converter/hl7v2/ADT-A04-01.hl7",
    "ms-fhir-converter/hl7v2/ADT-A04-02.hl7",
    "ms-fhir-converter/hl7v2/ADT-A08-01.hl7",
    "ms-fhir-converter/hl7v2/ADT-A08-02.hl7",
    "ms-fhir-converter/hl7v2/VXU-V04-01.hl7",
    "ms-fhir-converter/hl7v2/VXU-V04-02.hl7",
    "ms-fhir-converter/hl7v2/SIU-S12-01.hl7",
    "ms-fhir-converter/hl7v2/SIU-S12-02.hl7",
    "ms-fhir-converter/hl7v2/SIU-S14-01.hl7",
    "ms-fhir-converter/hl7v2/SIU-S15-01.hl7",
    "ms-fhir-converter/hl7v2/ORM-O01-01.hl7",
    "ms-fhir-converter/hl7v2/ORM-O01-03.hl7",
    "ms-fhir-converter/hl7v2/OML-O21-01.hl7",
    "node-hl7-complete/valid/nist/ORU_R01_2.5.1_SampleTestCase1.hl7",
    "node-hl7-complete/valid/nist/ORU_R01_2.5.1_SampleTestCase2.hl7",
    "node-hl7-complete/valid/nist/ORU_R01_2.5.1_SampleTestCase3.hl7",
    "node-hl7-complete/valid/nist/ORU_R01_2.5.1_SampleTestCase4.hl7",
    "node-hl7-complete/valid/nist/ORU_R01_2.5.1_SampleTestCase5.hl7",
    "node-hl7-complete/valid/nist/ORU_R01_2.5.1_SampleTestCase6.hl7",
    "node-hl7-complete/valid/athena-health/oru-example.hl7",
    "node-hl7-complete/valid/realm/realm-hepatitis-c-virus.hl7",
    "node-hl7-complete/valid/cerner/cerner_lead.hl7",
    "linuxforhealth-hl7v2-fhir-converter/ORU-multiline-short.hl7",
]

#: (segment, field, component, kind) the IG maps both ways. ``set``: every original repetition
#: must come back (identifiers from PID-2/4/19/20 join PID-3); ``date``: the day is compared;
#: ``status``: only codes the IG concept map maps one-to-one (F, P, C, X, W).
COVERED: list[tuple[str, int, int, str]] = [
    ("PID", 3, 1, "set"),
    ("PID", 5, 1, "value"),
    ("PID", 5, 2, "value"),
    ("PID", 7, 1, "date"),
    ("PID", 8, 1, "value"),
    ("PID", 11, 3, "value"),
    ("PID", 11, 5, "value"),
    ("PV1", 19, 1, "value"),
    ("PV1", 44, 1, "date"),
    ("OBR", 4, 1, "value"),
    ("OBX", 3, 1, "value"),
    ("OBX", 11, 1, "status"),
    ("RXA", 5, 1, "value"),
    ("RXA", 3, 1, "date"),
    ("RXA", 15, 1, "value"),
    ("AIS", 3, 1, "value"),
    ("SCH", 1, 1, "value"),
    ("SPM", 4, 1, "value"),
]


def field_values(msg: Hl7Message, seg: str, field: int, comp: int, kind: str) -> list[Any]:
    """The non-empty values of one covered field across the message's segments, normalised."""
    out: list[Any] = []
    for segment in msg.segments_named(seg):
        if kind == "set":
            out.extend(r.get(comp) for r in segment.reps(field))
            continue
        value = segment.get(field, comp)
        if kind == "date":
            value = value[:8]
        if kind == "status" and value not in ("F", "P", "C", "X", "W"):
            continue
        out.append(value)
    return sorted(v for v in out if v)


def round_trip(path: Path) -> tuple[Hl7Message, Hl7Message]:
    """The original message and the one HL7 v2 -> FHIR -> HL7 v2 gives back."""
    data = path.read_bytes()
    bundle = convert(data)
    (back,) = fhir_to_hl7v2(json.dumps(bundle))
    return parse_message(data), parse_message(back)


@pytest.mark.parametrize("name", MESSAGES)
def test_hl7_fhir_hl7_keeps_the_message_type(name: str) -> None:
    """The message comes back as the same type and trigger event."""
    orig, back = round_trip(CORPUS / name)
    assert (back.message_type, back.trigger_event) == (orig.message_type, orig.trigger_event)


@pytest.mark.parametrize("name", MESSAGES)
def test_hl7_fhir_hl7_keeps_every_covered_field(name: str) -> None:
    """Every covered field valued in the original has the same values after the round trip."""
    orig, back = round_trip(CORPUS / name)
    lost = []
    for seg, field, comp, kind in COVERED:
        before = field_values(orig, seg, field, comp, kind)
        after = field_values(back, seg, field, comp, kind)
        kept = set(before) <= set(after) if kind == "set" else before == after
        if before and not kept:
            lost.append(f"{seg}-{field}.{comp}")
    assert lost == []


@pytest.mark.parametrize("name", MESSAGES)
def test_round_trip_output_passes_hl7apy_strict(name: str, strict: Callable[[str], None]) -> None:
    """What FHIR -> HL7 v2 emits for real-world content passes hl7apy STRICT validation."""
    (er7,) = fhir_to_hl7v2(json.dumps(convert((CORPUS / name).read_bytes())))
    strict(er7)


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    """The resources of ``rtype`` in a Bundle."""
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_fhir_hl7_fhir_keeps_patient_core_elements(fx: ModuleType) -> None:
    """Identifier (system and value), name, birth date and gender survive FHIR -> v2 -> FHIR."""
    p = fx.patient()
    (er7,) = fhir_to_hl7v2(json.dumps(p))
    (back,) = resources(convert(er7), "Patient")
    assert (
        [(i.get("system"), i["value"]) for i in back["identifier"]],
        back["name"][0]["family"],
        back["name"][0]["given"][0],
        back["birthDate"],
        back["gender"],
    ) == (
        [(i["system"], i["value"]) for i in p["identifier"]],
        "Testperson",
        "Alex",
        "1980-02-03",
        "female",
    )


def test_fhir_hl7_fhir_keeps_the_patient_id(fx: ModuleType) -> None:
    """The deterministic Patient id is the same before and after (identifier-based ids)."""
    from pyheart.transformers.fhir_ids import identifier_id

    p = fx.patient()
    (er7,) = fhir_to_hl7v2(json.dumps(p))
    (entry,) = [e for e in convert(er7)["entry"] if e["resource"]["resourceType"] == "Patient"]
    ident = p["identifier"][0]
    assert entry["fullUrl"] == "urn:uuid:" + identifier_id("Patient", ident["system"], ident["value"])


def test_fhir_hl7_fhir_keeps_results(fx: ModuleType) -> None:
    """Observation codes, statuses and quantity values survive FHIR -> ORU -> FHIR."""
    data = fx.oru_bundle()
    (er7,) = fhir_to_hl7v2(json.dumps(data))
    back = resources(convert(er7), "Observation")

    def key(obs: dict[str, Any]) -> tuple[str, str, str]:
        return (
            obs["code"]["coding"][0]["code"],
            obs["status"],
            str(obs.get("valueQuantity", {}).get("value")),
        )

    assert sorted(map(key, back)) == sorted(map(key, resources(data, "Observation")))


def test_fhir_hl7_fhir_keeps_the_vaccine(fx: ModuleType) -> None:
    """Immunization vaccine code, lot number and status survive FHIR -> VXU -> FHIR."""
    p = fx.patient()
    (er7,) = fhir_to_hl7v2(json.dumps(fx.bundle(p, fx.immunization(p))))
    (back,) = resources(convert(er7), "Immunization")
    assert (back["vaccineCode"]["coding"][0]["code"], back.get("lotNumber"), back["status"]) == (
        "208",
        "LOT42",
        "completed",
    )


def test_family_name_parts_and_number_parts_come_back() -> None:
    """IG FN[HumanName] and XTN.5..8: the parts of a family name (PID-5.1.2..5) and of a phone
    number (PID-13.5..8), kept as FHIR extensions, are written back in their places."""
    msg = (
        "MSH|^~\\&|APP|FAC|RECV|RFAC|20240102123000-0500||ADT^A01^ADT_A01|C1|P|2.5.1\r"
        "EVN|A01|20240102123000-0500\r"
        "PID|1||MRN1^^^HOSP^MR||de Vries-van Dijk&de&Vries&van&Dijk^Anna||19800203|F|||||"
        "^PRN^PH^^1^555^5551234^99\r"
        "PV1|1|I\r"
    )
    (back,) = fhir_to_hl7v2(json.dumps(convert(msg)))
    pid = parse_message(back).segment("PID")
    assert pid is not None
    assert [pid.get(5, 1, s) for s in range(1, 6)] == ["de Vries-van Dijk", "de", "Vries", "van", "Dijk"]
    assert [pid.get(13, c) for c in (5, 6, 7, 8)] == ["1", "555", "5551234", "99"]
