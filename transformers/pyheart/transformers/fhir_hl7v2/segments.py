"""FHIR R4 resources to HL7 v2 segments, following the v2-to-FHIR IG segment maps in reverse.

Each function takes the resource as a dict (already validated on the way in) and the
:class:`Context` that resolves references inside the input, and returns a :class:`Seg`.
HL7 fields that a version requires but that the resource leaves empty get the HL7 null ``""``
(only SCH-16/SCH-20, PID-5, IN1-2/IN1-3 and the order codes; see docs/fhir-to-hl7v2-lossy-fields.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from pyheart.broker.errors import TransformError
from pyheart.broker.hl7v2 import escape
from pyheart.transformers.fhir_hl7v2.er7 import (
    NM_MAX,
    Rep,
    Reps,
    Seg,
    code_of,
    coding_rep,
    cwe,
    cx,
    dt,
    dtm,
    ei,
    ei_sub,
    first,
    number,
    obj,
    reps,
    xad,
    xcn_from_practitioner,
    xpn,
    xtn,
)

NULL = '""'

Resource = Mapping[str, Any]


class Context:
    """Resources of one input, indexed so that references (full URLs, ``Type/id``, ``#contained``,
    conditional ``Type?identifier=system|value``) resolve without a server."""

    def __init__(self, resources: list[Resource], full_urls: list[str | None]) -> None:
        self.resources = resources
        self._by_ref: dict[str, Resource] = {}
        for resource, full_url in zip(resources, full_urls, strict=True):
            rtype = str(resource.get("resourceType"))
            rid = resource.get("id")
            if full_url:
                self._by_ref[full_url] = resource
            if rid:
                self._by_ref[f"{rtype}/{rid}"] = resource
            for contained in resource.get("contained") or []:
                if isinstance(contained, Mapping) and contained.get("id"):
                    self._by_ref[f"#{contained['id']}"] = contained

    def of_type(self, rtype: str) -> list[Resource]:
        """Every resource of ``rtype``, in input order."""
        return [r for r in self.resources if r.get("resourceType") == rtype]

    def resolve(self, reference: Any, rtype: str | None = None) -> Resource | None:
        """The resource a Reference points to, or None when it is not in the input."""
        if not isinstance(reference, Mapping):
            return None
        ref = reference.get("reference")
        found: Resource | None = None
        if isinstance(ref, str) and ref:
            found = self._by_ref.get(ref)
            if found is None and "/" in ref and "?" not in ref:
                parts = ref.rstrip("/").split("/")
                if "_history" in parts:
                    parts = parts[: parts.index("_history")]
                found = self._by_ref.get("/".join(parts[-2:]))
            if found is None and "?" in ref:
                found = self._by_identifier_query(ref)
        if found is None and isinstance(reference.get("identifier"), Mapping):
            found = self._by_identifier(reference["identifier"], rtype)
        if found is not None and rtype is not None and found.get("resourceType") != rtype:
            return None
        return found

    def _by_identifier_query(self, ref: str) -> Resource | None:
        rtype, _, query = ref.partition("?")
        token = (parse_qs(query).get("identifier") or [""])[0]
        system, sep, value = token.rpartition("|")
        if not sep:
            system, value = "", token
        return self._by_identifier({"system": system, "value": value} if system else {"value": value}, rtype)

    def _by_identifier(self, identifier: Mapping[str, Any], rtype: str | None) -> Resource | None:
        for resource in self.resources:
            if rtype is not None and resource.get("resourceType") != rtype:
                continue
            for ident in resource.get("identifier") or []:
                if not isinstance(ident, Mapping) or ident.get("value") != identifier.get("value"):
                    continue
                if identifier.get("system") in (None, ident.get("system")):
                    return resource
        return None


# ------------------------------------------------------------------------------------------ people
GENDER: dict[str, str] = {"male": "M", "female": "F", "other": "O", "unknown": "U"}
MARITAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
MOTHERS_MAIDEN_NAME = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"
RELIGION = "http://hl7.org/fhir/StructureDefinition/patient-religion"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"


def _extension(resource: Resource, url: str) -> Mapping[str, Any] | None:
    for ext in resource.get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == url:
            return ext
    return None


def reference_cx(reference: Any) -> Rep:
    """A Reference to a resource that is not in the input, as CX (identifier or literal id)."""
    if not isinstance(reference, Mapping):
        return []
    if isinstance(reference.get("identifier"), Mapping):
        return cx(reference["identifier"])
    ref = reference.get("reference")
    if isinstance(ref, str) and "/" in ref and "?" not in ref:
        return [ref.rstrip("/").split("/")[-1]]
    return []


def pid(patient: Resource | None, fallback_reference: Any = None) -> Seg:
    """PID from Patient (IG PID[Patient], reversed). Without a Patient, PID-3 from the reference."""
    seg = Seg("PID")
    seg[1] = "1"
    if patient is None:
        seg[3] = reps([reference_cx(fallback_reference)]) or NULL
        display = fallback_reference.get("display") if isinstance(fallback_reference, Mapping) else None
        seg[5] = [[str(display)]] if display else NULL
        return seg
    # PID-2, PID-4, PID-19 and PID-20 all become identifiers (typed SS, DL ...): every one
    # returns in PID-3, the field the standard keeps (the others are deprecated from v2.7).
    seg[3] = reps([cx(i) for i in patient.get("identifier") or []]) or NULL
    names = patient.get("name") or []
    seg[5] = reps([xpn(n) for n in names]) or NULL
    maiden = _extension(patient, MOTHERS_MAIDEN_NAME)
    if maiden and maiden.get("valueString"):
        seg[6] = [[str(maiden["valueString"])]]
    seg[7] = dtm(patient.get("birthDate"))
    seg[8] = GENDER.get(str(patient.get("gender") or ""), "")
    addresses = patient.get("address") or []
    seg[11] = reps([xad(a) for a in addresses])
    telecom = [t for t in patient.get("telecom") or [] if isinstance(t, Mapping)]
    seg[13] = reps([xtn(t) for t in telecom if t.get("use") != "work"])
    seg[14] = reps([xtn(t) for t in telecom if t.get("use") == "work"])
    for comm in patient.get("communication") or []:
        if isinstance(comm, Mapping):
            seg[15] = cwe(comm.get("language"), 6)
            break
    seg[16] = cwe(patient.get("maritalStatus"), 6)
    religion = _extension(patient, RELIGION)
    if religion:
        seg[17] = cwe(religion.get("valueCodeableConcept"), 6)
    place = _extension(patient, BIRTH_PLACE)
    if place and isinstance(place.get("valueAddress"), Mapping):
        seg[23] = str(place["valueAddress"].get("text") or "")
    if "multipleBirthBoolean" in patient:
        seg[24] = "Y" if patient["multipleBirthBoolean"] else "N"
    if "multipleBirthInteger" in patient:
        seg[24] = "Y"
        seg[25] = number(patient["multipleBirthInteger"])
    if "deceasedDateTime" in patient:
        seg[29] = dtm(patient["deceasedDateTime"])
        seg[30] = "Y"
    elif "deceasedBoolean" in patient:
        seg[30] = "Y" if patient["deceasedBoolean"] else "N"
    return seg


def nk1(related: Resource, set_id: int) -> Seg:
    """NK1 from RelatedPerson (IG NK1[RelatedPerson], reversed)."""
    seg = Seg("NK1")
    seg[1] = str(set_id)
    seg[2] = reps([xpn(n) for n in related.get("name") or []])
    seg[3] = cwe(first(related.get("relationship")), 6)
    seg[4] = reps([xad(a) for a in related.get("address") or []])
    telecom = [t for t in related.get("telecom") or [] if isinstance(t, Mapping)]
    seg[5] = reps([xtn(t) for t in telecom if t.get("use") != "work"])
    seg[6] = reps([xtn(t) for t in telecom if t.get("use") == "work"])
    period = obj(related, "period")
    seg[8] = dt(period.get("start"))
    seg[9] = dt(period.get("end"))
    seg[15] = GENDER.get(str(related.get("gender") or ""), "")
    seg[16] = dtm(related.get("birthDate"))
    seg[33] = reps([cx(i) for i in related.get("identifier") or []])
    return seg


def in1(coverage: Resource, set_id: int, ctx: Context) -> Seg:
    """IN1 from Coverage (IG IN1[Coverage], reversed)."""
    seg = Seg("IN1")
    seg[1] = str(set_id)
    plan = None
    group = None
    for cls in coverage.get("class") or []:
        if not isinstance(cls, Mapping):
            continue
        kind = code_of(cls.get("type"))
        if kind == "plan" and plan is None:
            plan = cls
        elif kind == "group" and group is None:
            group = cls
    if plan is not None:
        seg[2] = [str(plan.get("value") or ""), str(plan.get("name") or "")]
    else:
        seg[2] = cwe(coverage.get("type"), 6) or NULL
    payor_ref = first(coverage.get("payor"))
    payor = ctx.resolve(payor_ref)
    if payor is not None:
        seg[3] = reps([cx(i) for i in payor.get("identifier") or []]) or NULL
        if payor.get("resourceType") == "Organization" and payor.get("name"):
            seg[4] = [[str(payor["name"])]]
    else:
        seg[3] = reps([reference_cx(payor_ref)]) or NULL
        if isinstance(payor_ref, Mapping) and payor_ref.get("display"):
            seg[4] = [[str(payor_ref["display"])]]
    if group is not None:
        seg[8] = str(group.get("value") or "")
        seg[9] = [[str(group.get("name") or "")]]
    period = obj(coverage, "period")
    seg[12] = dt(period.get("start"))
    seg[13] = dt(period.get("end"))
    seg[15] = code_of(coverage.get("type"))
    seg[17] = cwe(coverage.get("relationship"), 6)
    ident = first(coverage.get("identifier"))
    if isinstance(ident, Mapping):
        seg[36] = str(ident.get("value") or "")
    if coverage.get("subscriberId"):
        seg[49] = [str(coverage["subscriberId"])]
    return seg


# ------------------------------------------------------------------------------------------ encounters
#: Encounter.class (v3 ActCode) to PV1-2 patient class (HL7 table 0004).
ENCOUNTER_CLASS: dict[str, str] = {
    "IMP": "I",
    "ACUTE": "I",
    "NONAC": "I",
    "EMER": "E",
    "AMB": "O",
    "FLD": "O",
    "HH": "O",
    "VR": "O",
    "SS": "O",
    "PRENC": "P",
    "OBSENC": "O",
}


#: Location.physicalType (location-physical-type) -> PL component (IG PL[Location], reversed).
PL_LEVEL: dict[str, int] = {"si": 4, "bu": 7, "lvl": 8, "ro": 2, "bd": 3}


def location_pl(ctx: Context, reference: Any) -> Rep:
    """A Reference(Location) as PL: the location and its ``partOf`` chain, each level placed by
    its physical type (site, building, floor, room, bed; anything else is the point of care)."""
    location = ctx.resolve(reference, "Location")
    if location is None:
        display = reference.get("display") if isinstance(reference, Mapping) else None
        return [str(display)] if display else []
    pl: Rep = [""] * 9
    seen: set[int] = set()
    while location is not None and id(location) not in seen:
        seen.add(id(location))
        level = PL_LEVEL.get(code_of(location.get("physicalType")), 1)
        if not pl[level - 1]:
            pl[level - 1] = str(location.get("name") or "")
        location = ctx.resolve(location.get("partOf"), "Location")
    return pl


def _location_pl(ctx: Context, entry: Any) -> Rep:
    if not isinstance(entry, Mapping):
        return []
    return location_pl(ctx, entry.get("location"))


def _participant(ctx: Context, encounter: Resource, code: str) -> Reps | None:
    found: list[Rep] = []
    for part in encounter.get("participant") or []:
        if not isinstance(part, Mapping):
            continue
        if not any(code_of(t) == code for t in part.get("type") or [] if isinstance(t, Mapping)):
            continue
        found.append(practitioner_xcn(ctx, part.get("individual")))
    return reps(found)


def practitioner_xcn(ctx: Context, reference: Any) -> Rep:
    """A Reference to a Practitioner (or PractitionerRole) as XCN."""
    target = ctx.resolve(reference)
    if target is not None and target.get("resourceType") == "PractitionerRole":
        target = ctx.resolve(target.get("practitioner"), "Practitioner")
    display = reference.get("display") if isinstance(reference, Mapping) else None
    if target is not None and target.get("resourceType") in ("Practitioner", "RelatedPerson", "Patient"):
        return xcn_from_practitioner(target, str(display or ""))
    if isinstance(reference, Mapping) and isinstance(reference.get("identifier"), Mapping):
        ident = reference["identifier"]
        return [str(ident.get("value") or ""), [str(display or "")]]
    return xcn_from_practitioner(None, str(display or ""))


def _temporary(location: Mapping[str, Any]) -> bool:
    """Whether an Encounter.location entry is classified temporary (subject-locationClassification)."""
    for ext in location.get("extension") or []:
        if isinstance(ext, Mapping) and str(ext.get("url") or "").endswith("/subject-locationClassification"):
            concept = ext.get("valueCodeableConcept")
            codings = concept.get("coding") if isinstance(concept, Mapping) else None
            if any(isinstance(c, Mapping) and c.get("code") == "temporary" for c in codings or []):
                return True
    return False


def active_and_prior_location(encounter: Resource) -> tuple[Any, Any]:
    """The encounter's current location entry and the one before it (for a transfer)."""
    locations = [loc for loc in encounter.get("location") or [] if isinstance(loc, Mapping)]
    # Temporary locations (PV1-11, PV1-43) are neither the assigned nor the prior location.
    locations = [loc for loc in locations if not _temporary(loc)] or locations
    active = [loc for loc in locations if loc.get("status") in (None, "active", "planned", "reserved")]
    prior = [loc for loc in locations if loc.get("status") == "completed"]
    return (active[-1] if active else None), (prior[-1] if prior else None)


