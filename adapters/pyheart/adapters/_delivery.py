"""What the adapters share: config checks, header values, backoff, Kafka clients and the delivery loop.

The senders (``mllp-sender``, ``fhir-rest-sender``) differ only in how one record reaches its
target; :class:`KafkaDelivery` is everything around that, written once:

- a manual-commit consumer (``read_committed``) and an idempotent ``acks=all`` dead-letter
  producer, started with backoff for as long as the adapter runs;
- records are handled one at a time per partition, so per-key order holds; each goes to the
  adapter's handler, which may use :meth:`KafkaDelivery.retry` (bounded retries, exponential
  backoff with jitter or the target's own hint such as ``Retry-After``) and answers
  :class:`Delivered` or :class:`DeadLetter`;
- a dead letter keeps payload, key and envelope headers and adds value-free error headers; it is
  published until Kafka acknowledges it;
- the offset is committed only after delivery or after the dead letter is acknowledged.

Kafka security (TLS, SASL) is one set of schema fields for every adapter, :func:`security_fields`
(``security_protocol``, ``kafka_tls``, ``kafka_sasl``; see :mod:`pyheart.broker.kafka_security`),
applied by :func:`idempotent_producer` and :func:`manual_commit_consumer`.

Log events are ``<prefix>.kafka``, ``.fetch``, ``.commit``, ``.retry``, ``.delivered``,
``.dead_letter``, ``.dlq`` and ``.stop`` with the adapter's prefix (``mllp.sender``, ``fhir.sender``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from pyheart.broker.claimcheck import (
    CLAIM_HEADERS,
    DEFAULT_THRESHOLD_BYTES,
    ClaimCheckError,
    ClaimCheckStore,
    resolve,
)
from pyheart.broker.config import validate_config
from pyheart.broker.contracts import Header
from pyheart.broker.errors import PluginConfigError, Stage
from pyheart.broker.kafka_security import config_kwargs, explain_failures, security_fields
from pyheart.broker.logs import SafeBoundLogger, get_logger
from pyheart.broker.plugin import Plugin, PluginMetadata, PluginType

#: Dead-letter header: how many delivery attempts were made.
ATTEMPTS_HEADER = "pyheart-attempts"

_TOPIC = r"^[A-Za-z0-9._-]{1,249}$"
_PRINTABLE = re.compile(r"[^\x20-\x7e]")


# ------------------------------------------------------------------------------ small helpers
def checked_config(plugin_id: str, schema: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` validated against ``schema`` with defaults applied (idempotent for a validated config).

    The registry validates configs it loads; this repeats it so a plugin built in code and started
    on its own gets the same checks. Raises :class:`PluginConfigError`.
    """
    validated, issues = validate_config(schema, config)
    if issues:
        raise PluginConfigError(plugin_id, issues)
    return validated


def header_text(value: str, limit: int = 64) -> str:
    """A header value made of printable ASCII (other characters become ``?``), at most ``limit`` long."""
    if value.isascii() and value.isprintable():
        return value[:limit]
    return _PRINTABLE.sub("?", value)[:limit]


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter over [delay/2, delay] for ``attempt`` (1-based)."""
    delay = min(max_s, base_s * 2.0 ** max(0, attempt - 1))
    return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter, honouring ``Retry-After``."""

    max_retries: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0

    def exhausted(self, attempt: int) -> bool:
        """Whether ``attempt`` (1-based: the first try is attempt 1) was the last one allowed."""
        return attempt > self.max_retries

    def backoff(self, attempt: int) -> float:
        """The backoff after failed ``attempt`` (1-based): ``backoff_s * 2**(attempt-1)``, capped,
        with jitter over its upper half so that senders that failed together do not retry together."""
        return backoff_delay(attempt, self.backoff_s, self.backoff_max_s)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed ``attempt``: ``Retry-After`` (capped) when given, else the backoff."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.retry_after_max_s)
        return self.backoff(attempt)


# ------------------------------------------------------------------------------ config fields
#: ``claim_check`` as every adapter declares it (see :mod:`pyheart.broker.claimcheck`): producers
#: offload payloads above ``threshold_bytes`` to ``dir``; consumers resolve claims from ``dir``.
CLAIM_CHECK_FIELD: Mapping[str, Any] = {
    "type": "object",
    "description": "claim-check store for payloads too large for a Kafka record",
    "properties": {
        "dir": {"type": "string", "required": True, "description": "claim-check directory"},
        "threshold_bytes": {"type": "integer", "default": DEFAULT_THRESHOLD_BYTES, "minimum": 1},
    },
}
#: ``bootstrap_servers`` as every adapter declares it.
BOOTSTRAP_SERVERS_FIELD: Mapping[str, Any] = {"type": "string", "default": "localhost:9092"}


