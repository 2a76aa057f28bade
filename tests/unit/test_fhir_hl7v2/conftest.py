"""FHIR R4 inputs built by hand for the FHIR -> HL7 v2 tests (every value is synthetic).

Tests get this module as the session fixture ``fx`` (``fx.patient()``, ``fx.oru_bundle()`` ...), and
``strict`` checks ER7 with hl7apy's STRICT validation.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}


def patient(pid: str = "p1", mrn: str = "MRN-001") -> dict[str, Any]:
    """A Patient with the elements PID maps."""
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": mrn, "type": MR}],
        "name": [{"family": "Testperson", "given": ["Alex", "Quinn"], "use": "official", "prefix": ["Dr"]}],
        "gender": "female",
        "birthDate": "1980-02-03",
        "address": [
            {
                "line": ["1 Main St", "Apt 2"],
                "city": "Springfield",
                "state": "IL",
                "postalCode": "62701",
                "country": "USA",
                "use": "home",
                "district": "Sangamon",
            }
        ],
        "telecom": [
            {"system": "phone", "value": "555-0100", "use": "home"},
            {"system": "phone", "value": "555-0199", "use": "work"},
            {"system": "email", "value": "alex@example.org"},
        ],
        "maritalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]
        },
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}}],
        "multipleBirthInteger": 2,
        "deceasedBoolean": False,
    }


def entry(resource: dict[str, Any]) -> dict[str, Any]:
    """A transaction entry with a urn:uuid full URL."""
    return {
        "fullUrl": f"urn:uuid:{resource['id']}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
    }


def bundle(*resources: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    """A Bundle of ``resources``."""
    entries = [entry(r) for r in resources]
    if kind not in ("transaction", "batch"):
        for e in entries:
            del e["request"]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def ref(resource: dict[str, Any]) -> dict[str, str]:
    """A Reference to ``resource`` by its urn:uuid."""
    return {"reference": f"urn:uuid:{resource['id']}"}


def related_person(p: dict[str, Any]) -> dict[str, Any]:
    """A RelatedPerson (next of kin) of ``p``."""
    return {
        "resourceType": "RelatedPerson",
        "id": "rp1",
        "patient": ref(p),
        "relationship": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}
        ],
        "name": [{"family": "Testperson", "given": ["Morgan"]}],
        "telecom": [{"system": "phone", "value": "555-0111", "use": "home"}],
    }


def organization() -> dict[str, Any]:
    """An insurer."""
    return {
        "resourceType": "Organization",
        "id": "org1",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.9", "value": "INS-77"}],
        "name": "Acme Health Plan",
    }


def coverage(p: dict[str, Any], org: dict[str, Any]) -> dict[str, Any]:
    """A Coverage of ``p`` paid by ``org``."""
    return {
        "resourceType": "Coverage",
        "id": "cov1",
        "status": "active",
        "identifier": [{"value": "POL-123"}],
        "subscriberId": "SUB-9",
        "beneficiary": ref(p),
        "payor": [ref(org)],
        "relationship": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}
            ]
        },
        "period": {"start": "2024-01-01", "end": "2024-12-31"},
        "class": [
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}
                    ]
                },
                "value": "PLAN-A",
                "name": "Gold",
            },
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group"}
                    ]
                },
                "value": "GRP-5",
                "name": "Employees",
            },
        ],
    }


def practitioner() -> dict[str, Any]:
    """A practitioner with an NPI."""
    return {
        "resourceType": "Practitioner",
        "id": "pr1",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
        "name": [{"family": "Carer", "given": ["Casey"], "prefix": ["Dr"]}],
    }


def encounter(p: dict[str, Any], status: str = "in-progress", klass: str = "IMP") -> dict[str, Any]:
    """An Encounter of ``p``."""
    return {
        "resourceType": "Encounter",
        "id": "enc1",
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": klass},
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.7", "value": "V-100"}],
        "subject": ref(p),
        "period": {"start": "2024-05-06T07:00:00+02:00", "end": "2024-05-08T10:00:00+02:00"},
        "location": [{"location": {"display": "Ward 3"}, "status": "active"}],
        "participant": [
            {
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "ATND",
                            }
                        ]
                    }
                ],
                "individual": {"reference": "urn:uuid:pr1"},
            }
        ],
        "reasonCode": [{"text": "Chest pain"}],
    }


def observation(oid: str, p: dict[str, Any], **value: Any) -> dict[str, Any]:
    """A final lab Observation of ``p`` with ``value`` (e.g. ``valueQuantity={...}``)."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "subject": ref(p),
        "effectiveDateTime": "2024-05-06T07:08:09+02:00",
        "issued": "2024-05-06T09:00:00Z",
        **value,
    }


def service_request(p: dict[str, Any], status: str = "active") -> dict[str, Any]:
    """A lab order for ``p``."""
    return {
        "resourceType": "ServiceRequest",
        "id": "sr1",
        "status": status,
        "intent": "order",
        "priority": "stat",
        "identifier": [
            {
                "system": "urn:oid:2.16.840.1.113883.19.3",
                "value": "PLC-1",
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]
                },
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "24323-8", "display": "Metabolic panel"}]},
        "subject": ref(p),
        "authoredOn": "2024-05-05T12:00:00Z",
        "requester": {"reference": "urn:uuid:pr1"},
        "occurrenceDateTime": "2024-05-06T06:00:00Z",
        "note": [{"text": "fasting"}],
    }


