"""Shared datatype maps and the entity builders, round 3 (every value synthetic)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pyheart.broker.hl7v2 import Value
from pyheart.broker.hl7v2.parser import DEFAULT_DELIMITERS
from pyheart.transformers.hl7v2_fhir import datatypes as dt
from pyheart.transformers.hl7v2_fhir.context import Context

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
ADT = "ADT^A01^ADT_A01"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def v(raw: str) -> Value:
    """One field repetition."""
    return Value(raw, DEFAULT_DELIMITERS)


def _added(ctx: Context, ref: dict[str, Any]) -> dict[str, Any]:
    """The resource ``ref`` points at in the context's bundle."""
    rid = ref["reference"].removeprefix("urn:uuid:")
    found = [e["resource"] for e in ctx.bundle("b")["entry"] if e["fullUrl"] == f"urn:uuid:{rid}"]
    assert len(found) == 1
    return found[0]


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


def test_cwe_organization_system_from_coding_system(ctx: Context) -> None:
    """CWE.3 names the system of the Organization's identifier (IG CWE[Organization])."""
    ref = dt.cwe_organization(v("PMC^Vaccine Maker^MVX"), ctx)
    assert ref is not None
    org = _added(ctx, ref)
    assert org["identifier"] == [{"system": "http://hl7.org/fhir/sid/mvx", "value": "PMC"}]


def test_cwe_organization_name_from_original_text(ctx: Context) -> None:
    """Without CWE.2 the original text (CWE.9) is the Organization's name."""
    ref = dt.cwe_organization(v("ORG9^^^^^^^^Maker as sent"), ctx)
    assert ref is not None
    assert _added(ctx, ref)["name"] == "Maker as sent"
