"""The plugin contract of the architecture document: ``Plugin``, ``PluginMetadata``, ``PluginType``.

A plugin states what it needs (``get_metadata().config_schema``) and does one thing; the runtime
owns retries, dead-lettering, metrics, logging context and offsets. Lifecycle methods are async and
idempotent; message work that is pure CPU is plain synchronous code in the typed sub-contracts
(:mod:`pyheart.broker.contracts`).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


class PluginType(enum.Enum):
    """The six kinds of plugins."""

    ADAPTER = "adapter"  # System integration adapters
    WORKFLOW = "workflow"  # Automated workflow templates
    TRANSFORMER = "transformer"  # Data transformation plugins
    VALIDATOR = "validator"  # Data validation plugins
    AUTHENTICATOR = "authenticator"  # Authentication providers
    NOTIFIER = "notifier"  # Notification plugins


@dataclass
class PluginMetadata:
    """What a plugin is and what it needs."""

    name: str  # Plugin name
    version: str  # Version number
    plugin_type: PluginType  # Type (Adapter, Workflow, etc.)
    description: str  # Human-readable description
    author: str = ""  # Plugin author
    dependencies: list[str] = field(default_factory=list)  # Plugins this one needs (ids or names)
    config_schema: dict[str, Any] = field(default_factory=dict)  # Configuration schema
    enabled: bool = True  # Enable/disable flag
    priority: int = 100  # Execution priority: lower runs first


class PluginState(enum.Enum):
    """Lifecycle states (the architecture document's diagram), plus ``FAILED``."""

    REGISTERED = "registered"
    VALIDATED = "validated"
    INITIALIZED = "initialized"
    ACTIVE = "active"
    FAILED = "failed"
    CLEANED_UP = "cleaned_up"


#: Allowed lifecycle transitions; anything else raises ``PluginLifecycleError``.
TRANSITIONS: dict[PluginState, frozenset[PluginState]] = {
    PluginState.REGISTERED: frozenset({PluginState.VALIDATED, PluginState.FAILED}),
    PluginState.VALIDATED: frozenset({PluginState.INITIALIZED, PluginState.FAILED, PluginState.CLEANED_UP}),
    PluginState.INITIALIZED: frozenset({PluginState.ACTIVE, PluginState.FAILED, PluginState.CLEANED_UP}),
    PluginState.ACTIVE: frozenset({PluginState.FAILED, PluginState.CLEANED_UP}),
    PluginState.FAILED: frozenset({PluginState.CLEANED_UP}),
    PluginState.CLEANED_UP: frozenset(),
}


class Plugin(ABC):
    """Base class for all PyHeart plugins."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = config or {}
        self.initialized = False

    @abstractmethod
    def get_metadata(self) -> PluginMetadata:
        """Return plugin metadata."""

    @abstractmethod
    async def initialize(self) -> bool:
        """Initialize the plugin; return False (or raise) when it cannot run."""

    @abstractmethod
    async def cleanup(self) -> bool:
        """Release the plugin's resources. Must be idempotent."""

    def validate_config(self, config: dict[str, Any]) -> bool:
        """Custom validation after the schema check; return False to reject the config."""
        return True

    def __repr__(self) -> str:
        # Config values may be secrets or endpoints with credentials: show the keys only.
        keys = ", ".join(sorted(self.config))
        return f"<{type(self).__name__} config keys=[{keys}] initialized={self.initialized}>"


__all__ = ["TRANSITIONS", "Plugin", "PluginMetadata", "PluginState", "PluginType"]
