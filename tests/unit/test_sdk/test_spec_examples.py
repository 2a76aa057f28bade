"""The architecture document's own examples run unchanged against the SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdk_plugins import InsuranceAdapter

from pyheart.broker import Plugin, PluginManager, PluginMetadata, PluginRegistry, PluginType


class MyCustomPlugin(Plugin):
    """The "Custom Plugins" extension-point example, with its metadata filled in."""

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name="my-custom",
            version="1.0.0",
            plugin_type=PluginType.WORKFLOW,
            description="Example from the architecture document",
        )

    async def initialize(self) -> bool:
        # Setup code
        return True

    async def cleanup(self) -> bool:
        # Cleanup code
        return True


def test_metadata_fields_and_defaults() -> None:
    """PluginMetadata has every field of the spec with the spec's defaults."""
    meta = PluginMetadata("n", "1", PluginType.ADAPTER, "d")
    assert (meta.author, meta.dependencies, meta.config_schema, meta.enabled, meta.priority) == (
        "",
        [],
        {},
        True,
        100,
    )


def test_six_plugin_types() -> None:
    """PluginType has the six types of the spec with their values."""
    assert {t.value for t in PluginType} == {
        "adapter",
        "workflow",
        "transformer",
        "validator",
        "authenticator",
        "notifier",
    }


def test_plugin_base_class_attributes() -> None:
    """Plugin(config) stores config (empty dict by default) and starts uninitialised."""
    plugin = MyCustomPlugin()
    assert plugin.config == {}
    assert plugin.initialized is False


def test_registry_pattern_example() -> None:
    """registry.register_plugin / get_plugin as in the Registry Pattern section."""
    registry = PluginRegistry()
    plugin_instance = MyCustomPlugin()
    registry.register_plugin("my_plugin", plugin_instance)
    plugin = registry.get_plugin("my_plugin")
    assert plugin is plugin_instance


async def test_observer_pattern_example() -> None:
    """register_hook / trigger_hook as in the Observer Pattern section."""
    registry = PluginRegistry()
    received: list[Any] = []

    def callback_function(data: Any) -> None:
        received.append(data)

    registry.register_hook("data_received", callback_function)
    await registry.trigger_hook("data_received", data={"id": 1})
    assert received == [{"id": 1}]


async def test_hook_system_example() -> None:
    """The Hook System example: a plain function registered for claim_submitted."""
    registry = PluginRegistry()
    seen: list[Any] = []

    def on_claim_submitted(claim_data: Any) -> None:
        seen.append(claim_data)

    registry.register_hook("claim_submitted", on_claim_submitted)
    await registry.trigger_hook("claim_submitted", {"claim": "c-1"})
    assert seen == [{"claim": "c-1"}]


async def test_insurance_plugin() -> None:
    """The Unit Tests example: initialize, then send_data returns True."""
    plugin = InsuranceAdapter(config={"system_id": "ins-1", "base_url": "https://claims.example.org"})
    await plugin.initialize()
    result = await plugin.send_data("Claim", {"id": "c-1"})
    assert result is True


async def test_complete_workflow() -> None:
    """The Integration Tests example: a manager loads several plugins and runs them."""
    manager = PluginManager()
    assert manager.load_plugin(MyCustomPlugin, "custom", {}) is True
    assert (
        manager.load_plugin(InsuranceAdapter, "insurer", {"system_id": "s", "base_url": "https://h"}) is True
    )
    await manager.start()
    assert [m.name for m in manager.list_plugins(PluginType.ADAPTER)] == ["insurance"]
    assert len(manager.list_plugins(None)) == 2
    await manager.stop()


def test_plugin_discovery_example() -> None:
    """count = registry.discover_plugins(package) counts Plugin subclasses."""
    registry = PluginRegistry()
    count = registry.discover_plugins("sdk_discoverable")
    assert count == 2


def test_configuration_schema_example() -> None:
    """The Configuration Schema section's schema validates and applies its default."""
    plugin = InsuranceAdapter(config={"system_id": "sys", "base_url": "https://x"})
    PluginRegistry().register_plugin("ins", plugin)
    assert plugin.config["timeout"] == 30


def test_readme_plugin_example_runs() -> None:
    """The README's "plugin SDK" example runs unchanged."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})  # noqa: S102 - our own README
