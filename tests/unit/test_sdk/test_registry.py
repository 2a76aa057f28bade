"""PluginRegistry: catalogue, lifecycle, dependencies, hooks and discovery."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import sdk_plugins
from sdk_plugins import InsuranceAdapter, Recorder

from pyheart.broker import PluginRegistry, PluginState, PluginType
from pyheart.broker.errors import (
    PluginConfigError,
    PluginDependencyError,
    PluginLifecycleError,
    PluginLoadError,
    PluginNotFoundError,
)


def rec(**cfg: Any) -> Recorder:
    return Recorder(config=cfg)


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    sdk_plugins.CALLS.clear()


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name.startswith("pyheart")]


def test_register_and_get() -> None:
    """A registered plugin is returned by get_plugin and listed with its metadata."""
    reg = PluginRegistry()
    plugin = rec(name="a")
    assert reg.register_plugin("a", plugin) is True
    assert reg.get_plugin("a") is plugin
    assert reg.list_plugins()["a"].name == "a"
    assert reg.get_plugin("missing") is None


def test_register_duplicate_id_returns_false() -> None:
    """Registering an id twice is refused and leaves the first plugin in place."""
    reg = PluginRegistry()
    first = rec(name="a")
    reg.register_plugin("a", first)
    assert reg.register_plugin("a", rec(name="b")) is False
    assert reg.get_plugin("a") is first


def test_get_plugins_by_type_in_priority_order() -> None:
    """get_plugins_by_type filters by type and orders by priority (lower first)."""
    reg = PluginRegistry()
    reg.register_plugin("v2", rec(name="v2", type="validator", prio=200))
    reg.register_plugin("v1", rec(name="v1", type="validator", prio=10))
    reg.register_plugin("w", rec(name="w", type="workflow"))
    names = [p.get_metadata().name for p in reg.get_plugins_by_type(PluginType.VALIDATOR)]
    assert names == ["v1", "v2"]


def test_unregister() -> None:
    """unregister_plugin removes a plugin; unknown ids return False."""
    reg = PluginRegistry()
    reg.register_plugin("a", rec(name="a"))
    assert reg.unregister_plugin("a") is True
    assert reg.get_plugin("a") is None
    assert reg.unregister_plugin("a") is False


async def test_unregister_running_plugin_is_an_error() -> None:
    """An initialised plugin cannot be unregistered before cleanup."""
    reg = PluginRegistry()
    reg.register_plugin("a", rec(name="a"))
    await reg.initialize_all()
    with pytest.raises(
        PluginLifecycleError, match="plugin 'a' is initialized: clean it up before unregistering it"
    ):
        reg.unregister_plugin("a")


def test_invalid_config_names_plugin_path_and_rule_not_value() -> None:
    """A schema violation raises with plugin id, field path and rule, and never the value."""
    reg = PluginRegistry()
    bad = InsuranceAdapter(config={"system_id": "X", "base_url": "http://SECRET-HOST-77", "timeout": 0})
    with pytest.raises(PluginConfigError) as info:
        reg.register_plugin("ins", bad)
    text = str(info.value)
    assert text.startswith("plugin 'ins': invalid config:")
    assert "base_url: must match the pattern ^https://.* [pattern]" in text
    assert "timeout: must be >= 1 [minimum]" in text
    assert "SECRET-HOST-77" not in text
    assert reg.get_plugin("ins") is None


def test_config_defaults_are_applied() -> None:
    """Defaults from the schema fill fields the config leaves out."""
    reg = PluginRegistry()
    plugin = InsuranceAdapter(config={"system_id": "X", "base_url": "https://h"})
    reg.register_plugin("ins", plugin)
    assert plugin.config["timeout"] == 30
    assert plugin.config["mode"] == "test"


def test_unknown_config_key_rejected() -> None:
    """Keys the schema does not declare are rejected."""
    reg = PluginRegistry()
    with pytest.raises(PluginConfigError, match=r"timeuot: unknown key \[unknown\]"):
        reg.register_plugin(
            "ins", InsuranceAdapter(config={"system_id": "X", "base_url": "https://h", "timeuot": 3})
        )


def test_required_type_enum_rules() -> None:
    """required, type and enum rules each report their own rule name."""
    reg = PluginRegistry()
    with pytest.raises(PluginConfigError) as info:
        reg.register_plugin("ins", InsuranceAdapter(config={"base_url": 5, "mode": "prod"}))
    text = str(info.value)
    assert "system_id: is required [required]" in text
    assert "base_url: must be of type string [type]" in text
    assert "mode: must be one of: live, test [enum]" in text


def test_custom_validate_config_can_reject() -> None:
    """A plugin's validate_config returning False rejects its config."""

    class Picky(Recorder):
        def validate_config(self, config: dict[str, Any]) -> bool:
            return False

    with pytest.raises(PluginConfigError, match=r"rejected by the plugin's validate_config\(\) \[custom\]"):
        PluginRegistry().register_plugin("p", Picky(config={}))


