"""The FHIR REST sender against a real HAPI FHIR JPA R4 server (and the real Kafka broker).

Failures the server would not produce on demand (503 / 429 with Retry-After, 401 after a token is
revoked, a TLS endpoint requiring client certificates) come from :class:`FaultProxy`, a real HTTP
proxy in front of HAPI that injects them; the OAuth2 token endpoint is oauthlib's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from corpus_paths import CORPUS
from fhir_support import FaultProxy, TokenServer, canary, dumps, server_tls_context, transaction_bundle
from mllp_support import make_pki

from pyheart.adapters.fhir.sender import HTTP_STATUS_HEADER, ISSUE_CODES_HEADER, FhirRestSender
from pyheart.broker.contracts import Header

CreateTopics = Callable[..., Awaitable[None]]
#: The shared corpus lives beside the checkout (``../shared``), as on the developers' machines and CI.
CORPUS_ADT = CORPUS / "ms-fhir-converter/hl7v2/ADT-A01-01.hl7"
_WAIT_S = 60.0
SYSTEM = "urn:oid:2.16.840.1.113883.19.5"


async def total(base_url: str, resource_type: str, **params: str) -> int:
    """How many resources a search on the server matches."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{base_url}/{resource_type}", params={**params, "_summary": "count"})
    response.raise_for_status()
    return int(response.json()["total"])


def config(base_url: str, **extra: Any) -> dict[str, Any]:
    """A sender config for direct delivery (no Kafka involved until initialize())."""
    return {
        "base_url": base_url,
        "topic": "unused",
        "group_id": "unused",
        "retry_backoff_s": 0.05,
        "retry_backoff_max_s": 0.2,
        **extra,
    }


async def deliver(cfg: dict[str, Any], payload: bytes) -> Any:
    """Deliver one payload with a fresh sender (HTTP side only)."""
    sender = FhirRestSender(cfg)
    await sender.open()
    try:
        return await sender.deliver(payload)
    finally:
        await sender.close()


async def produce(bootstrap: str, topic: str, *values: bytes, key: bytes = b"patient") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key, headers=[(Header.MESSAGE_ID, b"msg-1")])
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(topic, 0))
        return offset
    finally:
        await consumer.stop()


async def read(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        return [await asyncio.wait_for(consumer.getone(), _WAIT_S) for _ in range(count)]
    finally:
        await consumer.stop()


async def until(predicate: Callable[[], bool]) -> None:
    """Wait (at most ``_WAIT_S``) until ``predicate()`` holds."""
    async with asyncio.timeout(_WAIT_S):
        while not predicate():  # noqa: ASYNC110 - the sender exposes counters, not events
            await asyncio.sleep(0.05)


# ----------------------------------------------------------------------------------- direct delivery
async def test_transaction_bundle_is_stored(fhir_server: str) -> None:
    """A transaction Bundle of Patient, Encounter and Observation is stored by HAPI."""
    mrn = canary("MRN")
    result = await deliver(config(fhir_server), dumps(transaction_bundle(mrn)))
    counts = [
        await total(fhir_server, "Patient", identifier=f"{SYSTEM}|{mrn}"),
        await total(fhir_server, "Encounter", identifier=f"{SYSTEM}.1|V-{mrn}"),
        await total(fhir_server, "Observation", identifier=f"{SYSTEM}.2|O-{mrn}"),
    ]
    assert (result.outcome.ok, result.outcome.status, counts) == (True, 200, [1, 1, 1])


async def test_single_resource_is_a_conditional_update(fhir_server: str) -> None:
    """The same Patient resource sent twice is one Patient (conditional PUT on its identifier)."""
    mrn = canary("MRN")
    patient = dumps({"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": mrn}]})
    first = await deliver(config(fhir_server), patient)
    second = await deliver(config(fhir_server), patient)
    count = await total(fhir_server, "Patient", identifier=f"{SYSTEM}|{mrn}")
    assert (first.outcome.status, second.outcome.status, count) == (201, 200, 1)


