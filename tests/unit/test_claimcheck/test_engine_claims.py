"""Claim checks through whole pipelines on the in-memory bus: resolve, offload, dead letters, config."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pyheart.broker.claimcheck import CLAIM_PAYLOAD, ClaimCheckStore
from pyheart.broker.contracts import Header
from pyheart.broker.engine import Engine, MemoryBroker, parse_settings
from pyheart.broker.engine.envelope import decode_headers, encode_headers
from pyheart.broker.errors import ConfigError

COMPONENT = Path(__file__).parents[2] / "component"
CANARY = "zzcanary-ocelot-5521"
BIG = (f"header {CANARY} " + "x" * 5_000).encode()


@pytest.fixture(autouse=True)
def _plugins_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(COMPONENT))


def settings(claims: Path | None, threshold: int = 1_000, **pipeline: Any) -> Any:
    base: dict[str, Any] = {
        "name": "p1",
        "input": {"topics": ["in"], "format": "text/plain"},
        "routes": [{"topic": "out"}],
        "dead_letter": {"topic": "dlq"},
        "retry": {"max_attempts": 2, "initial_backoff_ms": 1, "max_backoff_ms": 2},
        "transformers": [{"id": "up", "plugin": "engine_plugins:Upper"}],
    }
    base.update(pipeline)
    doc: dict[str, Any] = {
        "kafka": {"fetch_timeout_ms": 20},
        "metrics": {"enabled": False},
        "pipelines": [base],
    }
    if claims is not None:
        doc["claim_check"] = {"dir": str(claims), "threshold_bytes": threshold}
    return parse_settings(doc)


async def run_until(engine: Engine, broker: MemoryBroker, topic: str) -> None:
    """Run ``engine`` until ``topic`` has a record, then stop it."""
    task = asyncio.create_task(engine.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while not broker.records(topic):
        assert loop.time() < deadline, "pipeline did not finish"
        assert not task.done(), "engine stopped early"
        await asyncio.sleep(0.01)
    engine.request_stop()
    await task


def produce_claim(broker: MemoryBroker, store: ClaimCheckStore, payload: bytes) -> dict[str, str]:
    """Put a claim-checked record on ``in``; returns its headers."""
    small, headers = store.offload(payload, {Header.CONTENT_TYPE: "text/plain"})
    broker.produce("in", small, headers=encode_headers(headers))
    return headers


async def test_transformer_sees_the_resolved_payload(tmp_path: Path) -> None:
    """A claim-checked input reaches the transformer as its real payload (output below threshold)."""
    store = ClaimCheckStore(tmp_path / "c", 1_000)
    produce_claim(broker := MemoryBroker(), store, BIG)
    await run_until(Engine(settings(tmp_path / "c", threshold=100_000), broker), broker, "out")
    out = broker.records("out")[0]
    assert out.value == BIG.upper()
    assert Header.CLAIM_CHECK not in decode_headers(out.headers)


async def test_large_output_is_offloaded(tmp_path: Path) -> None:
    """An output above the threshold is produced as a claim that resolves to the output bytes."""
    store = ClaimCheckStore(tmp_path / "c", 1_000)
    in_headers = produce_claim(broker := MemoryBroker(), store, BIG)
    await run_until(Engine(settings(tmp_path / "c"), broker), broker, "out")
    out = broker.records("out")[0]
    headers = decode_headers(out.headers)
    assert out.value == CLAIM_PAYLOAD
    assert headers[Header.CLAIM_CHECK] != in_headers[Header.CLAIM_CHECK]
    assert store.resolve(out.value, headers) == BIG.upper()


async def test_missing_claim_dead_letters_with_its_claim(tmp_path: Path) -> None:
    """A claim whose file is gone dead-letters (no crash) and the dead letter keeps the claim headers."""
    store = ClaimCheckStore(tmp_path / "c", 1_000)
    in_headers = produce_claim(broker := MemoryBroker(), store, BIG)
    store.path_of(in_headers[Header.CLAIM_CHECK]).unlink()
    await run_until(Engine(settings(tmp_path / "c"), broker), broker, "dlq")
    dead = decode_headers(broker.records("dlq")[0].headers)
    assert (dead[Header.ERROR_CODE], dead[Header.CLAIM_CHECK]) == (
        "claim-check-missing",
        in_headers[Header.CLAIM_CHECK],
    )


async def test_rejected_message_dead_letter_keeps_claim(tmp_path: Path) -> None:
    """A resolved message that later fails dead-letters as the claim record, so replay can resolve it."""
    store = ClaimCheckStore(tmp_path / "c", 1_000)
    in_headers = produce_claim(broker := MemoryBroker(), store, BIG + b"BOOM")
    s = settings(tmp_path / "c", transformers=[{"id": "boom", "plugin": "engine_plugins:Boom"}])
    await run_until(Engine(s, broker), broker, "dlq")
    rec = broker.records("dlq")[0]
    dead = decode_headers(rec.headers)
    assert store.resolve(rec.value or b"", dead) == BIG + b"BOOM"
    assert dead[Header.CLAIM_CHECK_SHA256] == in_headers[Header.CLAIM_CHECK_SHA256]


async def test_claim_without_configured_store_dead_letters(tmp_path: Path) -> None:
    """A claim-checked record in a file with no claim_check section dead-letters with a clear code."""
    store = ClaimCheckStore(tmp_path / "c", 1_000)
    produce_claim(broker := MemoryBroker(), store, BIG)
    await run_until(Engine(settings(None), broker), broker, "dlq")
    dead = decode_headers(broker.records("dlq")[0].headers)
    assert dead[Header.ERROR_CODE] == "claim-check-not-configured"


async def test_no_phi_in_dead_letter_headers(tmp_path: Path) -> None:
    """Canary: the payload's unique value appears in no header of a claim-check dead letter."""
    store = ClaimCheckStore(tmp_path / "c", 1_000)
    in_headers = produce_claim(broker := MemoryBroker(), store, BIG)
    store.path_of(in_headers[Header.CLAIM_CHECK]).write_bytes(b"tampered")
    await run_until(Engine(settings(tmp_path / "c"), broker), broker, "dlq")
    rec = broker.records("dlq")[0]
    assert all(CANARY.encode() not in value for _, value in rec.headers)
    assert decode_headers(rec.headers)[Header.ERROR_CODE] == "claim-check-corrupt"


def test_claim_check_config_rejects_unknown_keys(tmp_path: Path) -> None:
    """The claim_check section forbids unknown keys and names the path."""
    doc = {
        "claim_check": {"dir": str(tmp_path), "treshold": 5},
        "pipelines": [
            {
                "name": "p",
                "input": {"topics": ["in"]},
                "routes": [{"topic": "o"}],
                "dead_letter": {"topic": "d"},
            }
        ],
    }
    with pytest.raises(ConfigError, match=r"claim_check\.treshold: unknown key"):
        parse_settings(doc)
