"""Secured Kafka for real: the engine and an adapter through SASL_PLAINTEXT (PLAIN) and mutual-TLS listeners.

A second, module-scoped local broker (:class:`~pyheart.broker.devkafka.LocalKafka`) gets a
``SASL_PLAINTEXT`` listener and an ``SSL`` listener (PEM key and certificates generated at test time,
client certificates required) next to its ``PLAINTEXT`` one; the test feeds and reads topics over
the plain listener and the code under test talks only to the secured ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kafka_records import produce, read
from mllp_support import Pki, ScriptedReceiver, exchange, hl7, make_pki, msa

from pyheart.broker.devjvm import free_port
from pyheart.broker.devkafka.client import create_topics
from pyheart.broker.devkafka.local import LocalKafka
from pyheart.broker.devkafka.settings import unique_name
from pyheart.broker.engine import Engine, KafkaClients
from pyheart.broker.engine.adapters import AdapterHost
from pyheart.broker.engine.config import EngineSettings, load_settings
from pyheart.broker.errors import TransportError

pytestmark = [pytest.mark.kafka]

USER = "pyheart-svc"
PASSWORD = "Kq-canary-5519-right"
WRONG = "Kq-canary-8842-wrong"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class SaslBroker:
    """Addresses of the broker's open listener (for the test) and its secured ones (for the code)."""

    plain: str
    sasl: str
    ssl: str
    pki: Pki


def broker_properties(plain: int, sasl: int, tls: int, controller: int, pki: Pki) -> dict[str, str]:
    """server.properties: PLAINTEXT, SASL_PLAINTEXT (PLAIN, one user), SSL (mTLS) and the controller."""
    listeners = f"PLAINTEXT://{HOST}:{plain},SASL_PLAINTEXT://{HOST}:{sasl},SSL://{HOST}:{tls}"
    return {
        "listeners": f"{listeners},CONTROLLER://{HOST}:{controller}",
        "advertised.listeners": listeners,
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller}",
        "listener.security.protocol.map": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL"
        ),
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";'
        ),
        # Kafka 4 reads PEM directly: no keytool, no JKS/PKCS12 store.
        "listener.name.ssl.ssl.keystore.type": "PEM",
        "listener.name.ssl.ssl.keystore.certificate.chain": pki.server_cert.read_text(encoding="ascii"),
        "listener.name.ssl.ssl.keystore.key": pki.server_key.read_text(encoding="ascii"),
        "listener.name.ssl.ssl.truststore.type": "PEM",
        "listener.name.ssl.ssl.truststore.certificates": pki.ca.read_text(encoding="ascii"),
        "listener.name.ssl.ssl.client.auth": "required",
    }


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    """A broker of its own (the session broker has no secured listener), stopped after the module."""
    pki = make_pki(tmp_path_factory.mktemp("kafka-pki"))
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port(HOST))
    plain, sasl, tls, controller = sorted(ports)
    kafka = LocalKafka(port=plain, extra_properties=broker_properties(plain, sasl, tls, controller, pki))
    kafka.start()
    try:
        yield SaslBroker(plain=kafka.bootstrap_servers, sasl=f"{HOST}:{sasl}", ssl=f"{HOST}:{tls}", pki=pki)
    finally:
        kafka.stop()


def settings_for(broker: SaslBroker, password: str, **extra: Any) -> EngineSettings:
    """An engine file using the SASL listener, the password from ``$KAFKA_PASSWORD``."""
    document = {
        "kafka": {
            "bootstrap_servers": broker.sasl,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl": {"mechanism": "PLAIN", "username": USER, "password": "${KAFKA_PASSWORD}"},
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 500,
        },
        "metrics": {"enabled": False},
        **extra,
    }
    settings, _ = load_settings(document, {"KAFKA_PASSWORD": password})
    return settings


def pipeline(topics: dict[str, str]) -> dict[str, Any]:
    return {
        "name": topics["in"],
        "input": {"topics": [topics["in"]], "format": "text/plain"},
        "routes": [{"topic": topics["out"]}],
        "dead_letter": {"topic": topics["dlq"]},
    }


@pytest.fixture
async def topics(sasl_broker: SaslBroker) -> dict[str, str]:
    names = {x: unique_name(x) for x in ("in", "out", "dlq")}
    await create_topics(sasl_broker.plain, names.values())
    return names


