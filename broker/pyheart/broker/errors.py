"""The one error tree of PyHeart.

Every error the engine raises derives from :class:`PyHeartError`. Texts name plugins, stages, field
paths, rules and message coordinates, never payloads or field values (they may be PHI); errors that
wrap a library error are raised ``from None`` so the library's text (which may quote values) is not
chained in.

::

    PyHeartError
    ├── ConfigError                      a configuration file or a plugin's config is wrong
    │   ├── MissingEnvironmentError      ${VAR} references that are not set (all of them at once)
    │   └── PluginConfigError            a plugin's config breaks its schema (issues: path + rule)
    ├── PluginError                      loading and lifecycle of plugins
    │   ├── PluginLoadError              a class / entry point / package cannot be imported
    │   ├── DuplicatePluginError         a plugin id registered twice
    │   ├── PluginNotFoundError          an id that is not registered
    │   ├── PluginDependencyError        a missing dependency or a dependency cycle
    │   ├── PluginLifecycleError         an illegal lifecycle transition
    │   └── PluginStartError             start() left enabled plugins uninitialised
    ├── MessageError                     one message failed; carries stage and message reference
    │   ├── ParseError                   the payload cannot be parsed (location, no values)
    │   ├── ValidationFailed             a validator gate rejected the message (report attached)
    │   └── TransformError               a transformer could not convert the message
    └── TransportError                   Kafka, MLLP, HTTP, DICOM I/O; ``retriable`` says what to do

The engine's policy for "stage x error -> retry / dead-letter / stop" is
:data:`pyheart.broker.errors.POLICY`, in one table.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class PyHeartError(Exception):
    """Base of every error PyHeart raises on purpose."""

    #: A stable, machine-readable code (used in dead-letter headers and ERR segments).
    code: str = "pyheart-error"


# --------------------------------------------------------------------------------------- configuration
class ConfigError(PyHeartError):
    """A configuration file, or one plugin's config, is not acceptable."""

    code = "config-invalid"


class MissingEnvironmentError(ConfigError):
    """One or more ``${VAR}`` references name variables that are not set and have no default."""

    code = "config-missing-env"

    def __init__(self, missing: Iterable[tuple[str, str]]) -> None:
        #: ``(variable, path where it is referenced)`` pairs, in document order.
        self.missing: list[tuple[str, str]] = list(missing)
        names = ", ".join(f"${{{var}}} (at {path})" for var, path in self.missing)
        super().__init__(f"environment variables not set: {names}")


@dataclass(frozen=True)
class ConfigIssue:
    """One schema violation: where, which rule, and a value-free explanation."""

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}]"


class PluginConfigError(ConfigError):
    """A plugin's configuration breaks the plugin's ``config_schema``."""

    code = "plugin-config-invalid"

    def __init__(self, plugin_id: str, issues: Sequence[ConfigIssue]) -> None:
        self.plugin_id = plugin_id
        self.issues = list(issues)
        lines = "; ".join(str(i) for i in self.issues)
        super().__init__(f"plugin '{plugin_id}': invalid config: {lines}")


# --------------------------------------------------------------------------------------- plugins
class PluginError(PyHeartError):
    """Loading, registering or running a plugin's lifecycle failed."""

    code = "plugin-error"


class PluginLoadError(PluginError):
    """A plugin class, entry point or package could not be imported."""

    code = "plugin-load-failed"


class DuplicatePluginError(PluginError):
    """A plugin id is already registered."""

    code = "plugin-duplicate-id"


class PluginNotFoundError(PluginError):
    """No plugin (or plugin class) is registered under that name."""

    code = "plugin-not-found"


class PluginDependencyError(PluginError):
    """A dependency is missing, disabled, or the dependencies form a cycle."""

    code = "plugin-dependency"


class PluginLifecycleError(PluginError):
    """A lifecycle transition that the state machine does not allow."""

    code = "plugin-lifecycle"


class PluginStartError(PluginError):
    """``PluginManager.start`` could not initialise every enabled plugin."""

    code = "plugin-start-failed"

    def __init__(self, failed: Sequence[str]) -> None:
        self.failed = list(failed)
        super().__init__(f"plugins failed to initialise: {', '.join(self.failed)}")


