"""One pipeline's message work, independent of Kafka: gate, chain, routes, keys.

:class:`Pipeline` owns a :class:`~pyheart.broker.manager.PluginManager` (and so its own
:class:`~pyheart.broker.registry.PluginRegistry`) holding the pipeline's validators, transformers
and hook plugins. :meth:`Pipeline.process` turns one input record into an :class:`Outcome`: the
outputs with their topics and keys, or the failure that sends the record to the dead-letter topic.
It is plain synchronous CPU work; the runtime (:mod:`pyheart.broker.engine.runtime`) does the I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyheart.broker.claimcheck import CLAIM_HEADERS, ClaimCheckError, ClaimCheckStore, offload, resolve
from pyheart.broker.contracts import Header, Message, TransformerPlugin, ValidationReport, ValidatorPlugin
from pyheart.broker.engine.config import PipelineSettings, PluginRef
from pyheart.broker.engine.envelope import decode_headers, envelope_for, output_headers
from pyheart.broker.engine.hooks import PipelineEvent
from pyheart.broker.errors import (
    Action,
    ConfigError,
    PluginError,
    PyHeartError,
    Stage,
    action_for,
)
from pyheart.broker.manager import PluginManager
from pyheart.broker.plugin import Plugin
from pyheart.broker.registry import PluginRegistry

_MAX_LOCATIONS = 20


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a message failed: stage, stable code, plugin, locations (never values), and what to do."""

    stage: Stage
    code: str
    action: Action
    plugin: str | None = None
    error_class: str | None = None
    locations: tuple[str, ...] = ()

    def headers(self, topic: str, partition: int, offset: int) -> dict[str, str]:
        """The dead-letter headers describing this failure and the original coordinates."""
        out = {
            Header.ERROR_STAGE: self.stage.value,
            Header.ERROR_CODE: self.code,
            Header.ORIGINAL_TOPIC: topic,
            Header.ORIGINAL_PARTITION: str(partition),
            Header.ORIGINAL_OFFSET: str(offset),
        }
        if self.plugin:
            out[Header.ERROR_PLUGIN] = self.plugin
        if self.error_class:
            out[Header.ERROR_CLASS] = self.error_class
        if self.locations:
            out[Header.ERROR_LOCATIONS] = ",".join(self.locations[:_MAX_LOCATIONS])
        return out


@dataclass(slots=True)
class Output:
    """One message to produce."""

    topic: str
    message: Message
    key: bytes | None


@dataclass(slots=True)
class Outcome:
    """The result of processing one input record."""

    message: Message
    outputs: list[Output] = field(default_factory=list)
    failure: Failure | None = None
    events: list[PipelineEvent] = field(default_factory=list)
    #: (stage id, passed) for each validator / transformer the message went through.
    stages: list[tuple[str, bool]] = field(default_factory=list)


def failure_from(exc: BaseException, stage: Stage, plugin: str | None) -> Failure:
    """A :class:`Failure` for an exception raised by ``plugin`` at ``stage``, per the policy table."""
    action = action_for(exc)
    if isinstance(exc, PyHeartError):
        locations = tuple(getattr(exc, "locations", ()) or ())
        code = exc.code
    else:
        locations = ()
        code = "plugin-raised"
    return Failure(stage, code, action, plugin, type(exc).__name__, locations)


class _Router:
    """First matching route wins."""

    def __init__(self, settings: PipelineSettings) -> None:
        self._routes = [(r.topic, r.when.conditions() if r.when is not None else []) for r in settings.routes]

    def topic_for(self, message: Message) -> str | None:
        headers = message.headers
        for topic, conditions in self._routes:
            if not conditions:
                return topic
            for name, values in conditions:
                if headers.get(name) not in values:
                    break
            else:
                return topic
        return None