def pv1(encounter: Resource | None, ctx: Context) -> Seg:
    """PV1 from Encounter (IG PV1[Encounter], reversed); ``N`` (not applicable) without one."""
    seg = Seg("PV1")
    seg[1] = "1"
    if encounter is None:
        seg[2] = "N"
        return seg
    klass = obj(encounter, "class")
    seg[2] = ENCOUNTER_CLASS.get(str(klass.get("code") or ""), "U")
    active, prior = active_and_prior_location(encounter)
    seg[3] = _location_pl(ctx, active)
    seg[4] = code_of(first(encounter.get("type")))
    seg[6] = _location_pl(ctx, prior)
    seg[7] = _participant(ctx, encounter, "ATND")
    seg[8] = _participant(ctx, encounter, "REF")
    seg[9] = _participant(ctx, encounter, "CON")
    seg[10] = code_of(encounter.get("serviceType"))
    hosp = obj(encounter, "hospitalization")
    seg[14] = code_of(hosp.get("admitSource"))
    seg[17] = _participant(ctx, encounter, "ADM")
    ident = first(encounter.get("identifier"))
    seg[19] = cx(ident) if ident else None
    seg[36] = code_of(hosp.get("dischargeDisposition"))
    period = obj(encounter, "period")
    seg[44] = dtm(period.get("start"))
    seg[45] = dtm(period.get("end"))
    return seg


