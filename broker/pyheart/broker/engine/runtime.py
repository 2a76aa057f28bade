"""The pipeline runtime: consume, process, produce, commit; retries, dead letters, hooks, shutdown.

One :class:`PipelineWorker` per pipeline: one consumer group, one producer, one
:class:`~pyheart.broker.engine.pipeline.Pipeline` (its own PluginRegistry). Each loop iteration
fetches a batch, processes every record (pure CPU), sends every output without waiting, then awaits
the acknowledgements together and only then commits the batch's offsets:

- at-least-once (default): idempotent producer, ``acks=all``; a failed send is retried with
  exponential backoff and jitter when the error is retriable (bounded), then the input goes to the
  dead-letter topic; offsets are committed after every output (or dead letter) is acknowledged.
- ``exactly_once: true``: the batch's outputs, dead letters, event records and input offsets go in
  one Kafka transaction (``send_offsets_to_transaction``). A failed batch is aborted, the consumer
  rewinds to the batch start and the batch is retried (bounded, with backoff), then the pipeline stops.

A rebalance waits for the batch in flight (``PipelineWorker.idle``) so processed offsets are
committed before partitions are revoked. :meth:`Engine.request_stop` (SIGTERM/SIGINT) stops
fetching; the batch in flight finishes and commits, the consumer leaves the group and the plugins
are cleaned up.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import fcntl
import functools
import os
import random
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from pyheart.broker.contracts import Header, Message
from pyheart.broker.engine.adapters import AdapterHost
from pyheart.broker.engine.config import EngineSettings, KafkaSettings
from pyheart.broker.engine.envelope import claim_headers, encode_headers
from pyheart.broker.engine.hooks import PipelineEvent
from pyheart.broker.engine.kafka_io import (
    ClientFactory,
    ConsumerLike,
    ConsumerRebalanceListener,
    ProducerLike,
    TopicPartition,
    as_transport_error,
)
from pyheart.broker.engine.metrics import EngineMetrics, HttpEndpoint
from pyheart.broker.engine.pipeline import Failure, Outcome, Output, Pipeline
from pyheart.broker.errors import Action, PyHeartError, Stage, TransportError, action_for
from pyheart.broker.logs import get_logger

_log = get_logger("pyheart.engine")


_HELD_SLOTS: list[IO[str]] = []


def claim_instance_id(lock_dir: Path, host: str | None = None) -> tuple[str, IO[str]]:
    """Claim the lowest free slot on this host: ``(f"{host}-{slot}", open lock file)``.

    A slot is held by an exclusive ``flock`` on ``<lock_dir>/<host>-<slot>.lock`` for as long as the
    returned file stays open; the kernel releases it when the process dies, kill -9 included.
    """
    host = host or socket.gethostname() or "pyheart"
    lock_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(4096):
        handle = (lock_dir / f"{host}-{slot}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return f"{host}-{slot}", handle
    raise TransportError(f"no free instance slot under {lock_dir}", retriable=False)


@functools.cache
def default_instance_id() -> str:
    """This process's id in transactional ids: ``<host>-<slot>`` (see :func:`claim_instance_id`).

    Several workers on one host get different ids without configuration, so exactly-once workers
    scale out by starting another process; a worker restarted after a crash takes the freed slot
    again, so its transactional producer fences the dead one's open transaction at once.
    ``$PYHEART_RUNTIME_DIR`` (default ``$XDG_RUNTIME_DIR`` or the temp dir) holds the lock files.
    """
    base = os.environ.get("PYHEART_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    instance, handle = claim_instance_id(Path(base) / "pyheart-instances")
    _HELD_SLOTS.append(handle)  # held until the process exits
    atexit.register(handle.close)  # closed explicitly at exit (the kernel releases it on a crash anyway)
    return instance


def _failed_future(exc: BaseException) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_exception(exc)
    return fut


@dataclass(slots=True)
class _Item:
    """One input record in flight."""

    record: Any
    outcome: Outcome
    #: (output or None for the dead letter, ack future)
    sends: list[tuple[Output | None, asyncio.Future[Any]]] = field(default_factory=list)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit what was processed before partitions go; raise the partition events."""

    def __init__(self, worker: PipelineWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        w = self._worker
        # Wait for the batch in flight: it commits its offsets before it ends.
        await w.idle.wait()
        if revoked:
            _log.info(
                "pipeline.revoked",
                pipeline=w.name,
                partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in revoked),
            )
            await w.emit_partitions("partitions_revoked", revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        w = self._worker
        _log.info(
            "pipeline.assigned",
            pipeline=w.name,
            partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
        )
        w.assigned = True
        await w.emit_partitions("partitions_assigned", assigned)


class PipelineWorker:
    """Runs one pipeline against a :class:`~pyheart.broker.engine.kafka_io.ClientFactory`."""

    def __init__(
        self,
        pipeline: Pipeline,
        kafka: KafkaSettings,
        clients: ClientFactory,
        metrics: EngineMetrics,
        *,
        instance_id: str | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.name = pipeline.name
        self.kafka = kafka
        self.clients = clients
        self.metrics = metrics
        self.instance_id = instance_id or default_instance_id()
        self.eos = self.settings.exactly_once
        #: Set while no batch is in flight (a rebalance waits for it).
        self.idle = asyncio.Event()
        self.idle.set()
        self.state = "created"
        self.assigned = False
        self._stop = asyncio.Event()
        self._consumer: ConsumerLike | None = None
        self._producer: ProducerLike | None = None
        self._side_producer: ProducerLike | None = None
        self._eos_attempt = 0
        self._rand = random.Random()  # noqa: S311 - jitter, not cryptography
        m, n = metrics, self.name
        self._m_received = m.received.labels(n)
        self._m_latency = m.latency.labels(n)
        self._m_produced: dict[str, Any] = {}

    # ----------------------------------------------------------------------------------- lifecycle
    @property
    def transactional_id(self) -> str | None:
        """The producer's transactional id (exactly-once pipelines only)."""
        return f"pyheart-{self.settings.group}-{self.instance_id}" if self.eos else None

    async def start(self) -> None:
        """Initialise plugins, start the producer and the consumer, join the group."""
        await self.pipeline.start()
        client_id = f"{self.kafka.client_id}-{self.name}"
        try:
            self._producer = self.clients.producer(
                transactional_id=self.transactional_id, client_id=client_id
            )
            await self._producer.start()
            self._consumer = self.clients.consumer(
                group_id=self.settings.group, read_committed=self.eos, client_id=client_id
            )
            await self._consumer.start()
            self._consumer.subscribe(list(self.settings.input.topics), listener=_Rebalance(self))
        except BaseException:
            await self._close_clients()
            await self.pipeline.stop()
            raise
        self.state = "running"
        _log.info(
            "pipeline.started",
            pipeline=self.name,
            group_id=self.settings.group,
            topics=list(self.settings.input.topics),
            transactional=self.eos,
        )
        await self._emit_simple("pipeline_started")

    def request_stop(self) -> None:
        """Stop fetching; the batch in flight finishes and commits."""
        self._stop.set()

    async def run(self) -> None:
        """Process batches until :meth:`request_stop`."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        k = self.kafka
        try:
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=k.fetch_timeout_ms, max_records=k.max_batch)
                if batches:
                    self.idle.clear()
                    try:
                        await self._batch(batches)
                    finally:
                        self.idle.set()
        except BaseException:
            self.state = "failed"
            raise

    async def close(self) -> None:
        """Leave the group, flush and stop the producer, clean up plugins; idempotent."""
        if self.state == "stopped":
            return
        ran = self.state in ("running", "failed")
        failed = self.state == "failed"
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            if ran:
                with contextlib.suppress(Exception):
                    await self.emit_partitions("partitions_revoked", consumer.assignment())
            with contextlib.suppress(Exception):
                await consumer.stop()  # commits nothing more (each batch committed) and leaves the group
        if ran:
            with contextlib.suppress(Exception):
                await self._emit_simple("pipeline_stopped")
        await self._close_clients()
        await self.pipeline.stop()
        self.state = "failed" if failed else "stopped"
        if ran:
            _log.info("pipeline.stopped", pipeline=self.name, outcome="failure" if failed else "success")

    async def _close_clients(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        side, self._side_producer = self._side_producer, None
        if side is not None:
            with contextlib.suppress(Exception):
                await side.stop()
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()  # flushes

    # ----------------------------------------------------------------------------------- batches
    async def _batch(self, batches: dict[TopicPartition, list[Any]]) -> None:
        if not self.eos:
            await self._batch_at_least_once(batches)
            return
        try:
            await self._batch_exactly_once(batches)
        except (TransportError, PyHeartError) as exc:
            # The transaction was aborted and the consumer rewound: the next fetch retries the batch.
            self._eos_attempt += 1
            if action_for(exc) is not Action.RETRY or self._eos_attempt >= self.settings.retry.max_attempts:
                raise
            delay = self.settings.retry.delay_s(self._eos_attempt, self._rand.random())
            self.metrics.retries.labels(self.name, Stage.PRODUCE.value).inc()
            _log.warning(
                "pipeline.retry",
                pipeline=self.name,
                stage=Stage.PRODUCE.value,
                attempt=self._eos_attempt,
                delay_s=round(delay, 3),
                error_code=exc.code,
            )
            await asyncio.sleep(delay)
        else:
            self._eos_attempt = 0

    async def _batch_at_least_once(self, batches: dict[TopicPartition, list[Any]]) -> None:
        consumer = self._consumer
        assert consumer is not None
        t0 = time.perf_counter()
        items, offsets, extra = await self._process_and_send(batches)
        await self._await_acks(items, transactional=False)
        extra.extend(await self._after_acks(items))
        await self._await_extra(extra)
        try:
            await consumer.commit(offsets)
        except Exception as exc:
            # Partitions moved during a rebalance: the new owner re-processes (at-least-once).
            _log.warning(
                "pipeline.commit", pipeline=self.name, outcome="failure", error_type=type(exc).__name__
            )
        self._account(items, offsets, time.perf_counter() - t0)

    async def _batch_exactly_once(self, batches: dict[TopicPartition, list[Any]]) -> None:
        consumer, producer = self._consumer, self._producer
        assert consumer is not None
        assert producer is not None
        t0 = time.perf_counter()
        await producer.begin_transaction()
        try:
            items, offsets, extra = await self._process_and_send(batches)
            await self._await_acks(items, transactional=True)
            extra.extend(await self._after_acks(items))
            await self._await_extra(extra)
            await producer.send_offsets_to_transaction(offsets, self.settings.group)
            await producer.commit_transaction()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await producer.abort_transaction()
            for tp, records in batches.items():
                if records:
                    with contextlib.suppress(Exception):
                        consumer.seek(tp, records[0].offset)
            if isinstance(exc, Exception) and not isinstance(exc, PyHeartError):
                raise as_transport_error(exc) from None
            raise
        self._account(items, offsets, time.perf_counter() - t0)

    async def _process_and_send(
        self, batches: dict[TopicPartition, list[Any]]
    ) -> tuple[list[_Item], dict[TopicPartition, int], list[asyncio.Future[Any]]]:
        producer = self._producer
        assert producer is not None
        items: list[_Item] = []
        offsets: dict[TopicPartition, int] = {}
        extra: list[asyncio.Future[Any]] = []
        pipeline = self.pipeline
        send = producer.send
        for tp, records in batches.items():
            for rec in records:
                message = pipeline.to_message(
                    rec.topic, rec.partition, rec.offset, rec.value, rec.key, rec.headers
                )
                outcome = pipeline.process(message)
                if outcome.failure is not None and outcome.failure.action is Action.RETRY:
                    outcome = await self._retry(message, outcome)
                item = _Item(rec, outcome)
                items.append(item)
                if outcome.failure is not None:
                    item.sends.append((None, await self._send_dead_letter(rec, outcome)))
                else:
                    for out in outcome.outputs:
                        msg = out.message
                        try:
                            fut = await send(
                                out.topic, msg.payload, key=out.key, headers=encode_headers(msg.headers)
                            )
                        except Exception as exc:
                            fut = _failed_future(exc)
                        item.sends.append((out, fut))
                if outcome.events:
                    for event in outcome.events:
                        extra.extend(await self._emit(event))
            offsets[tp] = records[-1].offset + 1
        return items, offsets, extra

    async def _retry(self, message: Message, outcome: Outcome) -> Outcome:
        """Retry a retriable failure with backoff and jitter, bounded; then it dead-letters."""
        pipeline = self.pipeline
        retry = self.settings.retry
        attempt = 1
        while True:
            failure = outcome.failure
            if failure is None or failure.action is not Action.RETRY:
                return outcome
            if attempt >= retry.max_attempts:
                outcome.failure = replace(failure, action=Action.DEAD_LETTER)
                return outcome
            delay = retry.delay_s(attempt, self._rand.random())
            self.metrics.retries.labels(self.name, failure.stage.value).inc()
            _log.warning(
                "pipeline.retry",
                pipeline=self.name,
                stage=failure.stage.value,
                plugin_id=failure.plugin,
                attempt=attempt,
                delay_s=round(delay, 3),
                error_code=failure.code,
                message_id=message.headers.get(Header.MESSAGE_ID),
            )
            await asyncio.sleep(delay)
            attempt += 1
            outcome = pipeline.process(message)

    async def _send(self, producer: ProducerLike, out: Output) -> asyncio.Future[Any]:
        msg = out.message
        try:
            return await producer.send(
                out.topic, msg.payload, key=out.key, headers=encode_headers(msg.headers)
            )
        except Exception as exc:
            return _failed_future(exc)

    async def _send_dead_letter(self, rec: Any, outcome: Outcome) -> asyncio.Future[Any]:
        producer = self._producer
        assert producer is not None
        assert outcome.failure is not None
        headers = dict(outcome.message.headers)
        headers.update(outcome.failure.headers(rec.topic, rec.partition, rec.offset))
        # The dead letter carries the record's value as consumed: keep its claim, so replay resolves it.
        headers.update(claim_headers(rec.headers))
        try:
            return await producer.send(
                self.settings.dead_letter.topic, rec.value, key=rec.key, headers=encode_headers(headers)
            )
        except Exception as exc:
            return _failed_future(exc)

    async def _await_acks(self, items: list[_Item], *, transactional: bool) -> None:
        futures = [f for item in items for _, f in item.sends]
        if futures:
            await asyncio.wait(futures)
        for item in items:
            if any(f.exception() is not None for _, f in item.sends):
                if transactional:
                    exc = next(f.exception() for _, f in item.sends if f.exception() is not None)
                    raise as_transport_error(exc)  # type: ignore[arg-type]
                await self._recover(item)

    async def _recover(self, item: _Item) -> None:
        """Retry failed sends of one input (retriable errors, bounded), then dead-letter it."""
        producer = self._producer
        assert producer is not None
        retry = self.settings.retry
        attempt = 1
        while True:
            failed = [(out, f) for out, f in item.sends if f.exception() is not None]
            if not failed:
                return
            err = as_transport_error(failed[0][1].exception())  # type: ignore[arg-type]
            dead_letter_failed = any(out is None for out, _ in failed)
            retriable = action_for(err) is Action.RETRY
            if dead_letter_failed and (not retriable or attempt >= retry.max_attempts):
                # Nowhere left to put it: stop without committing; the record is redelivered.
                raise TransportError(
                    f"pipeline '{self.name}': dead-letter topic unavailable ({err.code})", retriable=False
                )
            if retriable and attempt < retry.max_attempts:
                delay = retry.delay_s(attempt, self._rand.random())
                self.metrics.retries.labels(self.name, Stage.PRODUCE.value).inc()
                _log.warning(
                    "pipeline.retry",
                    pipeline=self.name,
                    stage=Stage.PRODUCE.value,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    error_code=err.code,
                    error_type=getattr(err, "error_class", type(err).__name__),
                )
                await asyncio.sleep(delay)
                attempt += 1
                resent: list[tuple[Output | None, asyncio.Future[Any]]] = []
                for out, f in item.sends:
                    if f.exception() is None:
                        resent.append((out, f))
                    elif out is None:
                        resent.append((None, await self._send_dead_letter(item.record, item.outcome)))
                    else:
                        resent.append((out, await self._send(producer, out)))
                item.sends = resent
                await asyncio.wait([f for _, f in resent])
                continue
            # Not retriable, or retries exhausted: the input goes to the dead-letter topic.
            item.outcome.failure = Failure(
                Stage.PRODUCE,
                err.code,
                Action.DEAD_LETTER,
                None,
                getattr(err, "error_class", type(err).__name__),
            )
            item.outcome.outputs = []
            item.sends = [(None, await self._send_dead_letter(item.record, item.outcome))]
            await asyncio.wait([f for _, f in item.sends])

    # ----------------------------------------------------------------------------------- events
    async def _after_acks(self, items: list[_Item]) -> list[asyncio.Future[Any]]:
        p = self.pipeline
        want_produced = p.listens("message_produced")
        want_dead = p.listens("message_dead_lettered")
        extra: list[asyncio.Future[Any]] = []
        for item in items:
            failure = item.outcome.failure
            if failure is not None:
                _log.info(
                    "message.dead_lettered",
                    pipeline=self.name,
                    topic=item.record.topic,
                    partition=item.record.partition,
                    offset=item.record.offset,
                    message_id=item.outcome.message.headers.get(Header.MESSAGE_ID),
                    stage=failure.stage.value,
                    error_code=failure.code,
                    plugin_id=failure.plugin,
                    locations=list(failure.locations),
                )
            if not (want_produced or want_dead):
                continue
            for out, fut in item.sends:
                meta = fut.result()
                if out is None and want_dead and failure is not None:
                    event = p.event_for(
                        "message_dead_lettered",
                        item.outcome.message,
                        output_topic=self.settings.dead_letter.topic,
                        output_partition=getattr(meta, "partition", None),
                        output_offset=getattr(meta, "offset", None),
                        stage=failure.stage.value,
                        plugin=failure.plugin,
                        error_code=failure.code,
                    )
                    extra.extend(await self._emit(event))
                elif out is not None and want_produced:
                    event = p.event_for(
                        "message_produced",
                        item.outcome.message,
                        output_topic=out.topic,
                        output_partition=getattr(meta, "partition", None),
                        output_offset=getattr(meta, "offset", None),
                    )
                    extra.extend(await self._emit(event))
        return extra

    async def _emit(self, event: PipelineEvent, *, outside_batch: bool = False) -> list[asyncio.Future[Any]]:
        await self.pipeline.emit(event)
        topic = self.pipeline.event_topic(event.event)
        producer = self._producer
        if topic is None or producer is None:
            return []
        if outside_batch and self.eos:
            # Outside a batch there is no open transaction: use a plain idempotent producer.
            producer = await self._side()
        key = (event.message_id or event.pipeline).encode()
        try:
            fut = await producer.send(
                topic, event.to_record(), key=key, headers=[("content-type", b"application/json")]
            )
        except Exception as exc:
            return [_failed_future(exc)]
        return [fut]

    async def _await_extra(self, futures: list[asyncio.Future[Any]]) -> None:
        if not futures:
            return
        await asyncio.wait(futures)
        failed = [f for f in futures if f.exception() is not None]
        if failed:
            exc = failed[0].exception()
            _log.warning(
                "pipeline.event_record",
                pipeline=self.name,
                outcome="failure",
                count=len(failed),
                error_type=type(exc).__name__,
            )
            if self.eos:
                raise as_transport_error(exc)  # type: ignore[arg-type]

    async def _side(self) -> ProducerLike:
        if self._side_producer is None:
            self._side_producer = self.clients.producer(
                transactional_id=None, client_id=f"{self.kafka.client_id}-{self.name}-events"
            )
            await self._side_producer.start()
        return self._side_producer

    async def _emit_simple(self, name: str) -> None:
        if not self.pipeline.listens(name):
            return
        futures = await self._emit(PipelineEvent(event=name, pipeline=self.name), outside_batch=True)
        await self._await_extra(futures)

    async def emit_partitions(self, name: str, partitions: set[TopicPartition]) -> None:
        """Raise a partition event (from the rebalance listener)."""
        if not self.pipeline.listens(name):
            return
        event = PipelineEvent(
            event=name,
            pipeline=self.name,
            partitions=tuple(sorted(f"{tp.topic}/{tp.partition}" for tp in partitions)),
        )
        with contextlib.suppress(Exception):
            await self._await_extra(await self._emit(event, outside_batch=True))

    # ----------------------------------------------------------------------------------- metrics
    def _account(self, items: list[_Item], offsets: dict[TopicPartition, int], seconds: float) -> None:
        m, n = self.metrics, self.name
        self._m_received.inc(len(items))
        passed: collections.Counter[str] = collections.Counter()
        rejected: collections.Counter[str] = collections.Counter()
        dead: collections.Counter[tuple[str, str]] = collections.Counter()
        produced: collections.Counter[str] = collections.Counter()
        for item in items:
            outcome = item.outcome
            for stage, ok in outcome.stages:
                (passed if ok else rejected)[stage] += 1
            if outcome.failure is not None:
                dead[(outcome.failure.stage.value, outcome.failure.code)] += 1
            else:
                for out in outcome.outputs:
                    produced[out.topic] += 1
        for stage, count in passed.items():
            m.passed.labels(n, stage).inc(count)
        for stage, count in rejected.items():
            m.rejected.labels(n, stage).inc(count)
        for (stage, code), count in dead.items():
            m.dead_lettered.labels(n, stage, code).inc(count)
        for topic, count in produced.items():
            child = self._m_produced.get(topic)
            if child is None:
                child = self._m_produced[topic] = m.produced.labels(n, topic)
            child.inc(count)
        for _ in items:
            self._m_latency.observe(seconds)
        consumer = self._consumer
        if consumer is not None:
            for tp, next_offset in offsets.items():
                high = consumer.highwater(tp)
                if high is not None:
                    m.lag.labels(n, tp.topic, str(tp.partition)).set(max(0, high - next_offset))


class Engine:
    """Every pipeline of a configuration, with the metrics endpoint."""

    def __init__(
        self,
        settings: EngineSettings,
        clients: ClientFactory,
        *,
        env_paths: set[str] | None = None,
        instance_id: str | None = None,
        metrics: EngineMetrics | None = None,
        serve_metrics: bool = True,
        only: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or EngineMetrics()
        chosen = [(i, p) for i, p in enumerate(settings.pipelines) if not only or p.name in only]
        claim_check = settings.claim_check_store()
        self.workers = [
            PipelineWorker(
                Pipeline(p, env_paths, index=i, claim_check=claim_check),
                settings.kafka,
                clients,
                self.metrics,
                instance_id=instance_id,
            )
            for i, p in chosen
        ]
        self.adapters = AdapterHost([a for a in settings.adapters if not only], settings.kafka, env_paths)
        self.http: HttpEndpoint | None = None
        if serve_metrics and settings.metrics.enabled:
            self.http = HttpEndpoint(
                self.metrics,
                live=self.live,
                ready=self.ready,
                host=settings.metrics.host,
                port=settings.metrics.port,
            )
        self._stop = asyncio.Event()

    def live(self) -> bool:
        """No pipeline has failed."""
        return all(w.state != "failed" for w in self.workers)

    def ready(self) -> bool:
        """Every pipeline runs and has joined its group."""
        return all(w.state == "running" and w.assigned for w in self.workers)

    def request_stop(self) -> None:
        """Graceful stop of every pipeline (SIGTERM/SIGINT)."""
        self._stop.set()
        for w in self.workers:
            w.request_stop()

    async def run(self) -> None:
        """Start every pipeline, run until stopped (or one fails), then shut everything down."""
        if self.http is not None:
            await self.http.start()
        started: list[PipelineWorker] = []
        try:
            # Pipelines first: an intake adapter never feeds a topic whose pipeline failed to start.
            for w in self.workers:
                await w.start()
                started.append(w)
            await self.adapters.start()
            tasks = [asyncio.create_task(w.run(), name=f"pipeline-{w.name}") for w in started]
            stopper = asyncio.create_task(self._stop.wait())
            _done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            self.request_stop()
            # Stop intake before draining the pipelines, so nothing new arrives while they finish.
            await self.adapters.stop()
            await asyncio.wait(tasks)
            stopper.cancel()
            errors = [t.exception() for t in tasks if t.exception() is not None]
            if errors:
                raise errors[0]  # type: ignore[misc]
        finally:
            await self.adapters.stop()
            for w in reversed(started):
                await w.close()
            for w in self.workers:
                if w not in started:
                    await w.pipeline.stop()
            if self.http is not None:
                await self.http.stop()


__all__ = ["Engine", "PipelineWorker", "claim_instance_id", "default_instance_id"]