class Pipeline:
    """A pipeline's plugins and its per-message work."""

    def __init__(
        self,
        settings: PipelineSettings,
        env_paths: set[str] | None = None,
        *,
        index: int = 0,
        claim_check: ClaimCheckStore | None = None,
    ) -> None:
        self.settings = settings
        #: Resolves claim-checked inputs and offloads large outputs (None: claims fail, no offload).
        self.claim_check = claim_check
        self.name = settings.name
        self.manager = PluginManager(PluginRegistry())
        self.registry = self.manager.registry
        self.validators: list[tuple[str, ValidatorPlugin, frozenset[str]]] = []
        self.transformers: list[tuple[str, TransformerPlugin]] = []
        self._router = _Router(settings)
        self._key = settings.key
        self._active_events: frozenset[str] = frozenset()
        self._env_paths: dict[str, set[str]] = {}
        self._index = index
        where = f"pipelines[{index}]({settings.name})"
        self._load(where, env_paths or set())

    # ----------------------------------------------------------------------------------- loading
    def _load(self, where: str, env_paths: set[str]) -> None:
        problems: list[str] = []
        plugins: dict[str, Plugin] = {}
        sections: list[tuple[str, list[PluginRef]]] = [
            ("validators", self.settings.validators),
            ("transformers", self.settings.transformers),
            ("plugins", self.settings.plugins),
        ]
        for section, refs in sections:
            for i, ref in enumerate(refs):
                path = f"{where}.{section}[{i}]({ref.id})"
                prefix = f"pipelines[{self._index}].{section}[{i}].config."
                plugin = self._instantiate(path, ref, env_paths, prefix, problems)
                if plugin is None:
                    continue
                if section == "validators" and not callable(getattr(plugin, "validate", None)):
                    problems.append(f"{path}: '{ref.plugin}' is not a validator (no validate())")
                    continue
                if section == "transformers" and not callable(getattr(plugin, "transform", None)):
                    problems.append(f"{path}: '{ref.plugin}' is not a transformer (no transform())")
                    continue
                if section == "plugins" and not callable(getattr(plugin, "handle_event", None)):
                    problems.append(f"{path}: '{ref.plugin}' cannot listen to events (no handle_event())")
                    continue
                plugins[ref.id] = plugin
        problems.extend(self._check_chain(where, plugins))
        if problems:
            raise ConfigError("invalid pipeline configuration:\n  " + "\n  ".join(problems))
        for section, refs in sections:
            for ref in refs:
                plugin = plugins[ref.id]
                self.registry.register_plugin(
                    ref.id,
                    plugin,
                    env_paths=self._env_paths.get(ref.id, set()),
                    enabled=None if ref.enabled else False,
                )
                if not ref.enabled:
                    continue
                if section == "validators":
                    accepts = frozenset(getattr(plugin, "accepts", ()) or ())
                    self.validators.append((ref.id, plugin, accepts))  # type: ignore[arg-type]
                elif section == "transformers":
                    self.transformers.append((ref.id, plugin))  # type: ignore[arg-type]
        self._register_hooks(plugins)

    def _instantiate(
        self, path: str, ref: PluginRef, env_paths: set[str], prefix: str, problems: list[str]
    ) -> Plugin | None:
        try:
            cls = self.registry.resolve_class(ref.plugin)
        except PluginError as exc:
            problems.append(f"{path}: {exc}")
            return None
        try:
            plugin = cls(config=dict(ref.config))
        except Exception as exc:
            problems.append(f"{path}: constructor of '{ref.plugin}' raised {type(exc).__name__}")
            return None
        rel = {p[len(prefix) :] for p in env_paths if p.startswith(prefix)}
        self._env_paths[ref.id] = rel
        issues = self.registry.check_plugin_config(ref.id, plugin, rel)
        if issues:
            problems.extend(f"{path}.config.{i}" for i in issues)
            return None
        return plugin

    def _check_chain(self, where: str, plugins: dict[str, Plugin]) -> list[str]:
        """Each transformer must consume what the step before it produces."""
        problems: list[str] = []
        current: set[str] | None = {self.settings.input.format} if self.settings.input.format else None
        source = f"input.format ({self.settings.input.format})"
        for i, ref in enumerate(self.settings.transformers):
            plugin = plugins.get(ref.id)
            if plugin is None or not ref.enabled:
                continue
            consumes = set(getattr(plugin, "consumes", ()) or ())
            produces = set(getattr(plugin, "produces", ()) or ())
            if current is not None and consumes and not (current & consumes):
                problems.append(
                    f"{where}.transformers[{i}]({ref.id}): consumes {', '.join(sorted(consumes))} "
                    f"but receives {', '.join(sorted(current))} from {source}"
                )
            if produces:
                current = produces
                source = f"transformer '{ref.id}'"
        return problems

    def _register_hooks(self, plugins: dict[str, Plugin]) -> None:
        active = set()
        for event, target in self.settings.hooks.items():
            for pid in target.plugins:
                plugin = plugins[pid]
                priority = self.registry.metadata[pid].priority
                self.registry.register_hook(event, plugin.handle_event, priority, plugin_id=pid)  # type: ignore[attr-defined]
            if target.plugins or target.topic:
                active.add(event)
        self._active_events = frozenset(active)

    def add_listener(self, event: str, callback: Any, priority: int = 100) -> None:
        """Register an in-process callback for ``event`` (used by tests and embedding code)."""
        self.registry.register_hook(event, callback, priority)
        self._active_events = self._active_events | {event}

    def listens(self, event: str) -> bool:
        """True when something listens to ``event`` (so the runtime builds the event at all)."""
        return event in self._active_events

    def event_topic(self, event: str) -> str | None:
        """The topic ``event`` records are published to, if any."""
        target = self.settings.hooks.get(event)
        return target.topic if target is not None else None

    async def start(self) -> None:
        """Initialise the pipeline's plugins (dependency order) and mark them active."""
        await self.manager.start()

    async def stop(self) -> None:
        """Clean up the pipeline's plugins; idempotent."""
        await self.manager.stop()

    async def emit(self, event: PipelineEvent) -> None:
        """Call the plugins listening to ``event.event``."""
        await self.registry.trigger_hook(event.event, event)

    # ----------------------------------------------------------------------------------- messages
    def to_message(
        self,
        topic: str,
        partition: int,
        offset: int,
        value: bytes | None,
        key: bytes | None,
        raw_headers: Sequence[tuple[str, bytes]] | None,
    ) -> Message:
        """An input record as a :class:`Message` with a complete envelope and its partition key."""
        payload = value or b""
        strategy = self._key.strategy
        raw = decode_headers(raw_headers)
        if Header.CLAIM_CHECK in raw and self.claim_check is not None:
            # Resolved before the envelope (facts, patient key) and the plugins see the record. On
            # failure the claim headers stay and process() dead-letters the message.
            with contextlib.suppress(ClaimCheckError):
                payload = self.claim_check.resolve(payload, raw)
                raw = {k: v for k, v in raw.items() if k not in CLAIM_HEADERS}
        headers, pkey = envelope_for(
            payload,
            raw,
            topic=topic,
            partition=partition,
            offset=offset,
            default_format=self.settings.input.format,
            source=self.settings.input.source,
            want_patient_key=strategy == "patient",
        )
        if strategy == "patient":
            out_key = pkey if pkey is not None else key
        elif strategy == "input":
            out_key = key
        elif strategy == "header":
            value_ = headers.get(self._key.header or "")
            out_key = value_.encode() if value_ is not None else key
        else:
            out_key = None
        return Message(payload, headers[Header.CONTENT_TYPE], headers, out_key)

    def event_for(self, name: str, msg: Message, **extra: Any) -> PipelineEvent:
        """An event about ``msg`` (its ids and input coordinates from the envelope)."""
        h = msg.headers
        lineage = h.get(Header.LINEAGE, "")
        t, _, rest = lineage.rpartition("/")
        topic, _, part = t.rpartition("/")
        return PipelineEvent(
            event=name,
            pipeline=self.name,
            message_id=h.get(Header.MESSAGE_ID),
            correlation_id=h.get(Header.CORRELATION_ID),
            message_type=h.get(Header.MESSAGE_TYPE),
            trigger=h.get(Header.TRIGGER),
            control_id=h.get(Header.CONTROL_ID),
            topic=topic or None,
            partition=int(part) if part.isdigit() else None,
            offset=int(rest) if rest.isdigit() else None,
            **extra,
        )

    def process(self, message: Message) -> Outcome:
        """Gate, transform and route one message. Never raises for a message failure.

        Errors the policy table maps to ``stop`` (configuration or plugin-lifecycle errors) are
        raised: the runtime stops the pipeline without committing the message.
        """
        if Header.CLAIM_CHECK in message.headers:
            try:
                message = self._resolved(message)
            except ClaimCheckError as exc:
                return self._fail(Outcome(message), failure_from(exc, Stage.INTAKE, None), None)
        outcome = Outcome(message)
        listens = self._active_events
        if "message_received" in listens:
            outcome.events.append(self.event_for("message_received", message))
        for vid, validator, accepts in self.validators:
            if accepts and message.format not in accepts:
                continue
            try:
                report = validator.validate(message)
            except Exception as exc:
                return self._fail(outcome, failure_from(exc, Stage.VALIDATE, vid), vid)
            if not isinstance(report, ValidationReport) or not report.ok:
                return self._reject(outcome, vid, report)
            outcome.stages.append((vid, True))
        if "message_validated" in listens:
            outcome.events.append(self.event_for("message_validated", message))
        messages = [message]
        for tid, transformer in self.transformers:
            produced: list[Message] = []
            for msg in messages:
                try:
                    result = transformer.transform(msg)
                except Exception as exc:
                    return self._fail(outcome, failure_from(exc, Stage.TRANSFORM, tid), tid)
                if result is None:
                    continue
                if isinstance(result, Message):
                    produced.append(result)
                elif isinstance(result, Sequence) and all(isinstance(r, Message) for r in result):
                    produced.extend(result)
                else:
                    failure = Failure(Stage.TRANSFORM, "transform-bad-result", Action.DEAD_LETTER, tid)
                    return self._fail(outcome, failure, tid)
            outcome.stages.append((tid, True))
            messages = produced
        if self.transformers and "message_transformed" in listens:
            outcome.events.append(self.event_for("message_transformed", message))
        for index, msg in enumerate(messages):
            out = Message(msg.payload, msg.format, output_headers(message, msg, index), msg.key)
            topic = self._router.topic_for(out)
            if topic is None:
                return self._fail(outcome, Failure(Stage.ROUTE, "no-route", Action.DEAD_LETTER), None)
            key = out.key if out.key is not None else message.key
            try:
                payload, headers = offload(self.claim_check, out.payload, out.headers)
            except ClaimCheckError as exc:
                # A full or failing disk may recover: retry with backoff, then dead-letter.
                failure = Failure(Stage.PRODUCE, exc.code, Action.RETRY, None, type(exc).__name__)
                return self._fail(outcome, failure, None)
            if payload is not out.payload or len(headers) != len(out.headers):
                out = Message(payload, out.format, headers, out.key)
            outcome.outputs.append(Output(topic, out, key))
        return outcome

    def _resolved(self, message: Message) -> Message:
        """``message`` with its claim-checked payload loaded and its claim headers dropped."""
        payload = resolve(self.claim_check, message.payload, message.headers)
        headers = {k: v for k, v in message.headers.items() if k not in CLAIM_HEADERS}
        return Message(payload, message.format, headers, message.key)

    def _reject(self, outcome: Outcome, vid: str, report: object) -> Outcome:
        if isinstance(report, ValidationReport):
            errors = [i for i in report.issues if i.severity.value in ("error", "fatal")]
            code = errors[0].code if errors else "validation-failed"
            locations = tuple(dict.fromkeys(i.location for i in errors if i.location))
            failure = Failure(Stage.VALIDATE, code, Action.DEAD_LETTER, vid, None, locations)
        else:
            failure = Failure(Stage.VALIDATE, "validator-bad-result", Action.DEAD_LETTER, vid)
        outcome.stages.append((vid, False))
        outcome.failure = failure
        if "message_rejected" in self._active_events:
            outcome.events.append(
                self.event_for(
                    "message_rejected", outcome.message, stage="validate", plugin=vid, error_code=failure.code
                )
            )
        return outcome

    def _fail(self, outcome: Outcome, failure: Failure, plugin_id: str | None) -> Outcome:
        if failure.action is Action.STOP:
            raise PluginError(
                f"pipeline '{self.name}': {failure.stage.value} step '{plugin_id}' raised "
                f"{failure.error_class} ({failure.code}); stopping"
            )
        if plugin_id is not None:
            outcome.stages.append((plugin_id, False))
        outcome.failure = failure
        outcome.outputs.clear()
        return outcome


__all__ = ["Failure", "Outcome", "Output", "Pipeline", "failure_from"]
