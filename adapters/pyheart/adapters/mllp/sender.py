"""The MLLP sender adapter: Kafka records out to a downstream MLLP receiver (optionally TLS / mTLS).

Consumes a topic with manual commits and delivers each record over one persistent connection:

- the whole ACK frame is read however the receiver splits it (the framing decoder), within
  ``ack_timeout_s``; MSA-1 is checked, and MSA-2 must equal the message's MSH-10;
- AA/CA (or an MLLPv2 commit ACK byte): delivered. AE/CE, a NAK byte, a timeout, a closed
  connection, an unreadable or mismatched ACK: retried with exponential backoff and jitter, up to
  ``max_retries`` times, then dead-lettered. AR/CR: dead-lettered at once. A record that is not an
  HL7 message (no MSH-10 to check the ACK against) is dead-lettered at once.
- a receiver that cannot be reached is not the message's fault: connecting is retried with backoff
  for as long as the adapter runs, without spending the message's retries or dead-lettering it;
- the offset is committed only after the ACK (or after the dead-letter record is acknowledged by
  Kafka), one record at a time; partitions are processed sequentially, so per-key order holds.

Dead-letter records keep the payload, the key and the envelope headers, and add error headers
(stage, code, class, plugin, ERR locations from the ACK, original topic/partition/offset, the ACK
code and the attempt count) - never a field value.

Receivers that close the connection after each message (hl7apy's ``MLLPServer`` does) are
handled: a connection found closed is reopened before sending, and a message whose reused
connection turned out to be closed before any byte of an answer is sent again on a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pyheart.adapters.mllp.ack import parse_ack
from pyheart.adapters.mllp.common import backoff_delay, checked_config, enable_keepalive, header_text
from pyheart.adapters.mllp.framing import Frame, MllpDecoder, Oversized, commit_ack_value, encode_frame
from pyheart.adapters.mllp.tls import TLS_SCHEMA, client_context
from pyheart.broker.contracts import Header
from pyheart.broker.errors import ParseError, Stage, TransportError
from pyheart.broker.hl7v2 import parse_message
from pyheart.broker.logs import get_logger
from pyheart.broker.plugin import Plugin, PluginMetadata, PluginType

#: Dead-letter header: the ACK code the receiver answered (AR, CR, AE ...), when there was one.
ACK_CODE_HEADER = "pyheart-ack-code"
#: Dead-letter header: how many delivery attempts were made.
ATTEMPTS_HEADER = "pyheart-attempts"

_TOPIC = r"^[A-Za-z0-9._-]{1,249}$"

#: The sender's configuration schema (the spec's dialect; see :mod:`pyheart.broker.config`).
SENDER_SCHEMA: dict[str, Any] = {
    "host": {"type": "string", "required": True, "description": "downstream MLLP receiver"},
    "port": {"type": "integer", "required": True, "minimum": 1, "maximum": 65535},
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
    "client_id": {"type": "string", "default": "pyheart-mllp-sender"},
    "connect_timeout_s": {"type": "number", "default": 10, "minimum": 0.1},
    "ack_timeout_s": {"type": "number", "default": 30, "minimum": 0.1},
    "max_retries": {"type": "integer", "default": 5, "minimum": 0},
    "retry_backoff_s": {"type": "number", "default": 1.0, "minimum": 0},
    "retry_backoff_max_s": {"type": "number", "default": 30.0, "minimum": 0},
    "max_ack_bytes": {"type": "integer", "default": 1_000_000, "minimum": 64},
    "normalize_line_endings": {
        "type": "boolean",
        "default": True,
        "description": "send CR segment terminators (CRLF and LF become CR)",
    },
    "fallback_charset": {"type": "string", "default": "latin-1"},
    "tcp_keepalive": {"type": "boolean", "default": True},
    "shutdown_timeout_s": {"type": "number", "default": 10, "minimum": 0},
    "tls": TLS_SCHEMA,
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


class MllpClient:
    """One persistent MLLP connection to a receiver: send a frame, read the whole answer frame."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout_s: float = 10.0,
        ack_timeout_s: float = 30.0,
        max_ack_bytes: int = 1_000_000,
        keepalive: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._server_hostname = server_hostname
        self._connect_timeout = connect_timeout_s
        self._ack_timeout = ack_timeout_s
        self._max_ack = max_ack_bytes
        self._keepalive = keepalive
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def connected(self) -> bool:
        """True while a connection is open and not known to be closed by the peer."""
        return self._writer is not None and self._reader is not None and not self._reader.at_eof()

    async def connect(self) -> None:
        """Open the connection (TLS when configured). Raises a retriable ``TransportError``."""
        await self.close()
        try:
            async with asyncio.timeout(self._connect_timeout):
                self._reader, self._writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=(self._server_hostname or self.host) if self._ssl else None,
                    limit=65_536,
                )
        except TimeoutError:
            raise TransportError("MLLP connect timed out", code="connect-failed") from None
        except ssl.SSLError as exc:
            raise TransportError(f"MLLP TLS handshake failed ({exc.reason})", code="connect-failed") from None
        except OSError as exc:
            raise TransportError(f"MLLP connect failed ({exc.strerror})", code="connect-failed") from None
        if self._keepalive:
            enable_keepalive(self._writer.get_extra_info("socket"))

    async def close(self) -> None:
        """Close the connection, if any."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=2)

    async def exchange(self, payload: bytes) -> bytes:
        """Send ``payload`` in an MLLP frame and return the payload of the answer frame.

        Raises ``TransportError`` with code ``connect-failed``, ``ack-timeout``,
        ``connection-closed`` or ``ack-too-large``.
        """
        frame = encode_frame(payload)
        await asyncio.sleep(0)  # let a pending end-of-stream from the peer be noticed
        reused = self.connected
        if not reused:
            await self.connect()
        try:
            return await self._send_and_read(frame)
        except _ClosedBeforeAnswer:
            await self.close()
            if not reused:
                raise TransportError(
                    "connection closed before an acknowledgment", code="connection-closed"
                ) from None
        # The reused connection had been closed by the receiver: one fresh attempt.
        await self.connect()
        try:
            return await self._send_and_read(frame)
        except _ClosedBeforeAnswer:
            await self.close()
            raise TransportError(
                "connection closed before an acknowledgment", code="connection-closed"
            ) from None

    async def _send_and_read(self, frame: bytes) -> bytes:
        reader, writer = self._reader, self._writer
        assert reader is not None
        assert writer is not None
        decoder = MllpDecoder(self._max_ack)
        received = 0
        try:
            writer.write(frame)
            await writer.drain()
            async with asyncio.timeout(self._ack_timeout):
                while True:
                    data = await reader.read(65_536)
                    if not data:
                        raise _ClosedBeforeAnswer if received == 0 else ConnectionResetError()
                    received += len(data)
                    for event in decoder.feed(data):
                        if isinstance(event, Frame):
                            return event.payload
                        if isinstance(event, Oversized):
                            await self.close()
                            raise TransportError("acknowledgment exceeds max_ack_bytes", code="ack-too-large")
        except TimeoutError:
            await self.close()
            raise TransportError("no acknowledgment within ack_timeout_s", code="ack-timeout") from None
        except _ClosedBeforeAnswer:
            raise
        except (ConnectionError, OSError) as exc:
            await self.close()
            if received == 0:
                raise _ClosedBeforeAnswer from None
            raise TransportError(
                f"connection lost while reading the acknowledgment ({type(exc).__name__})",
                code="connection-closed",
            ) from None


class _ClosedBeforeAnswer(Exception):
    """The peer closed the connection before sending any byte of an answer."""


class _Stopping(Exception):
    """The adapter is stopping: leave the record uncommitted."""


@dataclass
class SenderStats:
    """Counters since the adapter started."""

    delivered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    committed: int = 0


@dataclass(frozen=True)
class _Failure:
    code: str
    error_class: str
    locations: tuple[str, ...] = ()
    ack_code: str = ""


class MllpSender(Plugin):
    """MLLP sender adapter: delivers HL7 v2 records from a topic to a downstream MLLP receiver."""

    NAME = "mllp-sender"

    def __init__(
        self, config: dict[str, Any] | None = None, *, client_factory: ClientFactory | None = None
    ) -> None:
        super().__init__(config)
        self._client_factory: ClientFactory = client_factory or kafka_clients
        self._log = get_logger("pyheart.adapters.mllp.sender")
        self._settings: dict[str, Any] = {}
        self._consumer: Consumer | None = None
        self._producer: DlqProducer | None = None
        self._client: MllpClient | None = None
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
            description="MLLP sender (HL7 v2 out): delivers a topic to an MLLP receiver, commits after the ACK",
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

    async def initialize(self) -> bool:
        """Start the delivery loop (Kafka clients are started in it, retried until reachable)."""
        if self.initialized:
            return True
        s = checked_config(self.NAME, SENDER_SCHEMA, self.config)
        s["dlq_topic"] = s["dlq_topic"] or f"{s['topic']}.dlq"
        self._settings = s
        tls = s["tls"]
        self._client = MllpClient(
            s["host"],
            s["port"],
            ssl_context=client_context(tls),
            server_hostname=tls.get("server_hostname"),
            connect_timeout_s=s["connect_timeout_s"],
            ack_timeout_s=s["ack_timeout_s"],
            max_ack_bytes=s["max_ack_bytes"],
            keepalive=s["tcp_keepalive"],
        )
        self._stopping = False
        self._started = asyncio.Event()
        self._wake = asyncio.Event()
        self.stats = SenderStats()
        self._task = asyncio.create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._started.wait()), timeout=s["connect_timeout_s"])
        self.initialized = True
        self._log.info(
            "mllp.sender.start",
            topic=s["topic"],
            group_id=s["group_id"],
            target=f"{s['host']}:{s['port']}",
            state="running" if self.running else "kafka-unavailable",
        )
        return True

    async def cleanup(self) -> bool:
        """Finish the record in hand (bounded), leave the rest uncommitted, stop the clients."""
        if self._task is None:
            return True
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        task, self._task = self._task, None
        done, _ = await asyncio.wait({task}, timeout=self._settings.get("shutdown_timeout_s", 10))
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif not task.cancelled() and task.exception() is not None:
            self._log.error("mllp.sender.stop", outcome="failure", error_type=type(task.exception()).__name__)
        await self._stop_clients()
        self.initialized = False
        self._log.info("mllp.sender.stop", outcome="success", count=self.stats.delivered)
        return True

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
                    "mllp.sender.kafka", outcome="unavailable", attempt=attempt, error_type=type(exc).__name__
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
        if self._client is not None:
            await self._client.close()
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._consumer = self._producer = None
        if self._started is not None:
            self._started.clear()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the adapter is stopping."""
        if self._wake is None or seconds <= 0:
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
                    "mllp.sender.fetch", outcome="failure", attempt=failures, error_type=type(exc).__name__
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
                            "mllp.sender.commit",
                            outcome="failure",
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            error_type=type(exc).__name__,
                        )

    async def _process(self, record: ConsumerRecord) -> None:
        """Deliver one record, or dead-letter it. Returns when the offset may be committed."""
        s = self._settings
        started = time.monotonic()
        payload = record.value or b""
        try:
            message = parse_message(payload, fallback_charset=s["fallback_charset"])
            control_id = message.control_id
            if not control_id:
                raise ParseError("MSH-10 (message control id) is empty", locations=["MSH-10"])
        except ParseError as exc:
            await self._dead_letter(record, _Failure(exc.code, type(exc).__name__, tuple(exc.locations)), 0)
            return
        if s["normalize_line_endings"]:
            payload = payload.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
        attempt = 0
        while True:
            if self._stopping:
                raise _Stopping
            attempt += 1
            try:
                failure = await self._attempt(payload, control_id, record)
            except _Stopping:
                raise
            except Exception as exc:  # a bug here must not kill the loop: count it as a failed attempt
                failure = _Failure("sender-error", type(exc).__name__)
            if failure is None:
                self.stats.delivered += 1
                self._log.info(
                    "mllp.sender.delivered",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    control_id=header_text(control_id),
                    attempt=attempt,
                    duration_ms=round((time.monotonic() - started) * 1000, 3),
                )
                return
            if failure.ack_code in ("AR", "CR") or attempt > s["max_retries"]:
                await self._dead_letter(record, failure, attempt)
                return
            self.stats.retries += 1
            delay = backoff_delay(attempt, s["retry_backoff_s"], s["retry_backoff_max_s"])
            self._log.warning(
                "mllp.sender.retry",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error_code=failure.code,
                ack_code=failure.ack_code or None,
                attempt=attempt,
                delay_s=round(delay, 3),
            )
            await self._pause(delay)

    async def _attempt(self, payload: bytes, control_id: str, record: ConsumerRecord) -> _Failure | None:
        """One delivery attempt. None when acknowledged; otherwise what went wrong."""
        assert self._client is not None
        s = self._settings
        connect_attempt = 0
        while True:
            try:
                response = await self._client.exchange(payload)
                break
            except TransportError as exc:
                if exc.code != "connect-failed":
                    return _Failure(exc.code, type(exc).__name__)
                if self._stopping:
                    raise _Stopping from None
                connect_attempt += 1
                delay = backoff_delay(
                    connect_attempt, max(s["retry_backoff_s"], 0.1), s["retry_backoff_max_s"]
                )
                self._log.warning(
                    "mllp.sender.connect",
                    target=f"{s['host']}:{s['port']}",
                    outcome="failure",
                    attempt=connect_attempt,
                    delay_s=round(delay, 3),
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
                await self._pause(delay)
        commit = commit_ack_value(response)
        if commit is True:
            return None
        if commit is False:
            return _Failure("commit-nak", "CommitNak", ack_code="NAK")
        try:
            ack = parse_ack(response, fallback_charset=s["fallback_charset"])
        except ParseError as exc:
            return _Failure("ack-invalid", type(exc).__name__, tuple(exc.locations))
        if ack.control_id != control_id:
            await self._client.close()  # whatever else is buffered on it is stale
            return _Failure("ack-mismatch", "AckMismatch", ("MSA-2",), ack.code)
        if ack.accepted:
            return None
        code = "ack-rejected" if ack.rejected else "ack-error"
        return _Failure(code, "NegativeAck", ack.locations, ack.code)

    async def _dead_letter(self, record: ConsumerRecord, failure: _Failure, attempts: int) -> None:
        """Publish ``record`` to the dead-letter topic with error headers; retried until Kafka takes it."""
        s = self._settings
        error_names = {
            Header.ERROR_STAGE,
            Header.ERROR_CODE,
            Header.ERROR_CLASS,
            Header.ERROR_PLUGIN,
            Header.ERROR_LOCATIONS,
            Header.ORIGINAL_TOPIC,
            Header.ORIGINAL_PARTITION,
            Header.ORIGINAL_OFFSET,
            ACK_CODE_HEADER,
            ATTEMPTS_HEADER,
        }
        headers = [(k, v) for k, v in (record.headers or ()) if k not in error_names]
        extra = {
            Header.ERROR_STAGE: Stage.DELIVER.value,
            Header.ERROR_CODE: failure.code,
            Header.ERROR_CLASS: failure.error_class,
            Header.ERROR_PLUGIN: self.NAME,
            Header.ERROR_LOCATIONS: ",".join(failure.locations),
            Header.ORIGINAL_TOPIC: record.topic,
            Header.ORIGINAL_PARTITION: str(record.partition),
            Header.ORIGINAL_OFFSET: str(record.offset),
            ACK_CODE_HEADER: failure.ack_code,
            ATTEMPTS_HEADER: str(attempts),
        }
        headers += [(k, header_text(v, 200).encode("ascii")) for k, v in extra.items() if v]
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
                    "mllp.sender.dlq", outcome="failure", attempt=attempt, error_type=type(exc).__name__
                )
                if self._stopping:
                    raise _Stopping from None
                await self._pause(backoff_delay(attempt, 0.5, 10.0))
        self.stats.dead_lettered += 1
        self._log.warning(
            "mllp.sender.dead_letter",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error_code=failure.code,
            ack_code=failure.ack_code or None,
            locations=list(failure.locations),
            attempt=attempts,
            target=s["dlq_topic"],
        )


__all__ = [
    "ACK_CODE_HEADER",
    "ATTEMPTS_HEADER",
    "SENDER_SCHEMA",
    "MllpClient",
    "MllpSender",
    "SenderStats",
    "kafka_clients",
]
