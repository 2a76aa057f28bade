"""Kafka clients for the engine (aiokafka), and the small client interface the runtime needs.

The runtime talks to consumers and producers through :class:`ClientFactory`; :class:`KafkaClients`
builds real aiokafka clients, :class:`pyheart.broker.engine.memory.MemoryBroker` in-memory ones with
the same subset of aiokafka's API (for fast component tests).

Delivery settings: producers are idempotent with ``acks=all``; consumers never auto-commit (the
runtime commits after every output of a message is acknowledged). Exactly-once pipelines use a
transactional producer whose id is stable per pipeline and worker instance, so a restarted worker
fences its predecessor and aborts its open transaction at once, and ``read_committed`` consumers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.structs import TopicPartition

from pyheart.broker.engine.config import KafkaSettings
from pyheart.broker.errors import TransportError


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

    def _common(self) -> dict[str, Any]:
        s = self.settings
        return {
            "bootstrap_servers": s.bootstrap_servers,
            "security_protocol": s.security_protocol,
            "request_timeout_ms": s.request_timeout_ms,
            "metadata_max_age_ms": s.metadata_max_age_ms,
        }

    def consumer(self, *, group_id: str | None, read_committed: bool, client_id: str) -> ConsumerLike:
        """An aiokafka consumer that never auto-commits."""
        s = self.settings
        return AIOKafkaConsumer(  # type: ignore[no-any-return]
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

    def producer(self, *, transactional_id: str | None, client_id: str) -> ProducerLike:
        """An idempotent aiokafka producer with ``acks=all`` (transactional when an id is given)."""
        s = self.settings
        return AIOKafkaProducer(  # type: ignore[no-any-return]
            **self._common(),
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=s.linger_ms,
            max_batch_size=s.max_batch_size,
            transactional_id=transactional_id,
            transaction_timeout_ms=s.transaction_timeout_ms,
        )


def as_transport_error(exc: BaseException) -> TransportError:
    """A client exception as a :class:`TransportError` whose ``retriable`` follows the client's."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, KafkaError):
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
