"""An in-memory Kafka stand-in for fast component tests (as httpx ships ``MockTransport``).

:class:`MemoryBroker` implements the engine's :class:`~pyheart.broker.engine.kafka_io.ClientFactory`
with consumers and producers that speak the subset of aiokafka's API the runtime uses: partitioned
topics with offsets and timestamps, consumer groups with committed offsets and a simple
round-robin assignment, idempotent-looking producers, transactions (records become visible on
commit; offsets sent to a transaction are committed with it) and injectable send failures.

It is for speed, never instead of the real-broker tests: it does not model network failures,
fencing, or the timing of rebalances.

::

    broker = MemoryBroker()
    broker.create_topic("hl7.in", partitions=2)
    broker.produce("hl7.in", b"MSH|...", key=b"k")
    engine = Engine(settings, broker)
"""

from __future__ import annotations

import asyncio
import inspect
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import RecordMetadata, TopicPartition

from pyheart.broker.engine.kafka_io import ConsumerLike, ConsumerRebalanceListener, ProducerLike
from pyheart.broker.errors import TransportError


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """A stored record, shaped like aiokafka's ``ConsumerRecord``."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass
class _Group:
    members: list[MemoryConsumer] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    generation: int = 0


class MemoryBroker:
    """Topics, groups and clients in one process."""

    def __init__(self, default_partitions: int = 1) -> None:
        self.default_partitions = default_partitions
        self.topics: dict[str, list[list[MemoryRecord]]] = {}
        self.groups: dict[str, _Group] = {}
        self._failures: list[BaseException] = []
        self._new_data = asyncio.Condition()

    # ----------------------------------------------------------------------------------- admin
    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Create ``name`` (no-op when it exists)."""
        self.topics.setdefault(name, [[] for _ in range(partitions or self.default_partitions)])

    def records(self, topic: str) -> list[MemoryRecord]:
        """Every committed record of ``topic``, partition by partition."""
        return [r for part in self.topics.get(topic, []) for r in part]

    def committed(self, group_id: str, tp: TopicPartition) -> int | None:
        """The group's committed offset for ``tp``."""
        group = self.groups.get(group_id)
        return group.committed.get(tp) if group else None

    def fail_next_sends(self, *errors: BaseException) -> None:
        """The next sends (one per error, in order) fail with these errors."""
        self._failures.extend(errors)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> MemoryRecord:
        """Append one record now (test setup)."""
        self.create_topic(topic)
        parts = self.topics[topic]
        if partition is None:
            partition = (zlib.crc32(key) % len(parts)) if key is not None else _round_robin(parts)
        log = parts[partition]
        rec = MemoryRecord(
            topic,
            partition,
            len(log),
            timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            key,
            value,
            tuple(headers),
        )
        log.append(rec)
        return rec

    async def _notify(self) -> None:
        async with self._new_data:
            self._new_data.notify_all()

    def _take_failure(self) -> BaseException | None:
        return self._failures.pop(0) if self._failures else None

    # ----------------------------------------------------------------------------------- groups
    def _join(self, group_id: str, member: MemoryConsumer) -> None:
        group = self.groups.setdefault(group_id, _Group())
        group.members.append(member)
        group.generation += 1

    def _leave(self, group_id: str, member: MemoryConsumer) -> None:
        group = self.groups.get(group_id)
        if group and member in group.members:
            group.members.remove(member)
            group.generation += 1

    def _assignment(self, group_id: str, member: MemoryConsumer) -> set[TopicPartition]:
        group = self.groups[group_id]
        topics = sorted({t for m in group.members for t in m.topics})
        tps = [TopicPartition(t, p) for t in topics for p in range(len(self.topics.get(t, [])))]
        index = group.members.index(member)
        return {
            tp for i, tp in enumerate(tps) if i % len(group.members) == index and tp.topic in member.topics
        }

    # ----------------------------------------------------------------------------------- factory
    def consumer(self, *, group_id: str | None, read_committed: bool, client_id: str) -> ConsumerLike:
        """A consumer of this broker (``read_committed`` is implied: transactions publish on commit)."""
        return MemoryConsumer(self, group_id)

    def producer(self, *, transactional_id: str | None, client_id: str) -> ProducerLike:
        """A producer of this broker."""
        return MemoryProducer(self, transactional_id)


def _round_robin(parts: list[list[MemoryRecord]]) -> int:
    return min(range(len(parts)), key=lambda i: len(parts[i]))