def test_states_are_observable() -> None:
    """After registration the state is validated (registered, then validated)."""
    reg = PluginRegistry()
    reg.register_plugin("a", rec(name="a"))
    assert reg.state("a") is PluginState.VALIDATED


def test_state_of_unknown_plugin() -> None:
    """Asking the state of an unknown id names it."""
    with pytest.raises(PluginNotFoundError, match="no plugin registered as 'zz'"):
        PluginRegistry().state("zz")


def test_illegal_transition_is_an_error() -> None:
    """Activating a plugin that was never initialised is an illegal transition."""
    reg = PluginRegistry()
    reg.register_plugin("a", rec(name="a"))
    with pytest.raises(PluginLifecycleError, match="plugin 'a': illegal transition validated -> active"):
        reg.activate("a")


async def test_initialize_all_returns_results_and_isolates_failures(caplog: pytest.LogCaptureFixture) -> None:
    """One plugin failing does not stop the others; the failure is logged without its text."""
    caplog.set_level(logging.INFO)
    reg = PluginRegistry()
    reg.register_plugin("ok1", rec(name="ok1", prio=1))
    reg.register_plugin("bad", rec(name="bad", fail="raise", prio=2))
    reg.register_plugin("falsy", rec(name="falsy", fail="false", prio=3))
    reg.register_plugin("ok2", rec(name="ok2", prio=4))
    results = await reg.initialize_all()
    assert results == {"ok1": True, "bad": False, "falsy": False, "ok2": True}
    assert reg.state("bad") is PluginState.FAILED
    assert reg.state("ok2") is PluginState.INITIALIZED
    failure = [e for e in events(caplog) if e["event"] == "plugin.initialize" and e["plugin_id"] == "bad"]
    assert failure[0]["outcome"] == "failure"
    assert failure[0]["error_type"] == "RuntimeError"
    assert "4242-CANARY" not in caplog.text


async def test_dependency_order_with_priority_tiebreak() -> None:
    """Dependencies initialise first; priority orders independent plugins."""
    reg = PluginRegistry()
    reg.register_plugin("app", rec(name="app", deps=["db", "cache"], prio=1))
    reg.register_plugin("cache", rec(name="cache", prio=50))
    reg.register_plugin("db", rec(name="db", prio=20))
    reg.register_plugin("solo", rec(name="solo", prio=30))
    await reg.initialize_all()
    assert [name for op, name in sdk_plugins.CALLS if op == "init"] == ["db", "solo", "cache", "app"]


async def test_dependency_by_metadata_name() -> None:
    """A dependency may name the other plugin's metadata name instead of its id."""
    reg = PluginRegistry()
    reg.register_plugin("x", rec(name="user", deps=["storage"]))
    reg.register_plugin("y", rec(name="storage"))
    assert reg.initialization_order() == ["y", "x"]


