"""The broker's runtime: the Java it runs on and the Kafka jars, fetched once with Maven into a cache.

Cache layout (``PYHEART_CACHE_DIR``, default ``~/.cache/pyheart``)::

    kafka-4.1.1/
        libs/             the broker's classpath (``mvn dependency:copy-dependencies``)
        libs/.complete    written last: a fetch that was interrupted is redone
        fetch.lock        serialises concurrent fetches (two pytest sessions, CI shards)
        broker.json       state of the broker ``pyheart kafka start`` runs in the background

The cache, the Maven run and the Java check are :mod:`pyheart.broker.devjvm`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from pyheart.broker import devjvm
from pyheart.broker.devjvm import cache_root
from pyheart.broker.devkafka.settings import KAFKA_VERSION, MIN_JAVA, REQUIRED_JARS
from pyheart.broker.errors import PyHeartError

_FETCH_TIMEOUT_S = 900.0


class DevKafkaError(PyHeartError):
    """The development Kafka broker could not be fetched, started, reached or stopped."""

    code = "devkafka-failed"


#: Kafka as the shared launcher's messages name it.
KAFKA = devjvm.Product("Kafka", KAFKA_VERSION, DevKafkaError, MIN_JAVA)
_FETCH = devjvm.MavenJob(KAFKA, "fetch", f"the Kafka {KAFKA_VERSION} jars", _FETCH_TIMEOUT_S)


def kafka_home(env: Mapping[str, str] | None = None) -> Path:
    """The versioned cache folder of the broker (``<cache>/kafka-4.1.1``)."""
    return cache_root(env) / f"kafka-{KAFKA_VERSION}"


def libs_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the broker's jars live."""
    return kafka_home(env) / "libs"


def jars_present(libs: Path) -> bool:
    """Whether ``libs`` holds a completed fetch with the jars the broker needs."""
    return devjvm.is_complete(libs) and all((libs / jar).is_file() for jar in REQUIRED_JARS)


def ensure_jars(libs: Path | None = None, *, mvn: str = "mvn") -> Path:
    """Return the jar folder, fetching the jars with Maven first if they are not cached.

    A cached, complete folder is used as is: Maven is not run again.
    """
    libs = libs_dir() if libs is None else libs
    return devjvm.ensure_cached(
        libs, jars_present, libs.parent / "fetch.lock", lambda: fetch_jars(libs, mvn=mvn)
    )


def fetch_jars(libs: Path, *, mvn: str = "mvn") -> None:
    """Resolve the broker's runtime classpath from Maven Central into ``libs`` (replacing it)."""

    def check(staging: Path) -> None:
        missing = [jar for jar in REQUIRED_JARS if not (staging / jar).is_file()]
        if missing:
            raise DevKafkaError(f"the Maven fetch did not produce {', '.join(missing)}")

    pom = resources.files("pyheart.broker.devkafka").joinpath("pom.xml")
    with resources.as_file(pom) as pom_path:
        devjvm.install_with_maven(
            _FETCH,
            libs,
            lambda staging: [
                "-f",
                str(pom_path),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            check,
            mvn=mvn,
        )


def find_java(env: Mapping[str, str] | None = None) -> Path:
    """The ``java`` executable (``$JAVA_HOME/bin/java``, else ``PATH``), checked to be Java 17 or newer."""
    return devjvm.find_java(KAFKA, env)


__all__ = [
    "KAFKA",
    "DevKafkaError",
    "cache_root",
    "ensure_jars",
    "fetch_jars",
    "find_java",
    "jars_present",
    "kafka_home",
    "libs_dir",
]
