"""``business-rules``: site rules from configuration, without code, for HL7 v2 and FHIR JSON.

Each rule names a location and what must hold there::

    rules:
      - id: mrn-required
        location: PID-3.1                # HL7: SEG[-field[[repetition]][.component[.sub]]]
        required: true
        message_types: [ADT, "ORU^R01"]  # HL7: type or TYPE^EVENT (wildcards * ?); FHIR: root type
      - id: sex-code
        location: PID-8
        enum: [F, M, O, U, A, N]
      - id: birth-date-format
        location: Patient.birthDate      # FHIR: Resource.element[.element...], [n] picks an item
        pattern: "^\\d{4}-\\d{2}-\\d{2}$"
        severity: warning

An HL7 location applies to every occurrence of its segment and, unless a repetition is given
(``PID-3[2].1``, 1-based), to every repetition; ``required`` asks for one non-empty value per
segment occurrence (the HL7 null ``""`` counts as empty), and a missing segment fails it. A FHIR
path applies to the root resource of that type or, in a Bundle, to each entry resource of that
type; a document without such a resource is not checked. ``enum``, ``pattern`` (a regular
expression searched in the value), ``min_length`` and ``max_length`` apply to every non-empty
value found. Issues name the rule, its location and the failed check, never the value.
Rules report content errors (AE / CE) unless ``reject: true``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from pyheart.broker.contracts import Format, Issue, Message, Severity, ValidationReport
from pyheart.broker.errors import ConfigIssue, ParseError
from pyheart.broker.hl7v2.parser import Hl7Message, Segment
from pyheart.validators._base import BaseValidator, issue, parse_hl7

_HL7_LOCATION = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})"
    r"(?:-(?P<field>[1-9]\d*)(?:\[(?P<rep>[1-9]\d*)\])?"
    r"(?:\.(?P<comp>[1-9]\d*)(?:\.(?P<sub>[1-9]\d*))?)?)?$"
)
_FHIR_STEP = r"[A-Za-z][A-Za-z0-9]*(?:\[\d+\])?"
_FHIR_PATH = re.compile(rf"^[A-Z][A-Za-z]+(?:\.{_FHIR_STEP})+$")
_STEP = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9]*)(?:\[(?P<index>\d+)\])?$")


@dataclass(frozen=True)
class _HL7Target:
    segment: str
    field: int | None
    repetition: int | None
    component: int | None
    subcomponent: int | None


@dataclass(frozen=True)
class _FhirTarget:
    resource: str
    steps: tuple[tuple[str, int | None], ...]


@dataclass(frozen=True)
class Rule:
    """One compiled rule."""

    id: str
    location: str
    target: _HL7Target | _FhirTarget
    label: str
    message_types: tuple[str, ...]
    required: bool
    enum: frozenset[str] | None
    pattern: re.Pattern[str] | None
    min_length: int | None
    max_length: int | None
    severity: Severity
    code: str
    reject: bool

    @property
    def is_hl7(self) -> bool:
        """True for HL7 v2 locations, False for FHIR paths."""
        return isinstance(self.target, _HL7Target)


def parse_location(location: str) -> _HL7Target | _FhirTarget | None:
    """An HL7 location (``PID-3.1``) or FHIR path (``Patient.birthDate``), or None when neither."""
    m = _HL7_LOCATION.match(location)
    if m:
        return _HL7Target(
            m["seg"],
            int(m["field"]) if m["field"] else None,
            int(m["rep"]) - 1 if m["rep"] else None,
            int(m["comp"]) if m["comp"] else None,
            int(m["sub"]) if m["sub"] else None,
        )
    if _FHIR_PATH.match(location):
        resource, *rest = location.split(".")
        steps = []
        for part in rest:
            step = _STEP.match(part)
            assert step is not None  # the path pattern admits only well-formed steps
            steps.append((step["name"], int(step["index"]) if step["index"] is not None else None))
        return _FhirTarget(resource, tuple(steps))
    return None


_RULE_SCHEMA: dict[str, Any] = {
    "id": {"type": "string", "required": True, "pattern": r"^[A-Za-z0-9_.:-]{1,64}$"},
    "location": {"type": "string", "required": True, "description": "PID-3.1 or Patient.birthDate"},
    "description": {"type": "string", "description": "shown in issue texts (never put data here)"},
    "message_types": {"type": "array", "items": {"type": "string"}, "default": []},
    "required": {"type": "boolean", "default": False},
    "enum": {"type": "array", "items": {"type": "string"}},
    "pattern": {"type": "string", "description": "regular expression searched in each value"},
    "min_length": {"type": "integer", "minimum": 0},
    "max_length": {"type": "integer", "minimum": 0},
    "severity": {"type": "string", "enum": ["error", "warning", "information"], "default": "error"},
    "code": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9.-]{0,63}$"},
    "reject": {"type": "boolean", "default": False, "description": "a failure rejects (AR) the message"},
}


class BusinessRulesValidator(BaseValidator):
    """Configured rules (required, enum, pattern, length) on HL7 v2 locations and FHIR paths."""

    NAME = "business-rules"
    DESCRIPTION = "Business rules from configuration: required fields, allowed values, patterns"
    PRIORITY = 60
    accepts: ClassVar[tuple[str, ...]] = (Format.HL7V2, Format.FHIR_JSON)
    #: Opt-in: rules come from configuration.
    default_gate: ClassVar[bool] = False
    CONFIG_SCHEMA: ClassVar[dict[str, Any]] = {
        "rules": {
            "type": "array",
            "default": [],
            "items": {"type": "object", "properties": _RULE_SCHEMA},
            "description": "the rules, checked in order",
        },
        "fallback_charset": {
            "type": "string",
            "default": "latin-1",
            "description": "charset for HL7 payloads without MSH-18 that are not UTF-8",
        },
    }

    def config_issues(self, config: dict[str, Any]) -> list[ConfigIssue]:
        """Locations must parse, patterns must compile, ids must be unique."""
        issues = []
        seen: set[str] = set()
        for i, rule in enumerate(config.get("rules") or []):
            where = f"rules[{i}]"
            if not isinstance(rule, dict):
                continue
            if parse_location(str(rule.get("location", ""))) is None:
                issues.append(
                    ConfigIssue(
                        f"{where}.location",
                        "location",
                        "must be an HL7 location (PID-3.1) or a FHIR path (Patient.birthDate)",
                    )
                )
            if "pattern" in rule:
                try:
                    re.compile(rule["pattern"])
                except (re.error, TypeError):
                    issues.append(ConfigIssue(f"{where}.pattern", "pattern", "is not a regular expression"))
            rule_id = rule.get("id")
            if rule_id in seen:
                issues.append(ConfigIssue(f"{where}.id", "unique", "rule ids must be unique"))
            seen.add(str(rule_id))
        return issues

    def configure(self, settings: dict[str, Any]) -> None:
        """Compile the rules."""
        self._rules = [_compile(r) for r in settings["rules"]]
        self._hl7_rules = [r for r in self._rules if r.is_hl7]
        self._fhir_rules = [r for r in self._rules if not r.is_hl7]

    def check(self, message: Message, settings: dict[str, Any]) -> ValidationReport:
        """Apply every rule that fits the message's format and type."""
        if message.format == Format.HL7V2:
            if not self._hl7_rules:
                return self.report([])
            try:
                parsed = parse_hl7(message.payload, settings["fallback_charset"])
            except ParseError as exc:
                where = exc.locations[0] if exc.locations else "message"
                return self.report(
                    [issue(Severity.FATAL, "hl7v2-parse", where, str(exc), "structure")], reject=True
                )
            issues = [i for rule in self._hl7_rules for i in _check_hl7(rule, parsed)]
        else:
            if not self._fhir_rules:
                return self.report([])
            try:
                data = orjson.loads(message.payload)
            except orjson.JSONDecodeError as exc:
                text = f"invalid JSON at line {exc.lineno} column {exc.colno}"
                return self.report([issue(Severity.FATAL, "fhir-json", "$", text, "structure")], reject=True)
            if not isinstance(data, dict):
                text = "the document is not a FHIR resource"
                return self.report(
                    [issue(Severity.FATAL, "fhir-resource-type", "$", text, "structure")], reject=True
                )
            issues = [i for rule in self._fhir_rules for i in _check_fhir(rule, data)]
        failed = {i.code for i in issues if i.severity in (Severity.ERROR, Severity.FATAL)}
        reject = any(r.reject and r.code in failed for r in self._rules)
        return self.report(issues, reject=reject)


