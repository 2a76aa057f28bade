"""The FHIR R4 -> HL7 v2 transformer plugin and the plain function the CLI calls.

Inbound FHIR is untrusted: the JSON is validated with the fhir.resources R4B models (wire-compatible
with R4 for every resource mapped here) before anything is mapped. Every failure becomes a
:class:`TransformError` whose ``locations`` are FHIRPath-like element paths and whose ``report``
turns into an OperationOutcome; no input value ever reaches an error text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from pyheart.broker.config import validate_config
from pyheart.broker.contracts import (
    Format,
    Header,
    Issue,
    Message,
    Severity,
    TransformerPlugin,
    ValidationReport,
)
from pyheart.broker.errors import DATA_SHAPE_ERRORS, PluginConfigError, TransformError
from pyheart.broker.logs import get_logger
from pyheart.broker.plugin import PluginMetadata, PluginType
from pyheart.transformers.fhir_hl7v2.messages import (
    ENCOUNTER_EVENTS,
    ORDER_MESSAGES,
    PATIENT_EVENTS,
    SUPPORTED_VERSIONS,
    MessageBuilder,
    Settings,
    new_control_id,
    trigger_of,
    utc_now,
)
from pyheart.transformers.fhir_hl7v2.segments import Context

PLUGIN_NAME = "fhir-to-hl7v2"
_log = get_logger("pyheart.transformers.fhir_hl7v2")

CONFIG_SCHEMA: dict[str, Any] = {
    "version": {
        "type": "string",
        "default": "2.5.1",
        "enum": list(SUPPORTED_VERSIONS),
        "description": "HL7 v2 version of the emitted messages (MSH-12)",
    },
    "sending_application": {"type": "string", "default": "PYHEART", "description": "MSH-3.1"},
    "sending_facility": {"type": "string", "default": "", "description": "MSH-4.1"},
    "receiving_application": {"type": "string", "default": "", "description": "MSH-5.1"},
    "receiving_facility": {"type": "string", "default": "", "description": "MSH-6.1"},
    "processing_id": {"type": "string", "default": "P", "enum": ["P", "D", "T"], "description": "MSH-11"},
    "patient_event": {
        "type": "string",
        "default": "A04",
        "enum": list(PATIENT_EVENTS),
        "description": "ADT trigger for a Patient on its own",
    },
    "encounter_event": {
        "type": "string",
        "default": "auto",
        "enum": list(ENCOUNTER_EVENTS),
        "description": "ADT trigger for an Encounter; auto chooses by status, class and locations",
    },
    "order_message": {
        "type": "string",
        "default": "ORM^O01",
        "enum": list(ORDER_MESSAGES),
        "description": "message type for a ServiceRequest",
    },
    "validate_input": {
        "type": "boolean",
        "default": True,
        "description": "validate inbound FHIR with the fhir.resources R4B models (untrusted input)",
    },
}

BUNDLE_TYPES = ("transaction", "batch", "collection", "message", "searchset", "history", "document")


def _path(root: str, loc: Sequence[Any]) -> str:
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}"
    return out


class FhirInputError(TransformError):
    """Inbound FHIR that is not valid R4: ``report`` holds the issues (see ``to_operation_outcome``)."""

    def __init__(self, message: str, *, code: str, issues: Sequence[Issue]) -> None:
        self.report = ValidationReport(tuple(issues), validator=PLUGIN_NAME, reject=True)
        super().__init__(message, code=code, plugin_id=PLUGIN_NAME, locations=[i.location for i in issues])

    def operation_outcome(self) -> dict[str, Any]:
        """The issues as a FHIR OperationOutcome."""
        return self.report.to_operation_outcome()


def _fail(message: str, code: str, issues: list[Issue]) -> FhirInputError:
    return FhirInputError(message, code=code, issues=issues)


def validate_resource(data: Mapping[str, Any]) -> None:
    """Validate ``data`` (a resource or Bundle as a dict) with the R4B models; raise on failure.

    The library's exception is dropped before ours is raised (not even kept as ``__context__``):
    its text quotes the offending values.
    """
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise _fail(
            "input is not a FHIR resource: resourceType is missing",
            "fhir-invalid",
            [Issue(Severity.ERROR, "resource-type", "resourceType", "resourceType is missing", "required")],
        )
    failure = _model_failure(rtype, data)
    if failure is not None:
        raise failure


def _model_failure(rtype: str, data: Mapping[str, Any]) -> FhirInputError | None:
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError, AttributeError):
        issue = Issue(
            Severity.ERROR, "resource-type", "resourceType", "unknown resource type", "not-supported"
        )
        return _fail("input resourceType is not a FHIR R4 resource", "fhir-invalid", [issue])
    try:
        model.model_validate(data)
    except ValidationError as exc:
        issues = [
            Issue(
                Severity.ERROR,
                str(err.get("type") or "invalid"),
                _path(rtype, err.get("loc") or ()),
                f"element is invalid ({err.get('type')})",
                "structure" if err.get("type") in ("extra_forbidden", "missing") else "value",
            )
            for err in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        return _fail(f"{rtype} failed FHIR R4 validation at {len(issues)} element(s)", "fhir-invalid", issues)
    except (KeyError, ValueError, TypeError, AttributeError):
        # fhir.resources raises KeyError for an unknown nested resourceType and plain errors for
        # some malformed primitives; their texts may quote values, so only the class is kept.
        issue = Issue(Severity.ERROR, "invalid", rtype, "resource is malformed", "structure")
        return _fail(f"{rtype} failed FHIR R4 validation", "fhir-invalid", [issue])
    return None


def _parse_json(data: bytes | str) -> tuple[Any, int | None]:
    try:
        return orjson.loads(data), None
    except orjson.JSONDecodeError as exc:
        return None, exc.pos


def load_input(data: bytes | str | Mapping[str, Any], validate: bool = True) -> Context:
    """Parse (and validate) FHIR JSON into a :class:`Context` of its resources."""
    if isinstance(data, Mapping):
        doc: Any = data
    else:
        doc, pos = _parse_json(data)
        if pos is not None:
            raise _fail(
                f"input is not valid JSON (at character {pos})",
                "fhir-not-json",
                [Issue(Severity.FATAL, "json", f"char {pos}", "not valid JSON", "structure")],
            )
    if not isinstance(doc, Mapping):
        raise _fail(
            "input is not a FHIR resource: a JSON object is expected",
            "fhir-invalid",
            [Issue(Severity.ERROR, "structure", "$", "a JSON object is expected", "structure")],
        )
    if validate:
        validate_resource(doc)
    resources: list[Mapping[str, Any]] = []
    urls: list[str | None] = []
    if doc.get("resourceType") == "Bundle":
        entries = doc.get("entry") or []
        if not isinstance(entries, list):
            raise _fail(
                "Bundle.entry is not a list",
                "fhir-invalid",
                [Issue(Severity.ERROR, "structure", "Bundle.entry", "a list is expected", "structure")],
            )
        for entry in entries:
            if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping):
                resources.append(entry["resource"])
                urls.append(entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None)
    else:
        resources.append(doc)
        urls.append(None)
    return Context(resources, urls)


def settings_from(config: Mapping[str, Any]) -> Settings:
    """Validated :class:`Settings` from a plugin config (defaults applied, unknown keys rejected)."""
    validated, issues = validate_config(CONFIG_SCHEMA, config)
    if issues:
        raise PluginConfigError(PLUGIN_NAME, issues)
    return Settings(
        version=validated["version"],
        sending_application=validated["sending_application"],
        sending_facility=validated["sending_facility"],
        receiving_application=validated["receiving_application"],
        receiving_facility=validated["receiving_facility"],
        processing_id=validated["processing_id"],
        patient_event=validated["patient_event"],
        encounter_event=validated["encounter_event"],
        order_message=validated["order_message"],
    )


def fhir_to_hl7v2(
    data: bytes | str | Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
    control_id: Callable[[], str] = new_control_id,
) -> list[str]:
    """Convert a FHIR R4 resource or Bundle (JSON) into ER7 messages (segments end with ``\\r``)."""
    cfg = dict(config or {})
    validate = bool(cfg.pop("validate_input", True))
    settings = settings_from(cfg)
    ctx = load_input(data, validate=validate)
    return build_messages(MessageBuilder(settings, clock, control_id), ctx)


def build_messages(builder: MessageBuilder, ctx: Context) -> list[str]:
    """``builder.build(ctx)``; input whose shape the builder cannot read (possible only with
    ``validate_input: false``, e.g. a string where a Reference belongs) is a TransformError
    that names the failure's class, never the input's values."""
    failure = None
    try:
        return builder.build(ctx)
    except DATA_SHAPE_ERRORS as exc:
        failure = type(exc).__name__
    # Raised outside the except block: no exception context (which may quote values) rides along.
    raise TransformError(
        f"cannot map the FHIR input ({failure}): an element has a shape FHIR R4 does not allow"
        " (validate_input: true locates it)",
        locations=["input"],
    ) from None


class FhirToHl7v2(TransformerPlugin):
    """FHIR R4 (resource or Bundle, JSON) -> HL7 v2 ER7 messages, one output message each."""

    consumes: ClassVar[tuple[str, ...]] = (Format.FHIR_JSON, Format.JSON)
    produces: ClassVar[tuple[str, ...]] = (Format.HL7V2,)

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._builder: MessageBuilder | None = None
        self._built_for: dict[str, Any] | None = None

    def get_metadata(self) -> PluginMetadata:
        """Name, version and config schema."""
        return PluginMetadata(
            name=PLUGIN_NAME,
            version="1.0.0",
            plugin_type=PluginType.TRANSFORMER,
            description="FHIR R4 resources and Bundles to HL7 v2 ADT, ORU, ORM/OML, VXU and SIU messages",
            author="PyHeart",
            config_schema=CONFIG_SCHEMA,
        )

    def _current(self) -> tuple[MessageBuilder, bool]:
        if self._builder is None or self._built_for is not self.config:
            cfg = dict(self.config)
            self._validate_input = bool(cfg.pop("validate_input", True))
            self._builder = MessageBuilder(settings_from(cfg))
            self._built_for = self.config
        return self._builder, self._validate_input

    def transform(self, message: Message) -> list[Message]:
        """One HL7 v2 message per mappable resource group of the input (see ``messages``)."""
        builder, validate = self._current()
        ctx = load_input(message.payload, validate=validate)
        outputs = []
        for er7 in build_messages(builder, ctx):
            mtype, trigger = trigger_of(er7)
            control = er7.split("\r", 1)[0].split("|")[9]
            headers = {
                Header.CONTENT_TYPE: Format.HL7V2,
                Header.MESSAGE_TYPE: mtype,
                Header.TRIGGER: trigger,
                Header.CONTROL_ID: control,
            }
            outputs.append(message.evolve(payload=er7.encode("utf-8"), format=Format.HL7V2, headers=headers))
        _log.debug(
            "converted",
            plugin_name=PLUGIN_NAME,
            count=len(outputs),
            message_id=message.header(Header.MESSAGE_ID),
        )
        return outputs


__all__ = [
    "CONFIG_SCHEMA",
    "FhirInputError",
    "FhirToHl7v2",
    "fhir_to_hl7v2",
    "load_input",
    "settings_from",
    "validate_resource",
]
