"""The ``hl7v2-to-fhir`` transformer plugin."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from pyheart.broker.config import validate_config
from pyheart.broker.contracts import Format, Header, Message, TransformerPlugin
from pyheart.broker.errors import ParseError, PluginConfigError, TransformError
from pyheart.broker.plugin import PluginMetadata, PluginType
from pyheart.transformers.hl7v2_fhir.api import convert
from pyheart.transformers.hl7v2_fhir.context import Options

CONFIG_SCHEMA: dict[str, Any] = {
    "system_base": {
        "type": "string",
        "default": "urn:id:",
        "pattern": r"^(urn:|https?://)\S*$",
        "description": "prefix of identifier systems made from local namespace ids (HD.1), e.g. urn:id:",
    },
    "code_system_base": {
        "type": "string",
        "pattern": r"^(urn:|https?://)\S*$",
        "description": "prefix of code systems made from local coding-system names (CWE.3); "
        "defaults to system_base",
    },
    "bundle_type": {
        "type": "string",
        "default": "transaction",
        "enum": ["transaction", "batch"],
        "description": "transaction: conditional updates by identifier, urn:uuid references; "
        "batch: PUT Type/id with deterministic ids",
    },
    "default_timezone": {
        "type": "string",
        "pattern": r"^(Z|[+-]\d{2}:\d{2})$",
        "description": "zone for times that carry none when MSH-7 has none either; "
        "unset keeps such values at day precision",
    },
    "message_header": {"type": "boolean", "default": True, "description": "emit MessageHeader from MSH"},
    "provenance": {"type": "boolean", "default": True, "description": "emit Provenance from MSH and EVN"},
    "assigner_organizations": {
        "type": "boolean",
        "default": True,
        "description": "identifier assigning authorities as Organization resources (else display only)",
    },
    "patient_contacts": {
        "type": "boolean",
        "default": True,
        "description": "NK1 also as Patient.contact besides the RelatedPerson",
    },
}


class Hl7v2ToFhir(TransformerPlugin):
    """HL7 v2 (ER7) -> FHIR R4 transaction Bundle, following the HL7 v2-to-FHIR IG."""

    consumes: ClassVar[tuple[str, ...]] = (Format.HL7V2,)
    produces: ClassVar[tuple[str, ...]] = (Format.FHIR_JSON,)

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._options: Options | None = None

    @property
    def options(self) -> Options:
        """The validated conversion options (config errors name the key, never the value)."""
        if self._options is None:
            cfg, issues = validate_config(CONFIG_SCHEMA, self.config)
            if issues:
                raise PluginConfigError("hl7v2-to-fhir", issues)
            self._options = Options(
                system_base=cfg["system_base"],
                code_system_base=cfg.get("code_system_base"),
                bundle_type=cfg["bundle_type"],
                default_timezone=cfg.get("default_timezone"),
                message_header=cfg["message_header"],
                provenance=cfg["provenance"],
                assigner_organizations=cfg["assigner_organizations"],
                patient_contacts=cfg["patient_contacts"],
            )
        return self._options

    def validate_config(self, config: dict[str, Any]) -> bool:
        """Accept a config that passes the schema (the registry checks the schema first)."""
        return not validate_config(CONFIG_SCHEMA, config)[1]

    def get_metadata(self) -> PluginMetadata:
        """What this plugin is and the config it takes."""
        return PluginMetadata(
            name="hl7v2-to-fhir",
            version="0.1.0",
            plugin_type=PluginType.TRANSFORMER,
            description="HL7 v2 -> FHIR R4 transaction Bundle (HL7 v2-to-FHIR IG maps)",
            author="PyHeart",
            config_schema=CONFIG_SCHEMA,
        )

    def transform(self, message: Message) -> Message:
        """Convert ``message`` (HL7 v2) into a new FHIR JSON message; the input is not changed."""
        if message.format != Format.HL7V2:
            raise TransformError(
                f"hl7v2-to-fhir consumes {Format.HL7V2}, got {message.format}",
                code="unsupported-format",
                plugin_id="hl7v2-to-fhir",
                locations=["content-type"],
            )
        try:
            bundle = convert(message.payload, self.options)
        except (ParseError, TransformError) as exc:
            exc.plugin_id = "hl7v2-to-fhir"
            raise
        return message.evolve(
            payload=orjson.dumps(bundle),
            format=Format.FHIR_JSON,
            headers={Header.CONTENT_TYPE: Format.FHIR_JSON, Header.MESSAGE_TYPE: "Bundle"},
        )


__all__ = ["CONFIG_SCHEMA", "Hl7v2ToFhir"]
