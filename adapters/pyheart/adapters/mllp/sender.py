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

The Kafka side (clients, fetch / retry / dead-letter / commit loop) is
:class:`pyheart.adapters._delivery.KafkaDelivery`, shared with the FHIR sender; this module adds
the MLLP exchange and the ACK check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import Any

from pyheart.adapters._delivery import (
    ATTEMPTS_HEADER,
    ClientFactory,
    ConsumerRecord,
    DeadLetter,
    Delivered,
    SenderStats,
    Stopping,
    TopicSender,
    consumer_fields,
    consumer_settings,
    kafka_clients,
    retry_fields,
)
from pyheart.adapters.mllp.ack import parse_ack
from pyheart.adapters.mllp.common import backoff_delay, enable_keepalive, header_text
from pyheart.adapters.mllp.framing import Frame, MllpDecoder, Oversized, commit_ack_value, encode_frame
from pyheart.adapters.mllp.tls import TLS_SCHEMA, client_context
from pyheart.broker.errors import ParseError, TransportError
from pyheart.broker.hl7v2 import parse_message

#: Dead-letter header: the ACK code the receiver answered (AR, CR, AE ...), when there was one.
ACK_CODE_HEADER = "pyheart-ack-code"

#: The sender's configuration schema (the spec's dialect; see :mod:`pyheart.broker.config`).
SENDER_SCHEMA: dict[str, Any] = {
    "host": {"type": "string", "required": True, "description": "downstream MLLP receiver"},
    "port": {"type": "integer", "required": True, "minimum": 1, "maximum": 65535},
    **consumer_fields("pyheart-mllp-sender"),
    "connect_timeout_s": {"type": "number", "default": 10, "minimum": 0.1},
    "ack_timeout_s": {"type": "number", "default": 30, "minimum": 0.1},
    **retry_fields(backoff_s=1.0),
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


@dataclass(frozen=True)
class _Outcome:
    """One attempt's result: acknowledged (``ok``), or what went wrong (codes and locations only)."""

    code: str = ""
    error_class: str = ""
    locations: tuple[str, ...] = ()
    ack_code: str = ""
    ok: bool = False
    retry_after: float | None = None  # receivers give no hint: plain backoff

    @property
    def retriable(self) -> bool:
        """Anything but a rejection (AR/CR) is tried again."""
        return self.ack_code not in ("AR", "CR")


_ACKED = _Outcome(ok=True)


class MllpSender(TopicSender):
    """MLLP sender adapter: delivers HL7 v2 records from a topic to a downstream MLLP receiver."""

    NAME = "mllp-sender"
    DESCRIPTION = "MLLP sender (HL7 v2 out): delivers a topic to an MLLP receiver, commits after the ACK"
    SCHEMA = SENDER_SCHEMA
    EVENTS = "mllp.sender"

    def __init__(
        self, config: dict[str, Any] | None = None, *, client_factory: ClientFactory | None = None
    ) -> None:
        super().__init__(config, client_factory=client_factory)
        self._client: MllpClient | None = None

    async def initialize(self) -> bool:
        """Start the delivery loop (Kafka clients are started in it, retried until reachable)."""
        if self.initialized:
            return True
        s = consumer_settings(self.NAME, SENDER_SCHEMA, self.config)
        self._settings = s
        self._delivery.configure(s)
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
        await self._delivery.start(wait_s=s["connect_timeout_s"])
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
        if not self._delivery.active:
            return True
        await self._delivery.finish(self._settings.get("shutdown_timeout_s", 10))
        if self._client is not None:
            await self._client.close()
        await self._delivery.stop_clients()
        self.initialized = False
        self._log.info("mllp.sender.stop", outcome="success", count=self.stats.delivered)
        return True

    # ------------------------------------------------------------------------------ delivery
    async def _handle(self, record: ConsumerRecord) -> Delivered | DeadLetter:
        """Deliver one record: what the delivery loop logs, or what it dead-letters."""
        s = self._settings
        payload = record.value or b""
        try:
            message = parse_message(payload, fallback_charset=s["fallback_charset"])
            control_id = message.control_id
            if not control_id:
                raise ParseError("MSH-10 (message control id) is empty", locations=["MSH-10"])
        except ParseError as exc:
            return _dead_letter(_Outcome(exc.code, type(exc).__name__, tuple(exc.locations)), 0)
        if s["normalize_line_endings"]:
            payload = payload.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
        outcome, attempts = await self._delivery.retry(
            lambda: self._attempt_guarded(payload, control_id, record),
            lambda failed: {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error_code": failed.code,
                "ack_code": failed.ack_code or None,
            },
        )
        if outcome.ok:
            return Delivered(attempts, {"control_id": header_text(control_id)})
        return _dead_letter(outcome, attempts)

    async def _attempt_guarded(self, payload: bytes, control_id: str, record: ConsumerRecord) -> _Outcome:
        try:
            return await self._attempt(payload, control_id, record)
        except Stopping:
            raise
        except Exception as exc:  # a bug here must not kill the loop: count it as a failed attempt
            return _Outcome("sender-error", type(exc).__name__)

    async def _attempt(self, payload: bytes, control_id: str, record: ConsumerRecord) -> _Outcome:
        """One delivery attempt: acknowledged, or what went wrong."""
        assert self._client is not None
        s = self._settings
        connect_attempt = 0
        while True:
            try:
                response = await self._client.exchange(payload)
                break
            except TransportError as exc:
                if exc.code != "connect-failed":
                    return _Outcome(exc.code, type(exc).__name__)
                if self._delivery.stopping:
                    raise Stopping from None
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
                await self._delivery.pause(delay)
        commit = commit_ack_value(response)
        if commit is True:
            return _ACKED
        if commit is False:
            return _Outcome("commit-nak", "CommitNak", ack_code="NAK")
        try:
            ack = parse_ack(response, fallback_charset=s["fallback_charset"])
        except ParseError as exc:
            return _Outcome("ack-invalid", type(exc).__name__, tuple(exc.locations))
        if ack.control_id != control_id:
            await self._client.close()  # whatever else is buffered on it is stale
            return _Outcome("ack-mismatch", "AckMismatch", ("MSA-2",), ack.code)
        if ack.accepted:
            return _ACKED
        code = "ack-rejected" if ack.rejected else "ack-error"
        return _Outcome(code, "NegativeAck", ack.locations, ack.code)


def _dead_letter(failure: _Outcome, attempts: int) -> DeadLetter:
    """The dead letter for ``failure``: error codes, ERR locations and the ACK code, never a value."""
    return DeadLetter(
        attempts,
        failure.code,
        failure.error_class,
        failure.locations,
        headers={ACK_CODE_HEADER: failure.ack_code},
        log_fields={
            "error_code": failure.code,
            "ack_code": failure.ack_code or None,
            "locations": list(failure.locations),
        },
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
