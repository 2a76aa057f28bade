"""Small real plugins for the engine's tests (imported as ``engine_plugins:Class``).

The directory of this file is put on ``sys.path`` (or ``PYTHONPATH`` for worker subprocesses) by the
tests that use them.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from pyheart.broker import PluginMetadata, PluginType
from pyheart.broker.contracts import Format, Issue, Message, Severity, TransformerPlugin, ValidationReport
from pyheart.broker.contracts import ValidatorPlugin as _Validator
from pyheart.broker.errors import ConfigError, TransportError
from pyheart.broker.plugin import Plugin

TEXT = "text/plain"


class Upper(TransformerPlugin):
    """Upper-cases a text payload."""

    consumes: ClassVar[tuple[str, ...]] = (TEXT,)
    produces: ClassVar[tuple[str, ...]] = (TEXT,)

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata("upper", "1.0", PluginType.TRANSFORMER, "upper-cases text")

    def transform(self, message: Message) -> Message:
        return message.evolve(payload=message.payload.upper())


class Split(TransformerPlugin):
    """One output per comma-separated part; drops empty payloads (filters)."""

    consumes: ClassVar[tuple[str, ...]] = (TEXT,)
    produces: ClassVar[tuple[str, ...]] = (TEXT,)

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata("split", "1.0", PluginType.TRANSFORMER, "splits on commas")

    def transform(self, message: Message) -> list[Message] | None:
        if not message.payload:
            return None
        return [message.evolve(payload=p) for p in message.payload.split(b",")]


class ToJson(TransformerPlugin):
    """Wraps text in a JSON document (text/plain -> application/json)."""

    consumes: ClassVar[tuple[str, ...]] = (TEXT,)
    produces: ClassVar[tuple[str, ...]] = (Format.JSON,)

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata("to-json", "1.0", PluginType.TRANSFORMER, "text to JSON")

    def transform(self, message: Message) -> Message:
        return message.evolve(payload=b'{"text":"' + message.payload + b'"}', format=Format.JSON)


class Tagger(TransformerPlugin):
    """Sets a header from its config (for routing tests)."""

    consumes: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[tuple[str, ...]] = ()

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            "tagger",
            "1.0",
            PluginType.TRANSFORMER,
            "sets a header",
            config_schema={
                "header": {"type": "string", "required": True},
                "value": {"type": "string", "required": True},
            },
        )

    def transform(self, message: Message) -> Message:
        return message.evolve(headers={self.config["header"]: self.config["value"]})


class Boom(TransformerPlugin):
    """Raises a plain exception (a plugin bug) when the payload contains ``BOOM``."""

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata("boom", "1.0", PluginType.TRANSFORMER, "raises on BOOM")

    def transform(self, message: Message) -> Message:
        if b"BOOM" in message.payload:
            raise RuntimeError(f"cannot handle {message.payload!r}")
        return message


class Flaky(TransformerPlugin):
    """Raises a retriable transport error the first ``failures`` times it sees a payload with ``FLAKY``."""

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            "flaky",
            "1.0",
            PluginType.TRANSFORMER,
            "fails with a retriable error",
            config_schema={"failures": {"type": "integer", "default": 1000}},
        )

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.calls = 0

    def transform(self, message: Message) -> Message:
        if b"FLAKY" in message.payload:
            self.calls += 1
            if self.calls <= self.config["failures"]:
                raise TransportError("terminology service unavailable", retriable=True, code="upstream-down")
        return message


class RejectX(_Validator):
    """Rejects payloads that contain ``X`` (code ``contains-x`` at location ``payload``)."""

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata("reject-x", "1.0", PluginType.VALIDATOR, "rejects X")

    def validate(self, message: Message) -> ValidationReport:
        if b"X" in message.payload:
            issue = Issue(Severity.ERROR, "contains-x", "payload", "payload contains the letter X")
            return ValidationReport((issue,), "reject-x")
        return ValidationReport((), "reject-x")


class Recorder(Plugin):
    """A notifier that records the events it receives (``Recorder.seen`` is shared)."""

    seen: ClassVar[list[Any]] = []

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata("recorder", "1.0", PluginType.NOTIFIER, "records events")

    async def initialize(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        return True

    async def handle_event(self, event: Any) -> None:
        Recorder.seen.append(event)


class BrokenNotifier(Recorder):
    """A notifier whose callback always raises."""

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata("broken", "1.0", PluginType.NOTIFIER, "raises", priority=10)

    async def handle_event(self, event: Any) -> None:
        raise RuntimeError("notifier down")


class Misconfigured(TransformerPlugin):
    """Raises a configuration error at message time (the policy says: stop the pipeline)."""

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata("misconfigured", "1.0", PluginType.TRANSFORMER, "raises ConfigError")

    def transform(self, message: Message) -> Message:
        raise ConfigError("lookup table missing")


class Slow(TransformerPlugin):
    """Spends ``ms`` milliseconds per message, so a test can stop a worker mid-stream."""

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            "slow",
            "1.0",
            PluginType.TRANSFORMER,
            "sleeps",
            config_schema={"ms": {"type": "number", "default": 1}},
        )

    def transform(self, message: Message) -> Message:
        time.sleep(self.config["ms"] / 1000)
        return message
