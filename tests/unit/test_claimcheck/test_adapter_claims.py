"""Claim checks in the MLLP listener (offload before produce) and the senders (resolve before delivery)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mllp_support import (
    FakeConsumer,
    FakeKafka,
    FakeProducer,
    FakeRecord,
    ScriptedReceiver,
    exchange,
    hl7,
    msa,
)

from pyheart.adapters.mllp.listener import MllpListener
from pyheart.adapters.mllp.sender import MllpSender
from pyheart.broker.claimcheck import CLAIM_PAYLOAD, ClaimCheckStore
from pyheart.broker.contracts import Header

TOPIC = "hl7.in"
OUT = "hl7.out"
CANARY = "QZXCLAIMCANARY7"


def big_message(control_id: str = "C1", size: int = 200_000) -> bytes:
    """An MDM-like message with a large OBX-5 (base64-ish filler) and a canary patient id."""
    obx = "OBX|1|ED|PDF^Report||^AP^PDF^Base64^" + "QUJD" * (size // 4)
    message: bytes = hl7(control_id, patient=CANARY, extra_segments=obx + "\r")
    return message


async def listen(kafka: FakeKafka, **config: Any) -> MllpListener:
    listener = MllpListener(
        {"port": 0, "topic": TOPIC, "produce_timeout_s": 0.5, "max_message_bytes": 1_000_000, **config},
        producer_factory=kafka.producer_factory,
    )
    await listener.initialize()
    return listener


async def test_listener_offloads_large_message(tmp_path: Path) -> None:
    """Above the threshold the record is a claim that resolves to the received bytes; ACK is AA."""
    kafka = FakeKafka()
    store = ClaimCheckStore(tmp_path / "c", 10_000)
    listener = await listen(kafka, claim_check={"dir": str(tmp_path / "c"), "threshold_bytes": 10_000})
    try:
        payload = big_message()
        [ack] = await exchange(listener.port, payload)
    finally:
        await listener.cleanup()
    record = kafka.on(TOPIC)[0]
    headers = {k: v.decode() for k, v in record.headers}
    assert (msa(ack), record.value) == (("AA", "C1"), CLAIM_PAYLOAD)
    assert store.resolve(record.value, headers) == payload


async def test_listener_keeps_small_message_inline(tmp_path: Path) -> None:
    """A message at or below the threshold is produced as is, with no claim header."""
    kafka = FakeKafka()
    listener = await listen(kafka, claim_check={"dir": str(tmp_path / "c"), "threshold_bytes": 10_000})
    try:
        await exchange(listener.port, hl7("C1"))
    finally:
        await listener.cleanup()
    record = kafka.on(TOPIC)[0]
    assert (record.value, record.header(Header.CLAIM_CHECK)) == (hl7("C1"), None)


async def test_listener_store_failure_answers_ae(tmp_path: Path) -> None:
    """When the claim cannot be stored, nothing is produced and the sender gets AE (retry later)."""
    kafka = FakeKafka()
    listener = await listen(kafka, claim_check={"dir": str(tmp_path / "c"), "threshold_bytes": 10_000})
    (tmp_path / "c").rmdir()
    (tmp_path / "c").write_bytes(b"")  # the store path is now a file: writes fail
    try:
        [ack] = await exchange(listener.port, big_message())
    finally:
        await listener.cleanup()
    assert (msa(ack), kafka.on(TOPIC)) == (("AE", "C1"), [])


async def test_listener_claim_headers_carry_no_phi(tmp_path: Path) -> None:
    """Canary: the claim headers and record value never contain the message's values."""
    kafka = FakeKafka()
    listener = await listen(kafka, claim_check={"dir": str(tmp_path / "c"), "threshold_bytes": 10_000})
    try:
        await exchange(listener.port, big_message())
    finally:
        await listener.cleanup()
    record = kafka.on(TOPIC)[0]
    assert all(CANARY.encode() not in v for _, v in record.headers)
    assert CANARY.encode() not in (record.value or b"")


class Harness:
    """An MLLP sender on a fake consumer and a fake dead-letter producer."""

    def __init__(self, batch: list[FakeRecord]) -> None:
        self.consumer = FakeConsumer(batch)
        self.kafka = FakeKafka()

    def factory(self, _settings: dict[str, Any]) -> tuple[FakeConsumer, FakeProducer]:
        return self.consumer, FakeProducer(self.kafka)

    async def run(self, port: int, claims: Path) -> None:
        sender = MllpSender(
            {
                "host": "127.0.0.1",
                "port": port,
                "topic": OUT,
                "group_id": "g",
                "retry_backoff_s": 0.01,
                "max_retries": 1,
                "ack_timeout_s": 2,
                "claim_check": {"dir": str(claims)},
            },
            client_factory=self.factory,
        )
        await sender.initialize()
        try:
            await asyncio.wait_for(self.consumer.wait_for_commits(1), timeout=30)
        finally:
            await sender.cleanup()


def claim_record(store: ClaimCheckStore, payload: bytes) -> FakeRecord:
    small, headers = store.offload(payload, {Header.CONTENT_TYPE: "application/hl7-v2"})
    return FakeRecord(OUT, 0, 0, b"k", small, [(k, v.encode()) for k, v in headers.items()])


async def test_sender_delivers_resolved_payload(tmp_path: Path) -> None:
    """The MLLP sender sends the claim-checked payload itself, not the claim."""
    store = ClaimCheckStore(tmp_path / "c", 10_000)
    payload = big_message()
    harness = Harness([claim_record(store, payload)])
    async with ScriptedReceiver(["AA"]) as receiver:
        await harness.run(receiver.port, tmp_path / "c")
    assert receiver.received == [payload]


async def test_sender_dead_letters_missing_claim(tmp_path: Path) -> None:
    """A claim whose file is gone goes to the dead-letter topic with its claim and a clear code."""
    store = ClaimCheckStore(tmp_path / "c", 10_000)
    record = claim_record(store, big_message())
    uri = dict(record.headers)[Header.CLAIM_CHECK].decode()
    store.path_of(uri).unlink()
    harness = Harness([record])
    async with ScriptedReceiver(["AA"]) as receiver:
        await harness.run(receiver.port, tmp_path / "c")
    dead = harness.kafka.on(f"{OUT}.dlq")[0]
    assert (dead.header(Header.ERROR_CODE), dead.header(Header.CLAIM_CHECK), receiver.received) == (
        "claim-check-missing",
        uri,
        [],
    )