def consumer_fields(client_id: str) -> dict[str, Any]:
    """Schema fields of an adapter that consumes a topic and dead-letters what it cannot deliver."""
    return {
        "bootstrap_servers": dict(BOOTSTRAP_SERVERS_FIELD),
        **security_fields(),
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
        "client_id": {"type": "string", "default": client_id},
        "claim_check": dict(CLAIM_CHECK_FIELD),
    }


def retry_fields(backoff_s: float) -> dict[str, Any]:
    """Schema fields of the bounded retries (``max_retries``, ``retry_backoff_s``, ``retry_backoff_max_s``)."""
    return {
        "max_retries": {"type": "integer", "default": 5, "minimum": 0},
        "retry_backoff_s": {"type": "number", "default": backoff_s, "minimum": 0},
        "retry_backoff_max_s": {"type": "number", "default": 30.0, "minimum": 0},
    }


def consumer_settings(plugin_id: str, schema: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """A consuming adapter's checked config, with ``dlq_topic`` defaulted to ``<topic>.dlq``."""
    settings = checked_config(plugin_id, schema, config)
    settings["dlq_topic"] = settings["dlq_topic"] or f"{settings['topic']}.dlq"
    return settings


# ------------------------------------------------------------------------------ Kafka clients
class ConsumerRecord(Protocol):
    """What a sender reads from a Kafka record (aiokafka's ``ConsumerRecord``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass
class _Record:
    """A consumed record with its claim-checked payload resolved."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Consumer(Protocol):
    """What a sender needs from a Kafka consumer (``AIOKafkaConsumer`` satisfies it)."""

    async def start(self) -> None:
        """Join the group."""

    async def stop(self) -> None:
        """Leave the group."""

    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        """Fetched records by partition."""

    async def commit(self, offsets: Any = None) -> None:
        """Commit ``{TopicPartition: offset}``."""


class DlqProducer(Protocol):
    """What a sender needs to publish dead letters (``AIOKafkaProducer`` satisfies it)."""

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


class Startable(Protocol):
    """A Kafka client with aiokafka's ``start``/``stop`` (``stop`` is safe after a failed start)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def start_all(*clients: Startable) -> None:
    """Start ``clients`` in order; on any failure, cancellation included, stop every one and re-raise.

    aiokafka warns about (and leaks the connections of) a client that was created and never
    stopped, which is what a cancelled or failed ``start()`` leaves behind without this.
    """
    try:
        for client in clients:
            await client.start()
    except BaseException:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.stop()
        raise


def idempotent_producer(
    bootstrap_servers: str,
    client_id: str | None = None,
    *,
    security: Mapping[str, Any] | None = None,
    **options: Any,
) -> Any:
    """An aiokafka producer that waits for every in-sync replica (``acks=all``) and is idempotent.

    ``security`` is the adapter's checked config (its :func:`security_fields`; ``None``: PLAINTEXT);
    ``options`` go to ``AIOKafkaProducer`` as they are (``linger_ms``, ``max_request_size`` ...);
    without ``client_id`` aiokafka's default is kept. Raises :class:`ConfigError` for broken
    security settings, naming the field.
    """
    from aiokafka import AIOKafkaProducer  # no work at import time

    if client_id is not None:
        options["client_id"] = client_id
    secure = config_kwargs(security or {})
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True, **secure, **options
    )
    return explain_failures(producer, bootstrap_servers, secure)


def manual_commit_consumer(settings: Mapping[str, Any]) -> Consumer:
    """An aiokafka consumer of ``settings['topic']``: manual commits, ``read_committed``, the config's security."""
    from aiokafka import AIOKafkaConsumer  # no work at import time

    secure = config_kwargs(settings)
    consumer: Consumer = explain_failures(
        AIOKafkaConsumer(
            settings["topic"],
            bootstrap_servers=settings["bootstrap_servers"],
            group_id=settings["group_id"],
            client_id=settings["client_id"],
            enable_auto_commit=False,
            auto_offset_reset=settings["auto_offset_reset"],
            isolation_level="read_committed",
            metadata_max_age_ms=settings["metadata_max_age_ms"],
            **secure,
        ),
        settings["bootstrap_servers"],
        secure,
    )
    return consumer


def kafka_clients(settings: dict[str, Any]) -> tuple[Consumer, DlqProducer]:
    """The real clients: a manual-commit aiokafka consumer and an idempotent ``acks=all`` producer."""
    consumer = manual_commit_consumer(settings)
    producer: DlqProducer = idempotent_producer(
        settings["bootstrap_servers"], f"{settings['client_id']}-dlq", security=settings
    )
    return consumer, producer


# ------------------------------------------------------------------------------ the loop
@dataclass
class SenderStats:
    """Counters since the adapter started."""

    delivered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    committed: int = 0


@dataclass(frozen=True)
class Delivered:
    """The target accepted the record after ``attempts`` attempts; ``log_fields`` go to ``.delivered``."""

    attempts: int
    log_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeadLetter:
    """The record goes to the dead-letter topic: codes, locations and value-free headers only.

    ``headers`` are the adapter's own error headers (added after the common ones); ``log_fields``
    go to the ``.dead_letter`` event between the record's coordinates and the attempt count.
    """

    attempts: int
    code: str
    error_class: str
    locations: tuple[str, ...] = ()
    stage: Stage = Stage.DELIVER
    headers: Mapping[str, str] = field(default_factory=dict)
    log_fields: Mapping[str, Any] = field(default_factory=dict)


RecordHandler = Callable[[ConsumerRecord], Awaitable[Delivered | DeadLetter]]


class AttemptOutcome(Protocol):
    """What :meth:`KafkaDelivery.retry` reads from one attempt's result."""

    @property
    def ok(self) -> bool:
        """The target accepted it."""

    @property
    def retriable(self) -> bool:
        """Another attempt may succeed."""

    @property
    def retry_after(self) -> float | None:
        """The target's own wait hint in seconds (``Retry-After``), if any."""


OutcomeT = TypeVar("OutcomeT", bound=AttemptOutcome)


class Stopping(Exception):
    """The adapter is stopping: leave the record uncommitted."""


class KafkaDelivery:
    """Consume a topic, hand each record to ``handler``, dead-letter, commit; see the module docstring."""

    def __init__(
        self,
        plugin: str,
        events: str,
        log: SafeBoundLogger,
        handler: RecordHandler,
        client_factory: ClientFactory | None = None,
    ) -> None:
        self.plugin = plugin
        self.events = events
        self.log = log
        self.policy = RetryPolicy()
        self.stats = SenderStats()
        self._handler = handler
        self._client_factory: ClientFactory = client_factory or kafka_clients
        self._settings: dict[str, Any] = {}
        self._consumer: Consumer | None = None
        self._producer: DlqProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Event | None = None
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self.claims: ClaimCheckStore | None = None
        #: Partitions delivered at once (each in offset order); 1 = one record at a time.
        self._parallel = 1

    def configure(self, settings: dict[str, Any], *, retry_after_max_s: float = 120.0) -> None:
        """Take the checked settings (``consumer_fields`` and ``retry_fields`` among them)."""
        self._settings = settings
        self.policy = RetryPolicy(
            max_retries=settings["max_retries"],
            backoff_s=settings["retry_backoff_s"],
            backoff_max_s=settings["retry_backoff_max_s"],
            retry_after_max_s=retry_after_max_s,
        )
        self._wake = self._wake or asyncio.Event()
        self._parallel = int(settings.get("partition_concurrency", 1))
        claims = settings.get("claim_check")
        self.claims = ClaimCheckStore.from_config(claims) if claims else None

    def _event(self, name: str) -> str:
        return f"{self.events}.{name}"

    @property
    def running(self) -> bool:
        """True once the Kafka clients are started and the loop runs."""
        return self._started is not None and self._started.is_set()

    @property
    def active(self) -> bool:
        """True from :meth:`start` until :meth:`finish`."""
        return self._task is not None

    @property
    def stopping(self) -> bool:
        """True once :meth:`finish` was called."""
        return self._stopping

    async def start(self, wait_s: float) -> None:
        """Start the loop; wait up to ``wait_s`` for the Kafka clients (they are retried in the loop)."""
        self._stopping = False
        self._started = asyncio.Event()
        self._wake = asyncio.Event()
        self.stats = SenderStats()
        self._task = asyncio.create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._started.wait()), timeout=wait_s)

    async def finish(self, timeout_s: float) -> None:
        """Let the record in hand finish (bounded by ``timeout_s``), then end the loop."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        # Still connecting to Kafka: no record in hand, so nothing to wait for.
        connected = self._started is not None and self._started.is_set()
        done, _ = await asyncio.wait({task}, timeout=timeout_s if connected else 0)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif not task.cancelled() and task.exception() is not None:
            self.log.error(self._event("stop"), outcome="failure", error_type=type(task.exception()).__name__)

    async def stop_clients(self) -> None:
        """Stop the Kafka clients (idempotent)."""
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._consumer = self._producer = None
        if self._started is not None:
            self._started.clear()

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the adapter is stopping."""
        if seconds <= 0:
            return
        if self._wake is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def retry(
        self,
        attempt: Callable[[], Awaitable[OutcomeT]],
        describe: Callable[[OutcomeT], Mapping[str, Any]],
    ) -> tuple[OutcomeT, int]:
        """Call ``attempt`` until it is ok, not retriable, or the retries are spent: ``(outcome, attempts)``.

        Each retry is counted and logged (``<prefix>.retry`` with ``describe(outcome)``); raises
        :class:`Stopping` instead of another attempt once the adapter stops.
        """
        attempts = 0
        while True:
            if self._stopping and attempts > 0:
                raise Stopping
            attempts += 1
            outcome = await attempt()
            if outcome.ok or not outcome.retriable or self.policy.exhausted(attempts):
                return outcome, attempts
            self.stats.retries += 1
            delay = self.policy.delay(attempts, outcome.retry_after)
            self.log.warning(
                self._event("retry"), **describe(outcome), attempt=attempts, delay_s=round(delay, 3)
            )
            await self.pause(delay)

    async def _start_clients(self) -> bool:
        attempt = 0
        while not self._stopping:
            consumer, producer = self._client_factory(self._settings)
            try:
                await start_all(producer, consumer)
            except Exception as exc:  # unreachable cluster: retry
                attempt += 1
                self.log.warning(
                    self._event("kafka"),
                    outcome="unavailable",
                    attempt=attempt,
                    error_type=type(exc).__name__,
                    error_code=getattr(exc, "code", None),
                )
                await self.pause(backoff_delay(attempt, 0.5, 10.0))
                continue
            self._consumer, self._producer = consumer, producer
            return True
        return False

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
                self.log.warning(
                    self._event("fetch"), outcome="failure", attempt=failures, error_type=type(exc).__name__
                )
                await self.pause(backoff_delay(failures, 0.5, 10.0))
                continue
            failures = 0
            if self._parallel > 1 and len(batches) > 1:
                # Partitions are independent (records are keyed by patient), so several are
                # delivered at once, each still in offset order with a commit after each record.
                gate = asyncio.Semaphore(self._parallel)
                # A TaskGroup: a drain that fails cancels its siblings, so no partition goes on
                # delivering and committing after the loop died.
                async with asyncio.TaskGroup() as group:
                    drains = [
                        group.create_task(self._gated(gate, consumer, tp, records))
                        for tp, records in batches.items()
                    ]
                if any(d.result() for d in drains):
                    return
                continue
            for tp, records in batches.items():
                if await self._drain(consumer, tp, records):
                    return

    async def _gated(self, gate: asyncio.Semaphore, consumer: Consumer, tp: Any, records: list[Any]) -> bool:
        async with gate:
            return await self._drain(consumer, tp, records)

    async def _drain(self, consumer: Consumer, tp: Any, records: list[Any]) -> bool:
        """Deliver a partition's records in order, committing after each; True when stopping."""
        for record in records:
            if self._stopping:
                return True
            try:
                await self._process(record)
            except Stopping:
                return True
            try:
                await consumer.commit({tp: record.offset + 1})
                self.stats.committed += 1
            except Exception as exc:  # e.g. a rebalance took the partition: redelivered later
                self.log.warning(
                    self._event("commit"),
                    outcome="failure",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    error_type=type(exc).__name__,
                )
        return False

    async def _process(self, record: ConsumerRecord) -> None:
        """Deliver one record, or dead-letter it. Returns when the offset may be committed."""
        started = time.monotonic()
        try:
            resolved = await self._resolved(record)
        except ClaimCheckError as exc:
            # The dead letter is the record as consumed, claim headers included: replay resolves it.
            await self._dead_letter(record, DeadLetter(0, exc.code, type(exc).__name__, stage=Stage.INTAKE))
            return
        verdict = await self._handler(resolved)
        if isinstance(verdict, DeadLetter):
            await self._dead_letter(record, verdict)
            return
        self.stats.delivered += 1
        self.log.info(
            self._event("delivered"),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            **verdict.log_fields,
            attempt=verdict.attempts,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
        )

    async def _resolved(self, record: ConsumerRecord) -> ConsumerRecord:
        """``record`` with a claim-checked payload loaded (checked against its digest), else itself."""
        raw = record.headers or ()
        if not any(k == Header.CLAIM_CHECK for k, _ in raw):
            return record
        headers = {k: v.decode("utf-8", "replace") for k, v in raw if v is not None}
        payload = await asyncio.to_thread(resolve, self.claims, record.value or b"", headers)
        kept = [(k, v) for k, v in raw if k not in CLAIM_HEADERS]
        return _Record(record.topic, record.partition, record.offset, record.key, payload, kept)

    async def _dead_letter(self, record: ConsumerRecord, verdict: DeadLetter) -> None:
        """Publish ``record`` to the dead-letter topic with error headers; retried until Kafka takes it."""
        target = self._settings["dlq_topic"]
        extra = {
            Header.ERROR_STAGE: verdict.stage.value,
            Header.ERROR_CODE: verdict.code,
            Header.ERROR_CLASS: verdict.error_class,
            Header.ERROR_PLUGIN: self.plugin,
            Header.ERROR_LOCATIONS: ",".join(verdict.locations),
            Header.ORIGINAL_TOPIC: record.topic,
            Header.ORIGINAL_PARTITION: str(record.partition),
            Header.ORIGINAL_OFFSET: str(record.offset),
            **verdict.headers,
            ATTEMPTS_HEADER: str(verdict.attempts),
        }
        headers = [(k, v) for k, v in (record.headers or ()) if k not in extra]
        headers += [(k, header_text(v, 200).encode("ascii")) for k, v in extra.items() if v]
        attempt = 0
        while True:
            assert self._producer is not None
            try:
                await self._producer.send_and_wait(
                    target, value=record.value, key=record.key, headers=headers
                )
                break
            except Exception as exc:  # Kafka unavailable: the offset stays uncommitted meanwhile
                attempt += 1
                self.log.warning(
                    self._event("dlq"), outcome="failure", attempt=attempt, error_type=type(exc).__name__
                )
                if self._stopping:
                    raise Stopping from None
                await self.pause(backoff_delay(attempt, 0.5, 10.0))
        self.stats.dead_lettered += 1
        self.log.warning(
            self._event("dead_letter"),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            **verdict.log_fields,
            attempt=verdict.attempts,
            target=target,
        )


