"""The MLLP sender against real MLLP receivers on loopback, with in-memory Kafka fakes (fast tier).

Receivers: hl7apy's MLLPServer (third-party, one message per connection) and a scripted asyncio
receiver for awkward behaviour (ACKs split byte by byte, silence, wrong MSA-2, hang-ups).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mllp_support import (
    TP,
    FakeConsumer,
    FakeKafka,
    FakeProducer,
    FakeRecord,
    ScriptedReceiver,
    hl7,
    hl7apy_receiver,
    make_pki,
)

from pyheart.adapters.mllp.sender import ACK_CODE_HEADER, ATTEMPTS_HEADER, MllpSender
from pyheart.broker.contracts import Header

TOPIC = "hl7.out"
DLQ = f"{TOPIC}.dlq"
CANARY = "QZXSENDCANARY3"


def records(*payloads: bytes, partition: int = 0) -> list[FakeRecord]:
    return [
        FakeRecord(TOPIC, partition, n, b"key", p, [(Header.MESSAGE_ID, f"m{n}".encode())])
        for n, p in enumerate(payloads)
    ]


class Harness:
    """A sender wired to a fake consumer and a fake DLQ producer."""

    def __init__(self, batch: list[FakeRecord]) -> None:
        self.consumer = FakeConsumer(batch)
        self.kafka = FakeKafka()
        self.total = len(batch)
        self.sender: MllpSender | None = None

    def factory(self, _settings: dict[str, Any]) -> tuple[FakeConsumer, FakeProducer]:
        return self.consumer, FakeProducer(self.kafka)

    async def run(self, port: int, **config: Any) -> MllpSender:
        """Start the sender and wait until every record is committed (or 30 s pass)."""
        base: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "topic": TOPIC,
            "group_id": "g",
            "retry_backoff_s": 0.01,
            "retry_backoff_max_s": 0.05,
            "ack_timeout_s": 2,
            "max_retries": 2,
        }
        self.sender = MllpSender({**base, **config}, client_factory=self.factory)
        await self.sender.initialize()
        await asyncio.wait_for(self.consumer.wait_for_commits(self.total), timeout=30)
        return self.sender

    def dlq(self) -> list[Any]:
        return self.kafka.on(DLQ)


@pytest.fixture
async def cleanup() -> AsyncIterator[list[MllpSender]]:
    senders: list[MllpSender] = []
    yield senders
    for sender in senders:
        await sender.cleanup()


@pytest.fixture
def hl7apy_server() -> Iterator[Callable[[list[str]], tuple[int, list[str]]]]:
    """Start hl7apy's MLLPServer in a thread with a script of ACK codes; stop it afterwards."""
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


Run = Callable[..., Awaitable[tuple[Harness, MllpSender]]]


@pytest.fixture
def run(cleanup: list[MllpSender]) -> Run:
    async def go(port: int, batch: list[FakeRecord], **config: Any) -> tuple[Harness, MllpSender]:
        harness = Harness(batch)
        try:
            sender = await harness.run(port, **config)
        finally:
            if harness.sender is not None:
                cleanup.append(harness.sender)
        return harness, sender

    return go


async def test_delivers_to_hl7apy_receiver(hl7apy_server: Any, run: Run) -> None:
    """Three records reach hl7apy's MLLP server (which closes after each message) and are committed."""
    port, received = hl7apy_server(["AA"])
    harness, sender = await run(port, records(hl7("C1"), hl7("C2"), hl7("C3")))
    controls = [m.split("\r")[0].split("|")[9] for m in received]
    assert (controls, sender.stats.delivered, harness.dlq()) == (["C1", "C2", "C3"], 3, [])


async def test_offsets_committed_in_order_after_each_ack(hl7apy_server: Any, run: Run) -> None:
    """Each record's offset+1 is committed, one after another."""
    port, _ = hl7apy_server(["AA"])
    harness, _ = await run(port, records(hl7("C1"), hl7("C2")))
    assert harness.consumer.commits == [(TP(TOPIC, 0), 1), (TP(TOPIC, 0), 2)]


async def test_segment_terminators_are_normalised_to_cr(hl7apy_server: Any, run: Run) -> None:
    """A record with LF terminators goes out with CR terminators."""
    port, received = hl7apy_server(["AA"])
    await run(port, records(hl7("C1").replace(b"\r", b"\n")))
    assert "\n" not in received[0]


