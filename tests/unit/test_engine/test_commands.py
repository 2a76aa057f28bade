"""``pyheart config check`` and the argument checks of ``run`` and ``replay``."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from pyheart.broker.cli import main
from pyheart.broker.logs import configure_logging

EXAMPLE = Path(__file__).parents[3] / "examples" / "engine-minimal.yaml"


def test_example_config_checks_ok(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped example configuration passes ``config check``."""
    assert main(["config", "check", "-c", str(EXAMPLE)]) == 0
    assert "ok (1 pipeline(s), 0 adapter(s))" in capsys.readouterr().out


def test_config_check_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken configuration exits 1 with the path of the problem."""
    path = tmp_path / "bad.yaml"
    path.write_text("pipelines: [{name: a, input: {topics: [i]}, routes: [], dead_letter: {topic: d}}]\n")
    assert main(["config", "check", "-c", str(path)]) == 1
    assert "pipelines[0](a).routes: List should have at least 1 item" in capsys.readouterr().err


def test_replay_needs_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    """replay without --to-topic or --pipeline says what to add."""
    assert main(["replay", "--topic", "t", "--all"]) == 1
    assert "give exactly one target, --to-topic TOPIC or --pipeline NAME" in capsys.readouterr().err


def test_replay_needs_a_range(capsys: pytest.CaptureFixture[str]) -> None:
    """replay without a range or --all refuses to replay a whole topic by accident."""
    assert main(["replay", "--topic", "t", "--to-topic", "u"]) == 1
    assert "choose a range (--from-offset / --from-time) or --all" in capsys.readouterr().err


def test_replay_time_needs_zone(capsys: pytest.CaptureFixture[str]) -> None:
    """A time without a zone is refused rather than guessed."""
    assert main(["replay", "--topic", "t", "--to-topic", "u", "--from-time", "2024-01-01T00:00:00"]) == 1
    assert "has no time zone" in capsys.readouterr().err


def test_run_unknown_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    """run --pipeline with a name the configuration lacks lists the known ones."""
    assert main(["run", "-c", str(EXAMPLE), "--pipeline", "nope"]) == 1
    assert "no pipeline named 'nope' (known: adt-passthrough)" in capsys.readouterr().err


def test_run_unreachable_broker_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run against a broker that is not there exits 1 naming the address, without a traceback."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:1', request_timeout_ms: 2000}\n"
        "metrics: {enabled: false}\n"
        "pipelines: [{name: a, input: {topics: [i]}, routes: [{topic: o}], dead_letter: {topic: d}}]\n"
    )
    try:
        code = main(["run", "-c", str(path)])
    finally:
        configure_logging(logging.WARNING, io.StringIO())  # run pointed the log at the captured stderr
    assert code == 1
    assert "pyheart: error: Kafka at 127.0.0.1:1: KafkaConnectionError" in capsys.readouterr().err
