"""The MLLP sender against the real Kafka broker and a third-party MLLP receiver.

Receiver: hl7apy's ``MLLPServer`` (a socketserver that answers one message per connection) in a
thread, answering from a script of ACK codes; for silence and per-key ordering an asyncio
receiver from the test support. End to end: python-hl7's ``mllp_send`` -> our listener -> Kafka
-> our sender -> hl7apy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from mllp_support import ScriptedReceiver, hl7, hl7apy_receiver

from pyheart.adapters.mllp.listener import MllpListener
from pyheart.adapters.mllp.sender import ACK_CODE_HEADER, MllpSender
from pyheart.broker import PluginManager
from pyheart.broker.contracts import Header

pytestmark = pytest.mark.kafka

CANARY = "QZXSENDERCANARY8"
_TIMEOUT_S = 60.0

CreateTopics = Callable[..., Awaitable[None]]
Receiver = Callable[[list[str]], tuple[int, list[str]]]


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait until ``predicate()`` holds (the receiver runs in another thread), at most 60 s."""
    async with asyncio.timeout(_TIMEOUT_S):
        while not predicate():  # noqa: ASYNC110 - the state lives in a socketserver thread
            await asyncio.sleep(0.02)
    assert predicate(), what


@pytest.fixture
def hl7apy_server() -> Iterator[Receiver]:
    """hl7apy's MLLPServer in a thread, answering with a script of ACK codes."""
    servers: list[Any] = []

    def start(codes: list[str]) -> tuple[int, list[str]]:
        received: list[str] = []
        server = hl7apy_receiver(codes, received)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server.server_address[1], received

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