def specimen(p: dict[str, Any]) -> dict[str, Any]:
    """A blood specimen of ``p``."""
    return {
        "resourceType": "Specimen",
        "id": "sp1",
        "identifier": [{"value": "SPC-1"}],
        "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119297000", "display": "Blood"}]},
        "subject": ref(p),
        "collection": {"collectedDateTime": "2024-05-06T06:30:00Z"},
        "receivedTime": "2024-05-06T07:00:00Z",
    }


def report(p: dict[str, Any], results: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A final DiagnosticReport of ``p`` over ``results``."""
    return {
        "resourceType": "DiagnosticReport",
        "id": "dr1",
        "status": "final",
        "identifier": [
            {
                "value": "FIL-9",
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "FILL"}]
                },
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "24323-8", "display": "Metabolic panel"}]},
        "subject": ref(p),
        "effectiveDateTime": "2024-05-06T07:08:09+02:00",
        "issued": "2024-05-06T09:00:00.123456Z",
        "result": [ref(o) for o in results],
        "conclusion": "Normal",
        **extra,
    }


def oru_bundle() -> dict[str, Any]:
    """Patient, order, specimen, report and three observations (quantity, coded, text)."""
    p = patient()
    o1 = observation(
        "o1",
        p,
        valueQuantity={"value": 105, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
        referenceRange=[{"low": {"value": 70}, "high": {"value": 99}}],
        interpretation=[
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        "code": "H",
                    }
                ]
            }
        ],
    )
    o2 = observation(
        "o2",
        p,
        valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct", "code": "260385009"}]},
    )
    o3 = observation(
        "o3", p, valueString="see | note ^ with ~ delimiters & more", note=[{"text": "rechecked"}]
    )
    sr = service_request(p)
    sp = specimen(p)
    dr = report(p, [o1, o2, o3], basedOn=[ref(sr)], specimen=[ref(sp)])
    return bundle(p, practitioner(), sr, sp, dr, o1, o2, o3)


def immunization(p: dict[str, Any]) -> dict[str, Any]:
    """A completed immunization of ``p``."""
    return {
        "resourceType": "Immunization",
        "id": "imm1",
        "status": "completed",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.4", "value": "IMM-1"}],
        "vaccineCode": {
            "coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "208", "display": "COVID-19"}]
        },
        "patient": ref(p),
        "occurrenceDateTime": "2024-03-01T10:00:00-05:00",
        "primarySource": True,
        "lotNumber": "LOT42",
        "expirationDate": "2025-01-01",
        "route": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration", "code": "IM"}
            ]
        },
        "site": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActSite", "code": "LA"}]},
        "doseQuantity": {"value": 0.3, "unit": "mL", "system": "http://unitsofmeasure.org", "code": "mL"},
        "performer": [{"actor": {"reference": "urn:uuid:pr1"}}],
    }


def appointment(p: dict[str, Any]) -> dict[str, Any]:
    """A booked appointment of ``p`` with a practitioner and a room."""
    return {
        "resourceType": "Appointment",
        "id": "ap1",
        "status": "booked",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.8", "value": "APT-1"}],
        "serviceType": [{"coding": [{"system": "http://snomed.info/sct", "code": "394814009"}]}],
        "appointmentType": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "ROUTINE"}]
        },
        "start": "2024-06-01T09:00:00Z",
        "end": "2024-06-01T09:30:00Z",
        "minutesDuration": 30,
        "comment": "bring results",
        "participant": [
            {"actor": {"reference": "urn:uuid:p1"}, "status": "accepted"},
            {"actor": {"reference": "urn:uuid:pr1"}, "status": "accepted"},
            {"actor": {"reference": "Location/room1", "display": "Room 1"}, "status": "accepted"},
        ],
    }


def strict_validate(er7: str) -> None:
    """Parse ``er7`` with hl7apy STRICT and run ``validate()``; raise on any finding.

    hl7apy models the ORM^O01 ORDER_DETAIL choice (OBR | RQD | RQ1 | RXO | ODS | ODT) as a sequence
    of six required segments, so it reports the five alternatives not taken as missing: those
    reports, and only those, are ignored (a defect of the library's tables, not of the message).
    """
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message
    from hl7apy.validation import Validator

    msg = parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.txt"
        # validate() raises the first finding only; the report file lists every one.
        with contextlib.suppress(Exception):
            Validator.validate(msg, report_file=str(report))
        lines = report.read_text().splitlines() if report.exists() else []
    errors = [
        line
        for line in lines
        if line.startswith("Error")
        and not any(
            f"OBRRQDRQ1RXOODSODT_SUPPGRP.{alt}" in line or f"ORM_O01_CHOICE.{alt}" in line
            for alt in ("RQD", "RQ1", "RXO", "ODS", "ODT")
        )
    ]
    assert not errors, errors


@pytest.fixture(scope="session")
def fx() -> ModuleType:
    """This module: the input builders."""
    return sys.modules[__name__]


@pytest.fixture(scope="session")
def strict() -> Callable[[str], None]:
    """hl7apy STRICT validation of one ER7 message (see :func:`strict_validate`)."""
    return strict_validate
