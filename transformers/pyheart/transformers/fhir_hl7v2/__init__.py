"""FHIR R4 -> HL7 v2 (ER7): the ``fhir-to-hl7v2`` transformer plugin and ``fhir_to_hl7v2()``."""

from pyheart.transformers.fhir_hl7v2.plugin import (
    CONFIG_SCHEMA,
    FhirInputError,
    FhirToHl7v2,
    fhir_to_hl7v2,
)

__all__ = ["CONFIG_SCHEMA", "FhirInputError", "FhirToHl7v2", "fhir_to_hl7v2"]
