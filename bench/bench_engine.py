"""Engine throughput against a real broker: bare aiokafka loop vs the engine, in one run.

One worker process, N pre-produced ~1.5 KB HL7 v2 ADT messages (no envelope headers, so the
engine derives them: MSH facts, patient key, ids, trace context) on a 4-partition topic:

  (a) a bare aiokafka consume -> produce loop with the same delivery settings (idempotent producer,
      acks=all, sends pipelined, acknowledgements awaited per batch, offsets committed after them):
      the ceiling of this client;
  (b) the engine with an empty pipeline (no validators, no transformers, one route), at-least-once;
  (c) the same pipeline with ``exactly_once: true`` (Kafka transactions).

Printed: sustained messages/s, p50/p99 latency from fetch to acknowledged output (per batch,
attributed to each message of the batch), CPU microseconds per message of this process (robust to
other load on the machine), and the ratios b/a (target >= 0.70) and c/b by both measures.

    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 .venv/bin/python bench/bench_engine.py [-n 100000]
    .venv/bin/python bench/bench_engine.py -n 10000          # quick; starts a local broker if needed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pyheart.broker.devkafka import create_topics, unique_name
from pyheart.broker.engine import Engine, KafkaClients, parse_settings

PARTITIONS = 4
BATCH = 500


def adt_message(i: int, size: int = 1500) -> bytes:
    """An ADT^A01 of about ``size`` bytes; patients cycle over 1,000 MRNs."""
    head = (
        f"MSH|^~\\&|EPIC|HOSP|LAB|HOSP|20240101120000||ADT^A01^ADT_A01|CTRL{i:08d}|P|2.5\r"
        f"EVN|A01|20240101120000\r"
        f"PID|1||MRN{i % 1000:06d}^^^HOSP^MR||DOE^JANE^Q||19800101|F|||1 MAIN ST^^TOWN^ST^12345\r"
        f"PV1|1|I|WARD^101^A|||||||MED\r"
    )
    body = head.encode()
    n = 0
    while len(body) < size:
        n += 1
        body += f"NTE|{n}||{'free text note ' * 4}\r".encode()
    return body[:size]


@dataclass
class Result:
    """One run: wall-clock messages/s, CPU microseconds per message, per-message latencies (s)."""

    rate: float
    cpu_us: float
    latencies: list[float]


def quantiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    if not samples:
        return 0.0, 0.0
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 * 1000, p99 * 1000


async def preproduce(bootstrap: str, topic: str, n: int, size: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for i in range(n):
            futures.append(await producer.send(topic, adt_message(i, size), key=f"k{i % 1000}".encode()))
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def bare_loop(bootstrap: str, topic: str, out: str, n: int) -> Result:
    """(a): consume -> produce -> await acks -> commit, with the engine's delivery settings."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=unique_name("bench-bare"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    await consumer.start()
    latencies: list[float] = []
    done = 0
    started: float | None = None
    cpu0 = 0.0
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            if not batches:
                continue
            t0 = time.perf_counter()
            if started is None:
                started, cpu0 = t0, time.process_time()
            futures = []
            offsets = {}
            count = 0
            for tp, records in batches.items():
                for rec in records:
                    futures.append(await producer.send(out, rec.value, key=rec.key, headers=rec.headers))
                    count += 1
                offsets[tp] = records[-1].offset + 1
            await asyncio.gather(*futures)
            await consumer.commit(offsets)
            latencies.extend([time.perf_counter() - t0] * count)
            done += count
        assert started is not None
        cpu = time.process_time() - cpu0
        return Result(n / (time.perf_counter() - started), cpu / n * 1e6, latencies)
    finally:
        await consumer.stop()
        await producer.stop()


