"""``PluginRegistry``: the catalogue, lifecycle and hooks of one set of plugin instances.

One registry per Kafka consumer group: a pipeline's plugins live and die together.

Hook order: callbacks run in ascending ``priority`` (lower first, default 100, as for
``PluginMetadata.priority``); equal priorities run in registration order. A callback that raises is
logged (class name only) and counted in :attr:`PluginRegistry.hook_failures`; the others still run.
"""

from __future__ import annotations

import dataclasses
import heapq
import importlib
import inspect
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from pyheart.broker.config import check_schema, validate_config
from pyheart.broker.errors import (
    ConfigIssue,
    PluginConfigError,
    PluginDependencyError,
    PluginLifecycleError,
    PluginLoadError,
    PluginNotFoundError,
)
from pyheart.broker.logs import get_logger
from pyheart.broker.plugin import TRANSITIONS, Plugin, PluginMetadata, PluginState, PluginType

#: The entry-point group third-party and built-in plugins register under.
ENTRY_POINT_GROUP = "pyheart.plugins"

HookCallback = Callable[..., Any] | Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class _HookEntry:
    priority: int
    seq: int
    callback: HookCallback
    plugin_id: str | None


def _callback_name(cb: object) -> str:
    return getattr(cb, "__qualname__", None) or type(cb).__name__