async def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(topic, value, key=key, headers=[(Header.MESSAGE_ID, b"m-1")])
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str, topic: str, partition: int = 0) -> int | None:
    """The group's committed offset for one partition (None when nothing was committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(topic, partition))
        return offset
    finally:
        await consumer.stop()


async def read_topic(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"read-{topic}", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        return [await asyncio.wait_for(consumer.getone(), _TIMEOUT_S) for _ in range(count)]
    finally:
        await consumer.stop()


@asynccontextmanager
async def sending(
    bootstrap: str, topic: str, group: str, port: int, **config: Any
) -> AsyncIterator[MllpSender]:
    sender = MllpSender(
        {
            "host": "127.0.0.1",
            "port": port,
            "bootstrap_servers": bootstrap,
            "topic": topic,
            "group_id": group,
            "retry_backoff_s": 0.05,
            "retry_backoff_max_s": 0.2,
            "ack_timeout_s": 5,
            **config,
        }
    )
    await sender.initialize()
    try:
        yield sender
    finally:
        await sender.cleanup()


async def test_delivers_to_hl7apy_and_commits(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    create_topics: CreateTopics,
    hl7apy_server: Receiver,
) -> None:
    """Five records reach hl7apy's MLLP server in order and the group's offset ends at 5."""
    topic, group = unique_name("mllp-out"), unique_name("sender")
    await create_topics(topic)
    await produce(kafka_bootstrap, topic, [(b"k", hl7(f"S{n}")) for n in range(5)])
    port, received = hl7apy_server(["AA"])
    async with sending(kafka_bootstrap, topic, group, port) as sender:
        await until(lambda: sender.stats.committed == 5, "five commits")
    controls = [m.split("\r")[0].split("|")[9] for m in received]
    assert (controls, await committed(kafka_bootstrap, group, topic)) == ([f"S{n}" for n in range(5)], 5)


async def test_ae_is_retried_until_aa(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    create_topics: CreateTopics,
    hl7apy_server: Receiver,
) -> None:
    """hl7apy answers AE twice, then AA: the message is sent three times and committed once."""
    topic, group = unique_name("mllp-ae"), unique_name("sender")
    await create_topics(topic)
    await produce(kafka_bootstrap, topic, [(b"k", hl7("AE1"))])
    port, received = hl7apy_server(["AE", "AE", "AA"])
    async with sending(kafka_bootstrap, topic, group, port) as sender:
        await until(lambda: sender.stats.committed == 1, "one commit")
    assert (len(received), sender.stats.delivered, sender.stats.dead_lettered) == (3, 1, 0)


async def test_ar_goes_to_the_dead_letter_topic(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    create_topics: CreateTopics,
    hl7apy_server: Receiver,
) -> None:
    """An AR dead-letters the record at once, with error headers, and the offset moves on."""
    topic, group = unique_name("mllp-ar"), unique_name("sender")
    await create_topics(topic, f"{topic}.dlq")
    await produce(kafka_bootstrap, topic, [(b"k", hl7("AR1"))])
    port, received = hl7apy_server(["AR"])
    async with sending(kafka_bootstrap, topic, group, port) as sender:
        await until(lambda: sender.stats.committed == 1, "one commit")
    [dead] = await read_topic(kafka_bootstrap, f"{topic}.dlq", 1)
    headers = {k: v.decode() for k, v in dead.headers}
    assert (len(received), dead.value, headers[ACK_CODE_HEADER], headers[Header.ORIGINAL_TOPIC]) == (
        1,
        hl7("AR1"),
        "AR",
        topic,
    )
    assert await committed(kafka_bootstrap, group, topic) == 1


async def test_retries_exhausted_dead_letters(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    create_topics: CreateTopics,
    hl7apy_server: Receiver,
) -> None:
    """Always AE: after max_retries the record is dead-lettered with code ack-error."""
    topic, group = unique_name("mllp-exhaust"), unique_name("sender")
    await create_topics(topic, f"{topic}.dlq")
    await produce(kafka_bootstrap, topic, [(b"k", hl7("EX1"))])
    port, received = hl7apy_server(["AE"])
    async with sending(kafka_bootstrap, topic, group, port, max_retries=2) as sender:
        await until(lambda: sender.stats.committed == 1, "one commit")
    [dead] = await read_topic(kafka_bootstrap, f"{topic}.dlq", 1)
    assert (len(received), dict(dead.headers)[Header.ERROR_CODE]) == (3, b"ack-error")


async def test_offset_is_not_committed_before_the_ack(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    create_topics: CreateTopics,
    hl7apy_server: Receiver,
) -> None:
    """A message the receiver never acknowledged is not committed: the next run delivers it again."""
    topic, group = unique_name("mllp-noack"), unique_name("sender")
    await create_topics(topic)
    await produce(kafka_bootstrap, topic, [(b"k", hl7("NA1"))])
    async with (
        ScriptedReceiver(["silent"]) as silent,
        sending(kafka_bootstrap, topic, group, silent.port, ack_timeout_s=60, shutdown_timeout_s=0.5),
    ):
        await until(lambda: len(silent.received) == 1, "the receiver got the message")
    before = await committed(kafka_bootstrap, group, topic)
    port, received = hl7apy_server(["AA"])
    async with sending(kafka_bootstrap, topic, group, port) as sender:
        await until(lambda: sender.stats.committed == 1, "one commit")
    assert (before, len(received), await committed(kafka_bootstrap, group, topic)) == (None, 1, 1)


async def test_per_key_order_is_kept_across_partitions(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics
) -> None:
    """Thirty messages for three patients on three partitions arrive in per-patient order."""
    topic, group = unique_name("mllp-order"), unique_name("sender")
    await create_topics(topic, partitions=3)
    items = [(f"patient-{n % 3}".encode(), hl7(f"O{n:02d}", f"P{n % 3}")) for n in range(30)]
    await produce(kafka_bootstrap, topic, items)
    async with (
        ScriptedReceiver(["AA"]) as receiver,
        sending(kafka_bootstrap, topic, group, receiver.port) as sender,
    ):
        await until(lambda: sender.stats.committed == 30, "thirty commits")
    order: dict[str, list[str]] = {}
    for payload in receiver.received:
        fields = payload.decode().split("\r")
        order.setdefault(fields[2].split("|")[3], []).append(fields[0].split("|")[9])
    assert order == {f"P{p}^^^HOSP^MR": [f"O{n:02d}" for n in range(30) if n % 3 == p] for p in range(3)}


async def test_end_to_end_mllp_send_to_hl7apy(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    create_topics: CreateTopics,
    hl7apy_server: Receiver,
    tmp_path: Path,
) -> None:
    """mllp_send -> our listener -> Kafka -> our sender -> hl7apy: the messages arrive unchanged."""
    topic, group = unique_name("mllp-e2e"), unique_name("sender")
    await create_topics(topic)
    file = tmp_path / "e2e.hl7"
    file.write_bytes(hl7("E1") + b"\n" + hl7("E2", "PAT2") + b"\n")
    listener = MllpListener({"port": 0, "bootstrap_servers": kafka_bootstrap, "topic": topic})
    await listener.initialize()
    try:
        await mllp_send(listener.port, file)
    finally:
        await listener.cleanup()
    port, received = hl7apy_server(["AA"])
    async with sending(kafka_bootstrap, topic, group, port) as sender:
        await until(lambda: sender.stats.committed == 2, "two commits")
    assert [m.encode() for m in received] == [hl7("E1").rstrip(b"\r"), hl7("E2", "PAT2").rstrip(b"\r")]


async def test_both_adapters_hosted_by_the_plugin_manager(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    create_topics: CreateTopics,
    hl7apy_server: Receiver,
    tmp_path: Path,
) -> None:
    """Loaded by entry-point name from a configuration, started and stopped by the PluginManager."""
    topic, group = unique_name("mllp-hosted"), unique_name("sender")
    await create_topics(topic)
    port, received = hl7apy_server(["AA"])
    listen_port = free_port()
    config = {
        "plugins": [
            {
                "id": "hl7_in",
                "class": "mllp-listener",
                "config": {"port": "${IN_PORT}", "bootstrap_servers": "${KAFKA}", "topic": topic},
            },
            {
                "id": "hl7_out",
                "class": "mllp-sender",
                "config": {
                    "host": "127.0.0.1",
                    "port": "${OUT_PORT}",
                    "bootstrap_servers": "${KAFKA}",
                    "topic": topic,
                    "group_id": group,
                },
            },
        ]
    }
    manager = PluginManager()
    manager.load_plugins_from_config(
        config, environ={"IN_PORT": str(listen_port), "OUT_PORT": str(port), "KAFKA": kafka_bootstrap}
    )
    file = tmp_path / "hosted.hl7"
    file.write_bytes(hl7("H1") + b"\n")
    async with manager:
        acks = await mllp_send(listen_port, file)
        await until(lambda: len(received) == 1, "the receiver got the message")
    assert (len(acks), b"|AA|H1" in acks[0], received[0].split("\r")[0].split("|")[9]) == (1, True, "H1")


async def mllp_send(port: int, file: Path) -> list[bytes]:
    """python-hl7's mllp_send --loose; returns the answers it printed (one line each)."""
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("mllp_send")),
        "--loose",
        "-f",
        str(file),
        "-p",
        str(port),
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=_TIMEOUT_S)
    assert proc.returncode == 0
    return [line for line in out.split(b"\n") if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_phi_canary_stays_out_of_logs_and_dead_letter_headers(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    create_topics: CreateTopics,
    hl7apy_server: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A canary in a rejected message appears in no log line and in no dead-letter header (kcat)."""
    caplog.set_level(logging.DEBUG)
    topic, group = unique_name("mllp-canary-out"), unique_name("sender")
    await create_topics(topic, f"{topic}.dlq")
    await produce(kafka_bootstrap, topic, [(b"k", hl7("CN1", CANARY, family=CANARY))])
    port, _ = hl7apy_server(["AE", "AR"])
    async with sending(kafka_bootstrap, topic, group, port) as sender:
        await until(lambda: sender.stats.committed == 1, "one commit")
    binary = shutil.which("kcat")
    assert binary, "kcat is not installed (apt-get install -y kcat)"
    proc = await asyncio.create_subprocess_exec(
        binary, "-b", kafka_bootstrap, "-C", "-t", f"{topic}.dlq", "-o", "beginning", "-e", "-q", "-J",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=_TIMEOUT_S)
    [envelope] = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    exposed = [r.getMessage() for r in caplog.records] + [json.dumps(envelope["headers"])]
    assert ([t for t in exposed if CANARY in t], CANARY in envelope["payload"]) == ([], True)
