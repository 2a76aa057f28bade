"""The FHIR REST sender with an in-memory Kafka and an in-process FHIR endpoint (httpx's MockTransport)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fhir_support import canary, dumps, transaction_bundle
from mllp_support import FakeConsumer, FakeKafka, FakeProducer, FakeRecord

from pyheart.adapters.fhir.sender import (
    ATTEMPTS_HEADER,
    HTTP_STATUS_HEADER,
    ISSUE_CODES_HEADER,
    FhirRestSender,
)
from pyheart.broker.contracts import Header
from pyheart.broker.errors import PluginConfigError
from pyheart.broker.registry import PluginRegistry

BASE = {
    "base_url": "http://fhir.test/fhir",
    "topic": "fhir.out",
    "group_id": "g1",
    "retry_backoff_s": 0.001,
    "retry_backoff_max_s": 0.002,
}


@dataclass
class FakeFhir:
    """Answers the next scripted responses, then 200; records each request's method, path and headers."""

    script: list[httpx.Response] = field(default_factory=list)
    seen: list[httpx.Request] = field(default_factory=list)
    _waits: list[tuple[int, asyncio.Event]] = field(default_factory=list)

    def reached(self, count: int) -> asyncio.Event:
        """An event set once ``count`` requests were seen."""
        event = asyncio.Event()
        self._waits.append((count, event))
        return event

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        for count, event in self._waits:
            if len(self.seen) >= count:
                event.set()
        if self.script:
            return self.script.pop(0)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response"})


@dataclass
class Harness:
    kafka: FakeKafka
    consumer: FakeConsumer
    fhir: FakeFhir
    sender: FhirRestSender

    def dead_letters(self) -> list[Any]:
        return self.kafka.on("fhir.out.dlq")


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Any]]:
    """Start a sender over ``records`` with scripted FHIR answers; cleaned up afterwards."""
    senders: list[FhirRestSender] = []

    async def _start(
        records: list[bytes], script: list[httpx.Response] | None = None, **config: Any
    ) -> Harness:
        kafka = FakeKafka()
        consumer = FakeConsumer(
            [
                FakeRecord("fhir.out", 0, i, b"k", value, [(Header.MESSAGE_ID, f"m-{i}".encode())])
                for i, value in enumerate(records)
            ]
        )
        fhir = FakeFhir(list(script or []))
        sender = FhirRestSender(
            {**BASE, **config},
            client_factory=lambda _s: (consumer, FakeProducer(kafka)),
            transport=httpx.MockTransport(fhir.handler),
        )
        senders.append(sender)
        await sender.initialize()
        return Harness(kafka, consumer, fhir, sender)

    yield _start
    for sender in senders:
        await sender.cleanup()


def outcome(code: str, diagnostics: str = "") -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "expression": ["Patient.gender"]}
    if diagnostics:
        issue["diagnostics"] = diagnostics
    return {"resourceType": "OperationOutcome", "issue": [issue]}


async def test_offset_is_committed_after_the_server_accepts(start: Callable[..., Any]) -> None:
    """A 200 answer commits the record's offset + 1."""
    h = await start([dumps(transaction_bundle("M1"))])
    await asyncio.wait_for(h.consumer.wait_for_commits(1), 10)
    assert ([offset for _tp, offset in h.consumer.commits], h.sender.stats.delivered) == ([1], 1)


async def test_transaction_is_posted_as_fhir_json(start: Callable[..., Any]) -> None:
    """The Bundle is POSTed to the base URL with FHIR JSON content type and the message id."""
    h = await start([dumps(transaction_bundle("M1"))])
    await asyncio.wait_for(h.consumer.wait_for_commits(1), 10)
    request = h.fhir.seen[0]
    assert (
        request.method,
        str(request.url),
        request.headers["content-type"],
        request.headers["x-request-id"],
    ) == (
        "POST",
        "http://fhir.test/fhir/",
        "application/fhir+json",
        "m-0",
    )


