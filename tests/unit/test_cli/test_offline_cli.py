"""`pyheart convert` and `pyheart validate`: offline, format detected from the input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus_paths import CORPUS

from pyheart.broker.cli import main
from pyheart.broker.offline import OfflineError, detect_format

ADT = CORPUS / "ms-fhir-converter" / "hl7v2" / "ADT-A01-01.hl7"
CANARY = "ZQXCANARY"


def test_convert_hl7v2_to_fhir_prints_a_transaction_bundle(capsys: pytest.CaptureFixture[str]) -> None:
    """An HL7v2 file converts to a FHIR transaction Bundle on stdout, exit 0."""
    assert main(["convert", "--to", "fhir", str(ADT)]) == 0
    bundle = json.loads(capsys.readouterr().out)
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "transaction"
    assert "Patient" in {e["resource"]["resourceType"] for e in bundle["entry"]}


def test_convert_fhir_to_hl7v2_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The Bundle converts back to an ER7 message starting with MSH."""
    assert main(["convert", "--to", "fhir", str(ADT)]) == 0
    bundle = tmp_path / "bundle.json"
    bundle.write_text(capsys.readouterr().out)
    assert main(["convert", "--to", "hl7v2", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("MSH|^~\\&|")
    assert "\nPID|" in out


def test_convert_garbage_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Unrecognised input exits 1 with a message that does not echo the input."""
    bad = tmp_path / "bad.txt"
    bad.write_text(f"hello {CANARY}")
    assert main(["convert", "--to", "fhir", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pyheart: error: unrecognised input")
    assert CANARY not in err


def test_convert_broken_hl7_names_location_not_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed HL7v2 message exits 1 with a location and without its values."""
    bad = tmp_path / "bad.hl7"
    bad.write_text(f"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rP!D|1||{CANARY}\r")
    assert main(["convert", "--to", "fhir", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "segment 2" in err
    assert CANARY not in err


def test_validate_valid_message_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """A valid message prints an OperationOutcome and exits 0."""
    assert main(["validate", str(ADT)]) == 0
    assert json.loads(capsys.readouterr().out)["resourceType"] == "OperationOutcome"


def test_validate_invalid_fhir_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid FHIR resource exits 1 with an error issue located by path, without the value."""
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"resourceType": "Patient", "birthDate": f"not-a-date-{CANARY}"}))
    assert main(["validate", str(bad)]) == 1
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["issue"][0]["severity"] == "error"
    assert CANARY not in json.dumps(outcome)


def test_detect_format_rejects_other_json() -> None:
    """JSON that is neither FHIR nor DICOM JSON is refused by name."""
    with pytest.raises(OfflineError, match="neither a FHIR resource nor a DICOM JSON dataset"):
        detect_format(b'{"hello": 1}')
