"""What a payload becomes on the wire, and what the server's answer means."""

from __future__ import annotations

import httpx
import pytest
from fhir_support import dumps, transaction_bundle

from pyheart.adapters.fhir.client import (
    FhirRequest,
    operation_outcome_codes,
    outcome_from_exception,
    outcome_from_response,
    plan_request,
)
from pyheart.broker.errors import ParseError, TransportError

PATIENT = {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "MRN-77"}]}


def test_transaction_bundle_is_posted_to_the_base() -> None:
    """A transaction Bundle goes to POST [base]."""
    request = plan_request(dumps(transaction_bundle("M1")))
    assert (request.method, request.path, request.kind) == ("POST", "", "transaction")


def test_batch_bundle_is_posted_to_the_base() -> None:
    """A batch Bundle goes to POST [base] as well."""
    request = plan_request(dumps({"resourceType": "Bundle", "type": "batch", "entry": []}))
    assert (request.method, request.path, request.kind) == ("POST", "", "batch")


def test_resource_with_identifier_is_a_conditional_update() -> None:
    """A resource with an identifier becomes PUT Type?identifier=system|value."""
    request = plan_request(dumps(PATIENT))
    assert (request.method, request.path, request.params) == (
        "PUT",
        "Patient",
        (("identifier", "urn:mrn|MRN-77"),),
    )


def test_conditional_create_uses_if_none_exist() -> None:
    """With conditional_create, the identifier search goes into If-None-Exist of a POST."""
    request = plan_request(dumps(PATIENT), conditional_create=True)
    assert (request.method, request.path, dict(request.headers)) == (
        "POST",
        "Patient",
        {"If-None-Exist": "identifier=urn%3Amrn%7CMRN-77"},
    )


def test_resource_with_id_is_an_update() -> None:
    """A resource with an id and no identifier becomes PUT Type/id."""
    request = plan_request(dumps({"resourceType": "Observation", "id": "obs-1", "status": "final"}))
    assert (request.method, request.path, request.kind) == ("PUT", "Observation/obs-1", "update")


def test_resource_without_id_or_identifier_is_created() -> None:
    """A resource without id or identifier is POSTed."""
    request = plan_request(dumps({"resourceType": "Observation", "status": "final"}))
    assert (request.method, request.path, request.kind) == ("POST", "Observation", "create")


def test_payload_that_is_not_json_is_rejected_with_location() -> None:
    """A non-JSON payload raises ParseError naming the payload, not quoting it."""
    with pytest.raises(ParseError, match=r"^payload is not JSON$") as info:
        plan_request(b"MSH|^~\\&|SECRET-CANARY")
    assert info.value.locations == ["payload"]


def test_payload_without_resource_type_is_rejected() -> None:
    """A JSON object without a resourceType raises ParseError at resourceType."""
    with pytest.raises(ParseError, match="resourceType is missing") as info:
        plan_request(b'{"name": "x"}')
    assert info.value.locations == ["resourceType"]


def test_invalid_id_is_rejected() -> None:
    """An id that is not a FHIR id (it would change the URL path) is rejected."""
    with pytest.raises(ParseError, match="id is not a valid FHIR id"):
        plan_request(dumps({"resourceType": "Patient", "id": "../metadata"}))


def test_description_hides_identifiers_and_ids() -> None:
    """The log description of a request names the type only: no identifier, no id."""
    conditional = plan_request(dumps(PATIENT)).describe()
    update = plan_request(dumps({"resourceType": "Patient", "id": "MRN-77"})).describe()
    assert (conditional, update) == ("PUT Patient?<conditional>", "PUT Patient/<id>")


def test_operation_outcome_codes_skip_diagnostics() -> None:
    """Issue codes and FHIRPath locations are read; diagnostics (which quote values) are not."""
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "bad value CANARY",
                "expression": ["Patient.gender"],
            },
            {"severity": "error", "code": "required", "location": ["Patient.name[0]"]},
            {"severity": "warning", "code": "informational"},
            {"severity": "error", "code": "Value CANARY", "expression": ["Patient.where(x='CANARY')"]},
        ],
    }
    assert operation_outcome_codes(outcome) == (
        ("invalid", "required"),
        ("Patient.gender", "Patient.name[0]"),
    )


def _response(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


TX = FhirRequest("POST", "", "transaction", "Bundle", b"{}")


def test_success_status_is_ok() -> None:
    """A 2xx answer is a delivery."""
    assert outcome_from_response(_response(200, {"resourceType": "Bundle"}), TX).ok


def test_503_with_retry_after_is_retriable() -> None:
    """A 503 is retried after the server's Retry-After."""
    outcome = outcome_from_response(_response(503, None, {"Retry-After": "2"}), TX)
    assert (outcome.retriable, outcome.retry_after, outcome.code) == (True, 2.0, "fhir-http-503")


def test_400_operation_outcome_is_a_rejection_with_codes() -> None:
    """A 400 OperationOutcome rejects the message and carries its issue codes."""
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}
    outcome = outcome_from_response(_response(400, body), TX)
    assert (outcome.ok, outcome.retriable, outcome.code, outcome.issue_codes) == (
        False,
        False,
        "fhir-rejected",
        ("processing",),
    )


def test_batch_with_failed_entry_is_a_rejection() -> None:
    """A batch-response whose entries failed is not a delivery."""
    body = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"response": {"status": "201 Created"}},
            {
                "response": {
                    "status": "400 Bad Request",
                    "outcome": {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "invalid"}],
                    },
                }
            },
        ],
    }
    batch = FhirRequest("POST", "", "batch", "Bundle", b"{}")
    outcome = outcome_from_response(_response(200, body), batch)
    assert (outcome.ok, outcome.code, outcome.issue_codes) == (
        False,
        "fhir-batch-entry-rejected",
        ("invalid",),
    )


def test_transport_errors_are_retriable() -> None:
    """Connection failures and timeouts are retried."""
    refused = outcome_from_exception(httpx.ConnectError("refused"))
    timeout = outcome_from_exception(httpx.ReadTimeout("slow"))
    assert (refused.retriable, refused.code, timeout.retriable, timeout.code) == (
        True,
        "fhir-unreachable",
        True,
        "fhir-timeout",
    )


def test_rejected_oauth2_client_is_retried_not_dead_lettered() -> None:
    """A token endpoint refusing the client is a credential outage: retried within the budget."""
    error = TransportError(
        "OAuth2 token endpoint answered 401", retriable=False, code="oauth2-token-rejected"
    )
    outcome = outcome_from_exception(error)
    assert (outcome.retriable, outcome.code, outcome.error_class) == (
        True,
        "oauth2-token-rejected",
        "TransportError",
    )


def test_unwrapped_ssl_error_is_a_retriable_transport_failure() -> None:
    """An ssl.SSLError that escapes httpx (server aborted the handshake) is retried like other transport errors."""
    import ssl

    from pyheart.adapters.fhir.client import outcome_from_exception

    outcome = outcome_from_exception(ssl.SSLError(1, "handshake failure"))
    assert (outcome.ok, outcome.retriable, outcome.code) == (False, True, "fhir-unreachable")