async def test_engine_runs_a_pipeline_through_sasl(
    sasl_broker: SaslBroker, topics: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """With the right credentials the engine consumes and produces through the SASL listener."""
    caplog.set_level(logging.DEBUG)
    settings = settings_for(sasl_broker, PASSWORD, pipelines=[pipeline(topics)])
    engine = Engine(settings, KafkaClients(settings.kafka))
    task = asyncio.create_task(engine.run())
    try:
        await produce(sasl_broker.plain, topics["in"], b"one", b"two")
        out = await read(sasl_broker.plain, topics["out"], 2)
    finally:
        engine.request_stop()
        await asyncio.wait_for(task, 30)
    assert sorted(r.value for r in out) == [b"one", b"two"]
    assert PASSWORD not in caplog.text


async def test_engine_with_wrong_password_fails_with_a_clear_error(
    sasl_broker: SaslBroker, topics: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Wrong credentials stop the engine with a non-retriable kafka-auth error free of values."""
    caplog.set_level(logging.DEBUG)
    settings = settings_for(sasl_broker, WRONG, pipelines=[pipeline(topics)])
    engine = Engine(settings, KafkaClients(settings.kafka))
    with pytest.raises(TransportError) as info:
        await asyncio.wait_for(engine.run(), 60)
    assert str(info.value) == (
        f"kafka: authentication failed at {sasl_broker.sasl} (SaslAuthenticationFailed): "
        "check kafka.sasl (mechanism, username, password)"
    )
    assert (info.value.code, info.value.retriable) == ("kafka-auth", False)
    assert info.value.__cause__ is None
    assert WRONG not in caplog.text
    assert WRONG not in repr(info.value)


async def test_adapter_gets_the_files_credentials(sasl_broker: SaslBroker, topics: dict[str, str]) -> None:
    """An MLLP listener without security settings of its own publishes through SASL with the file's."""
    settings = settings_for(
        sasl_broker,
        PASSWORD,
        adapters=[{"id": "in", "plugin": "mllp-listener", "config": {"port": 0, "topic": topics["in"]}}],
    )
    host = AdapterHost(list(settings.adapters), settings.kafka)
    await host.start()
    try:
        listener: Any = host.registry.get_plugin("in")
        [ack] = await exchange(listener.port, hl7("SASL0001"))
        records = await read(sasl_broker.plain, topics["in"], 1)
    finally:
        await host.stop()
    assert msa(ack) == ("AA", "SASL0001")
    assert records[0].value.startswith(b"MSH|")


async def test_sender_consumes_and_commits_through_sasl(
    sasl_broker: SaslBroker, topics: dict[str, str]
) -> None:
    """An MLLP sender with the file's credentials reads its topic, delivers, and commits via SASL."""
    await produce(sasl_broker.plain, topics["out"], hl7("SASL0002"))
    async with ScriptedReceiver(["AA"]) as receiver:
        config = {"host": HOST, "port": receiver.port, "topic": topics["out"], "group_id": unique_name("g")}
        settings = settings_for(
            sasl_broker, PASSWORD, adapters=[{"id": "out", "plugin": "mllp-sender", "config": config}]
        )
        host = AdapterHost(list(settings.adapters), settings.kafka)
        await host.start()
        try:
            sender: Any = host.registry.get_plugin("out")
            async with asyncio.timeout(60):
                while sender.stats.committed < 1:  # noqa: ASYNC110 - the sender's own task commits
                    await asyncio.sleep(0.05)
        finally:
            await host.stop()
    assert [m.split(b"\r")[0].split(b"|")[9] for m in receiver.received] == [b"SASL0002"]


async def test_adapter_with_wrong_password_logs_the_cause(
    sasl_broker: SaslBroker, topics: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """An MLLP listener refused by the broker logs kafka-auth (not the password) while it retries."""
    caplog.set_level(logging.INFO)
    settings = settings_for(
        sasl_broker,
        WRONG,
        adapters=[{"id": "in", "plugin": "mllp-listener", "config": {"port": 0, "topic": topics["in"]}}],
    )
    host = AdapterHost(list(settings.adapters), settings.kafka)
    await host.start()
    try:
        async with asyncio.timeout(60):
            while '"error_code":"kafka-auth"' not in caplog.text:  # noqa: ASYNC110 - the listener retries
                await asyncio.sleep(0.05)
    finally:
        await host.stop()
    assert '"error_type":"TransportError","error_code":"kafka-auth"' in caplog.text
    assert WRONG not in caplog.text


def tls_settings(broker: SaslBroker, ca: str, **extra: Any) -> EngineSettings:
    """An engine file using the mutual-TLS listener with the client certificate of the test PKI."""
    document = {
        "kafka": {
            "bootstrap_servers": broker.ssl,
            "security_protocol": "SSL",
            "tls": {
                "ca_file": ca,
                "cert_file": str(broker.pki.client_cert),
                "key_file": str(broker.pki.client_key),
            },
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 500,
        },
        "metrics": {"enabled": False},
        **extra,
    }
    settings, _ = load_settings(document, {})
    return settings


async def test_engine_runs_a_pipeline_through_mutual_tls(
    sasl_broker: SaslBroker, topics: dict[str, str]
) -> None:
    """With the CA and a client certificate the engine works through the SSL listener."""
    settings = tls_settings(sasl_broker, str(sasl_broker.pki.ca), pipelines=[pipeline(topics)])
    engine = Engine(settings, KafkaClients(settings.kafka))
    task = asyncio.create_task(engine.run())
    try:
        await produce(sasl_broker.plain, topics["in"], b"tls-one")
        out = await read(sasl_broker.plain, topics["out"], 1)
    finally:
        engine.request_stop()
        await asyncio.wait_for(task, 30)
    assert [r.value for r in out] == [b"tls-one"]


async def test_untrusted_broker_certificate_fails_with_a_clear_error(
    sasl_broker: SaslBroker, topics: dict[str, str], tmp_path: Any
) -> None:
    """Trusting another CA stops the engine with a kafka-tls error naming the settings to check."""
    other = make_pki(tmp_path)
    settings = tls_settings(sasl_broker, str(other.ca), pipelines=[pipeline(topics)])
    engine = Engine(settings, KafkaClients(settings.kafka))
    with pytest.raises(TransportError) as info:
        await asyncio.wait_for(engine.run(), 60)
    assert str(info.value) == (
        f"kafka: TLS certificate verification failed at {sasl_broker.ssl} (unable to get local issuer "
        "certificate): check kafka.tls.ca_file / system_ca / check_hostname"
    )
    assert (info.value.code, info.value.retriable) == ("kafka-tls", False)
