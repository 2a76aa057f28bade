"""Kafka client security: settings -> aiokafka kwargs, combination rules, secrets that never show."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from mllp_support import Pki, make_pki

from pyheart.adapters._delivery import consumer_fields, idempotent_producer, manual_commit_consumer
from pyheart.adapters.dicom.scp import DicomStoreScp
from pyheart.adapters.mllp.listener import LISTENER_SCHEMA
from pyheart.broker.config import Secret
from pyheart.broker.devjvm import free_port
from pyheart.broker.engine.adapters import AdapterHost
from pyheart.broker.engine.config import KafkaSettings, PluginRef, load_settings, parse_settings
from pyheart.broker.engine.kafka_io import KafkaClients
from pyheart.broker.errors import ConfigError
from pyheart.broker.kafka_security import (
    SECURITY_KEYS,
    KafkaSecurity,
    SaslSettings,
    TlsSettings,
    client_kwargs,
    config_kwargs,
    diagnose,
)

CANARY = "Zq-canary-7731-secret"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def encrypted_key(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client key, encrypted with :data:`CANARY` as its password."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), password=None)
    path = tmp_path_factory.mktemp("enc") / "client-enc.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(CANARY.encode()),
        )
    )
    return path


def sasl(mechanism: str = "PLAIN") -> SaslSettings:
    return SaslSettings(username="pyheart", password=Secret(CANARY), mechanism=mechanism)  # type: ignore[arg-type]


def error_text(exc: BaseException) -> str:
    """The exception's text with every cause and context, as a log line would render them."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts.append(f"{type(seen).__name__}: {seen} {seen!r}")
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


# ------------------------------------------------------------------------------ kwargs
def test_plaintext_sets_only_the_protocol() -> None:
    """PLAINTEXT adds no TLS context and no SASL arguments."""
    assert client_kwargs(KafkaSecurity()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_scram_gives_mechanism_and_credentials() -> None:
    """SASL_PLAINTEXT with SCRAM-SHA-512 passes mechanism, user and the secret's value to aiokafka."""
    kwargs = client_kwargs(KafkaSecurity("SASL_PLAINTEXT", sasl=sasl("SCRAM-SHA-512")))
    assert kwargs == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "pyheart",
        "sasl_plain_password": CANARY,
    }


def test_ssl_builds_a_verifying_context_from_the_ca(pki: Pki) -> None:
    """SSL with ca_file gives a context that verifies the broker certificate and host name."""
    kwargs = client_kwargs(KafkaSecurity("SSL", tls=TlsSettings(ca_file=str(pki.ca))))
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_check_hostname_can_be_turned_off(pki: Pki) -> None:
    """check_hostname: false keeps certificate verification but skips the host name check."""
    tls = TlsSettings(ca_file=str(pki.ca), check_hostname=False)
    context = client_kwargs(KafkaSecurity("SSL", tls=tls))["ssl_context"]
    assert (context.check_hostname, context.verify_mode) == (False, ssl.CERT_REQUIRED)


def test_system_trust_store_needs_no_ca_file() -> None:
    """system_ca: true is a valid SSL setting without ca_file."""
    kwargs = client_kwargs(KafkaSecurity("SSL", tls=TlsSettings(system_ca=True)))
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)


def test_sasl_ssl_gives_context_and_credentials(pki: Pki) -> None:
    """SASL_SSL combines the TLS context with the SASL arguments."""
    kwargs = client_kwargs(KafkaSecurity("SASL_SSL", tls=TlsSettings(ca_file=str(pki.ca)), sasl=sasl()))
    assert sorted(kwargs) == [
        "sasl_mechanism",
        "sasl_plain_password",
        "sasl_plain_username",
        "security_protocol",
        "ssl_context",
    ]


def test_mutual_tls_loads_an_encrypted_key_with_its_password(pki: Pki, encrypted_key: Path) -> None:
    """cert_file + key_file + key_password load an encrypted client key."""
    tls = TlsSettings(
        ca_file=str(pki.ca),
        cert_file=str(pki.client_cert),
        key_file=str(encrypted_key),
        key_password=Secret(CANARY),
    )
    assert isinstance(client_kwargs(KafkaSecurity("SSL", tls=tls))["ssl_context"], ssl.SSLContext)


