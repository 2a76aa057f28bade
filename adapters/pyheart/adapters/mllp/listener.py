"""The MLLP listener adapter: HL7 v2 over MLLP (optionally TLS / mutual TLS) in, Kafka records out.

One asyncio TCP server; per connection a reader (framing, intake gate, duplicate check, enqueue to
the producer, in frame order) and a writer (awaits each message's outcome and writes the ACKs in
the same order), so pipelining senders keep their order.

Guarantees
- An accepting ACK (AA/CA) is sent only after Kafka acknowledged the record with ``acks=all``
  (idempotent producer). While Kafka is unavailable the sender gets AE/CE
  (``on_kafka_unavailable: nak``) or the connection is held while the record is retried for up
  to ``hold_timeout_s`` (``hold``), then AE/CE. Never AA.
- Intake gate: framing and a tolerant structure check (the ER7 parser, plus MSH-10 present). A
  message that fails gets AR/CR with an ERR segment naming the location (no values), and is still
  published to ``reject_topic`` with error headers, so nothing is lost (``publish_rejects``). A
  message above ``max_message_bytes`` gets AR/CR and is dropped (only its size is logged); the
  stream resynchronises at the next frame.
- Duplicates (same MSH-3, MSH-4 and MSH-10 within ``duplicate_window_s``) get the first copy's
  ACK bytes and are not published again (see :mod:`.dedup`).
- ``ack_mode: auto`` follows the standard: MSH-15/16 valued -> enhanced mode, and MSH-15 NE means
  no accept ACK at all. Senders that set NE yet wait for an answer (python-hl7's ``mllp_send``
  does; eight of the Microsoft sample messages say NE) need ``ack_mode: original``.
- ``ack_style: mllpv2`` answers with the MLLP release 2 commit byte instead: ACK when the message
  is stored (accepted, or rejected and kept on the reject topic), NAK otherwise.

Records
- Value: the frame's payload exactly as received, not re-encoded (lossless, whatever MSH-18 says;
  the MLLP sender sends it on unchanged apart from CR segment terminators). The codec used to read
  it (MSH-18, else UTF-8 when valid, else ``fallback_charset``) travels in the ``pyheart-charset``
  header, so consumers decode the bytes as the listener did.
- Claim check (``claim_check: {dir, threshold_bytes}``): a payload above the threshold is written
  to that directory first (temp file, fsync, rename, see :mod:`pyheart.broker.claimcheck`); the
  record then carries a fixed marker value and the ``pyheart-claim-check`` (``file://`` URI, uuid
  name) and ``pyheart-claim-check-sha256`` headers. If the file cannot be written: AE/CE.
  ``max_message_bytes`` stays the hard cap (raise it, up to 100 MB, with a claim check).
- Key: a hash of the patient (PID-3 first identifier and its assigning authority; messages
  without one fall back to sender and MSH-10), so all messages of a patient share a partition and
  the key carries no PHI (tools such as kcat print keys). Without ``key_secret`` it is the
  engine's own HL7 patient key (unkeyed: whoever reads the topic could recover short identifiers
  by trying them all, but such a reader can read the payload anyway); with ``key_secret`` (from
  the environment) an HMAC.
- Headers (ASCII, never PHI): message id, content type, source (MSH-3^MSH-4), message type,
  trigger, control id, correlation id, W3C traceparent, received-at, peer address, charset.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import hmac
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyheart.adapters._delivery import (
    BOOTSTRAP_SERVERS_FIELD,
    CLAIM_CHECK_FIELD,
    idempotent_producer,
    security_fields,
    start_all,
)
from pyheart.adapters.mllp.ack import (
    AckError,
    AckMode,
    HL7ErrorCode,
    Outcome,
    build_ack,
    read_header,
)
from pyheart.adapters.mllp.common import (
    CHARSET_HEADER,
    backoff_delay,
    checked_config,
    enable_keepalive,
    header_text,
    header_token,
    peer_name,
    traceparent,
    utc_now_iso,
)
from pyheart.adapters.mllp.dedup import DuplicateCache, DuplicateKey, Final
from pyheart.adapters.mllp.framing import (
    Discarded,
    Event,
    Frame,
    MllpDecoder,
    Oversized,
    commit_ack,
    encode_frame,
)
from pyheart.adapters.mllp.tls import TLS_SCHEMA, server_context
from pyheart.broker.claimcheck import (
    CLAIM_HEADERS,
    CLAIM_PAYLOAD,
    ClaimCheckError,
    ClaimCheckStore,
)
from pyheart.broker.config import Secret
from pyheart.broker.contracts import Format, Header
from pyheart.broker.errors import ConfigIssue, ParseError, PluginConfigError, Stage
from pyheart.broker.hl7v2 import Hl7Message, parse_message
from pyheart.broker.logs import get_logger
from pyheart.broker.plugin import Plugin, PluginMetadata, PluginType

_TOPIC = r"^[A-Za-z0-9._-]{1,249}$"

#: The listener's configuration schema (the spec's dialect; see :mod:`pyheart.broker.config`).
LISTENER_SCHEMA: dict[str, Any] = {
    "host": {"type": "string", "default": "127.0.0.1", "description": "address to listen on"},
    "port": {"type": "integer", "default": 2575, "minimum": 0, "maximum": 65535, "description": "0: any"},
    "bootstrap_servers": BOOTSTRAP_SERVERS_FIELD,
    **security_fields(),  # Kafka TLS / SASL (``tls`` below is the MLLP server's own TLS)
    "topic": {"type": "string", "required": True, "pattern": _TOPIC, "description": "accepted messages"},
    "reject_topic": {
        "type": "string",
        "default": "",
        "pattern": r"^([A-Za-z0-9._-]{1,249})?$",
        "description": "messages failing the intake gate; default '<topic>.rejected'",
    },
    "publish_rejects": {"type": "boolean", "default": True},
    "ack_mode": {"type": "string", "enum": ["auto", "original", "enhanced"], "default": "auto"},
    "ack_style": {
        "type": "string",
        "enum": ["hl7", "mllpv2"],
        "default": "hl7",
        "description": "hl7: HL7 ACK messages; mllpv2: MLLP release 2 commit byte ACK/NAK",
    },
    "max_message_bytes": {"type": "integer", "default": 1_000_000, "minimum": 1024, "maximum": 104_857_600},
    "max_connections": {"type": "integer", "default": 100, "minimum": 1},
    "max_in_flight": {
        "type": "integer",
        "default": 64,
        "minimum": 1,
        "description": "messages per connection read ahead of their ACK (pipelining)",
    },
    "idle_timeout_s": {"type": "number", "default": 300, "minimum": 0, "description": "0: never"},
    "tcp_keepalive": {"type": "boolean", "default": True},
    "on_kafka_unavailable": {"type": "string", "enum": ["nak", "hold"], "default": "nak"},
    "produce_timeout_s": {"type": "number", "default": 10, "minimum": 0.1, "description": "nak mode"},
    "hold_timeout_s": {"type": "number", "default": 30, "minimum": 0, "description": "hold mode bound"},
    "kafka_request_timeout_ms": {"type": "integer", "default": 30_000, "minimum": 1000},
    "linger_ms": {"type": "integer", "default": 0, "minimum": 0},
    "client_id": {"type": "string", "default": "pyheart-mllp-listener"},
    "duplicate_window_s": {"type": "number", "default": 600, "minimum": 0, "description": "0: off"},
    "duplicate_max_entries": {"type": "integer", "default": 100_000, "minimum": 0},
    "fallback_charset": {"type": "string", "default": "latin-1", "description": "when MSH-18 is empty"},
    "key_secret": {"type": "string", "secret": True, "description": "HMAC key for record keys"},
    "shutdown_timeout_s": {"type": "number", "default": 10, "minimum": 0},
    "tls": TLS_SCHEMA,
    "claim_check": dict(CLAIM_CHECK_FIELD),
}


class RecordMeta(Protocol):
    """Where Kafka stored a record (aiokafka's ``RecordMetadata``)."""

    topic: str
    partition: int
    offset: int


class Producer(Protocol):
    """What the listener needs from a Kafka producer (``AIOKafkaProducer`` satisfies it)."""

    async def start(self) -> None:
        """Connect; raise when the cluster cannot be reached."""

    async def stop(self) -> None:
        """Flush and disconnect."""

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Enqueue a record; the returned future resolves once the broker acknowledged it."""
        ...


ProducerFactory = Callable[[dict[str, Any]], Producer]


def kafka_producer(settings: dict[str, Any]) -> Producer:
    """The real producer: aiokafka, idempotent, ``acks=all``, with the config's Kafka security."""
    producer: Producer = idempotent_producer(
        settings["bootstrap_servers"],
        settings["client_id"],
        security=settings,
        linger_ms=settings["linger_ms"],
        request_timeout_ms=settings["kafka_request_timeout_ms"],
        max_request_size=settings["max_message_bytes"] + 65_536,
    )
    return producer


def record_key(message: Hl7Message, secret: bytes | None = None) -> bytes:
    """The Kafka key for ``message``: 16 hex characters of a hash of the patient identifier.

    PID-3's first identifier with its assigning authority (CX.1 and CX.4.1), hashed exactly as the
    engine keys HL7 v2 records (``blake2b`` over ``hl7 / id / authority``, 8 bytes), so a patient
    has the same key on the intake topic and downstream. Without PID-3 the key is a hash of the
    sender (MSH-3, MSH-4) and MSH-10, which spreads such messages. With ``secret`` the hash is an
    HMAC-SHA256 (identifiers with few digits can then not be recovered by trying them all).
    """
    parts: tuple[str, ...] = ()
    pid = message.segment("PID")
    if pid is not None:
        ident = pid.get(3, 1)
        if ident:
            parts = ("hl7", ident, pid.get(3, 4))
    if not parts:
        msh = message.msh
        parts = ("hl7-msh10", msh.raw(3), msh.raw(4), msh.raw(10))
    data = "\x1f".join(parts).encode("utf-8", errors="surrogatepass")
    if secret:
        return hmac.new(secret, data, hashlib.sha256).hexdigest()[:16].encode("ascii")
    return hashlib.blake2b(data, digest_size=8).hexdigest().encode("ascii")


def check_structure(payload: bytes, fallback_charset: str) -> Hl7Message:
    """The intake gate's tolerant structure check: parses, and requires MSH-9 and MSH-10."""
    message = parse_message(payload, fallback_charset=fallback_charset)
    if not message.control_id.strip():
        raise ParseError("MSH-10 (message control id) is empty", locations=["MSH-10"])
    return message


def _parse_error_code(location: str) -> HL7ErrorCode:
    if location in ("MSH-9", "MSH-10"):
        return HL7ErrorCode.REQUIRED_FIELD_MISSING
    if location in ("MSH-1", "MSH-2"):
        return HL7ErrorCode.DATA_TYPE_ERROR
    return HL7ErrorCode.SEGMENT_SEQUENCE_ERROR


_TOO_LARGE = AckError(
    HL7ErrorCode.APPLICATION_INTERNAL_ERROR,
    app_code="message-too-large",
    text="message exceeds the size limit",
)
_UNAVAILABLE = AckError(
    HL7ErrorCode.APPLICATION_INTERNAL_ERROR,
    app_code="store-unavailable",
    text="message not stored, send it again later",
)


@dataclass(eq=False)
class _Item:
    """One received frame on its way to an ACK."""

    header: Hl7Message | None
    started: float
    outcome: Outcome = Outcome.ACCEPT  # when the record is stored (or not published at all)
    errors: tuple[AckError, ...] = ()
    topic: str | None = None  # None: nothing to publish
    payload: bytes = b""
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    message_id: str = ""
    dedup_key: DuplicateKey | None = None
    duplicate_of: asyncio.Future[Final | None] | None = None
    delivery: asyncio.Future[Any] | None = None
    meta: Any = None


@dataclass(eq=False)
class _Connection:
    peer: str
    task: asyncio.Task[Any] | None
    reading: bool = False


class MllpListener(Plugin):
    """MLLP listener adapter: receives HL7 v2 messages and stores them in Kafka before acknowledging."""

    NAME = "mllp-listener"

    def __init__(
        self, config: dict[str, Any] | None = None, *, producer_factory: ProducerFactory | None = None
    ) -> None:
        super().__init__(config)
        self._producer_factory: ProducerFactory = producer_factory or kafka_producer
        self._log = get_logger("pyheart.adapters.mllp.listener")
        self._audit = logging.getLogger("pyheart.adapters.mllp.listener")
        self._settings: dict[str, Any] = {}
        self._server: asyncio.Server | None = None
        self._producer: Producer | None = None
        self._ready: asyncio.Event | None = None
        self._starter: asyncio.Task[None] | None = None
        self._connections: set[_Connection] = set()
        self._dedup = DuplicateCache()
        self._closing = False
        self._secret: bytes | None = None
        self._port = 0
        self._claims: ClaimCheckStore | None = None

    # ------------------------------------------------------------------------------ plugin contract
    def get_metadata(self) -> PluginMetadata:
        """Name, type and config schema."""
        return PluginMetadata(
            name=self.NAME,
            version="0.1.0",
            plugin_type=PluginType.ADAPTER,
            description="MLLP listener (HL7 v2 in): acknowledges each message once it is durably in Kafka",
            author="PyHeart",
            config_schema=LISTENER_SCHEMA,
        )

    def validate_config(self, config: dict[str, Any]) -> bool:
        """The fallback charset must be a codec Python knows, and rejects need their own topic."""
        try:
            codecs.lookup(config.get("fallback_charset") or "latin-1")
        except LookupError:
            return False
        return config.get("reject_topic") != config.get("topic")

    @property
    def port(self) -> int:
        """The TCP port the server listens on (useful with ``port: 0``)."""
        return self._port

    @property
    def kafka_ready(self) -> bool:
        """True once the producer is connected."""
        return self._ready is not None and self._ready.is_set()

    async def initialize(self) -> bool:
        """Start the producer (in the background if Kafka is not reachable yet) and the TCP server."""
        if self.initialized:
            return True
        s = checked_config(self.NAME, LISTENER_SCHEMA, self.config)
        if not self.validate_config(s):
            raise PluginConfigError(
                self.NAME, [ConfigIssue("<config>", "custom", "invalid fallback_charset or reject_topic")]
            )
        s["reject_topic"] = s["reject_topic"] or f"{s['topic']}.rejected"
        self._settings = s
        secret = s.get("key_secret")
        self._secret = secret.get().encode() if isinstance(secret, Secret) else None
        self._dedup = DuplicateCache(float(s["duplicate_window_s"]), int(s["duplicate_max_entries"]))
        self._claims = ClaimCheckStore.from_config(s["claim_check"]) if s.get("claim_check") else None
        if self._claims is not None:
            self._claims.directory.mkdir(parents=True, exist_ok=True)
        tls = server_context(s["tls"])
        self._closing = False
        self._ready = asyncio.Event()
        self._starter = asyncio.create_task(self._start_producer())
        # Give a reachable cluster a moment, so the first messages do not meet a cold producer.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._ready.wait()), timeout=s["produce_timeout_s"])
        try:
            self._server = await asyncio.start_server(
                self._handle,
                host=s["host"],
                port=s["port"],
                ssl=tls,
                ssl_handshake_timeout=10.0 if tls is not None else None,
                limit=65_536,
            )
        except OSError:
            await self._stop_producer()
            self._log.error("mllp.listen", listen=f"{s['host']}:{s['port']}", outcome="failure")
            raise
        sockets = self._server.sockets or ()
        self._port = sockets[0].getsockname()[1] if sockets else 0
        self.initialized = True
        self._log.info(
            "mllp.listen",
            listen=f"{s['host']}:{self._port}",
            topic=s["topic"],
            outcome="success",
            state="kafka-ready" if self.kafka_ready else "kafka-unavailable",
        )
        return True

    async def cleanup(self) -> bool:
        """Stop accepting, settle and acknowledge what was received, then flush and stop the producer."""
        if self._server is None and self._starter is None:
            return True
        self._closing = True
        if self._server is not None:
            self._server.close()  # stop accepting; wait_closed() comes after the connections end
        for conn in list(self._connections):
            if conn.reading and conn.task is not None:
                conn.task.cancel()
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            _, still = await asyncio.wait(tasks, timeout=self._settings.get("shutdown_timeout_s", 10))
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
        await self._stop_producer()
        self._server = None
        self.initialized = False
        self._log.info("mllp.stop", outcome="success")
        return True

    # ------------------------------------------------------------------------------ Kafka
    async def _start_producer(self) -> None:
        attempt = 0
        assert self._ready is not None
        while not self._closing:
            producer = self._producer_factory(self._settings)
            try:
                await start_all(producer)
            except Exception as exc:  # any failure to connect: retry with backoff
                attempt += 1
                self._log.warning(
                    "mllp.kafka",
                    outcome="unavailable",
                    attempt=attempt,
                    error_type=type(exc).__name__,
                    error_code=getattr(exc, "code", None),
                    bootstrap_servers=self._settings["bootstrap_servers"],
                )
                await asyncio.sleep(backoff_delay(attempt, 0.5, 10.0))
                continue
            self._producer = producer
            self._ready.set()
            self._log.info("mllp.kafka", outcome="connected", attempt=attempt + 1)
            return

    async def _stop_producer(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
            self._starter = None
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
        if self._ready is not None:
            self._ready.clear()

    def _bound(self) -> float:
        """How long a message may wait for Kafka before it is NAKed (from its arrival)."""
        s = self._settings
        if s["on_kafka_unavailable"] == "hold":
            return float(max(s["hold_timeout_s"], s["produce_timeout_s"]))
        return float(s["produce_timeout_s"])

    async def _enqueue(self, item: _Item, limit_s: float) -> bool:
        """Hand the record to the producer (not yet acknowledged); False when Kafka is not usable."""
        producer = self._producer
        if producer is None or item.topic is None or limit_s <= 0:
            return False
        try:
            async with asyncio.timeout(limit_s):
                item.delivery = await producer.send(
                    item.topic, value=item.payload, key=item.key, headers=item.headers
                )
        except Exception as exc:  # metadata timeout, record too large, producer closed...
            self._log.warning(
                "mllp.produce", outcome="failure", stage="enqueue", error_type=type(exc).__name__
            )
            item.delivery = None
            return False
        item.delivery.add_done_callback(_consume_exception)
        return True

    async def _deliver(self, item: _Item) -> bool:
        """Wait until Kafka acknowledged ``item``'s record, within the configured bound."""
        s = self._settings
        hold = s["on_kafka_unavailable"] == "hold"
        deadline = item.started + self._bound()
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if item.delivery is None:
                if self._producer is None:
                    if not hold or self._ready is None:
                        return False
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(self._ready.wait()), timeout=remaining)
                    continue
                if not await self._enqueue(item, remaining):
                    if not hold:
                        return False
                    attempt += 1
                    await asyncio.sleep(
                        min(backoff_delay(attempt, 0.2, 5.0), max(0.0, deadline - time.monotonic()))
                    )
                    continue
            assert item.delivery is not None
            try:
                item.meta = await asyncio.wait_for(asyncio.shield(item.delivery), timeout=remaining)
            except TimeoutError:
                return False  # still pending: it may land later (see _settle)
            except Exception as exc:  # a definitive failure of this record
                self._log.warning(
                    "mllp.produce", outcome="failure", stage="deliver", error_type=type(exc).__name__
                )
                item.delivery = None
                if not hold:
                    return False
                attempt += 1
                await asyncio.sleep(
                    min(backoff_delay(attempt, 0.2, 5.0), max(0.0, deadline - time.monotonic()))
                )
                continue
            return True

    # ------------------------------------------------------------------------------ connections
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_name(writer.get_extra_info("peername"))
        if self._closing or len(self._connections) >= self._settings["max_connections"]:
            self._log.warning("mllp.connection", peer=peer, outcome="refused", count=len(self._connections))
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        if self._settings["tcp_keepalive"]:
            enable_keepalive(writer.get_extra_info("socket"))
        conn = _Connection(peer, asyncio.current_task())
        self._connections.add(conn)
        queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=self._settings["max_in_flight"])
        acks = asyncio.create_task(self._write_acks(queue, writer, peer))
        self._log.info("mllp.connection", peer=peer, outcome="open", count=len(self._connections))
        reason = "closed"
        try:
            reason = await self._read_frames(conn, reader, queue)
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            reason = type(exc).__name__
        finally:
            await queue.put(None)
            with contextlib.suppress(Exception):
                await acks
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=2)
            self._connections.discard(conn)
            self._log.info("mllp.connection", peer=peer, outcome="closed", reason=reason)

    async def _read_frames(
        self, conn: _Connection, reader: asyncio.StreamReader, queue: asyncio.Queue[_Item | None]
    ) -> str:
        decoder = MllpDecoder(self._settings["max_message_bytes"])
        idle = float(self._settings["idle_timeout_s"]) or None
        while not self._closing:
            conn.reading = True
            try:
                async with asyncio.timeout(idle):
                    data = await reader.read(65_536)
            except TimeoutError:
                if queue.empty() and not decoder.in_frame:
                    return "idle-timeout"
                continue
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._closing and task is not None:
                    task.uncancel()
                    return "shutdown"
                raise
            finally:
                conn.reading = False
            events = decoder.feed(data) if data else decoder.close()
            for event in events:
                item = await self._admit(event, conn.peer)
                if item is not None:
                    await queue.put(item)
            if not data:
                return "closed"
        return "shutdown"

    async def _write_acks(
        self, queue: asyncio.Queue[_Item | None], writer: asyncio.StreamWriter, peer: str
    ) -> None:
        broken = False
        while True:
            item = await queue.get()
            if item is None:
                return
            try:
                response = await self._settle(item, peer)
            except Exception as exc:  # a bug must not leave the sender without an answer
                response = self._internal_error(item, peer, exc)
            if response is None or broken:
                continue
            try:
                writer.write(response)
                await writer.drain()
            except (ConnectionError, OSError):
                broken = True  # keep settling: outcomes still feed the duplicate window

    def _internal_error(self, item: _Item, peer: str, exc: Exception) -> bytes:
        """AE/CE (or an MLLPv2 NAK) for an item whose settling failed; the sender will retry."""
        self._log.error(
            "mllp.settle", peer=peer, message_id=item.message_id or None, error_type=type(exc).__name__
        )
        if item.dedup_key is not None:
            self._dedup.abandon(item.dedup_key)
        if self._settings["ack_style"] == "mllpv2":
            return commit_ack(False)
        ack = build_ack(
            item.header, Outcome.ERROR, mode=AckMode(self._settings["ack_mode"]), errors=(_UNAVAILABLE,)
        )
        return encode_frame(ack.payload)

    # ------------------------------------------------------------------------------ intake
    async def _admit(self, event: Event, peer: str) -> _Item | None:
        """Gate one framing event; publish what passes (enqueue only); return what the writer settles."""
        s = self._settings
        if isinstance(event, Discarded):
            self._log.warning("mllp.framing", peer=peer, reason=event.reason, size_bytes=event.size)
            return None
        started = time.monotonic()
        if isinstance(event, Oversized):
            header = read_header(event.head, fallback_charset=s["fallback_charset"])
            self._log.warning(
                "mllp.reject",
                peer=peer,
                error_code="message-too-large",
                size_bytes=event.size,
                max_bytes=s["max_message_bytes"],
                control_id=header_text(header.control_id) if header is not None else None,
            )
            return _Item(header, started, Outcome.REJECT, (_TOO_LARGE,))
        assert isinstance(event, Frame)
        payload = event.payload
        message_id = str(uuid.uuid4())
        try:
            message = check_structure(payload, s["fallback_charset"])
        except ParseError as exc:
            return await self._admit_reject(payload, exc, peer, message_id, started)
        except Exception as exc:  # a parser bug must not drop the connection: keep the bytes, reject
            self._log.error("mllp.intake", peer=peer, message_id=message_id, error_type=type(exc).__name__)
            unreadable = ParseError("message could not be read", code="intake-error")
            return await self._admit_reject(payload, unreadable, peer, message_id, started)
        item = _Item(message, started, payload=payload, message_id=message_id)
        item.key = record_key(message, self._secret)
        item.headers = self._headers(message, message_id, peer)
        item.topic = s["topic"]
        if not self._claim(item, message, payload, peer):
            return item
        await self._offload(item, peer)
        if self._producer is not None:
            await self._enqueue(item, s["produce_timeout_s"])
        return item

    async def _admit_reject(
        self, payload: bytes, exc: ParseError, peer: str, message_id: str, started: float
    ) -> _Item:
        s = self._settings
        header = read_header(payload, fallback_charset=s["fallback_charset"])
        locations = [loc for loc in exc.locations if loc] or [""]
        errors = tuple(
            AckError(_parse_error_code(loc), loc, exc.code, "message does not parse") for loc in locations
        )
        self._log.warning(
            "mllp.reject",
            peer=peer,
            message_id=message_id,
            error_code=exc.code,
            locations=list(exc.locations),
            control_id=header_text(header.control_id) if header is not None else None,
        )
        item = _Item(header, started, Outcome.REJECT, errors, payload=payload, message_id=message_id)
        if not s["publish_rejects"]:
            return item
        item.topic = s["reject_topic"]
        item.key = record_key(header, self._secret) if header is not None else None
        item.headers = self._headers(header, message_id, peer)
        item.headers += [
            (Header.ERROR_STAGE, Stage.INTAKE.value.encode()),
            (Header.ERROR_CODE, exc.code.encode()),
            (Header.ERROR_CLASS, type(exc).__name__.encode()),
            (Header.ERROR_PLUGIN, self.NAME.encode()),
            (Header.ERROR_LOCATIONS, header_text(",".join(exc.locations), 200).encode()),
        ]
        if header is not None and header.control_id and not self._claim(item, header, payload, peer):
            return item
        await self._offload(item, peer)
        if self._producer is not None:
            await self._enqueue(item, s["produce_timeout_s"])
        return item

    async def _offload(self, item: _Item, peer: str) -> None:
        """Above the claim-check threshold: store the payload durably (fsync) and publish a claim.

        A message whose payload cannot be stored is not published: it gets AE/CE (or, if it was
        being rejected, AR/CR without a reject record).
        """
        store = self._claims
        if store is None or item.topic is None or len(item.payload) <= store.threshold_bytes:
            return
        try:
            uri, digest = await asyncio.to_thread(store.put, item.payload)
        except ClaimCheckError as exc:
            self._log.error("mllp.claim_check", peer=peer, message_id=item.message_id, error_code=exc.code)
            item.topic = None
            if item.outcome is Outcome.ACCEPT:
                item.outcome = Outcome.ERROR
            return
        item.payload = CLAIM_PAYLOAD
        item.headers = [(k, v) for k, v in item.headers if k not in CLAIM_HEADERS]
        item.headers += [(Header.CLAIM_CHECK, uri.encode()), (Header.CLAIM_CHECK_SHA256, digest.encode())]

    def _claim(self, item: _Item, header: Hl7Message, payload: bytes, peer: str) -> bool:
        """Register the message in the duplicate window; False when it is a duplicate (not published)."""
        if not self._dedup.enabled:
            return True
        msh = header.msh
        key = (msh.raw(3), msh.raw(4), msh.raw(10))
        # The digest only tells "same bytes or not" within this process: the builtin hash suffices.
        claim = self._dedup.claim(key, hash(payload).to_bytes(8, "little", signed=True))
        if claim.owner:
            item.dedup_key = key
            return True
        item.duplicate_of = claim.future
        item.topic = None
        self._log.info(
            "mllp.duplicate",
            peer=peer,
            control_id=header_text(header.control_id),
            outcome="same-content" if claim.same_content else "content-differs",
        )
        return False

    def _headers(self, message: Hl7Message | None, message_id: str, peer: str) -> list[tuple[str, bytes]]:
        headers = [
            (Header.MESSAGE_ID, message_id),
            (Header.CONTENT_TYPE, Format.HL7V2),
            (Header.CORRELATION_ID, message_id),
            (Header.TRACEPARENT, traceparent()),
            (Header.RECEIVED_AT, utc_now_iso()),
            (Header.PEER, header_text(peer)),
        ]
        if message is not None:
            msh = message.msh
            app, facility = msh.get(3, 1), msh.get(4, 1)
            source = f"{app}^{facility}" if facility else app  # as the engine writes it
            headers += [
                (Header.SOURCE, header_text(source or f"mllp:{peer}", 128)),
                (Header.MESSAGE_TYPE, header_token(message.message_type)),
                (Header.TRIGGER, header_token(message.trigger_event)),
                (Header.CONTROL_ID, header_text(message.control_id)),
                (CHARSET_HEADER, header_text(message.charset, 32)),
            ]
        else:
            headers.append((Header.SOURCE, header_text(f"mllp:{peer}", 128)))
        return [(name, value.encode("ascii")) for name, value in headers if value]

    # ------------------------------------------------------------------------------ outcome
    async def _settle(self, item: _Item, peer: str) -> bytes | None:
        """Wait for the item's outcome and build the framed response (None: nothing to send)."""
        s = self._settings
        mode = AckMode(s["ack_mode"])
        mllpv2 = s["ack_style"] == "mllpv2"
        if item.duplicate_of is not None:
            return await self._settle_duplicate(item, mode, mllpv2)
        if item.topic is not None:
            stored = await self._deliver(item)
            outcome = item.outcome if stored else Outcome.ERROR
        else:  # rejected and not kept: oversized, or publish_rejects is off
            stored = False
            outcome = item.outcome
        errors = item.errors if outcome is not Outcome.ERROR else (_UNAVAILABLE,)
        ack = build_ack(item.header, outcome, mode=mode, errors=errors)
        response = commit_ack(stored) if mllpv2 else (encode_frame(ack.payload) if ack.send else None)
        if item.dedup_key is not None:
            if outcome is not Outcome.ERROR:
                self._dedup.complete(item.dedup_key, response)
            elif item.delivery is not None and not item.delivery.done():
                item.delivery.add_done_callback(self._late_outcome(item, mode, mllpv2))
            else:
                self._dedup.abandon(item.dedup_key)
        if self._audit.isEnabledFor(logging.INFO):  # structlog formats even filtered events
            self._log_message(item, peer, ack.code)
        return response

    def _log_message(self, item: _Item, peer: str, ack_code: str) -> None:
        meta = item.meta
        self._log.info(
            "mllp.message",
            peer=peer,
            message_id=item.message_id or None,
            control_id=header_text(item.header.control_id) if item.header is not None else None,
            message_type=header_token(item.header.message_type) if item.header is not None else None,
            trigger=header_token(item.header.trigger_event) if item.header is not None else None,
            ack_code=ack_code,
            topic=getattr(meta, "topic", None),
            partition=getattr(meta, "partition", None),
            offset=getattr(meta, "offset", None),
            duration_ms=round((time.monotonic() - item.started) * 1000, 3),
        )

    def _late_outcome(
        self, item: _Item, mode: AckMode, mllpv2: bool
    ) -> Callable[[asyncio.Future[Any]], None]:
        """A record we NAKed may still be stored later: then remember it as a success for duplicates."""
        key = item.dedup_key
        assert key is not None

        def done(future: asyncio.Future[Any]) -> None:
            if future.cancelled() or future.exception() is not None:
                self._dedup.abandon(key)
                return
            ack = build_ack(item.header, item.outcome, mode=mode, errors=item.errors)
            response = commit_ack(True) if mllpv2 else (encode_frame(ack.payload) if ack.send else None)
            self._dedup.complete(key, response)

        return done

    async def _settle_duplicate(self, item: _Item, mode: AckMode, mllpv2: bool) -> bytes | None:
        assert item.duplicate_of is not None
        bound = max(0.0, item.started + self._bound() - time.monotonic())
        final: Final | None = None
        with contextlib.suppress(TimeoutError):
            final = await asyncio.wait_for(asyncio.shield(item.duplicate_of), timeout=bound)
        if final is not None:
            return final.ack
        ack = build_ack(item.header, Outcome.ERROR, mode=mode, errors=(_UNAVAILABLE,))
        if mllpv2:
            return commit_ack(False)
        return encode_frame(ack.payload) if ack.send else None


def _consume_exception(future: asyncio.Future[Any]) -> None:
    # Retrieve a delivery failure so asyncio does not report it as "never retrieved"; the
    # failure itself is handled (and logged by class name) where the future is awaited.
    if not future.cancelled():
        future.exception()


__all__ = [
    "LISTENER_SCHEMA",
    "MllpListener",
    "Producer",
    "ProducerFactory",
    "check_structure",
    "kafka_producer",
    "record_key",
]
