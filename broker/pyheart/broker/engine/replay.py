"""Replay: re-send records of a topic, selected by offsets or time (and headers), to a topic or a pipeline.

The operators' tool behind ``pyheart replay``. Re-driving a dead-letter topic after a fix is the
same operation: the dead-letter error headers are dropped, the record goes back through the
pipeline (or to its input topic), and every replayed record carries ``pyheart-replay-of`` naming
the coordinates it was re-sent from. ``dry_run`` lists what would be replayed (coordinates and
ids, never payloads). Every replay is audit-logged: who (the OS user), what (topic, partitions,
range, filters), where (target), how many.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from pyheart.broker.claimcheck import CLAIM_HEADERS
from pyheart.broker.contracts import Header
from pyheart.broker.engine.config import EngineSettings, KafkaSettings
from pyheart.broker.engine.envelope import ERROR_HEADERS, coordinates, decode_headers, encode_headers
from pyheart.broker.engine.kafka_io import KafkaClients, as_transport_error
from pyheart.broker.engine.pipeline import Pipeline
from pyheart.broker.errors import ConfigError, TransportError
from pyheart.broker.kafka_security import explain_failures
from pyheart.broker.logs import get_logger

_audit = get_logger("pyheart.audit")


def parse_time(text: str) -> int:
    """Epoch milliseconds from an ISO 8601 time (``2024-05-01T10:00:00Z``) or a number of ms."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"not an ISO 8601 time or epoch milliseconds: {text!r}") from None
    if moment.tzinfo is None:
        raise ConfigError(f"time {text!r} has no time zone (add Z or +01:00)")
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Selection:
    """Which records: a topic, optional partitions, an offset or time range, header filters."""

    topic: str
    partitions: tuple[int, ...] = ()
    from_offset: int | None = None
    to_offset: int | None = None  # inclusive
    from_time_ms: int | None = None
    to_time_ms: int | None = None  # inclusive
    headers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    limit: int | None = None

    def describe(self) -> str:
        """A one-line summary for audit logs and dry runs (no values of records)."""
        parts = [self.topic]
        if self.partitions:
            parts.append("partitions=" + ",".join(map(str, self.partitions)))
        if self.from_offset is not None or self.to_offset is not None:
            parts.append(
                f"offsets={self.from_offset if self.from_offset is not None else ''}..{self.to_offset if self.to_offset is not None else ''}"
            )
        if self.from_time_ms is not None or self.to_time_ms is not None:
            parts.append(f"time_ms={self.from_time_ms or ''}..{self.to_time_ms or ''}")
        for name, values in sorted(self.headers.items()):
            parts.append(f"{name}={'|'.join(sorted(values))}")
        if self.limit is not None:
            parts.append(f"limit={self.limit}")
        return " ".join(parts)

    def matches(self, headers: Mapping[str, str], timestamp: int) -> bool:
        """True when a record passes the time and header filters."""
        if self.from_time_ms is not None and timestamp < self.from_time_ms:
            return False
        if self.to_time_ms is not None and timestamp > self.to_time_ms:
            return False
        return all(headers.get(name) in values for name, values in self.headers.items())


@dataclass
class ReplayReport:
    """What a replay did."""

    selected: int = 0
    sent: int = 0
    dead_lettered: int = 0
    lines: list[str] = field(default_factory=list)


def parse_header_filters(items: Sequence[str]) -> dict[str, frozenset[str]]:
    """``["pyheart-message-type=ADT", "pyheart-trigger=A01,A04"]`` as a filter mapping."""
    out: dict[str, frozenset[str]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"header filter must be NAME=VALUE[,VALUE...]: {item!r}")
        out[name] = frozenset(value.split(","))
    return out


def _describe_record(rec: Any, headers: Mapping[str, str]) -> str:
    ids = [
        f"{label}={headers[h]}"
        for label, h in (
            ("id", Header.MESSAGE_ID),
            ("type", Header.MESSAGE_TYPE),
            ("trigger", Header.TRIGGER),
            ("control", Header.CONTROL_ID),
            ("error", Header.ERROR_CODE),
        )
        if h in headers
    ]
    return f"{coordinates(rec.topic, rec.partition, rec.offset)} ts={rec.timestamp} " + " ".join(ids)


async def _start_offsets(
    consumer: Any, tps: list[TopicPartition], sel: Selection
) -> dict[TopicPartition, int]:
    begin = await consumer.beginning_offsets(tps)
    start = {tp: begin[tp] for tp in tps}
    if sel.from_offset is not None:
        start = {tp: max(begin[tp], sel.from_offset) for tp in tps}
    if sel.from_time_ms is not None:
        found = await consumer.offsets_for_times(dict.fromkeys(tps, sel.from_time_ms))
        end = await consumer.end_offsets(tps)
        for tp in tps:
            at = found.get(tp)
            start[tp] = max(start[tp], at.offset if at is not None else end[tp])
    return start


