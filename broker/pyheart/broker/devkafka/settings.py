"""What the development broker runs: versions, broker properties, log config, JVM flags.

Pure functions and constants only (no processes, no I/O besides picking a free port), so they are
unit-tested without a JVM. The same broker settings feed the local JVM broker
(:func:`render_server_properties`) and the ``apache/kafka`` container (:func:`docker_env`).
:func:`free_port`, :func:`port_is_free` and :func:`parse_java_major` are :mod:`pyheart.broker.devjvm`'s.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping
from pathlib import Path

from pyheart.broker.devjvm import free_port as free_port
from pyheart.broker.devjvm import parse_java_major as parse_java_major
from pyheart.broker.devjvm import port_is_free as port_is_free

#: Apache Kafka release the broker runs (jars from Maven Central, or the ``apache/kafka`` image tag).
KAFKA_VERSION = "4.1.1"
#: The container image used when a Docker engine is available (same version as the jars).
KAFKA_IMAGE = f"apache/kafka:{KAFKA_VERSION}"
#: Kafka 4.x brokers need Java 17 or newer.
MIN_JAVA = 17
#: ``KafkaBroker.STARTED_MESSAGE``: logged once the broker is unfenced and serves requests.
STARTED_MESSAGE = "Kafka Server started"
#: Jars that must be in the cache for a usable broker (the SLF4J binding is not in Kafka's POM closure).
REQUIRED_JARS = (f"kafka_2.13-{KAFKA_VERSION}.jar", "log4j-slf4j-impl-2.24.3.jar")

#: Settings of a single-node cluster, shared by the JVM broker and the container. Internal topics
#: get one replica and one partition; the transaction state log settings let idempotent and
#: transactional (exactly-once) producers work on one node.
SINGLE_NODE_SETTINGS: Mapping[str, str] = {
    "num.partitions": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
}

#: Small-box tuning (2 cores): fewer threads, and a 32 MiB log-cleaner buffer instead of the default
#: 128 MiB that is taken from the heap.
SMALL_BOX_SETTINGS: Mapping[str, str] = {
    "num.network.threads": "2",
    "num.io.threads": "4",
    "num.recovery.threads.per.data.dir": "1",
    "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
}

#: Log4j2 config: warnings, plus the one INFO line that signals readiness.
LOG4J2_PROPERTIES = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
# emits "[KafkaRaftServer nodeId=1] Kafka Server started"
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = info
"""

#: JVM flags for both the format tool and the broker. C1 only and the serial collector start the
#: JVM faster on 2 cores (format + broker: ~3.3 s with Kafka's G1 flags, ~2.5 s with these, ~1.6 s
#: adding the AppCDS archive); an aiokafka client stays the bottleneck either way (~20-30k msg/s).
JVM_FAST_START = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Djava.awt.headless=true")
#: Heap of the short-lived ``StorageTool format`` JVM (Kafka's scripts use 256 MiB for tools).
FORMAT_HEAP = ("-Xmx256m",)
#: Broker heap: Kafka's default maximum; starts small so an idle test broker stays small.
BROKER_HEAP = ("-Xms256m", "-Xmx1g")

_TOPIC_CHARS = re.compile(r"[^a-zA-Z0-9._-]")


def render_server_properties(
    *,
    broker_port: int,
    controller_port: int,
    data_dir: Path,
    host: str = "127.0.0.1",
    extra: Mapping[str, str] | None = None,
) -> str:
    """The ``server.properties`` of a combined broker + KRaft controller on ``host``.

    ``extra`` overrides or adds settings (for example ``auto.create.topics.enable=false``).
    """
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{broker_port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        **SINGLE_NODE_SETTINGS,
        **SMALL_BOX_SETTINGS,
        **(extra or {}),
    }
    return "".join(f"{key}={_escape_property(value)}\n" for key, value in props.items())


def _escape_property(value: str) -> str:
    # java.util.Properties treats backslashes as escapes (Windows paths) and a leading blank as padding.
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def docker_env(*, port: int, advertised_host: str = "127.0.0.1") -> dict[str, str]:
    """Environment for the ``apache/kafka`` image: one node, PLAINTEXT on ``port`` inside and outside.

    The image builds its ``server.properties`` from ``KAFKA_*`` variables (dots become ``_``) once any
    is set, so every required setting is listed. Map host port ``port`` to container port ``port``.
    """
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{port},CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{advertised_host}:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
    }
    for key, value in SINGLE_NODE_SETTINGS.items():
        env["KAFKA_" + key.upper().replace(".", "_")] = value
    return env


def new_cluster_id() -> str:
    """A KRaft cluster id in the form ``kafka-storage random-uuid`` prints (22 url-safe base64 chars).

    Like Kafka's ``Uuid.randomUuid``, ids starting with ``-`` are skipped: they read as CLI options.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cluster_id.startswith("-"):
            return cluster_id


def unique_name(prefix: str) -> str:
    """``prefix`` plus a random suffix: a topic or group name no other test uses.

    Characters Kafka does not allow in topic names are replaced by ``-``.
    """
    return f"{_TOPIC_CHARS.sub('-', prefix)}-{uuid.uuid4().hex[:12]}"
