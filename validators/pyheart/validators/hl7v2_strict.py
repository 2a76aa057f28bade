"""``hl7v2-strict``: opt-in validation against the standard structure of the message's version.

This gate is slow (milliseconds per message: hl7apy builds an object per value); put it on feeds
that need conformance, not on every hot path. It reports every problem it finds, each located:

1. the message structure (MSH-9.3, else derived from MSH-9.1/9.2 with HL7 table 0354) must exist
   in the version; the segment sequence is matched against its grammar (groups, choices,
   cardinality): missing and unexpected segments are structure failures (``reject``: AR / CR);
2. every segment must be defined by the version (Z-segments excepted);
3. required fields must be present, repeating fields must not repeat more than allowed, and no
   field may follow the last one the segment defines (warning);
4. every non-empty field repetition is parsed by hl7apy at its STRICT level, which checks data
   types (numbers, dates, coded structures) and maximum lengths: failures are content errors
   (AE / CE), located as ``PID-7``.

hl7apy supports v2.1 to v2.8.2 (v2.7.1 is read with the v2.7 tables). Its parser rejects the
five encoding characters of v2.7+ in some paths, so values are handed over with the message's
own delimiters as an explicit four-character set. hl7apy's exception texts quote values: they are
never used. Every hl7apy exception is caught and mapped to an issue by its class.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pyheart.broker.contracts import Format, Issue, Message, Severity, ValidationReport
from pyheart.broker.errors import ParseError
from pyheart.broker.hl7v2.parser import Hl7Message, Segment
from pyheart.validators import hl7v2_standard as std
from pyheart.validators._base import BaseValidator, issue, parse_hl7

_HEADERS = frozenset({"MSH", "BHS", "FHS"})


class Hl7v2StrictValidator(BaseValidator):
    """Strict HL7 v2 conformance to the standard's structures and data types (hl7apy)."""

    NAME = "hl7v2-strict"
    DESCRIPTION = "Strict HL7 v2 validation against the standard's message structures and data types (hl7apy)"
    PRIORITY = 20
    accepts: ClassVar[tuple[str, ...]] = (Format.HL7V2,)
    #: Opt-in: strict standard validation costs milliseconds per message.
    default_gate: ClassVar[bool] = False
    CONFIG_SCHEMA: ClassVar[dict[str, Any]] = {
        "check_structure": {
            "type": "boolean",
            "default": True,
            "description": "match the segment sequence against the message structure",
        },
        "check_fields": {
            "type": "boolean",
            "default": True,
            "description": "check required fields and repetition counts",
        },
        "check_datatypes": {
            "type": "boolean",
            "default": True,
            "description": "parse every value with hl7apy STRICT (data types, lengths)",
        },
        "unsupported_version": {
            "type": "string",
            "enum": ["error", "warning", "ignore"],
            "default": "error",
            "description": "how to report a version hl7apy has no tables for (error rejects)",
        },
        "max_issues": {
            "type": "integer",
            "default": 50,
            "minimum": 1,
            "maximum": 10000,
            "description": "stop after this many issues",
        },
        "fallback_charset": {
            "type": "string",
            "default": "latin-1",
            "description": "charset for payloads without MSH-18 that are not UTF-8",
        },
    }

    def check(self, message: Message, settings: dict[str, Any]) -> ValidationReport:
        """Run the checks of the module docstring."""
        try:
            parsed = parse_hl7(message.payload, settings["fallback_charset"])
        except ParseError as exc:
            where = exc.locations[0] if exc.locations else "message"
            return self.report(
                [issue(Severity.FATAL, "hl7v2-parse", where, str(exc), "structure")], reject=True
            )
        version = parsed.version.strip()
        lib = std.hl7apy_version(version) if version else None
        if lib is None:
            level = settings["unsupported_version"]
            if level == "ignore":
                return self.report([])
            found = issue(
                level,
                "hl7v2-strict-unsupported-version",
                "MSH-12",
                "no standard tables for this version (2.1 to 2.8.2 are supported)",
                "not-supported",
            )
            return self.report([found], reject=level == "error")
        issues: list[Issue] = []
        reject = False
        if settings["check_structure"]:
            reject = self._structure(parsed, lib, issues)
        limit = settings["max_issues"]
        known = std.known_segments(lib)
        for seg in parsed.segments:
            if len(issues) >= limit:
                break
            if seg.name[0] == "Z":
                continue
            if seg.name not in known:
                issues.append(
                    issue(
                        Severity.ERROR,
                        "hl7v2-strict-unknown-segment",
                        seg.name,
                        f"segment {seg.index + 1} is not defined in this version",
                        "structure",
                    )
                )
                reject = True
                continue
            if settings["check_fields"]:
                self._fields(seg, lib, issues)
            if settings["check_datatypes"]:
                self._datatypes(seg, parsed, lib, issues, limit)
        return self.report(issues[:limit], reject=reject)

    # ----------------------------------------------------------------------------------- structure
    def _structure(self, m: Hl7Message, lib: str, issues: list[Issue]) -> bool:
        structure = std.resolve_structure(lib, m.message_type, m.trigger_event, m.structure)
        if structure is None:
            issues.append(
                issue(
                    Severity.ERROR,
                    "hl7v2-strict-unknown-structure",
                    "MSH-9",
                    "the version defines no structure for this message type and event",
                    "not-supported",
                )
            )
            return True
        names = [s.name for s in m.segments]
        problems = std.match_structure(lib, structure, names)
        for p in problems:
            if p.kind == "missing":
                text = f"required segment is missing before segment {p.index + 1} (group {p.group})"
                issues.append(
                    issue(Severity.ERROR, "hl7v2-strict-missing-segment", p.segment, text, "required")
                )
            else:
                text = (
                    f"segment {p.index + 1} is not allowed here by {structure} "
                    "(out of order, repeated too often, or not part of the structure)"
                )
                issues.append(
                    issue(Severity.ERROR, "hl7v2-strict-unexpected-segment", p.segment, text, "structure")
                )
        return bool(problems)

    # ----------------------------------------------------------------------------------- fields
    @staticmethod
    def _fields(seg: Segment, lib: str, issues: list[Issue]) -> None:
        defined = std.segment_fields(lib, seg.name)
        last = 0
        for n, least, most in defined:
            last = max(last, n)
            if seg.name in _HEADERS and n <= 2:
                continue
            reps = seg.reps(n)
            if least >= 1 and not reps:
                issues.append(
                    issue(
                        Severity.ERROR,
                        "hl7v2-strict-required-field",
                        f"{seg.name}-{n}",
                        f"required field is missing (segment {seg.index + 1})",
                        "required",
                    )
                )
            elif most == 0 and reps:
                issues.append(
                    issue(
                        Severity.WARNING,
                        "hl7v2-strict-withdrawn-field",
                        f"{seg.name}-{n}",
                        f"field is withdrawn or reserved in this version (segment {seg.index + 1})",
                        "structure",
                    )
                )
            elif most > 0 and seg.repetitions(n) > most:
                issues.append(
                    issue(
                        Severity.ERROR,
                        "hl7v2-strict-repetitions",
                        f"{seg.name}-{n}",
                        f"field repeats more than {most} time(s) (segment {seg.index + 1})",
                        "structure",
                    )
                )
        if last:
            for n in range(last + 1, len(seg)):
                if seg.raw(n):
                    issues.append(
                        issue(
                            Severity.WARNING,
                            "hl7v2-strict-extra-field",
                            f"{seg.name}-{n}",
                            f"field beyond the {last} the segment defines (segment {seg.index + 1})",
                            "structure",
                        )
                    )
                    break

    # ----------------------------------------------------------------------------------- values
    @staticmethod
    def _datatypes(seg: Segment, m: Hl7Message, lib: str, issues: list[Issue], limit: int) -> None:
        from hl7apy.consts import VALIDATION_LEVEL
        from hl7apy.parser import parse_field

        d = m.delimiters
        encoding = {
            "FIELD": d.field,
            "COMPONENT": d.component,
            "SUBCOMPONENT": d.subcomponent,
            "REPETITION": d.repetition,
            "ESCAPE": d.escape,
            "SEGMENT": "\r",
            "GROUP": "\r",
        }
        defined = {n for n, _least, most in std.segment_fields(lib, seg.name) if most != 0}
        for n in range(1, len(seg)):
            if n not in defined or (seg.name in _HEADERS and n <= 2):
                continue
            raw = seg.raw(n)
            if not raw:
                continue
            for r, rep in enumerate(raw.split(d.repetition)):
                if not rep or rep == '""':
                    continue
                try:
                    parse_field(
                        rep,
                        name=f"{seg.name}_{n}",
                        version=lib,
                        encoding_chars=encoding,
                        validation_level=VALIDATION_LEVEL.STRICT,
                    )
                except Exception as exc:  # hl7apy raises many classes; its texts quote values
                    code, text = _classify(exc)
                    where = f"{seg.name}-{n}{_component_of(exc)}"
                    rep_text = f", repetition {r + 1}" if r else ""
                    issues.append(
                        issue(
                            Severity.ERROR,
                            code,
                            where,
                            f"{text} (segment {seg.index + 1}{rep_text})",
                            "value",
                        )
                    )
                    if len(issues) >= limit:
                        return


_ELEMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*_(\d{1,3})$")


def _position(element: object) -> str | None:
    """The position in an hl7apy element name (``XTN_1`` -> ``1``): names come from its tables."""
    name = getattr(element, "name", None)
    match = _ELEMENT_NAME.match(name) if isinstance(name, str) else None
    return match.group(1) if match else None


def _component_of(exc: Exception) -> str:
    """``.1`` or ``.4.2`` when an hl7apy exception names the (sub-)component it refused."""
    child = getattr(exc, "child", None)
    kind = getattr(child, "classname", None)
    own = _position(child)
    if own is None:
        return ""
    if kind == "Component":
        return f".{own}"
    if kind == "SubComponent":
        parent = _position(getattr(exc, "parent", None))
        return f".{parent}.{own}" if parent else ""
    return ""


def _classify(exc: Exception) -> tuple[str, str]:
    """A stable code and a value-free text for an hl7apy exception, by class only."""
    name = type(exc).__name__
    if name == "MaxLengthReached":
        return "hl7v2-strict-length", "value is longer than its data type allows"
    if name in ("InvalidDateFormat", "InvalidDateOffset", "InvalidMicrosecondsPrecision"):
        return "hl7v2-strict-datatype", "date/time value is not valid for its data type"
    if isinstance(exc, ValueError) or name == "InvalidDataType":
        return "hl7v2-strict-datatype", "value is not valid for its data type"
    if name in ("ChildNotValid", "ChildNotFound", "InvalidName", "OperationNotAllowed"):
        return "hl7v2-strict-structure", "value has components the data type does not define"
    if name == "MaxChildLimitReached":
        return "hl7v2-strict-structure", "component is withdrawn in this version or repeated"
    return "hl7v2-strict-invalid", f"value rejected by the strict parser ({name})"


__all__ = ["Hl7v2StrictValidator"]
