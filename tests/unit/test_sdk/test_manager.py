"""PluginManager: configuration loading, env expansion, secrets, start/stop."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import sdk_plugins
from sdk_plugins import InsuranceAdapter, Recorder

from pyheart.broker import PluginManager, PluginState, PluginType, Secret
from pyheart.broker.errors import ConfigError, MissingEnvironmentError, PluginStartError

YAML_CONFIG = """
plugins:
  - id: insurer
    class: sdk_plugins:InsuranceAdapter
    config:
      system_id: "${INS_SYSTEM:-default-system}"
      base_url: "https://${INS_HOST}/api"
      timeout: "${INS_TIMEOUT:-45}"
      api_key: "${INS_API_KEY}"
  - id: rec
    class: sdk_plugins:Recorder
    priority: 5
    config: {name: rec}
"""

ENV = {"INS_HOST": "claims.example.org", "INS_API_KEY": "tok-SECRET-123"}


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    sdk_plugins.CALLS.clear()


def test_load_from_yaml_file(tmp_path: Path) -> None:
    """A YAML file loads every plugin, expanding ${VAR} and ${VAR:-default}."""
    path = tmp_path / "plugins.yaml"
    path.write_text(YAML_CONFIG)
    manager = PluginManager()
    assert manager.load_plugins_from_config(path, environ=ENV) == 2
    ins = manager.get_plugin("insurer")
    assert isinstance(ins, InsuranceAdapter)
    assert ins.config["system_id"] == "default-system"
    assert ins.config["base_url"] == "https://claims.example.org/api"
    assert ins.config["timeout"] == 45
    assert manager.registry.list_plugins()["rec"].priority == 5


def test_load_from_json_file(tmp_path: Path) -> None:
    """A JSON file is accepted as well."""
    path = tmp_path / "plugins.json"
    path.write_text(
        json.dumps({"plugins": [{"id": "r", "class": "sdk_plugins:Recorder", "config": {"name": "r"}}]})
    )
    manager = PluginManager()
    assert manager.load_plugins_from_config(str(path)) == 1
    assert isinstance(manager.get_plugin("r"), Recorder)


def test_load_from_dict_mapping_form() -> None:
    """A dict with plugins as a mapping of id to entry is accepted."""
    manager = PluginManager()
    config = {"plugins": {"r1": {"class": "sdk_plugins:Recorder", "config": {"name": "r1"}}}}
    assert manager.load_plugins_from_config(config) == 1
    assert manager.list_plugins(PluginType.WORKFLOW)[0].name == "r1"


def test_every_missing_variable_reported_at_once() -> None:
    """All missing environment variables are named together, with where they are used."""
    manager = PluginManager()
    with pytest.raises(MissingEnvironmentError) as info:
        manager.load_plugins_from_config(
            {"plugins": []} | _insurer("${A_MISSING}", "${B_MISSING}"), environ={}
        )
    assert str(info.value) == (
        "environment variables not set: ${A_MISSING} (at plugins[0].config.system_id), "
        "${B_MISSING} (at plugins[0].config.base_url)"
    )


def _insurer(system_id: str, base_url: str, **extra: Any) -> dict[str, Any]:
    cfg = {"system_id": system_id, "base_url": base_url, **extra}
    return {"plugins": [{"id": "insurer", "class": "sdk_plugins:InsuranceAdapter", "config": cfg}]}


def test_errors_across_plugins_reported_together_and_nothing_registered() -> None:
    """A bad document reports every plugin's problems and registers nothing."""
    manager = PluginManager()
    config = {
        "plugins": [
            {"id": "ok", "class": "sdk_plugins:Recorder", "config": {"name": "ok"}},
            {
                "id": "insurer",
                "class": "sdk_plugins:InsuranceAdapter",
                "config": {"base_url": "ftp://VALUE-7"},
            },
            {"id": "ghost", "class": "nowhere_mod:Nope"},
        ]
    }
    with pytest.raises(ConfigError) as info:
        manager.load_plugins_from_config(config)
    text = str(info.value)
    assert "plugin 'insurer': invalid config: system_id: is required [required]" in text
    assert "base_url: must match the pattern ^https://.* [pattern]" in text
    assert "plugin 'ghost': plugin class 'nowhere_mod:Nope': cannot import module 'nowhere_mod'" in text
    assert "VALUE-7" not in text
    assert manager.registry.list_plugins() == {}


def test_unknown_entry_keys_rejected() -> None:
    """Misspelt keys in a plugin entry are rejected by name."""
    with pytest.raises(ConfigError, match=r"plugins\[0\]: unknown keys: confg"):
        PluginManager().load_plugins_from_config(
            {"plugins": [{"id": "r", "class": "sdk_plugins:Recorder", "confg": {}}]}
        )


