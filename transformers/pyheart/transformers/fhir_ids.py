"""Deterministic FHIR resource ids shared by every transformer.

The same business identifier gives the same id in every message and from every transformer
(HL7v2, DICOM, FHIR), so delivering two messages about one patient never creates two Patients.
Ids are UUIDv5 of ``ResourceType|system|value``: stable, opaque (no PHI in the id), and valid FHIR
ids (``[A-Za-z0-9\\-.]{1,64}``).
"""

from __future__ import annotations

import uuid

#: Namespace of every PyHeart deterministic id (a fixed random UUID; never change it).
NAMESPACE = uuid.UUID("6f1c9a52-3b0e-4d27-9a51-8f4e1c2d7b90")


def resource_id(resource_type: str, *parts: str) -> str:
    """A stable id for ``resource_type`` from identifying parts (system, value, ...)."""
    key = "|".join((resource_type, *(p.strip() for p in parts)))
    return str(uuid.uuid5(NAMESPACE, key))


def identifier_id(resource_type: str, system: str, value: str) -> str:
    """A stable id for the resource identified by ``system|value``."""
    return resource_id(resource_type, system, value)


__all__ = ["NAMESPACE", "identifier_id", "resource_id"]
