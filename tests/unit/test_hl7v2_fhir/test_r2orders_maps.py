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