def test_wrong_key_password_names_the_field_not_the_password(pki: Pki, encrypted_key: Path) -> None:
    """A wrong key_password is a ConfigError naming the field; neither password appears in it."""
    tls = TlsSettings(
        ca_file=str(pki.ca),
        cert_file=str(pki.client_cert),
        key_file=str(encrypted_key),
        key_password=Secret("wrong-" + CANARY),
    )
    with pytest.raises(ConfigError) as info:
        client_kwargs(KafkaSecurity("SSL", tls=tls), "kafka")
    assert str(info.value) == (
        "kafka.tls.cert_file: cannot be loaded as PEM (or key_password is wrong): SSLError [tls-file]"
    )
    assert CANARY not in error_text(info.value)


def test_encrypted_key_without_password_fails_without_prompting(pki: Pki, encrypted_key: Path) -> None:
    """An encrypted key without key_password fails at once (OpenSSL must not prompt on a terminal)."""
    tls = TlsSettings(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(encrypted_key))
    with pytest.raises(ConfigError, match=r"tls.cert_file: cannot be loaded as PEM"):
        client_kwargs(KafkaSecurity("SSL", tls=tls))


def test_missing_ca_file_is_named(tmp_path: Path) -> None:
    """A CA file that does not exist is reported by field."""
    tls = TlsSettings(ca_file=str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match=r"^kafka.tls.ca_file: file not found \[tls-file\]$"):
        client_kwargs(KafkaSecurity("SSL", tls=tls), "kafka")


def test_ca_file_that_is_not_pem_is_named(tmp_path: Path) -> None:
    """A CA file that is not a certificate is reported by field and error class."""
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^tls.ca_file: cannot be loaded as PEM: SSLError \[tls-file\]$"):
        client_kwargs(KafkaSecurity("SSL", tls=TlsSettings(ca_file=str(bogus))))


# ------------------------------------------------------------------------------ rules
@pytest.mark.parametrize(
    ("security", "expected"),
    [
        (
            KafkaSecurity("SSL"),
            "tls.ca_file: is required when security_protocol is SSL (or set tls.system_ca: true) [tls-ca]",
        ),
        (
            KafkaSecurity("SASL_PLAINTEXT"),
            "sasl: is required when security_protocol is SASL_PLAINTEXT [sasl-required]",
        ),
        (
            KafkaSecurity("PLAINTEXT", sasl=sasl()),
            "sasl: is set but security_protocol is PLAINTEXT (use SASL_PLAINTEXT or SASL_SSL) [sasl-protocol]",
        ),
        (
            KafkaSecurity("SASL_PLAINTEXT", tls=TlsSettings(ca_file="ca.pem"), sasl=sasl()),
            "tls: is set but security_protocol is SASL_PLAINTEXT (use SSL or SASL_SSL) [tls-protocol]",
        ),
        (
            KafkaSecurity("SSL", tls=TlsSettings(ca_file="ca.pem", cert_file="c.pem")),
            "tls.key_file: cert_file and key_file go together [tls-pair]",
        ),
        (
            KafkaSecurity("SSL", tls=TlsSettings(ca_file="ca.pem", key_password=Secret(CANARY))),
            "tls.key_password: needs key_file [tls-pair]",
        ),
        (
            KafkaSecurity("SASL_PLAINTEXT", sasl=SaslSettings(username="u", password=Secret(""))),
            "sasl.password: must not be empty [sasl-required]",
        ),
    ],
)
def test_broken_combinations_are_named(security: KafkaSecurity, expected: str) -> None:
    """Each broken combination is reported with its field path and rule, never a value."""
    with pytest.raises(ConfigError) as info:
        client_kwargs(security)
    assert str(info.value) == f"invalid Kafka security settings: {expected}"
    assert CANARY not in error_text(info.value)


async def test_unreachable_broker_is_not_blamed_on_the_credentials() -> None:
    """With nothing listening, diagnose() finds no security cause (the connection error stands)."""
    kwargs = client_kwargs(KafkaSecurity("SASL_PLAINTEXT", sasl=sasl()))
    assert await diagnose(f"127.0.0.1:{free_port()}", kwargs, "kafka") is None


