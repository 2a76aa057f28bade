"""The PyHeart engine and plugin SDK.

``from pyheart.broker import Plugin, PluginMetadata, PluginType, PluginRegistry, PluginManager``
"""

from pyheart.broker.config import Secret
from pyheart.broker.manager import PluginManager
from pyheart.broker.plugin import Plugin, PluginMetadata, PluginState, PluginType
from pyheart.broker.registry import PluginRegistry

__all__ = [
    "Plugin",
    "PluginManager",
    "PluginMetadata",
    "PluginRegistry",
    "PluginState",
    "PluginType",
    "Secret",
]
