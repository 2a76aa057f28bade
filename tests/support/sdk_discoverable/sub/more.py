"""Plugins in a subpackage; an abstract base must not be counted."""

from __future__ import annotations

from abc import abstractmethod

from pyheart.broker import Plugin, PluginMetadata, PluginType


class AbstractBase(Plugin):
    """Abstract: not a discoverable plugin."""

    @abstractmethod
    def extra(self) -> None:
        """Unimplemented on purpose."""


class NestedPlugin(Plugin):
    """Discovered from a subpackage."""

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata("nested", "1.0", PluginType.VALIDATOR, "nested plugin")

    async def initialize(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        return True
