"""The caches that keep results across messages (coded values, shared resources, CX parts, the
MessageHeader) give the same bundles as a fresh conversion, and never share objects between them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import orjson
import pytest

from pyheart.transformers import fhir_ids
from pyheart.transformers.hl7v2_fhir import context, datatypes, ids

SEGMENTS = (
    "EVN|A01|20240102123000-0500|||OPER^OLIVER^^^^^^^HOSP&1.2.3&ISO",
    "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR~SSN1^^^USSSA^SS||DOE^JANE^Q||19800101|F|||1 MAIN ST^^TOWN^ST^12345||"
    "^PRN^PH^^1^555^5550100|||S^Single^HL70002",
    "NK1|1|DOE^JOHN|SPO^Spouse^HL70063|1 MAIN ST^^TOWN^ST^12345|^PRN^PH^^1^555^5550101",
    "PV1|1|I|WARD^101^A^HOSP|E|||DOC1^DOCTOR^DAVE^^^^^^HOSP&1.2.3&ISO|DOC1^DOCTOR^DAVE^^^^^^HOSP&1.2.3&ISO||"
    "SUR||||ADM|||||VN1^^^HOSP^VN",
    "AL1|1|DA|1605^Penicillin^RXNORM|SV|Hives",
    "DG1|1||R07.9^Chest pain^I10||20240102|A",
)


@pytest.fixture
def cold() -> Iterator[None]:
    """Empty cross-message caches before and after the test."""
    datatypes._CODED.clear()
    context._RECIPES.clear()
    yield
    datatypes._CODED.clear()
    context._RECIPES.clear()


def _convert_cold(h: ModuleType, ctl: str, **options: Any) -> bytes:
    datatypes._CODED.clear()
    context._RECIPES.clear()
    return orjson.dumps(h.run("ADT^A01^ADT_A01", *SEGMENTS, ctl=ctl, **options))


@pytest.mark.usefixtures("cold")
@pytest.mark.parametrize("bundle_type", ["transaction", "batch"])
def test_warm_caches_give_the_fresh_bundle(h: ModuleType, bundle_type: str) -> None:
    """A message converted after others that filled the caches gives the cold-cache bundle."""
    expected = _convert_cold(h, "CTL9", bundle_type=bundle_type)
    for n in range(3):
        h.run("ADT^A01^ADT_A01", *SEGMENTS, ctl=f"CTL{n}", bundle_type=bundle_type)
    warm = orjson.dumps(h.run("ADT^A01^ADT_A01", *SEGMENTS, ctl="CTL9", bundle_type=bundle_type))
    assert warm == expected


def _containers(node: Any) -> set[int]:
    """The ids of every dict and list in ``node``."""
    if isinstance(node, dict):
        return {id(node)}.union(*(_containers(v) for v in node.values()))
    if isinstance(node, list):
        return {id(node)}.union(*(_containers(v) for v in node))
    return set()


@pytest.mark.usefixtures("cold")
def test_caches_share_no_objects_between_bundles(h: ModuleType) -> None:
    """Bundles from warm caches share no dict or list beyond the constant parts that cold
    conversions share too (fixed codings of the field maps), so changing one bundle never
    changes the next."""
    cold_a = h.run("ADT^A01^ADT_A01", *SEGMENTS)
    datatypes._CODED.clear()
    context._RECIPES.clear()
    cold_b = h.run("ADT^A01^ADT_A01", *SEGMENTS)
    constant = _containers(cold_a) & _containers(cold_b)
    warm_a = h.run("ADT^A01^ADT_A01", *SEGMENTS)
    warm_b = h.run("ADT^A01^ADT_A01", *SEGMENTS)
    assert (_containers(warm_a) & _containers(warm_b)) - constant == set()


@pytest.mark.usefixtures("cold")
def test_settings_keep_their_own_cache(h: ModuleType) -> None:
    """Results kept under one system base are not reused under another."""
    h.run("ADT^A01^ADT_A01", *SEGMENTS, system_base="urn:a:")
    bundle = h.run("ADT^A01^ADT_A01", *SEGMENTS, system_base="urn:b:")
    systems = [i.get("system", "") for i in h.one(bundle, "Patient")["identifier"]]
    assert "urn:b:USSSA" in systems
    assert not any(s.startswith("urn:a:") for s in systems)


@pytest.mark.usefixtures("cold")
def test_replayed_practitioner_keeps_its_organization(h: ModuleType) -> None:
    """A practitioner replayed from an earlier message still brings its assigning organisation,
    even when this message added that organisation before."""
    h.run("ADT^A01^ADT_A01", *SEGMENTS, ctl="CTL1")
    bundle = h.run("ADT^A01^ADT_A01", *SEGMENTS, ctl="CTL2")
    refs = {e["fullUrl"] for e in bundle["entry"]}
    for practitioner in h.resources(bundle, "Practitioner"):
        for ident in practitioner.get("identifier", []):
            assert ident["assigner"]["reference"] in refs


def test_fast_uuid5_matches_uuid_module() -> None:
    """The hex-patched UUIDv5 equals uuid.uuid5 for ASCII and non-ASCII keys."""
    keys = [f"Patient|urn:oid:1.2.{n}|é{n * 7919}" for n in range(300)] + ["", "|", "x" * 500]
    for key in keys:
        assert ids._uuid5(key) == str(uuid.uuid5(fhir_ids.NAMESPACE, key))


def test_cached_coded_value_is_a_copy(h: ModuleType) -> None:
    """Two messages get equal but distinct CodeableConcepts for the same coded field."""
    first = h.one(h.run("ADT^A01^ADT_A01", *SEGMENTS), "AllergyIntolerance")["code"]
    second = h.one(h.run("ADT^A01^ADT_A01", *SEGMENTS), "AllergyIntolerance")["code"]
    assert first == second
    assert first is not second


def test_message_ids_equal_shared_ids() -> None:
    """Ids from keys with a control id (not memoised) are the shared fhir_ids ones."""
    parts = ("MessageHeader", "APP^FAC", " CTL1 ", "MSH")
    assert ids.message_resource_id(*parts) == fhir_ids.resource_id(*parts)


@pytest.mark.usefixtures("cold")
def test_kept_builds_are_bounded(h: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cross-message store forgets everything once it holds too many builds or settings."""
    monkeypatch.setattr(context, "_RECIPES_MAX", 3)
    for n in range(40):
        h.run("ADT^A01^ADT_A01", *SEGMENTS, system_base=f"urn:s{n}:")
    assert len(context._RECIPES) <= 33
    assert all(len(kept) <= 4 for kept in context._RECIPES.values())
