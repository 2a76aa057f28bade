"""The development Kafka broker's pieces that need no JVM: config, choice, probes, cache, CLI, failures."""

from __future__ import annotations

import base64
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pyheart.broker.cli import main
from pyheart.broker.devkafka import (
    KAFKA_IMAGE,
    BrokerSource,
    BrokerState,
    DevKafkaError,
    LocalKafka,
    choose_broker,
    ensure_jars,
    fetch_jars,
    unique_name,
    wait_reachable,
)
from pyheart.broker.devkafka.choice import docker_probe
from pyheart.broker.devkafka.runtime import cache_root, find_java, jars_present
from pyheart.broker.devkafka.settings import (
    REQUIRED_JARS,
    docker_env,
    free_port,
    new_cluster_id,
    parse_java_major,
    port_is_free,
    render_server_properties,
)

#: Listener settings differ on purpose: compose has a second listener for other containers.
_PER_RUN_DOCKER_ENV = {
    "KAFKA_LISTENERS",
    "KAFKA_ADVERTISED_LISTENERS",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
    "KAFKA_CONTROLLER_QUORUM_VOTERS",
}


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


# ------------------------------------------------------------------------------- broker settings
def test_properties_put_broker_and_controller_on_the_given_loopback_ports(tmp_path: Path) -> None:
    """The listeners, the advertised listener and the quorum use the ports chosen at run time."""
    props = _props(render_server_properties(broker_port=19092, controller_port=19093, data_dir=tmp_path))

    assert (
        props["listeners"],
        props["advertised.listeners"],
        props["controller.quorum.bootstrap.servers"],
        props["log.dirs"],
    ) == (
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        "PLAINTEXT://127.0.0.1:19092",
        "127.0.0.1:19093",
        str(tmp_path),
    )


def test_properties_let_one_node_run_transactions(tmp_path: Path) -> None:
    """The transaction state log fits one node, so transactional producers work."""
    props = _props(render_server_properties(broker_port=1, controller_port=2, data_dir=tmp_path))

    assert (
        props["transaction.state.log.replication.factor"],
        props["transaction.state.log.min.isr"],
        props["offsets.topic.replication.factor"],
    ) == ("1", "1", "1")


def test_properties_carry_the_small_box_tuning(tmp_path: Path) -> None:
    """Thread counts and the cleaner buffer are sized for a 2-core machine."""
    props = _props(render_server_properties(broker_port=1, controller_port=2, data_dir=tmp_path))

    assert (props["num.network.threads"], props["log.cleaner.dedupe.buffer.size"]) == ("2", "33554432")


def test_extra_properties_override_defaults(tmp_path: Path) -> None:
    """``extra`` replaces a default setting instead of adding a second line."""
    text = render_server_properties(
        broker_port=1, controller_port=2, data_dir=tmp_path, extra={"num.partitions": "3"}
    )

    assert [line for line in text.splitlines() if line.startswith("num.partitions=")] == ["num.partitions=3"]


def test_properties_escape_backslashes_in_paths() -> None:
    """A Windows-style data path survives java.util.Properties parsing."""
    props = _props(render_server_properties(broker_port=1, controller_port=2, data_dir=Path("C:\\k\\data")))

    assert props["log.dirs"] == "C:\\\\k\\\\data"


def test_docker_env_maps_single_node_settings_to_image_variables() -> None:
    """The apache/kafka container gets the same one-node settings as the JVM broker."""
    env = docker_env(port=29092)

    assert (
        env["KAFKA_ADVERTISED_LISTENERS"],
        env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"],
        env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"],
    ) == ("PLAINTEXT://127.0.0.1:29092", "1", "0")


def test_compose_file_runs_kafka_with_the_test_broker_settings() -> None:
    """docker-compose.yml's Kafka uses the image and one-node settings the tests use."""
    root = Path(__file__).resolve().parents[2]
    kafka = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]["kafka"]
    wanted = {k: v for k, v in docker_env(port=9092).items() if k not in _PER_RUN_DOCKER_ENV}

    assert kafka["image"] == KAFKA_IMAGE
    assert {k: str(kafka["environment"][k]) for k in wanted} == wanted


def test_cluster_id_has_the_kafka_storage_format() -> None:
    """A cluster id is 22 url-safe base64 characters of 16 random bytes, never starting with '-'."""
    ids = [new_cluster_id() for _ in range(200)]

    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == 200


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("command not found", None),
    ],
)
def test_java_major_version_is_read_from_version_output(output: str, major: int | None) -> None:
    """``java -version`` texts of old and new numbering give the major version."""
    assert parse_java_major(output) == major


