"""Shared test configuration: a real Kafka broker and helpers for naming and topics.

Fixtures
    kafka_bootstrap (session)  ``"host:port"`` of a real Apache Kafka 4.1.1 broker that supports
        idempotent and transactional producers. Started lazily, only when a test asks for it, from
        the first of: ``$KAFKA_BOOTSTRAP_SERVERS`` (used as is, not stopped) > a Docker engine
        (``apache/kafka`` via testcontainers) > a local JVM broker
        (:class:`pyheart.broker.devkafka.LocalKafka`, jars fetched once with Maven). If none works,
        every test that asks for it fails with the reasons; it never skips.
    unique_name    ``unique_name("orders")`` -> ``"orders-1f2e3d4c5b6a"``: topic and group names
        no other test uses (the broker lives for the whole session).
    create_topics  ``await create_topics("in", "out", partitions=3)`` on the session broker;
        returns once every partition has a leader.
    fhir_server (session)  base URL (``http://127.0.0.1:PORT/fhir``) of a real HAPI FHIR 8.8.0 JPA R4
        server (in-memory H2), started lazily from ``$PYHEART_FHIR_BASE_URL`` (used as is) or else
        :class:`pyheart.broker.devfhir.LocalFhirServer` (built once with Maven). Fails, never skips.

Mark tests that use the broker with ``@pytest.mark.kafka`` (``pytest -m kafka`` runs just those).
Outside fixtures the same helpers are ``pyheart.broker.devkafka.unique_name`` / ``create_topics``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

import pytest


class CreateTopics(Protocol):
    """``await create_topics(*names, partitions=1, configs=None)``."""

    def __call__(
        self, *names: str, partitions: int = 1, configs: dict[str, str] | None = None
    ) -> Awaitable[None]: ...


@pytest.fixture(autouse=True)
def _reset_pyheart_logging() -> Iterator[None]:
    """Undo ``configure_logging`` after each test so caplog (on the root logger) keeps seeing our lines."""
    yield
    logger = logging.getLogger("pyheart")
    for handler in [h for h in logger.handlers if getattr(h, "_pyheart", False)]:
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of the session's Kafka broker (see the module docstring)."""
    from pyheart.broker.devkafka import DevKafkaError, provide_kafka

    with contextlib.ExitStack() as stack:
        try:
            _choice, bootstrap = stack.enter_context(provide_kafka())
        except DevKafkaError as exc:
            reason = str(exc)
        else:
            yield bootstrap
            return
    pytest.fail(f"Kafka broker unavailable: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[str]:
    """Base URL of the session's FHIR R4 server (see the module docstring)."""
    import os

    from pyheart.broker.devfhir import DevFhirError, LocalFhirServer

    external = os.environ.get("PYHEART_FHIR_BASE_URL", "")
    if external:
        yield external.rstrip("/")
        return
    server = LocalFhirServer()
    try:
        base_url = server.start()
    except DevFhirError as exc:
        reason = str(exc)
    else:
        try:
            yield base_url
        finally:
            server.stop()
        return
    pytest.fail(f"FHIR server unavailable: {reason}", pytrace=False)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``prefix`` -> ``prefix-<12 hex chars>``, for topics and consumer groups."""
    from pyheart.broker.devkafka.settings import unique_name

    return unique_name


@pytest.fixture
def create_topics(kafka_bootstrap: str) -> CreateTopics:
    """Create topics on the session broker: ``await create_topics("a", "b", partitions=3)``."""
    from pyheart.broker.devkafka.client import create_topics as _create

    async def create(*names: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
        await _create(kafka_bootstrap, names, partitions=partitions, configs=configs)

    return create