async def test_503_is_retried_then_delivered(start: Callable[..., Any]) -> None:
    """Two 503 answers, then 200: delivered on the third attempt, no dead letter."""
    h = await start(
        [dumps(transaction_bundle("M1"))],
        [httpx.Response(503, headers={"Retry-After": "0"}), httpx.Response(503)],
    )
    await asyncio.wait_for(h.consumer.wait_for_commits(1), 10)
    assert (len(h.fhir.seen), h.sender.stats.retries, h.dead_letters()) == (3, 2, [])


async def test_retries_are_bounded_then_dead_lettered(start: Callable[..., Any]) -> None:
    """Answers of 429 beyond max_retries dead-letter the record with the attempt count."""
    h = await start([dumps(transaction_bundle("M1"))], [httpx.Response(429)] * 5, max_retries=2)
    await asyncio.wait_for(h.consumer.wait_for_commits(1), 10)
    (dead,) = h.dead_letters()
    assert (len(h.fhir.seen), dead.header(HTTP_STATUS_HEADER), dead.header(ATTEMPTS_HEADER)) == (
        3,
        "429",
        "3",
    )


async def test_operation_outcome_dead_letters_with_issue_codes(start: Callable[..., Any]) -> None:
    """A 400 OperationOutcome dead-letters at once, with its issue codes and locations in headers."""
    h = await start([dumps(transaction_bundle("M1"))], [httpx.Response(400, json=outcome("invalid"))])
    await asyncio.wait_for(h.consumer.wait_for_commits(1), 10)
    (dead,) = h.dead_letters()
    assert (
        dead.header(ISSUE_CODES_HEADER),
        dead.header(Header.ERROR_CODE),
        dead.header(Header.ERROR_LOCATIONS),
        dead.header(Header.ORIGINAL_OFFSET),
        len(h.fhir.seen),
    ) == ("invalid", "fhir-rejected", "Patient.gender", "0", 1)


async def test_dead_letter_keeps_payload_key_and_envelope(start: Callable[..., Any]) -> None:
    """The dead-letter record is the original payload and key with the envelope headers kept."""
    payload = dumps(transaction_bundle("M1"))
    h = await start([payload], [httpx.Response(422, json=outcome("required"))])
    await asyncio.wait_for(h.consumer.wait_for_commits(1), 10)
    (dead,) = h.dead_letters()
    assert (dead.value, dead.key, dead.header(Header.MESSAGE_ID)) == (payload, b"k", "m-0")


async def test_payload_that_is_not_fhir_is_dead_lettered_without_a_request(start: Callable[..., Any]) -> None:
    """A record that is not FHIR JSON is dead-lettered at the parse stage; nothing is sent."""
    h = await start([b"MSH|^~\\&|not fhir"])
    await asyncio.wait_for(h.consumer.wait_for_commits(1), 10)
    (dead,) = h.dead_letters()
    assert (dead.header(Header.ERROR_STAGE), dead.header(Header.ERROR_CODE), h.fhir.seen) == (
        "parse",
        "fhir-payload-invalid",
        [],
    )


async def test_records_are_delivered_in_order(start: Callable[..., Any]) -> None:
    """Records of one partition are delivered and committed in offset order."""
    records = [dumps({"resourceType": "Patient", "id": f"p{i}"}) for i in range(5)]
    h = await start(records)
    await asyncio.wait_for(h.consumer.wait_for_commits(5), 10)
    assert [r.url.path for r in h.fhir.seen] == [f"/fhir/Patient/p{i}" for i in range(5)]


async def test_stopping_while_retrying_leaves_the_offset_uncommitted(start: Callable[..., Any]) -> None:
    """A record still being retried at shutdown is neither committed nor dead-lettered."""
    h = await start(
        [dumps(transaction_bundle("M1"))],
        [httpx.Response(503)] * 100,
        max_retries=100,
        retry_backoff_s=0.05,
        retry_backoff_max_s=0.05,
    )
    await asyncio.wait_for(h.fhir.reached(2).wait(), 10)
    await h.sender.cleanup()
    assert (h.consumer.commits, h.dead_letters()) == ([], [])


