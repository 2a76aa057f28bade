"""The engine configuration: models, env expansion, errors naming paths, chain checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyheart.broker.engine import parse_settings
from pyheart.broker.engine.commands import check
from pyheart.broker.engine.config import load_settings
from pyheart.broker.errors import ConfigError, MissingEnvironmentError

PLUGINS = Path(__file__).parents[2] / "component"


@pytest.fixture(autouse=True)
def _plugins_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGINS))


def doc(**pipeline: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "adt",
        "input": {"topics": ["in"], "format": "text/plain"},
        "routes": [{"topic": "out"}],
        "dead_letter": {"topic": "dlq"},
    }
    base.update(pipeline)
    return {"pipelines": [base]}


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        check(parse_settings(data), set())
    return str(info.value)


def test_defaults() -> None:
    """Group id defaults to the name; at-least-once, patient keys and localhost by default."""
    s = parse_settings(doc())
    p = s.pipelines[0]
    assert (p.group, p.exactly_once, p.key.strategy, s.kafka.bootstrap_servers) == (
        "adt",
        False,
        "patient",
        "localhost:9092",
    )


def test_unknown_key_names_its_path() -> None:
    """An unknown key is rejected with its path and the pipeline's name."""
    assert "pipelines[0](adt).routes[0].topik: unknown key [extra_forbidden]" in error_of(
        doc(routes=[{"topik": "x"}])
    )


def test_missing_field_names_its_path() -> None:
    """A missing required field is reported at its path."""
    data = doc()
    del data["pipelines"][0]["dead_letter"]
    assert "pipelines[0](adt).dead_letter: is required [missing]" in error_of(data)


def test_bad_topic_name() -> None:
    """A topic name Kafka would refuse is reported."""
    assert "pipelines[0](adt).routes[0].topic" in error_of(doc(routes=[{"topic": "bad topic"}]))


def test_unknown_hook_event() -> None:
    """A hook on an event that does not exist names the known events."""
    assert "unknown events message_exploded" in error_of(doc(hooks={"message_exploded": {"topic": "a"}}))


def test_hook_plugin_must_be_listed() -> None:
    """A hook naming a plugin not under ``plugins`` is rejected."""
    assert "hooks.message_received: plugin 'pager' is not listed under 'plugins'" in error_of(
        doc(hooks={"message_received": {"plugins": ["pager"]}})
    )


def test_dead_letter_topic_must_differ_from_input() -> None:
    """Dead-lettering into the input topic would loop; it is refused."""
    assert "dead_letter.topic must not be one of the input topics" in error_of(
        doc(dead_letter={"topic": "in"})
    )


def test_header_key_strategy_needs_header() -> None:
    """``strategy: header`` without a header name is refused."""
    assert "strategy 'header' needs 'header'" in error_of(doc(key={"strategy": "header"}))


def test_env_expansion_in_bootstrap(tmp_path: Path) -> None:
    """``${VAR:-default}`` is expanded before validation."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "kafka: {bootstrap_servers: '${BROKERS:-k1:9092}'}\n"
        "pipelines: [{name: a, input: {topics: [i]}, routes: [{topic: o}], dead_letter: {topic: d}}]\n"
    )
    settings, _ = load_settings(path, environ={})
    assert settings.kafka.bootstrap_servers == "k1:9092"


def test_missing_env_reported_with_path(tmp_path: Path) -> None:
    """Every unset variable is reported with where it is used."""
    path = tmp_path / "c.yaml"
    path.write_text("kafka: {bootstrap_servers: '${BROKERS}'}\npipelines: []\n")
    with pytest.raises(MissingEnvironmentError, match=r"\$\{BROKERS\} \(at kafka.bootstrap_servers\)"):
        load_settings(path, environ={})


def test_chain_mismatch_names_the_step() -> None:
    """A transformer that cannot consume what the previous step produces is named."""
    text = error_of(
        doc(
            transformers=[
                {"id": "json", "plugin": "engine_plugins:ToJson"},
                {"id": "up", "plugin": "engine_plugins:Upper"},
            ]
        )
    )
    assert (
        "pipelines[0](adt).transformers[1](up): consumes text/plain but receives application/json "
        "from transformer 'json'"
    ) in text


def test_chain_mismatch_with_input_format() -> None:
    """The first transformer is checked against the input format."""
    text = error_of(
        doc(
            input={"topics": ["in"], "format": "application/hl7-v2"},
            transformers=[{"id": "up", "plugin": "engine_plugins:Upper"}],
        )
    )
    assert "consumes text/plain but receives application/hl7-v2 from input.format" in text


def test_unknown_plugin_class() -> None:
    """An unknown plugin reference is reported with its step."""
    assert "pipelines[0](adt).validators[0](v): unknown plugin class 'no-such-plugin'" in error_of(
        doc(validators=[{"id": "v", "plugin": "no-such-plugin"}])
    )


def test_plugin_config_checked_against_schema() -> None:
    """A plugin's config is validated by its schema, naming the field."""
    text = error_of(
        doc(transformers=[{"id": "t", "plugin": "engine_plugins:Tagger", "config": {"header": "h"}}])
    )
    assert "pipelines[0](adt).transformers[0](t).config.value: is required [required]" in text


def test_validator_slot_needs_a_validator() -> None:
    """A transformer placed among validators is refused."""
    assert "'engine_plugins:Upper' is not a validator" in error_of(
        doc(validators=[{"id": "v", "plugin": "engine_plugins:Upper"}])
    )


def test_errors_of_every_pipeline_reported_together() -> None:
    """Problems of several pipelines come in one error."""
    data = doc(validators=[{"id": "v", "plugin": "nope-1"}])
    second = dict(data["pipelines"][0], name="b", validators=[{"id": "v", "plugin": "nope-2"}])
    data["pipelines"].append(second)
    text = error_of(data)
    assert "nope-1" in text
    assert "nope-2" in text


def test_each_pipeline_has_its_own_registry() -> None:
    """Two pipelines get separate registries and plugin instances."""
    data = doc(validators=[{"id": "v", "plugin": "engine_plugins:RejectX"}])
    data["pipelines"].append(dict(data["pipelines"][0], name="b"))
    first, second = check(parse_settings(data), set())
    assert first.registry is not second.registry
    assert first.registry.get_plugin("v") is not second.registry.get_plugin("v")


def test_retry_delay_grows_and_is_bounded() -> None:
    """Backoff doubles per attempt, is capped, and jitter stays within its band."""
    retry = (
        parse_settings(doc(retry={"initial_backoff_ms": 100, "max_backoff_ms": 1000, "jitter": 0.2}))
        .pipelines[0]
        .retry
    )
    assert [retry.delay_s(a, 0.5) for a in (1, 2, 3, 10)] == [0.1, 0.2, 0.4, 1.0]
    assert (retry.delay_s(1, 0.0), retry.delay_s(1, 0.999999)) == pytest.approx((0.08, 0.12), rel=1e-4)