async def test_adapter_producer_start_failure_keeps_the_connection_error() -> None:
    """A secured producer whose broker is down still fails with aiokafka's connection error."""
    security = {
        "security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl": {"username": "pyheart", "password": Secret(CANARY)},
    }
    producer = idempotent_producer(f"127.0.0.1:{free_port()}", security=security, request_timeout_ms=1000)
    try:
        with pytest.raises(KafkaConnectionError):
            await producer.start()
    finally:
        await producer.stop()


# ------------------------------------------------------------------------------ engine settings
def engine_doc(kafka: dict[str, Any]) -> dict[str, Any]:
    return {"kafka": kafka, "adapters": [{"id": "x", "plugin": "sdk_adapters:EchoAdapter"}]}


SASL_FILE = {
    "security_protocol": "SASL_PLAINTEXT",
    "sasl": {"mechanism": "SCRAM-SHA-256", "username": "pyheart", "password": "${KAFKA_PW}"},
}


def test_engine_secret_from_environment_is_masked() -> None:
    """A ${VAR} password is accepted, used by the clients and masked in repr and JSON dumps."""
    settings, _ = load_settings(engine_doc(SASL_FILE), {"KAFKA_PW": CANARY})
    assert settings.kafka.sasl is not None
    assert settings.kafka.sasl.password.get() == CANARY
    assert CANARY not in repr(settings)
    assert CANARY not in settings.model_dump_json()
    assert KafkaClients(settings.kafka).security()["sasl_plain_password"] == CANARY


def test_engine_literal_secret_in_a_file_is_refused() -> None:
    """A literal sasl.password is refused, naming the path and the rule and not the value."""
    doc = engine_doc({**SASL_FILE, "sasl": {**SASL_FILE["sasl"], "password": CANARY}})  # type: ignore[dict-item]
    with pytest.raises(ConfigError) as info:
        load_settings(doc, {})
    assert str(info.value) == (
        "invalid engine configuration:\n"
        "  kafka.sasl.password: must be an environment reference such as ${VAR}, not a literal [secret]"
    )
    assert CANARY not in error_text(info.value)


def test_engine_rules_name_the_path() -> None:
    """SASL_SSL without a tls block is an engine config error naming kafka and the rule."""
    doc = engine_doc({**SASL_FILE, "security_protocol": "SASL_SSL"})
    with pytest.raises(ConfigError) as info:
        load_settings(doc, {"KAFKA_PW": CANARY})
    assert str(info.value) == (
        "invalid engine configuration:\n  kafka: tls.ca_file: is required when security_protocol is SASL_SSL "
        "(or set tls.system_ca: true) [tls-ca] [value_error]"
    )


def test_engine_unknown_security_key_is_rejected() -> None:
    """Unknown keys under kafka.sasl are rejected like everywhere else."""
    doc = engine_doc({**SASL_FILE, "sasl": {**SASL_FILE["sasl"], "passwd": "x"}})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match=r"kafka.sasl.passwd: unknown key \[extra_forbidden\]"):
        load_settings(doc, {"KAFKA_PW": CANARY})


def test_engine_non_string_secret_error_has_no_value() -> None:
    """A password of the wrong type is an error without the value."""
    with pytest.raises(ConfigError) as info:
        parse_settings(engine_doc({**SASL_FILE, "sasl": {"username": "u", "password": 73317731}}))
    assert "kafka.sasl.password: must be a string [value_error]" in str(info.value)
    assert "73317731" not in error_text(info.value)


def test_engine_clients_get_the_tls_context(pki: Pki) -> None:
    """KafkaClients passes one TLS context to every client kind."""
    kafka = KafkaSettings(security_protocol="SSL", tls={"ca_file": str(pki.ca)})
    clients = KafkaClients(kafka)
    assert isinstance(clients.security()["ssl_context"], ssl.SSLContext)
    assert clients.security()["ssl_context"] is clients.security()["ssl_context"]


# ------------------------------------------------------------------------------ adapters
def test_every_kafka_adapter_declares_the_security_fields() -> None:
    """Senders (consumer_fields), the MLLP listener and the DICOM SCP share the same security fields."""
    scp_schema = DicomStoreScp().get_metadata().config_schema
    for schema in (consumer_fields("x"), LISTENER_SCHEMA, scp_schema):
        assert all(key in schema for key in SECURITY_KEYS)