def pv2(encounter: Resource | None) -> Seg | None:
    """PV2 (admit reason) when the Encounter carries a reasonCode."""
    if encounter is None:
        return None
    reason = first(encounter.get("reasonCode"))
    if not reason:
        return None
    seg = Seg("PV2")
    seg[3] = cwe(reason, 6)
    return seg


# ------------------------------------------------------------------------------------------ orders
#: ServiceRequest.status to ORC-1 order control and ORC-5 order status.
ORDER_CONTROL: dict[str, tuple[str, str]] = {
    "draft": ("NW", "IP"),
    "active": ("NW", "IP"),
    "on-hold": ("OH", "HD"),
    "revoked": ("OC", "CA"),
    "completed": ("SC", "CM"),
    "entered-in-error": ("CA", "CA"),
    "unknown": ("NW", ""),
}
PRIORITY: dict[str, str] = {"routine": "R", "urgent": "A", "asap": "A", "stat": "S"}
PLACER = "PLAC"
FILLER = "FILL"


def order_identifiers(resource: Resource | None) -> tuple[Any, Any]:
    """Placer and filler identifiers (by identifier type PLAC/FILL; else the first is the placer)."""
    if resource is None:
        return None, None
    placer = filler = None
    idents = [i for i in resource.get("identifier") or [] if isinstance(i, Mapping)]
    for ident in idents:
        kind = code_of(ident.get("type"))
        if kind == PLACER and placer is None:
            placer = ident
        elif kind == FILLER and filler is None:
            filler = ident
    untyped = [i for i in idents if not code_of(i.get("type"))]
    # Requests are identified by their placer, results and events by their filler.
    requester = resource.get("resourceType") in ("ServiceRequest", "Appointment")
    if placer is None and untyped and requester:
        placer = untyped[0]
    if filler is None and untyped and not requester:
        filler = untyped[0]
    return placer, filler