def _compile(raw: dict[str, Any]) -> Rule:
    target = parse_location(raw["location"])
    assert target is not None  # config_issues rejected unparsable locations
    return Rule(
        id=raw["id"],
        location=raw["location"],
        target=target,
        label=raw.get("description") or f"rule {raw['id']}",
        message_types=tuple(raw.get("message_types") or ()),
        required=bool(raw.get("required")),
        enum=frozenset(raw["enum"]) if raw.get("enum") is not None else None,
        pattern=re.compile(raw["pattern"]) if raw.get("pattern") is not None else None,
        min_length=raw.get("min_length"),
        max_length=raw.get("max_length"),
        severity=Severity(raw.get("severity") or "error"),
        code=raw.get("code") or f"rule-{raw['id']}",
        reject=bool(raw.get("reject")),
    )


def _value_failures(rule: Rule, value: str) -> Iterator[tuple[str, str]]:
    """(FHIR issue type, value-free text) for each check ``value`` fails."""
    if rule.enum is not None and value not in rule.enum:
        yield "code-invalid", "value is not one of the allowed values"
    if rule.pattern is not None and rule.pattern.search(value) is None:
        yield "value", "value does not match the required pattern"
    if rule.min_length is not None and len(value) < rule.min_length:
        yield "value", f"value is shorter than {rule.min_length} characters"
    if rule.max_length is not None and len(value) > rule.max_length:
        yield "too-long", f"value is longer than {rule.max_length} characters"


