"""Built-in adapter plugins: how the engine meets hospital systems (MLLP, FHIR REST, DICOM)."""
