"""Whole pipelines on the in-memory bus: gate, chain, routes, dead letters, retries, hooks, metrics."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.structs import TopicPartition

from pyheart.broker.contracts import Header
from pyheart.broker.engine import Engine, MemoryBroker, parse_settings
from pyheart.broker.engine.envelope import decode_headers
from pyheart.broker.engine.memory import MemoryRecord
from pyheart.broker.errors import PluginError
from pyheart.broker.logs import configure_logging

HERE = Path(__file__).parent
ADT = (
    b"MSH|^~\\&|EPIC|HOSP|LAB|HOSP|20240101120000||ADT^A01|CTRL0001|P|2.5\r"
    b"PID|1||MRN123^^^HOSP^MR||DOE^JANE||19800101|F\r"
)


@pytest.fixture(autouse=True)
def _plugins_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))


def settings(**pipeline: Any) -> Any:
    base: dict[str, Any] = {
        "name": "p1",
        "input": {"topics": ["in"], "format": "text/plain"},
        "routes": [{"topic": "out"}],
        "dead_letter": {"topic": "dlq"},
        "retry": {"max_attempts": 3, "initial_backoff_ms": 1, "max_backoff_ms": 2},
    }
    base.update(pipeline)
    return parse_settings(
        {"kafka": {"fetch_timeout_ms": 20}, "metrics": {"enabled": False}, "pipelines": [base]}
    )


async def run_until(engine: Engine, broker: MemoryBroker, done: Any, limit_s: float = 5.0) -> None:
    """Run ``engine`` until ``done(broker)`` holds, then stop it gracefully."""
    task = asyncio.create_task(engine.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not done(broker):
        assert loop.time() < deadline, "pipeline did not finish"
        assert not task.done(), "engine stopped early"
        await asyncio.sleep(0.01)
    engine.request_stop()
    await task


def headers_of(rec: MemoryRecord) -> dict[str, str]:
    return decode_headers(rec.headers)


async def test_transformer_chain_output_reaches_route() -> None:
    """A transformer's output is produced to the route's topic."""
    broker = MemoryBroker()
    broker.produce("in", b"hello")
    s = settings(transformers=[{"id": "up", "plugin": "engine_plugins:Upper"}])
    await run_until(Engine(s, broker), broker, lambda b: b.records("out"))
    assert [r.value for r in broker.records("out")] == [b"HELLO"]


async def test_offsets_committed_after_outputs() -> None:
    """The input offset is committed once the batch's outputs are acknowledged."""
    broker = MemoryBroker()
    for i in range(3):
        broker.produce("in", f"m{i}".encode())
    await run_until(
        Engine(settings(), broker), broker, lambda b: b.committed("p1", TopicPartition("in", 0)) == 3
    )
    assert len(broker.records("out")) == 3


async def test_output_envelope_headers() -> None:
    """Outputs carry id, content type, correlation id, traceparent and lineage."""
    broker = MemoryBroker()
    broker.produce("in", b"hello")
    await run_until(Engine(settings(), broker), broker, lambda b: b.records("out"))
    h = headers_of(broker.records("out")[0])
    assert (h[Header.CONTENT_TYPE], h[Header.LINEAGE]) == ("text/plain", "in/0/0")
    assert h[Header.MESSAGE_ID] != h[Header.CORRELATION_ID]
    assert h[Header.TRACEPARENT].startswith("00-")


async def test_hl7_envelope_from_msh() -> None:
    """An HL7 input without headers gets message type, trigger and control id from MSH."""
    broker = MemoryBroker()
    broker.produce("in", ADT)
    s = settings(input={"topics": ["in"], "format": "application/hl7-v2"})
    await run_until(Engine(s, broker), broker, lambda b: b.records("out"))
    h = headers_of(broker.records("out")[0])
    assert (h[Header.MESSAGE_TYPE], h[Header.TRIGGER], h[Header.CONTROL_ID]) == ("ADT", "A01", "CTRL0001")


async def test_patient_key_groups_same_patient() -> None:
    """Two messages of one patient get the same key, which is not the MRN."""
    broker = MemoryBroker()
    broker.produce("in", ADT, key=b"a")
    broker.produce("in", ADT.replace(b"CTRL0001", b"CTRL0002"), key=b"b")
    s = settings(input={"topics": ["in"], "format": "application/hl7-v2"})
    await run_until(Engine(s, broker), broker, lambda b: len(b.records("out")) == 2)
    keys = {r.key for r in broker.records("out")}
    assert len(keys) == 1
    assert b"MRN123" not in next(iter(keys))  # type: ignore[operator]


