"""MLLP intake against a real broker: ACKs/s and ACK latency vs one aiokafka producer, in one run.

The listener runs in this process (idempotent producer, acks=all, ACK only after the broker's
acknowledgment); the senders run in a child process (so they do not share the listener's event
loop), each on its own connection, each waiting for the ACK before sending the next message - the
way MLLP senders work. Messages: the corpus ADT^A01 (ADT-A01-01, 8.6 KB, 24 segments) with a
unique MSH-10 each and PID-3 cycling over 1,000 patients (records spread over the partitions).

Measured in the same run, on the same topic settings:

  (a) one aiokafka producer, ``send_and_wait`` one record at a time: the floor of any design that
      stores a message before acknowledging it and has one message in flight;
  (b) one aiokafka producer, ``send`` pipelined in batches of 8 and awaited together: what eight
      messages in flight can get from one producer;
  (c) the MLLP listener with 1 sender, and (d) with 8 concurrent senders.

Printed: messages/s, ACK latency p50/p99 (send of the frame to the last byte of the ACK), the CPU
this process (producer or listener) spent per message, and the ratios c/a and d/b. On a shared
2-core machine the broker, the listener and the senders compete for the cores: read the ratios
and the CPU per message rather than the absolute rates.

    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 .venv/bin/python bench/bench_mllp.py
    .venv/bin/python bench/bench_mllp.py --quick       # a short run; starts a local broker if needed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from pyheart.adapters.mllp.framing import Frame, MllpDecoder, encode_frame
from pyheart.adapters.mllp.listener import MllpListener
from pyheart.broker.devkafka import create_topics, unique_name

CORPUS = (
    Path(os.environ.get("PYHEART_CORPUS", "/work/shared/corpus")) / "ms-fhir-converter/hl7v2/ADT-A01-01.hl7"
)
PARTITIONS = 4


def template() -> bytes:
    """The corpus ADT^A01 with CR terminators (a synthetic one when the corpus is not there)."""
    if CORPUS.exists():
        data = CORPUS.read_bytes().removeprefix(b"\xef\xbb\xbf")
        return data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    pid = b"PID|1||MRN0001^^^HOSP^MR||DOE^JANE||19800101|F|||1 MAIN ST^^TOWN^ST^12345\r"
    return (
        b"MSH|^~\\&|APP|FAC|R|RF|20240101120000||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r"
        + pid
        + b"OBX|1|TX|||"
        + (b"x" * 1200)
        + b"\r"
    )


def message(base: bytes, control_id: str, patient: int = 0) -> bytes:
    """``base`` with MSH-10 replaced (so the duplicate window does not collapse messages) and PID-3.1
    set to one of 1,000 patients (so records spread over partitions as a real feed's do)."""
    segments = base.split(b"\r")
    for i, segment in enumerate(segments):
        fields = segment.split(b"|")
        if fields[0] == b"MSH":
            fields[9] = control_id.encode()
        elif fields[0] == b"PID" and len(fields) > 3:
            components = fields[3].split(b"~")[0].split(b"^")
            components[0] = f"MRN{patient % 1000:06d}".encode()
            fields[3] = b"^".join(components)
        segments[i] = b"|".join(fields)
    return b"\r".join(segments)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --------------------------------------------------------------------------------------- sender side
async def one_sender(port: int, prefix: str, count: int, latencies: list[float]) -> None:
    base = template()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    decoder = MllpDecoder()
    try:
        for n in range(count):
            frame = encode_frame(message(base, f"{prefix}{n}", hash((prefix, n))))
            started = time.perf_counter()
            writer.write(frame)
            await writer.drain()
            got = False
            while not got:
                data = await reader.read(65_536)
                if not data:
                    raise ConnectionError("listener closed the connection")
                for event in decoder.feed(data):
                    if isinstance(event, Frame):
                        if b"|AA|" not in event.payload:
                            raise RuntimeError("negative acknowledgment")
                        got = True
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def senders(port: int, concurrency: int, count: int, run_id: str) -> dict[str, Any]:
    latencies: list[float] = []
    per = count // concurrency
    started = time.perf_counter()
    await asyncio.gather(*(one_sender(port, f"{run_id}-{i}-", per, latencies) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"count": len(latencies), "elapsed": elapsed, "latencies": latencies}


def client_main(port: int, concurrency: int, count: int, run_id: str) -> None:
    result = asyncio.run(senders(port, concurrency, count, run_id))
    sys.stdout.write(json.dumps(result))


# --------------------------------------------------------------------------------------- listener side
async def run_senders(port: int, concurrency: int, count: int, run_id: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        str(port),
        str(concurrency),
        str(count),
        run_id,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"sender process failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


async def producer_baseline(bootstrap: str, topic: str, count: int, pipelined: int) -> dict[str, Any]:
    """One idempotent acks=all producer: ``pipelined`` records in flight, awaited together."""
    base = template()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0)
    await producer.start()
    latencies: list[float] = []
    try:
        await asyncio.gather(
            *[await producer.send(topic, message(base, f"w{n}"), key=b"w") for n in range(100)]
        )
        started = time.perf_counter()
        for n in range(0, count, pipelined):
            t0 = time.perf_counter()
            futures = [
                await producer.send(
                    topic, message(base, f"p{n + i}", n + i), key=f"k{(n + i) % 1000}".encode()
                )
                for i in range(pipelined)
            ]
            await asyncio.gather(*futures)
            latencies += [time.perf_counter() - t0] * pipelined
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return {"count": len(latencies), "elapsed": elapsed, "latencies": latencies}


def summary(name: str, result: dict[str, Any]) -> dict[str, float]:
    rate = result["count"] / result["elapsed"]
    lat = result["latencies"]
    row = {"rate": rate, "p50_ms": percentile(lat, 0.50) * 1000, "p99_ms": percentile(lat, 0.99) * 1000}
    cpu = (
        f"   this process {result['cpu_us'] / result['count']:5.0f} us CPU/msg" if "cpu_us" in result else ""
    )
    print(f"  {name:<44} {rate:7.0f} msg/s   p50 {row['p50_ms']:6.2f} ms   p99 {row['p99_ms']:6.2f} ms{cpu}")
    return row


async def with_cpu(run: Any) -> dict[str, Any]:
    """``await run()`` plus the CPU time (user + system) this process spent meanwhile."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    result: dict[str, Any] = await run()
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_us"] = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1e6
    return result


@contextlib.contextmanager
def broker() -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    from pyheart.broker.devkafka import provide_kafka

    with provide_kafka() as (_choice, bootstrap):
        yield bootstrap


async def bench(bootstrap: str, count: int, repeats: int) -> None:
    topic = unique_name("bench-mllp")
    await create_topics(bootstrap, [topic], partitions=PARTITIONS)
    size = len(template())
    print(
        f"MLLP intake benchmark: {count} messages of {size} B per measurement, best of {repeats}, {PARTITIONS} partitions"
    )
    listener = MllpListener({"port": 0, "bootstrap_servers": bootstrap, "topic": topic, "max_in_flight": 8})
    await listener.initialize()
    rows: dict[str, dict[str, float]] = {}
    try:
        await run_senders(listener.port, 1, 50, "warmup")  # connections, metadata, JIT of the broker
        measurements = {
            "a": (
                "(a) aiokafka send_and_wait, 1 in flight",
                lambda: producer_baseline(bootstrap, topic, count, 1),
            ),
            "b": (
                "(b) aiokafka send pipelined, 8 in flight",
                lambda: producer_baseline(bootstrap, topic, count, 8),
            ),
            "c": (
                "(c) MLLP listener, 1 sender",
                lambda: run_senders(listener.port, 1, count, f"c{time.time_ns()}"),
            ),
            "d": (
                "(d) MLLP listener, 8 senders",
                lambda: run_senders(listener.port, 8, count, f"d{time.time_ns()}"),
            ),
        }
        for key, (name, run) in measurements.items():
            best: dict[str, Any] | None = None
            for _ in range(repeats):
                result = await with_cpu(run)
                if best is None or result["count"] / result["elapsed"] > best["count"] / best["elapsed"]:
                    best = result
            assert best is not None
            rows[key] = summary(name, best)
    finally:
        await listener.cleanup()
    print(
        f"  ratio c/a (1 sender vs one producer, 1 in flight):  {rows['c']['rate'] / rows['a']['rate']:.2f}"
    )
    print(
        f"  ratio d/b (8 senders vs one producer, 8 in flight): {rows['d']['rate'] / rows['b']['rate']:.2f}"
    )
    print(
        f"  ratio d/c (8 senders vs 1 sender):                  {rows['d']['rate'] / rows['c']['rate']:.2f}"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        port, concurrency, count, run_id = sys.argv[2:6]
        client_main(int(port), int(concurrency), int(count), run_id)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--count", type=int, default=4000, help="messages per measurement")
    parser.add_argument("-r", "--repeats", type=int, default=3, help="runs per measurement (best is kept)")
    parser.add_argument("--quick", action="store_true", help="400 messages, one run each")
    args = parser.parse_args()
    count, repeats = (400, 1) if args.quick else (args.count, args.repeats)
    logging.getLogger("pyheart").setLevel(logging.WARNING)
    with broker() as bootstrap:
        asyncio.run(bench(bootstrap, count, repeats))


if __name__ == "__main__":
    main()
