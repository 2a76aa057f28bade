"""Round trips through the session's real Kafka broker: the producer features the engine relies on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

pytestmark = pytest.mark.kafka

CreateTopics = Callable[..., Awaitable[None]]
_RECEIVE_TIMEOUT_S = 30.0


async def _consume(bootstrap: str, topic: str, group: str, count: int, **options: Any) -> list[Any]:
    """The first ``count`` records of ``topic`` for a new consumer group, from the earliest offset."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **options,
    )
    await consumer.start()
    try:
        return [await asyncio.wait_for(consumer.getone(), _RECEIVE_TIMEOUT_S) for _ in range(count)]
    finally:
        await consumer.stop()


async def test_idempotent_record_round_trips_with_key_and_headers(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics
) -> None:
    """A record from an idempotent acks=all producer comes back with payload, key and headers intact."""
    topic = unique_name("roundtrip")
    await create_topics(topic, partitions=3)
    headers = [("pyheart-message-id", b"msg-0001"), ("pyheart-stage", b"intake"), ("empty", b"")]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topic, b"MSH|^~\\&|payload\r", key=b"patient-key", headers=headers
        )
    finally:
        await producer.stop()

    [record] = await _consume(kafka_bootstrap, topic, unique_name("group"), 1)

    assert (record.value, record.key, list(record.headers), record.partition, record.offset) == (
        b"MSH|^~\\&|payload\r",
        b"patient-key",
        headers,
        sent.partition,
        sent.offset,
    )


async def test_committed_transaction_is_visible_to_read_committed_consumer(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics
) -> None:
    """Records of a committed transaction reach a read_committed consumer (the broker runs transactions)."""
    topic = unique_name("txn-commit")
    await create_topics(topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=unique_name("txn"), acks="all"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed", key=b"k")
    finally:
        await producer.stop()

    [record] = await _consume(
        kafka_bootstrap, topic, unique_name("group"), 1, isolation_level="read_committed"
    )

    assert record.value == b"committed"


async def test_aborted_transaction_is_hidden_from_read_committed_consumer(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics
) -> None:
    """A read_committed consumer skips an aborted transaction and reads the committed one after it."""
    topic = unique_name("txn-abort")
    await create_topics(topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=unique_name("txn"), acks="all"
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed")
    finally:
        await producer.stop()

    [record] = await _consume(
        kafka_bootstrap, topic, unique_name("group"), 1, isolation_level="read_committed"
    )

    assert record.value == b"committed"


async def test_client_logs_at_info_do_not_render_record_contents(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    create_topics: CreateTopics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At INFO (the level the engine runs client libraries at) a canary in value, key and headers is never logged."""
    canary = "CANARY-" + unique_name("phi")
    topic = unique_name("canary")
    await create_topics(topic)
    caplog.set_level(logging.INFO)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, canary.encode(), key=canary.encode(), headers=[("note", canary.encode())]
        )
    finally:
        await producer.stop()
    await _consume(kafka_bootstrap, topic, unique_name("group"), 1)

    leaked = [r.name for r in caplog.records if canary in r.getMessage()]

    assert leaked == []
