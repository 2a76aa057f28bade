"""A real Apache Kafka broker for development, tests and CI, without Docker.

Kafka's own jars come from Maven Central (``pom.xml`` in this package, fetched once into
``${PYHEART_CACHE_DIR:-~/.cache/pyheart}/kafka-4.1.1/libs``) and run as a single-node KRaft broker
on loopback, with settings that support idempotent and transactional producers.

- :class:`LocalKafka` - start/stop one broker from Python (``with LocalKafka() as k: k.bootstrap_servers``).
- :func:`provide_kafka` - the test-session choice: ``KAFKA_BOOTSTRAP_SERVERS``, else Docker
  (``apache/kafka``), else :class:`LocalKafka`, else an error saying why.
- :func:`create_topics`, :func:`wait_reachable`, :func:`unique_name` - helpers for tests.
- ``pyheart kafka fetch|start|status|stop`` - the same from the command line.

Importing this package starts nothing and does not import aiokafka.
"""

from __future__ import annotations

from pyheart.broker.devkafka.choice import BrokerChoice, BrokerSource, choose_broker, provide_kafka
from pyheart.broker.devkafka.client import create_topics, run_sync, wait_reachable
from pyheart.broker.devkafka.local import BrokerState, LocalKafka
from pyheart.broker.devkafka.runtime import DevKafkaError, ensure_jars, fetch_jars, kafka_home, libs_dir
from pyheart.broker.devkafka.settings import KAFKA_IMAGE, KAFKA_VERSION, unique_name

__all__ = [
    "KAFKA_IMAGE",
    "KAFKA_VERSION",
    "BrokerChoice",
    "BrokerSource",
    "BrokerState",
    "DevKafkaError",
    "LocalKafka",
    "choose_broker",
    "create_topics",
    "ensure_jars",
    "fetch_jars",
    "kafka_home",
    "libs_dir",
    "provide_kafka",
    "run_sync",
    "unique_name",
    "wait_reachable",
]