def test_unique_name_keeps_prefix_and_differs_per_call() -> None:
    """Names start with the prefix and never repeat."""
    first, second = unique_name("orders"), unique_name("orders")

    assert (first.startswith("orders-"), second.startswith("orders-"), first != second) == (True, True, True)


def test_unique_name_replaces_characters_kafka_rejects() -> None:
    """Only characters legal in topic names remain."""
    assert unique_name("a b/c").startswith("a-b-c-")


def test_port_is_free_sees_a_listening_socket() -> None:
    """A port someone listens on is reported as taken."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        assert port_is_free(port) is False


# ------------------------------------------------------------------------------- broker choice
class _Probe:
    def __init__(self, reason: str | None) -> None:
        self.reason = reason
        self.calls = 0

    def __call__(self) -> str | None:
        self.calls += 1
        return self.reason


def test_bootstrap_variable_wins_without_probing() -> None:
    """KAFKA_BOOTSTRAP_SERVERS is used as is; neither Docker nor Java is probed."""
    docker, local = _Probe(None), _Probe(None)

    choice = choose_broker({"KAFKA_BOOTSTRAP_SERVERS": " k1:9092 "}, docker, local)

    assert (choice.source, choice.bootstrap_servers, docker.calls, local.calls) == (
        BrokerSource.ENV,
        "k1:9092",
        0,
        0,
    )


def test_docker_is_chosen_before_the_local_broker() -> None:
    """With a Docker engine the local JVM is not even checked."""
    local = _Probe(None)

    choice = choose_broker({}, _Probe(None), local)

    assert (choice.source, local.calls) == (BrokerSource.DOCKER, 0)


def test_local_broker_is_chosen_without_docker() -> None:
    """Without Docker the local JVM broker is used, and the skipped options are recorded."""
    choice = choose_broker({}, _Probe("no engine socket at /var/run/docker.sock"), _Probe(None))

    assert (choice.source, choice.skipped) == (
        BrokerSource.LOCAL,
        ("KAFKA_BOOTSTRAP_SERVERS is not set", "Docker: no engine socket at /var/run/docker.sock"),
    )


def test_no_broker_fails_with_every_reason() -> None:
    """When nothing works the error names why each option was rejected."""
    with pytest.raises(DevKafkaError) as info:
        choose_broker({}, _Probe("no engine"), _Probe("no Java found"))

    assert str(info.value) == (
        "no Kafka broker for the tests: KAFKA_BOOTSTRAP_SERVERS is not set; Docker: no engine; "
        "local JVM broker: no Java found"
    )


# ------------------------------------------------------------------------------- docker probe
@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A Unix-socket HTTP server standing in for the Docker engine for one ping; append its status line."""
    path = tmp_path / "docker.sock"
    answers: list[bytes] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    server.settimeout(10)

    def serve_one() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.recv(1024)
            conn.sendall(answers.pop(0) + b"\r\nContent-Length: 2\r\n\r\nOK")

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    yield path, answers
    thread.join(10)
    server.close()


def test_docker_probe_accepts_an_engine_that_answers_ping(fake_engine: tuple[Path, list[bytes]]) -> None:
    """HTTP 200 on /_ping means the engine is usable."""
    path, answers = fake_engine
    answers.append(b"HTTP/1.1 200 OK")

    assert docker_probe({"DOCKER_HOST": f"unix://{path}"}) is None


def test_docker_probe_reports_an_engine_error(fake_engine: tuple[Path, list[bytes]]) -> None:
    """Any other status is a reason not to use Docker."""
    path, answers = fake_engine
    answers.append(b"HTTP/1.1 500 Internal Server Error")

    assert docker_probe({"DOCKER_HOST": f"unix://{path}"}) == (
        f"engine at {path} answered the ping with 'HTTP/1.1 500 Internal Server Error'"
    )


def test_docker_probe_reports_a_missing_socket(tmp_path: Path) -> None:
    """No socket file means no engine, and the path is named."""
    missing = tmp_path / "none.sock"

    assert docker_probe({"DOCKER_HOST": f"unix://{missing}"}) == f"no engine socket at {missing}"


def test_docker_probe_rejects_unknown_schemes() -> None:
    """A DOCKER_HOST this probe cannot speak to is a reason, not a crash."""
    assert docker_probe({"DOCKER_HOST": "ssh://me@box"}) == "unsupported DOCKER_HOST scheme in ssh://me@box"


# ------------------------------------------------------------------------------- jar cache
def _fake_libs(libs: Path, *, complete: bool = True) -> Path:
    libs.mkdir(parents=True)
    for jar in REQUIRED_JARS:
        (libs / jar).write_bytes(b"")
    if complete:
        (libs / ".complete").write_text("4.1.1\n")
    return libs


