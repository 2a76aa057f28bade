"""Property tests: generated FHIR inputs always give ER7 that hl7apy STRICT accepts, and the values
that fit their HL7 datatype come back unchanged through our parser."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyheart.broker.hl7v2 import parse_message
from pyheart.transformers.fhir_hl7v2 import fhir_to_hl7v2

PROFILE = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# FHIR strings: any printable text with at least one non-blank character; delimiters on purpose.
text = st.text(
    alphabet=st.sampled_from(list("abcXYZ019 |^~\\&#-'.\u00e9\u00fc\u4e2d\u0416")), min_size=1, max_size=40
).filter(lambda s: s.strip() == s and s.strip() != "")
dates = st.dates().map(lambda d: d.isoformat()).filter(lambda d: d[:4] >= "1000")
instants = (
    st.datetimes(timezones=st.just(__import__("datetime").UTC))
    .filter(lambda d: d.year >= 1000)
    .map(lambda d: d.isoformat(timespec="seconds"))
)
decimals = st.decimals(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False, places=4)
codes = st.from_regex(r"[A-Za-z0-9]{1,10}", fullmatch=True)


@st.composite
def patients(draw: st.DrawFn) -> dict[str, Any]:
    """A Patient with generated identifiers, names, birth date, sex, address and phone."""
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "p1"}
    patient["identifier"] = [
        {
            "system": draw(st.sampled_from(["urn:oid:1.2.3", "urn:id:HOSP", "http://example.org/mrn"])),
            "value": draw(text),
        }
        for _ in range(draw(st.integers(1, 3)))
    ]
    patient["name"] = [
        {
            "family": draw(text),
            "given": draw(st.lists(text, min_size=1, max_size=3)),
            "use": draw(st.sampled_from(["official", "usual", "maiden"])),
        }
    ]
    patient["birthDate"] = draw(dates)
    patient["gender"] = draw(st.sampled_from(["male", "female", "other", "unknown"]))
    patient["address"] = [{"line": [draw(text)], "city": draw(text), "postalCode": draw(codes)}]
    patient["telecom"] = [
        {"system": "phone", "value": draw(text), "use": draw(st.sampled_from(["home", "work", "mobile"]))}
    ]
    return patient


@st.composite
def observations(draw: st.DrawFn) -> dict[str, Any]:
    """An Observation with a generated code and a value of one of the mapped types."""
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": draw(st.sampled_from(["final", "preliminary", "amended", "cancelled"])),
        "code": {"coding": [{"system": "http://loinc.org", "code": draw(codes), "display": draw(text)}]},
        "subject": {"reference": "urn:uuid:p1"},
        "effectiveDateTime": draw(instants),
    }
    kind = draw(st.sampled_from(["quantity", "string", "concept", "integer", "boolean", "range"]))
    if kind == "quantity":
        obs["valueQuantity"] = {"value": float(draw(decimals)), "unit": draw(text)}
    elif kind == "string":
        obs["valueString"] = draw(text)
    elif kind == "concept":
        obs["valueCodeableConcept"] = {
            "coding": [{"system": "http://snomed.info/sct", "code": draw(codes)}],
            "text": draw(text),
        }
    elif kind == "integer":
        obs["valueInteger"] = draw(st.integers(-(10**9), 10**9))
    elif kind == "boolean":
        obs["valueBoolean"] = draw(st.booleans())
    else:
        obs["valueRange"] = {
            "low": {"value": float(draw(decimals))},
            "high": {"value": float(draw(decimals))},
        }
    return obs


@PROFILE
@given(patient=patients())
def test_generated_patients_give_strictly_valid_adt(
    patient: dict[str, Any], strict: Callable[[str], None]
) -> None:
    """Every generated Patient becomes an ADT that hl7apy STRICT accepts."""
    for er7 in fhir_to_hl7v2(json.dumps(patient)):
        strict(er7)


@PROFILE
@given(patient=patients())
def test_generated_names_and_identifiers_come_back(patient: dict[str, Any]) -> None:
    """PID-3.1, PID-5.1 and PID-5.2 read back (unescaped) as the FHIR values."""
    (er7,) = fhir_to_hl7v2(json.dumps(patient))
    pid = parse_message(er7).segment("PID")
    assert pid is not None
    got = (
        [v.get(1) for v in pid.reps(3)],
        pid.get(5, 1),
        pid.get(5, 2),
        pid.get(7),
    )
    expected = (
        [i["value"] for i in patient["identifier"]],
        patient["name"][0]["family"],
        patient["name"][0]["given"][0],
        patient["birthDate"].replace("-", ""),
    )
    assert got == expected


@PROFILE
@given(patient=patients(), results=st.lists(observations(), min_size=1, max_size=4))
def test_generated_results_give_strictly_valid_oru(
    fx: ModuleType, strict: Callable[[str], None], patient: dict[str, Any], results: list[dict[str, Any]]
) -> None:
    """Every generated Patient + Observations (+ report) becomes an ORU^R01 that hl7apy STRICT accepts."""
    for i, obs in enumerate(results):
        obs["id"] = f"o{i}"
    report = fx.report(patient, results)
    (er7,) = fhir_to_hl7v2(json.dumps(fx.bundle(patient, report, *results)))
    strict(er7)
    assert len(parse_message(er7).segments_named("OBX")) == len(results)


@PROFILE
@given(patient=patients(), obs=observations())
def test_generated_string_values_survive_escaping(
    fx: ModuleType, patient: dict[str, Any], obs: dict[str, Any]
) -> None:
    """An OBX-5 string value reads back exactly, whatever delimiters it holds."""
    obs["id"] = "o1"
    obs.pop("valueQuantity", None)
    for key in [k for k in obs if k.startswith("value")]:
        del obs[key]
    obs["valueString"] = "x|" + obs["code"]["coding"][0]["display"] + "^~\\&"
    (er7,) = fhir_to_hl7v2(json.dumps(fx.bundle(patient, obs)))
    obx = parse_message(er7).segment("OBX")
    assert obx is not None
    assert obx.get(5) == obs["valueString"]