async def test_input_key_strategy() -> None:
    """``key: {strategy: input}`` keeps the input record's key."""
    broker = MemoryBroker()
    broker.produce("in", ADT, key=b"k1")
    s = settings(key={"strategy": "input"})
    await run_until(Engine(s, broker), broker, lambda b: b.records("out"))
    assert broker.records("out")[0].key == b"k1"


async def test_route_by_message_type() -> None:
    """Routes match on message type and trigger; the first matching route wins."""
    broker = MemoryBroker()
    broker.produce("in", ADT)
    broker.produce("in", ADT.replace(b"ADT^A01", b"ORU^R01"))
    s = settings(
        input={"topics": ["in"], "format": "application/hl7-v2"},
        routes=[
            {"when": {"message_type": "ADT", "trigger": ["A01", "A04"]}, "topic": "adt"},
            {"topic": "other"},
        ],
    )
    await run_until(Engine(s, broker), broker, lambda b: b.records("adt") and b.records("other"))
    assert headers_of(broker.records("other")[0])[Header.MESSAGE_TYPE] == "ORU"


async def test_route_by_any_header() -> None:
    """A route can match any header a transformer set."""
    broker = MemoryBroker()
    broker.produce("in", b"x")
    s = settings(
        transformers=[
            {"id": "tag", "plugin": "engine_plugins:Tagger", "config": {"header": "dest", "value": "lab"}}
        ],
        routes=[{"when": {"headers": {"dest": "lab"}}, "topic": "lab"}, {"topic": "out"}],
    )
    await run_until(Engine(s, broker), broker, lambda b: b.records("lab"))
    assert broker.records("out") == []


async def test_no_matching_route_dead_letters() -> None:
    """An output no route accepts goes to the dead-letter topic with code no-route."""
    broker = MemoryBroker()
    broker.produce("in", b"x")
    s = settings(routes=[{"when": {"message_type": "ADT"}, "topic": "adt"}])
    await run_until(Engine(s, broker), broker, lambda b: b.records("dlq"))
    assert headers_of(broker.records("dlq")[0])[Header.ERROR_CODE] == "no-route"


async def test_rejected_message_dead_lettered_with_headers() -> None:
    """A validator rejection dead-letters the original payload with stage, code, plugin, location."""
    broker = MemoryBroker()
    broker.produce("in", b"aXb")
    broker.produce("in", b"ok")
    s = settings(validators=[{"id": "no-x", "plugin": "engine_plugins:RejectX"}])
    await run_until(Engine(s, broker), broker, lambda b: b.records("dlq") and b.records("out"))
    dead = broker.records("dlq")[0]
    h = headers_of(dead)
    assert dead.value == b"aXb"
    assert (h[Header.ERROR_STAGE], h[Header.ERROR_CODE], h[Header.ERROR_PLUGIN]) == (
        "validate",
        "contains-x",
        "no-x",
    )
    assert (h[Header.ERROR_LOCATIONS], h[Header.ORIGINAL_TOPIC], h[Header.ORIGINAL_OFFSET]) == (
        "payload",
        "in",
        "0",
    )


async def test_plugin_exception_is_message_failure() -> None:
    """A transformer raising dead-letters that message and the pipeline goes on."""
    broker = MemoryBroker()
    broker.produce("in", b"BOOM")
    broker.produce("in", b"fine")
    s = settings(transformers=[{"id": "b", "plugin": "engine_plugins:Boom"}])
    await run_until(Engine(s, broker), broker, lambda b: b.records("dlq") and b.records("out"))
    h = headers_of(broker.records("dlq")[0])
    assert (h[Header.ERROR_CODE], h[Header.ERROR_CLASS]) == ("plugin-raised", "RuntimeError")


async def test_retriable_plugin_error_retried_then_passes() -> None:
    """A retriable error that clears within the attempts is retried and the message passes."""
    broker = MemoryBroker()
    broker.produce("in", b"FLAKY")
    s = settings(transformers=[{"id": "f", "plugin": "engine_plugins:Flaky", "config": {"failures": 2}}])
    await run_until(Engine(s, broker), broker, lambda b: b.records("out"))
    assert broker.records("dlq") == []


async def test_retriable_plugin_error_exhausted_dead_letters() -> None:
    """A retriable error that outlasts max_attempts dead-letters the message."""
    broker = MemoryBroker()
    broker.produce("in", b"FLAKY")
    s = settings(transformers=[{"id": "f", "plugin": "engine_plugins:Flaky"}])
    engine = Engine(s, broker)
    await run_until(engine, broker, lambda b: b.records("dlq"))
    assert headers_of(broker.records("dlq")[0])[Header.ERROR_CODE] == "upstream-down"
    assert b'pyheart_retries_total{pipeline="p1",stage="transform"} 2.0' in engine.metrics.render()


