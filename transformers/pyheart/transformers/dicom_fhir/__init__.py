"""DICOM -> FHIR R4: ``dicom-to-fhir`` and ``dicom-study-aggregator`` plugins and ``dicom_to_fhir()``."""

from pyheart.transformers.dicom_fhir.model import is_part10
from pyheart.transformers.dicom_fhir.plugin import (
    AGGREGATOR_SCHEMA,
    BUNDLE_SCHEMA,
    DicomStudyAggregator,
    DicomToFhir,
    dicom_to_fhir,
)

__all__ = [
    "AGGREGATOR_SCHEMA",
    "BUNDLE_SCHEMA",
    "DicomStudyAggregator",
    "DicomToFhir",
    "dicom_to_fhir",
    "is_part10",
]