async def test_ae_is_retried_then_delivered(hl7apy_server: Any, run: Run) -> None:
    """An AE is retried with backoff; the next AA completes the delivery."""
    port, received = hl7apy_server(["AE", "AA"])
    harness, sender = await run(port, records(hl7("C1")))
    assert (len(received), sender.stats.retries, sender.stats.delivered, harness.dlq()) == (2, 1, 1, [])


async def test_ar_is_dead_lettered_at_once(hl7apy_server: Any, run: Run) -> None:
    """An AR is not retried: the record goes to the DLQ and its offset is committed."""
    port, received = hl7apy_server(["AR"])
    harness, _ = await run(port, records(hl7("C1")))
    [dead] = harness.dlq()
    assert (len(received), dead.header(ACK_CODE_HEADER), dead.header(Header.ERROR_CODE)) == (
        1,
        "AR",
        "ack-rejected",
    )
    assert harness.consumer.commits == [(TP(TOPIC, 0), 1)]


async def test_retries_exhausted_dead_letters(hl7apy_server: Any, run: Run) -> None:
    """After max_retries AEs the record is dead-lettered with the attempt count."""
    port, received = hl7apy_server(["AE"])
    harness, _ = await run(port, records(hl7("C1")), max_retries=2)
    [dead] = harness.dlq()
    assert (len(received), dead.header(ATTEMPTS_HEADER), dead.header(Header.ERROR_CODE)) == (
        3,
        "3",
        "ack-error",
    )


async def test_dead_letter_keeps_payload_key_and_headers(hl7apy_server: Any, run: Run) -> None:
    """The DLQ record has the original value, key and envelope headers plus error context."""
    port, _ = hl7apy_server(["AR"])
    harness, _ = await run(port, records(hl7("C1")))
    [dead] = harness.dlq()
    assert (dead.value, dead.key, dead.header(Header.MESSAGE_ID)) == (hl7("C1"), b"key", "m0")
    assert [
        dead.header(h)
        for h in (
            Header.ERROR_STAGE,
            Header.ORIGINAL_TOPIC,
            Header.ORIGINAL_PARTITION,
            Header.ORIGINAL_OFFSET,
        )
    ] == ["deliver", TOPIC, "0", "0"]


async def test_ack_split_byte_by_byte_is_read_whole(run: Run) -> None:
    """An ACK written one byte per packet is reassembled and accepted."""
    async with ScriptedReceiver(["AA"]) as receiver:
        _, sender = await run(receiver.port, records(hl7("C1"), hl7("C2")))
    assert (sender.stats.delivered, receiver.connections) == (2, 1)


async def test_persistent_connection_is_reused(run: Run) -> None:
    """A receiver that keeps the connection open gets every message on one connection."""
    async with ScriptedReceiver(["AA"]) as receiver:
        await run(receiver.port, records(*[hl7(f"C{n}") for n in range(5)]))
    assert receiver.connections == 1


async def test_err_locations_reach_the_dlq_headers(run: Run) -> None:
    """ERR-2 locations of a NAK are carried (value-free) in the DLQ error headers."""
    async with ScriptedReceiver(["AR"]) as receiver:
        harness, _ = await run(receiver.port, records(hl7("C1")))
    assert harness.dlq()[0].header(Header.ERROR_LOCATIONS) == "PID-5"


async def test_mismatched_msa2_is_not_success(run: Run) -> None:
    """An AA for another control id is retried; repeated mismatches end in the DLQ."""
    async with ScriptedReceiver(["mismatch"]) as receiver:
        harness, sender = await run(receiver.port, records(hl7("C1")), max_retries=1)
    assert (sender.stats.delivered, harness.dlq()[0].header(Header.ERROR_CODE)) == (0, "ack-mismatch")


async def test_ack_timeout_is_retried(run: Run) -> None:
    """A receiver that does not answer in ack_timeout_s gets the message again."""
    async with ScriptedReceiver(["silent", "AA"]) as receiver:
        _, sender = await run(receiver.port, records(hl7("C1")), ack_timeout_s=0.3)
    assert (len(receiver.received), sender.stats.delivered) == (2, 1)


async def test_hang_up_before_ack_is_retried(run: Run) -> None:
    """A receiver that closes without answering gets the message again on a new connection."""
    async with ScriptedReceiver(["close", "AA"]) as receiver:
        _, sender = await run(receiver.port, records(hl7("C1")))
    assert (sender.stats.delivered, receiver.connections) == (1, 2)


