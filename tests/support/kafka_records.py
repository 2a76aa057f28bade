"""Produce and read raw records on the real broker, for integration tests that check what a component wrote."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def produce(bootstrap: str, topic: str, *values: bytes) -> None:
    """Send ``values`` to ``topic`` one by one, each acknowledged by every replica."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v)
    finally:
        await producer.stop()


async def read(bootstrap: str, topic: str, n: int, limit_s: float = 30.0) -> list[Any]:
    """The first ``n`` records of ``topic`` from the beginning; TimeoutError if fewer arrive in ``limit_s``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[Any] = []
    try:
        async with asyncio.timeout(limit_s):
            while len(out) < n:
                for recs in (await consumer.getmany(timeout_ms=200)).values():
                    out.extend(recs)
        return out
    finally:
        await consumer.stop()