def _fails(rule: Rule, location: str, what: str, fhir_code: str) -> Issue:
    return issue(rule.severity, rule.code, location, f"{rule.label}: {what}", fhir_code)


# --------------------------------------------------------------------------------------- HL7 v2
def _applies_hl7(rule: Rule, m: Hl7Message) -> bool:
    if not rule.message_types:
        return True
    full = f"{m.message_type}^{m.trigger_event}"
    for pattern in rule.message_types:
        subject = full if "^" in pattern else m.message_type
        if fnmatch.fnmatchcase(subject, pattern):
            return True
    return False


def _hl7_values(target: _HL7Target, seg: Segment) -> list[str]:
    """Decoded values at the target in one segment: one per repetition (or the one asked for)."""
    assert target.field is not None
    n = target.field
    if target.repetition is not None:
        reps: range | list[int] = [target.repetition]
    else:
        reps = range(seg.repetitions(n))
    out = []
    for r in reps:
        if target.component is None:
            value = seg.value(n, r)
            out.append(value.text() if value else "")
        else:
            out.append(seg.get(n, target.component, target.subcomponent or 1, r))
    return out


def _check_hl7(rule: Rule, m: Hl7Message) -> list[Issue]:
    if not _applies_hl7(rule, m):
        return []
    target = rule.target
    assert isinstance(target, _HL7Target)
    segments = m.segments_named(target.segment)
    if not segments:
        if rule.required:
            return [_fails(rule, rule.location, f"segment {target.segment} is missing", "required")]
        return []
    if target.field is None:
        return []
    issues = []
    several = len(segments) > 1
    for seg in segments:
        values = [v for v in _hl7_values(target, seg) if v and v != '""']
        where = f" (segment {seg.index + 1})" if several else ""
        if rule.required and not values:
            issues.append(_fails(rule, rule.location, f"required value is missing{where}", "required"))
        for value in values:
            for fhir_code, what in _value_failures(rule, value):
                issues.append(_fails(rule, rule.location, f"{what}{where}", fhir_code))
    return issues


# --------------------------------------------------------------------------------------- FHIR
def _resources(target: _FhirTarget, data: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    root = data.get("resourceType")
    if root == target.resource:
        yield target.resource, data
        return
    if root == "Bundle":
        for i, entry in enumerate(data.get("entry") or ()):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == target.resource:
                yield f"Bundle.entry[{i}].resource", resource


def _walk(node: Any, steps: tuple[tuple[str, int | None], ...], path: str) -> Iterator[tuple[str, Any]]:
    if not steps:
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield f"{path}[{i}]", item
        else:
            yield path, node
        return
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, steps, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    (name, index), rest = steps[0], steps[1:]
    child = node.get(name)
    if child is None:
        return
    if index is not None:
        if isinstance(child, list) and index < len(child):
            yield from _walk(child[index], rest, f"{path}.{name}[{index}]")
        elif index == 0 and not isinstance(child, list):
            yield from _walk(child, rest, f"{path}.{name}")
        return
    yield from _walk(child, rest, f"{path}.{name}")


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _check_fhir(rule: Rule, data: dict[str, Any]) -> list[Issue]:
    target = rule.target
    assert isinstance(target, _FhirTarget)
    if rule.message_types and data.get("resourceType") not in rule.message_types:
        return []
    issues = []
    for prefix, resource in _resources(target, data):
        found = [(p, v) for p, v in _walk(resource, target.steps, prefix) if v not in (None, "", [], {})]
        if rule.required and not found:
            expected = prefix + "".join(
                f".{name}" + (f"[{index}]" if index is not None else "") for name, index in target.steps
            )
            issues.append(_fails(rule, expected, "required value is missing", "required"))
        for path, value in found:
            text = _scalar(value)
            if text is None:
                continue
            for fhir_code, what in _value_failures(rule, text):
                issues.append(_fails(rule, path, what, fhir_code))
    return issues


__all__ = ["BusinessRulesValidator", "Rule", "parse_location"]