class TopicSender(Plugin):
    """Base of the adapters that deliver a topic to one target (an MLLP receiver, a FHIR server).

    A subclass names itself (``NAME``, ``DESCRIPTION``, ``SCHEMA``, and ``EVENTS``, the log event
    prefix, which also names its logger ``pyheart.adapters.<EVENTS>``), implements :meth:`_handle`
    for one record and drives ``self._delivery`` (a :class:`KafkaDelivery`) from its lifecycle.
    """

    NAME: ClassVar[str] = ""
    DESCRIPTION: ClassVar[str] = ""
    SCHEMA: ClassVar[dict[str, Any]] = {}
    EVENTS: ClassVar[str] = ""

    def __init__(
        self, config: dict[str, Any] | None = None, *, client_factory: ClientFactory | None = None
    ) -> None:
        super().__init__(config)
        self._log = get_logger(f"pyheart.adapters.{self.EVENTS}")
        self._settings: dict[str, Any] = {}
        self._delivery = KafkaDelivery(self.NAME, self.EVENTS, self._log, self._handle, client_factory)

    def get_metadata(self) -> PluginMetadata:
        """Name, type and config schema."""
        return PluginMetadata(
            name=self.NAME,
            version="0.1.0",
            plugin_type=PluginType.ADAPTER,
            description=self.DESCRIPTION,
            author="PyHeart",
            config_schema=self.SCHEMA,
        )

    def validate_config(self, config: dict[str, Any]) -> bool:
        """The dead-letter topic must differ from the consumed topic."""
        return config.get("dlq_topic") != config.get("topic")

    @property
    def stats(self) -> SenderStats:
        """Counters since the adapter started."""
        return self._delivery.stats

    @property
    def running(self) -> bool:
        """True once the Kafka clients are started and the delivery loop runs."""
        return self._delivery.running

    @abstractmethod
    async def _handle(self, record: ConsumerRecord) -> Delivered | DeadLetter:
        """Deliver one record (retrying through ``self._delivery.retry``): delivered, or its dead letter."""


__all__ = [
    "ATTEMPTS_HEADER",
    "BOOTSTRAP_SERVERS_FIELD",
    "CLAIM_CHECK_FIELD",
    "AttemptOutcome",
    "ClientFactory",
    "Consumer",
    "ConsumerRecord",
    "DeadLetter",
    "Delivered",
    "DlqProducer",
    "KafkaDelivery",
    "RecordHandler",
    "RetryPolicy",
    "SenderStats",
    "Stopping",
    "TopicSender",
    "backoff_delay",
    "checked_config",
    "consumer_fields",
    "consumer_settings",
    "header_text",
    "idempotent_producer",
    "kafka_clients",
    "manual_commit_consumer",
    "security_fields",
]