# --------------------------------------------------------------------------------------- messages
class Stage(enum.StrEnum):
    """Where in a pipeline a message failed."""

    INTAKE = "intake"
    PARSE = "parse"
    VALIDATE = "validate"
    TRANSFORM = "transform"
    ROUTE = "route"
    PRODUCE = "produce"
    DELIVER = "deliver"


@dataclass(frozen=True)
class MessageRef:
    """Coordinates of a message: enough to find it again, nothing of its content."""

    message_id: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    def __str__(self) -> str:
        parts = []
        if self.message_id:
            parts.append(f"message {self.message_id}")
        if self.topic is not None:
            parts.append(f"{self.topic}[{self.partition}]@{self.offset}")
        return " ".join(parts) or "message"


class MessageError(PyHeartError):
    """One message could not be processed. Never carries field values."""

    code = "message-error"
    stage: Stage = Stage.TRANSFORM

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        stage: Stage | None = None,
        plugin_id: str | None = None,
        locations: Sequence[str] = (),
        ref: MessageRef | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        if stage is not None:
            self.stage = stage
        self.plugin_id = plugin_id
        self.locations = list(locations)
        self.ref = ref or MessageRef()
        super().__init__(message)


class ParseError(MessageError):
    """The payload is not well-formed in its declared format. ``locations`` says where."""

    code = "parse-error"
    stage = Stage.PARSE


class ValidationFailed(MessageError):
    """A validator gate rejected the message; ``report`` holds the issues."""

    code = "validation-failed"
    stage = Stage.VALIDATE

    def __init__(self, message: str, *, report: object = None, **kwargs: object) -> None:
        self.report = report
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class TransformError(MessageError):
    """A transformer could not convert the message."""

    code = "transform-error"
    stage = Stage.TRANSFORM


#: What mapping code raises when the data has a shape it did not expect (a component read where a
#: repetition was, a number beyond range). The transformers catch these at their edges and raise a
#: TransformError that names the class only (UnicodeError is a ValueError).
DATA_SHAPE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    ArithmeticError,
)


# --------------------------------------------------------------------------------------- transport
class TransportError(PyHeartError):
    """An I/O failure talking to Kafka, an MLLP peer, a FHIR server or a DICOM peer."""

    code = "transport-error"

    def __init__(self, message: str, *, retriable: bool = True, code: str | None = None) -> None:
        self.retriable = retriable
        if code is not None:
            self.code = code
        super().__init__(message)


# --------------------------------------------------------------------------------------- policy
class Action(enum.StrEnum):
    """What the engine does with a failed message."""

    RETRY = "retry"  # retry with exponential backoff and jitter, bounded; then dead-letter
    DEAD_LETTER = "dead_letter"  # to the pipeline's dead-letter topic; the partition moves on
    STOP = "stop"  # stop the pipeline without committing (the message is redelivered later)


@dataclass(frozen=True)
class _Rule:
    error: type[BaseException]
    action: Action
    retriable_only: bool = False


#: The engine's one table: the first matching row wins. Plugin bugs (any other exception raised by
#: a plugin while handling a message) are message failures and dead-letter too; they never crash
#: the process.
POLICY: tuple[_Rule, ...] = (
    _Rule(TransportError, Action.RETRY, retriable_only=True),
    _Rule(TransportError, Action.DEAD_LETTER),
    _Rule(MessageError, Action.DEAD_LETTER),
    _Rule(ConfigError, Action.STOP),
    _Rule(PluginError, Action.STOP),
    _Rule(Exception, Action.DEAD_LETTER),
)


def action_for(exc: BaseException) -> Action:
    """Return the policy's action for ``exc`` (see :data:`POLICY`)."""
    for rule in POLICY:
        if isinstance(exc, rule.error):
            if rule.retriable_only and not getattr(exc, "retriable", False):
                continue
            return rule.action
    return Action.STOP


__all__ = [
    "DATA_SHAPE_ERRORS",
    "POLICY",
    "Action",
    "ConfigError",
    "ConfigIssue",
    "DuplicatePluginError",
    "MessageError",
    "MessageRef",
    "MissingEnvironmentError",
    "ParseError",
    "PluginConfigError",
    "PluginDependencyError",
    "PluginError",
    "PluginLifecycleError",
    "PluginLoadError",
    "PluginNotFoundError",
    "PluginStartError",
    "PyHeartError",
    "Stage",
    "TransformError",
    "TransportError",
    "ValidationFailed",
    "action_for",
]
