"""Typed plugin sub-contracts for message work: the message, validators and transformers.

Message work is pure CPU, so ``validate`` and ``transform`` are plain synchronous methods; the
engine owns retries, dead-lettering, metrics, logging context and offsets. A transformer returns a
new :class:`Message` (or several, or ``None`` to filter) and never mutates its input. A validator
returns a :class:`ValidationReport` and raises only when it is itself broken.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pyheart.broker.plugin import Plugin


class Format:
    """Media types of the payloads the engine carries (the ``content-type`` envelope header)."""

    HL7V2 = "application/hl7-v2"
    FHIR_JSON = "application/fhir+json"
    DICOM_JSON = "application/dicom+json"
    DICOM = "application/dicom"
    JSON = "application/json"
    OCTET_STREAM = "application/octet-stream"


class Header:
    """Names of the envelope headers carried on every Kafka record (values: ASCII, never PHI)."""

    MESSAGE_ID = "pyheart-message-id"  # uuid of this record's message
    CONTENT_TYPE = "content-type"  # a Format media type
    SOURCE = "pyheart-source"  # sending system / adapter id (e.g. MSH-3^MSH-4, or mllp:peer)
    MESSAGE_TYPE = "pyheart-message-type"  # e.g. ADT (HL7 MSH-9.1) or a FHIR resource type
    TRIGGER = "pyheart-trigger"  # e.g. A01 (MSH-9.2)
    CONTROL_ID = "pyheart-control-id"  # MSH-10
    CORRELATION_ID = "pyheart-correlation-id"  # id shared by every message derived from one input
    TRACEPARENT = "traceparent"  # W3C trace context
    LINEAGE = "pyheart-lineage"  # "topic/partition/offset" of the input this record came from
    REPLAY_OF = "pyheart-replay-of"  # "topic/partition/offset" of the record a replay re-sent
    RECEIVED_AT = "pyheart-received-at"  # ISO 8601 UTC time the engine received the message
    PEER = "pyheart-peer"  # network address of the sender (host:port), for adapters
    CLAIM_CHECK = "pyheart-claim-check"  # file:// URI (uuid name) of a claim-checked payload
    CLAIM_CHECK_SHA256 = "pyheart-claim-check-sha256"  # SHA-256 hex digest of that payload
    # dead-letter context
    ERROR_STAGE = "pyheart-error-stage"
    ERROR_CODE = "pyheart-error-code"
    ERROR_PLUGIN = "pyheart-error-plugin"
    ERROR_CLASS = "pyheart-error-class"
    ERROR_LOCATIONS = "pyheart-error-locations"
    ORIGINAL_TOPIC = "pyheart-original-topic"
    ORIGINAL_PARTITION = "pyheart-original-partition"
    ORIGINAL_OFFSET = "pyheart-original-offset"


@dataclass(frozen=True)
class Message:
    """One message in flight: payload bytes, media type, envelope headers and partition key.

    Immutable: use :meth:`evolve` to derive a new message.
    """

    payload: bytes
    format: str
    headers: Mapping[str, str] = field(default_factory=dict)
    key: bytes | None = None

    def evolve(self, **changes: Any) -> Message:
        """A copy with ``changes`` applied; ``headers`` given as a mapping are merged, not replaced."""
        if "headers" in changes:
            merged = dict(self.headers)
            merged.update(changes["headers"])
            changes["headers"] = merged
        return dataclasses.replace(self, **changes)

    def header(self, name: str, default: str | None = None) -> str | None:
        """An envelope header, or ``default``."""
        return self.headers.get(name, default)


class Severity(enum.StrEnum):
    """Issue severities, as FHIR's ``OperationOutcome.issue.severity``."""

    FATAL = "fatal"
    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"


@dataclass(frozen=True)
class Issue:
    """One finding: severity, stable code, location (``PID-5.1``, ``Patient.birthDate``), value-free text."""

    severity: Severity
    code: str
    location: str
    message: str
    #: FHIR ``IssueType`` code for the OperationOutcome (``structure``, ``required``, ``value``...).
    fhir_code: str = "invalid"


@dataclass(frozen=True)
class ValidationReport:
    """The issues a validator found. ``ok`` when none is an error or fatal."""

    issues: tuple[Issue, ...] = ()
    validator: str = ""
    #: True when the failure is in the message's structure or acceptability (HL7 AR / CR),
    #: False for content errors the sender can fix (AE / CE).
    reject: bool = False

    @property
    def ok(self) -> bool:
        """No issue of severity error or fatal."""
        return not any(i.severity in (Severity.ERROR, Severity.FATAL) for i in self.issues)

    def ack_code(self, enhanced: bool = False) -> str:
        """The HL7 acknowledgment code this report maps to (AA/AE/AR, or CA/CE/CR when ``enhanced``)."""
        if self.ok:
            code = "A"
        elif self.reject or any(i.severity is Severity.FATAL for i in self.issues):
            code = "R"
        else:
            code = "E"
        return ("C" if enhanced else "A") + code

    def merged(self, other: ValidationReport) -> ValidationReport:
        """Both reports' issues in one."""
        return ValidationReport(
            self.issues + other.issues, self.validator or other.validator, self.reject or other.reject
        )

    def to_operation_outcome(self) -> dict[str, Any]:
        """This report as a FHIR R4 OperationOutcome resource (a dict)."""
        issues = [
            {
                "severity": i.severity.value,
                "code": i.fhir_code,
                "details": {
                    "coding": [{"system": "urn:pyheart:issue-code", "code": i.code}],
                    "text": i.message,
                },
                "expression" if "." in i.location and "-" not in i.location else "location": [i.location],
            }
            for i in self.issues
        ]
        if not issues:
            issues = [{"severity": "information", "code": "informational", "details": {"text": "no issues"}}]
        return {"resourceType": "OperationOutcome", "issue": issues}


class ValidatorPlugin(Plugin):
    """A validator gate: checks one message and reports; never changes it."""

    #: Media types this validator understands; others pass untouched.
    accepts: ClassVar[tuple[str, ...]] = ()
    #: Run without being configured (``pyheart validate``, intake gates). False for opt-in gates such
    #: as strict standard validation or rules that need configuration.
    default_gate: ClassVar[bool] = True

    def validate(self, message: Message) -> ValidationReport:
        """Check ``message``. Raise only when the validator itself is broken."""
        raise NotImplementedError

    async def initialize(self) -> bool:
        """Pure-CPU validators have nothing to set up."""
        return True

    async def cleanup(self) -> bool:
        """Pure-CPU validators have nothing to release."""
        return True


class TransformerPlugin(Plugin):
    """A converter from one format to another."""

    #: Media types this transformer consumes and produces; pipelines are checked against them.
    consumes: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[tuple[str, ...]] = ()
    #: Holds messages back across calls (e.g. aggregates a study's instances), so it is not used for
    #: one-shot offline conversion.
    buffering: ClassVar[bool] = False

    def transform(self, message: Message) -> Message | Sequence[Message] | None:
        """Return a new message (or several, or ``None`` to filter). Never mutate ``message``."""
        raise NotImplementedError

    async def initialize(self) -> bool:
        """Pure-CPU transformers have nothing to set up."""
        return True

    async def cleanup(self) -> bool:
        """Pure-CPU transformers have nothing to release."""
        return True


__all__ = [
    "Format",
    "Header",
    "Issue",
    "Message",
    "Severity",
    "TransformerPlugin",
    "ValidationReport",
    "ValidatorPlugin",
]
