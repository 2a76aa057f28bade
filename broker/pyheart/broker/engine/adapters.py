"""Adapters hosted by ``pyheart run``: MLLP listeners and senders, the DICOM SCP, FHIR senders.

An adapter is a plugin of type adapter whose ``initialize()`` starts it (a server, a consumer) and
whose ``cleanup()`` stops it gracefully. The configuration lists them beside the pipelines::

    adapters:
      - id: mllp-in
        plugin: mllp-listener
        config: {port: "${MLLP_PORT:-2575}", topic: hl7.inbound}

When an adapter's schema has a ``bootstrap_servers`` field that the entry leaves out, the file's
``kafka.bootstrap_servers`` is used. Likewise, when its schema declares the Kafka security fields
(``security_protocol``, ``kafka_tls``, ``kafka_sasl``: :data:`pyheart.broker.kafka_security.SECURITY_SCHEMA`)
and the entry sets none of them, the file's ``kafka.security_protocol`` / ``tls`` / ``sasl`` are used -
but only when the adapter talks to the file's cluster (no ``bootstrap_servers`` of its own, or the same),
so credentials never go to a cluster they were not meant for. Adapters start before the pipelines and stop after them, so an
intake adapter never loses the pipeline it feeds, and all of them share one PluginRegistry.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyheart.broker.engine.config import KafkaSettings, PluginRef
from pyheart.broker.errors import ConfigError, PluginError
from pyheart.broker.kafka_security import SECURITY_KEYS, adapter_config, config_issues
from pyheart.broker.manager import PluginManager
from pyheart.broker.plugin import Plugin, PluginType
from pyheart.broker.registry import PluginRegistry


class AdapterHost:
    """Loads, starts and stops the configuration's adapters under one PluginManager."""

    def __init__(
        self,
        refs: Sequence[PluginRef],
        kafka: KafkaSettings | str,
        env_paths: set[str] | None = None,
    ) -> None:
        """``kafka``: the file's ``kafka:`` settings (or just its bootstrap servers: no security injected)."""
        bootstrap_servers = kafka if isinstance(kafka, str) else kafka.bootstrap_servers
        security = None if isinstance(kafka, str) else adapter_config(kafka.security())
        self.manager = PluginManager(PluginRegistry())
        self.registry = self.manager.registry
        self._started = False
        env_paths = env_paths or set()
        problems: list[str] = []
        loaded: list[tuple[PluginRef, Plugin, set[str]]] = []
        for i, ref in enumerate(refs):
            where = f"adapters[{i}]({ref.id})"
            try:
                cls = self.registry.resolve_class(ref.plugin)
            except PluginError as exc:
                problems.append(f"{where}: {exc}")
                continue
            config = dict(ref.config)
            try:
                plugin = cls(config=config)
                meta = plugin.get_metadata()
            except Exception as exc:
                problems.append(f"{where}: '{ref.plugin}' raised {type(exc).__name__} when created")
                continue
            if meta.plugin_type is not PluginType.ADAPTER:
                problems.append(
                    f"{where}: '{ref.plugin}' is a {meta.plugin_type.value} plugin, not an adapter"
                )
                continue
            if "bootstrap_servers" in meta.config_schema and "bootstrap_servers" not in config:
                plugin.config = {**plugin.config, "bootstrap_servers": bootstrap_servers}
            declares = all(key in meta.config_schema for key in SECURITY_KEYS)
            if (
                security is not None
                and declares
                and not any(key in config for key in SECURITY_KEYS)
                and plugin.config.get("bootstrap_servers") == bootstrap_servers
            ):
                plugin.config = {**plugin.config, **security}
            prefix = f"adapters[{i}].config."
            rel = {p[len(prefix) :] for p in env_paths if p.startswith(prefix)}
            issues = self.registry.check_plugin_config(ref.id, plugin, rel)
            if not issues and declares:
                issues = config_issues(plugin.config)
            if issues:
                problems.extend(f"{where}.config.{issue}" for issue in issues)
                continue
            loaded.append((ref, plugin, rel))
        if problems:
            raise ConfigError("invalid adapter configuration:\n  " + "\n  ".join(problems))
        for ref, plugin, rel in loaded:
            self.registry.register_plugin(
                ref.id, plugin, env_paths=rel, enabled=None if ref.enabled else False
            )

    @property
    def ids(self) -> list[str]:
        """The adapters' ids, in configuration order."""
        return list(self.registry.plugins)

    async def start(self) -> None:
        """Start every enabled adapter (dependency order); raises naming the ones that failed."""
        self._started = True
        await self.manager.start()

    async def stop(self) -> None:
        """Stop every adapter that started, in reverse order; safe after a failed start."""
        if self._started:
            await self.manager.stop()


__all__ = ["AdapterHost"]
