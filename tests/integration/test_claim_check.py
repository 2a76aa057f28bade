"""Claim check end to end on the real broker: a 3 MB MDM^T02 over MLLP -> claim -> engine -> output topic."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from kafka_records import read
from mllp_support import exchange, msa

from pyheart.adapters.mllp.listener import MllpListener
from pyheart.broker.claimcheck import CLAIM_PAYLOAD, ClaimCheckStore
from pyheart.broker.contracts import Header
from pyheart.broker.engine import Engine, KafkaClients, parse_settings
from pyheart.broker.engine.envelope import decode_headers

pytestmark = [pytest.mark.kafka]

CANARY = "QZXMDMCANARY42"
THRESHOLD = 512_000


def mdm_t02(size: int = 3_000_000) -> bytes:
    """An MDM^T02 with a base64 PDF in OBX-5, ``size`` bytes or a little more."""
    pdf = b"%PDF-1.4\n" + random.Random(7).randbytes(size * 3 // 4) + b"\n%%EOF\n"
    segments = [
        "MSH|^~\\&|DOCS|HOSP|PYHEART|HOSP|20240101120000||MDM^T02^MDM_T02|MDM0001|P|2.5",
        "EVN|T02|20240101120000",
        f"PID|1||{CANARY}^^^HOSP^MR||DOE^JANE||19800101|F",
        "PV1|1|O",
        "TXA|1|CN|AP|20240101120000||||||||DOC0001|||||AU",
        "OBX|1|ED|18842-5^Discharge summary^LN||^AP^PDF^Base64^" + base64.b64encode(pdf).decode(),
    ]
    return ("\r".join(segments) + "\r").encode()


@pytest.fixture
async def topics(unique_name: Any, create_topics: Any) -> dict[str, str]:
    names = {x: unique_name(f"claim-{x}") for x in ("in", "out", "dlq")}
    await create_topics(*names.values())
    return names


@pytest.fixture
async def listeners() -> AsyncIterator[Callable[..., Any]]:
    started: list[MllpListener] = []

    async def start(**config: Any) -> MllpListener:
        listener = MllpListener({"port": 0, "produce_timeout_s": 30, **config})
        await listener.initialize()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.cleanup()


def make_engine(bootstrap: str, topics: dict[str, str], claims: Path) -> Engine:
    settings = parse_settings(
        {
            "kafka": {
                "bootstrap_servers": bootstrap,
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 500,
            },
            "metrics": {"enabled": False},
            "claim_check": {"dir": str(claims), "threshold_bytes": THRESHOLD},
            "pipelines": [
                {
                    "name": topics["in"],
                    "input": {"topics": [topics["in"]], "format": "application/hl7-v2"},
                    "routes": [{"topic": topics["out"], "when": {"message_type": "MDM"}}],
                    "dead_letter": {"topic": topics["dlq"]},
                }
            ],
        }
    )
    return Engine(settings, KafkaClients(settings.kafka))


async def test_large_mdm_flows_through_claim_check(
    kafka_bootstrap: str, topics: dict[str, str], listeners: Any, tmp_path: Path
) -> None:
    """A 3 MB MDM^T02 gets AA, the engine resolves and routes it, the output resolves to the same bytes."""
    claims = tmp_path / "claims"
    listener = await listeners(
        bootstrap_servers=kafka_bootstrap,
        topic=topics["in"],
        max_message_bytes=50_000_000,
        claim_check={"dir": str(claims), "threshold_bytes": THRESHOLD},
    )
    message = mdm_t02()
    [ack] = await exchange(listener.port, message)
    assert msa(ack) == ("AA", "MDM0001")
    engine = make_engine(kafka_bootstrap, topics, claims)
    task = asyncio.create_task(engine.run())
    try:
        [out] = await read(kafka_bootstrap, topics["out"], 1, limit_s=60.0)
    finally:
        engine.request_stop()
        await asyncio.wait_for(task, 30)
    headers = decode_headers(out.headers)
    assert (out.value, headers[Header.MESSAGE_TYPE]) == (CLAIM_PAYLOAD, "MDM")
    assert ClaimCheckStore(claims, THRESHOLD).resolve(out.value, headers) == message


async def test_large_mdm_claim_headers_carry_no_phi(
    kafka_bootstrap: str, topics: dict[str, str], listeners: Any, tmp_path: Path
) -> None:
    """Canary: the record the listener produced carries no value of the message in value or headers."""
    listener = await listeners(
        bootstrap_servers=kafka_bootstrap,
        topic=topics["in"],
        max_message_bytes=50_000_000,
        claim_check={"dir": str(tmp_path / "claims"), "threshold_bytes": THRESHOLD},
    )
    await exchange(listener.port, mdm_t02())
    [rec] = await read(kafka_bootstrap, topics["in"], 1, limit_s=60.0)
    assert CANARY.encode() not in rec.value
    assert all(CANARY.encode() not in v for _, v in rec.headers)


async def test_large_mdm_without_claim_check_gets_ar(
    kafka_bootstrap: str, topics: dict[str, str], listeners: Any
) -> None:
    """Without a claim check the same 3 MB message is rejected (AR) at the default size cap."""
    listener = await listeners(bootstrap_servers=kafka_bootstrap, topic=topics["in"])
    [ack] = await exchange(listener.port, mdm_t02())
    assert msa(ack) == ("AR", "MDM0001")
