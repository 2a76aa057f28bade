"""Round-2 order maps: clinical trials, pharmacy orders, scheduling and documents (every value
synthetic)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
ORM = "ORM^O01^ORM_O01"
ORC = "ORC|NW|PL1^PLACER|FL1^FILLER"
OBR = "OBR|1|PL1^PLACER|FL1^FILLER|1234-5^Panel^LN"


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


def test_tq1_quantity_unit_text(h: ModuleType) -> None:
    """A TQ1-2 quantity whose units give only a text keeps that text as the unit."""
    request = h.one(h.run(ORM, PID, ORC, "TQ1|1|54^&lbs", OBR), "ServiceRequest")
    assert request["quantityQuantity"] == {"value": 54, "unit": "lbs"}


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
