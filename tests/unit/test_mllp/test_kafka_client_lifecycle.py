"""Adapters stopped while their Kafka clients are still starting close those clients.

A broker address that accepts TCP connections and never answers keeps aiokafka's ``start()``
waiting, so stopping the adapter cancels it mid-start. aiokafka warns (``Unclosed
AIOKafkaProducer``) and leaks the connection when such a client is dropped without ``stop()``;
CI once failed on exactly that warning. These tests use the real aiokafka clients.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator

import pytest

from pyheart.adapters._delivery import start_all
from pyheart.adapters.mllp.listener import MllpListener
from pyheart.adapters.mllp.sender import MllpSender


class Client:
    """A client whose ``start`` waits for ever (or fails) and which records ``stop``."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.stopped = False

    async def start(self) -> None:
        if self.fail:
            raise ConnectionError("refused")
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
async def silent_broker() -> AsyncIterator[str]:
    """``host:port`` of a server that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def unclosed_client_warnings() -> list[str]:
    """Collect garbage and return aiokafka's unclosed-client warnings raised meanwhile."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if "Unclosed AIOKafka" in str(w.message)]


async def test_start_all_stops_every_client_when_cancelled() -> None:
    """Cancelling start_all mid-start stops the clients already started and the one starting."""
    first, second = Client(), Client()
    task = asyncio.create_task(start_all(first, second))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (first.stopped, second.stopped) == (True, True)


async def test_start_all_stops_every_client_when_one_fails() -> None:
    """A failing start stops the clients and re-raises the client's error."""
    ok, bad = Client(), Client(fail=True)
    ok.start = lambda: asyncio.sleep(0)  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await start_all(ok, bad)
    assert (ok.stopped, bad.stopped) == (True, True)


async def test_listener_stopped_while_kafka_starts_closes_its_producer(silent_broker: str) -> None:
    """An MLLP listener stopped before its producer connected leaves no unclosed producer."""
    listener = MllpListener(
        {"port": 0, "topic": "t", "bootstrap_servers": silent_broker, "produce_timeout_s": 0.2}
    )
    assert await listener.initialize()
    await asyncio.sleep(0.3)  # the producer is inside start(), waiting for metadata
    assert listener.kafka_ready is False
    await listener.cleanup()
    assert unclosed_client_warnings() == []


async def test_sender_stopped_while_kafka_starts_closes_its_clients(silent_broker: str) -> None:
    """An MLLP sender stopped before its clients connected leaves no unclosed consumer or producer."""
    sender = MllpSender(
        {
            "host": "127.0.0.1",
            "port": 9,
            "topic": "t",
            "group_id": "g",
            "bootstrap_servers": silent_broker,
            "connect_timeout_s": 0.2,
        }
    )
    assert await sender.initialize()
    await asyncio.sleep(0.3)
    started = asyncio.get_running_loop().time()
    await sender.cleanup()
    assert asyncio.get_running_loop().time() - started < 5  # no shutdown timeout to sit out
    assert unclosed_client_warnings() == []
