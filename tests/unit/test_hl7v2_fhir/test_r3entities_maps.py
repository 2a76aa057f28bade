"""Shared datatype maps and the entity builders, round 3 (every value synthetic)."""

from __future__ import annotations

from types import ModuleType

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
ADT = "ADT^A01^ADT_A01"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def test_xcn_identifier_type_only_makes_practitioner(h: ModuleType) -> None:
    """An XCN with only XCN.13 valued is a Practitioner whose identifier has that type."""
    bundle = h.run(ADT, PID, "PD1||||^^^^^^^^^^^^MR")
    ident = h.one(bundle, "Practitioner")["identifier"]
    assert ident == [
        {"type": {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}]}}
    ]


def test_xcn_identifier_type_only_referenced(h: ModuleType) -> None:
    """The type-only Practitioner is the Patient's general practitioner (PD1-4)."""
    bundle = h.run(ADT, PID, "PD1||||^^^^^^^^^^^^MR")
    entry = h.entries(bundle, "Practitioner")[0]
    gp = h.one(bundle, "Patient")["generalPractitioner"]
    assert gp == [{"reference": entry["fullUrl"]}]


def test_xcn_empty_makes_no_practitioner(h: ModuleType) -> None:
    """An XCN with neither identifier, name nor identifier type makes no Practitioner."""
    bundle = h.run(ADT, PID, "PD1||||^^^^^^^^^^^^")
    assert h.resources(bundle, "Practitioner") == []
