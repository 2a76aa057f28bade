"""The HL7 v2 gates over the whole third-party corpus: they report, they never raise."""

from __future__ import annotations

import pytest
from corpus_paths import CORPUS

from pyheart.broker.contracts import Format, Message
from pyheart.broker.errors import ParseError
from pyheart.broker.hl7v2.parser import parse_batch
from pyheart.validators.hl7v2_strict import Hl7v2StrictValidator
from pyheart.validators.hl7v2_structure import Hl7v2StructureValidator


def _payloads() -> list[bytes]:
    out = []
    for path in sorted(CORPUS.rglob("*.hl7")):
        data = path.read_bytes()
        try:
            messages = parse_batch(data, join_wrapped=True)
        except ParseError:  # the damaged file: its single message goes in as it is
            out.append(data)
            continue
        out.extend(m.to_er7().encode() for m in messages)
    return out


def test_structure_gate_over_corpus() -> None:
    """hl7v2-structure reports on every corpus message without raising; errors always reject."""
    gate = Hl7v2StructureValidator()
    payloads = _payloads()
    reports = [gate.validate(Message(p, Format.HL7V2)) for p in payloads]
    assert len(reports) > 400
    assert all(i.code.startswith("hl7v2-") for r in reports for i in r.issues)
    assert all(r.reject for r in reports if not r.ok)


def test_structure_gate_passes_nist_cases() -> None:
    """The NIST ELR 2.5.1 test cases pass the structure gate."""
    gate = Hl7v2StructureValidator()
    paths = sorted((CORPUS / "node-hl7-complete/valid/nist").glob("*.hl7"))
    assert paths
    assert [gate.validate(Message(p.read_bytes(), Format.HL7V2)).issues for p in paths] == [()] * len(paths)


@pytest.mark.slow
def test_strict_gate_over_corpus() -> None:
    """hl7v2-strict reports on every corpus message without raising (hl7apy errors mapped)."""
    gate = Hl7v2StrictValidator()
    for payload in _payloads():
        report = gate.validate(Message(payload, Format.HL7V2))
        assert all(i.code.startswith("hl7v2-") for i in report.issues)
