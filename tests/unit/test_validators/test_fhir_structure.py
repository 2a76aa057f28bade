"""The FHIR structure gate: R4B models, FHIRPath-like locations, value-free texts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from corpus_paths import CORPUS

from pyheart.broker.contracts import Format, Message, ValidationReport
from pyheart.validators.fhir_structure import FhirStructureValidator, fhir_path


def _check(doc: Any, **config: Any) -> ValidationReport:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return FhirStructureValidator(config=config).validate(Message(payload, Format.FHIR_JSON))


def _found(report: ValidationReport) -> list[tuple[str, str]]:
    return [(i.code, i.location) for i in report.issues]


def test_valid_patient() -> None:
    """A valid Patient passes with AA."""
    report = _check({"resourceType": "Patient", "birthDate": "1980-01-01", "gender": "male"})
    assert (report.issues, report.ack_code()) == ((), "AA")


def test_converter_expected_bundle_valid() -> None:
    """A Microsoft FHIR-Converter expected ADT^A01 Bundle validates."""
    path = next((CORPUS / "ms-fhir-converter/expected").rglob("ADT-A01-01-expected.json"))
    assert _check(path.read_bytes()).issues == ()


def test_bundle_errors_located() -> None:
    """Errors inside Bundle entries carry FHIRPath-like locations."""
    doc = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": {"resourceType": "Patient", "birthDate": "not-a-date", "name": [{"family": 12}]}},
            {"resource": {"resourceType": "Observation", "status": "final"}},
        ],
    }
    assert _found(_check(doc)) == [
        ("fhir-value", "Bundle.entry[0].resource.birthDate"),
        ("fhir-type", "Bundle.entry[0].resource.name[0].family"),
        ("fhir-required", "Bundle.entry[1].resource.code"),
    ]


def test_content_errors_are_ae() -> None:
    """Model errors are content errors (AE), not rejections."""
    assert _check({"resourceType": "Patient", "birthDate": "x"}).ack_code() == "AE"


def test_unknown_element_named_at_parent() -> None:
    """An undefined element is reported at its parent, without echoing its name."""
    report = _check({"resourceType": "Patient", "secretName": 1})
    assert [(i.code, i.location, i.message) for i in report.issues] == [
        ("fhir-unknown-element", "Patient", "has an element that is not defined here")
    ]


def test_invalid_json() -> None:
    """Invalid JSON is fatal with its line and column."""
    report = _check(b'{"resourceType": ')
    assert [(i.code, i.message) for i in report.issues] == [("fhir-json", "invalid JSON at line 1 column 18")]
    assert report.ack_code() == "AR"


@pytest.mark.parametrize("doc", [[1, 2], {"id": "x"}, {"resourceType": ""}])
def test_not_a_resource(doc: Any) -> None:
    """Documents without a resourceType are fatal."""
    assert _found(_check(doc)) == [("fhir-resource-type", "$")]


def test_unknown_resource_type() -> None:
    """A resource type R4B does not define is rejected without quoting it."""
    report = _check({"resourceType": "MadeUpThing"})
    assert _found(report) == [("fhir-resource-type-unknown", "resourceType")]
    assert "MadeUpThing" not in report.issues[0].message


def test_resource_types_option() -> None:
    """Only the configured root resource types are accepted."""
    report = _check({"resourceType": "Patient"}, resource_types=["Bundle"])
    assert _found(report) == [("fhir-resource-type-not-accepted", "resourceType")]


def test_max_issues() -> None:
    """No more than max_issues issues are reported."""
    doc = {"resourceType": "Patient", "birthDate": "x", "gender": 5, "active": "maybe"}
    assert len(_check(doc, max_issues=2).issues) == 2


def test_fhir_path_rendering() -> None:
    """Locations render indices in brackets, drop alias underscores and hide non-element text."""
    assert (
        fhir_path("Bundle", ("entry", 0, "resource", "class_", "a b")) == "Bundle.entry[0].resource.class.?"
    )