async def test_conditional_create_does_not_duplicate(fhir_server: str) -> None:
    """With conditional_create, a Patient sent twice is created once (POST + If-None-Exist)."""
    mrn = canary("MRN")
    patient = dumps({"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": mrn}]})
    first = await deliver(config(fhir_server, conditional_create=True), patient)
    second = await deliver(config(fhir_server, conditional_create=True), patient)
    count = await total(fhir_server, "Patient", identifier=f"{SYSTEM}|{mrn}")
    assert (first.outcome.status, second.outcome.status, count) == (201, 200, 1)


async def test_batch_with_a_rejected_entry_is_not_a_delivery(fhir_server: str) -> None:
    """A batch whose second entry HAPI rejects (an unknown resource id to read) is a rejection."""
    mrn = canary("MRN")
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": mrn}]},
                "request": {"method": "PUT", "url": f"Patient?identifier={SYSTEM}|{mrn}"},
            },
            {"request": {"method": "GET", "url": f"Patient/{canary('missing').lower()}"}},
        ],
    }
    result = await deliver(config(fhir_server), dumps(batch))
    assert (result.outcome.ok, result.outcome.status, result.outcome.code) == (
        False,
        200,
        "fhir-batch-entry-rejected",
    )


async def test_503_with_retry_after_is_retried_until_delivered(fhir_server: str) -> None:
    """The first two requests get 503 + Retry-After from the proxy; the third reaches HAPI."""
    mrn = canary("MRN")
    proxy = FaultProxy(fhir_server, fail_first=2, fail_status=503, retry_after="1")
    with proxy.running() as base:
        result = await deliver(config(base), dumps(transaction_bundle(mrn)))
    count = await total(fhir_server, "Patient", identifier=f"{SYSTEM}|{mrn}")
    assert (result.outcome.ok, result.attempts, proxy.log.injected, count) == (True, 3, 2, 1)


async def test_429_is_retried_until_delivered(fhir_server: str) -> None:
    """A 429 with Retry-After is waited out and the request repeated."""
    mrn = canary("MRN")
    proxy = FaultProxy(fhir_server, fail_first=1, fail_status=429, retry_after="1")
    with proxy.running() as base:
        result = await deliver(config(base), dumps(transaction_bundle(mrn)))
    assert (result.outcome.ok, result.attempts, len(proxy.log.requests)) == (True, 2, 2)


async def test_persistent_503_ends_after_max_retries(fhir_server: str) -> None:
    """A server that keeps answering 503 is tried max_retries + 1 times, then given up."""
    proxy = FaultProxy(fhir_server, fail_first=100, fail_status=503)
    with proxy.running() as base:
        result = await deliver(config(base, max_retries=2), dumps(transaction_bundle(canary("MRN"))))
    assert (result.outcome.ok, result.outcome.code, result.attempts, proxy.log.injected) == (
        False,
        "fhir-http-503",
        3,
        3,
    )


async def test_invalid_resource_is_rejected_with_issue_codes(fhir_server: str) -> None:
    """HAPI's 400 OperationOutcome becomes a rejection carrying its issue code, without its diagnostics."""
    secret = canary()
    result = await deliver(config(fhir_server), dumps(transaction_bundle(canary("MRN"), gender=secret)))
    outcome = result.outcome
    assert (outcome.ok, outcome.retriable, outcome.status, outcome.issue_codes) == (
        False,
        False,
        400,
        ("processing",),
    )
    assert secret not in repr(outcome)


async def test_oauth2_client_credentials_against_a_token_endpoint(fhir_server: str) -> None:
    """Tokens come from a real OAuth2 endpoint; a revoked token (401) is replaced and the request repeated."""
    tokens = TokenServer("engine", "engine-secret")
    proxy = FaultProxy(fhir_server, check_auth=tokens.valid)
    with tokens.running() as token_url, proxy.running() as base:
        auth = {
            "type": "oauth2-client-credentials",
            "token_url": token_url,
            "client_id": "engine",
            "client_secret": "engine-secret",
        }
        sender = FhirRestSender(config(base, auth=auth))
        await sender.open()
        try:
            first = await sender.deliver(dumps(transaction_bundle(canary("MRN"))))
            tokens.revoke_all()
            second = await sender.deliver(dumps(transaction_bundle(canary("MRN"))))
        finally:
            await sender.close()
    statuses = (first.outcome.status, second.outcome.status, first.attempts, second.attempts)
    assert (statuses, len(tokens.issued), len(proxy.log.requests)) == ((200, 200, 1, 1), 2, 3)


