"""The broker's runtime: the Java it runs on and the Kafka jars, fetched once with Maven into a cache.

Cache layout (``PYHEART_CACHE_DIR``, default ``~/.cache/pyheart``)::

    kafka-4.1.1/
        libs/             the broker's classpath (``mvn dependency:copy-dependencies``)
        libs/.complete    written last: a fetch that was interrupted is redone
        fetch.lock        serialises concurrent fetches (two pytest sessions, CI shards)
        broker.json       state of the broker ``pyheart kafka start`` runs in the background
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path

from pyheart.broker.devkafka.settings import KAFKA_VERSION, MIN_JAVA, REQUIRED_JARS, parse_java_major
from pyheart.broker.errors import PyHeartError

_COMPLETE = ".complete"
_FETCH_TIMEOUT_S = 900.0


class DevKafkaError(PyHeartError):
    """The development Kafka broker could not be fetched, started, reached or stopped."""

    code = "devkafka-failed"


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """``$PYHEART_CACHE_DIR``, or ``~/.cache/pyheart``."""
    env = os.environ if env is None else env
    configured = env.get("PYHEART_CACHE_DIR", "")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "pyheart"


def kafka_home(env: Mapping[str, str] | None = None) -> Path:
    """The versioned cache folder of the broker (``<cache>/kafka-4.1.1``)."""
    return cache_root(env) / f"kafka-{KAFKA_VERSION}"


def libs_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the broker's jars live."""
    return kafka_home(env) / "libs"


def jars_present(libs: Path) -> bool:
    """Whether ``libs`` holds a completed fetch with the jars the broker needs."""
    return (libs / _COMPLETE).is_file() and all((libs / jar).is_file() for jar in REQUIRED_JARS)


def ensure_jars(libs: Path | None = None, *, mvn: str = "mvn") -> Path:
    """Return the jar folder, fetching the jars with Maven first if they are not cached.

    A cached, complete folder is used as is: Maven is not run again.
    """
    libs = libs_dir() if libs is None else libs
    if jars_present(libs):
        return libs
    with _lock(libs.parent / "fetch.lock"):
        if not jars_present(libs):  # another process may have fetched while we waited
            fetch_jars(libs, mvn=mvn)
    return libs


def fetch_jars(libs: Path, *, mvn: str = "mvn") -> None:
    """Resolve the broker's runtime classpath from Maven Central into ``libs`` (replacing it)."""
    mvn_path = shutil.which(mvn)
    if mvn_path is None:
        raise DevKafkaError(
            f"cannot fetch the Kafka {KAFKA_VERSION} jars: '{mvn}' (Apache Maven) is not on PATH"
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    try:
        pom = resources.files("pyheart.broker.devkafka").joinpath("pom.xml")
        with resources.as_file(pom) as pom_path:
            result = subprocess.run(
                [
                    mvn_path,
                    "-B",
                    "-q",
                    "-f",
                    str(pom_path),
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={staging}",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_FETCH_TIMEOUT_S,
                check=False,
            )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise DevKafkaError(
                f"fetching the Kafka {KAFKA_VERSION} jars failed (mvn exit {result.returncode}):\n{tail}"
            )
        missing = [jar for jar in REQUIRED_JARS if not (staging / jar).is_file()]
        if missing:
            raise DevKafkaError(f"the Maven fetch did not produce {', '.join(missing)}")
        (staging / _COMPLETE).write_text(KAFKA_VERSION + "\n", encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared by CI users
        if libs.exists():
            shutil.rmtree(libs)
        staging.rename(libs)
    except subprocess.TimeoutExpired:
        raise DevKafkaError(
            f"fetching the Kafka {KAFKA_VERSION} jars took longer than {_FETCH_TIMEOUT_S:.0f} s"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_java(env: Mapping[str, str] | None = None) -> Path:
    """The ``java`` executable (``$JAVA_HOME/bin/java``, else ``PATH``), checked to be Java 17 or newer."""
    env = os.environ if env is None else env
    java_home = env.get("JAVA_HOME", "")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is None or not candidate.is_file():
        found = shutil.which("java")
        if found is None:
            raise DevKafkaError(
                f"no Java found (JAVA_HOME unset or invalid, no 'java' on PATH); Kafka needs {MIN_JAVA}+"
            )
        candidate = Path(found)
    try:
        result = subprocess.run(
            [str(candidate), "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevKafkaError(f"'{candidate} -version' failed: {type(exc).__name__}") from None
    major = parse_java_major(result.stderr + result.stdout)
    if major is None:
        raise DevKafkaError(f"cannot read the Java version from '{candidate} -version'")
    if major < MIN_JAVA:
        raise DevKafkaError(f"{candidate} is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+")
    return candidate
