"""Fast ids, the agreement metric, the split of corpus files and the generated vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyheart.transformers import fhir_ids
from pyheart.transformers.hl7v2_fhir import _vocab, ids
from pyheart.transformers.hl7v2_fhir.conformance import gaps, leaves
from pyheart.transformers.hl7v2_fhir.corpus import split_messages
from pyheart.transformers.hl7v2_fhir.coverage import main, report
from pyheart.transformers.hl7v2_fhir.gen_vocab import build, read_map

IG = Path("/work/shared/corpus/hl7-v2-to-fhir-ig/mappings")


@pytest.mark.parametrize(
    "parts", [("Patient", "urn:oid:1.2.3", "MRN1"), ("Location", " x ", "é", ""), ("Bundle",)]
)
def test_fast_ids_equal_shared_ids(parts: tuple[str, ...]) -> None:
    """The hot-path ids are exactly the shared fhir_ids ones (same UUIDv5)."""
    assert ids.resource_id(*parts) == fhir_ids.resource_id(*parts)


def test_leaves_ignore_ids_and_references() -> None:
    """The agreement metric compares leaf values by resource type and index-free path only."""
    bundle = {
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": {
                    "resourceType": "Patient",
                    "id": "x",
                    "name": [{"given": ["A", "B"]}],
                    "managingOrganization": {"reference": "Organization/1"},
                },
                "request": {"method": "PUT", "url": "Patient/x"},
            }
        ]
    }
    assert leaves(bundle) == {("Patient", "name.given", "A"), ("Patient", "name.given", "B")}


def test_leaves_compare_instants_in_utc() -> None:
    """Date-times with a zone compare as instants."""
    bundle = {
        "entry": [
            {"resource": {"resourceType": "Encounter", "period": {"start": "2024-01-02T12:30:00-05:00"}}}
        ]
    }
    assert leaves(bundle) == {("Encounter", "period.start", "2024-01-02T17:30:00Z")}


def _bundle(*resources: dict[str, object]) -> dict[str, object]:
    return {"entry": [{"resource": r} for r in resources]}


def test_gaps_sort_missed_values_by_cause() -> None:
    """Each missed value lands in exactly one cause; carried values are not counted."""
    theirs = _bundle(
        {
            "resourceType": "Patient",
            "text": {"status": "generated"},
            "identifier": [{"system": "http://example.com/v2-to-fhir-converter/Identifier/X", "value": "1"}],
            "maritalStatus": {"coding": [{"code": "M", "display": "Married (v2 text)"}], "text": "Married"},
            "gender": "female",
            "birthDate": "2000-01-01",
        },
        {"resourceType": "Location", "description": "Ward 3--Bed 2--Z"},
    )
    ours = _bundle(
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:id:X", "value": "1"}],
            "maritalStatus": {"coding": [{"code": "M", "display": "Married"}]},
            "gender": "female",
        },
        {"resourceType": "Location", "name": "Ward 3", "alias": ["Bed 2"]},
    )
    assert gaps(theirs, ours) == {
        "converter-naming": 1,  # the example.com system (the value "1" is carried)
        "narrative": 1,
        "display-text": 1,  # same code M, another display
        "elsewhere": 1,  # "Married" as text: we carry it as the display
        "joined-text": 1,  # two of three parts carried
        "other": 1,  # birthDate
    }


def test_gaps_command_prints_causes(capsys: pytest.CaptureFixture[str]) -> None:
    """``--gaps`` prints every cause and the ceiling without FHIR-Converter's artefacts."""
    from pyheart.transformers.hl7v2_fhir import conformance

    assert conformance.main(["--gaps"]) == 0
    out = capsys.readouterr().out
    for kind in conformance.GAP_CATEGORIES:
        assert f"  {kind} " in out
    assert "ceiling without FHIR-Converter's artefacts" in out


def test_split_continuations_and_assertions() -> None:
    """Corpus text files: backslash continuations join, indented assertion lines are dropped."""
    text = (
        "# comment\nMSH|^~\\&|\\\n\tA|B|\\\n\tC|D|20240101||ADT^A01|1|P|2.5\n\t@Patient.count() = 1\nPID|1\n"
    )
    assert split_messages(text) == ["MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1\r"]


def test_split_several_messages() -> None:
    """Several messages in one file split at each MSH."""
    text = "MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\rPID|2\r"
    assert split_messages(text) == ["MSH|^~\\&|A\rPID|1\r", "MSH|^~\\&|B\rPID|2\r"]


def test_generated_vocabulary_is_current() -> None:
    """The checked-in _vocab.py holds what the generator reads from the IG CSVs."""
    assert build(IG) == (_vocab.VOCAB, _vocab.V2_TABLES)


def test_concept_map_reader() -> None:
    """A concept map row gives (FHIR code, display, system) for the v2 code."""
    entries, _tables = read_map(IG / "codesystems" / "HL7 Concept Map_ AdministrativeSex - Sheet1.csv")
    assert entries["F"] == ("female", "Female", "http://hl7.org/fhir/administrative-gender")


def test_coverage_report_reads_ig_tables() -> None:
    """The coverage report lists the IG's 13 message maps and counts declared fields against them."""
    rep = report(IG)
    assert len(rep["messages"]) == 13
    assert 0 < rep["fields"]["implemented"] <= rep["fields"]["ig"]
    pid = next(s for s in rep["segment_maps"] if s["map"] == "PID[Patient]")
    assert "PID-5" not in pid["missing"]


def test_coverage_command_prints_table(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m ...coverage`` prints the message and segment tables."""
    assert main(["--ig", str(IG)]) == 0
    out = capsys.readouterr().out
    assert "IG message maps" in out
    assert "PID[Patient]" in out