def orc(
    request: Resource | None, ctx: Context, control: str | None = None, report: Resource | None = None
) -> Seg:
    """ORC from ServiceRequest (IG ORC[ServiceRequest], reversed) or, for results, the report."""
    seg = Seg("ORC")
    placer, filler = order_identifiers(request)
    if report is not None:
        filler = order_identifiers(report)[1] or filler
    status = str(request.get("status") or "") if request is not None else ""
    default_control, order_status = ORDER_CONTROL.get(status, ("NW", ""))
    seg[1] = control or default_control
    seg[2] = ei(placer) if placer else None
    seg[3] = ei(filler) if filler else None
    seg[5] = order_status if control is None else ""
    if request is not None:
        seg[9] = dtm(request.get("authoredOn"))
        seg[12] = (
            reps([practitioner_xcn(ctx, request.get("requester"))]) if request.get("requester") else None
        )
    return seg


def tq1(request: Resource) -> Seg | None:
    """TQ1 (priority and requested time) from a ServiceRequest, when it has either."""
    priority = PRIORITY.get(str(request.get("priority") or ""), "")
    start = dtm(request.get("occurrenceDateTime"))
    period = obj(request, "occurrencePeriod")
    if not start and period:
        start = dtm(period.get("start"))
    end = dtm(period.get("end")) if period else ""
    if not (priority or start or end):
        return None
    seg = Seg("TQ1")
    seg[1] = "1"
    seg[7] = start
    seg[8] = end
    seg[9] = [priority] if priority else None
    return seg


