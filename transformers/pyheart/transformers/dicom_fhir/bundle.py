"""DICOM instance summaries -> a FHIR R4 transaction Bundle (ImagingStudy + Patient [+ Endpoint]).

* ImagingStudy: id from StudyInstanceUID (``identifier_id("ImagingStudy", "urn:dicom:uid",
  "urn:oid:<uid>")``), PUT conditional on that identifier: an upsert that instances arriving in
  separate messages converge on (the aggregator emits the union of what it has seen of a study).
* Patient: matched by identifier (PatientID + issuer, with the HL7v2 -> FHIR transformer's system
  rules, so an ADT and a study give one id). By default a conditional create (``ifNoneExist``): the
  richer demographics of an ADT feed are not overwritten by the modality's; ``upsert`` PUTs.
* Endpoint: the DICOMweb (WADO-RS) base, when configured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

from pyheart.transformers.dicom_fhir.model import DEFAULT_SYSTEM_BASE, Code, Instance, patient_system
from pyheart.transformers.fhir_ids import identifier_id, resource_id

DICOM_UID_SYSTEM = "urn:dicom:uid"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SCT = "http://snomed.info/sct"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

#: DICOM coding scheme designators -> FHIR code systems.
SCHEMES: dict[str, str] = {
    "SCT": SCT,
    "SRT": "http://snomed.info/srt",
    "SNM3": "http://snomed.info/srt",
    "LN": "http://loinc.org",
    "DCM": DCM,
    "UCUM": "http://unitsofmeasure.org",
    "RADLEX": "http://radlex.org",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPT4": "http://www.ama-assn.org/go/cpt",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "I10P": "http://www.cms.gov/Medicare/Coding/ICD10",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
}

#: BodyPartExamined (PS3.16 Annex L, CID 4031) -> SNOMED CT, for the common values.
BODY_PARTS: dict[str, tuple[str, str]] = {
    "ABDOMEN": ("818981001", "Abdomen"),
    "BRAIN": ("12738006", "Brain"),
    "BREAST": ("76752008", "Breast"),
    "CHEST": ("51185008", "Chest"),
    "HEAD": ("69536005", "Head"),
    "NECK": ("45048000", "Neck"),
    "PELVIS": ("816092008", "Pelvis"),
    "KNEE": ("72696002", "Knee"),
    "SHOULDER": ("16982005", "Shoulder"),
    "SPINE": ("421060004", "Spine"),
    "CSPINE": ("122494005", "Cervical spine"),
    "TSPINE": ("122495006", "Thoracic spine"),
    "LSPINE": ("122496007", "Lumbar spine"),
    "HAND": ("85562004", "Hand"),
    "FOOT": ("56459004", "Foot"),
    "HIP": ("29836001", "Hip"),
    "HEART": ("80891009", "Heart"),
    "LIVER": ("10200004", "Liver"),
    "KIDNEY": ("64033007", "Kidney"),
    "SKULL": ("89546000", "Skull"),
    "EXTREMITY": ("66019005", "Extremity"),
    "WHOLEBODY": ("38266002", "Entire body"),
}

LATERALITY: dict[str, tuple[str, str]] = {
    "R": ("24028007", "Right"),
    "L": ("7771000", "Left"),
    "B": ("51440002", "Right and left"),
}

SEX: dict[str, str] = {"M": "male", "F": "female", "O": "other"}

_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TM = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")
_TZ = re.compile(r"^([+-])(\d{2})(\d{2})$")


@dataclass(frozen=True)
class BundleSettings:
    """How the Bundle is built (the plugins' validated config)."""

    system_base: str = DEFAULT_SYSTEM_BASE
    default_issuer: str = ""
    dicomweb_base: str = ""
    default_utc_offset: str | None = "+00:00"
    patient_mode: str = "create-if-missing"


# ------------------------------------------------------------------------------------------ values
def fhir_date(da: str) -> str:
    """DICOM DA (``YYYYMMDD``, or the old ``YYYY.MM.DD``) as a FHIR date; '' when invalid."""
    m = _DA.match(da.replace(".", "").strip())
    if m is None:
        return ""
    try:
        date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return ""
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"


def fhir_datetime(da: str, tm: str, tz: str, default_offset: str | None) -> str:
    """DA + TM (+ TimezoneOffsetFromUTC) as a FHIR dateTime.

    FHIR requires a zone on any time: without TimezoneOffsetFromUTC the configured default offset
    is used, and with none configured only the date is given.
    """
    day = fhir_date(da)
    if not day:
        return ""
    m = _TM.match(tm.replace(":", "").strip())
    zone = ""
    tzm = _TZ.match(tz.strip())
    if tzm and (
        int(tzm.group(2)) > 14 or int(tzm.group(3)) > 59 or (tzm.group(2) == "14" and tzm.group(3) != "00")
    ):
        tzm = None  # no clock has that offset (FHIR allows -14:00..+14:00): as if none were given
    if tzm:
        zone = f"{tzm.group(1)}{tzm.group(2)}:{tzm.group(3)}"
    elif default_offset:
        zone = default_offset
    if m is None or not zone:
        return day
    hh, mm, ss, frac = m.group(1), m.group(2) or "00", m.group(3) or "00", m.group(4)
    if int(hh) > 23 or int(mm) > 59 or int(ss) > 60:
        return day
    ss = "59" if ss == "60" else ss  # FHIR time has no leap second
    return f"{day}T{hh}:{mm}:{ss}{'.' + frac if frac else ''}{zone}"


def unsigned_int(value: Any) -> int | None:
    """An IS value (series or instance number) as a FHIR unsignedInt: 0..2^31-1, else None."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= 2**31 - 1 else None


def coding(code: Code, system_base: str) -> dict[str, str]:
    """A DICOM code as a FHIR Coding."""
    out: dict[str, str] = {}
    scheme = code.scheme.upper()
    system = SCHEMES.get(scheme)
    if system is None and scheme:
        system = system_base + quote(code.scheme, safe="")
    if system:
        out["system"] = system
    if code.code:
        out["code"] = code.code
    if code.meaning:
        out["display"] = code.meaning
    return out


def human_name(parts: tuple[str, ...]) -> dict[str, Any]:
    """PN component group (family, given, middle, prefix, suffix) as a HumanName."""
    family, given, middle, prefix, suffix = (parts + ("",) * 5)[:5]
    name: dict[str, Any] = {}
    if family:
        name["family"] = family
    names = [g for g in (*given.split(" "), *middle.split(" ")) if g]
    if names:
        name["given"] = names
    if prefix:
        name["prefix"] = [prefix]
    if suffix:
        name["suffix"] = [suffix]
    return name


def display_name(pn: str) -> str:
    """A DICOM PN as display text: ``Family^Given^Middle^Prefix^Suffix`` -> ``Prefix Given Middle Family Suffix``."""
    group = pn.split("=")[0]
    family, given, middle, prefix, suffix = ([p.strip() for p in group.split("^")] + [""] * 5)[:5]
    return " ".join(p for p in (prefix, given, middle, family, suffix) if p)


def _first(instances: Iterable[Instance], attr: str) -> Any:
    """The first valued ``attr`` across instances (study-level attributes repeat in each)."""
    for inst in instances:
        value = getattr(inst, attr)
        if value or value == 0:
            return value
    return None


# ------------------------------------------------------------------------------------------ resources
def study_id(study_uid: str) -> str:
    """The deterministic ImagingStudy id of a StudyInstanceUID."""
    return identifier_id("ImagingStudy", DICOM_UID_SYSTEM, f"urn:oid:{study_uid}")


def _patient_entry(insts: list[Instance], s: BundleSettings) -> tuple[dict[str, Any], str]:
    with_id = [i for i in insts if i.patient_id]
    source = with_id[0] if with_id else insts[0]
    patient: dict[str, Any] = {"resourceType": "Patient"}
    request: dict[str, Any]
    if with_id:
        system = patient_system(source, s.system_base, s.default_issuer)
        pid = identifier_id("Patient", system, source.patient_id)
        ident: dict[str, Any] = {
            "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
            "value": source.patient_id,
        }
        if system:
            ident["system"] = system
        patient["identifier"] = [ident]
        token = (quote(system, safe=":/.") + "|" if system else "") + quote(source.patient_id, safe="")
        if s.patient_mode == "upsert":
            request = {"method": "PUT", "url": f"Patient?identifier={token}"}
        else:
            request = {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={token}"}
    else:
        # No PatientID: one placeholder patient per study (deterministic, so re-sends converge).
        pid = resource_id("Patient", DICOM_UID_SYSTEM, f"urn:oid:{source.study_uid}")
        request = {"method": "PUT", "url": f"Patient/{pid}"}
    patient["id"] = pid
    names = _first(insts, "patient_names")
    if names:
        patient["name"] = [n for n in (human_name(p) for p in names) if n] or [{"text": "unknown"}]
    gender = SEX.get(_first(insts, "sex"))
    if gender:
        patient["gender"] = gender
    birth = fhir_date(_first(insts, "birth_date") or "")
    if birth:
        patient["birthDate"] = birth
    return {"fullUrl": f"urn:uuid:{pid}", "resource": patient, "request": request}, pid


def _endpoint_entry(s: BundleSettings) -> tuple[dict[str, Any], str]:
    eid = resource_id("Endpoint", s.dicomweb_base)
    endpoint = {
        "resourceType": "Endpoint",
        "id": eid,
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "dicom-wado-rs",
        },
        "payloadType": [{"text": "DICOM WADO-RS"}],
        "payloadMimeType": ["application/dicom"],
        "address": s.dicomweb_base,
    }
    return {
        "fullUrl": f"urn:uuid:{eid}",
        "resource": endpoint,
        "request": {"method": "PUT", "url": f"Endpoint/{eid}"},
    }, eid


def _series(insts: list[Instance], s: BundleSettings, endpoint_ref: dict[str, str] | None) -> dict[str, Any]:
    head = insts[0]
    modality = _first(insts, "modality") or "OT"
    series: dict[str, Any] = {"uid": head.series_uid}
    number = unsigned_int(_first(insts, "series_number"))
    if number is not None:
        series["number"] = number
    series["modality"] = {"system": DCM, "code": modality}
    description = _first(insts, "series_description")
    if description:
        series["description"] = description
    by_uid: dict[str, Instance] = {}
    for inst in insts:
        by_uid[inst.sop_uid] = inst
    series["numberOfInstances"] = len(by_uid)
    if endpoint_ref is not None:
        series["endpoint"] = [endpoint_ref]
    anatomic = _first(insts, "anatomic_codes")
    body_part = _first(insts, "body_part")
    if anatomic:
        series["bodySite"] = coding(anatomic[0], s.system_base)
    elif body_part:
        known = BODY_PARTS.get(body_part.upper().replace(" ", ""))
        series["bodySite"] = (
            {"system": SCT, "code": known[0], "display": known[1]} if known else {"display": body_part}
        )
    laterality = LATERALITY.get(_first(insts, "laterality"))
    if laterality:
        series["laterality"] = {"system": SCT, "code": laterality[0], "display": laterality[1]}
    started = fhir_datetime(
        _first(insts, "series_date") or "",
        _first(insts, "series_time") or "",
        head.tz_offset,
        s.default_utc_offset,
    )
    if started:
        series["started"] = started
    instances = []
    ordered = sorted(
        by_uid.values(), key=lambda i: (i.instance_number is None, i.instance_number or 0, i.sop_uid)
    )
    for inst in ordered:
        item: dict[str, Any] = {
            "uid": inst.sop_uid,
            "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{inst.sop_class_uid}"},
        }
        instance_number = unsigned_int(inst.instance_number)
        if instance_number is not None:
            item["number"] = instance_number
        instances.append(item)
    series["instance"] = instances
    return series


def imaging_study(
    insts: list[Instance], patient_ref: dict[str, str], s: BundleSettings, endpoint_ref: dict[str, str] | None
) -> dict[str, Any]:
    """The ImagingStudy of the instances of one study."""
    head = insts[0]
    sid = study_id(head.study_uid)
    study: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": sid,
        "identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{head.study_uid}"}],
        "status": "available",
    }
    accession = _first(insts, "accession")
    if accession:
        acsn: dict[str, Any] = {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": accession}
        issuer = _first(insts, "accession_issuer")
        if issuer:
            acsn["system"] = issuer
        study["identifier"].append(acsn)
    by_series: dict[str, list[Instance]] = {}
    for inst in insts:
        by_series.setdefault(inst.series_uid, []).append(inst)
    series = [_series(group, s, endpoint_ref) for group in by_series.values()]
    series.sort(key=lambda x: (x.get("number") is None, x.get("number") or 0, x["uid"]))
    modalities: list[str] = []
    for item in series:
        code = item["modality"]["code"]
        if code not in modalities:
            modalities.append(code)
    study["modality"] = [{"system": DCM, "code": m} for m in modalities]
    study["subject"] = patient_ref
    started = fhir_datetime(
        _first(insts, "study_date") or "",
        _first(insts, "study_time") or "",
        head.tz_offset,
        s.default_utc_offset,
    )
    if started:
        study["started"] = started
    if accession:
        study["basedOn"] = [{"type": "ServiceRequest", "identifier": study["identifier"][1]}]
    referrer = _first(insts, "referrer")
    if referrer and display_name(referrer):
        study["referrer"] = {"display": display_name(referrer)}
    if endpoint_ref is not None:
        study["endpoint"] = [endpoint_ref]
    study["numberOfSeries"] = len(series)
    study["numberOfInstances"] = sum(x["numberOfInstances"] for x in series)
    codes = _first(insts, "procedure_codes")
    if codes:
        study["procedureCode"] = [{"coding": [coding(c, s.system_base) for c in codes]}]
    description = _first(insts, "study_description")
    if description:
        study["description"] = description
    study["series"] = series
    return study


def build_bundle(instances: list[Instance], settings: BundleSettings | None = None) -> dict[str, Any]:
    """A transaction Bundle for ``instances`` (one ImagingStudy per study, its Patient, the Endpoint)."""
    s = settings or BundleSettings()
    by_study: dict[str, list[Instance]] = {}
    for inst in instances:
        by_study.setdefault(inst.study_uid, []).append(inst)
    entries: list[dict[str, Any]] = []
    endpoint_ref = None
    if s.dicomweb_base:
        entry, eid = _endpoint_entry(s)
        entries.append(entry)
        endpoint_ref = {"reference": f"urn:uuid:{eid}"}
    patients: set[str] = set()
    for study_uid, insts in by_study.items():
        patient_entry, pid = _patient_entry(insts, s)
        if pid not in patients:
            patients.add(pid)
            entries.append(patient_entry)
        study = imaging_study(insts, {"reference": f"urn:uuid:{pid}"}, s, endpoint_ref)
        entries.append(
            {
                "fullUrl": f"urn:uuid:{study['id']}",
                "resource": study,
                "request": {
                    "method": "PUT",
                    "url": f"ImagingStudy?identifier={DICOM_UID_SYSTEM}|urn:oid:{study_uid}",
                },
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


__all__ = [
    "DICOM_UID_SYSTEM",
    "BundleSettings",
    "build_bundle",
    "display_name",
    "fhir_date",
    "fhir_datetime",
    "imaging_study",
    "study_id",
]
