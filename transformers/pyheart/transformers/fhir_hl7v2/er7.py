"""ER7 building blocks: segments assembled from plain values, and FHIR datatypes as HL7 v2 datatypes.

A field is given as a string (one component), a list of components (one repetition) or a list of
repetitions (``Reps``); a component may itself be a list of sub-components. Every leaf is escaped
with :func:`pyheart.broker.hl7v2.escape` when the segment is rendered, so no value can break the
message structure. Trailing empty components, repetitions and fields are dropped.

The datatype functions follow the HL7 v2-to-FHIR IG datatype maps in reverse (CX, XPN, XAD, XTN,
CWE/CE, XCN, EI, DTM/TS).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from pyheart.broker.hl7v2 import DEFAULT_DELIMITERS, Delimiters, escape
from pyheart.transformers.fhir_hl7v2.limits import FieldShape

Component = str | list[str]
Rep = list[Component]


class Reps(list[Rep]):
    """A repeating field: a list of repetitions."""


FieldValue = str | Rep | Reps | None


class Seg:
    """One segment under construction: ``seg[5] = ["Doe", "John"]`` sets PID-5."""

    __slots__ = ("fields", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: dict[int, FieldValue] = {}

    def __setitem__(self, n: int, value: FieldValue) -> None:
        self.fields[n] = value

    def __getitem__(self, n: int) -> FieldValue:
        return self.fields.get(n)

    def render(
        self, d: Delimiters = DEFAULT_DELIMITERS, shapes: Mapping[int, FieldShape] | None = None
    ) -> str:
        """The segment as ER7 text (no terminator), fitted to ``shapes`` (field shapes and limits)."""
        rendered: dict[int, str] = {}
        for n, value in self.fields.items():
            shape = shapes.get(n) if shapes else None
            if shapes and shape is None:
                continue  # the field does not exist in this version
            text = _render_field(value, d, shape)
            if text:
                rendered[n] = text
        last = max(rendered, default=0)
        if self.name == "MSH":
            # MSH-1 is the field separator itself and MSH-2 the encoding characters, both unescaped.
            head = [f"MSH{d.field}{d.encoding_characters}"]
            return d.field.join(head + [rendered.get(n, "") for n in range(3, last + 1)])
        return d.field.join([self.name] + [rendered.get(n, "") for n in range(1, last + 1)])


_SPECIALS: dict[Delimiters, re.Pattern[str]] = {}


def _specials(d: Delimiters) -> re.Pattern[str]:
    if d is DEFAULT_DELIMITERS:
        return _DEFAULT_SPECIALS
    pattern = _SPECIALS.get(d)
    if pattern is None:
        chars = {d.field, d.component, d.repetition, d.escape, d.subcomponent, "\r", "\n"}
        if d.truncation:
            chars.add(d.truncation)
        pattern = _SPECIALS[d] = re.compile("[" + re.escape("".join(sorted(chars))) + "]")
    return pattern


_DEFAULT_SPECIALS = re.compile(r"[|^~\\&\r\n]")


def fit(text: str, limit: int | None, d: Delimiters) -> str:
    """``text`` escaped, cut (before escaping) so that the escaped form is at most ``limit`` long."""
    if not text:
        return text
    escaped = escape(text, d) if _specials(d).search(text) else text
    while limit is not None and len(escaped) > limit:
        excess = len(escaped) - limit
        text = text[: max(0, len(text) - max(1, excess // 5))]
        escaped = escape(text, d)
    return escaped


def _render_component(comp: Component, d: Delimiters, c: int, shape: FieldShape | None) -> str:
    limits = shape.limits if shape is not None else {}
    if isinstance(comp, list):
        subs = [fit(s, limits.get((c, i)), d) for i, s in enumerate(comp, start=1)]
        return d.subcomponent.join(subs).rstrip(d.subcomponent)
    return fit(comp, limits.get((c, 1)), d)


def _render_rep(rep: Rep, d: Delimiters, shape: FieldShape | None) -> str:
    if shape is not None:
        if shape.primitive:
            head: Component = rep[0] if rep else ""
            while isinstance(head, list):
                head = head[0] if head else ""
            return fit(head, shape.limits.get((1, 1)), d)
        rep = rep[: shape.width]
        if shape.components is not None:
            rep = [c if i in shape.components else "" for i, c in enumerate(rep, start=1)]
    comps = [_render_component(c, d, i, shape) for i, c in enumerate(rep, start=1)]
    return d.component.join(comps).rstrip(d.component)


def _render_field(value: FieldValue, d: Delimiters, shape: FieldShape | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _render_rep([value], d, shape)
    if isinstance(value, Reps):
        return d.repetition.join(r for r in (_render_rep(x, d, shape) for x in value if x) if r)
    return _render_rep(value, d, shape)


# ------------------------------------------------------------------------------------------ helpers
def first(items: Any) -> Any:
    """The first element of a list, or None."""
    if isinstance(items, list) and items:
        return items[0]
    return None


def obj(parent: Any, key: str) -> Mapping[str, Any]:
    """``parent[key]`` when it is a JSON object, else an empty mapping."""
    value = parent.get(key) if isinstance(parent, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def is_empty(rep: Rep) -> bool:
    """True when every component (and sub-component) of ``rep`` is empty."""
    for comp in rep:
        if isinstance(comp, list):
            if any(comp):
                return False
        elif comp:
            return False
    return True


def reps(values: Sequence[Rep]) -> Reps | None:
    """Non-empty repetitions as a repeating field, or None."""
    kept = Reps(r for r in values if not is_empty(r))
    return kept or None


# ------------------------------------------------------------------------------------------ dates
_DATETIME = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def dtm(value: Any) -> str:
    """A FHIR date, dateTime or instant as an HL7 DTM/TS value (``YYYYMMDDHHMMSS.SSSS+ZZZZ``).

    Fractions beyond four digits are truncated (the HL7 limit); the time zone is kept.
    """
    if not isinstance(value, str):
        return ""
    m = _DATETIME.match(value.strip())
    if m is None:
        return ""
    year, month, day, hour, minute, second, frac, tz = m.groups()
    out = year + (month or "") + (day or "")
    if hour is not None:
        out += hour + minute + (second or "")
        if frac and second:
            out += "." + frac[:4]
        if tz:
            out += "+0000" if tz == "Z" else tz.replace(":", "")
    return out


def dt(value: Any) -> str:
    """A FHIR date (or the date part of a dateTime) as an HL7 DT value."""
    return dtm(value)[:8]


NM_MAX = 16


def number(value: Any) -> str:
    """A FHIR decimal or integer as an HL7 NM value (plain notation, never an exponent)."""
    if value is None or isinstance(value, bool):
        return ""
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        return ""
    if not dec.is_finite():
        return ""
    text = format(dec, "f")
    if len(text) > NM_MAX and "." in text:
        # NM is at most 16 characters: keep the integer part and as many decimals as fit.
        whole = text.split(".", 1)[0]
        places = max(0, NM_MAX - len(whole) - 1)
        text = format(round(dec, places), "f")
    return text


# ------------------------------------------------------------------------------------------ codes
#: FHIR code system URIs to HL7 table 0396 coding-system names.
SYSTEM_TO_V2: dict[str, str] = {
    "http://loinc.org": "LN",
    "http://snomed.info/sct": "SCT",
    "http://unitsofmeasure.org": "UCUM",
    "http://hl7.org/fhir/sid/icd-10": "I10",
    "http://hl7.org/fhir/sid/icd-10-cm": "I10C",
    "http://hl7.org/fhir/sid/icd-9-cm": "I9C",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "http://hl7.org/fhir/sid/ndc": "NDC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RXN",
    "http://terminology.hl7.org/CodeSystem/mvx": "MVX",
    "http://www.ama-assn.org/go/cpt": "CPT4",
    "http://dicom.nema.org/resources/ontology/DCM": "DCM",
    "urn:ietf:bcp:47": "ISO639",
    "urn:iso:std:iso:3166": "ISO3166",
    "http://terminology.hl7.org/CodeSystem/v3-NullFlavor": "NULLFL",
}
#: Local code and identifier systems are ``urn:id:<name>`` (the HL7v2 -> FHIR transformer's base).
LOCAL_ID_PREFIX = "urn:id:"
_V2_TABLE = re.compile(r"^http://terminology\.hl7\.org/CodeSystem/v2-(\d{4})$")


def system_name(system: Any) -> str:
    """The HL7 v2 coding-system name for a FHIR code-system URI (``HL7nnnn`` for v2 tables)."""
    if not isinstance(system, str) or not system:
        return ""
    known = SYSTEM_TO_V2.get(system)
    if known:
        return known
    m = _V2_TABLE.match(system)
    if m:
        return "HL7" + m.group(1)
    if system.startswith("urn:oid:"):
        return system[len("urn:oid:") :]
    if system.startswith(LOCAL_ID_PREFIX):
        return system[len(LOCAL_ID_PREFIX) :]
    return system


def cwe(concept: Any, width: int = 9) -> Rep:
    """A CodeableConcept as CWE (``width`` 9) or CE (``width`` 6): two codings plus original text."""
    if not isinstance(concept, Mapping):
        return []
    codings = [c for c in concept.get("coding") or [] if isinstance(c, Mapping)]
    out: Rep = [""] * width
    for slot, coding in zip((0, 3), codings[:2], strict=False):
        out[slot] = str(coding.get("code") or "")
        out[slot + 1] = str(coding.get("display") or "")
        out[slot + 2] = system_name(coding.get("system"))
    text = concept.get("text")
    if isinstance(text, str) and text:
        if width >= 9:
            out[8] = text
        elif not out[1]:
            out[1] = text
    return out


def coding_rep(coding: Any, width: int = 9) -> Rep:
    """A single Coding as CWE/CE."""
    if not isinstance(coding, Mapping):
        return []
    return cwe({"coding": [coding]}, width)


def code_of(concept: Any, system: str | None = None) -> str:
    """The first code of a CodeableConcept (from ``system`` when given)."""
    if not isinstance(concept, Mapping):
        return ""
    for coding in concept.get("coding") or []:
        if isinstance(coding, Mapping) and (system is None or coding.get("system") == system):
            return str(coding.get("code") or "")
    return ""


# ------------------------------------------------------------------------------------------ identifiers
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def hd(system: Any, assigner_display: Any = None) -> list[str]:
    """An Identifier.system (and assigner display) as HD sub-components (namespace, universal id, type)."""
    namespace = assigner_display if isinstance(assigner_display, str) else ""
    if not isinstance(system, str) or not system:
        return [namespace]
    if system.startswith("urn:oid:"):
        return [namespace, system[len("urn:oid:") :], "ISO"]
    if system.startswith(LOCAL_ID_PREFIX):
        return [namespace or system[len(LOCAL_ID_PREFIX) :]]
    if system.startswith("urn:uuid:"):
        return [namespace, system[len("urn:uuid:") :], "UUID"]
    return [namespace, system, "URI"]


def hd_component(system: Any, assigner_display: Any = None) -> list[str]:
    """HD as it stands inside another datatype (as sub-components)."""
    parts = hd(system, assigner_display)
    while parts and not parts[-1]:
        parts.pop()
    return parts


def cx(identifier: Any) -> Rep:
    """An Identifier as CX: value, assigning authority (from system/assigner), identifier type code."""
    if not isinstance(identifier, Mapping) or not identifier.get("value"):
        return []
    assigner = identifier.get("assigner")
    display = assigner.get("display") if isinstance(assigner, Mapping) else None
    type_code = code_of(identifier.get("type"))
    period = obj(identifier, "period")
    return [
        str(identifier["value"]),
        "",
        "",
        hd_component(identifier.get("system"), display),
        type_code,
        "",
        dt(period.get("start")),
        dt(period.get("end")),
    ]


def ei(identifier: Any) -> Rep:
    """An Identifier as EI: entity identifier, namespace id, universal id, universal id type."""
    if not isinstance(identifier, Mapping) or not identifier.get("value"):
        return []
    assigner = identifier.get("assigner")
    display = assigner.get("display") if isinstance(assigner, Mapping) else None
    return [str(identifier["value"]), *hd(identifier.get("system"), display)]


def ei_sub(identifier: Any) -> list[str]:
    """EI as sub-components (inside EIP)."""
    rep = ei(identifier)
    return [c for c in rep if isinstance(c, str)]


# ------------------------------------------------------------------------------------------ names
NAME_USE: dict[str, str] = {
    "official": "L",
    "usual": "D",
    "nickname": "N",
    "maiden": "M",
    "anonymous": "S",
    "temp": "T",
    "old": "BAD",
}


_HUMANNAME = "http://hl7.org/fhir/StructureDefinition/humanname-"
_FAMILY_PARTS = ("own-prefix", "own-name", "partner-prefix", "partner-name")


def _string_extensions(element: Mapping[str, Any]) -> dict[str, str]:
    """``element``'s extensions with a string value, by URL."""
    exts = element.get("extension")
    if not isinstance(exts, list):
        return {}
    return {
        str(e.get("url")): str(e.get("valueString"))
        for e in exts
        if isinstance(e, Mapping) and isinstance(e.get("valueString"), str)
    }