async def test_retriable_send_error_retried() -> None:
    """A retriable produce error is retried and the output still arrives once."""
    broker = MemoryBroker()
    broker.produce("in", b"x")
    broker.fail_next_sends(KafkaTimeoutError())
    await run_until(Engine(settings(), broker), broker, lambda b: b.records("out"))
    assert (len(broker.records("out")), broker.records("dlq")) == (1, [])


async def test_fatal_send_error_dead_letters() -> None:
    """A non-retriable produce error dead-letters the input with stage produce."""
    broker = MemoryBroker()
    broker.produce("in", b"x")
    broker.fail_next_sends(MessageSizeTooLargeError())
    await run_until(Engine(settings(), broker), broker, lambda b: b.records("dlq"))
    h = headers_of(broker.records("dlq")[0])
    assert (h[Header.ERROR_STAGE], h[Header.ERROR_CLASS]) == ("produce", "MessageSizeTooLargeError")


async def test_filtering_transformer_commits_without_output() -> None:
    """A transformer returning None filters the message; its offset is still committed."""
    broker = MemoryBroker()
    broker.produce("in", b"")
    s = settings(transformers=[{"id": "s", "plugin": "engine_plugins:Split"}])
    await run_until(Engine(s, broker), broker, lambda b: b.committed("p1", TopicPartition("in", 0)) == 1)
    assert broker.records("out") == []


async def test_fan_out_outputs_have_distinct_ids() -> None:
    """Several outputs of one input get distinct message ids and one correlation id."""
    broker = MemoryBroker()
    broker.produce("in", b"a,b,c")
    s = settings(transformers=[{"id": "s", "plugin": "engine_plugins:Split"}])
    await run_until(Engine(s, broker), broker, lambda b: len(b.records("out")) == 3)
    hs = [headers_of(r) for r in broker.records("out")]
    assert len({h[Header.MESSAGE_ID] for h in hs}) == 3
    assert len({h[Header.CORRELATION_ID] for h in hs}) == 1


async def test_exactly_once_commits_offsets_in_transaction() -> None:
    """In exactly-once mode outputs and the input offset are committed together."""
    broker = MemoryBroker()
    broker.produce("in", b"x")
    s = settings(exactly_once=True)
    await run_until(Engine(s, broker), broker, lambda b: b.committed("p1", TopicPartition("in", 0)) == 1)
    assert len(broker.records("out")) == 1


async def test_hooks_call_plugins_and_publish_event_records() -> None:
    """Configured hooks call the notifier plugin and publish id-only event records to a topic."""
    from engine_plugins import Recorder  # type: ignore[import-not-found]

    Recorder.seen.clear()
    broker = MemoryBroker()
    broker.produce("in", b"aXb")
    s = settings(
        validators=[{"id": "no-x", "plugin": "engine_plugins:RejectX"}],
        plugins=[{"id": "rec", "plugin": "engine_plugins:Recorder"}],
        hooks={
            "message_rejected": {"plugins": ["rec"]},
            "message_dead_lettered": {"plugins": ["rec"], "topic": "audit"},
        },
    )
    await run_until(Engine(s, broker), broker, lambda b: b.records("audit"))
    assert [e.event for e in Recorder.seen] == ["message_rejected", "message_dead_lettered"]
    record = orjson.loads(broker.records("audit")[0].value or b"")
    assert (record["event"], record["error_code"], record["output_topic"]) == (
        "message_dead_lettered",
        "contains-x",
        "dlq",
    )


async def test_failing_hook_does_not_stop_messages() -> None:
    """A notifier that raises is counted; the message is still produced."""
    broker = MemoryBroker()
    broker.produce("in", b"x")
    s = settings(
        plugins=[{"id": "bad", "plugin": "engine_plugins:BrokenNotifier"}],
        hooks={"message_received": {"plugins": ["bad"]}},
    )
    engine = Engine(s, broker)
    await run_until(engine, broker, lambda b: b.records("out"))
    assert engine.workers[0].pipeline.registry.hook_failures == {"message_received": 1}


async def test_lifecycle_events_reach_listener() -> None:
    """pipeline_started, partitions_assigned, partitions_revoked and pipeline_stopped are raised."""
    broker = MemoryBroker()
    broker.produce("in", b"x")
    engine = Engine(settings(), broker)
    seen: list[str] = []
    for name in ("pipeline_started", "partitions_assigned", "partitions_revoked", "pipeline_stopped"):
        engine.workers[0].pipeline.add_listener(name, lambda e: seen.append(e.event))
    await run_until(engine, broker, lambda b: b.records("out"))
    assert seen == ["pipeline_started", "partitions_assigned", "partitions_revoked", "pipeline_stopped"]