async def test_mutual_tls(fhir_server: str, tmp_path: Path) -> None:
    """Through a TLS endpoint that requires a client certificate: delivered with auth-mtls."""
    pki = make_pki(tmp_path)
    tls = server_tls_context(str(pki.server_cert), str(pki.server_key), client_ca=str(pki.ca))
    proxy = FaultProxy(fhir_server, ssl_context=tls)
    auth = {
        "type": "mtls",
        "cert_file": str(pki.client_cert),
        "key_file": str(pki.client_key),
        "ca_file": str(pki.ca),
    }
    with proxy.running() as base:
        result = await deliver(config(base, auth=auth), dumps(transaction_bundle(canary("MRN"))))
    assert (base.startswith("https://"), result.outcome.status) == (True, 200)


async def test_mutual_tls_without_client_certificate_fails(fhir_server: str, tmp_path: Path) -> None:
    """Without a client certificate the TLS endpoint refuses the connection (a transport error)."""
    pki = make_pki(tmp_path)
    tls = server_tls_context(str(pki.server_cert), str(pki.server_key), client_ca=str(pki.ca))
    proxy = FaultProxy(fhir_server, ssl_context=tls)
    with proxy.running() as base:
        result = await deliver(
            config(base, tls={"ca_file": str(pki.ca)}, max_retries=0),
            dumps(transaction_bundle(canary("MRN"))),
        )
    assert (result.outcome.ok, result.outcome.retriable, result.outcome.code) == (
        False,
        True,
        "fhir-unreachable",
    )


async def test_converted_corpus_message_is_stored(fhir_server: str) -> None:
    """An ADT^A01 from the corpus, converted by hl7v2-to-fhir, lands as its Patient and Encounter."""
    from pyheart.transformers.hl7v2_fhir import convert

    bundle = convert(CORPUS_ADT.read_bytes())
    conditional = {
        e["resource"]["resourceType"]: e["request"]["url"].split("identifier=", 1)[1]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] in ("Patient", "Encounter") and "identifier=" in e["request"]["url"]
    }
    result = await deliver(config(fhir_server), dumps(bundle))
    counts = {
        rtype: await total(fhir_server, rtype, identifier=token) for rtype, token in conditional.items()
    }
    assert (result.outcome.status, counts) == (200, {"Patient": 1, "Encounter": 1})


# ----------------------------------------------------------------------------------- through Kafka
@pytest.mark.kafka
async def test_two_bundles_about_one_patient_leave_one_patient(
    fhir_server: str, kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics
) -> None:
    """Two Bundles with the same patient identifier, consumed from Kafka: exactly one Patient; both committed."""
    topic, group = unique_name("fhir-out"), unique_name("fhir-sender")
    await create_topics(topic)
    mrn = canary("MRN")
    await produce(
        kafka_bootstrap,
        topic,
        dumps(transaction_bundle(mrn, visit=f"A-{mrn}", observation=f"OA-{mrn}")),
        dumps(transaction_bundle(mrn, visit=f"B-{mrn}", observation=f"OB-{mrn}", family="Renamed")),
    )
    sender = FhirRestSender(
        config(fhir_server, topic=topic, group_id=group, bootstrap_servers=kafka_bootstrap)
    )
    await sender.initialize()
    try:
        await until(lambda: sender.stats.committed == 2)
    finally:
        await sender.cleanup()
    patients = await total(fhir_server, "Patient", identifier=f"{SYSTEM}|{mrn}")
    renamed = await total(fhir_server, "Patient", identifier=f"{SYSTEM}|{mrn}", family="Renamed")
    assert (patients, renamed, await committed(kafka_bootstrap, group, topic)) == (1, 1, 2)
    assert [
        await total(fhir_server, "Encounter", identifier=f"{SYSTEM}.1|A-{mrn}"),
        await total(fhir_server, "Encounter", identifier=f"{SYSTEM}.1|B-{mrn}"),
    ] == [1, 1]


