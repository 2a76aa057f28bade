"""``fhir-structure``: FHIR R4 JSON (a resource or a Bundle) against fhir.resources' models.

fhir.resources has had no pure R4 models since 7.0: R4 lives on as the ``fhir.resources.R4B``
sub-package (the default import path is R5). R4B is wire-compatible with R4 for the clinical
resources this engine emits (Patient, Encounter, Observation, DiagnosticReport, ServiceRequest,
Condition, AllergyIntolerance, Immunization, ImagingStudy, Practitioner, Organization, Location,
Bundle, MessageHeader, OperationOutcome, ...): the elements that differ between R4 and R4B belong
to resources PyHeart does not produce (e.g. the medication-definition and evidence families).
So R4B is the reference validator here; a resource type that exists only in R4 is reported.

Validation costs milliseconds per Bundle (see the performance notes): use this gate for
untrusted inbound FHIR and as an optional strict gate, not on every converted message.

Issues carry FHIRPath-like locations (``Bundle.entry[0].resource.birthDate``) and texts built
from pydantic's error *types* only: pydantic's messages and ``input`` may quote values and are
never used. An element the model does not define is reported at its parent: its name is the
sender's text.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import orjson

from pyheart.broker.contracts import Format, Issue, Message, Severity, ValidationReport
from pyheart.validators._base import BaseValidator, issue

#: pydantic error type -> (issue code, FHIR IssueType, value-free text).
_ERRORS: dict[str, tuple[str, str, str]] = {
    "missing": ("fhir-required", "required", "required element is missing"),
    "extra_forbidden": ("fhir-unknown-element", "structure", "element is not defined here"),
    "string_type": ("fhir-type", "value", "value must be a string"),
    "int_type": ("fhir-type", "value", "value must be an integer"),
    "int_parsing": ("fhir-type", "value", "value must be an integer"),
    "int_from_float": ("fhir-type", "value", "value must be an integer"),
    "float_type": ("fhir-type", "value", "value must be a number"),
    "float_parsing": ("fhir-type", "value", "value must be a number"),
    "decimal_type": ("fhir-type", "value", "value must be a decimal"),
    "decimal_parsing": ("fhir-type", "value", "value must be a decimal"),
    "bool_type": ("fhir-type", "value", "value must be a boolean"),
    "bool_parsing": ("fhir-type", "value", "value must be a boolean"),
    "list_type": ("fhir-cardinality", "structure", "element must be an array"),
    "dict_type": ("fhir-type", "structure", "element must be an object"),
    "model_type": ("fhir-type", "structure", "element must be an object"),
    "model_attributes_type": ("fhir-type", "structure", "element must be an object"),
    "string_pattern_mismatch": ("fhir-value", "value", "value does not match the pattern of its type"),
    "string_too_short": ("fhir-value", "value", "value is too short"),
    "string_too_long": ("fhir-value", "value", "value is too long"),
    "too_short": ("fhir-cardinality", "structure", "array has too few items"),
    "too_long": ("fhir-cardinality", "structure", "array has too many items"),
    "enum": ("fhir-code", "code-invalid", "code is not one of the allowed values"),
    "literal_error": ("fhir-code", "code-invalid", "code is not one of the allowed values"),
    "date_type": ("fhir-type", "value", "value must be a date"),
    "date_parsing": ("fhir-value", "value", "value is not a valid date"),
    "date_from_datetime_parsing": ("fhir-value", "value", "value is not a valid date"),
    "datetime_type": ("fhir-type", "value", "value must be a dateTime"),
    "datetime_parsing": ("fhir-value", "value", "value is not a valid dateTime"),
    "time_parsing": ("fhir-value", "value", "value is not a valid time"),
    "url_parsing": ("fhir-value", "value", "value is not a valid URL"),
    "value_error": ("fhir-value", "value", "value is not valid for its type"),
    "assertion_error": ("fhir-invariant", "invariant", "a constraint of the element is violated"),
}


_ELEMENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def fhir_path(root: str, loc: tuple[Any, ...]) -> str:
    """A pydantic location as FHIRPath-like text: ``Bundle.entry[0].resource.birthDate``."""
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _ELEMENT.match(part):
            # fhir.resources suffixes some aliases (``class_``); FHIR has no trailing underscores.
            out += "." + part.rstrip("_")
        elif isinstance(part, str) and not part.startswith("function-"):
            out += ".?"  # not an element name: never echo text that did not come from the model
    return out


class FhirStructureValidator(BaseValidator):
    """FHIR R4 structure gate: one resource or a Bundle against the R4B models."""

    NAME = "fhir-structure"
    DESCRIPTION = "Validates FHIR R4 JSON (resources and Bundles) with fhir.resources' R4B models"
    PRIORITY = 50
    accepts: ClassVar[tuple[str, ...]] = (Format.FHIR_JSON,)
    CONFIG_SCHEMA: ClassVar[dict[str, Any]] = {
        "resource_types": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[A-Z][A-Za-z]+$"},
            "default": [],
            "description": "root resource types accepted (empty: any)",
        },
        "max_issues": {
            "type": "integer",
            "default": 100,
            "minimum": 1,
            "maximum": 10000,
            "description": "report at most this many issues",
        },
        "max_length": {
            "type": "integer",
            "default": 0,
            "minimum": 0,
            "description": "largest payload in bytes (0: no limit)",
        },
    }

    def check(self, message: Message, settings: dict[str, Any]) -> ValidationReport:
        """Parse the JSON, check the root resource type, validate with its R4B model."""
        limit = settings["max_length"]
        if limit and len(message.payload) > limit:
            text = f"resource is longer than {limit} bytes"
            return self.report([issue(Severity.ERROR, "fhir-too-long", "$", text, "too-long")], reject=True)
        try:
            data = orjson.loads(message.payload)
        except orjson.JSONDecodeError as exc:
            text = f"invalid JSON at line {exc.lineno} column {exc.colno}"
            return self.report([issue(Severity.FATAL, "fhir-json", "$", text, "structure")], reject=True)
        resource_type = data.get("resourceType") if isinstance(data, dict) else None
        if not isinstance(resource_type, str) or not resource_type:
            text = "the document is not a FHIR resource (no resourceType)"
            return self.report(
                [issue(Severity.FATAL, "fhir-resource-type", "$", text, "structure")], reject=True
            )
        allowed = settings["resource_types"]
        if allowed and resource_type not in allowed:
            text = "resource type is not accepted by this gate"
            found = issue(
                Severity.ERROR, "fhir-resource-type-not-accepted", "resourceType", text, "not-supported"
            )
            return self.report([found], reject=True)
        model = _model(resource_type)
        if model is None:
            text = "unknown resource type (not an R4B resource)"
            # The resource type is the sender's text: locate it, do not quote it.
            found = issue(Severity.ERROR, "fhir-resource-type-unknown", "resourceType", text, "not-supported")
            return self.report([found], reject=True)
        return self.report(self._validate(model, data, resource_type, settings["max_issues"]))

    @staticmethod
    def _validate(model: Any, data: dict[str, Any], root: str, limit: int) -> list[Issue]:
        import pydantic

        try:
            model.model_validate(data)
        except pydantic.ValidationError as exc:
            issues = []
            for err in exc.errors(include_url=False, include_context=False, include_input=False):
                kind = err["type"]
                code, fhir_code, text = _ERRORS.get(
                    kind, ("fhir-invalid", "invalid", f"element is not valid ({kind})")
                )
                loc = tuple(err["loc"])
                if kind == "extra_forbidden":
                    # The unknown name is the sender's text (it could be anything): name the parent.
                    loc = loc[:-1]
                    text = "has an element that is not defined here"
                issues.append(issue(Severity.ERROR, code, fhir_path(root, loc), text, fhir_code))
                if len(issues) >= limit:
                    break
            return issues
        except (TypeError, ValueError) as exc:
            # fhir.resources raises plain errors for some malformed shapes: report the class only.
            text = f"the resource could not be validated ({type(exc).__name__})"
            return [issue(Severity.ERROR, "fhir-invalid", root, text, "structure")]
        return []


def _model(resource_type: str) -> Any:
    """The R4B model class for ``resource_type``, or None."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (ValueError, KeyError, AttributeError, ImportError):
        return None


__all__ = ["FhirStructureValidator", "fhir_path"]