def test_duplicate_ids_in_document() -> None:
    """The same id twice in one document is an error."""
    entry = {"id": "r", "class": "sdk_plugins:Recorder"}
    with pytest.raises(ConfigError, match=r"plugins\[1\].id: plugin id 'r' is used twice \[unique\]"):
        PluginManager().load_plugins_from_config({"plugins": [entry, entry]})


def test_secret_from_environment_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    """A secret field from ${VAR} becomes a Secret whose repr hides it and that never reaches logs."""
    caplog.set_level(logging.DEBUG)
    manager = PluginManager()
    manager.load_plugins_from_config(
        _insurer("s", "https://h", api_key="${KEY}"), environ={"KEY": "tok-SECRET-123"}
    )
    plugin = manager.get_plugin("insurer")
    assert plugin is not None
    secret = plugin.config["api_key"]
    assert isinstance(secret, Secret)
    assert secret.get() == "tok-SECRET-123"
    assert "tok-SECRET-123" not in repr(secret) + str(secret) + repr(plugin) + repr(plugin.config)
    assert "tok-SECRET-123" not in caplog.text


def test_literal_secret_is_refused() -> None:
    """A secret written literally in a configuration is refused without echoing it."""
    with pytest.raises(ConfigError) as info:
        PluginManager().load_plugins_from_config(_insurer("s", "https://h", api_key="tok-LITERAL-9"))
    assert "api_key: must be an environment reference such as ${VAR}, not a literal [secret]" in str(
        info.value
    )
    assert "tok-LITERAL-9" not in str(info.value)


def test_env_values_coerced_for_typed_fields() -> None:
    """Numbers from environment variables are coerced; bad ones name the rule, not the value."""
    with pytest.raises(ConfigError) as info:
        PluginManager().load_plugins_from_config(
            _insurer("s", "https://h", timeout="${T}"), environ={"T": "ab9"}
        )
    assert "timeout: must be of type integer [type]" in str(info.value)
    assert "ab9" not in str(info.value)


def test_dependency_errors_surface_at_load() -> None:
    """Missing dependencies are reported when the configuration loads."""
    config = {
        "plugins": [{"id": "a", "class": "sdk_plugins:Recorder", "config": {"name": "a", "deps": ["zz"]}}]
    }
    with pytest.raises(Exception, match="plugin 'a' depends on 'zz', which is not registered"):
        PluginManager().load_plugins_from_config(config)


async def test_start_and_stop_lifecycle() -> None:
    """start() initialises and activates; stop() cleans up."""
    manager = PluginManager()
    manager.load_plugins_from_config(
        {"plugins": [{"id": "r", "class": "sdk_plugins:Recorder", "config": {}}]}
    )
    await manager.start()
    assert manager.registry.state("r") is PluginState.ACTIVE
    await manager.stop()
    assert manager.registry.state("r") is PluginState.CLEANED_UP


async def test_failed_start_names_plugins_and_stop_is_safe() -> None:
    """A failed start names the failing plugins; stop() afterwards cleans up the rest."""
    manager = PluginManager()
    manager.load_plugins_from_config(
        {
            "plugins": [
                {"id": "good", "class": "sdk_plugins:Recorder", "config": {"name": "good"}},
                {"id": "bad", "class": "sdk_plugins:Recorder", "config": {"name": "bad", "fail": "raise"}},
            ]
        }
    )
    with pytest.raises(PluginStartError, match="plugins failed to initialise: bad"):
        await manager.start()
    await manager.stop()
    await manager.stop()
    assert manager.registry.state("good") is PluginState.CLEANED_UP
    assert ("cleanup", "good") in sdk_plugins.CALLS


async def test_stop_without_start() -> None:
    """stop() before start() is harmless."""
    manager = PluginManager()
    manager.load_plugins_from_config({"plugins": [{"id": "r", "class": "sdk_plugins:Recorder"}]})
    await manager.stop()
    assert manager.registry.state("r") is PluginState.VALIDATED


async def test_async_context_manager() -> None:
    """`async with PluginManager()` starts and stops."""
    manager = PluginManager()
    manager.load_plugin(Recorder, "r", {"name": "r"})
    async with manager:
        assert manager.registry.state("r") is PluginState.ACTIVE
    assert manager.registry.state("r") is PluginState.CLEANED_UP


def test_invalid_yaml_file_is_a_clear_error(tmp_path: Path) -> None:
    """Malformed YAML names the file and position."""
    path = tmp_path / "bad.yaml"
    path.write_text("plugins:\n  - id: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line \d+ column \d+"):
        PluginManager().load_plugins_from_config(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A missing configuration file is named."""
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        PluginManager().load_plugins_from_config(tmp_path / "nope.yaml")