async def engine_run(
    bootstrap: str, topic: str, out: str, n: int, *, exactly_once: bool
) -> tuple[float, list[float]]:
    """(b)/(c): the engine with an empty pipeline."""
    settings = parse_settings(
        {
            "kafka": {"bootstrap_servers": bootstrap, "max_batch": BATCH, "linger_ms": 5},
            "metrics": {"port": 0},
            "pipelines": [
                {
                    "name": unique_name("bench-eos" if exactly_once else "bench-alo"),
                    "input": {"topics": [topic], "format": "application/hl7-v2"},
                    "routes": [{"topic": out}],
                    "dead_letter": {"topic": out + "-dlq"},
                    "exactly_once": exactly_once,
                }
            ],
        }
    )
    engine = Engine(settings, KafkaClients(settings.kafka), instance_id=unique_name("bench"))
    worker = engine.workers[0]
    latencies: list[float] = []
    marks: list[float] = []
    cpu: list[float] = []
    account = worker._account

    def observe(items: Any, offsets: Any, seconds: float) -> None:
        account(items, offsets, seconds)
        now = time.perf_counter()
        if not marks:
            marks.append(now - seconds)
            cpu.append(time.process_time())
        marks.append(now)
        cpu.append(time.process_time())
        latencies.extend([seconds] * len(items))

    worker._account = observe  # type: ignore[method-assign]
    task = asyncio.create_task(engine.run())
    while len(latencies) < n:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    engine.request_stop()
    await task
    return Result(n / (marks[-1] - marks[0]), (cpu[-1] - cpu[0]) / n * 1e6, latencies)


@contextlib.contextmanager
def broker() -> Iterator[str]:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        yield env
        return
    from pyheart.broker.devkafka import LocalKafka

    with LocalKafka() as kafka:
        yield kafka.bootstrap_servers


async def main_async(bootstrap: str, n: int, size: int, repeats: int) -> None:
    topic = unique_name("bench-in")
    outs = [unique_name(f"bench-out-{x}") for x in "abc"]
    await create_topics(bootstrap, [topic, *outs, *(o + "-dlq" for o in outs)], partitions=PARTITIONS)
    t0 = time.perf_counter()
    await preproduce(bootstrap, topic, n, size)
    print(
        f"pre-produced {n} x {size} B in {time.perf_counter() - t0:.1f} s to {topic} ({PARTITIONS} partitions)"
    )
    results: dict[str, list[Result]] = {"a": [], "b": [], "c": []}
    for r in range(repeats):
        results["a"].append(await bare_loop(bootstrap, topic, outs[0], n))
        results["b"].append(await engine_run(bootstrap, topic, outs[1], n, exactly_once=False))
        results["c"].append(await engine_run(bootstrap, topic, outs[2], n, exactly_once=True))
        print(
            f"run {r + 1}: "
            + ", ".join(f"{k}={v[-1].rate:,.0f}/s ({v[-1].cpu_us:.0f} us CPU)" for k, v in results.items())
        )
    labels = {
        "a": "(a) bare aiokafka loop",
        "b": "(b) engine, empty pipeline",
        "c": "(c) engine, exactly-once",
    }
    rates = {k: statistics.median(x.rate for x in v) for k, v in results.items()}
    cpus = {k: statistics.median(x.cpu_us for x in v) for k, v in results.items()}
    print(f"\n{n} messages x {size} B, one worker, median of {repeats} run(s)")
    print(f"{'':30} {'msg/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/msg':>11} {'1/CPU msg/s':>12}")
    for k, label in labels.items():
        p50, p99 = quantiles([s for x in results[k] for s in x.latencies])
        print(
            f"{label:30} {rates[k]:>10,.0f} {p50:>8.1f} {p99:>8.1f} {cpus[k]:>11.1f} {1e6 / cpus[k]:>12,.0f}"
        )
    print(
        f"\nwall clock:  b/a = {rates['b'] / rates['a']:.2f} (target >= 0.70), c/b = {rates['c'] / rates['b']:.2f}"
    )
    print(
        f"client CPU:  b/a = {cpus['a'] / cpus['b']:.2f} (target >= 0.70), c/b = {cpus['b'] / cpus['c']:.2f}"
    )
    print("(CPU ratios are throughput ratios on a dedicated core; wall clock varies with machine load)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=100_000, help="messages (default 100000)")
    parser.add_argument("--size", type=int, default=1500, help="bytes per message (default 1500)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of a, b, c (median reported)")
    args = parser.parse_args()
    with broker() as bootstrap:
        asyncio.run(main_async(bootstrap, args.n, args.size, args.repeats))


if __name__ == "__main__":
    main()