def test_cache_root_follows_pyheart_cache_dir(tmp_path: Path) -> None:
    """PYHEART_CACHE_DIR moves the cache; without it the cache is ~/.cache/pyheart."""
    assert (cache_root({"PYHEART_CACHE_DIR": str(tmp_path)}), cache_root({})) == (
        tmp_path,
        Path.home() / ".cache" / "pyheart",
    )


def test_interrupted_fetch_is_not_a_cache(tmp_path: Path) -> None:
    """Jars without the completion marker are fetched again."""
    assert jars_present(_fake_libs(tmp_path / "libs", complete=False)) is False


def test_cached_jars_are_used_without_maven(tmp_path: Path) -> None:
    """A complete cache is returned as is: Maven is not run."""
    libs = _fake_libs(tmp_path / "libs")

    assert ensure_jars(libs, mvn="no-such-maven-binary") == libs


def test_fetch_without_maven_says_so(tmp_path: Path) -> None:
    """A missing mvn is reported by name instead of a traceback."""
    with pytest.raises(DevKafkaError) as info:
        fetch_jars(tmp_path / "libs", mvn="no-such-maven-binary")

    assert str(info.value) == (
        "cannot fetch the Kafka 4.1.1 jars: 'no-such-maven-binary' (Apache Maven) is not on PATH"
    )


# ------------------------------------------------------------------------------- fake JVM
def _fake_java(path: Path, body: str) -> Path:
    """A shell script standing in for ``java``: reports Java 17, then runs ``body`` with "$@"."""
    path.write_text(
        '#!/bin/sh\nif [ "$1" = "-version" ]; then echo \'openjdk version "17.0.9"\' >&2; exit 0; fi\n' + body
    )
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_old_java_is_rejected_with_its_version(tmp_path: Path) -> None:
    """Java 11 is refused with the version found and the version needed."""
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\"' >&2\n")
    java.chmod(0o755)

    with pytest.raises(DevKafkaError) as info:
        find_java({"JAVA_HOME": str(tmp_path / "jdk")})

    assert str(info.value) == f"{java} is Java 11; Kafka 4.1.1 needs Java 17+"