class MemoryConsumer:
    """A consumer in a group (or standalone with ``assign``)."""

    def __init__(self, broker: MemoryBroker, group_id: str | None) -> None:
        self.broker = broker
        self.group_id = group_id
        self.topics: set[str] = set()
        self._listener: ConsumerRebalanceListener | None = None
        self._assigned: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._generation = -1
        self._started = False

    async def start(self) -> None:
        """Start (nothing to connect)."""
        self._started = True

    async def stop(self) -> None:
        """Leave the group."""
        # As aiokafka: leaving the group does not call the listener.
        if self._started and self.group_id is not None and self.topics:
            self.broker._leave(self.group_id, self)
            self._assigned = set()
        self._started = False

    def subscribe(self, topics: Sequence[str], listener: ConsumerRebalanceListener | None = None) -> None:
        """Join the group for ``topics``; ``listener`` hears assignments and revocations."""
        self.topics = set(topics)
        for t in topics:
            self.broker.create_topic(t)
        self._listener = listener
        if self.group_id is not None:
            self.broker._join(self.group_id, self)

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Read these partitions without a group."""
        self._assigned = set(partitions)
        for tp in partitions:
            self._positions.setdefault(tp, 0)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer reads."""
        return set(self._assigned)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read ``partition`` from ``offset`` next."""
        self._positions[partition] = offset

    def highwater(self, partition: TopicPartition) -> int | None:
        """The offset the next record of ``partition`` will get."""
        parts = self.broker.topics.get(partition.topic)
        return len(parts[partition.partition]) if parts else None

    async def _call(self, name: str, tps: set[TopicPartition]) -> None:
        if self._listener is None:
            return
        result = getattr(self._listener, name)(tps)
        if inspect.isawaitable(result):
            await result

    async def _rebalance(self) -> None:
        if self.group_id is None or not self.topics:
            return
        group = self.broker.groups[self.group_id]
        if group.generation == self._generation:
            return
        await self._call("on_partitions_revoked", set(self._assigned))
        self._generation = group.generation
        self._assigned = self.broker._assignment(self.group_id, self)
        self._positions = {tp: group.committed.get(tp, 0) for tp in self._assigned}
        await self._call("on_partitions_assigned", set(self._assigned))

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        """Records since the last fetch, waiting up to ``timeout_ms`` when there are none."""
        await self._rebalance()
        out = self._fetch(max_records or 500)
        if not out and timeout_ms:
            cond = self.broker._new_data
            async with cond:
                try:
                    await asyncio.wait_for(cond.wait(), timeout_ms / 1000)
                except TimeoutError:
                    return {}
            out = self._fetch(max_records or 500)
        return out

    def _fetch(self, limit: int) -> dict[TopicPartition, list[Any]]:
        out: dict[TopicPartition, list[Any]] = {}
        for tp in sorted(self._assigned):
            log = self.broker.topics.get(tp.topic, [])[tp.partition]
            pos = self._positions.get(tp, 0)
            chunk = log[pos : pos + limit]
            if chunk:
                out[tp] = list(chunk)
                self._positions[tp] = pos + len(chunk)
                limit -= len(chunk)
            if limit <= 0:
                break
        return out

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (next offsets to read) for the group."""
        if self.group_id is None:
            raise TransportError("memory: commit without a group", retriable=False)
        group = self.broker.groups[self.group_id]
        group.committed.update(offsets or self._positions)


def _meta(topic: str, partition: int, offset: int, timestamp: int) -> RecordMetadata:
    return RecordMetadata(topic, partition, TopicPartition(topic, partition), offset, timestamp, 0, 0)


class MemoryProducer:
    """A producer; transactional when it has a transactional id."""

    def __init__(self, broker: MemoryBroker, transactional_id: str | None) -> None:
        self.broker = broker
        self.transactional_id = transactional_id
        self._txn: list[tuple[str, bytes | None, bytes | None, tuple[tuple[str, bytes], ...], int]] | None = (
            None
        )
        self._txn_offsets: list[tuple[str, dict[TopicPartition, int]]] = []

    async def start(self) -> None:
        """Start (nothing to connect)."""

    async def stop(self) -> None:
        """Abort an open transaction."""
        if self._txn is not None:
            await self.abort_transaction()

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Append a record (on commit, inside a transaction); the future holds its metadata."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failure = self.broker._take_failure()
        if failure is not None:
            fut.set_exception(failure)
            return fut
        if self._txn is not None:
            # Written but invisible until commit (as read_committed consumers see it).
            self.broker.create_topic(topic)
            parts = self.broker.topics[topic]
            part = (
                partition
                if partition is not None
                else (zlib.crc32(key) % len(parts) if key is not None else 0)
            )
            ahead = sum(1 for t, _, _, _, p_ in self._txn if t == topic and p_ == part)
            self._txn.append((topic, value, key, tuple(headers or ()), part))
            fut.set_result(_meta(topic, part, len(parts[part]) + ahead, int(time.time() * 1000)))
            return fut
        rec = self.broker.produce(topic, value, key=key, headers=headers or (), partition=partition)
        fut.set_result(_meta(topic, rec.partition, rec.offset, rec.timestamp))
        await self.broker._notify()
        return fut

    async def begin_transaction(self) -> None:
        """Open a transaction."""
        if self.transactional_id is None:
            raise TransportError("memory: not a transactional producer", retriable=False)
        self._txn = []
        self._txn_offsets = []

    async def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int], group_id: str) -> None:
        """Commit ``offsets`` for ``group_id`` with the transaction."""
        self._txn_offsets.append((group_id, dict(offsets)))

    async def commit_transaction(self) -> None:
        """Publish the transaction's records and offsets."""
        pending, self._txn = self._txn or [], None
        for topic, value, key, headers, part in pending:
            self.broker.produce(topic, value, key=key, headers=headers, partition=part)
        for group_id, offsets in self._txn_offsets:
            self.broker.groups.setdefault(group_id, _Group()).committed.update(offsets)
        self._txn_offsets = []
        await self.broker._notify()

    async def abort_transaction(self) -> None:
        """Drop the transaction's records and offsets."""
        self._txn = None
        self._txn_offsets = []


__all__ = ["MemoryBroker", "MemoryConsumer", "MemoryProducer", "MemoryRecord"]
