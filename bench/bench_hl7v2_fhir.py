"""HL7 v2 -> FHIR conversions per second on one core: PyHeart vs naive library pipelines.

    .venv/bin/python bench/bench_hl7v2_fhir.py [--seconds 2] [--runs 5]

Pipelines, each from ER7 bytes to serialised FHIR JSON bytes:

- ``pyheart``: lazy parse -> table-driven IG mapping -> orjson (no runtime model validation;
  structure is proven by the conformance tests instead).
- ``pyheart, optional resources off``: the same with ``provenance``, ``assigner_organizations``
  and ``patient_contacts`` off (config options), i.e. the clinical resources only.
- ``python-hl7 + fhir.resources``: ``hl7.parse`` -> hand-written dicts for the same core resources
  -> ``Bundle.model_validate`` (R4B) -> ``model_dump_json``: what a naive implementation does.
- ``hl7apy + fhir.resources``: the same with hl7apy's tolerant parser.

The ``pyheart`` rows run the native (mypyc) build of the hot path when one exists for the sources
(``pyheart native build``; see ``pyheart.broker.native``) and then also print the same pipeline
with the Python modules, measured in a child process with ``PYHEART_NATIVE=off``. The first line
of the output says which one the main rows ran.

Targets: >= 5,000/s ADT^A01 and >= 3,000/s ORU^R01 for ``pyheart``. Rates are conversions per
CPU-second of the benchmark process (one core), median of ``--runs`` runs, cycling through 2,000
variants of each message (distinct control and patient ids). Absolute numbers drift on shared
machines; the ratios are what matter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from pyheart.broker import native
from pyheart.transformers.hl7v2_fhir import Options, convert

ADT_A01 = (
    "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL^2.16.840.1.113883.19.3^ISO|GHH LAB|GHH^2.16.840.1.113883.19.4^ISO|"
    "20240102123000-0500||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r"
    "EVN|A01|20240102123000-0500|||JOHNSON^JOHN^^^^^^^HOSP&2.16.840.1.113883.19.1&ISO\r"
    "PID|1||PATID1234^^^GOOD HEALTH HOSPITAL&2.16.840.1.113883.19.3&ISO^MR~123456789^^^USSSA^SS||"
    "EVERYMAN^ADAM^A^III^^^L||19610615|M||2106-3^White^CDCREC|2222 HOME STREET^^GREENSBORO^NC^27401-1020^USA^H||"
    "^PRN^PH^^1^555^5552004|^WPN^PH^^1^555^5553004|eng^English^ISO639|S^Single^HL70002||PATID12345001^2^M10^ADT1^AN^A|"
    "444333333|987654^NC\r"
    "NK1|1|EVERYWOMAN^EVE^E|SPO^Spouse^HL70063|2222 HOME STREET^^GREENSBORO^NC^27401-1020|^PRN^PH^^1^555^5552005\r"
    "PV1|1|I|2000^2012^01^GHH^^^^^^^|E|||004777^ATTEND^AARON^A^^^^^^^^^^NPI|||SUR||||ADM|A0||||"
    "VN1234567^^^GHH^VN|||||||||||||||||||||||||20240102120000-0500\r"
    "PV2|||^Chest pain\r"
    "AL1|1|DA|1605^Penicillin^RXNORM|SV|Hives\r"
    "DG1|1||R07.9^Chest pain, unspecified^I10||20240102|A\r"
    "IN1|1|BC1^Blue Cross^HL70072|IC123|BLUE CROSS|PO BOX 123^^RALEIGH^NC^27601||||||||||||||||||||||||||||||||"
    "POL123456\r"
)

_OBX = (
    "OBX|{i}|NM|{code}^{name}^LN||{value}|{unit}^{unit}^UCUM|{range}|{flag}|||F|||20240102083000-0500|"
    "GHH LAB^^^^^^^^^CLIA&2.16.840.1.113883.4.7&ISO\r"
)
_RESULTS = [
    ("2345-7", "Glucose", "182", "mg/dL", "70-105", "H"),
    ("2160-0", "Creatinine", "1.1", "mg/dL", "0.6-1.3", "N"),
    ("2951-2", "Sodium", "140", "mmol/L", "135-145", "N"),
    ("2823-3", "Potassium", "4.2", "mmol/L", "3.5-5.1", "N"),
    ("2075-0", "Chloride", "101", "mmol/L", "98-107", "N"),
    ("2028-9", "CO2", "24", "mmol/L", "22-29", "N"),
    ("3094-0", "BUN", "18", "mg/dL", "7-20", "N"),
    ("17861-6", "Calcium", "9.6", "mg/dL", "8.6-10.3", "N"),
    ("2885-2", "Protein", "7.1", "g/dL", "6.4-8.3", "N"),
    ("1751-7", "Albumin", "4.3", "g/dL", "3.5-5.2", "N"),
]
ORU_R01 = (
    "MSH|^~\\&|LAB|GHH LAB^2.16.840.1.113883.19.4^ISO|EHR|GHH^2.16.840.1.113883.19.3^ISO|"
    "20240102090000-0500||ORU^R01^ORU_R01|MSG00002|P|2.5.1\r"
    "PID|1||PATID1234^^^GOOD HEALTH HOSPITAL&2.16.840.1.113883.19.3&ISO^MR||EVERYMAN^ADAM^A^III^^^L||19610615|M\r"
    "PV1|1|O|LAB^^^GHH||||004777^ATTEND^AARON^A^^^^^^^^^^NPI||||||||||||VN1234567^^^GHH^VN\r"
    "ORC|RE|ORD448811^EHR|R-991133^LAB||CM||||20240102080000-0500|||004777^ATTEND^AARON^A\r"
    "OBR|1|ORD448811^EHR|R-991133^LAB|24323-8^Comprehensive metabolic panel^LN|||20240102075000-0500|||||||||"
    "004777^ATTEND^AARON^A||||||20240102090000-0500|||F\r"
    + "".join(
        _OBX.format(i=i, code=c, name=n, value=v, unit=u, range=r, flag=f)
        for i, (c, n, v, u, r, f) in enumerate(_RESULTS, start=1)
    )
    + "NTE|1||Fasting specimen\r"
    "SPM|1|SP-1^LAB||119297000^Blood specimen^SCT|||||||||||||20240102075000-0500\r"
)


# ------------------------------------------------------------------------- naive pipelines


def _naive_bundle(pid: dict[str, str], pv1: dict[str, str], obx: list[dict[str, str]]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000001",
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"value": pid["id"]}],
                "name": [{"family": pid["family"], "given": [pid["given"]]}],
                "birthDate": f"{pid['dob'][:4]}-{pid['dob'][4:6]}-{pid['dob'][6:8]}",
                "gender": {"M": "male", "F": "female"}.get(pid["sex"], "unknown"),
            },
            "request": {"method": "PUT", "url": f"Patient?identifier={pid['id']}"},
        }
    ]
    if pv1:
        entries.append(
            {
                "fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000002",
                "resource": {
                    "resourceType": "Encounter",
                    "status": "in-progress",
                    "class": {"code": pv1["class"]},
                    "identifier": [{"value": pv1["visit"]}],
                    "subject": {"reference": "urn:uuid:00000000-0000-0000-0000-000000000001"},
                },
                "request": {"method": "POST", "url": "Encounter"},
            }
        )
    for i, o in enumerate(obx):
        entries.append(
            {
                "fullUrl": f"urn:uuid:00000000-0000-0000-0001-{i:012d}",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {
                        "coding": [{"system": "http://loinc.org", "code": o["code"], "display": o["name"]}]
                    },
                    "valueQuantity": {"value": float(o["value"]), "unit": o["unit"]},
                    "subject": {"reference": "urn:uuid:00000000-0000-0000-0000-000000000001"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def naive_python_hl7(data: str) -> bytes:
    """python-hl7 parse -> dicts -> fhir.resources validate -> JSON."""
    import hl7
    from fhir.resources.R4B.bundle import Bundle

    msg = hl7.parse(data)

    def part(field: Any, i: int) -> str:
        parts = str(field).split("~")[0].split("^")
        return parts[i] if i < len(parts) else ""

    pid_seg = msg.segment("PID")
    pid = {
        "id": part(pid_seg[3], 0),
        "family": part(pid_seg[5], 0),
        "given": part(pid_seg[5], 1),
        "dob": str(pid_seg[7]),
        "sex": str(pid_seg[8]),
    }
    pv1: dict[str, str] = {}
    try:
        pv1_seg = msg.segment("PV1")
        pv1 = {"class": str(pv1_seg[2]), "visit": part(pv1_seg[19], 0)}
    except KeyError:
        pass
    obx = []
    for seg in msg:
        if str(seg[0]) == "OBX":
            obx.append(
                {
                    "code": part(seg[3], 0),
                    "name": part(seg[3], 1),
                    "value": str(seg[5]),
                    "unit": part(seg[6], 0),
                }
            )
    return Bundle.model_validate(_naive_bundle(pid, pv1, obx)).model_dump_json().encode()


def naive_hl7apy(data: str) -> bytes:
    """hl7apy tolerant parse -> dicts -> fhir.resources validate -> JSON."""
    from fhir.resources.R4B.bundle import Bundle
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_segments

    segs = parse_segments(data, validation_level=VALIDATION_LEVEL.TOLERANT)
    by_name: dict[str, list[Any]] = {}
    for s in segs:
        by_name.setdefault(s.name, []).append(s)
    p = by_name["PID"][0]
    pid = {
        "id": p.pid_3[0].cx_1.to_er7(),
        "family": p.pid_5[0].xpn_1.fn_1.to_er7(),
        "given": p.pid_5[0].xpn_2.to_er7(),
        "dob": p.pid_7.to_er7(),
        "sex": p.pid_8.to_er7(),
    }
    pv1: dict[str, str] = {}
    if "PV1" in by_name:
        v = by_name["PV1"][0]
        pv1 = {"class": v.pv1_2.to_er7(), "visit": v.pv1_19.cx_1.to_er7()}
    obx = [
        {
            "code": o.obx_3.ce_1.to_er7(),
            "name": o.obx_3.ce_2.to_er7(),
            "value": o.obx_5.to_er7(),
            "unit": o.obx_6.ce_1.to_er7(),
        }
        for o in by_name.get("OBX", [])
    ]
    return Bundle.model_validate(_naive_bundle(pid, pv1, obx)).model_dump_json().encode()


def pyheart(data: str) -> bytes:
    """PyHeart: lazy parse -> IG mapping -> orjson (default config: every IG resource)."""
    return orjson.dumps(convert(data))


LEAN = Options(provenance=False, assigner_organizations=False, patient_contacts=False)


def pyheart_lean(data: str) -> bytes:
    """PyHeart with the optional resources off (no Provenance, assigners as display, no
    Patient.contact copies of NK1): the clinical resources only."""
    return orjson.dumps(convert(data, LEAN))


# ----------------------------------------------------------------------------------- timing


def variants(data: str, n: int = 2000) -> list[str]:
    """``n`` copies of ``data`` with distinct control ids and patient ids, so caches keyed by
    message content see what a real feed gives them instead of one message over and over."""
    return [data.replace("MSG0000", f"M{i:05d}X").replace("PATID1234^", f"P{i:06d}^") for i in range(n)]


def rate(fn: Callable[[str], bytes], messages: list[str], seconds: float) -> float:
    """Conversions per CPU-second of this process over about ``seconds`` of CPU time.

    CPU time (not wall time) is what "per core" means, and it is not inflated when other
    processes share the machine's cores.
    """
    fn(messages[0])  # warm up (imports, caches)
    n = 0
    start = time.process_time()
    deadline = start + seconds
    total = len(messages)
    while True:
        for _ in range(20):
            fn(messages[n % total])
            n += 1
        now = time.process_time()
        if now >= deadline:
            return n / (now - start)


def _python_rates(seconds: float, runs: int) -> dict[str, float]:
    """The ``pyheart`` rates with the Python modules, from a child process (``PYHEART_NATIVE=off``):
    a process runs either the native build or the Python, never both."""
    done = subprocess.run(
        [sys.executable, __file__, "--only-pyheart", "--seconds", str(seconds), "--runs", str(runs)],
        env={**os.environ, "PYHEART_NATIVE": "off"},
        capture_output=True,
        text=True,
        check=True,
    )
    rates: dict[str, float] = json.loads(done.stdout)
    return rates


def main() -> None:
    """Run every pipeline on both messages and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.5, help="duration of one timed run")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per pipeline (median reported)")
    parser.add_argument("--only-pyheart", action="store_true", help=argparse.SUPPRESS)  # child run
    args = parser.parse_args()
    messages = [("ADT^A01", ADT_A01, 5000.0), ("ORU^R01 (10 OBX)", ORU_R01, 3000.0)]
    if args.only_pyheart:
        rates = {
            label: statistics.median(rate(pyheart, variants(data), args.seconds) for _ in range(args.runs))
            for label, data, _ in messages
        }
        print(json.dumps(rates))
        return
    build = native.current_build()
    print(
        f"hot path: {'native build (mypyc) ' + str(build) if build else 'Python modules (no native build)'}"
    )
    python_rates = _python_rates(args.seconds, args.runs) if build else {}
    pipelines: list[tuple[str, Callable[[str], bytes]]] = [
        ("pyheart (parse -> IG map -> orjson)", pyheart),
        ("pyheart, optional resources off", pyheart_lean),
        ("python-hl7 + fhir.resources", naive_python_hl7),
        ("hl7apy + fhir.resources", naive_hl7apy),
    ]
    print(f"{'pipeline':<40}{'message':<18}{'conv/s':>10}{'us/conv':>10}{'vs pyheart':>14}")
    for label, data, target in messages:
        ours = 0.0
        rates: dict[str, float] = {}
        for name, fn in pipelines:
            count = args.runs if fn in (pyheart, pyheart_lean) else max(1, args.runs // 2)
            runs = [rate(fn, variants(data), args.seconds) for _ in range(count)]
            r = statistics.median(runs)
            rates[name] = r
            if fn is pyheart:
                ours = r
            ratio = f"{r / ours:.2f}x" if r >= ours else f"{ours / r:,.1f}x slower"
            print(f"{name:<40}{label:<18}{r:>10,.0f}{1e6 / r:>10,.0f}{ratio:>14}")
            if fn is pyheart and label in python_rates:
                r = python_rates[label]
                name = "pyheart, Python modules (no native)"
                print(f"{name:<40}{label:<18}{r:>10,.0f}{1e6 / r:>10,.0f}{ours / r:>13,.2f}x slower")
        for name, _fn in pipelines[:2]:
            verdict = "meets" if rates[name] >= target else "MISSES"
            print(f"  -> {name}: {verdict} the {target:,.0f}/s target for {label}")
    for label, data, _ in messages:
        full, lean = orjson.loads(pyheart(data)), orjson.loads(pyheart_lean(data))
        print(
            f"{label}: bundle {len(pyheart(data)):,} B / {len(full['entry'])} entries (default), "
            f"{len(pyheart_lean(data)):,} B / {len(lean['entry'])} entries (optional resources off)"
        )


if __name__ == "__main__":
    main()