def test_adapter_config_gives_the_same_kwargs() -> None:
    """An adapter config's kafka_sasl block gives the same kwargs as the engine's sasl block."""
    config = {
        "security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl": {"mechanism": "PLAIN", "username": "pyheart", "password": Secret(CANARY)},
    }
    assert config_kwargs(config) == client_kwargs(KafkaSecurity("SASL_PLAINTEXT", sasl=sasl()))


def test_adapter_producer_refuses_broken_security() -> None:
    """The shared producer factory raises a ConfigError naming the adapter's field."""
    with pytest.raises(
        ConfigError, match=r"kafka_sasl: is required when security_protocol is SASL_PLAINTEXT"
    ):
        idempotent_producer("127.0.0.1:9", security={"security_protocol": "SASL_PLAINTEXT"})


async def test_adapter_consumer_gets_the_credentials() -> None:
    """The shared consumer factory configures aiokafka with the SASL settings."""
    settings = {
        "topic": "t",
        "bootstrap_servers": "127.0.0.1:9",
        "group_id": "g",
        "client_id": "c",
        "auto_offset_reset": "earliest",
        "metadata_max_age_ms": 10_000,
        "security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl": {"mechanism": "SCRAM-SHA-256", "username": "pyheart", "password": Secret(CANARY)},
    }
    consumer: Any = manual_commit_consumer(settings)
    try:
        assert (consumer._client._security_protocol, consumer._client._sasl_mechanism) == (
            "SASL_PLAINTEXT",
            "SCRAM-SHA-256",
        )
    finally:
        await consumer.stop()


def sender_ref(**config: Any) -> PluginRef:
    base = {"host": "127.0.0.1", "port": 2575, "topic": "out", "group_id": "g"}
    return PluginRef(id="a1", plugin="mllp-sender", config={**base, **config})


def adapter_config_of(host: AdapterHost) -> dict[str, Any]:
    plugin = host.registry.get_plugin("a1")
    assert plugin is not None
    return plugin.config


def file_kafka() -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers="kafka.example:9093",
        security_protocol="SASL_PLAINTEXT",
        sasl={"mechanism": "SCRAM-SHA-512", "username": "pyheart", "password": Secret(CANARY)},
    )


def test_engine_injects_security_into_adapters_that_leave_it_out() -> None:
    """An adapter without its own security settings gets the file's kafka security."""
    host = AdapterHost([sender_ref()], file_kafka())
    config = adapter_config_of(host)
    assert config["security_protocol"] == "SASL_PLAINTEXT"
    assert config["kafka_sasl"]["password"] == Secret(CANARY)
    assert config_kwargs(config)["sasl_mechanism"] == "SCRAM-SHA-512"


def test_engine_keeps_an_adapters_own_security() -> None:
    """An adapter that sets security_protocol itself gets nothing from the file."""
    host = AdapterHost([sender_ref(security_protocol="PLAINTEXT")], file_kafka())
    config = adapter_config_of(host)
    assert config["security_protocol"] == "PLAINTEXT"
    assert config.get("kafka_sasl") is None


def test_engine_does_not_send_credentials_to_another_cluster() -> None:
    """An adapter pointing at another cluster does not get the file's credentials."""
    host = AdapterHost([sender_ref(bootstrap_servers="other.example:9092")], file_kafka())
    assert adapter_config_of(host).get("kafka_sasl") is None


def test_adapter_literal_secret_in_a_file_is_refused() -> None:
    """A literal kafka_sasl.password in an adapter entry is refused by path, without the value."""
    ref = sender_ref(
        security_protocol="SASL_PLAINTEXT", kafka_sasl={"username": "pyheart", "password": CANARY}
    )
    with pytest.raises(ConfigError) as info:
        AdapterHost([ref], KafkaSettings(), env_paths=set())
    assert (
        "adapters[0](a1).config.kafka_sasl.password: must be an environment reference such as ${VAR}, "
        "not a literal [secret]"
    ) in str(info.value)
    assert CANARY not in error_text(info.value)


def test_adapter_broken_combination_is_refused_at_load() -> None:
    """The engine checks an adapter's security combination when it loads the file."""
    with pytest.raises(ConfigError) as info:
        AdapterHost([sender_ref(security_protocol="SASL_PLAINTEXT")], KafkaSettings())
    assert str(info.value) == (
        "invalid adapter configuration:\n  adapters[0](a1).config.kafka_sasl: "
        "is required when security_protocol is SASL_PLAINTEXT [sasl-required]"
    )
