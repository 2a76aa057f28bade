"""Per-message cost of parsing ER7: PyHeart's lazy parser vs python-hl7 vs hl7apy, in one run.

Each library parses the same messages and then reads the same 20 fields (decoded where the
library decodes). Reported: median microseconds per message over several repeats, and each figure
as a ratio to PyHeart's. Absolute numbers drift on shared machines; read the ratios.

    .venv/bin/python bench/bench_parser.py [--repeats 5] [--quick] [--best] [--validators]

``--validators`` adds the per-message cost of the validator plugins on the same messages
(hl7v2-structure, hl7v2-strict, business-rules with five HL7 rules) and of fhir-structure on
the FHIR-Converter's expected Bundles for them.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import hl7
from hl7apy import parser as hl7apy_parser

from pyheart.broker.contracts import Format, Message, ValidatorPlugin
from pyheart.broker.hl7v2.parser import parse_message

CORPUS = Path("/work/shared/corpus")

#: (segment, field, component) positions read after parsing: the facts a mapping reads first.
READS: list[tuple[str, int, int]] = [
    ("MSH", 9, 1),
    ("MSH", 9, 2),
    ("MSH", 10, 1),
    ("MSH", 12, 1),
    ("MSH", 3, 1),
    ("MSH", 4, 1),
    ("MSH", 7, 1),
    ("PID", 3, 1),
    ("PID", 3, 4),
    ("PID", 5, 1),
    ("PID", 5, 2),
    ("PID", 7, 1),
    ("PID", 8, 1),
    ("PID", 11, 1),
    ("PID", 11, 3),
    ("PID", 11, 5),
    ("PID", 13, 1),
    ("PID", 18, 1),
    ("PV1", 2, 1),
    ("PV1", 3, 1),
]


def _messages() -> dict[str, str]:
    """ADT^A01 (24 segments), ADT^A09 (9), a NIST ORU^R01 and an ORU^R01 with 29 segments."""
    files = {
        "ADT^A01 (MS ADT-A01-01)": CORPUS / "ms-fhir-converter/hl7v2/ADT-A01-01.hl7",
        "ADT^A09 (MS ADT-A09-01)": CORPUS / "ms-fhir-converter/hl7v2/ADT-A09-01.hl7",
        "ORU^R01 (NIST case 1)": CORPUS / "node-hl7-complete/valid/nist/ORU_R01_2.5.1_SampleTestCase1.hl7",
        "ORU^R01 (MS ORU-R01-01)": CORPUS / "ms-fhir-converter/hl7v2/ORU-R01-01.hl7",
    }
    out = {}
    for label, path in files.items():
        text = path.read_bytes().decode("utf-8-sig").replace("\r\n", "\r").replace("\n", "\r").strip()
        segments = len(text.split("\r"))
        out[f"{label}, {segments} segments, {len(text)} B"] = text
    return out


def ours_parse(data: bytes) -> object:
    """PyHeart: bytes in (decode included), no reads."""
    return parse_message(data)


def ours_reads(data: bytes) -> object:
    """PyHeart: bytes in, then the 20 reads."""
    m = parse_message(data)
    out = []
    for name, field, comp in READS:
        seg = m.segment(name)
        out.append(seg.get(field, comp) if seg is not None else "")
    return out


def python_hl7_reads(data: bytes) -> object:
    """python-hl7: decode, parse, then the 20 reads through its accessors."""
    m = hl7.parse(data.decode("utf-8"))
    out = []
    for name, field, comp in READS:
        try:
            out.append(m[f"{name}.F{field}.R1.C{comp}"])
        except (KeyError, IndexError):
            out.append("")
    return out


def hl7apy_reads(data: bytes) -> object:
    """hl7apy: tolerant parse without groups, then the 20 reads (field, then component)."""
    m = hl7apy_parser.parse_message(data.decode("utf-8"), find_groups=False)
    out = []
    for name, field, comp in READS:
        try:
            seg = getattr(m, name.lower())
            value = getattr(seg, f"{name.lower()}_{field}")
            children = value.children
            out.append(children[comp - 1].to_er7() if len(children) >= comp else value.to_er7())
        except (IndexError, AttributeError, LookupError):
            out.append("")
    return out


def _time(fn: Callable[[bytes], object], data: bytes, budget_s: float, repeats: int) -> float:
    """Median microseconds per call over ``repeats`` rounds of about ``budget_s`` seconds.

    With ``--best`` the fastest round instead: on a shared machine it is the better estimate
    of the cost itself.
    """
    fn(data)
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < 0.05:
        fn(data)
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    n = max(3, int(budget_s / per_call))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(data)
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return min(samples) if _BEST else statistics.median(samples)


_BEST = False

RULES = [
    {"id": "mrn", "location": "PID-3.1", "required": True},
    {"id": "name", "location": "PID-5.1", "required": True},
    {"id": "sex", "location": "PID-8", "enum": ["F", "M", "O", "U", "A", "N"]},
    {"id": "dob", "location": "PID-7", "pattern": "^[0-9]{8}"},
    {"id": "class", "location": "PV1-2", "enum": ["I", "O", "E", "P", "R", "B", "N", "U"]},
]


def _bind(gate: ValidatorPlugin, message: Message) -> Callable[[bytes], object]:
    """A timing target that validates ``message`` (the bytes argument is ignored)."""

    def run(_data: bytes) -> object:
        # A fresh payload object each time: gates share the parse of one payload object, and
        # the figure should include this gate's own parse.
        return gate.validate(Message(bytes(bytearray(message.payload)), message.format))

    return run


def _validator_rows(label: str, data: bytes, budget: float, repeats: int) -> None:
    from pyheart.validators.business_rules import BusinessRulesValidator
    from pyheart.validators.fhir_structure import FhirStructureValidator
    from pyheart.validators.hl7v2_strict import Hl7v2StrictValidator
    from pyheart.validators.hl7v2_structure import Hl7v2StructureValidator

    message = Message(data, Format.HL7V2)
    gates = [
        ("hl7v2-structure", Hl7v2StructureValidator()),
        ("hl7v2-strict", Hl7v2StrictValidator()),
        ("business-rules (5 HL7 rules)", BusinessRulesValidator({"rules": RULES})),
    ]
    for name, gate in gates:
        us = _time(_bind(gate, message), data, budget, repeats)
        print(f"  {name:<30} {us:>11.1f} us/message")
    expected = {
        "ADT-A01-01": "ADT_A01/ADT-A01-01-expected.json",
        "ADT-A09-01": "ADT_A09/ADT-A09-01-expected.json",
        "ORU-R01-01": "ORU_R01/ORU-R01-01-expected.json",
    }
    for key, rel in expected.items():
        path = CORPUS / "ms-fhir-converter/expected" / rel
        if key in label and path.exists():
            bundle = Message(path.read_bytes(), Format.FHIR_JSON)
            fhir_gate = FhirStructureValidator()
            us = _time(_bind(fhir_gate, bundle), data, budget, repeats)
            kb = len(bundle.payload) / 1024
            print(f"  {'fhir-structure (its Bundle)':<30} {us:>11.1f} us/message  ({kb:.0f} KiB)")


def main() -> None:
    """Run the benchmark and print one table per message."""
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--repeats", type=int, default=5)
    args.add_argument("--quick", action="store_true", help="shorter rounds (for a smoke run)")
    args.add_argument("--validators", action="store_true", help="also time the validator plugins")
    args.add_argument("--best", action="store_true", help="fastest round instead of the median")
    opts = args.parse_args()
    global _BEST
    _BEST = opts.best
    budget = 0.05 if opts.quick else 0.4
    contenders: list[tuple[str, Callable[[bytes], object]]] = [
        ("pyheart parse only", ours_parse),
        ("pyheart parse + 20 reads", ours_reads),
        ("python-hl7 parse + 20 reads", python_hl7_reads),
        ("hl7apy parse + 20 reads", hl7apy_reads),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, text in _messages().items():
            data = text.encode("utf-8")
            print(f"\n{label}")
            base = None
            for name, fn in contenders:
                try:
                    us = _time(fn, data, budget, opts.repeats)
                except Exception as exc:  # hl7apy refuses some valid messages
                    print(f"  {name:<30} {'fails':>11}  ({type(exc).__name__})")
                    continue
                if name == "pyheart parse + 20 reads":
                    base = us
                ratio = f"{us / base:8.1f}x" if base else "        -"
                print(f"  {name:<30} {us:>11.1f} us/message  {ratio} (vs pyheart parse + 20 reads)")
            if opts.validators:
                _validator_rows(label, data, budget, opts.repeats)


if __name__ == "__main__":
    main()