#: DiagnosticReport.status to OBR-25 result status (HL7 table 0123).
REPORT_STATUS: dict[str, str] = {
    "registered": "O",
    "partial": "P",
    "preliminary": "P",
    "final": "F",
    "amended": "C",
    "corrected": "C",
    "appended": "C",
    "cancelled": "X",
    "entered-in-error": "X",
    "unknown": "",
}


def obr(
    set_id: int,
    ctx: Context,
    request: Resource | None = None,
    report: Resource | None = None,
    code: Any = None,
    specimen: Resource | None = None,
    ce_width: int = 6,
) -> Seg:
    """OBR from a DiagnosticReport and/or ServiceRequest (IG OBR[*], reversed)."""
    seg = Seg("OBR")
    seg[1] = str(set_id)
    placer, filler = order_identifiers(request)
    if report is not None:
        filler = order_identifiers(report)[1] or filler
    seg[2] = ei(placer) if placer else None
    seg[3] = ei(filler) if filler else None
    concept = code
    if report is not None:
        concept = report.get("code")
    elif request is not None:
        concept = request.get("code")
    seg[4] = cwe(concept, ce_width) or NULL
    if request is not None:
        seg[6] = dtm(request.get("occurrenceDateTime"))
        seg[16] = (
            reps([practitioner_xcn(ctx, request.get("requester"))]) if request.get("requester") else None
        )
    if specimen is not None:
        collection = obj(specimen, "collection")
        seg[7] = dtm(collection.get("collectedDateTime"))
    if report is not None:
        effective = report.get("effectiveDateTime")
        if effective is None and isinstance(report.get("effectivePeriod"), Mapping):
            effective = report["effectivePeriod"].get("start")
            seg[8] = dtm(report["effectivePeriod"].get("end"))
        seg[7] = dtm(effective) or seg[7]
        seg[22] = dtm(report.get("issued"))
        seg[24] = code_of(first(report.get("category")))
        seg[25] = REPORT_STATUS.get(str(report.get("status") or ""), "")
        performer = first(report.get("resultsInterpreter")) or first(report.get("performer"))
        if performer is not None:
            xcn = practitioner_xcn(ctx, performer)
            if xcn and isinstance(xcn[0], str) and xcn[0]:
                seg[32] = [[xcn[0]]]
    return seg


# ------------------------------------------------------------------------------------------ results
#: Observation.status to OBX-11 (HL7 table 0085).
OBSERVATION_STATUS: dict[str, str] = {
    "registered": "I",
    "preliminary": "P",
    "final": "F",
    "amended": "C",
    "corrected": "C",
    "cancelled": "X",
    "entered-in-error": "W",
    "unknown": "N",
}  # IG ObservationResultStatusCodesInterpretation, reversed (A and D have no v2.5 twin: C, W)
COMPARATOR = {"<", "<=", ">=", ">"}
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def _quantity_units(quantity: Mapping[str, Any], width: int) -> Rep:
    code = str(quantity.get("code") or "")
    unit = str(quantity.get("unit") or "")
    system = quantity.get("system")
    if not code and not unit:
        return []
    return coding_rep({"code": code or unit, "display": unit, "system": system}, width)