async def test_dependent_of_failed_plugin_is_not_initialised() -> None:
    """A plugin whose dependency failed is reported False and never initialised."""
    reg = PluginRegistry()
    reg.register_plugin("db", rec(name="db", fail="false"))
    reg.register_plugin("app", rec(name="app", deps=["db"]))
    assert await reg.initialize_all() == {"db": False, "app": False}
    assert ("init", "app") not in sdk_plugins.CALLS


def test_missing_dependency_names_it() -> None:
    """A missing dependency is an error naming the plugin and the dependency."""
    reg = PluginRegistry()
    reg.register_plugin("app", rec(name="app", deps=["ghost"]))
    with pytest.raises(
        PluginDependencyError, match="plugin 'app' depends on 'ghost', which is not registered"
    ):
        reg.initialization_order()


def test_dependency_cycle_names_members() -> None:
    """A dependency cycle is an error naming the cycle."""
    reg = PluginRegistry()
    reg.register_plugin("a", rec(name="a", deps=["b"]))
    reg.register_plugin("b", rec(name="b", deps=["c"]))
    reg.register_plugin("c", rec(name="c", deps=["a"]))
    with pytest.raises(PluginDependencyError, match=r"dependency cycle: a -> b -> c -> a"):
        reg.initialization_order()


def test_dependency_on_disabled_plugin() -> None:
    """Depending on a disabled plugin is an error naming both."""
    reg = PluginRegistry()
    reg.register_plugin("db", rec(name="db", on=False))
    reg.register_plugin("app", rec(name="app", deps=["db"]))
    with pytest.raises(PluginDependencyError, match="plugin 'app' depends on 'db', which is disabled"):
        reg.initialization_order()


async def test_disabled_plugins_are_listed_not_initialised() -> None:
    """Disabled plugins are registered and listed but initialize_all leaves them alone."""
    reg = PluginRegistry()
    reg.register_plugin("off", rec(name="off", on=False))
    reg.register_plugin("on", rec(name="on"))
    assert set(reg.list_plugins()) == {"off", "on"}
    assert await reg.initialize_all() == {"on": True}
    assert reg.state("off") is PluginState.VALIDATED
    assert ("init", "off") not in sdk_plugins.CALLS


async def test_enabled_override_at_registration() -> None:
    """register_plugin(enabled=False) overrides the plugin's own metadata."""
    reg = PluginRegistry()
    reg.register_plugin("p", rec(name="p"), enabled=False)
    assert reg.list_plugins()["p"].enabled is False
    assert await reg.initialize_all() == {}


async def test_cleanup_all_reverse_order_and_idempotent() -> None:
    """cleanup_all runs in reverse initialisation order, once, even when one cleanup raises."""
    reg = PluginRegistry()
    reg.register_plugin("first", rec(name="first", prio=1))
    reg.register_plugin("second", rec(name="second", prio=2, fail="cleanup"))
    reg.register_plugin("third", rec(name="third", prio=3))
    await reg.initialize_all()
    await reg.cleanup_all()
    await reg.cleanup_all()
    cleanups = [name for op, name in sdk_plugins.CALLS if op == "cleanup"]
    assert cleanups == ["third", "second", "first"]
    assert reg.state("second") is PluginState.CLEANED_UP
    assert reg.get_plugin("first") is not None
    assert reg.get_plugin("first").initialized is False


async def test_failed_plugin_is_cleaned_up() -> None:
    """A plugin whose initialize raised still gets cleanup() (it may hold partial resources)."""
    reg = PluginRegistry()
    reg.register_plugin("bad", rec(name="bad", fail="raise"))
    await reg.initialize_all()
    await reg.cleanup_all()
    assert ("cleanup", "bad") in sdk_plugins.CALLS


