"""``hl7v2-structure``: fast, tolerant structure checks of ER7 messages (microseconds per message).

Checks, in order (the first group stops at a failure, since nothing after it can be read):

1. size: the payload is at most ``max_length`` bytes (when set);
2. ER7: the payload parses (MSH first, valid delimiters, well-formed segment names); a parse
   failure is reported with the parser's location (``MSH-2``, ``segment 4``);
3. MSH: MSH-9.1/9.2 (message type and trigger event; ACK may omit the event), MSH-10 (control
   id), MSH-11 (processing id P/D/T), MSH-12 (version, one of ``versions``); MSH-2 that is not
   the standard four characters (or five from v2.7) is a warning;
4. segments: Z-segments (unless ``allow_z_segments``), segments the version does not define
   (warning), more than ``max_segments`` segments;
5. required segments of the message structure (MSH-9.3, else derived from type and event),
   taken from the standard's structure definitions in hl7apy and cached per
   ``(version, structure)``. A structure the version does not define is reported as information.

Structure failures reject the message (``reject=True``: AR / CR); the checks never quote values.
The standard's tables of a version are loaded the first time a message of that version arrives
(20-50 ms once), or at ``initialize`` for the ``preload_versions``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pyheart.broker.contracts import Format, Issue, Message, Severity, ValidationReport
from pyheart.broker.errors import ParseError
from pyheart.broker.hl7v2.parser import Hl7Message
from pyheart.validators import hl7v2_standard as std
from pyheart.validators._base import BaseValidator, issue, parse_hl7

_PROCESSING_IDS = frozenset({"P", "D", "T"})
_LEVELS = ["error", "warning", "information", "ignore"]


class Hl7v2StructureValidator(BaseValidator):
    """Fast, tolerant HL7 v2 structure gate (MSH, version, segments, required segments)."""

    NAME = "hl7v2-structure"
    DESCRIPTION = "Fast, tolerant HL7 v2 structure checks: MSH, version, segment names, required segments"
    PRIORITY = 10
    accepts: ClassVar[tuple[str, ...]] = (Format.HL7V2,)
    CONFIG_SCHEMA: ClassVar[dict[str, Any]] = {
        "versions": {
            "type": "array",
            "items": {"type": "string", "enum": list(std.KNOWN_VERSIONS)},
            "default": list(std.KNOWN_VERSIONS),
            "description": "MSH-12 versions accepted",
        },
        "unknown_version": {
            "type": "string",
            "enum": _LEVELS,
            "default": "error",
            "description": "how to report a version not in 'versions' (error rejects the message)",
        },
        "required_segments": {
            "type": "boolean",
            "default": True,
            "description": "check the segments the message structure requires",
        },
        "unknown_segments": {
            "type": "string",
            "enum": _LEVELS,
            "default": "warning",
            "description": "how to report non-Z segments the version does not define",
        },
        "allow_z_segments": {"type": "boolean", "default": True, "description": "accept Z-segments"},
        "preload_versions": {
            "type": "array",
            "items": {"type": "string", "enum": list(std.KNOWN_VERSIONS)},
            "default": [],
            "description": "versions whose standard tables are loaded at initialize (else on first use)",
        },
        "max_length": {
            "type": "integer",
            "default": 0,
            "minimum": 0,
            "description": "largest payload in bytes (0: no limit)",
        },
        "max_segments": {
            "type": "integer",
            "default": 0,
            "minimum": 0,
            "description": "most segments in one message (0: no limit)",
        },
        "fallback_charset": {
            "type": "string",
            "default": "latin-1",
            "description": "charset for payloads without MSH-18 that are not UTF-8",
        },
        "join_wrapped": {
            "type": "boolean",
            "default": False,
            "description": "repair segments broken by hard line wraps instead of rejecting them",
        },
    }

    def configure(self, settings: dict[str, Any]) -> None:
        """Keep the accepted versions as a set."""
        self._versions = frozenset(settings["versions"])

    async def initialize(self) -> bool:
        """Validate the config and load the tables of ``preload_versions`` (20-50 ms each)."""
        settings = self.settings()
        for version in settings["preload_versions"]:
            lib = std.hl7apy_version(version)
            if lib is not None:
                std.known_segments(lib)
        return await super().initialize()

    def check(self, message: Message, settings: dict[str, Any]) -> ValidationReport:
        """Run the checks of the module docstring."""
        limit = settings["max_length"]
        if limit and len(message.payload) > limit:
            return self.report(
                [
                    issue(
                        Severity.ERROR,
                        "hl7v2-too-long",
                        "message",
                        f"message is longer than {limit} bytes",
                        "too-long",
                    )
                ],
                reject=True,
            )
        try:
            parsed = parse_hl7(message.payload, settings["fallback_charset"], settings["join_wrapped"])
        except ParseError as exc:
            where = exc.locations[0] if exc.locations else "message"
            return self.report(
                [issue(Severity.FATAL, "hl7v2-parse", where, str(exc), "structure")], reject=True
            )
        issues: list[Issue] = []
        self._check_msh(parsed, settings, issues)
        version = parsed.version.strip()
        self._check_segments(parsed, version, settings, issues)
        if settings["required_segments"] and version:
            self._check_required(parsed, version, issues)
        reject = any(i.severity in (Severity.ERROR, Severity.FATAL) for i in issues)
        return self.report(issues, reject=reject)

    # ----------------------------------------------------------------------------------- MSH
    def _check_msh(self, m: Hl7Message, settings: dict[str, Any], issues: list[Issue]) -> None:
        msh = m.msh
        declared = msh.raw(2)
        if declared != m.delimiters.encoding_characters or len(declared) < 4:
            issues.append(
                issue(
                    Severity.WARNING,
                    "hl7v2-msh2-nonstandard",
                    "MSH-2",
                    "encoding characters are not the four (or five) the standard defines",
                    "structure",
                )
            )
        if not m.trigger_event and m.message_type != "ACK":
            issues.append(_required("MSH-9.2", "trigger event"))
        if not msh.get(10):
            issues.append(_required("MSH-10", "message control id"))
        processing = msh.get(11)
        if not processing:
            issues.append(_required("MSH-11", "processing id"))
        elif processing not in _PROCESSING_IDS:
            issues.append(
                issue(
                    Severity.ERROR,
                    "hl7v2-processing-id",
                    "MSH-11.1",
                    "processing id is not P, D or T",
                    "code-invalid",
                )
            )
        version = m.version.strip()
        if not version:
            issues.append(_required("MSH-12", "version id"))
        elif version not in self._versions:
            _add(
                issues,
                settings["unknown_version"],
                "hl7v2-unsupported-version",
                "MSH-12",
                "version is not one this gate accepts",
                "not-supported",
            )
        elif m.delimiters.truncation and version < "2.7":
            issues.append(
                issue(
                    Severity.WARNING,
                    "hl7v2-msh2-truncation",
                    "MSH-2",
                    "a truncation character is declared before version 2.7",
                    "structure",
                )
            )

    # ----------------------------------------------------------------------------------- segments
    def _check_segments(
        self, m: Hl7Message, version: str, settings: dict[str, Any], issues: list[Issue]
    ) -> None:
        limit = settings["max_segments"]
        if limit and len(m.segments) > limit:
            issues.append(
                issue(
                    Severity.ERROR,
                    "hl7v2-too-many-segments",
                    "message",
                    f"message has more than {limit} segments",
                    "too-long",
                )
            )
        lib = std.hl7apy_version(version) if version else None
        known = std.known_segments(lib) if lib and settings["unknown_segments"] != "ignore" else None
        seen: set[str] = set()
        for seg in m.segments:
            name = seg.name
            if name in seen:
                continue
            seen.add(name)
            if name[0] == "Z":
                if not settings["allow_z_segments"]:
                    issues.append(
                        issue(
                            Severity.ERROR,
                            "hl7v2-z-segment",
                            f"{name}",
                            f"Z-segment in segment {seg.index + 1} is not accepted",
                            "structure",
                        )
                    )
            elif known is not None and name not in known:
                _add(
                    issues,
                    settings["unknown_segments"],
                    "hl7v2-unknown-segment",
                    name,
                    f"segment {seg.index + 1} is not defined in this version",
                    "structure",
                )

    def _check_required(self, m: Hl7Message, version: str, issues: list[Issue]) -> None:
        lib = std.hl7apy_version(version)
        if lib is None:
            return
        structure = std.resolve_structure(lib, m.message_type, m.trigger_event, m.structure)
        if structure is None:
            issues.append(
                issue(
                    Severity.INFORMATION,
                    "hl7v2-unknown-structure",
                    "MSH-9",
                    "the version defines no structure for this message type; segments not checked",
                    "informational",
                )
            )
            return
        present = {s.name for s in m.segments}
        for name in std.required_segments(lib, structure):
            if name not in present:
                issues.append(
                    issue(
                        Severity.ERROR,
                        "hl7v2-required-segment",
                        name,
                        f"required segment is missing (structure {structure})",
                        "required",
                    )
                )


def _required(location: str, what: str) -> Issue:
    return issue(Severity.ERROR, "hl7v2-required-field", location, f"{what} is missing", "required")


def _add(issues: list[Issue], level: str, code: str, location: str, text: str, fhir_code: str) -> None:
    if level != "ignore":
        issues.append(issue(level, code, location, text, fhir_code))


__all__ = ["Hl7v2StructureValidator"]