def observation_value(obs: Mapping[str, Any], ce_width: int) -> tuple[str, Rep | str, Rep]:
    """OBX-2 value type, OBX-5 value and OBX-6 units for an Observation (or a component)."""
    if "valueQuantity" in obs:
        q = obs["valueQuantity"]
        units = _quantity_units(q, ce_width)
        comparator = q.get("comparator")
        if comparator in COMPARATOR:
            return "SN", [str(comparator), number(q.get("value"))], units
        value = number(q.get("value"))
        return ("NM" if len(value) <= NM_MAX else "ST"), value, units
    if "valueCodeableConcept" in obs:
        return ("CWE" if ce_width >= 9 else "CE"), cwe(obs["valueCodeableConcept"], ce_width), []
    if "valueString" in obs:
        text = str(obs["valueString"])
        return ("TX" if len(escape(text)) > ST_MAX or "\n" in text else "ST"), text, []
    if "valueBoolean" in obs:
        flag = "Y" if obs["valueBoolean"] else "N"
        return ("CWE" if ce_width >= 9 else "CE"), [flag, "", "HL70136"], []
    if "valueInteger" in obs:
        value = number(obs["valueInteger"])
        return ("NM" if len(value) <= NM_MAX else "ST"), value, []
    if "valueDateTime" in obs:
        return "TS" if ce_width == 6 else "DTM", dtm(obs["valueDateTime"]), []
    if "valueTime" in obs:
        return "TM", str(obs["valueTime"]).replace(":", ""), []
    if "valueRange" in obs:
        rng = obs["valueRange"]
        low = rng.get("low") or {}
        high = rng.get("high") or {}
        return (
            "SN",
            ["", number(low.get("value")), "-", number(high.get("value"))],
            _quantity_units(low or high, ce_width),
        )
    if "valueRatio" in obs:
        ratio = obs["valueRatio"]
        num = ratio.get("numerator") or {}
        den = ratio.get("denominator") or {}
        return "SN", ["", number(num.get("value")), ":", number(den.get("value"))], []
    if "valuePeriod" in obs:
        period = obs["valuePeriod"]
        return "DR", [dtm(period.get("start")), dtm(period.get("end"))], []
    return "", "", []


ST_MAX = 199