@pytest.mark.kafka
async def test_partitions_delivered_concurrently_to_hapi_all_committed(
    fhir_server: str, kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics
) -> None:
    """partition_concurrency 2 over a two-partition topic and the real HAPI server: every patient's
    Bundle lands once and both partitions are committed to their end."""
    topic, group = unique_name("fhir-out"), unique_name("fhir-sender")
    await create_topics(topic, partitions=2)
    mrns = [canary(f"MRN{i}") for i in range(4)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i, mrn in enumerate(mrns):
            bundle = dumps(transaction_bundle(mrn, visit=f"V-{mrn}", observation=f"O-{mrn}"))
            await producer.send_and_wait(topic, bundle, key=mrn.encode(), partition=i % 2)
    finally:
        await producer.stop()
    sender = FhirRestSender(
        config(
            fhir_server,
            topic=topic,
            group_id=group,
            bootstrap_servers=kafka_bootstrap,
            partition_concurrency=2,
        )
    )
    await sender.initialize()
    try:
        await until(lambda: sender.stats.committed == 4)
    finally:
        await sender.cleanup()
    found = [await total(fhir_server, "Patient", identifier=f"{SYSTEM}|{mrn}") for mrn in mrns]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offsets = [await consumer.committed(TopicPartition(topic, p)) for p in (0, 1)]
    finally:
        await consumer.stop()
    assert (found, offsets) == ([1, 1, 1, 1], [2, 2])


@pytest.mark.kafka
async def test_rejected_bundle_is_dead_lettered_with_codes_and_no_phi(
    fhir_server: str,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    create_topics: CreateTopics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """HAPI's 400 dead-letters the record with status and issue codes; the canary the server quotes back
    is in no header and no log line; the offset is committed after the dead letter."""
    caplog.set_level(logging.DEBUG)
    topic, group = unique_name("fhir-out"), unique_name("fhir-sender")
    await create_topics(topic, f"{topic}.dlq")
    secret = canary()
    await produce(kafka_bootstrap, topic, dumps(transaction_bundle(secret, family=secret, gender=secret)))
    sender = FhirRestSender(
        config(fhir_server, topic=topic, group_id=group, bootstrap_servers=kafka_bootstrap)
    )
    await sender.initialize()
    try:
        await until(lambda: sender.stats.committed == 1)
    finally:
        await sender.cleanup()
    (dead,) = await read(kafka_bootstrap, f"{topic}.dlq", 1)
    headers = dict(dead.headers)
    assert (
        headers[HTTP_STATUS_HEADER],
        headers[ISSUE_CODES_HEADER],
        headers[Header.ERROR_CODE],
        await committed(kafka_bootstrap, group, topic),
    ) == (b"400", b"processing", b"fhir-rejected", 1)
    assert [name for name, value in dead.headers if secret.encode() in value] == []
    assert [r.getMessage() for r in caplog.records if secret in r.getMessage()] == []


@pytest.mark.kafka
async def test_offset_is_committed_only_after_success(
    fhir_server: str, kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics
) -> None:
    """While the server answers 503 nothing is committed; after a restart against a healthy server the
    same record is delivered and only then committed."""
    topic, group = unique_name("fhir-out"), unique_name("fhir-sender")
    await create_topics(topic)
    mrn = canary("MRN")
    await produce(kafka_bootstrap, topic, dumps(transaction_bundle(mrn)))
    proxy = FaultProxy(fhir_server, fail_first=10_000, fail_status=503)
    with proxy.running() as base:
        failing = FhirRestSender(
            config(base, topic=topic, group_id=group, bootstrap_servers=kafka_bootstrap, max_retries=1000)
        )
        await failing.initialize()
        try:
            await until(lambda: proxy.log.injected >= 3)
        finally:
            await failing.cleanup()
    before = await committed(kafka_bootstrap, group, topic)
    healthy = FhirRestSender(
        config(fhir_server, topic=topic, group_id=group, bootstrap_servers=kafka_bootstrap)
    )
    await healthy.initialize()
    try:
        await until(lambda: healthy.stats.committed == 1)
    finally:
        await healthy.cleanup()
    count = await total(fhir_server, "Patient", identifier=f"{SYSTEM}|{mrn}")
    assert (before, await committed(kafka_bootstrap, group, topic), count) == (None, 1, 1)