async def test_hooks_sync_and_async_in_priority_order() -> None:
    """Callbacks run lower priority first, ties in registration order, sync and async alike."""
    reg = PluginRegistry()
    seen: list[str] = []

    async def async_cb(**kw: Any) -> str:
        seen.append("async50")
        return "a"

    reg.register_hook("claim_submitted", lambda **kw: seen.append("sync100-1") or "s1")
    reg.register_hook("claim_submitted", async_cb, priority=50)
    reg.register_hook("claim_submitted", lambda **kw: seen.append("sync100-2") or "s2")
    reg.register_hook("claim_submitted", lambda **kw: seen.append("sync10") or "s0", priority=10)
    results = await reg.trigger_hook("claim_submitted", claim_id="c1")
    assert seen == ["sync10", "async50", "sync100-1", "sync100-2"]
    assert results == ["s0", "a", "s1", "s2"]


async def test_failing_hook_is_isolated_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    """A raising callback does not stop the others; it is logged by class name and counted."""
    caplog.set_level(logging.INFO)
    reg = PluginRegistry()

    def boom(**kw: Any) -> None:
        raise ValueError(f"bad value {kw['data']}")

    reg.register_hook("data_received", boom, priority=1)
    reg.register_hook("data_received", lambda **kw: "after")
    assert await reg.trigger_hook("data_received", data="PHI-CANARY-9") == ["after"]
    assert reg.hook_failures == {"data_received": 1}
    failure = next(e for e in events(caplog) if e["event"] == "hook.failure")
    assert failure["hook"] == "data_received"
    assert failure["error_type"] == "ValueError"
    assert "PHI-CANARY-9" not in caplog.text


async def test_trigger_unknown_hook_is_empty() -> None:
    """Triggering a hook nobody listens to returns no results."""
    assert await PluginRegistry().trigger_hook("nothing") == []


def test_unregister_hook() -> None:
    """unregister_hook removes a callback; a second removal returns False."""
    reg = PluginRegistry()

    def cb() -> None:
        return None

    reg.register_hook("e", cb)
    assert reg.plugin_hooks["e"] == [cb]
    assert reg.unregister_hook("e", cb) is True
    assert reg.unregister_hook("e", cb) is False


def test_discover_plugins_in_package_and_subpackages() -> None:
    """discover_plugins finds concrete Plugin subclasses in a package tree and counts them."""
    reg = PluginRegistry()
    assert reg.discover_plugins("sdk_discoverable") == 2
    assert reg.resolve_class("NestedPlugin").__name__ == "NestedPlugin"
    assert "sdk_discoverable:TopLevelPlugin" in reg.plugin_classes
    assert "AbstractBase" not in reg.plugin_classes


def test_discover_missing_package() -> None:
    """Discovering a package that does not import is a clear error."""
    with pytest.raises(PluginLoadError, match="cannot import plugin package 'no_such_pkg_xyz'"):
        PluginRegistry().discover_plugins("no_such_pkg_xyz")


def test_resolve_class_by_import_path() -> None:
    """A plugin class can be named by module:Class."""
    assert PluginRegistry().resolve_class("sdk_plugins:Recorder") is Recorder


def test_resolve_class_rejects_non_plugins() -> None:
    """Naming something that is not a Plugin subclass is refused."""
    with pytest.raises(PluginLoadError, match="'json:dumps' is not a Plugin subclass"):
        PluginRegistry().resolve_class("json:dumps")


def test_resolve_unknown_name() -> None:
    """An unknown plugin name is an error listing what is known."""
    with pytest.raises(PluginNotFoundError, match="unknown plugin class 'nope'"):
        PluginRegistry().resolve_class("nope")


def test_entry_point_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plugins installed under the pyheart.plugins entry-point group resolve by name."""
    dist = tmp_path / "acme_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pyheart.plugins]\nacme-recorder = sdk_plugins:Recorder\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = PluginRegistry()
    assert reg.discover_entry_points() >= 1
    assert "acme-recorder" in reg.available_plugins()
    assert reg.resolve_class("acme-recorder") is Recorder
    assert "acme_plugins" not in sys.modules
