"""FHIR -> ORU^R01 conversions per second and DICOM instances -> ImagingStudy per second, one core,
each beside the cost of the library step alone, measured in the same run.

    .venv/bin/python bench/bench_fhir_hl7v2_dicom.py [--seconds 2] [--runs 5]

FHIR -> HL7 v2 (a transaction Bundle: Patient, Practitioner, ServiceRequest, Specimen,
DiagnosticReport and 10 Observations, ~9 KB of JSON):

- ``fhir_to_hl7v2`` as shipped: orjson parse -> fhir.resources R4B validation of the untrusted input
  -> mapping -> ER7 rendering (escaping, datatype limits).
- the same with ``validate_input: false``: what the mapping itself costs.
- library step alone: ``orjson.loads`` + ``Bundle.model_validate`` (fhir.resources R4B).

DICOM -> FHIR (the 81 image files of pydicom's ``dicomdirtests`` set: 4 patients, 7 studies,
14 series; Part 10 bytes in memory):

- ``dicom_to_fhir`` on all files at once: read -> summarise -> aggregate -> Bundle -> orjson.
- ``DicomToFhir.transform`` per instance (one message per instance, as from a C-STORE topic).
- library step alone: ``pydicom.dcmread(stop_before_pixels=True)`` of each file.

Reports the median of ``--runs`` runs of each pipeline (each at least ``--seconds`` of CPU time).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pydicom
from fhir.resources.R4B.bundle import Bundle
from pydicom.data import get_testdata_file

from pyheart.broker.contracts import Format, Message
from pyheart.transformers.dicom_fhir import DicomToFhir, dicom_to_fhir
from pyheart.transformers.fhir_hl7v2 import fhir_to_hl7v2


def oru_bundle(observations: int = 10) -> bytes:
    """A realistic lab result Bundle as JSON bytes."""

    def ref(rid: str) -> dict[str, str]:
        return {"reference": f"urn:uuid:{rid}"}

    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-001"}],
        "name": [{"family": "Testperson", "given": ["Alex", "Q"]}],
        "gender": "female",
        "birthDate": "1980-02-03",
        "address": [{"line": ["1 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701"}],
        "telecom": [{"system": "phone", "value": "555-0100", "use": "home"}],
    }
    practitioner = {
        "resourceType": "Practitioner",
        "id": "pr1",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
        "name": [{"family": "Carer", "given": ["Casey"]}],
    }
    request = {
        "resourceType": "ServiceRequest",
        "id": "sr1",
        "status": "active",
        "intent": "order",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.3", "value": "PLC-1"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "24323-8", "display": "Metabolic panel"}]},
        "subject": ref("p1"),
        "requester": ref("pr1"),
        "authoredOn": "2024-05-05T12:00:00Z",
    }
    specimen = {
        "resourceType": "Specimen",
        "id": "sp1",
        "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119297000"}]},
        "collection": {"collectedDateTime": "2024-05-06T06:30:00Z"},
    }
    results = [
        {
            "resourceType": "Observation",
            "id": f"o{i}",
            "status": "final",
            "code": {
                "coding": [
                    {"system": "http://loinc.org", "code": f"{2000 + i}-{i % 10}", "display": "Analyte"}
                ]
            },
            "subject": ref("p1"),
            "effectiveDateTime": "2024-05-06T07:08:09+02:00",
            "valueQuantity": {
                "value": 100 + i,
                "unit": "mg/dL",
                "system": "http://unitsofmeasure.org",
                "code": "mg/dL",
            },
            "referenceRange": [{"low": {"value": 70}, "high": {"value": 99}}],
        }
        for i in range(observations)
    ]
    report = {
        "resourceType": "DiagnosticReport",
        "id": "dr1",
        "status": "final",
        "code": request["code"],
        "subject": ref("p1"),
        "basedOn": [ref("sr1")],
        "specimen": [ref("sp1")],
        "effectiveDateTime": "2024-05-06T07:08:09+02:00",
        "issued": "2024-05-06T09:00:00Z",
        "result": [ref(f"o{i}") for i in range(observations)],
    }
    resources: list[dict[str, Any]] = [patient, practitioner, request, specimen, report, *results]
    entries = [
        {
            "fullUrl": f"urn:uuid:{r['id']}",
            "resource": r,
            "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
        }
        for r in resources
    ]
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode()


def rates(pipelines: list[Callable[[], int]], seconds: float, runs: int) -> list[float]:
    """Median items per CPU second of each pipeline (each returns how many items it processed).

    CPU time of this process, not wall time, so other load on a shared machine does not count;
    the pipelines take turns within each run, so drift affects them alike.
    """
    for fn in pipelines:
        fn()  # warm-up: imports, hl7apy tables, caches
    samples: list[list[float]] = [[] for _ in pipelines]
    for _ in range(runs):
        for i, fn in enumerate(pipelines):
            done = 0
            start = time.process_time()
            while True:
                done += fn()
                elapsed = time.process_time() - start
                if elapsed >= seconds:
                    break
            samples[i].append(done / elapsed)
    return [statistics.median(s) for s in samples]


def dicom_files() -> list[bytes]:
    """Bytes of the dicomdirtests image files."""
    ct = get_testdata_file("CT_small.dcm")
    assert ct is not None
    root = Path(str(ct)).parent / "dicomdirtests"
    paths = sorted(
        p for p in root.rglob("*") if p.is_file() and not p.name.startswith(("DICOMDIR", "README"))
    )
    return [p.read_bytes() for p in paths]


def main() -> None:
    """Run both benchmarks and print a table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # pydicom warns about non-conformant values in test files

    data = oru_bundle()

    def convert() -> int:
        fhir_to_hl7v2(data)
        return 1

    def convert_unvalidated() -> int:
        fhir_to_hl7v2(data, {"validate_input": False})
        return 1

    def validate_only() -> int:
        Bundle.model_validate(orjson.loads(data))
        return 1

    files = dicom_files()

    def dicom_all() -> int:
        orjson.dumps(dicom_to_fhir(files))
        return len(files)

    plugin = DicomToFhir()
    messages = [Message(f, Format.DICOM) for f in files]

    def dicom_per_message() -> int:
        for msg in messages:
            plugin.transform(msg)
        return len(messages)

    def pydicom_only() -> int:
        for f in files:
            pydicom.dcmread(io.BytesIO(f), stop_before_pixels=True)
        return len(files)

    names = [
        ("FHIR Bundle -> ORU^R01, fhir_to_hl7v2 (validates input)", convert, "msg"),
        ("FHIR Bundle -> ORU^R01, validate_input=false", convert_unvalidated, "msg"),
        ("  library alone: orjson + fhir.resources R4B Bundle validation", validate_only, "msg"),
        ("DICOM -> ImagingStudy Bundle, dicom_to_fhir(81 files)", dicom_all, "inst"),
        ("DICOM -> ImagingStudy Bundle, DicomToFhir per instance", dicom_per_message, "inst"),
        ("  library alone: pydicom dcmread(stop_before_pixels)", pydicom_only, "inst"),
    ]
    measured = rates([fn for _, fn, _ in names], args.seconds, args.runs)
    rows = [(name, per_second, unit) for (name, _, unit), per_second in zip(names, measured, strict=True)]
    print(f"FHIR input {len(data)} bytes; DICOM input {len(files)} files, {sum(map(len, files))} bytes")
    print(f"{'pipeline (one core, CPU time)':66} {'per second':>12} {'us each':>10}")
    for name, per_second, unit in rows:
        print(f"{name:66} {per_second:>10,.0f} {unit:<4} {1e6 / per_second:>8,.0f}")
    fhir_share = (1 / rows[2][1]) / (1 / rows[0][1])
    dicom_share = (1 / rows[5][1]) / (1 / rows[3][1])
    print(f"fhir.resources validation is {fhir_share:.0%} of the FHIR -> ORU time; ", end="")
    print(f"pydicom reading is {dicom_share:.0%} of the DICOM -> ImagingStudy time")


if __name__ == "__main__":
    main()
