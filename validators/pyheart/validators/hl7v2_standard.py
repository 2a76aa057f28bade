"""What the HL7 v2 standard says about message structures, derived from hl7apy's tables.

hl7apy ships the standard's message, group and segment definitions for v2.1 to v2.8.2 as Python
data. This module reads them lazily (one version module is imported the first time a message of
that version needs it) and caches every answer per ``(version, structure)``:

* :func:`required_segments`: the segments a structure requires unconditionally (required
  segments of required groups, recursively; choices require nothing in particular);
* :func:`match_structure`: a greedy match of a message's segment sequence against the structure
  grammar (sequences, choices, groups with cardinality), reporting missing and unexpected
  segments with their positions;
* :func:`segment_fields`: the field cardinalities of a segment.

Z-segments are allowed anywhere, as every engine does in practice.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

#: The versions this module knows, in order (MSH-12.1).
KNOWN_VERSIONS: tuple[str, ...] = (
    "2.1",
    "2.2",
    "2.3",
    "2.3.1",
    "2.4",
    "2.5",
    "2.5.1",
    "2.6",
    "2.7",
    "2.7.1",
    "2.8",
    "2.8.1",
    "2.8.2",
)

#: Versions hl7apy has no tables for, read with the nearest one it has.
_VERSION_ALIASES = {"2.7.1": "2.7"}

#: HL7 table 0354: trigger events that share a message structure. Used when MSH-9.3 is empty and
#: ``TYPE_EVENT`` is not itself a structure of the version.
_SHARED_STRUCTURES: dict[str, str] = {
    "ADT_A01": "A01 A04 A08 A13",
    "ADT_A05": "A05 A14 A28 A31",
    "ADT_A06": "A06 A07",
    "ADT_A09": "A09 A10 A11",
    "ADT_A21": "A21 A22 A23 A25 A26 A27 A29 A32 A33",
    "ADT_A30": "A30 A34 A35 A36 A46 A47 A48 A49",
    "ADT_A39": "A39 A40 A41 A42",
    "ADT_A43": "A43 A44",
    "ADT_A50": "A50 A51",
    "ADT_A52": "A52 A53",
    "ADT_A54": "A54 A55",
    "ADT_A61": "A61 A62",
    "BAR_P01": "P01 P05",
    "BAR_P02": "P02",
    "MDM_T01": "T01 T03 T05 T07 T09 T11",
    "MDM_T02": "T02 T04 T06 T08 T10",
    "ORU_R30": "R30 R31 R32",
    "SIU_S12": "S12 S13 S14 S15 S16 S17 S18 S19 S20 S21 S22 S23 S24 S26",
    "SRM_S01": "S01 S02 S03 S04 S05 S06 S07 S08 S09 S10 S11",
    "SRR_S01": "S01 S02 S03 S04 S05 S06 S07 S08 S09 S10 S11",
    "MFN_M02": "M02",
    "RDE_O11": "O11 O25",
    "RAS_O17": "O17 O01",
    "QBP_Q11": "Q11",
    "RSP_K11": "K11",
    "VXU_V04": "V04",
}
_EVENT_STRUCTURE: dict[tuple[str, str], str] = {
    (structure.split("_")[0], event): structure
    for structure, events in _SHARED_STRUCTURES.items()
    for event in events.split()
}


def hl7apy_version(version: str) -> str | None:
    """The hl7apy table version for an MSH-12.1 value, or None when hl7apy has none."""
    version = version.strip()
    version = _VERSION_ALIASES.get(version, version)
    from hl7apy import SUPPORTED_LIBRARIES  # deferred: hl7apy is imported on first use only

    return version if version in SUPPORTED_LIBRARIES else None


@functools.cache
def _library(version: str) -> ModuleType:
    from hl7apy import SUPPORTED_LIBRARIES

    return importlib.import_module(SUPPORTED_LIBRARIES[version])


def _messages(version: str) -> dict[str, Any]:
    return _library(version).MESSAGES  # type: ignore[no-any-return]


def resolve_structure(version: str, message_type: str, trigger: str, declared: str = "") -> str | None:
    """The message structure (e.g. ``ADT_A01``) for MSH-9, or None when the version has none.

    ``version`` is an hl7apy version (see :func:`hl7apy_version`). The order: MSH-9.3 when the
    version defines it, then ``TYPE_EVENT``, then the shared structures of table 0354, then
    ``ACK`` for acknowledgments.
    """
    messages = _messages(version)
    for candidate in (
        declared,
        f"{message_type}_{trigger}" if trigger else "",
        _EVENT_STRUCTURE.get((message_type, trigger), ""),
        message_type if message_type == "ACK" else "",
    ):
        if candidate and candidate in messages:
            return candidate
    return None


@functools.cache
def known_segments(version: str) -> frozenset[str]:
    """Names of the segments the version defines."""
    return frozenset(_library(version).SEGMENTS)


def _required(node: Sequence[Any]) -> list[str]:
    kind, children = node[0], node[1]
    if kind != "sequence":
        return []
    out: list[str] = []
    for name, ref, (least, _most), cls in children:
        if least < 1:
            continue
        if cls == "SEG":
            out.append(name)
        else:
            out.extend(_required(ref))
    return out


@functools.lru_cache(maxsize=2048)
def required_segments(version: str, structure: str) -> tuple[str, ...]:
    """Segments the structure requires unconditionally, without duplicates, in order."""
    node = _messages(version).get(structure)
    if node is None:
        return ()
    return tuple(dict.fromkeys(_required(node)))


@functools.lru_cache(maxsize=4096)
def segment_fields(version: str, name: str) -> tuple[tuple[int, int, int], ...]:
    """``(field number, min, max)`` of every field the segment defines (max -1: unbounded)."""
    ref = _library(version).SEGMENTS.get(name)
    if ref is None:
        return ()
    out = []
    for child in ref[1]:
        child_name, (least, most) = child[0], child[2]
        out.append((int(child_name.rsplit("_", 1)[1]), least, most))
    return tuple(out)


# --------------------------------------------------------------------------------------- matching
@dataclass(frozen=True)
class StructureProblem:
    """One misfit between a message's segments and its structure.

    ``kind`` is ``missing`` (a required segment or group is absent) or ``unexpected`` (a segment
    the structure does not allow at that place: out of order, repeated too often, or foreign).
    ``segment`` names the segment concerned; ``index`` is its 0-based position in the message
    (for ``missing``: where it was expected); ``group`` names the enclosing group.
    """

    kind: str
    segment: str
    index: int
    group: str


_FIRST: dict[int, frozenset[str]] = {}


def _first(node: Sequence[Any]) -> frozenset[str]:
    """Segment names a group can start with."""
    key = id(node)
    found = _FIRST.get(key)
    if found is not None:
        return found
    kind, children = node[0], node[1]
    names: set[str] = set()
    for name, ref, (least, _most), cls in children:
        names |= {name} if cls == "SEG" else _first(ref)
        if kind == "sequence" and least >= 1:
            break
    result = frozenset(names)
    _FIRST[key] = result
    return result


def _first_required(node: Sequence[Any]) -> str:
    required = _required(node)
    if required:
        return required[0]
    return next(iter(sorted(_first(node))), "")


class _Matcher:
    def __init__(self, items: list[tuple[int, str]], end_index: int) -> None:
        self.items = items
        self.end_index = end_index
        self.problems: list[StructureProblem] = []

    def _at(self, pos: int) -> int:
        return self.items[pos][0] if pos < len(self.items) else self.end_index

    def match(self, node: Sequence[Any], pos: int, group: str) -> int:
        kind, children = node[0], node[1]
        if kind == "choice":
            for name, ref, _card, cls in children:
                starts = {name} if cls == "SEG" else _first(ref)
                if pos < len(self.items) and self.items[pos][1] in starts:
                    return self._element(name, ref, (1, 1), cls, pos, group)
            return pos
        for name, ref, card, cls in children:
            pos = self._element(name, ref, card, cls, pos, group)
        return pos

    def _element(
        self, name: str, ref: Sequence[Any], card: tuple[int, int], cls: str, pos: int, group: str
    ) -> int:
        least, most = card
        count = 0
        items = self.items
        while pos < len(items):
            if cls == "SEG":
                if items[pos][1] != name or (most != -1 and count >= most):
                    break
                pos += 1
            else:
                if items[pos][1] not in _first(ref) or (most != -1 and count >= most):
                    break
                new = self.match(ref, pos, name)
                if new == pos:
                    break
                pos = new
            count += 1
        if count < least:
            missing = name if cls == "SEG" else _first_required(ref)
            self.problems.append(StructureProblem("missing", missing, self._at(pos), group))
        return pos


def match_structure(version: str, structure: str, names: Sequence[str]) -> list[StructureProblem]:
    """Misfits between the segment ``names`` of a message and ``structure`` (see the module doc).

    After the first segment the structure cannot place, the rest is not matched further: that
    segment is reported ``unexpected`` (out of order, or not part of the structure).
    """
    node = _messages(version).get(structure)
    if node is None:
        return []
    items = [(i, n) for i, n in enumerate(names) if not n.startswith("Z")]
    matcher = _Matcher(items, len(names))
    pos = matcher.match(node, 0, structure)
    if pos < len(items):
        index, name = items[pos]
        matcher.problems.append(StructureProblem("unexpected", name, index, structure))
    return matcher.problems


__all__ = [
    "KNOWN_VERSIONS",
    "StructureProblem",
    "hl7apy_version",
    "known_segments",
    "match_structure",
    "required_segments",
    "resolve_structure",
    "segment_fields",
]
