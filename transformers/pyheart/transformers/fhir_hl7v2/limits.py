"""Shapes and length limits of HL7 v2 fields, read once per version from hl7apy's message tables.

The emitted ER7 must pass hl7apy's STRICT validation, which enforces the maximum length of the
primitive datatypes (ST 199, IS 20, NM 16, SI 4, ...) and the shape of each field (a primitive
field has no components). Values that do not fit are cut to the limit when the segment is
rendered; docs/fhir-to-hl7v2-lossy-fields.md lists this as lossy by design.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

#: Maximum lengths of the primitive datatypes as hl7apy enforces them (None: no limit).
PRIMITIVE_MAX: dict[str, int] = {
    "ST": 199,
    "IS": 20,
    "NM": 16,
    "SI": 4,
    "TN": 199,
    "WD": 199,
    "GTS": 199,
    "FT": 65536,
    "TX": 65536,
}


@dataclass(frozen=True)
class FieldShape:
    """One field: whether it is a primitive (no components) and the limits of its leaves."""

    primitive: bool
    #: (component, sub-component) -> maximum length of that leaf.
    limits: dict[tuple[int, int], int] = field(default_factory=dict)
    #: Number of components of a composite field (extra components are dropped).
    width: int = 1
    #: Components the version defines (withdrawn ones are left empty); None: all up to ``width``.
    components: frozenset[int] | None = None


def _index(name: object) -> int:
    """``XTN_12`` -> 12."""
    try:
        return int(str(name).rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return 1


@lru_cache(maxsize=256)
def segment_shape(version: str, segment: str) -> dict[int, FieldShape]:
    """Field number -> :class:`FieldShape` for ``segment`` in ``version`` (empty when unknown)."""
    from hl7apy import load_reference  # hl7apy loads its tables on import: only when first needed

    try:
        ref: Any = load_reference(segment, "Segment", version)
    except Exception:
        return {}
    shapes: dict[int, FieldShape] = {}
    for child in ref[1]:
        name, spec = child[0], child[1]
        try:
            number = int(str(name).rsplit("_", 1)[1])
        except (IndexError, ValueError):
            continue
        kind, children, datatype = spec[0], spec[1], spec[2]
        if kind == "leaf":
            limit = PRIMITIVE_MAX.get(str(datatype))
            if datatype == "varies":
                shapes[number] = FieldShape(primitive=False, limits={}, width=99)
                continue
            shapes[number] = FieldShape(primitive=True, limits={(1, 1): limit} if limit else {})
            continue
        limits: dict[tuple[int, int], int] = {}
        width = 0
        present: set[int] = set()
        for comp in children or ():
            c_index = _index(comp[0])
            width = max(width, c_index)
            present.add(c_index)
            c_spec = comp[1]
            if c_spec[0] == "leaf":
                limit = PRIMITIVE_MAX.get(str(c_spec[2]))
                if limit:
                    limits[(c_index, 1)] = limit
                continue
            for sub in c_spec[1] or ():
                limit = PRIMITIVE_MAX.get(str(sub[1][2]))
                if limit:
                    limits[(c_index, _index(sub[0]))] = limit
        shapes[number] = FieldShape(
            primitive=False, limits=limits, width=max(width, 1), components=frozenset(present)
        )
    return shapes


__all__ = ["PRIMITIVE_MAX", "FieldShape", "segment_shape"]
