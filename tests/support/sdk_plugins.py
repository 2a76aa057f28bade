"""Small real plugins used by the SDK tests (a discoverable package lives in sample_plugins/)."""

from __future__ import annotations

from typing import Any

from pyheart.broker import Plugin, PluginMetadata, PluginType

#: Records lifecycle calls across plugins: ("init"|"cleanup", plugin name).
CALLS: list[tuple[str, str]] = []


class Recorder(Plugin):
    """A plugin whose name, type, dependencies, priority and failure mode come from its config."""

    def get_metadata(self) -> PluginMetadata:
        cfg = self.config
        return PluginMetadata(
            name=str(cfg.get("name", "recorder")),
            version="1.0.0",
            plugin_type=PluginType(cfg.get("type", "workflow")),
            description="records lifecycle calls",
            dependencies=list(cfg.get("deps", [])),
            priority=int(cfg.get("prio", 100)),
            enabled=bool(cfg.get("on", True)),
            config_schema={
                "name": {"type": "string"},
                "type": {"type": "string"},
                "deps": {"type": "array"},
                "prio": {"type": "integer"},
                "on": {"type": "boolean"},
                "fail": {"type": "string", "enum": ["no", "raise", "false", "cleanup"], "default": "no"},
            },
        )

    async def initialize(self) -> bool:
        CALLS.append(("init", self.config.get("name", "recorder")))
        if self.config["fail"] == "raise":
            raise RuntimeError("init exploded with a secret 4242-CANARY")
        return self.config["fail"] != "false"

    async def cleanup(self) -> bool:
        CALLS.append(("cleanup", self.config.get("name", "recorder")))
        if self.config["fail"] == "cleanup":
            raise RuntimeError("cleanup exploded")
        return True


class InsuranceAdapter(Plugin):
    """The architecture document's configuration-schema example, as a plugin."""

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name="insurance",
            version="2.1.0",
            plugin_type=PluginType.ADAPTER,
            description="Insurance claims adapter",
            author="PyHeart",
            config_schema={
                "system_id": {"type": "string", "required": True, "description": "Unique system identifier"},
                "base_url": {"type": "string", "required": True, "pattern": "^https://.*"},
                "timeout": {"type": "integer", "default": 30, "minimum": 1, "maximum": 300},
                "mode": {"type": "string", "enum": ["live", "test"], "default": "test"},
                "api_key": {"type": "string", "secret": True},
            },
        )

    async def initialize(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        return True

    async def send_data(self, resource_type: str, data: dict[str, Any]) -> bool:
        """Strategy-pattern operation of the spec (here: accept claims only)."""
        return resource_type == "Claim" and bool(data)
