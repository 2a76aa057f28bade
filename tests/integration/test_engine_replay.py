"""``pyheart replay`` against the real broker: ranges, filters, dry runs, DLQ re-drive, audit."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pyheart.broker.cli import main
from pyheart.broker.contracts import Header
from pyheart.broker.engine.config import KafkaSettings
from pyheart.broker.engine.envelope import decode_headers
from pyheart.broker.engine.replay import Selection, replay
from pyheart.broker.logs import configure_logging

pytestmark = [pytest.mark.kafka]

HERE = Path(__file__).parent.parent / "component"


@pytest.fixture(autouse=True)
def _plugins_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))


async def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, dict[str, str], int | None]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value, headers, ts in records:
            await producer.send_and_wait(
                topic, value, headers=[(k, v.encode()) for k, v in headers.items()], timestamp_ms=ts
            )
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, settle_s: float = 1.0) -> list[Any]:
    """Every record currently in ``topic`` (waits ``settle_s`` of quiet)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[Any] = []
    try:
        quiet = 0.0
        while quiet < settle_s:
            batches = await consumer.getmany(timeout_ms=200)
            got = [r for recs in batches.values() for r in recs]
            out.extend(got)
            quiet = 0.0 if got else quiet + 0.2
        return out
    finally:
        await consumer.stop()


@pytest.fixture
async def source(kafka_bootstrap: str, unique_name: Any, create_topics: Any) -> dict[str, Any]:
    """Ten records m0..m9 one second apart in time; even ones are ADT, odd ones ORU."""
    src, dst = unique_name("src"), unique_name("dst")
    await create_topics(src, dst)
    base = int(time.time() * 1000) - 60_000
    records = [
        (f"m{i}".encode(), {Header.MESSAGE_TYPE: "ADT" if i % 2 == 0 else "ORU"}, base + i * 1000)
        for i in range(10)
    ]
    await produce(kafka_bootstrap, src, records)
    return {"src": src, "dst": dst, "base": base, "kafka": KafkaSettings(bootstrap_servers=kafka_bootstrap)}


async def test_offset_range_replayed_with_replay_of_header(
    kafka_bootstrap: str, source: dict[str, Any]
) -> None:
    """Offsets 2..4 are re-sent, each carrying the coordinates it came from."""
    report = await replay(
        Selection(source["src"], from_offset=2, to_offset=4), kafka=source["kafka"], to_topic=source["dst"]
    )
    out = await read_all(kafka_bootstrap, source["dst"])
    assert report.sent == 3
    assert [(r.value, decode_headers(r.headers)[Header.REPLAY_OF]) for r in out] == [
        (b"m2", f"{source['src']}/0/2"),
        (b"m3", f"{source['src']}/0/3"),
        (b"m4", f"{source['src']}/0/4"),
    ]


async def test_time_range_replayed(kafka_bootstrap: str, source: dict[str, Any]) -> None:
    """A time range selects the records whose timestamps fall in it (inclusive)."""
    base = source["base"]
    await replay(
        Selection(source["src"], from_time_ms=base + 5000, to_time_ms=base + 7000),
        kafka=source["kafka"],
        to_topic=source["dst"],
    )
    assert [r.value for r in await read_all(kafka_bootstrap, source["dst"])] == [b"m5", b"m6", b"m7"]


async def test_header_filter(kafka_bootstrap: str, source: dict[str, Any]) -> None:
    """A header filter replays only the matching records."""
    await replay(
        Selection(source["src"], headers={Header.MESSAGE_TYPE: frozenset({"ORU"})}, to_offset=5),
        kafka=source["kafka"],
        to_topic=source["dst"],
    )
    assert [r.value for r in await read_all(kafka_bootstrap, source["dst"])] == [b"m1", b"m3", b"m5"]


async def test_dry_run_lists_and_sends_nothing(
    kafka_bootstrap: str, source: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run prints the coordinates it would replay and produces nothing."""
    code = await asyncio.to_thread(
        main,
        [
            "replay",
            "--bootstrap-servers",
            kafka_bootstrap,
            "--topic",
            source["src"],
            "--from-offset",
            "8",
            "--to-topic",
            source["dst"],
            "--dry-run",
        ],
    )
    configure_logging(logging.WARNING, io.StringIO())  # the CLI logged to stderr
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split()[0] for line in lines] == [f"{source['src']}/0/8", f"{source['src']}/0/9"]
    assert await read_all(kafka_bootstrap, source["dst"], settle_s=0.5) == []


async def test_replay_is_audit_logged(source: dict[str, Any]) -> None:
    """Every replay logs who (OS user), what range and where to."""
    stream = io.StringIO()
    configure_logging(logging.INFO, stream)
    try:
        await replay(
            Selection(source["src"], from_offset=0, to_offset=1),
            kafka=source["kafka"],
            to_topic=source["dst"],
        )
    finally:
        configure_logging(logging.WARNING, io.StringIO())
    finished = next(orjson.loads(x) for x in stream.getvalue().splitlines() if "replay.finished" in x)
    assert (finished["selection"], finished["target"], finished["count"]) == (
        f"{source['src']} offsets=0..1",
        f"topic:{source['dst']}",
        2,
    )
    assert finished["user"]


async def test_dead_letters_redriven_through_fixed_pipeline(
    kafka_bootstrap: str, unique_name: Any, create_topics: Any, tmp_path: Path
) -> None:
    """Dead letters replayed through the (fixed) pipeline reach its output without error headers."""
    tin, tout, tdlq = unique_name("in"), unique_name("out"), unique_name("dlq")
    await create_topics(tin, tout, tdlq)
    failure = {
        Header.ERROR_STAGE: "validate",
        Header.ERROR_CODE: "contains-x",
        Header.ORIGINAL_TOPIC: tin,
        Header.ORIGINAL_PARTITION: "0",
        Header.ORIGINAL_OFFSET: "7",
        Header.CONTENT_TYPE: "text/plain",
    }
    await produce(kafka_bootstrap, tdlq, [(b"aXb", failure, None)])
    config = tmp_path / "fixed.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": kafka_bootstrap},
                "pipelines": [
                    {
                        "name": "fixed",
                        "input": {"topics": [tin], "format": "text/plain"},
                        "transformers": [{"id": "up", "plugin": "engine_plugins:Upper"}],
                        "routes": [{"topic": tout}],
                        "dead_letter": {"topic": tdlq},
                    }
                ],
            }
        )
    )
    code = await asyncio.to_thread(
        main, ["replay", "-c", str(config), "--topic", tdlq, "--all", "--pipeline", "fixed"]
    )
    configure_logging(logging.WARNING, io.StringIO())  # the CLI logged to stderr
    out = await read_all(kafka_bootstrap, tout)
    h = decode_headers(out[0].headers)
    assert (code, [r.value for r in out]) == (0, [b"AXB"])
    assert h[Header.REPLAY_OF] == f"{tdlq}/0/0"
    assert not {Header.ERROR_CODE, Header.ERROR_STAGE, Header.ORIGINAL_OFFSET} & set(h)