async def test_answer_that_is_not_an_ack_is_retried(run: Run) -> None:
    """A frame without MSA is not an acknowledgment: retried, then dead-lettered."""
    async with ScriptedReceiver(["garbage"]) as receiver:
        harness, _ = await run(receiver.port, records(hl7("C1")), max_retries=1)
    assert harness.dlq()[0].header(Header.ERROR_CODE) == "ack-invalid"


async def test_mllpv2_commit_byte_is_success(run: Run) -> None:
    """An MLLPv2 commit ACK byte counts as delivered."""
    async with ScriptedReceiver(["commit"]) as receiver:
        _, sender = await run(receiver.port, records(hl7("C1")))
    assert sender.stats.delivered == 1


async def test_record_that_is_not_hl7_is_dead_lettered(run: Run) -> None:
    """A record without an MSH (nothing to check the ACK against) goes straight to the DLQ."""
    async with ScriptedReceiver(["AA"]) as receiver:
        harness, _ = await run(receiver.port, records(b"not hl7 at all"))
    assert ([d.header(Header.ERROR_CODE) for d in harness.dlq()], receiver.received) == (["parse-error"], [])


async def test_unreachable_receiver_does_not_dead_letter(cleanup: list[MllpSender]) -> None:
    """While the receiver is down, the record is neither dead-lettered nor committed."""
    harness = Harness(records(hl7("C1")))
    async with ScriptedReceiver(["AA"]) as probe:
        port = probe.port  # a port that was just freed: nothing listens there
    sender = MllpSender(
        {"host": "127.0.0.1", "port": port, "topic": TOPIC, "group_id": "g", "retry_backoff_s": 0.01},
        client_factory=harness.factory,
    )
    cleanup.append(sender)
    await sender.initialize()
    await asyncio.sleep(0.3)
    await sender.cleanup()
    assert (harness.dlq(), harness.consumer.commits) == ([], [])


async def test_receiver_coming_back_gets_the_message(cleanup: list[MllpSender]) -> None:
    """A receiver that starts after the sender still gets the message, with no dead letter."""
    harness = Harness(records(hl7("C1")))
    async with ScriptedReceiver(["AA"]) as probe:
        port = probe.port
    sender = MllpSender(
        {"host": "127.0.0.1", "port": port, "topic": TOPIC, "group_id": "g", "retry_backoff_s": 0.05},
        client_factory=harness.factory,
    )
    cleanup.append(sender)
    await sender.initialize()
    await asyncio.sleep(0.2)
    receiver = ScriptedReceiver(["AA"])
    server = await asyncio.start_server(receiver._handle, "127.0.0.1", port)
    try:
        await asyncio.wait_for(harness.consumer.wait_for_commits(1), timeout=30)
    finally:
        server.close()
        await server.wait_closed()
    assert (sender.stats.delivered, harness.dlq()) == (1, [])


async def test_tls_and_mutual_tls_delivery(run: Run, tmp_path: Path) -> None:
    """The sender presents its client certificate to an mTLS receiver and verifies the server."""
    import ssl

    pki = make_pki(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    server_ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    tls = {
        "enabled": True,
        "ca_file": str(pki.ca),
        "cert_file": str(pki.client_cert),
        "key_file": str(pki.client_key),
        "server_hostname": "localhost",
    }
    async with ScriptedReceiver(["AA"], ssl_context=server_ctx) as receiver:
        _, sender = await run(receiver.port, records(hl7("C1")), tls=tls)
    assert sender.stats.delivered == 1


async def test_cleanup_is_idempotent(hl7apy_server: Any, run: Run) -> None:
    """cleanup() twice is harmless."""
    port, _ = hl7apy_server(["AA"])
    _, sender = await run(port, records(hl7("C1")))
    assert (await sender.cleanup(), await sender.cleanup()) == (True, True)


async def test_phi_canary_stays_out_of_logs_and_dlq_headers(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """A canary value in the message appears in no log line and no DLQ header, on every failure path."""
    caplog.set_level(logging.DEBUG)
    batch = records(hl7("C1", CANARY, family=CANARY), f"{CANARY}|not hl7".encode(), hl7("C3", CANARY))
    async with ScriptedReceiver(["AE", "AR", "AR"]) as receiver:
        harness, _ = await run(receiver.port, batch, max_retries=1)
    exposed = [json.dumps(r.getMessage()) for r in caplog.records]
    exposed += [v.decode() for d in harness.dlq() for _, v in d.headers]
    assert (len(harness.dlq()), [t for t in exposed if CANARY in t]) == (3, [])
