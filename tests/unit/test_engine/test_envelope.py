"""Envelope headers, partition keys and trace context."""

from __future__ import annotations

import orjson

from pyheart.broker.contracts import Format, Header
from pyheart.broker.engine.envelope import (
    envelope_for,
    fhir_patient_key,
    hl7_patient_key,
    new_traceparent,
    sniff_format,
)

ADT = (
    b"MSH|^~\\&|EPIC|HOSP|LAB|HOSP|20240101120000||ADT^A01|CTRL0001|P|2.5\r"
    b"PID|1||MRN123^^^HOSP^MR~OTHER^^^X||DOE^JANE\r"
)


def test_hl7_key_uses_first_identifier_and_authority() -> None:
    """The HL7 key depends on PID-3's first id and its assigning authority."""
    other_authority = ADT.replace(b"MRN123^^^HOSP", b"MRN123^^^ELSEWHERE")
    assert hl7_patient_key(ADT) != hl7_patient_key(other_authority)
    assert hl7_patient_key(ADT) == hl7_patient_key(ADT.replace(b"DOE^JANE", b"ROE^JOHN"))


def test_hl7_key_is_a_digest() -> None:
    """The key never contains the identifier itself."""
    key = hl7_patient_key(ADT)
    assert key is not None
    assert b"MRN123" not in key


def test_hl7_without_pid_has_no_key() -> None:
    """A message without PID gives no patient key."""
    assert hl7_patient_key(ADT.split(b"\r")[0] + b"\r") is None


def test_fhir_patient_identifier_key() -> None:
    """A FHIR Patient is keyed by its first identifier, like a Bundle holding it."""
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "123"}]}
    bundle = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Encounter"}}, {"resource": patient}],
    }
    assert fhir_patient_key(orjson.dumps(patient)) == fhir_patient_key(orjson.dumps(bundle))


def test_fhir_subject_reference_key() -> None:
    """A resource about a patient is keyed by its subject reference."""
    obs = {"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}
    patient = {"resourceType": "Patient", "id": "p1"}
    assert fhir_patient_key(orjson.dumps(obs)) == fhir_patient_key(orjson.dumps(patient))


def test_envelope_completes_missing_headers() -> None:
    """An HL7 record without headers gets the full envelope, lineage and a patient key."""
    headers, key = envelope_for(
        ADT, {}, topic="t", partition=1, offset=5, default_format=None, source=None, want_patient_key=True
    )
    assert (headers[Header.CONTENT_TYPE], headers[Header.SOURCE], headers[Header.LINEAGE]) == (
        Format.HL7V2,
        "EPIC^HOSP",
        "t/1/5",
    )
    assert key == hl7_patient_key(ADT)


def test_message_id_stable_across_redelivery() -> None:
    """The same coordinates give the same message id (a redelivered record keeps it)."""
    first, _ = envelope_for(
        b"x", {}, topic="t", partition=0, offset=1, default_format="text/plain", source=None
    )
    again, _ = envelope_for(
        b"x", {}, topic="t", partition=0, offset=1, default_format="text/plain", source=None
    )
    assert first[Header.MESSAGE_ID] == again[Header.MESSAGE_ID]


def test_existing_headers_kept() -> None:
    """Headers set upstream (ids, trace context) are kept."""
    given = {Header.MESSAGE_ID: "m1", Header.TRACEPARENT: "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    headers, _ = envelope_for(
        b"x", dict(given), topic="t", partition=0, offset=1, default_format=None, source=None
    )
    assert (headers[Header.MESSAGE_ID], headers[Header.TRACEPARENT]) == (
        given[Header.MESSAGE_ID],
        given[Header.TRACEPARENT],
    )


def test_child_traceparent_keeps_trace_id() -> None:
    """A child span keeps the trace id and gets a new span id."""
    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    child = new_traceparent(parent).split("-")
    assert (child[1], child[3]) == ("a" * 32, "01")
    assert child[2] != "b" * 16


def test_sniff_formats() -> None:
    """HL7, FHIR JSON and other payloads are told apart."""
    assert [sniff_format(p) for p in (ADT, b'{"resourceType":"Patient"}', b"[1]", b"\x00")] == [
        Format.HL7V2,
        Format.FHIR_JSON,
        Format.JSON,
        Format.OCTET_STREAM,
    ]
