"""Topic events and the plugins and topics that listen to them.

Each pipeline raises the events of :data:`pyheart.broker.engine.config.EVENTS` through its own
:class:`~pyheart.broker.registry.PluginRegistry` (``trigger_hook``), with one argument: a
:class:`PipelineEvent`. A listening plugin (a notifier or a workflow) implements
``handle_event(event)``, sync or async; the configuration's ``hooks:`` section registers it (its
metadata ``priority`` orders the callbacks). An event can also be published as a JSON record to a
topic (an audit topic); the record carries ids and coordinates only, never a payload.

One failing callback is logged and counted by the registry and does not stop the message flow.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson


@dataclass(frozen=True, slots=True)
class PipelineEvent:
    """One topic event: what happened, where, to which message (ids and coordinates only)."""

    event: str
    pipeline: str
    message_id: str | None = None
    correlation_id: str | None = None
    message_type: str | None = None
    trigger: str | None = None
    control_id: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    output_topic: str | None = None
    output_partition: int | None = None
    output_offset: int | None = None
    stage: str | None = None
    plugin: str | None = None
    error_code: str | None = None
    partitions: tuple[str, ...] = ()
    timestamp_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    def to_record(self) -> bytes:
        """The event as a compact JSON record (``None`` and empty fields left out)."""
        return orjson.dumps({k: v for k, v in asdict(self).items() if v not in (None, ())})


@runtime_checkable
class EventHandler(Protocol):
    """What a plugin implements to listen to topic events."""

    def handle_event(self, event: PipelineEvent) -> Any:
        """React to ``event`` (may be a coroutine function)."""


__all__ = ["EventHandler", "PipelineEvent"]
