"""What every built-in validator shares: metadata from class attributes, a config validated once
against the plugin's schema (also when the plugin is used without a registry), and idempotent
lifecycle methods."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from pyheart.broker.config import validate_config
from pyheart.broker.contracts import Issue, Message, Severity, ValidationReport, ValidatorPlugin
from pyheart.broker.errors import ConfigIssue, ParseError, PluginConfigError
from pyheart.broker.hl7v2.parser import Hl7Message, parse_message
from pyheart.broker.plugin import PluginMetadata, PluginType

PLUGIN_VERSION = "0.1.0"


class BaseValidator(ValidatorPlugin):
    """A validator whose metadata and config schema are class attributes."""

    NAME: ClassVar[str] = ""
    DESCRIPTION: ClassVar[str] = ""
    PRIORITY: ClassVar[int] = 100
    CONFIG_SCHEMA: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._settings_for: int | None = None
        self._settings: dict[str, Any] = {}

    def get_metadata(self) -> PluginMetadata:
        """Name, version, type, description and the config schema (a copy)."""
        return PluginMetadata(
            name=self.NAME,
            version=PLUGIN_VERSION,
            plugin_type=PluginType.VALIDATOR,
            description=self.DESCRIPTION,
            author="PyHeart",
            config_schema=copy.deepcopy(self.CONFIG_SCHEMA),
            priority=self.PRIORITY,
        )

    # ----------------------------------------------------------------------------------- config
    def config_issues(self, config: dict[str, Any]) -> list[ConfigIssue]:
        """Checks beyond the schema (patterns that must compile, locations that must parse)."""
        return []

    def validate_config(self, config: dict[str, Any]) -> bool:
        """The registry's custom check: :meth:`config_issues` must find nothing."""
        return not self.config_issues(config)

    def settings(self) -> dict[str, Any]:
        """The config with defaults applied, validated once per config object.

        Raises :class:`PluginConfigError` (paths and rules, never values) when it is invalid.
        """
        if self._settings_for != id(self.config):
            validated, issues = validate_config(self.CONFIG_SCHEMA, self.config)
            if not issues:
                issues = self.config_issues(validated)
            if issues:
                raise PluginConfigError(self.NAME, issues)
            self._settings = validated
            self._settings_for = id(self.config)
            self.configure(validated)
        return self._settings

    def configure(self, settings: dict[str, Any]) -> None:
        """Prepare what the validated settings need (compiled patterns, caches)."""

    # ----------------------------------------------------------------------------------- lifecycle
    async def initialize(self) -> bool:
        """Validate the config and prepare; safe to call twice."""
        self.settings()
        self.initialized = True
        return True

    async def cleanup(self) -> bool:
        """Nothing to release; safe to call twice."""
        self.initialized = False
        return True

    # ----------------------------------------------------------------------------------- messages
    def validate(self, message: Message) -> ValidationReport:
        """Check ``message`` when its format is one this validator accepts; pass the others."""
        settings = self.settings()
        if message.format not in self.accepts:
            return ValidationReport((), self.NAME)
        return self.check(message, settings)

    def check(self, message: Message, settings: dict[str, Any]) -> ValidationReport:
        """Check a message of an accepted format."""
        raise NotImplementedError

    def report(self, issues: list[Issue], *, reject: bool = False) -> ValidationReport:
        """A report of ``issues`` from this validator."""
        return ValidationReport(tuple(issues), self.NAME, reject)


#: The last few parses, by payload identity: gates that run one after the other on the same
#: message share one parse. Holding the payload keeps its id from being reused.
_RECENT: list[tuple[bytes, str, bool, Hl7Message | ParseError]] = []
_RECENT_SIZE = 4


def parse_hl7(payload: bytes, fallback_charset: str, join_wrapped: bool = False) -> Hl7Message:
    """:func:`~pyheart.broker.hl7v2.parser.parse_message`, shared by gates checking one payload."""
    for seen, charset, joined, result in _RECENT:
        if seen is payload and charset == fallback_charset and joined == join_wrapped:
            if isinstance(result, ParseError):
                raise ParseError(str(result), locations=result.locations) from None
            return result
    try:
        outcome: Hl7Message | ParseError = parse_message(
            payload, fallback_charset=fallback_charset, join_wrapped=join_wrapped
        )
    except ParseError as exc:
        outcome = exc
    _RECENT.append((payload, fallback_charset, join_wrapped, outcome))
    if len(_RECENT) > _RECENT_SIZE:
        del _RECENT[0]
    if isinstance(outcome, ParseError):
        raise ParseError(str(outcome), locations=outcome.locations) from None
    return outcome


def issue(
    severity: Severity | str, code: str, location: str, message: str, fhir_code: str = "invalid"
) -> Issue:
    """An :class:`Issue` (severity given as enum or its value)."""
    return Issue(Severity(severity), code, location, message, fhir_code)


__all__ = ["PLUGIN_VERSION", "BaseValidator", "issue", "parse_hl7"]