def text_lines(text: str, limit: int) -> list[str]:
    """``text`` as lines, each cut into pieces whose escaped form is at most ``limit`` long."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        piece = ""
        size = 0
        for ch in line:
            width = len(escape(ch))
            if size + width > limit:
                out.append(piece)
                piece, size = "", 0
            piece += ch
            size += width
        out.append(piece)
    return out


def _reference_range(obs: Mapping[str, Any]) -> str:
    rng = first(obs.get("referenceRange"))
    if not isinstance(rng, Mapping):
        return ""
    if rng.get("text"):
        return str(rng["text"])
    low = number((rng.get("low") or {}).get("value"))
    high = number((rng.get("high") or {}).get("value"))
    if low and high:
        return f"{low}-{high}"
    if low:
        return f">{low}"
    if high:
        return f"<{high}"
    return ""


def obx(
    set_id: int,
    obs: Mapping[str, Any],
    ctx: Context,
    status: str,
    sub_id: str = "",
    ce_width: int = 6,
    parent: Mapping[str, Any] | None = None,
) -> Seg:
    """OBX from an Observation or one of its components (IG OBX[Observation], reversed)."""
    seg = Seg("OBX")
    seg[1] = str(set_id)
    value_type, value, units = observation_value(obs, ce_width)
    seg[2] = value_type
    seg[3] = cwe(obs.get("code"), ce_width) or NULL
    seg[4] = sub_id
    if value_type == "TX" and isinstance(value, str):
        # A TX value repeats one line per repetition; hl7apy reads OBX-5 as ST (199 characters),
        # so longer lines are cut into pieces of at most 199 escaped characters.
        seg[5] = Reps([[piece] for piece in text_lines(value, ST_MAX)])
    elif isinstance(value, str):
        # OBX-5 is typed by OBX-2: an ST value with delimiters stays one escaped component.
        seg[5] = [value] if value else None
    else:
        seg[5] = value or None
    seg[6] = units or None
    seg[7] = _reference_range(obs)
    interpretation = [cwe(i, ce_width) for i in obs.get("interpretation") or []]
    seg[8] = reps(interpretation)
    seg[11] = status
    source = parent or obs
    effective = source.get("effectiveDateTime")
    if effective is None and isinstance(source.get("effectivePeriod"), Mapping):
        effective = source["effectivePeriod"].get("start")
    seg[14] = dtm(effective)
    performers = [practitioner_xcn(ctx, p) for p in source.get("performer") or []]
    seg[16] = reps(performers)
    seg[17] = cwe(source.get("method"), ce_width)
    seg[19] = dtm(source.get("issued"))
    return seg


#: Observations HL7 v2 -> FHIR makes from segments other than OBX (ACC accident, PDA death and
#: autopsy indicators), by their code in our local ``observation-code`` system. They are not
#: results: FHIR -> HL7 v2 does not turn them into OBX.
SEGMENT_OBSERVATION_CODES = frozenset({"injury-incident", "death-certificate", "autopsy", "coroner"})


def from_segment_without_obx(obs: Mapping[str, Any]) -> bool:
    """Whether ``obs`` is one of the ACC/PDA Observations (see SEGMENT_OBSERVATION_CODES)."""
    code = obs.get("code")
    codings = code.get("coding") if isinstance(code, Mapping) else None
    for c in codings or []:
        if (
            isinstance(c, Mapping)
            and c.get("code") in SEGMENT_OBSERVATION_CODES
            and str(c.get("system") or "").endswith("observation-code")
        ):
            return True
    return False


def obx_repeated(
    set_id: int,
    obs: Mapping[str, Any],
    components: list[Mapping[str, Any]],
    ctx: Context,
    status: str,
    ce_width: int = 6,
) -> Seg:
    """One OBX whose OBX-5 repeats, from an Observation whose components carry its own code
    (IG OBX[Observation-Component], reversed): OBX-2/6/7 from the first component."""
    first_comp = components[0]
    seg = obx(set_id, {**obs, **first_comp}, ctx, status, ce_width=ce_width, parent=obs)
    value_type = seg[2]
    values: Reps = Reps()
    for comp in components:
        kind, value, _units = observation_value(comp, ce_width)
        if kind != value_type:
            continue  # OBX-2 types every repetition alike
        values.append(value if isinstance(value, list) else [value])
    seg[5] = values or None
    return seg


def nte(set_id: int, text: str) -> Seg:
    """NTE with one comment."""
    seg = Seg("NTE")
    seg[1] = str(set_id)
    seg[3] = Reps([[line]] for line in text.split("\n")) if text else None
    return seg


def spm(specimen: Resource, set_id: int) -> Seg:
    """SPM from Specimen (IG SPM[Specimen], reversed)."""
    seg = Seg("SPM")
    seg[1] = str(set_id)
    ident = first(specimen.get("identifier"))
    accession = specimen.get("accessionIdentifier")
    if ident or accession:
        seg[2] = [ei_sub(ident), ei_sub(accession)]
    seg[4] = cwe(specimen.get("type"), 9) or NULL
    collection = obj(specimen, "collection")
    seg[7] = cwe(collection.get("method"), 9)
    seg[8] = cwe(collection.get("bodySite"), 9)
    seg[14] = " ".join(
        str(n.get("text")) for n in specimen.get("note") or [] if isinstance(n, Mapping) and n.get("text")
    )
    period = obj(collection, "collectedPeriod")
    start = dtm(collection.get("collectedDateTime")) or dtm(period.get("start"))
    if start:
        seg[17] = [[start], [dtm(period.get("end"))]]
    seg[18] = dtm(specimen.get("receivedTime"))
    return seg


# ------------------------------------------------------------------------------------------ immunization
IMMUNIZATION_STATUS: dict[str, str] = {"completed": "CP", "not-done": "RE", "entered-in-error": "CP"}


def rxa(imm: Resource, ctx: Context, ce_width: int) -> Seg:
    """RXA from Immunization (IG RXA[Immunization], reversed)."""
    seg = Seg("RXA")
    seg[1] = "0"
    seg[2] = "1"
    when = dtm(imm.get("occurrenceDateTime")) or dtm(imm.get("recorded"))
    if not when:
        raise TransformError(
            "Immunization has no administration date/time for RXA-3 (occurrenceDateTime or recorded)",
            code="fhir-missing-element",
            locations=["Immunization.occurrenceDateTime"],
        )
    seg[3] = when
    seg[4] = when
    seg[5] = cwe(imm.get("vaccineCode"), ce_width) or NULL
    dose = obj(imm, "doseQuantity")
    # CDC IIS IG: 999 means "amount unknown".
    seg[6] = number(dose.get("value")) or "999"
    seg[7] = _quantity_units(dose, ce_width) if dose else None
    if "primarySource" in imm:
        seg[9] = Reps([["00" if imm["primarySource"] else "01", "", "NIP001"]])
    performer = first(imm.get("performer"))
    if isinstance(performer, Mapping):
        seg[10] = reps([practitioner_xcn(ctx, performer.get("actor"))])
    location = ctx.resolve(imm.get("location"), "Location")
    if location is not None and location.get("name"):
        seg[11] = [str(location["name"])]
    if imm.get("lotNumber"):
        seg[15] = Reps([[str(imm["lotNumber"])]])
    seg[16] = dtm(imm.get("expirationDate"))
    manufacturer = ctx.resolve(imm.get("manufacturer"), "Organization")
    if manufacturer is not None:
        mvx = first(manufacturer.get("identifier")) or {}
        seg[17] = Reps([[str(mvx.get("value") or ""), str(manufacturer.get("name") or ""), "MVX"]])
    elif isinstance(imm.get("manufacturer"), Mapping) and imm["manufacturer"].get("display"):
        seg[17] = Reps([["", str(imm["manufacturer"]["display"])]])
    seg[18] = cwe(imm.get("statusReason"), ce_width)
    status = str(imm.get("status") or "")
    seg[20] = IMMUNIZATION_STATUS.get(status, "")
    seg[21] = "D" if status == "entered-in-error" else "A"
    return seg


def rxr(imm: Resource, ce_width: int) -> Seg | None:
    """RXR (route and site) from Immunization, when it has a route or a site."""
    route = cwe(imm.get("route"), ce_width)
    site = cwe(imm.get("site"), ce_width)
    if not route and not site:
        return None
    seg = Seg("RXR")
    seg[1] = route or NULL
    seg[2] = site or None
    return seg


# ------------------------------------------------------------------------------------------ scheduling
APPOINTMENT_STATUS: dict[str, str] = {
    "proposed": "Pending",
    "pending": "Pending",
    "booked": "Booked",
    "arrived": "Started",
    "fulfilled": "Complete",
    "cancelled": "Cancelled",
    "noshow": "Noshow",
    "entered-in-error": "Deleted",
    "checked-in": "Started",
    "waitlist": "Waitlist",
}


def sch(appt: Resource, ctx: Context, ce_width: int, filler_contact: Rep) -> Seg:
    """SCH from Appointment (IG SCH[Appointment], reversed)."""
    seg = Seg("SCH")
    placer, filler = order_identifiers(appt)
    seg[1] = ei(placer) if placer else None
    seg[2] = ei(filler) if filler else None
    reason = first(appt.get("reasonCode"))
    appt_type = appt.get("appointmentType")
    seg[6] = cwe(reason or appt_type or first(appt.get("serviceType")), ce_width) or NULL
    seg[7] = cwe(reason, ce_width) if reason else None
    seg[8] = cwe(appt_type, ce_width) if appt_type else None
    if appt.get("minutesDuration") is not None:
        seg[9] = number(appt["minutesDuration"])
        seg[10] = ["min", "minutes", "UCUM"]
    start = dtm(appt.get("start"))
    end = dtm(appt.get("end"))
    if start or end:
        seg[11] = ["", "", "", start, end]
    seg[16] = Reps([filler_contact]) if filler_contact else NULL
    seg[20] = Reps([filler_contact]) if filler_contact else NULL
    seg[25] = [APPOINTMENT_STATUS.get(str(appt.get("status") or ""), "")]
    return seg


def appointment_tq1(appt: Resource) -> Seg | None:
    """TQ1 with the appointment's start and end."""
    start = dtm(appt.get("start"))
    end = dtm(appt.get("end"))
    if not start and not end:
        return None
    seg = Seg("TQ1")
    seg[1] = "1"
    seg[7] = start
    seg[8] = end
    return seg


