"""The engine's delivery semantics against the real broker, with worker processes killed and stopped.

Workers run as ``python -m pyheart.broker.cli run -c CONFIG`` subprocesses (the test plugins are on
their ``PYTHONPATH``); outputs are read back with plain aiokafka consumers.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

pytestmark = [pytest.mark.kafka]

PLUGINS = Path(__file__).parent.parent / "component"


def write_config(path: Path, bootstrap: str, **pipeline: Any) -> Path:
    base: dict[str, Any] = {
        "name": pipeline.pop("name"),
        "input": {"topics": [pipeline.pop("topic")], "format": "text/plain"},
        "routes": [{"topic": pipeline.pop("out")}],
        "dead_letter": {"topic": pipeline.pop("dlq")},
        "key": {"strategy": "input"},
        # ~1 ms per message keeps 2,000 messages in flight long enough to kill a worker mid-stream
        "transformers": [{"id": "slow", "plugin": "engine_plugins:Slow", "config": {"ms": 1}}],
    }
    base.update(pipeline)
    doc = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 500,
            "max_batch": 20,
            "transaction_timeout_ms": 10000,
        },
        "metrics": {"port": 0},
        "pipelines": [base],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


class Worker:
    """A ``pyheart run`` subprocess whose JSON log lines go to a file."""

    def __init__(self, config: Path, log: Path, instance: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")]))
        self.log = log
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyheart.broker.cli", "run", "-c", str(config), "--instance-id", instance],
            stdout=self._fh,
            stderr=self._fh,
            env=env,
        )

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_bytes().splitlines():
            if line.startswith(b"{"):
                out.append(orjson.loads(line))
        return out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._fh.close()


@pytest.fixture
def workers() -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(config: Path, log: Path, instance: str = "w1") -> Worker:
        w = Worker(config, log, instance)
        started.append(w)
        return w

    yield start
    for w in started:
        w.close()


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=v) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Any]], bool],
    *,
    read_committed: bool = False,
    limit_s: float = 60.0,
    watch: Worker | None = None,
) -> list[Any]:
    """Every record of ``topic`` from the start, until ``done(records)`` holds (or fail)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )
    await consumer.start()
    records: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    try:
        while not done(records):
            assert loop.time() < deadline, f"{topic}: condition not met, {len(records)} records"
            if watch is not None:
                assert watch.proc.poll() is None, f"worker exited with {watch.proc.returncode}"
            batches = await consumer.getmany(timeout_ms=200)
            for recs in batches.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        total = 0
        for p in range(partitions):
            total += await consumer.committed(TopicPartition(topic, p)) or 0
        return total
    finally:
        await consumer.stop()


def values(n: int, prefix: str = "m") -> list[bytes]:
    return [f"{prefix}{i:05d}".encode() for i in range(n)]


async def test_at_least_once_survives_kill9(
    kafka_bootstrap: str, unique_name: Any, create_topics: Any, tmp_path: Path, workers: Any
) -> None:
    """Kill -9 a worker mid-stream and restart it: every input has its output."""
    tin, tout, tdlq, group = (unique_name(x) for x in ("in", "out", "dlq", "alo"))
    await create_topics(tin, tout, tdlq, partitions=2)
    inputs = values(2000)
    await produce(kafka_bootstrap, tin, inputs)
    cfg = write_config(tmp_path / "c.yaml", kafka_bootstrap, name=group, topic=tin, out=tout, dlq=tdlq)
    first = workers(cfg, tmp_path / "w1.log")
    seen = await read_until(kafka_bootstrap, tout, lambda r: len(r) >= 200, watch=first)
    first.kill()
    assert len(seen) < len(inputs)
    workers(cfg, tmp_path / "w2.log")
    expected = set(inputs)
    out = await read_until(kafka_bootstrap, tout, lambda r: expected <= {x.value for x in r})
    assert {x.value for x in out} == expected


