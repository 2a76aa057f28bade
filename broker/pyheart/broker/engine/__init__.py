"""The engine: Kafka pipelines, each a consumer group with its own PluginRegistry.

``pyheart run -c CONFIG.yaml`` builds an :class:`Engine` from :func:`load_settings` and
:class:`KafkaClients`; component tests use :class:`MemoryBroker` in place of Kafka.
"""

from pyheart.broker.engine.config import (
    EVENTS,
    EngineSettings,
    PipelineSettings,
    load_settings,
    parse_settings,
)
from pyheart.broker.engine.hooks import EventHandler, PipelineEvent
from pyheart.broker.engine.kafka_io import KafkaClients
from pyheart.broker.engine.memory import MemoryBroker
from pyheart.broker.engine.metrics import EngineMetrics
from pyheart.broker.engine.pipeline import Failure, Outcome, Output, Pipeline
from pyheart.broker.engine.runtime import Engine, PipelineWorker

__all__ = [
    "EVENTS",
    "Engine",
    "EngineMetrics",
    "EngineSettings",
    "EventHandler",
    "Failure",
    "KafkaClients",
    "MemoryBroker",
    "Outcome",
    "Output",
    "Pipeline",
    "PipelineEvent",
    "PipelineSettings",
    "PipelineWorker",
    "load_settings",
    "parse_settings",
]
