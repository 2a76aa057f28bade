"""FHIR R4 REST delivery: what request a payload becomes, sending it with httpx, and what the answer means.

A payload becomes one request (:func:`plan_request`):

- a Bundle of type ``transaction`` or ``batch`` -> ``POST [base]`` (the server applies its entries'
  conditional creates / updates itself);
- a resource with an ``identifier`` (system and value) -> conditional update
  ``PUT [base]/Type?identifier=system|value`` (create or update: the same patient twice is one
  Patient), or with ``conditional_create`` ``POST [base]/Type`` with ``If-None-Exist``;
- a resource with an ``id`` -> ``PUT [base]/Type/id``; anything else -> ``POST [base]/Type``.

An answer becomes an :class:`Outcome`: success, retriable (see :mod:`.retry`), or rejected. Rejections
carry the OperationOutcome's issue codes and FHIRPath locations only: ``diagnostics`` and ``details.text``
may quote the offending values and are never read. A batch whose entries failed is a rejection too.

Conditional URLs carry identifiers (PHI), so requests are described in logs as ``PUT Patient?<conditional>``
and the query string never reaches a log line, an exception text or a header.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from pyheart.adapters.fhir.retry import parse_retry_after, retriable_status
from pyheart.broker.contracts import Format
from pyheart.broker.errors import ParseError

_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_ISSUE_CODE = re.compile(r"^[a-z][a-z-]{0,39}$")
_LOCATION = re.compile(r"^[A-Za-z][A-Za-z0-9_.\[\]]{0,119}$")
_STATUS = re.compile(r"^\s*(\d{3})")

#: Media type sent and accepted.
FHIR_JSON = Format.FHIR_JSON


@dataclass(frozen=True)
class FhirRequest:
    """One HTTP request to the FHIR server, relative to its base URL."""

    method: str
    path: str
    kind: str
    resource_type: str
    body: bytes
    params: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """A log-safe description: method and resource type; ids and conditional queries become markers."""
        if not self.path:
            return f"{self.method} [base] ({self.kind})"
        suffix = "?<conditional>" if self.params else ("/<id>" if self.kind == "update" else "")
        return f"{self.method} {self.resource_type}{suffix}"


def plan_request(payload: bytes, *, conditional_create: bool = False) -> FhirRequest:
    """The request that delivers ``payload`` (FHIR JSON). Raises :class:`ParseError` naming the location."""
    try:
        resource = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ParseError("payload is not JSON", code="fhir-payload-invalid", locations=["payload"]) from None
    if not isinstance(resource, dict):
        raise ParseError("payload is not a FHIR resource", code="fhir-payload-invalid", locations=["payload"])
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not _RESOURCE_TYPE.match(rtype):
        raise ParseError(
            "resourceType is missing or not a FHIR resource type",
            code="fhir-payload-invalid",
            locations=["resourceType"],
        )
    if rtype == "Bundle" and resource.get("type") in ("transaction", "batch"):
        return FhirRequest("POST", "", str(resource["type"]), rtype, payload)
    identifier = _first_identifier(resource)
    rid = resource.get("id")
    if identifier is not None:
        search = (("identifier", identifier),)
        if conditional_create:
            query = str(httpx.QueryParams(search))
            return FhirRequest(
                "POST", rtype, "conditional-create", rtype, payload, headers={"If-None-Exist": query}
            )
        return FhirRequest("PUT", rtype, "conditional-update", rtype, payload, params=search)
    if rid is not None:
        if not isinstance(rid, str) or not _FHIR_ID.match(rid):
            raise ParseError(
                "id is not a valid FHIR id", code="fhir-payload-invalid", locations=[f"{rtype}.id"]
            )
        return FhirRequest("PUT", f"{rtype}/{rid}", "update", rtype, payload)
    return FhirRequest("POST", rtype, "create", rtype, payload)


def _first_identifier(resource: Mapping[str, Any]) -> str | None:
    """``system|value`` of the first identifier with both (the conditional update's search token)."""
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    if not isinstance(identifiers, list):
        return None
    for ident in identifiers:
        if isinstance(ident, dict):
            system, value = ident.get("system"), ident.get("value")
            if isinstance(system, str) and system and isinstance(value, str) and value:
                return f"{system}|{value}"
    return None


@dataclass(frozen=True)
class Outcome:
    """What one attempt achieved. Codes, statuses and locations only: never values."""

    ok: bool
    status: int | None = None
    retriable: bool = False
    code: str = ""
    error_class: str = ""
    issue_codes: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    retry_after: float | None = None


def operation_outcome_codes(body: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(issue codes, locations)`` of an OperationOutcome (or a Bundle's entry outcomes), de-duplicated.

    Only ``issue.code`` (an IssueType code) and ``issue.expression`` / ``issue.location`` (FHIRPath
    paths) are read, and only when they look like codes and paths.
    """
    codes: list[str] = []
    locations: list[str] = []

    def visit(outcome: object) -> None:
        if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
            return
        for issue in outcome.get("issue") or []:
            if not isinstance(issue, dict) or issue.get("severity") not in ("error", "fatal"):
                continue
            code = issue.get("code")
            if isinstance(code, str) and _ISSUE_CODE.match(code) and code not in codes:
                codes.append(code)
            for key in ("expression", "location"):
                for path in issue.get(key) or []:
                    if isinstance(path, str) and _LOCATION.match(path) and path not in locations:
                        locations.append(path)

    visit(body)
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        for entry in body.get("entry") or []:
            if isinstance(entry, dict) and isinstance(entry.get("response"), dict):
                visit(entry["response"].get("outcome"))
    return tuple(codes), tuple(locations)


def _json_body(response: httpx.Response) -> object:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _failed_batch_entries(body: object) -> bool:
    if not isinstance(body, dict) or body.get("type") != "batch-response":
        return False
    for entry in body.get("entry") or []:
        status = entry.get("response", {}).get("status", "") if isinstance(entry, dict) else ""
        match = _STATUS.match(str(status))
        if match is not None and int(match.group(1)) >= 400:
            return True
    return False


def outcome_from_response(response: httpx.Response, request: FhirRequest) -> Outcome:
    """Classify the server's answer to ``request``."""
    status = response.status_code
    if 200 <= status < 300:
        if request.kind == "batch":
            body = _json_body(response)
            if _failed_batch_entries(body):
                codes, locations = operation_outcome_codes(body)
                return Outcome(
                    False, status, False, "fhir-batch-entry-rejected", "BatchEntryRejected", codes, locations
                )
        return Outcome(True, status)
    codes, locations = operation_outcome_codes(_json_body(response))
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retriable_status(status):
        code = "fhir-auth-rejected" if status in (401, 403) else f"fhir-http-{status}"
        return Outcome(False, status, True, code, "HttpStatus", codes, locations, retry_after)
    return Outcome(
        False, status, False, "fhir-rejected", "OperationOutcome" if codes else "HttpStatus", codes, locations
    )


def outcome_from_exception(exc: Exception) -> Outcome:
    """Classify an exception raised while sending (transport errors are retried)."""
    if isinstance(exc, httpx.TimeoutException):
        return Outcome(False, None, True, "fhir-timeout", type(exc).__name__)
    if isinstance(exc, httpx.TransportError | OSError):
        # OSError covers ssl.SSLError: a TLS handshake the server aborts can surface unwrapped
        # by httpx; it is the same transport failure and is retried within the bounded budget.
        return Outcome(False, None, True, "fhir-unreachable", type(exc).__name__)
    code = getattr(exc, "code", "")
    # A token endpoint that refuses our client is a credential outage, not this message's fault:
    # retried within the bounded budget like a 401 from the FHIR server.
    retriable = bool(getattr(exc, "retriable", False)) or (
        isinstance(code, str) and code.startswith("oauth2-")
    )
    return Outcome(
        False,
        None,
        retriable,
        code if isinstance(code, str) and code else "fhir-send-failed",
        type(exc).__name__,
    )


class FhirClient:
    """An ``httpx.AsyncClient`` (connection pool, timeouts) bound to one FHIR server's base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        verify: ssl.SSLContext | bool = True,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
        max_connections: int = 10,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=connect_timeout_s)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/",
            auth=auth,
            verify=verify,
            timeout=timeout,
            limits=limits,
            headers={"Accept": FHIR_JSON, **(headers or {})},
            follow_redirects=False,
            transport=transport,
        )

    async def send(self, request: FhirRequest, headers: Mapping[str, str] | None = None) -> Outcome:
        """Send ``request`` once and classify the result (never raises for HTTP or transport failures)."""
        all_headers = {
            "Content-Type": FHIR_JSON,
            "Prefer": "return=minimal",
            **request.headers,
            **(headers or {}),
        }
        try:
            response = await self._client.request(
                request.method,
                request.path,
                params=request.params or None,
                content=request.body,
                headers=all_headers,
            )
        except Exception as exc:  # transport errors, token endpoint failures: classified, never re-raised
            return outcome_from_exception(exc)
        return outcome_from_response(response, request)

    async def aclose(self) -> None:
        """Close the pool."""
        await self._client.aclose()


__all__ = [
    "FHIR_JSON",
    "FhirClient",
    "FhirRequest",
    "Outcome",
    "operation_outcome_codes",
    "outcome_from_exception",
    "outcome_from_response",
    "plan_request",
]