def ais(set_id: int, concept: Any, ce_width: int, start: str = "") -> Seg:
    """AIS (service) with its universal service identifier."""
    seg = Seg("AIS")
    seg[1] = str(set_id)
    seg[3] = cwe(concept, ce_width) or NULL
    seg[4] = start
    return seg


def aip(set_id: int, xcn: Rep, role: Any, ce_width: int, required_role: bool) -> Seg:
    """AIP (personnel resource)."""
    seg = Seg("AIP")
    seg[1] = str(set_id)
    seg[3] = Reps([xcn]) if xcn else None
    seg[4] = cwe(role, ce_width) or (NULL if required_role else None)
    return seg


def ail(set_id: int, name: str, role: Any, ce_width: int, required_role: bool) -> Seg:
    """AIL (location resource)."""
    seg = Seg("AIL")
    seg[1] = str(set_id)
    seg[3] = [name] if name else None
    seg[4] = cwe(role, ce_width) or (NULL if required_role else None)
    return seg


__all__ = [
    "Context",
    "ail",
    "aip",
    "ais",
    "appointment_tq1",
    "in1",
    "nk1",
    "nte",
    "obr",
    "obx",
    "orc",
    "pid",
    "practitioner_xcn",
    "pv1",
    "pv2",
    "rxa",
    "rxr",
    "sch",
    "spm",
    "tq1",
]