def test_failed_format_reports_the_tool_output(tmp_path: Path) -> None:
    """If formatting the data dir fails, the error quotes the tool's output and nothing is left behind."""
    java = _fake_java(tmp_path / "java", "echo 'Error: meta.properties is broken'; exit 1\n")
    kafka = LocalKafka(java=java, libs=_fake_libs(tmp_path / "libs"), work_root=tmp_path)

    with pytest.raises(DevKafkaError) as info:
        kafka.start()

    assert str(info.value) == (
        "formatting the Kafka data directory failed (exit 1):\nError: meta.properties is broken"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["java", "libs"]


def test_broker_crash_reports_the_log_tail(tmp_path: Path) -> None:
    """A JVM that exits during start-up fails start() with the end of broker.log."""
    java = _fake_java(
        tmp_path / "java",
        'case "$*" in *StorageTool*) exit 0;; esac\necho "ERROR Fatal error during KafkaServer startup"\nexit 1\n',
    )
    kafka = LocalKafka(java=java, libs=_fake_libs(tmp_path / "libs"), work_root=tmp_path)

    with pytest.raises(DevKafkaError) as info:
        kafka.start()

    assert str(info.value) == (
        "the Kafka broker exited with code 1 during start-up; broker.log tail:\n"
        "ERROR Fatal error during KafkaServer startup"
    )


def test_port_race_is_retried_once_with_new_ports(tmp_path: Path) -> None:
    """'Address already in use' at start-up picks new ports once, then gives up with the log."""
    attempts = tmp_path / "attempts"
    java = _fake_java(
        tmp_path / "java",
        f'case "$*" in *StorageTool*) exit 0;; esac\necho x >> {attempts}\n'
        'echo "java.net.BindException: Address already in use"\nexit 1\n',
    )
    kafka = LocalKafka(java=java, libs=_fake_libs(tmp_path / "libs"), work_root=tmp_path)

    with pytest.raises(DevKafkaError) as info:
        kafka.start()

    assert str(info.value).startswith("Kafka could not bind its ports (Address already in use)")
    assert attempts.read_text().count("x") == 2


def test_damaged_startup_archive_is_deleted_and_start_retried_without_it(tmp_path: Path) -> None:
    """A class-data archive that crashes the JVM is removed, and formatting runs again without it."""
    formats = tmp_path / "formats"
    java = _fake_java(
        tmp_path / "java",
        f'case "$*" in *SharedArchiveFile*) echo "SIGBUS"; exit 134;; esac\n'
        f'case "$*" in *StorageTool*) echo x >> {formats}; exit 0;; esac\n'
        'echo "ERROR stop here"\nexit 1\n',
    )
    libs = _fake_libs(tmp_path / "libs")
    archive = tmp_path / "broker.jsa"
    archive.write_bytes(b"truncated")

    with pytest.raises(DevKafkaError, match="exited with code 1"):
        LocalKafka(java=java, libs=libs, work_root=tmp_path).start()

    assert (archive.exists(), formats.read_text()) == (False, "x\n")


def test_broker_that_logs_ready_but_never_answers_fails_with_the_log_tail(tmp_path: Path) -> None:
    """The log line alone is not readiness: without an admin round trip start() fails, quoting the log."""
    java = _fake_java(
        tmp_path / "java",
        'case "$*" in *StorageTool*) exit 0;; esac\n'
        'echo "[KafkaRaftServer nodeId=1] Kafka Server started"\nexec sleep 60\n',
    )
    kafka = LocalKafka(java=java, libs=_fake_libs(tmp_path / "libs"), work_root=tmp_path, ready_timeout=1.0)

    with pytest.raises(DevKafkaError) as info:
        kafka.start()

    assert str(info.value).endswith(
        "(last error: KafkaConnectionError); broker.log tail:\n[KafkaRaftServer nodeId=1] Kafka Server started"
    )
    assert kafka.pid is None


def test_bootstrap_before_start_is_an_error() -> None:
    """Asking a broker that is not running for its address says so."""
    with pytest.raises(DevKafkaError) as info:
        _ = LocalKafka().bootstrap_servers

    assert str(info.value) == "the local Kafka broker is not started"


# ------------------------------------------------------------------------------- CLI state
def test_broker_state_round_trips_through_its_file(tmp_path: Path) -> None:
    """What ``pyheart kafka start`` writes is what status and stop read."""
    state = BrokerState(pid=42, bootstrap_servers="127.0.0.1:9092", work_dir="/tmp/w", started_at=1.5)
    state.write(tmp_path / "broker.json")

    assert BrokerState.read(tmp_path / "broker.json") == state


def test_state_of_a_reused_pid_is_not_alive(tmp_path: Path) -> None:
    """A live process that is not our broker (pid reuse) does not count as the broker."""
    state = BrokerState(os.getpid(), "127.0.0.1:9092", str(tmp_path / "gone"), 0.0)

    assert state.alive() is False


def test_state_of_an_exited_broker_is_not_alive(tmp_path: Path) -> None:
    """A pid that has exited is not running."""
    done = subprocess.Popen(["true"])
    done.wait()

    assert BrokerState(done.pid, "127.0.0.1:9092", str(tmp_path), 0.0).alive() is False


def test_stopping_a_dead_broker_removes_what_it_left(tmp_path: Path) -> None:
    """Stop on a broker that is already gone reports it and deletes its work directory."""
    work = tmp_path / "pyheart-kafka-x"
    (work / "data-1").mkdir(parents=True)
    state = BrokerState(os.getpid(), "127.0.0.1:9092", str(work), 0.0)

    assert (state.stop(), work.exists()) == ("not-running", False)


@pytest.fixture
def cli_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PyHeart cache for CLI runs."""
    monkeypatch.setenv("PYHEART_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_cli_start_refuses_a_busy_port(cli_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``pyheart kafka start --port`` on a taken port exits 1 naming the port, before any download."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        code = main(["kafka", "start", "--port", str(port)])

    assert (code, capsys.readouterr().err) == (1, f"pyheart: error: port {port} on 127.0.0.1 is in use\n")
    assert not (cli_cache / "kafka-4.1.1" / "libs").exists()


def test_cli_status_without_broker_exits_1(cli_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``pyheart kafka status`` says "not running" and exits 1 when nothing was started."""
    assert (main(["kafka", "status"]), capsys.readouterr().out) == (1, "not running\n")


def test_cli_stop_without_broker_is_a_no_op(cli_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``pyheart kafka stop`` with nothing recorded succeeds and says so."""
    assert (main(["kafka", "stop"]), capsys.readouterr().out) == (0, "no broker recorded\n")


async def test_unreachable_broker_fails_naming_address_and_last_error() -> None:
    """Waiting for a broker nobody runs ends with the address and the error class, not a hang."""
    port = free_port()

    with pytest.raises(DevKafkaError) as info:
        await wait_reachable(f"127.0.0.1:{port}", timeout_s=1.0)

    assert str(info.value) == (
        f"Kafka at 127.0.0.1:{port} did not answer describe_cluster within 1 s "
        "(last error: KafkaConnectionError)"
    )
