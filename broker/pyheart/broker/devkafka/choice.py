"""Which Kafka the tests use, in a fixed order, and never "none" without saying why.

1. ``KAFKA_BOOTSTRAP_SERVERS`` is set: use that cluster (its lifecycle is not ours), once reachable.
2. A Docker engine answers a ping: the ``apache/kafka`` image of the same version, via testcontainers.
3. Java 17+ (and Maven for the first fetch): :class:`~pyheart.broker.devkafka.local.LocalKafka`.
4. Otherwise :class:`DevKafkaError` with the reason each option was rejected.

Probes run lazily: Docker is only pinged when the variable is unset, Java only checked when Docker
is unavailable.
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pyheart.broker.devkafka.client import run_sync, wait_reachable
from pyheart.broker.devkafka.runtime import DevKafkaError, ensure_jars, find_java
from pyheart.broker.devkafka.settings import KAFKA_IMAGE, STARTED_MESSAGE, docker_env, free_port
from pyheart.broker.logs import get_logger

_log = get_logger("pyheart.devkafka")

ENV_BOOTSTRAP = "KAFKA_BOOTSTRAP_SERVERS"

#: A probe returns ``None`` when the option is usable, else the reason it is not.
Probe = Callable[[], "str | None"]


class BrokerSource(enum.StrEnum):
    """Where the broker for a test session comes from."""

    ENV = "env"
    DOCKER = "docker"
    LOCAL = "local"


@dataclass(frozen=True)
class BrokerChoice:
    """The chosen source, the external bootstrap address (``ENV`` only) and why others were skipped."""

    source: BrokerSource
    bootstrap_servers: str | None = None
    skipped: tuple[str, ...] = ()


def choose_broker(env: Mapping[str, str], probe_docker: Probe, probe_local: Probe) -> BrokerChoice:
    """Pick the broker source; raise :class:`DevKafkaError` listing every reason if none fits."""
    bootstrap = env.get(ENV_BOOTSTRAP, "").strip()
    if bootstrap:
        return BrokerChoice(BrokerSource.ENV, bootstrap_servers=bootstrap)
    skipped = [f"{ENV_BOOTSTRAP} is not set"]
    docker_reason = probe_docker()
    if docker_reason is None:
        return BrokerChoice(BrokerSource.DOCKER, skipped=tuple(skipped))
    skipped.append(f"Docker: {docker_reason}")
    local_reason = probe_local()
    if local_reason is None:
        return BrokerChoice(BrokerSource.LOCAL, skipped=tuple(skipped))
    skipped.append(f"local JVM broker: {local_reason}")
    raise DevKafkaError("no Kafka broker for the tests: " + "; ".join(skipped))


def docker_probe(env: Mapping[str, str] | None = None, timeout: float = 5.0) -> str | None:
    """``None`` if a Docker engine answers ``GET /_ping``, else why not.

    Speaks HTTP to the engine socket itself (``DOCKER_HOST`` ``unix://`` or ``tcp://``, else the
    system socket, then the rootless one) and closes it: the docker client library leaks its socket
    when the engine is absent, which a test session with warnings as errors reports.
    """
    env = os.environ if env is None else env
    host = env.get("DOCKER_HOST", "").strip()
    if host.startswith("tcp://"):
        parts = urlsplit(host)
        if env.get("DOCKER_TLS_VERIFY"):
            return "DOCKER_HOST uses TLS, which this probe does not speak"
        if parts.hostname is None:
            return f"cannot read a host from DOCKER_HOST={host}"
        return _ping(socket.AF_INET, (parts.hostname, parts.port or 2375), host, timeout)
    if host and not host.startswith("unix://"):
        return f"unsupported DOCKER_HOST scheme in {host}"
    if host:
        candidates = [host.removeprefix("unix://")]
    else:
        candidates = ["/var/run/docker.sock"]
        if env.get("XDG_RUNTIME_DIR"):
            candidates.append(f"{env['XDG_RUNTIME_DIR']}/docker.sock")
    existing = [path for path in candidates if Path(path).exists()]
    if not existing:
        return f"no engine socket at {' or '.join(candidates)}"
    return _ping(socket.AF_UNIX, existing[0], existing[0], timeout)


def _ping(
    family: socket.AddressFamily, address: str | tuple[str, int], label: str, timeout: float
) -> str | None:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(64).split(b"\r\n", 1)[0].decode("latin-1")
    except OSError as exc:
        return f"engine at {label} did not answer ({type(exc).__name__})"
    if status_line.split(" ")[1:2] != ["200"]:
        return f"engine at {label} answered the ping with '{status_line}'"
    return None


def local_probe() -> str | None:
    """``None`` if Java 17+ is there and the jars are cached or Maven can fetch them, else why not."""
    try:
        find_java()
        ensure_jars()
    except DevKafkaError as exc:
        return str(exc)
    return None


@contextlib.contextmanager
def docker_kafka(timeout: float = 90.0) -> Iterator[str]:
    """Run ``apache/kafka`` in a container (testcontainers) and yield its bootstrap address.

    testcontainers' ``KafkaContainer`` drives Confluent images only, so this is a plain container
    whose PLAINTEXT listener uses the same port inside and outside, advertised as ``127.0.0.1``.
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    port = free_port()
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_envs(**docker_env(port=port))
        .with_bind_ports(port, port)
        .waiting_for(LogMessageWaitStrategy(STARTED_MESSAGE).with_startup_timeout(int(timeout)))
    )
    container.start()
    try:
        bootstrap = f"127.0.0.1:{port}"
        run_sync(wait_reachable(bootstrap, timeout))
        yield bootstrap
    finally:
        container.stop()


@contextlib.contextmanager
def provide_kafka(
    env: Mapping[str, str] | None = None, *, timeout: float = 90.0
) -> Iterator[tuple[BrokerChoice, str]]:
    """Yield ``(choice, bootstrap_servers)`` of a reachable broker; stop it afterwards if it is ours."""
    env = os.environ if env is None else env
    choice = choose_broker(env, lambda: docker_probe(env), local_probe)
    _log.info("devkafka.chosen", source=choice.source.value)
    if choice.source is BrokerSource.ENV:
        assert choice.bootstrap_servers is not None
        run_sync(wait_reachable(choice.bootstrap_servers, timeout))
        yield choice, choice.bootstrap_servers
    elif choice.source is BrokerSource.DOCKER:
        with docker_kafka(timeout) as bootstrap:
            yield choice, bootstrap
    else:
        from pyheart.broker.devkafka.local import LocalKafka

        with LocalKafka(ready_timeout=timeout) as kafka:
            yield choice, kafka.bootstrap_servers