async def test_exactly_once_survives_kill9(
    kafka_bootstrap: str, unique_name: Any, create_topics: Any, tmp_path: Path, workers: Any
) -> None:
    """Kill -9 an exactly-once worker and restart it: a read_committed reader sees each output once."""
    tin, tout, tdlq, group = (unique_name(x) for x in ("in", "out", "dlq", "eos"))
    await create_topics(tin, tout, tdlq, partitions=2)
    inputs = values(2000)
    await produce(kafka_bootstrap, tin, inputs)
    cfg = write_config(
        tmp_path / "c.yaml", kafka_bootstrap, name=group, topic=tin, out=tout, dlq=tdlq, exactly_once=True
    )
    first = workers(cfg, tmp_path / "w1.log", instance="eos-1")
    seen = await read_until(kafka_bootstrap, tout, lambda r: len(r) >= 200, watch=first)
    first.kill()
    assert len(seen) < len(inputs)
    workers(cfg, tmp_path / "w2.log", instance="eos-1")
    out = await read_until(
        kafka_bootstrap, tout, lambda r: len({x.value for x in r}) >= len(inputs), read_committed=True
    )
    await asyncio.sleep(1.0)  # let any duplicate that would be visible arrive
    out = await read_until(kafka_bootstrap, tout, lambda r: len(r) >= len(out), read_committed=True)
    counts = collections.Counter(x.value for x in out)
    assert (set(counts), max(counts.values())) == (set(inputs), 1)


async def test_sigterm_finishes_commits_and_cleans_up(
    kafka_bootstrap: str, unique_name: Any, create_topics: Any, tmp_path: Path, workers: Any
) -> None:
    """SIGTERM: the worker commits what it processed, leaves the group, cleans up plugins, exits 0."""
    tin, tout, tdlq, group = (unique_name(x) for x in ("in", "out", "dlq", "term"))
    await create_topics(tin, tout, tdlq, partitions=2)
    inputs = values(100)
    await produce(kafka_bootstrap, tin, inputs)
    cfg = write_config(
        tmp_path / "c.yaml",
        kafka_bootstrap,
        name=group,
        topic=tin,
        out=tout,
        dlq=tdlq,
        transformers=[{"id": "up", "plugin": "engine_plugins:Upper"}],
    )
    w = workers(cfg, tmp_path / "w.log")
    await read_until(kafka_bootstrap, tout, lambda r: len(r) >= len(inputs), watch=w)
    assert w.terminate() == 0
    assert await committed(kafka_bootstrap, group, tin, 2) == len(inputs)
    events = [(e["event"], e.get("plugin_id")) for e in w.events()]
    assert ("plugin.cleanup", "up") in events
    assert events.index(("plugin.cleanup", "up")) > events.index(("pipeline.started", None))


async def test_two_workers_split_partitions_and_survive_one_kill(
    kafka_bootstrap: str, unique_name: Any, create_topics: Any, tmp_path: Path, workers: Any
) -> None:
    """Two workers share the partitions; after one is killed the other finishes every message."""
    tin, tout, tdlq, group = (unique_name(x) for x in ("in", "out", "dlq", "scale"))
    await create_topics(tin, tout, tdlq, partitions=4)
    cfg = write_config(tmp_path / "c.yaml", kafka_bootstrap, name=group, topic=tin, out=tout, dlq=tdlq)
    a = workers(cfg, tmp_path / "a.log", instance="a")
    b = workers(cfg, tmp_path / "b.log", instance="b")

    def assigned(w: Worker) -> set[str]:
        events = [e for e in w.events() if e["event"] in ("pipeline.assigned", "pipeline.revoked")]
        return (
            set(events[-1]["partitions"]) if events and events[-1]["event"] == "pipeline.assigned" else set()
        )

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not (assigned(a) and assigned(b) and len(assigned(a) | assigned(b)) == 4):
        assert loop.time() < deadline, "the two workers did not split the partitions"
        await asyncio.sleep(0.2)
    assert not assigned(a) & assigned(b)
    inputs = values(2000)
    await produce(kafka_bootstrap, tin, inputs)
    await read_until(kafka_bootstrap, tout, lambda r: len(r) >= 200, watch=b)
    a.kill()
    expected = set(inputs)
    out = await read_until(kafka_bootstrap, tout, lambda r: expected <= {x.value for x in r}, watch=b)
    assert {x.value for x in out} == expected
