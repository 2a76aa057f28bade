"""Kafka clients for the engine (aiokafka), and the small client interface the runtime needs.

The runtime talks to consumers and producers through :class:`ClientFactory`; :class:`KafkaClients`
builds real aiokafka clients, :class:`pyheart.broker.engine.memory.MemoryBroker` in-memory ones with
the same subset of aiokafka's API (for fast component tests).

Delivery settings: producers are idempotent with ``acks=all``; consumers never auto-commit (the
runtime commits after every output of a message is acknowledged). Exactly-once pipelines use a
transactional producer whose id is stable per pipeline and worker instance, so a restarted worker
fences its predecessor and aborts its open transaction at once, and ``read_committed`` consumers.

Security (TLS, SASL) comes from ``kafka.security_protocol`` / ``tls`` / ``sasl`` through
:func:`pyheart.broker.kafka_security.client_kwargs`, the same for every client; the TLS context is
built once per :class:`KafkaClients`. A failed authentication becomes a non-retriable
:class:`TransportError` with code ``kafka-auth`` that names the settings to check, never a value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaError,
    KafkaTimeoutError,
    SaslAuthenticationFailed,
)
from aiokafka.structs import TopicPartition

from pyheart.broker.engine.config import KafkaSettings
from pyheart.broker.errors import TransportError
from pyheart.broker.kafka_security import client_kwargs, explain_failures


class ConsumerLike(Protocol):
    """The part of :class:`aiokafka.AIOKafkaConsumer` the runtime uses."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def subscribe(self, topics: Sequence[str], listener: ConsumerRebalanceListener) -> None: ...
    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]: ...
    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None: ...
    def assignment(self) -> set[TopicPartition]: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...


class ProducerLike(Protocol):
    """The part of :class:`aiokafka.AIOKafkaProducer` the runtime uses."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]: ...
    async def begin_transaction(self) -> None: ...
    async def commit_transaction(self) -> None: ...
    async def abort_transaction(self) -> None: ...
    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None: ...


class ClientFactory(Protocol):
    """Builds the consumers and producers of a pipeline."""

    def consumer(self, *, group_id: str | None, read_committed: bool, client_id: str) -> ConsumerLike: ...
    def producer(self, *, transactional_id: str | None, client_id: str) -> ProducerLike: ...


class KafkaClients:
    """Real aiokafka clients configured from ``kafka:`` settings."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._security: dict[str, Any] | None = None

    def security(self) -> dict[str, Any]:
        """The security keyword arguments of every client (raises :class:`ConfigError` naming the field)."""
        if self._security is None:
            self._security = client_kwargs(self.settings.security(), "kafka")
        return dict(self._security)

    def _common(self) -> dict[str, Any]:
        s = self.settings
        return {
            "bootstrap_servers": s.bootstrap_servers,
            **self.security(),
            "request_timeout_ms": s.request_timeout_ms,
            "metadata_max_age_ms": s.metadata_max_age_ms,
        }

    def consumer(self, *, group_id: str | None, read_committed: bool, client_id: str) -> ConsumerLike:
        """An aiokafka consumer that never auto-commits."""
        s = self.settings
        consumer = AIOKafkaConsumer(
            **self._common(),
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=s.auto_offset_reset,
            isolation_level="read_committed" if read_committed else "read_uncommitted",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            max_partition_fetch_bytes=max(1_048_576, s.max_batch_size),
        )
        return self._explained(consumer)  # type: ignore[no-any-return]

    def producer(self, *, transactional_id: str | None, client_id: str) -> ProducerLike:
        """An idempotent aiokafka producer with ``acks=all`` (transactional when an id is given)."""
        s = self.settings
        producer = AIOKafkaProducer(
            **self._common(),
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=s.linger_ms,
            max_batch_size=s.max_batch_size,
            transactional_id=transactional_id,
            transaction_timeout_ms=s.transaction_timeout_ms,
        )
        return self._explained(producer)  # type: ignore[no-any-return]

    def admin(self, *, client_id: str) -> AIOKafkaAdminClient:
        """An aiokafka admin client with the same connection and security settings."""
        s = self.settings
        admin = AIOKafkaAdminClient(
            bootstrap_servers=s.bootstrap_servers,
            **self.security(),
            client_id=client_id,
            request_timeout_ms=s.request_timeout_ms,
            metadata_max_age_ms=s.metadata_max_age_ms,
        )
        return self._explained(admin)

    def _explained(self, client: Any) -> Any:
        """``client`` whose failed ``start()`` names the security settings when they are the cause."""
        return explain_failures(client, self.settings.bootstrap_servers, self.security(), "kafka")


def as_transport_error(exc: BaseException) -> TransportError:
    """A client exception as a :class:`TransportError` whose ``retriable`` follows the client's."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, (SaslAuthenticationFailed, AuthenticationFailedError)):
        # The broker's reason text is dropped: it may echo the user name.
        err = TransportError(
            f"kafka: authentication failed ({type(exc).__name__}): check kafka.sasl "
            "(mechanism, username, password) and security_protocol",
            retriable=False,
            code="kafka-auth",
        )
    elif isinstance(exc, KafkaError):
        # A delivery timeout is worth another try with the idempotent producer (aiokafka says no).
        retriable = bool(getattr(exc, "retriable", False)) or isinstance(exc, KafkaTimeoutError)
        err = TransportError(f"kafka: {type(exc).__name__}", retriable=retriable, code="kafka-error")
    elif isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        err = TransportError(f"kafka: {type(exc).__name__}", retriable=True, code="kafka-error")
    else:
        err = TransportError(f"kafka: {type(exc).__name__}", retriable=False, code="kafka-error")
    err.error_class = type(exc).__name__  # type: ignore[attr-defined]
    return err


__all__ = [
    "ClientFactory",
    "ConsumerLike",
    "ConsumerRebalanceListener",
    "KafkaClients",
    "ProducerLike",
    "TopicPartition",
    "as_transport_error",
]
