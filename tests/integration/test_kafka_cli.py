"""``pyheart kafka start|status|stop`` against a real broker JVM, run as separate processes like a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyheart.broker.devkafka import BrokerState, ensure_jars, kafka_home, run_sync, wait_reachable
from pyheart.broker.devkafka.settings import free_port

pytestmark = pytest.mark.kafka


def _pyheart(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyheart.broker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment whose PyHeart cache is private (own state file) but reuses the fetched jars."""
    libs = ensure_jars()
    cache = tmp_path_factory.mktemp("pyheart-cache")
    home = cache / kafka_home({"PYHEART_CACHE_DIR": str(cache)}).name
    home.mkdir()
    (home / "libs").symlink_to(libs)
    archive = libs.parent / "broker.jsa"
    if archive.is_file():  # share the start-up archive, so this broker does not dump a new one
        (home / archive.name).symlink_to(archive)
    env = {**os.environ, "PYHEART_CACHE_DIR": str(cache)}
    yield env
    _pyheart(env, "kafka", "stop")


@pytest.fixture(scope="module")
def started(cli_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The result of ``pyheart kafka start`` (module-wide: one broker JVM for these tests)."""
    # an explicit port: the default (9092) may belong to a developer's demo broker
    return _pyheart(cli_env, "kafka", "start", "--port", str(free_port()))


def test_start_prints_a_reachable_bootstrap_address_last(started: subprocess.CompletedProcess[str]) -> None:
    """The last stdout line of ``kafka start`` is an address a Kafka client can use."""
    bootstrap = started.stdout.splitlines()[-1]

    cluster = run_sync(wait_reachable(bootstrap, 10.0))

    assert (started.returncode, len(cluster["brokers"])) == (0, 1)


def test_status_reports_the_running_broker(
    cli_env: dict[str, str], started: subprocess.CompletedProcess[str]
) -> None:
    """``kafka status`` exits 0 and prints the same bootstrap address last."""
    status = _pyheart(cli_env, "kafka", "status")

    assert (status.returncode, status.stdout.splitlines()[-1]) == (0, started.stdout.splitlines()[-1])


def test_second_start_reuses_the_running_broker(
    cli_env: dict[str, str], started: subprocess.CompletedProcess[str]
) -> None:
    """Starting again does not start a second JVM; it prints the running broker's address."""
    again = _pyheart(cli_env, "kafka", "start")

    assert (again.returncode, again.stdout, "already running" in again.stderr) == (0, started.stdout, True)


def test_stop_ends_the_jvm_and_removes_its_work_dir(
    cli_env: dict[str, str], started: subprocess.CompletedProcess[str]
) -> None:
    """``kafka stop`` terminates the broker, deletes its data and forgets it."""
    state = BrokerState.read(Path(cli_env["PYHEART_CACHE_DIR"]) / "kafka-4.1.1" / "broker.json")
    assert state is not None

    stopped = _pyheart(cli_env, "kafka", "stop")

    assert (stopped.returncode, stopped.stdout, state.alive(), Path(state.work_dir).exists()) == (
        0,
        f"terminated: pid {state.pid}\n",
        False,
        False,
    )
