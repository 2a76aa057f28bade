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
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from pyheart.adapters.fhir.auth import (
    HttpAuthenticator,
    auth_block_schema,
    authenticator_from_block,
    checked_config,
)
from pyheart.adapters.fhir.client import FhirClient, FhirRequest, Outcome, plan_request
from pyheart.adapters.fhir.retry import RetryPolicy
from pyheart.broker.contracts import Header
from pyheart.broker.errors import ConfigError, ParseError, Stage
from pyheart.broker.logs import get_logger
from pyheart.broker.plugin import Plugin, PluginMetadata, PluginType

#: Dead-letter header: the HTTP status of the last answer, when there was one.
HTTP_STATUS_HEADER = "pyheart-http-status"
#: Dead-letter header: the OperationOutcome's issue codes (``invalid,required``), comma-separated.
ISSUE_CODES_HEADER = "pyheart-fhir-issue-codes"
#: Dead-letter header: how many delivery attempts were made.
ATTEMPTS_HEADER = "pyheart-attempts"

_TOPIC = r"^[A-Za-z0-9._-]{1,249}$"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PRINTABLE = re.compile(r"[^\x20-\x7e]")

#: The sender's configuration schema (the spec's dialect; see :mod:`pyheart.broker.config`).
SENDER_SCHEMA: dict[str, Any] = {
    "base_url": {
        "type": "string",
        "required": True,
        "pattern": r"^https?://[^\s?#]+$",
        "description": "FHIR server base, e.g. https://fhir.example.org/fhir (no query)",
    },
    "bootstrap_servers": {"type": "string", "default": "localhost:9092"},
    "topic": {"type": "string", "required": True, "pattern": _TOPIC},
    "group_id": {"type": "string", "required": True, "min_length": 1},
    "dlq_topic": {
        "type": "string",
        "default": "",
        "pattern": r"^([A-Za-z0-9._-]{1,249})?$",
        "description": "dead-letter topic; default '<topic>.dlq'",
    },
    "auto_offset_reset": {"type": "string", "enum": ["earliest", "latest"], "default": "earliest"},
    "metadata_max_age_ms": {
        "type": "integer",
        "default": 10_000,
        "minimum": 1000,
        "description": "topic metadata refresh; finds a topic created after the sender started",
    },
    "client_id": {"type": "string", "default": "pyheart-fhir-sender"},
    "conditional_create": {
        "type": "boolean",
        "default": False,
        "description": "single resources with an identifier: POST + If-None-Exist instead of a conditional PUT",
    },
    "connect_timeout_s": {"type": "number", "default": 10, "minimum": 0.1},
    "read_timeout_s": {"type": "number", "default": 60, "minimum": 0.1},
    "max_connections": {"type": "integer", "default": 10, "minimum": 1, "maximum": 1000},
    "max_retries": {"type": "integer", "default": 5, "minimum": 0},
    "retry_backoff_s": {"type": "number", "default": 0.5, "minimum": 0},
    "retry_backoff_max_s": {"type": "number", "default": 30.0, "minimum": 0},
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


class ConsumerRecord(Protocol):
    """What the sender reads from a Kafka record (aiokafka's ``ConsumerRecord``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Consumer(Protocol):
    """What the sender needs from a Kafka consumer (``AIOKafkaConsumer`` satisfies it)."""

    async def start(self) -> None:
        """Join the group."""

    async def stop(self) -> None:
        """Leave the group."""

    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        """Fetched records by partition."""

    async def commit(self, offsets: Any = None) -> None:
        """Commit ``{TopicPartition: offset}``."""


class DlqProducer(Protocol):
    """What the sender needs to publish dead letters (``AIOKafkaProducer`` satisfies it)."""

    async def start(self) -> None:
        """Connect."""

    async def stop(self) -> None:
        """Flush and disconnect."""

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Publish and wait for the broker's acknowledgment."""


ClientFactory = Callable[[dict[str, Any]], tuple[Consumer, DlqProducer]]


def kafka_clients(settings: dict[str, Any]) -> tuple[Consumer, DlqProducer]:
    """The real clients: a manual-commit aiokafka consumer and an idempotent ``acks=all`` producer."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # no work at import time

    consumer: Consumer = AIOKafkaConsumer(
        settings["topic"],
        bootstrap_servers=settings["bootstrap_servers"],
        group_id=settings["group_id"],
        client_id=settings["client_id"],
        enable_auto_commit=False,
        auto_offset_reset=settings["auto_offset_reset"],
        isolation_level="read_committed",
        metadata_max_age_ms=settings["metadata_max_age_ms"],
    )
    producer: DlqProducer = AIOKafkaProducer(
        bootstrap_servers=settings["bootstrap_servers"],
        client_id=f"{settings['client_id']}-dlq",
        acks="all",
        enable_idempotence=True,
    )
    return consumer, producer


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Backoff for Kafka outages (client start, fetch, dead-letter publish)."""
    return RetryPolicy(backoff_s=base_s, backoff_max_s=max_s).backoff(attempt)


def _header_text(value: str, limit: int = 200) -> str:
    return _PRINTABLE.sub("?", value)[:limit]


@dataclass(frozen=True)
class DeliveryResult:
    """The final outcome of delivering one payload and how many attempts it took."""

    outcome: Outcome
    attempts: int
    request: FhirRequest | None = None


@dataclass
class SenderStats:
    """Counters since the adapter started."""

    delivered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    committed: int = 0


class _Stopping(Exception):
    """The adapter is stopping: leave the record uncommitted."""


class FhirRestSender(Plugin):
    """FHIR REST sender adapter: delivers FHIR records from a topic to a FHIR R4 server."""

    NAME = "fhir-rest-sender"

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        *,
        client_factory: ClientFactory | None = None,
        authenticator: HttpAuthenticator | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(config)
        self._client_factory: ClientFactory = client_factory or kafka_clients
        self._given_authenticator = authenticator
        self._authenticator: HttpAuthenticator | None = None
        self._owns_authenticator = False
        self._transport = transport
        self._log = get_logger("pyheart.adapters.fhir.sender")
        self._settings: dict[str, Any] = {}
        self._policy = RetryPolicy()
        self._fhir: FhirClient | None = None
        self._consumer: Consumer | None = None
        self._producer: DlqProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Event | None = None
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self.stats = SenderStats()

    def get_metadata(self) -> PluginMetadata:
        """Name, type and config schema."""
        return PluginMetadata(
            name=self.NAME,
            version="0.1.0",
            plugin_type=PluginType.ADAPTER,
            description="FHIR REST sender (FHIR out): delivers a topic to a FHIR R4 server, commits after 2xx",
            author="PyHeart",
            config_schema=SENDER_SCHEMA,
        )

    def validate_config(self, config: dict[str, Any]) -> bool:
        """The dead-letter topic must differ from the consumed topic."""
        return config.get("dlq_topic") != config.get("topic")

    @property
    def running(self) -> bool:
        """True once the Kafka clients are started and the delivery loop runs."""
        return self._started is not None and self._started.is_set()

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
        s = checked_config(self.NAME, SENDER_SCHEMA, self.config)
        s["dlq_topic"] = s["dlq_topic"] or f"{s['topic']}.dlq"
        self._settings = s
        self._policy = RetryPolicy(
            max_retries=s["max_retries"],
            backoff_s=s["retry_backoff_s"],
            backoff_max_s=s["retry_backoff_max_s"],
            retry_after_max_s=s["retry_after_max_s"],
        )
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
        self._wake = self._wake or asyncio.Event()

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
        self._stopping = False
        self._started = asyncio.Event()
        self._wake = asyncio.Event()
        self.stats = SenderStats()
        self._task = asyncio.create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._started.wait()), timeout=s["connect_timeout_s"])
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
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=self._settings.get("shutdown_timeout_s", 10))
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not task.cancelled() and task.exception() is not None:
                self._log.error(
                    "fhir.sender.stop", outcome="failure", error_type=type(task.exception()).__name__
                )
        await self._stop_clients()
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
        if self._fhir is None:
            raise ConfigError(f"plugin '{self.NAME}': not opened (call open() or initialize())")
        try:
            request = plan_request(payload, conditional_create=self._settings["conditional_create"])
        except ParseError as exc:
            return DeliveryResult(
                Outcome(False, None, False, exc.code, type(exc).__name__, (), tuple(exc.locations)), 0
            )
        extra = _forwarded_headers(headers or {})
        attempt = 0
        while True:
            if self._stopping and attempt > 0:
                raise _Stopping
            attempt += 1
            outcome = await self._fhir.send(request, extra)
            if outcome.ok or not outcome.retriable or self._policy.exhausted(attempt):
                return DeliveryResult(outcome, attempt, request)
            self.stats.retries += 1
            delay = self._policy.delay(attempt, outcome.retry_after)
            self._log.warning(
                "fhir.sender.retry",
                operation=request.describe(),
                status_code=outcome.status,
                error_code=outcome.code,
                error_type=outcome.error_class,
                attempt=attempt,
                delay_s=round(delay, 3),
            )
            await self._pause(delay)

    # ------------------------------------------------------------------------------ loop
    async def _start_clients(self) -> bool:
        attempt = 0
        while not self._stopping:
            consumer, producer = self._client_factory(self._settings)
            try:
                await producer.start()
                await consumer.start()
            except Exception as exc:  # unreachable cluster: retry
                attempt += 1
                self._log.warning(
                    "fhir.sender.kafka", outcome="unavailable", attempt=attempt, error_type=type(exc).__name__
                )
                for client in (consumer, producer):
                    with contextlib.suppress(Exception):
                        await client.stop()
                await self._pause(backoff_delay(attempt, 0.5, 10.0))
                continue
            self._consumer, self._producer = consumer, producer
            return True
        return False

    async def _stop_clients(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._consumer = self._producer = None
        if self._started is not None:
            self._started.clear()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the adapter is stopping."""
        if seconds <= 0:
            return
        if self._wake is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _run(self) -> None:
        if not await self._start_clients():
            return
        assert self._consumer is not None
        assert self._started is not None
        self._started.set()
        consumer = self._consumer
        failures = 0
        while not self._stopping:
            try:
                batches: Mapping[Any, list[Any]] = await consumer.getmany(timeout_ms=500, max_records=100)
            except Exception as exc:  # aiokafka retries most errors itself; back off on the rest
                failures += 1
                self._log.warning(
                    "fhir.sender.fetch", outcome="failure", attempt=failures, error_type=type(exc).__name__
                )
                await self._pause(backoff_delay(failures, 0.5, 10.0))
                continue
            failures = 0
            for tp, records in batches.items():
                for record in records:
                    if self._stopping:
                        return
                    try:
                        await self._process(record)
                    except _Stopping:
                        return
                    try:
                        await consumer.commit({tp: record.offset + 1})
                        self.stats.committed += 1
                    except Exception as exc:  # e.g. a rebalance took the partition: redelivered later
                        self._log.warning(
                            "fhir.sender.commit",
                            outcome="failure",
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            error_type=type(exc).__name__,
                        )

    async def _process(self, record: ConsumerRecord) -> None:
        """Deliver one record, or dead-letter it. Returns when the offset may be committed."""
        started = time.monotonic()
        envelope = {k: v.decode("utf-8", "replace") for k, v in (record.headers or ()) if v is not None}
        result = await self.deliver(record.value or b"", envelope)
        if result.outcome.ok:
            self.stats.delivered += 1
            self._log.info(
                "fhir.sender.delivered",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                operation=result.request.describe() if result.request else None,
                status_code=result.outcome.status,
                attempt=result.attempts,
                duration_ms=round((time.monotonic() - started) * 1000, 3),
            )
            return
        await self._dead_letter(record, result)

    async def _dead_letter(self, record: ConsumerRecord, result: DeliveryResult) -> None:
        """Publish ``record`` to the dead-letter topic with error headers; retried until Kafka takes it."""
        s = self._settings
        outcome = result.outcome
        own = {
            Header.ERROR_STAGE,
            Header.ERROR_CODE,
            Header.ERROR_CLASS,
            Header.ERROR_PLUGIN,
            Header.ERROR_LOCATIONS,
            Header.ORIGINAL_TOPIC,
            Header.ORIGINAL_PARTITION,
            Header.ORIGINAL_OFFSET,
            HTTP_STATUS_HEADER,
            ISSUE_CODES_HEADER,
            ATTEMPTS_HEADER,
        }
        headers = [(k, v) for k, v in (record.headers or ()) if k not in own]
        extra = {
            Header.ERROR_STAGE: (Stage.PARSE if result.attempts == 0 else Stage.DELIVER).value,
            Header.ERROR_CODE: outcome.code,
            Header.ERROR_CLASS: outcome.error_class,
            Header.ERROR_PLUGIN: self.NAME,
            Header.ERROR_LOCATIONS: ",".join(outcome.locations),
            Header.ORIGINAL_TOPIC: record.topic,
            Header.ORIGINAL_PARTITION: str(record.partition),
            Header.ORIGINAL_OFFSET: str(record.offset),
            HTTP_STATUS_HEADER: "" if outcome.status is None else str(outcome.status),
            ISSUE_CODES_HEADER: ",".join(outcome.issue_codes),
            ATTEMPTS_HEADER: str(result.attempts),
        }
        headers += [(k, _header_text(v).encode("ascii")) for k, v in extra.items() if v]
        attempt = 0
        while True:
            assert self._producer is not None
            try:
                await self._producer.send_and_wait(
                    s["dlq_topic"], value=record.value, key=record.key, headers=headers
                )
                break
            except Exception as exc:  # Kafka unavailable: the offset stays uncommitted meanwhile
                attempt += 1
                self._log.warning(
                    "fhir.sender.dlq", outcome="failure", attempt=attempt, error_type=type(exc).__name__
                )
                if self._stopping:
                    raise _Stopping from None
                await self._pause(backoff_delay(attempt, 0.5, 10.0))
        self.stats.dead_lettered += 1
        self._log.warning(
            "fhir.sender.dead_letter",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            status_code=outcome.status,
            error_code=outcome.code,
            failed=list(outcome.issue_codes),
            locations=list(outcome.locations),
            attempt=result.attempts,
            target=s["dlq_topic"],
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
