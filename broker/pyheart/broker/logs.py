"""Audit and operational logging: structlog, JSON lines, PHI-safe by construction.

Every logger PyHeart uses comes from :func:`get_logger`. Its processor chain is fixed here and does
not depend on the application's global structlog configuration, so a plugin event is always a JSON
line with an allow-listed set of keys. The last processor before rendering, :func:`allow_list`,
drops every key that is not a known identifier or coordinate: payloads and field values can not
reach a log line even when a caller passes them by mistake (the dropped key names are kept).

Two library defaults that leak PHI are deliberately not used: structlog's ``dict_tracebacks``
(renders local variables, the raw message among them) and ``format_exc_info`` (exception texts of
pydantic / hl7apy quote the offending value). Exceptions are logged as their class name only.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import IO, Any

import orjson
import structlog

#: Keys that may appear in a log event. Identifiers, coordinates, codes and counts only.
ALLOWED_KEYS: frozenset[str] = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "logger",
        # plugins
        "plugin_id",
        "plugin_name",
        "plugin_type",
        "plugin_class",
        "plugin_version",
        "operation",
        "outcome",
        "reason",
        "state",
        "from_state",
        "to_state",
        "hook",
        "callback",
        "priority",
        "dependencies",
        "missing",
        "cycle",
        "package",
        "entry_point",
        "source",
        "count",
        "failed",
        # errors (class names and stable codes; never exception texts)
        "error_type",
        "error_code",
        "locations",
        "stage",
        "action",
        "attempt",
        "retriable",
        "delay_s",
        # messages and Kafka coordinates
        "pipeline",
        "group_id",
        "topic",
        "topics",
        "partition",
        "partitions",
        "offset",
        "offsets",
        "message_id",
        "correlation_id",
        "control_id",
        "message_type",
        "trigger",
        "format",
        "target",
        "duration_ms",
        "bootstrap_servers",
        "pid",  # process id of a local broker JVM (pyheart kafka / tests)
        "transactional",
        # network peers (addresses of systems, not of people)
        "peer",
        "listen",
        "ack_code",
        "status_code",
        "size_bytes",  # MLLP frame sizes (oversized / discarded bytes)
        "max_bytes",
        # replay / audit
        "user",
        "host",
        "selection",
        "dry_run",
        "range",
    }
)

_DROPPED = "dropped_keys"


def allow_list(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop every key not in :data:`ALLOWED_KEYS`; record the dropped names (not their values)."""
    dropped = [k for k in event_dict if k not in ALLOWED_KEYS]
    for key in dropped:
        del event_dict[key]
    if dropped:
        event_dict[_DROPPED] = sorted(dropped)
    return event_dict


def exception_type_only(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace ``exc_info`` by the exception's class name; its text and traceback may hold PHI."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        if isinstance(exc_info, BaseException):
            exc: BaseException | None = exc_info
        elif isinstance(exc_info, tuple):
            exc = exc_info[1]
        else:
            exc = sys.exc_info()[1]
        if exc is not None:
            event_dict.setdefault("error_type", type(exc).__name__)
            code = getattr(exc, "code", None)
            if isinstance(code, str):
                event_dict.setdefault("error_code", code)
    event_dict.pop("stack_info", None)
    event_dict.pop("exception", None)
    return event_dict


def _render(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    return orjson.dumps(dict(event_dict), default=str).decode()


PROCESSORS: list[Any] = [
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    exception_type_only,
    allow_list,
    _render,
]


class _StripTracebacks(logging.Filter):
    """Last line of defence on the stdlib side: no record of ours carries a traceback or stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


_STRIP = _StripTracebacks()


class SafeBoundLogger(structlog.stdlib.BoundLogger):
    """A stdlib-backed structlog logger whose ``exception()`` logs at error level without a traceback."""

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        kw.setdefault("exc_info", True)
        return self._proxy_to_logger("error", event, *args, **kw)


#: Libraries whose verbose levels print message content: aiokafka.conn dumps fetch responses (payloads) at
#: DEBUG; httpx logs request URLs (conditional FHIR URLs carry identifiers) at INFO; pynetdicom and hl7apy
#: log dataset / message content when verbose. Their loggers get an explicit floor, which a root level of
#: DEBUG does not lower.
LIBRARY_LOG_FLOORS: dict[str, int] = {
    "aiokafka": logging.INFO,
    "kafka": logging.INFO,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "pynetdicom": logging.WARNING,
    "hl7apy": logging.WARNING,
}
_guarded = False


def guard_library_loggers() -> None:
    """Raise the levels of third-party loggers known to log message content (see LIBRARY_LOG_FLOORS)."""
    global _guarded
    for name, floor in LIBRARY_LOG_FLOORS.items():
        lib = logging.getLogger(name)
        if lib.level == logging.NOTSET or lib.level < floor:
            lib.setLevel(floor)
    _guarded = True


def get_logger(name: str = "pyheart") -> SafeBoundLogger:
    """A structlog logger with PyHeart's fixed, PHI-safe processor chain, writing to stdlib ``name``."""
    if not _guarded:
        guard_library_loggers()
    target = logging.getLogger(name)
    if _STRIP not in target.filters:
        target.addFilter(_STRIP)
    return structlog.wrap_logger(  # type: ignore[no-any-return]
        target,
        processors=PROCESSORS,
        wrapper_class=SafeBoundLogger,
        cache_logger_on_first_use=False,
    )


def configure_logging(level: int | str = logging.INFO, stream: IO[str] | None = None) -> None:
    """Send PyHeart's JSON lines to ``stream`` (stderr by default), one per line, unadorned."""
    root = logging.getLogger("pyheart")
    for handler in list(root.handlers):
        if getattr(handler, "_pyheart", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._pyheart = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    guard_library_loggers()


__all__ = [
    "ALLOWED_KEYS",
    "LIBRARY_LOG_FLOORS",
    "PROCESSORS",
    "SafeBoundLogger",
    "allow_list",
    "configure_logging",
    "get_logger",
    "guard_library_loggers",
]