def fn(name: Mapping[str, Any], family: str) -> list[str]:
    """The FN of a HumanName: the surname, then the parts the humanname extensions of
    ``_family`` give (own prefix, own surname, partner's prefix and surname; IG FN[HumanName])."""
    parts = _string_extensions(obj(name, "_family"))
    subs = [family, *(parts.get(_HUMANNAME + p, "") for p in _FAMILY_PARTS)]
    while len(subs) > 1 and not subs[-1]:
        subs.pop()
    return subs


def xpn(name: Any) -> Rep:
    """A HumanName as XPN: family, given, further given names, suffix, prefix, -, name type code."""
    if not isinstance(name, Mapping):
        return []
    given = [str(g) for g in name.get("given") or []]
    family = str(name.get("family") or "")
    if not family and not given and name.get("text"):
        family = str(name["text"])
    period = obj(name, "period")
    return [
        fn(name, family),
        given[0] if given else "",
        " ".join(given[1:]),
        " ".join(str(s) for s in name.get("suffix") or []),
        " ".join(str(p) for p in name.get("prefix") or []),
        "",
        NAME_USE.get(str(name.get("use") or ""), ""),
        "",
        "",
        [dtm(period.get("start")), dtm(period.get("end"))] if period else "",
    ]


def xcn_from_practitioner(practitioner: Mapping[str, Any] | None, display: str = "") -> Rep:
    """A Practitioner (or a bare display name) as XCN: id, family, given, middle, suffix, prefix."""
    if practitioner is None:
        return ["", [display]] if display else []
    ident = first(practitioner.get("identifier")) or {}
    name = first(practitioner.get("name")) or {}
    given = [str(g) for g in name.get("given") or []]
    assigner = ident.get("assigner") if isinstance(ident, Mapping) else None
    return [
        str(ident.get("value") or ""),
        fn(name, str(name.get("family") or (display if not given else ""))),
        given[0] if given else "",
        " ".join(given[1:]),
        " ".join(str(s) for s in name.get("suffix") or []),
        " ".join(str(p) for p in name.get("prefix") or []),
        "",
        "",
        hd_component(ident.get("system"), assigner.get("display") if isinstance(assigner, Mapping) else None)
        if ident.get("value")
        else "",
    ]


