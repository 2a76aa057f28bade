"""The engine in-process against the real broker: dead letters, retries, hooks, metrics and health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from kafka_records import produce, read

from pyheart.broker.contracts import Header
from pyheart.broker.engine import Engine, KafkaClients, parse_settings
from pyheart.broker.engine.envelope import decode_headers

pytestmark = [pytest.mark.kafka]

HERE = Path(__file__).parent.parent / "component"


@pytest.fixture(autouse=True)
def _plugins_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))


@pytest.fixture
async def topics(unique_name: Any, create_topics: Any) -> dict[str, str]:
    names = {x: unique_name(x) for x in ("in", "out", "dlq", "audit")}
    await create_topics(*names.values())
    return names


def make_engine(bootstrap: str, topics: dict[str, str], **pipeline: Any) -> Engine:
    base: dict[str, Any] = {
        "name": topics["in"],
        "input": {"topics": [topics["in"]], "format": "text/plain"},
        "routes": [{"topic": topics["out"]}],
        "dead_letter": {"topic": topics["dlq"]},
    }
    base.update(pipeline)
    settings = parse_settings(
        {
            "kafka": {
                "bootstrap_servers": bootstrap,
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 500,
            },
            "metrics": {"host": "127.0.0.1", "port": 0},
            "pipelines": [base],
        }
    )
    return Engine(settings, KafkaClients(settings.kafka))


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Engine], None]]:
    tasks: list[tuple[Engine, asyncio.Task[None]]] = []

    def start(engine: Engine) -> None:
        tasks.append((engine, asyncio.create_task(engine.run())))

    yield start
    for engine, task in tasks:
        engine.request_stop()
        await asyncio.wait_for(task, 30)


async def test_rejected_message_dead_lettered_with_error_headers(
    kafka_bootstrap: str, topics: dict[str, str], running: Any
) -> None:
    """A rejected message lands on the dead-letter topic with its payload and error headers."""
    running(
        make_engine(kafka_bootstrap, topics, validators=[{"id": "no-x", "plugin": "engine_plugins:RejectX"}])
    )
    await produce(kafka_bootstrap, topics["in"], b"aXb", b"fine")
    dead = (await read(kafka_bootstrap, topics["dlq"], 1))[0]
    h = decode_headers(dead.headers)
    assert dead.value == b"aXb"
    assert {k: h[k] for k in (Header.ERROR_STAGE, Header.ERROR_CODE, Header.ERROR_PLUGIN)} == {
        Header.ERROR_STAGE: "validate",
        Header.ERROR_CODE: "contains-x",
        Header.ERROR_PLUGIN: "no-x",
    }
    assert (h[Header.ORIGINAL_TOPIC], h[Header.ORIGINAL_PARTITION], h[Header.ORIGINAL_OFFSET]) == (
        topics["in"],
        "0",
        "0",
    )
    assert [r.value for r in await read(kafka_bootstrap, topics["out"], 1)] == [b"fine"]


async def test_retriable_error_backs_off_then_dead_letters(
    kafka_bootstrap: str, topics: dict[str, str], running: Any
) -> None:
    """A retriable transport error is retried with backoff up to max_attempts, then dead-lettered."""
    engine = make_engine(
        kafka_bootstrap,
        topics,
        transformers=[{"id": "f", "plugin": "engine_plugins:Flaky"}],
        retry={"max_attempts": 4, "initial_backoff_ms": 20, "max_backoff_ms": 100},
    )
    running(engine)
    await produce(kafka_bootstrap, topics["in"], b"FLAKY", b"after")
    dead = (await read(kafka_bootstrap, topics["dlq"], 1))[0]
    assert decode_headers(dead.headers)[Header.ERROR_CODE] == "upstream-down"
    assert [r.value for r in await read(kafka_bootstrap, topics["out"], 1)] == [b"after"]
    plugin = engine.workers[0].pipeline.registry.get_plugin("f")
    assert plugin.calls == 4  # type: ignore[union-attr]


async def test_event_records_published_to_audit_topic(
    kafka_bootstrap: str, topics: dict[str, str], running: Any
) -> None:
    """Hooks publish id-only event records for produced messages to the audit topic."""
    running(make_engine(kafka_bootstrap, topics, hooks={"message_produced": {"topic": topics["audit"]}}))
    await produce(kafka_bootstrap, topics["in"], b"secret-payload")
    record = orjson.loads((await read(kafka_bootstrap, topics["audit"], 1))[0].value)
    assert (record["event"], record["topic"], record["offset"], record["output_topic"]) == (
        "message_produced",
        topics["in"],
        0,
        topics["out"],
    )
    assert "secret-payload" not in orjson.dumps(record).decode()


async def test_metrics_health_and_readiness_endpoints(
    kafka_bootstrap: str, topics: dict[str, str], running: Any
) -> None:
    """/metrics counts per pipeline and stage, with lag; /healthz and /readyz answer 200 when running."""
    engine = make_engine(
        kafka_bootstrap, topics, validators=[{"id": "no-x", "plugin": "engine_plugins:RejectX"}]
    )
    running(engine)
    await produce(kafka_bootstrap, topics["in"], b"one", b"X")
    await read(kafka_bootstrap, topics["dlq"], 1)
    assert engine.http is not None
    base = f"http://127.0.0.1:{engine.http.port}"
    name = topics["in"]
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(300):
            ready = (await client.get("/readyz")).status_code
            text = (await client.get("/metrics")).text
            if ready == 200 and f'pyheart_messages_received_total{{pipeline="{name}"}} 2.0' in text:
                break
            await asyncio.sleep(0.1)
        health = (await client.get("/healthz")).status_code
    for line in (
        f'pyheart_messages_passed_total{{pipeline="{name}",stage="no-x"}} 1.0',
        f'pyheart_messages_rejected_total{{pipeline="{name}",stage="no-x"}} 1.0',
        f'pyheart_messages_produced_total{{pipeline="{name}",topic="{topics["out"]}"}} 1.0',
        f'pyheart_consumer_lag{{partition="0",pipeline="{name}",topic="{name}"}} 0.0',
        f'pyheart_processing_seconds_count{{pipeline="{name}"}} 2.0',
    ):
        assert line in text
    assert health == 200


async def test_exactly_once_pipeline_publishes_lifecycle_and_message_events(
    kafka_bootstrap: str, topics: dict[str, str], running: Any
) -> None:
    """An exactly-once pipeline publishes event records both inside and outside its transactions."""
    audit = {"topic": topics["audit"]}
    running(
        make_engine(
            kafka_bootstrap,
            topics,
            exactly_once=True,
            hooks={"pipeline_started": audit, "message_produced": audit},
        )
    )
    await produce(kafka_bootstrap, topics["in"], b"x")
    events = [orjson.loads(r.value)["event"] for r in await read(kafka_bootstrap, topics["audit"], 2)]
    assert events == ["pipeline_started", "message_produced"]
