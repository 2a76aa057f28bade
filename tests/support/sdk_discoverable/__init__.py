"""A package of plugins for discovery tests."""

from __future__ import annotations

from pyheart.broker import Plugin, PluginMetadata, PluginType


class TopLevelPlugin(Plugin):
    """Discovered from the package itself."""

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata("top", "1.0", PluginType.NOTIFIER, "top-level plugin")

    async def initialize(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        return True