# ------------------------------------------------------------------------------------------ addresses
ADDRESS_USE: dict[str, str] = {"home": "H", "work": "B", "temp": "C", "old": "BA", "billing": "BI"}
ADDRESS_TYPE: dict[str, str] = {"postal": "M", "physical": "SH"}


def xad(address: Any) -> Rep:
    """An Address as XAD: street, other designation, city, state, zip, country, type, -, county."""
    if not isinstance(address, Mapping):
        return []
    lines = [str(x) for x in address.get("line") or []]
    kind = ADDRESS_USE.get(str(address.get("use") or ""), "") or ADDRESS_TYPE.get(
        str(address.get("type") or ""), ""
    )
    period = obj(address, "period")
    street = lines[0] if lines else str(address.get("text") or "")
    return [
        [street],
        " ".join(lines[1:]),
        str(address.get("city") or ""),
        str(address.get("state") or ""),
        str(address.get("postalCode") or ""),
        str(address.get("country") or ""),
        kind,
        "",
        str(address.get("district") or ""),
        "",
        "",
        "",
        dtm(period.get("start")),
        dtm(period.get("end")),
    ]


# ------------------------------------------------------------------------------------------ telecom
TELECOM_USE: dict[str, str] = {"home": "PRN", "work": "WPN", "temp": "ORN", "mobile": "PRN", "old": "ORN"}
TELECOM_EQUIPMENT: dict[str, str] = {
    "phone": "PH",
    "fax": "FX",
    "email": "Internet",
    "pager": "BP",
    "url": "Internet",
    "sms": "CP",
    "other": "",
}