class PluginRegistry:
    """Central registry for managing plugins."""

    def __init__(self) -> None:
        self.plugins: dict[str, Plugin] = {}
        self.metadata: dict[str, PluginMetadata] = {}
        self.plugin_hooks: dict[str, list[HookCallback]] = {}
        #: Plugin classes known by name (discovered packages and entry points), loaded lazily.
        self.plugin_classes: dict[str, type[Plugin]] = {}
        self._entry_points: dict[str, EntryPoint] = {}
        self._states: dict[str, PluginState] = {}
        self._hook_entries: dict[str, list[_HookEntry]] = {}
        self._hook_seq = 0
        self._init_order: list[str] = []
        #: Count of failed callbacks per hook name.
        self.hook_failures: dict[str, int] = {}
        self._log = get_logger("pyheart.audit")

    # ----------------------------------------------------------------------------------- catalogue
    def register_plugin(
        self,
        plugin_id: str,
        plugin: Plugin,
        *,
        env_paths: set[str] | None = None,
        enabled: bool | None = None,
        priority: int | None = None,
    ) -> bool:
        """Register ``plugin`` under ``plugin_id`` after validating its config.

        Returns False when the id is taken (nothing changes). Raises :class:`PluginConfigError`
        when the config breaks the plugin's schema: the plugin is then not registered.
        ``env_paths`` lists config paths that came from ``${VAR}`` references (secrets must).
        """
        if not plugin_id or not isinstance(plugin_id, str):
            raise PluginConfigError(
                str(plugin_id), [ConfigIssue("id", "required", "must be a non-empty string")]
            )
        if plugin_id in self.plugins:
            self._audit("register", plugin_id, "rejected", reason="duplicate_id")
            return False
        try:
            meta = plugin.get_metadata()
        except Exception as exc:
            self._audit("register", plugin_id, "failure", error_type=type(exc).__name__)
            raise PluginLoadError(
                f"plugin '{plugin_id}': get_metadata() raised {type(exc).__name__}"
            ) from None
        if not isinstance(meta, PluginMetadata) or not isinstance(meta.plugin_type, PluginType):
            raise PluginLoadError(f"plugin '{plugin_id}': get_metadata() must return a PluginMetadata")
        changes: dict[str, Any] = {}
        if enabled is not None:
            changes["enabled"] = enabled
        if priority is not None:
            changes["priority"] = priority
        if changes:
            meta = dataclasses.replace(meta, **changes)
        self._audit(
            "register", plugin_id, "started", plugin_name=meta.name, plugin_type=meta.plugin_type.value
        )
        validated, issues = self._validated_config(plugin_id, plugin, meta, env_paths)
        if issues:
            self._audit(
                "validate",
                plugin_id,
                "failure",
                error_code="config-invalid",
                locations=[f"{i.path}:{i.rule}" for i in issues],
            )
            raise PluginConfigError(plugin_id, issues)
        plugin.config = validated
        self.plugins[plugin_id] = plugin
        self.metadata[plugin_id] = meta
        self._states[plugin_id] = PluginState.REGISTERED
        self._transition(plugin_id, PluginState.VALIDATED)
        self._audit("register", plugin_id, "success", plugin_version=meta.version, state="validated")
        return True

    @staticmethod
    def _validated_config(
        plugin_id: str, plugin: Plugin, meta: PluginMetadata, env_paths: set[str] | None
    ) -> tuple[dict[str, Any], list[ConfigIssue]]:
        schema_issues = check_schema(meta.config_schema)
        if schema_issues:
            return {}, schema_issues
        validated, issues = validate_config(meta.config_schema, plugin.config, env_paths=env_paths)
        if issues:
            return validated, issues
        try:
            custom_ok = plugin.validate_config(validated)
        except Exception as exc:
            return validated, [
                ConfigIssue("<config>", "custom", f"validate_config raised {type(exc).__name__}")
            ]
        if not custom_ok:
            return validated, [
                ConfigIssue("<config>", "custom", "rejected by the plugin's validate_config()")
            ]
        return validated, []

    def check_plugin_config(
        self, plugin_id: str, plugin: Plugin, env_paths: set[str] | None = None
    ) -> list[ConfigIssue]:
        """The issues ``register_plugin`` would raise for ``plugin``'s config, without registering."""
        try:
            meta = plugin.get_metadata()
        except Exception as exc:
            return [ConfigIssue("<metadata>", "metadata", f"get_metadata() raised {type(exc).__name__}")]
        return self._validated_config(plugin_id, plugin, meta, env_paths)[1]

    def unregister_plugin(self, plugin_id: str) -> bool:
        """Remove a plugin that is not running. Returns False when it is unknown.

        An initialised or active plugin must be cleaned up first (:class:`PluginLifecycleError`).
        """
        if plugin_id not in self.plugins:
            return False
        state = self._states[plugin_id]
        if state in (PluginState.INITIALIZED, PluginState.ACTIVE):
            raise PluginLifecycleError(
                f"plugin '{plugin_id}' is {state.value}: clean it up before unregistering it"
            )
        del self.plugins[plugin_id]
        del self.metadata[plugin_id]
        del self._states[plugin_id]
        if plugin_id in self._init_order:
            self._init_order.remove(plugin_id)
        for name, entries in self._hook_entries.items():
            self._hook_entries[name] = [e for e in entries if e.plugin_id != plugin_id]
            self.plugin_hooks[name] = [e.callback for e in self._hook_entries[name]]
        self._audit("unregister", plugin_id, "success")
        return True

    def get_plugin(self, plugin_id: str) -> Plugin | None:
        """The plugin registered under ``plugin_id``, or None."""
        return self.plugins.get(plugin_id)

    def get_plugins_by_type(self, plugin_type: PluginType) -> list[Plugin]:
        """Plugins of one type, in priority order (lower first), then registration order."""
        ids = [pid for pid, meta in self.metadata.items() if meta.plugin_type == plugin_type]
        ids.sort(key=lambda pid: self.metadata[pid].priority)
        return [self.plugins[pid] for pid in ids]

    def list_plugins(self) -> dict[str, PluginMetadata]:
        """Every registered plugin's metadata, by id (disabled ones included)."""
        return dict(self.metadata)

    # ----------------------------------------------------------------------------------- lifecycle
    def state(self, plugin_id: str) -> PluginState:
        """The lifecycle state of a registered plugin."""
        try:
            return self._states[plugin_id]
        except KeyError:
            raise PluginNotFoundError(f"no plugin registered as '{plugin_id}'") from None

    def _transition(self, plugin_id: str, to: PluginState) -> None:
        current = self._states[plugin_id]
        if to not in TRANSITIONS[current]:
            raise PluginLifecycleError(
                f"plugin '{plugin_id}': illegal transition {current.value} -> {to.value}"
            )
        self._states[plugin_id] = to

    def _resolve_dependency(self, owner: str, dep: str) -> str:
        if dep in self.plugins:
            return dep
        by_name = [pid for pid, meta in self.metadata.items() if meta.name == dep]
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            names = ", ".join(sorted(by_name))
            raise PluginDependencyError(
                f"plugin '{owner}' depends on '{dep}', which names several plugins: {names}"
            )
        raise PluginDependencyError(f"plugin '{owner}' depends on '{dep}', which is not registered")

    def initialization_order(self) -> list[str]:
        """Enabled plugins in dependency order, priority (lower first) breaking ties.

        Raises :class:`PluginDependencyError` naming a missing or disabled dependency, or a cycle.
        """
        enabled = [pid for pid, meta in self.metadata.items() if meta.enabled]
        deps: dict[str, set[str]] = {}
        for pid in enabled:
            resolved = set()
            for dep in self.metadata[pid].dependencies:
                target = self._resolve_dependency(pid, dep)
                if not self.metadata[target].enabled:
                    raise PluginDependencyError(f"plugin '{pid}' depends on '{target}', which is disabled")
                if target == pid:
                    raise PluginDependencyError(f"dependency cycle: {pid} -> {pid}")
                resolved.add(target)
            deps[pid] = resolved
        seq = {pid: i for i, pid in enumerate(self.metadata)}
        waiting = {pid: len(d) for pid, d in deps.items()}
        dependents: dict[str, list[str]] = {pid: [] for pid in enabled}
        for pid, ds in deps.items():
            for d in ds:
                dependents[d].append(pid)
        ready = [(self.metadata[p].priority, seq[p], p) for p, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, _, pid = heapq.heappop(ready)
            order.append(pid)
            for child in dependents[pid]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(ready, (self.metadata[child].priority, seq[child], child))
        if len(order) != len(enabled):
            raise PluginDependencyError(f"dependency cycle: {self._describe_cycle(deps, set(order))}")
        return order

    @staticmethod
    def _describe_cycle(deps: dict[str, set[str]], done: set[str]) -> str:
        remaining = {p: {d for d in ds if d not in done} for p, ds in deps.items() if p not in done}
        start = min(remaining)
        path = [start]
        node = start
        while True:
            node = min(remaining[node])
            if node in path:
                cycle = [*path[path.index(node) :], node]
                return " -> ".join(cycle)
            path.append(node)

    async def initialize_all(self) -> dict[str, bool]:
        """Initialise every enabled plugin that is not yet running, in dependency order.

        Returns ``{plugin_id: succeeded}`` for the enabled plugins. One failing plugin does not stop
        the others, but plugins that depend on it are not initialised (False). Disabled plugins are
        left alone and do not appear in the result.
        """
        order = self.initialization_order()
        results: dict[str, bool] = {}
        for pid in order:
            state = self._states[pid]
            if state in (PluginState.INITIALIZED, PluginState.ACTIVE):
                results[pid] = True
                continue
            if state is not PluginState.VALIDATED:
                results[pid] = False
                continue
            failed_deps = [
                d
                for d in (self._resolve_dependency(pid, x) for x in self.metadata[pid].dependencies)
                if not results.get(d, False)
            ]
            if failed_deps:
                self._transition(pid, PluginState.FAILED)
                self._audit(
                    "initialize", pid, "skipped", reason="dependency_failed", dependencies=failed_deps
                )
                results[pid] = False
                continue
            results[pid] = await self._initialize_one(pid)
        return results

    async def _initialize_one(self, pid: str) -> bool:
        plugin = self.plugins[pid]
        self._init_order.append(pid)
        try:
            ok = bool(await plugin.initialize())
        except Exception as exc:
            self._transition(pid, PluginState.FAILED)
            self._audit("initialize", pid, "failure", error_type=type(exc).__name__)
            return False
        if not ok:
            self._transition(pid, PluginState.FAILED)
            self._audit("initialize", pid, "failure", reason="initialize_returned_false")
            return False
        plugin.initialized = True
        self._transition(pid, PluginState.INITIALIZED)
        self._audit("initialize", pid, "success")
        return True

    def activate(self, plugin_id: str) -> None:
        """Mark an initialised plugin active (ready for messages)."""
        self._transition(plugin_id, PluginState.ACTIVE)
        self._audit("activate", plugin_id, "success")

    async def cleanup_all(self) -> None:
        """Clean up initialised, active and failed plugins, in reverse initialisation order.

        Idempotent: a second call does nothing. A failing ``cleanup()`` is logged; the others run.
        """
        for pid in reversed(list(self._init_order)):
            if pid not in self._states:
                continue
            if self._states[pid] not in (PluginState.INITIALIZED, PluginState.ACTIVE, PluginState.FAILED):
                continue
            plugin = self.plugins[pid]
            try:
                ok = await plugin.cleanup()
                outcome = "success" if ok is not False else "failure"
            except Exception as exc:
                outcome = "failure"
                self._audit("cleanup", pid, "failure", error_type=type(exc).__name__)
            else:
                self._audit("cleanup", pid, outcome)
            plugin.initialized = False
            self._transition(pid, PluginState.CLEANED_UP)
        for pid, state in self._states.items():
            if state is PluginState.FAILED and pid not in self._init_order:
                self._transition(pid, PluginState.CLEANED_UP)

    # ----------------------------------------------------------------------------------- hooks
    def register_hook(
        self, hook_name: str, callback: HookCallback, priority: int = 100, *, plugin_id: str | None = None
    ) -> None:
        """Call ``callback`` on ``hook_name``; lower ``priority`` runs first, ties in registration order."""
        if not callable(callback):
            raise TypeError(f"hook '{hook_name}': callback must be callable")
        self._hook_seq += 1
        entries = self._hook_entries.setdefault(hook_name, [])
        entries.append(_HookEntry(priority, self._hook_seq, callback, plugin_id))
        entries.sort(key=lambda e: (e.priority, e.seq))
        self.plugin_hooks[hook_name] = [e.callback for e in entries]
        self._log.debug(
            "hook.register",
            hook=hook_name,
            callback=_callback_name(callback),
            priority=priority,
            plugin_id=plugin_id,
        )

    def unregister_hook(self, hook_name: str, callback: HookCallback) -> bool:
        """Stop calling ``callback`` on ``hook_name``. Returns False when it was not registered."""
        entries = self._hook_entries.get(hook_name, [])
        kept = [e for e in entries if e.callback is not callback]
        if len(kept) == len(entries):
            return False
        self._hook_entries[hook_name] = kept
        self.plugin_hooks[hook_name] = [e.callback for e in kept]
        return True

    async def trigger_hook(self, hook_name: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Call every callback of ``hook_name`` (sync or async) in priority order.

        Returns the results of the callbacks that succeeded, in call order. A callback that raises
        is logged and counted, and does not stop the others.
        """
        results: list[Any] = []
        for entry in list(self._hook_entries.get(hook_name, ())):
            try:
                result = entry.callback(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                self.hook_failures[hook_name] = self.hook_failures.get(hook_name, 0) + 1
                self._log.warning(
                    "hook.failure",
                    hook=hook_name,
                    callback=_callback_name(entry.callback),
                    plugin_id=entry.plugin_id,
                    operation="hook",
                    outcome="failure",
                    error_type=type(exc).__name__,
                )
                continue
            results.append(result)
        return results

    def has_hook(self, hook_name: str) -> bool:
        """True when at least one callback listens to ``hook_name``."""
        return bool(self._hook_entries.get(hook_name))

    # ----------------------------------------------------------------------------------- discovery
    def discover_plugins(self, package_name: str) -> int:
        """Find concrete ``Plugin`` subclasses in a package and its subpackages.

        They join :attr:`plugin_classes` under their qualified name (``module:Class``) and their
        class name (when unambiguous). Returns how many classes were found.
        """
        try:
            package = importlib.import_module(package_name)
        except ImportError as exc:
            self._audit("discover", None, "failure", package=package_name, error_type=type(exc).__name__)
            raise PluginLoadError(f"cannot import plugin package '{package_name}'") from None
        modules: list[ModuleType] = [package]
        search = getattr(package, "__path__", None)
        if search is not None:
            for info in pkgutil.walk_packages(search, prefix=f"{package_name}."):
                try:
                    modules.append(importlib.import_module(info.name))
                except ImportError as exc:
                    self._audit("discover", None, "failure", package=info.name, error_type=type(exc).__name__)
                    raise PluginLoadError(f"cannot import plugin module '{info.name}'") from None
        found = 0
        for module in modules:
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if (
                    cls.__module__ != module.__name__
                    or not issubclass(cls, Plugin)
                    or inspect.isabstract(cls)
                ):
                    continue
                qualified = f"{cls.__module__}:{cls.__qualname__}"
                if qualified not in self.plugin_classes:
                    found += 1
                self.plugin_classes[qualified] = cls
                self.plugin_classes.setdefault(cls.__name__, cls)
        self._audit("discover", None, "success", package=package_name, count=found)
        return found

    def discover_entry_points(self, group: str = ENTRY_POINT_GROUP) -> int:
        """Record the plugins of an entry-point group by name, without importing them yet."""
        eps = entry_points(group=group)
        for ep in eps:
            self._entry_points[ep.name] = ep
        self._audit("discover", None, "success", source=f"entry_points:{group}", count=len(eps))
        return len(eps)

    def available_plugins(self) -> list[str]:
        """Names that :meth:`resolve_class` accepts without an import path."""
        return sorted(set(self._entry_points) | set(self.plugin_classes))

    def resolve_class(self, ref: str) -> type[Plugin]:
        """A plugin class by entry-point name, discovered name, or ``module:Class`` import path."""
        if ref in self.plugin_classes:
            return self.plugin_classes[ref]
        if not self._entry_points:
            self.discover_entry_points()
        if ref in self._entry_points:
            try:
                obj = self._entry_points[ref].load()
            except Exception as exc:
                self._audit("load", None, "failure", entry_point=ref, error_type=type(exc).__name__)
                raise PluginLoadError(f"entry point '{ref}' failed to load ({type(exc).__name__})") from None
            return self._check_class(ref, obj)
        if ":" in ref or "." in ref:
            module_name, _, attr = ref.partition(":") if ":" in ref else ref.rpartition(".")
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                raise PluginLoadError(f"plugin class '{ref}': cannot import module '{module_name}'") from None
            obj = module
            for part in attr.split("."):
                obj = getattr(obj, part, None)
                if obj is None:
                    raise PluginLoadError(f"plugin class '{ref}': module '{module_name}' has no '{attr}'")
            return self._check_class(ref, obj)
        known = ", ".join(self.available_plugins()) or "none"
        raise PluginNotFoundError(f"unknown plugin class '{ref}' (known: {known})")

    def _check_class(self, ref: str, obj: object) -> type[Plugin]:
        if not (inspect.isclass(obj) and issubclass(obj, Plugin)):
            raise PluginLoadError(f"'{ref}' is not a Plugin subclass")
        if inspect.isabstract(obj):
            raise PluginLoadError(f"'{ref}' is abstract (it does not implement every Plugin method)")
        self.plugin_classes[ref] = obj
        return obj

    # ----------------------------------------------------------------------------------- audit
    def _audit(self, operation: str, plugin_id: str | None, outcome: str, **fields: Any) -> None:
        method = self._log.warning if outcome == "failure" else self._log.info
        method(f"plugin.{operation}", plugin_id=plugin_id, operation=operation, outcome=outcome, **fields)


__all__ = ["ENTRY_POINT_GROUP", "PluginRegistry"]