async def replay(
    selection: Selection,
    *,
    kafka: KafkaSettings,
    to_topic: str | None = None,
    pipeline: Pipeline | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] | None = None,
) -> ReplayReport:
    """Replay ``selection`` into ``to_topic`` or through ``pipeline`` (exactly one, unless ``dry_run``)."""
    if (to_topic is None) == (pipeline is None):
        raise ConfigError("replay needs exactly one target: a topic or a pipeline")
    target = f"topic:{to_topic}" if to_topic else f"pipeline:{pipeline.name if pipeline else ''}"
    who = {"user": getpass.getuser(), "host": socket.gethostname()}
    _audit.info(
        "replay.started",
        operation="replay",
        selection=selection.describe(),
        target=target,
        dry_run=dry_run,
        **who,
    )
    report = ReplayReport()
    clients = KafkaClients(kafka)
    consumer = explain_failures(
        AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            **clients.security(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id=f"{kafka.client_id}-replay",
        ),
        kafka.bootstrap_servers,
        clients.security(),
        "kafka",
    )
    producer = None
    started_pipeline = False
    try:
        await consumer.start()
        producer = clients.producer(transactional_id=None, client_id=f"{kafka.client_id}-replay")
        await producer.start()
        if selection.topic not in await consumer.topics():
            raise ConfigError(f"topic '{selection.topic}' does not exist")
        available = await producer.partitions_for(selection.topic)  # type: ignore[attr-defined]
        if not available:
            raise ConfigError(f"topic '{selection.topic}' does not exist")
        wanted = sorted(selection.partitions or available)
        missing = sorted(set(wanted) - set(available))
        if missing:
            raise ConfigError(f"topic '{selection.topic}' has no partition {missing[0]}")
        tps = [TopicPartition(selection.topic, p) for p in wanted]
        consumer.assign(tps)
        start = await _start_offsets(consumer, tps, selection)
        end = await consumer.end_offsets(tps)
        stop = {
            tp: end[tp] if selection.to_offset is None else min(end[tp], selection.to_offset + 1)
            for tp in tps
        }
        for tp in tps:
            consumer.seek(tp, start[tp])
        open_tps = {tp for tp in tps if start[tp] < stop[tp]}
        if not dry_run and pipeline is not None:
            await pipeline.start()
            started_pipeline = True
        while open_tps and (selection.limit is None or report.selected < selection.limit):
            batches = await consumer.getmany(*open_tps, timeout_ms=1000, max_records=500)
            futures: list[asyncio.Future[Any]] = []
            for tp, records in batches.items():
                for rec in records:
                    if rec.offset >= stop[tp]:
                        open_tps.discard(tp)
                        break
                    if selection.to_time_ms is not None and rec.timestamp > selection.to_time_ms:
                        open_tps.discard(tp)
                        break
                    headers = decode_headers(rec.headers)
                    if not selection.matches(headers, rec.timestamp):
                        continue
                    if selection.limit is not None and report.selected >= selection.limit:
                        break
                    report.selected += 1
                    line = _describe_record(rec, headers)
                    report.lines.append(line)
                    if echo is not None:
                        echo(line)
                    if dry_run:
                        continue
                    futures.extend(await _resend(producer, rec, headers, to_topic, pipeline, report))
                if records and records[-1].offset + 1 >= stop[tp]:
                    open_tps.discard(tp)
            if futures:
                await asyncio.wait(futures)
                failed = [f.exception() for f in futures if f.exception() is not None]
                if failed:
                    raise as_transport_error(failed[0])  # type: ignore[arg-type]
            if not batches:
                positions = {tp: await consumer.position(tp) for tp in open_tps}
                open_tps = {tp for tp in open_tps if positions[tp] < stop[tp]}
    except TransportError:
        raise
    finally:
        if producer is not None:
            await producer.stop()
        await consumer.stop()
        if started_pipeline and pipeline is not None:
            await pipeline.stop()
        _audit.info(
            "replay.finished",
            operation="replay",
            selection=selection.describe(),
            target=target,
            dry_run=dry_run,
            count=report.selected,
            **who,
        )
    return report


async def _resend(
    producer: Any,
    rec: Any,
    headers: dict[str, str],
    to_topic: str | None,
    pipeline: Pipeline | None,
    report: ReplayReport,
) -> list[asyncio.Future[Any]]:
    origin = coordinates(rec.topic, rec.partition, rec.offset)
    clean = {k: v for k, v in headers.items() if k not in ERROR_HEADERS}
    clean[Header.REPLAY_OF] = origin
    if to_topic is not None:
        report.sent += 1
        return [await producer.send(to_topic, rec.value, key=rec.key, headers=encode_headers(clean))]
    assert pipeline is not None
    message = pipeline.to_message(
        rec.topic, rec.partition, rec.offset, rec.value, rec.key, encode_headers(clean)
    )
    outcome = pipeline.process(message)
    if outcome.failure is not None:
        report.dead_lettered += 1
        dead = dict(message.headers)
        dead.update(outcome.failure.headers(rec.topic, rec.partition, rec.offset))
        dead[Header.REPLAY_OF] = origin
        dead.update({k: v for k, v in clean.items() if k in CLAIM_HEADERS})  # rec.value is the claim
        return [
            await producer.send(
                pipeline.settings.dead_letter.topic, rec.value, key=rec.key, headers=encode_headers(dead)
            )
        ]
    futures = []
    for out in outcome.outputs:
        hdrs = dict(out.message.headers)
        hdrs[Header.REPLAY_OF] = origin
        futures.append(
            await producer.send(out.topic, out.message.payload, key=out.key, headers=encode_headers(hdrs))
        )
        report.sent += 1
    return futures


def pipeline_for(settings: EngineSettings, name: str, env_paths: set[str] | None = None) -> Pipeline:
    """The named pipeline of a configuration, loaded (plugins registered, not yet started)."""
    index = next((i for i, p in enumerate(settings.pipelines) if p.name == name), None)
    if index is None:
        settings.pipeline(name)  # raises, naming the known pipelines
        raise AssertionError  # pragma: no cover
    return Pipeline(
        settings.pipelines[index], env_paths, index=index, claim_check=settings.claim_check_store()
    )


__all__ = ["ReplayReport", "Selection", "parse_header_filters", "parse_time", "pipeline_for", "replay"]