async def test_metrics_count_stages() -> None:
    """Received, passed, rejected, dead-lettered and produced are counted per pipeline and stage."""
    broker = MemoryBroker()
    broker.produce("in", b"aXb")
    broker.produce("in", b"ok")
    s = settings(validators=[{"id": "no-x", "plugin": "engine_plugins:RejectX"}])
    engine = Engine(s, broker)
    await run_until(engine, broker, lambda b: b.records("dlq") and b.records("out"))
    text = engine.metrics.render().decode()
    for line in (
        'pyheart_messages_received_total{pipeline="p1"} 2.0',
        'pyheart_messages_passed_total{pipeline="p1",stage="no-x"} 1.0',
        'pyheart_messages_rejected_total{pipeline="p1",stage="no-x"} 1.0',
        'pyheart_messages_dead_lettered_total{code="contains-x",pipeline="p1",stage="validate"} 1.0',
        'pyheart_messages_produced_total{pipeline="p1",topic="out"} 1.0',
    ):
        assert line in text


async def test_plugins_cleaned_up_after_stop() -> None:
    """Stopping the engine cleans up every plugin of the pipeline."""
    broker = MemoryBroker()
    broker.produce("in", b"x")
    s = settings(validators=[{"id": "no-x", "plugin": "engine_plugins:RejectX"}])
    engine = Engine(s, broker)
    await run_until(engine, broker, lambda b: b.records("out"))
    plugin = engine.workers[0].pipeline.registry.get_plugin("no-x")
    assert plugin is not None
    assert plugin.initialized is False


async def test_canary_never_in_logs_headers_or_event_records() -> None:
    """A unique value in failing payloads appears in no log line, header or event record."""
    canary = "CANARY-7f3a9c"
    stream = io.StringIO()
    configure_logging(logging.DEBUG, stream)
    broker = MemoryBroker()
    broker.produce("in", f"X {canary}".encode())
    broker.produce("in", f"BOOM {canary}".encode())
    broker.produce("in", f"MSH|^~\\&|A|B|C|D|||ADT^A01|C1|P|2.5\rPID|1||{canary}^^^H||{canary}\r".encode())
    s = settings(
        input={"topics": ["in"]},
        validators=[{"id": "no-x", "plugin": "engine_plugins:RejectX"}],
        transformers=[{"id": "b", "plugin": "engine_plugins:Boom"}],
        plugins=[{"id": "rec", "plugin": "engine_plugins:Recorder"}],
        hooks={e: {"topic": "audit"} for e in ("message_received", "message_dead_lettered")},
    )
    try:
        await run_until(Engine(s, broker), broker, lambda b: len(b.records("dlq")) == 2 and b.records("out"))
    finally:
        configure_logging(logging.WARNING, io.StringIO())
    wire = (
        [v for r in broker.records("dlq") + broker.records("out") for _, v in r.headers]
        + [r.value or b"" for r in broker.records("audit")]
        + [r.key or b"" for r in broker.records("out")]
    )
    assert canary not in stream.getvalue()
    assert all(canary.encode() not in w for w in wire if w is not None)


async def test_stop_policy_stops_pipeline_without_commit() -> None:
    """An error the policy maps to stop ends the run and leaves the offset uncommitted."""
    broker = MemoryBroker()
    broker.produce("in", b"x")
    s = settings(transformers=[{"id": "m", "plugin": "engine_plugins:Misconfigured"}])
    with pytest.raises(PluginError, match="transform step 'm' raised ConfigError"):
        await Engine(s, broker).run()
    assert broker.committed("p1", TopicPartition("in", 0)) is None


async def test_exactly_once_failed_batch_aborted_and_retried() -> None:
    """A failed send aborts the transaction; the batch is retried and produced once."""
    broker = MemoryBroker()
    broker.produce("in", b"x")
    broker.fail_next_sends(KafkaTimeoutError())
    s = settings(exactly_once=True)
    await run_until(Engine(s, broker), broker, lambda b: b.committed("p1", TopicPartition("in", 0)) == 1)
    assert [r.value for r in broker.records("out")] == [b"x"]


async def test_disabled_step_is_skipped() -> None:
    """A step with ``enabled: false`` is neither run nor initialised."""
    broker = MemoryBroker()
    broker.produce("in", b"hello")
    s = settings(transformers=[{"id": "up", "plugin": "engine_plugins:Upper", "enabled": False}])
    await run_until(Engine(s, broker), broker, lambda b: b.records("out"))
    assert [r.value for r in broker.records("out")] == [b"hello"]