async def test_phi_canary_stays_out_of_logs_and_headers(
    start: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A value quoted back by the server's diagnostics and present in the payload and conditional URL
    appears in no log line and no dead-letter header."""
    caplog.set_level(logging.DEBUG)
    secret = canary()
    bundle = transaction_bundle(secret, family=secret)
    h = await start(
        [
            dumps(bundle),
            dumps({"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": secret}]}),
        ],
        [
            httpx.Response(400, json=outcome("invalid", diagnostics=f"Invalid value {secret}")),
            httpx.Response(503, json=outcome("transient", diagnostics=secret)),
            httpx.Response(409, json=outcome("conflict", diagnostics=secret)),
            httpx.Response(400, json=outcome("processing", diagnostics=secret)),
        ],
    )
    await asyncio.wait_for(h.consumer.wait_for_commits(2), 10)
    headers = [value for record in h.dead_letters() for _name, value in record.headers]
    assert len(h.dead_letters()) == 2
    assert [v for v in headers if secret.encode() in v] == []
    assert [r.getMessage() for r in caplog.records if secret in r.getMessage()] == []


def test_literal_token_in_config_is_rejected() -> None:
    """A bearer token written into the pipeline file (not ${VAR}) is refused at registration."""
    registry = PluginRegistry()
    sender = FhirRestSender({**BASE, "auth": {"type": "bearer", "token": "abc"}})
    with pytest.raises(PluginConfigError) as info:
        registry.register_plugin("out", sender, env_paths=set())
    assert str(info.value) == (
        "plugin 'out': invalid config: auth.token: must be an environment reference such as ${VAR}, "
        "not a literal [secret]"
    )


def test_base_url_with_query_is_rejected() -> None:
    """The base URL may not carry a query string (it would be logged)."""
    registry = PluginRegistry()
    with pytest.raises(PluginConfigError, match=r"base_url: must match the pattern"):
        registry.register_plugin("out", FhirRestSender({**BASE, "base_url": "http://x/fhir?token=1"}))


async def test_auth_fields_of_another_type_are_refused() -> None:
    """An auth block with a field its type does not use fails at start, naming the field."""
    sender = FhirRestSender({**BASE, "auth": {"type": "bearer", "token": "t", "username": "u"}})
    with pytest.raises(Exception, match=r"^auth: username not used by auth type bearer \[unused\]$"):
        await sender.open()


async def test_bearer_auth_block_sends_the_token() -> None:
    """An auth block of type bearer adds the Authorization header to every request."""
    fhir = FakeFhir()
    sender = FhirRestSender(
        {**BASE, "auth": {"type": "bearer", "token": "tok-1"}}, transport=httpx.MockTransport(fhir.handler)
    )
    await sender.open()
    try:
        result = await sender.deliver(dumps(transaction_bundle("M1")))
    finally:
        await sender.close()
    assert (result.outcome.ok, fhir.seen[0].headers["authorization"]) == (True, "Bearer tok-1")


async def test_deliver_forwards_valid_trace_context_only() -> None:
    """A valid traceparent is forwarded; a malformed one is dropped."""
    fhir = FakeFhir()
    sender = FhirRestSender(dict(BASE), transport=httpx.MockTransport(fhir.handler))
    good = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    await sender.open()
    try:
        await sender.deliver(dumps(transaction_bundle("M1")), {Header.TRACEPARENT: good})
        await sender.deliver(dumps(transaction_bundle("M1")), {Header.TRACEPARENT: "evil\r\nX: y"})
    finally:
        await sender.close()
    assert [r.headers.get("traceparent") for r in fhir.seen] == [good, None]


def test_pipeline_file_with_environment_secrets_loads() -> None:
    """A plugins document naming the token as ${VAR} loads; the token is held as a masked Secret."""
    from pyheart.broker.config import Secret
    from pyheart.broker.manager import PluginManager

    manager = PluginManager()
    document = {
        "plugins": [
            {
                "id": "fhir-out",
                "class": "fhir-rest-sender",
                "config": {**BASE, "auth": {"type": "bearer", "token": "${FHIR_TOKEN}"}},
            }
        ]
    }
    manager.registry.discover_entry_points()
    manager.load_plugins_from_config(document, environ={"FHIR_TOKEN": "tok-from-env"})
    plugin = manager.get_plugin("fhir-out")
    assert plugin is not None
    token = plugin.config["auth"]["token"]
    assert (isinstance(token, Secret), token.get(), repr(token)) == (
        True,
        "tok-from-env",
        "Secret('**********')",
    )


async def test_authenticator_plugin_given_in_code_is_used_and_left_running() -> None:
    """An authenticator passed to the sender adds its credentials; the sender does not clean it up."""
    from pyheart.adapters.fhir.auth import BasicAuthenticator

    fhir = FakeFhir()
    basic = BasicAuthenticator({"username": "engine", "password": "pw"})
    sender = FhirRestSender(dict(BASE), authenticator=basic, transport=httpx.MockTransport(fhir.handler))
    await sender.open()
    await sender.deliver(dumps(transaction_bundle("M1")))
    await sender.close()
    assert (fhir.seen[0].headers["authorization"].startswith("Basic "), basic.initialized) == (True, True)


async def _max_in_flight(concurrency: int) -> tuple[int, list[tuple[int, int]]]:
    """Deliver two records on each of partitions 0 and 1 through a server that holds each request
    until a second one arrives (or 0.3 s pass); the most requests it ever held at once, and the
    commits as (partition, offset)."""
    in_flight = 0
    most = 0
    arrived = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight > 1:
            arrived.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), 0.3)
        in_flight -= 1
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response"})

    records = [
        FakeRecord(
            "fhir.out", partition, offset, b"k", dumps(transaction_bundle(f"M{partition}{offset}")), []
        )
        for offset in (0, 1)
        for partition in (0, 1)
    ]
    consumer = FakeConsumer(records)
    sender = FhirRestSender(
        {**BASE, "partition_concurrency": concurrency},
        client_factory=lambda _s: (consumer, FakeProducer(FakeKafka())),
        transport=httpx.MockTransport(handler),
    )
    await sender.initialize()
    try:
        await asyncio.wait_for(consumer.wait_for_commits(4), 10)
    finally:
        await sender.cleanup()
    return most, [(tp.partition, offset) for tp, offset in consumer.commits]


async def test_partitions_are_delivered_concurrently_each_in_order() -> None:
    """partition_concurrency 2: two partitions' records are in flight at once, and each
    partition's offsets are still committed in order."""
    most, commits = await _max_in_flight(2)
    assert most == 2
    for partition in (0, 1):
        assert [offset for p, offset in commits if p == partition] == [1, 2]


async def test_default_delivers_one_record_at_a_time() -> None:
    """By default (partition_concurrency 1) never more than one request is in flight."""
    most, commits = await _max_in_flight(1)
    assert (most, len(commits)) == (1, 4)


async def test_a_failing_partition_stops_its_siblings() -> None:
    """With partitions drained at once, an unexpected failure in one cancels the others: nothing
    delivers or commits after the loop died."""
    from pyheart.adapters._delivery import Delivered, KafkaDelivery
    from pyheart.broker.logs import get_logger

    release = asyncio.Event()

    async def handler(record: Any) -> Delivered:
        if record.partition == 0:
            raise RuntimeError("handler bug")
        await release.wait()  # partition 1 is mid-delivery when partition 0 fails
        return Delivered(1)

    records = [FakeRecord("fhir.out", p, o, b"k", b"{}", []) for o in (0, 1, 2) for p in (0, 1)]
    consumer = FakeConsumer(records)
    delivery = KafkaDelivery(
        "test", "test.delivery", get_logger("test"), handler, lambda _s: (consumer, FakeProducer(FakeKafka()))
    )
    delivery.configure(
        {
            **BASE,
            "dlq_topic": "fhir.out.dlq",
            "max_retries": 0,
            "retry_backoff_max_s": 0.01,
            "partition_concurrency": 2,
        }
    )
    await delivery.start(wait_s=5)
    task = delivery._task
    assert task is not None
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(asyncio.shield(task), 5)
    release.set()
    await asyncio.sleep(0.1)
    assert task.done()
    assert consumer.commits == []
    await delivery.finish(1)
    await delivery.stop_clients()