def xtn(contact: Any) -> Rep:
    """A ContactPoint as XTN: number, use code, equipment type, e-mail address."""
    if not isinstance(contact, Mapping) or not contact.get("value"):
        return []
    system = str(contact.get("system") or "")
    use = str(contact.get("use") or "")
    equipment = "CP" if use == "mobile" else TELECOM_EQUIPMENT.get(system, "")
    value = str(contact["value"])
    if system in ("email", "url"):
        return ["", "NET", equipment, value]
    # IG XTN.5..8: the number's parts, from the contactpoint extensions.
    parts = _string_extensions(contact)
    country, area, local, ext = (parts.get(_CONTACTPOINT + p, "") for p in _NUMBER_PARTS)
    # XTN-1 was withdrawn in v2.6; XTN-12 (unformatted number) carries the number in every version.
    return [value, TELECOM_USE.get(use, ""), equipment, "", country, area, local, ext, "", "", "", value]


_CONTACTPOINT = "http://hl7.org/fhir/StructureDefinition/contactpoint-"
_NUMBER_PARTS = ("country", "area", "local", "extension")


__all__ = [
    "Reps",
    "Seg",
    "code_of",
    "coding_rep",
    "cwe",
    "cx",
    "dt",
    "dtm",
    "ei",
    "ei_sub",
    "first",
    "hd",
    "hd_component",
    "number",
    "obj",
    "reps",
    "system_name",
    "xad",
    "xcn_from_practitioner",
    "xpn",
    "xtn",
]
