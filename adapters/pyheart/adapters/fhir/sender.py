"""The FHIR REST sender adapter: Kafka records out to a FHIR R4 server.

Consumes a topic with manual commits and delivers each record (FHIR JSON) with one pooled
``httpx.AsyncClient`` (see :mod:`.client` for which request a payload becomes):

- 2xx: delivered; the offset is committed only then;
- 401/403/408/409/429/5xx and transport errors: retried with exponential backoff and jitter, or
  after ``Retry-After`` when the server sends one, up to ``max_retries`` times, then dead-lettered;
- any other 4xx (an OperationOutcome), a batch with rejected entries, or a payload that is not a
  FHIR resource: dead-lettered at once;
- the dead-letter record is acknowledged by Kafka (``acks=all``) before the offset is committed;
  partitions are processed record by record, so per-key (per-patient) order holds.

Dead-letter records keep the payload, key and envelope headers and add error headers: stage, code,
class, plugin, original topic/partition/offset, the HTTP status, the OperationOutcome's issue codes
(``pyheart-fhir-issue-codes``) and FHIRPath locations, and the attempt count - never
``diagnostics`` (which quotes values) and never a conditional URL (which carries identifiers).

Credentials come from an ``auth`` block (``type: bearer | basic | oauth2-client-credentials | mtls``;
secret fields only as ``${VAR}``) or from an authenticator plugin passed in code.

The Kafka side (clients, fetch / retry / dead-letter / commit loop) is
:class:`pyheart.adapters._delivery.KafkaDelivery`, shared with the MLLP sender; this module adds
the HTTP attempt and how an answer is classified.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from pyheart.adapters._delivery import (
    ATTEMPTS_HEADER,
    ClientFactory,
    ConsumerRecord,
    DeadLetter,
    Delivered,
    SenderStats,
    TopicSender,
    consumer_fields,
    consumer_settings,
    kafka_clients,
    retry_fields,
)
from pyheart.adapters.fhir.auth import (
    HttpAuthenticator,
    auth_block_schema,
    authenticator_from_block,
)
from pyheart.adapters.fhir.client import FhirClient, FhirRequest, Outcome, plan_request
from pyheart.broker.contracts import Header
from pyheart.broker.errors import ConfigError, ParseError, Stage

#: Dead-letter header: the HTTP status of the last answer, when there was one.
HTTP_STATUS_HEADER = "pyheart-http-status"
#: Dead-letter header: the OperationOutcome's issue codes (``invalid,required``), comma-separated.
ISSUE_CODES_HEADER = "pyheart-fhir-issue-codes"

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

#: The sender's configuration schema (the spec's dialect; see :mod:`pyheart.broker.config`).
SENDER_SCHEMA: dict[str, Any] = {
    "base_url": {
        "type": "string",
        "required": True,
        "pattern": r"^https?://[^\s?#]+$",
        "description": "FHIR server base, e.g. https://fhir.example.org/fhir (no query)",
    },
    **consumer_fields("pyheart-fhir-sender"),
    "conditional_create": {
        "type": "boolean",
        "default": False,
        "description": "single resources with an identifier: POST + If-None-Exist instead of a conditional PUT",
    },
    "connect_timeout_s": {"type": "number", "default": 10, "minimum": 0.1},
    "read_timeout_s": {"type": "number", "default": 60, "minimum": 0.1},
    "max_connections": {"type": "integer", "default": 10, "minimum": 1, "maximum": 1000},
    "partition_concurrency": {
        "type": "integer",
        "default": 1,
        "minimum": 1,
        "maximum": 64,
        "description": "partitions delivered at once, each in order (records are keyed by patient); "
        "above 1, concurrent transactions may create the same shared resource twice on servers "
        "whose conditional updates race",
    },
    **retry_fields(backoff_s=0.5),
    "retry_after_max_s": {
        "type": "number",
        "default": 120.0,
        "minimum": 0,
        "description": "longest Retry-After honoured; longer values are capped",
    },
    "tls": {
        "type": "object",
        "default": {"verify": True},
        "properties": {
            "verify": {"type": "boolean", "default": True},
            "ca_file": {"type": "string", "description": "PEM CA bundle that verifies the server"},
        },
    },
    "auth": auth_block_schema(),
    "shutdown_timeout_s": {"type": "number", "default": 10, "minimum": 0},
}


@dataclass(frozen=True)
class DeliveryResult:
    """The final outcome of delivering one payload and how many attempts it took."""

    outcome: Outcome
    attempts: int
    request: FhirRequest | None = None


class FhirRestSender(TopicSender):
    """FHIR REST sender adapter: delivers FHIR records from a topic to a FHIR R4 server."""

    NAME = "fhir-rest-sender"
    DESCRIPTION = "FHIR REST sender (FHIR out): delivers a topic to a FHIR R4 server, commits after 2xx"
    SCHEMA = SENDER_SCHEMA
    EVENTS = "fhir.sender"

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        *,
        client_factory: ClientFactory | None = None,
        authenticator: HttpAuthenticator | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(config, client_factory=client_factory)
        self._given_authenticator = authenticator
        self._authenticator: HttpAuthenticator | None = None
        self._owns_authenticator = False
        self._transport = transport
        self._fhir: FhirClient | None = None

    @property
    def authenticator(self) -> HttpAuthenticator | None:
        """The authenticator in use (after :meth:`initialize`)."""
        return self._authenticator

    async def open(self) -> None:
        """Prepare the HTTP side only (authenticator and connection pool); :meth:`initialize` calls it.

        Useful on its own to :meth:`deliver` payloads without Kafka.
        """
        if self._fhir is not None:
            return
        s = consumer_settings(self.NAME, SENDER_SCHEMA, self.config)
        self._settings = s
        self._delivery.configure(s, retry_after_max_s=s["retry_after_max_s"])
        authenticator = self._given_authenticator
        self._owns_authenticator = authenticator is None
        if authenticator is None:
            authenticator = authenticator_from_block(s["auth"])
        if authenticator is not None:
            await authenticator.initialize()
        self._authenticator = authenticator
        tls = s["tls"]
        verify: ssl.SSLContext | bool = bool(tls.get("verify", True))
        client_ctx = authenticator.ssl_context(tls.get("ca_file")) if authenticator is not None else None
        if client_ctx is not None:
            verify = client_ctx
        elif verify and tls.get("ca_file"):
            verify = _ca_context(tls["ca_file"])
        self._fhir = FhirClient(
            s["base_url"],
            auth=authenticator.httpx_auth() if authenticator is not None else None,
            verify=verify,
            connect_timeout_s=s["connect_timeout_s"],
            read_timeout_s=s["read_timeout_s"],
            max_connections=s["max_connections"],
            transport=self._transport,
        )

    async def close(self) -> None:
        """Close the HTTP side (idempotent)."""
        fhir, self._fhir = self._fhir, None
        if fhir is not None:
            await fhir.aclose()
        authenticator, self._authenticator = self._authenticator, None
        if authenticator is not None and self._owns_authenticator:
            await authenticator.cleanup()

    async def initialize(self) -> bool:
        """Open the HTTP side and start the delivery loop (Kafka clients are started in it, retried)."""
        if self.initialized:
            return True
        await self.open()
        s = self._settings
        await self._delivery.start(wait_s=s["connect_timeout_s"])
        self.initialized = True
        self._log.info(
            "fhir.sender.start",
            topic=s["topic"],
            group_id=s["group_id"],
            target=s["base_url"],
            state="running" if self.running else "kafka-unavailable",
        )
        return True

    async def cleanup(self) -> bool:
        """Finish the record in hand (bounded), leave the rest uncommitted, stop the clients."""
        await self._delivery.finish(self._settings.get("shutdown_timeout_s", 10))
        await self._delivery.stop_clients()
        await self.close()
        if self.initialized:
            self._log.info("fhir.sender.stop", outcome="success", count=self.stats.delivered)
        self.initialized = False
        return True

    # ------------------------------------------------------------------------------ delivery
    async def deliver(self, payload: bytes, headers: Mapping[str, str] | None = None) -> DeliveryResult:
        """Deliver one payload with the retry policy; the final outcome (never raises for bad payloads).

        ``headers`` are envelope headers: ``traceparent`` and the message id are forwarded
        (``traceparent``, ``X-Request-ID``).
        """
        fhir = self._fhir
        if fhir is None:
            raise ConfigError(f"plugin '{self.NAME}': not opened (call open() or initialize())")
        try:
            request = plan_request(payload, conditional_create=self._settings["conditional_create"])
        except ParseError as exc:
            return DeliveryResult(
                Outcome(False, None, False, exc.code, type(exc).__name__, (), tuple(exc.locations)), 0
            )
        extra = _forwarded_headers(headers or {})
        outcome, attempts = await self._delivery.retry(
            lambda: fhir.send(request, extra),
            lambda failed: {
                "operation": request.describe(),
                "status_code": failed.status,
                "error_code": failed.code,
                "error_type": failed.error_class,
            },
        )
        return DeliveryResult(outcome, attempts, request)

    async def _handle(self, record: ConsumerRecord) -> Delivered | DeadLetter:
        """Deliver one record: what the delivery loop logs, or what it dead-letters."""
        envelope = {k: v.decode("utf-8", "replace") for k, v in (record.headers or ()) if v is not None}
        result = await self.deliver(record.value or b"", envelope)
        outcome = result.outcome
        if outcome.ok:
            return Delivered(
                result.attempts,
                {
                    "operation": result.request.describe() if result.request else None,
                    "status_code": outcome.status,
                },
            )
        return DeadLetter(
            result.attempts,
            outcome.code,
            outcome.error_class,
            outcome.locations,
            stage=Stage.PARSE if result.attempts == 0 else Stage.DELIVER,
            headers={
                HTTP_STATUS_HEADER: "" if outcome.status is None else str(outcome.status),
                ISSUE_CODES_HEADER: ",".join(outcome.issue_codes),
            },
            log_fields={
                "status_code": outcome.status,
                "error_code": outcome.code,
                "failed": list(outcome.issue_codes),
                "locations": list(outcome.locations),
            },
        )


def _forwarded_headers(envelope: Mapping[str, str]) -> dict[str, str]:
    """Trace context and message id for the server's logs (validated: ids, never content)."""
    out: dict[str, str] = {}
    trace = envelope.get(Header.TRACEPARENT, "")
    if _TRACEPARENT.match(trace):
        out["traceparent"] = trace
    message_id = envelope.get(Header.MESSAGE_ID, "")
    if _REQUEST_ID.match(message_id):
        out["X-Request-ID"] = message_id
    return out


def _ca_context(ca_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except FileNotFoundError:
        raise ConfigError("tls.ca_file: file not found") from None
    except (ssl.SSLError, OSError):
        raise ConfigError("tls.ca_file: not a readable PEM CA bundle") from None
    return ctx


__all__ = [
    "ATTEMPTS_HEADER",
    "HTTP_STATUS_HEADER",
    "ISSUE_CODES_HEADER",
    "SENDER_SCHEMA",
    "DeliveryResult",
    "FhirRestSender",
    "SenderStats",
    "kafka_clients",
]
