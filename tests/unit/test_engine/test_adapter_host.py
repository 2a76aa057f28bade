"""`adapters:` in the run configuration: loaded, checked, started and stopped by the engine."""

from __future__ import annotations

import asyncio

import pytest
from sdk_adapters import EchoAdapter

from pyheart.broker.engine.adapters import AdapterHost
from pyheart.broker.engine.config import PluginRef, parse_settings
from pyheart.broker.errors import ConfigError


def ref(plugin: str, **config: object) -> PluginRef:
    return PluginRef(id="a1", plugin=plugin, config=dict(config))


async def test_adapter_gets_kafka_bootstrap_and_serves_until_stopped() -> None:
    """The file's bootstrap fills an adapter's missing bootstrap_servers; start serves, stop closes."""
    host = AdapterHost([ref("sdk_adapters:EchoAdapter")], "127.0.0.1:9999")
    adapter = host.registry.get_plugin("a1")
    assert isinstance(adapter, EchoAdapter)
    assert adapter.config["bootstrap_servers"] == "127.0.0.1:9999"
    await host.start()
    assert adapter.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port)
    writer.write(b"ping\n")
    assert await reader.readline() == b"ping\n"
    writer.close()
    await host.stop()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", adapter.port)


def test_non_adapter_plugin_is_refused() -> None:
    """A plugin of another type under adapters: is a configuration error naming it."""
    with pytest.raises(
        ConfigError, match=r"adapters\[0\]\(a1\): 'sdk_plugins:Recorder' is a workflow plugin, not an adapter"
    ):
        AdapterHost([ref("sdk_plugins:Recorder")], "x:1")


def test_adapter_config_errors_name_the_path() -> None:
    """Schema violations in an adapter's config name the adapter and the field."""
    with pytest.raises(ConfigError, match=r"adapters\[0\]\(a1\).config.bogus: unknown key \[unknown\]"):
        AdapterHost([ref("sdk_adapters:EchoAdapter", bogus=1)], "x:1")


def test_configuration_with_only_adapters_is_valid() -> None:
    """An intake-only file (adapters, no pipelines) is accepted; an empty one is not."""
    settings = parse_settings({"adapters": [{"id": "in", "plugin": "sdk_adapters:EchoAdapter"}]})
    assert [a.id for a in settings.adapters] == ["in"]
    with pytest.raises(ConfigError, match="at least one pipeline or adapter is required"):
        parse_settings({})
