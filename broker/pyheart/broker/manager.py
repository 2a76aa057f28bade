"""``PluginManager``: configuration in, running plugins out.

A configuration (YAML file, JSON file or dict) lists plugins::

    plugins:
      - id: hl7_in                     # unique id in this registry
        class: mllp-listener           # entry-point name, discovered name, or "module:Class"
        enabled: true                  # optional, overrides the plugin's metadata
        priority: 50                   # optional, overrides the plugin's metadata
        config: {port: "${MLLP_PORT:-2575}"}
    discover: [my_company.plugins]     # optional: packages to scan for Plugin subclasses

``plugins`` may also be a mapping of id to entry. Every ``${VAR}`` is expanded first (all missing
variables are reported together); then every plugin's config is validated against its schema
before any plugin is registered, so a bad file registers nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from pyheart.broker.config import expand_env, load_document
from pyheart.broker.errors import ConfigError, PluginConfigError, PluginError, PluginStartError
from pyheart.broker.logs import get_logger
from pyheart.broker.plugin import Plugin, PluginMetadata, PluginState, PluginType
from pyheart.broker.registry import PluginRegistry

_ENTRY_KEYS = frozenset({"id", "class", "enabled", "priority", "config"})
_TOP_KEYS = frozenset({"plugins", "discover"})


class PluginManager:
    """High-level plugin management interface."""

    def __init__(self, registry: PluginRegistry | None = None) -> None:
        self.registry = registry or PluginRegistry()
        self._log = get_logger("pyheart.audit")

    def load_plugin(
        self,
        plugin_class: type[Plugin],
        plugin_id: str,
        config: dict[str, Any] | None = None,
        *,
        env_paths: set[str] | None = None,
        enabled: bool | None = None,
        priority: int | None = None,
    ) -> bool:
        """Instantiate ``plugin_class`` with ``config`` and register it as ``plugin_id``.

        Returns False when the id is taken; raises :class:`PluginConfigError` for a bad config.
        """
        try:
            plugin = plugin_class(config=dict(config or {}))
        except Exception as exc:
            self._log.warning(
                "plugin.load",
                plugin_id=plugin_id,
                operation="load",
                outcome="failure",
                error_type=type(exc).__name__,
            )
            raise PluginError(f"plugin '{plugin_id}': constructor raised {type(exc).__name__}") from None
        ok = self.registry.register_plugin(
            plugin_id, plugin, env_paths=env_paths, enabled=enabled, priority=priority
        )
        self._log.info(
            "plugin.load",
            plugin_id=plugin_id,
            plugin_class=f"{plugin_class.__module__}:{plugin_class.__qualname__}",
            operation="load",
            outcome="success" if ok else "rejected",
        )
        return ok

    def load_plugins_from_config(
        self, config: Mapping[str, Any] | str | os.PathLike[str], environ: Mapping[str, str] | None = None
    ) -> int:
        """Load every plugin a configuration lists; returns how many were registered.

        Validation is all-or-nothing: every problem in the document is reported in one
        :class:`ConfigError`, and then nothing is registered.
        """
        document = load_document(config)
        expanded = expand_env(document, environ)
        data = expanded.data
        unknown = sorted(set(data) - _TOP_KEYS)
        # Other top-level sections (pipelines, kafka, ...) belong to the engine; only a document
        # that is nothing but plugins is checked strictly here.
        if unknown and "pipelines" not in data and "kafka" not in data:
            raise ConfigError(f"unknown top-level keys: {', '.join(unknown)}")
        for package in data.get("discover") or []:
            self.registry.discover_plugins(str(package))
        entries = self._entries(data.get("plugins") or [])
        prepared: list[tuple[Plugin, str, set[str], bool | None, int | None]] = []
        problems: list[str] = []
        seen: set[str] = set()
        for index, entry in entries:
            where = f"plugins[{index}]"
            bad = sorted(set(entry) - _ENTRY_KEYS)
            if bad:
                problems.append(f"{where}: unknown keys: {', '.join(bad)}")
            pid = entry.get("id")
            if not isinstance(pid, str) or not pid:
                problems.append(f"{where}.id: is required [required]")
                continue
            if pid in seen or pid in self.registry.plugins:
                problems.append(f"{where}.id: plugin id '{pid}' is used twice [unique]")
                continue
            seen.add(pid)
            ref = entry.get("class")
            if not isinstance(ref, str) or not ref:
                problems.append(f"plugin '{pid}': class: is required [required]")
                continue
            try:
                cls = self.registry.resolve_class(ref)
            except PluginError as exc:
                problems.append(f"plugin '{pid}': {exc}")
                continue
            cfg = entry.get("config") or {}
            if not isinstance(cfg, dict):
                problems.append(f"plugin '{pid}': config: must be a mapping [type]")
                continue
            prefix = f"{where}.config."
            env_paths = {p[len(prefix) :] for p in expanded.env_paths if p.startswith(prefix)}
            try:
                plugin = cls(config=cfg)
            except Exception as exc:
                problems.append(f"plugin '{pid}': constructor raised {type(exc).__name__}")
                continue
            enabled = entry.get("enabled")
            priority = entry.get("priority")
            if enabled is not None and not isinstance(enabled, bool):
                problems.append(f"plugin '{pid}': enabled: must be of type boolean [type]")
                continue
            if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
                problems.append(f"plugin '{pid}': priority: must be of type integer [type]")
                continue
            issues = self.registry.check_plugin_config(pid, plugin, env_paths)
            if issues:
                problems.append(str(PluginConfigError(pid, issues)))
                continue
            prepared.append((plugin, pid, env_paths, enabled, priority))
        if problems:
            self._log.warning("config.load", operation="load_config", outcome="failure", count=len(problems))
            raise ConfigError("invalid plugin configuration:\n  " + "\n  ".join(problems))
        count = 0
        for plugin, pid, env_paths, enabled, priority in prepared:
            if self.registry.register_plugin(
                pid, plugin, env_paths=env_paths, enabled=enabled, priority=priority
            ):
                count += 1
        self.registry.initialization_order()  # dependency errors surface at load time, naming them
        self._log.info("config.load", operation="load_config", outcome="success", count=count)
        return count

    @staticmethod
    def _entries(raw: Any) -> list[tuple[int | str, dict[str, Any]]]:
        if isinstance(raw, list):
            out: list[tuple[int | str, dict[str, Any]]] = []
            for i, item in enumerate(raw):
                if not isinstance(item, dict):
                    raise ConfigError(f"plugins[{i}]: must be a mapping")
                out.append((i, item))
            return out
        if isinstance(raw, dict):
            mapped: list[tuple[int | str, dict[str, Any]]] = []
            for pid, item in raw.items():
                if not isinstance(item, dict):
                    raise ConfigError(f"plugins.{pid}: must be a mapping")
                mapped.append((pid, {"id": pid, **item}))
            return mapped
        raise ConfigError("plugins: must be a list or a mapping")

    async def start(self) -> None:
        """Initialise every enabled plugin (dependency order) and mark them active.

        Raises :class:`PluginStartError` naming the plugins that failed; the others stay
        initialised, so :meth:`stop` cleans everything up.
        """
        results = await self.registry.initialize_all()
        for pid, ok in results.items():
            if ok and self.registry.state(pid) is PluginState.INITIALIZED:
                self.registry.activate(pid)
        failed = [pid for pid, ok in results.items() if not ok]
        if failed:
            self._log.warning("manager.start", operation="start", outcome="failure", failed=failed)
            raise PluginStartError(failed)
        self._log.info("manager.start", operation="start", outcome="success", count=len(results))

    async def stop(self) -> None:
        """Clean up every plugin that was initialised; safe after a failed or partial start."""
        await self.registry.cleanup_all()
        self._log.info("manager.stop", operation="stop", outcome="success")

    async def __aenter__(self) -> PluginManager:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def get_plugin(self, plugin_id: str) -> Plugin | None:
        """The plugin registered as ``plugin_id``, or None."""
        return self.registry.get_plugin(plugin_id)

    def list_plugins(self, plugin_type: PluginType | None = None) -> list[PluginMetadata]:
        """Metadata of registered plugins, optionally of one type."""
        return [
            m
            for m in self.registry.list_plugins().values()
            if plugin_type is None or m.plugin_type == plugin_type
        ]


__all__ = ["PluginManager"]
