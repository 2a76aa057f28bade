"""Reading DICOM instances (Part 10 or DICOM JSON) into small, immutable summaries.

Only the attributes the FHIR mapping needs are kept (patient, study, series and instance level),
so instances of a study can be buffered cheaply and compared across messages. Reading never loads
pixel data. Errors name the input and the attribute (keyword and tag), never a value.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pyheart.broker.errors import ParseError, TransformError

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_URI_UNSAFE = re.compile(r"[^A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]")

#: Local identifier systems: the same base the HL7v2 -> FHIR transformer uses for HD namespaces.
DEFAULT_SYSTEM_BASE = "urn:id:"


@dataclass(frozen=True)
class Code:
    """One coded entry of a DICOM code sequence (CodeValue, CodingSchemeDesignator, CodeMeaning)."""

    code: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class Instance:
    """What the FHIR mapping needs from one DICOM instance."""

    # patient
    patient_id: str
    issuer: str
    issuer_uid: str
    issuer_uid_type: str
    patient_names: tuple[tuple[str, ...], ...]  # (family, given, middle, prefix, suffix) per group
    birth_date: str
    sex: str
    # study
    study_uid: str
    study_date: str
    study_time: str
    tz_offset: str
    accession: str
    accession_issuer: str
    study_description: str
    study_id: str
    referrer: str
    procedure_codes: tuple[Code, ...]
    # series
    series_uid: str
    series_number: int | None
    modality: str
    series_description: str
    series_date: str
    series_time: str
    body_part: str
    anatomic_codes: tuple[Code, ...]
    laterality: str
    # instance
    sop_uid: str
    sop_class_uid: str
    instance_number: int | None


#: Value representations whose bytes are plain ASCII whatever the character set.
_ASCII_VRS = frozenset({"UI", "DA", "TM", "DT", "CS", "IS", "DS", "AS"})


@lru_cache(maxsize=512)
def _tag(keyword: str) -> int | None:
    return tag_for_keyword(keyword)


def _text(ds: Dataset, keyword: str) -> str:
    """The attribute as stripped text ('' when absent, empty or undecodable)."""
    tag = _tag(keyword)
    if tag is None or tag not in ds:
        return ""
    try:
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement) and raw.VR in _ASCII_VRS and isinstance(raw.value, bytes):
            # Plain ASCII values need no pydicom conversion (the costly part of reading).
            return raw.value.decode("ascii", "replace").strip(" \x00")
        value = ds[tag].value
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    return str(value).strip().strip("\x00").strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    text = _text(ds, keyword)
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _codes(ds: Dataset, keyword: str) -> tuple[Code, ...]:
    try:
        seq = ds.get(keyword)
    except Exception:
        return ()
    out = []
    for item in seq or ():
        if not isinstance(item, Dataset):
            continue
        code = _text(item, "CodeValue") or _text(item, "LongCodeValue") or _text(item, "URNCodeValue")
        if code or _text(item, "CodeMeaning"):
            out.append(Code(code, _text(item, "CodingSchemeDesignator"), _text(item, "CodeMeaning")))
    return tuple(out)


def _names(ds: Dataset) -> tuple[tuple[str, ...], ...]:
    """Each non-empty PN component group (alphabetic, ideographic, phonetic) as 5 name parts."""
    try:
        pn = ds.get("PatientName")
    except Exception:
        return ()
    if pn is None:
        return ()
    groups = []
    for group in (
        getattr(pn, "alphabetic", str(pn)),
        getattr(pn, "ideographic", ""),
        getattr(pn, "phonetic", ""),
    ):
        if not isinstance(group, str) or not group.strip():
            continue
        parts = tuple(([c.strip() for c in group.split("^")] + [""] * 5)[:5])
        if any(parts):
            groups.append(parts)
    return tuple(groups)


def _issuer(ds: Dataset) -> tuple[str, str, str]:
    uid = kind = ""
    try:
        qualifiers = ds.get("IssuerOfPatientIDQualifiersSequence")
    except Exception:
        qualifiers = None
    if qualifiers:
        item = qualifiers[0]
        uid = _text(item, "UniversalEntityID")
        kind = _text(item, "UniversalEntityIDType")
    return _text(ds, "IssuerOfPatientID"), uid, kind


def _accession_issuer(ds: Dataset) -> str:
    try:
        seq = ds.get("IssuerOfAccessionNumberSequence")
    except Exception:
        return ""
    if not seq:
        return ""
    item = seq[0]
    uid = _text(item, "UniversalEntityID")
    if uid and (_text(item, "UniversalEntityIDType") == "ISO" or _OID.match(uid)):
        return "urn:oid:" + uid
    return uid or _text(item, "LocalNamespaceEntityID")


REQUIRED = (
    ("StudyInstanceUID", "(0020,000D)"),
    ("SeriesInstanceUID", "(0020,000E)"),
    ("SOPInstanceUID", "(0008,0018)"),
    ("SOPClassUID", "(0008,0016)"),
)


def summarize(ds: Dataset, where: str = "instance") -> Instance:
    """The :class:`Instance` of a dataset; raises :class:`TransformError` naming a missing UID."""
    sop_uid = _text(ds, "SOPInstanceUID") or _text(ds, "MediaStorageSOPInstanceUID")
    values = {
        "StudyInstanceUID": _text(ds, "StudyInstanceUID"),
        "SeriesInstanceUID": _text(ds, "SeriesInstanceUID"),
    }
    values["SOPInstanceUID"] = sop_uid
    values["SOPClassUID"] = _text(ds, "SOPClassUID") or _text(ds, "MediaStorageSOPClassUID")
    for keyword, tag in REQUIRED:
        if not values[keyword]:
            raise TransformError(
                f"{where}: required attribute {keyword} {tag} is missing or empty",
                code="dicom-missing-attribute",
                locations=[f"{keyword} {tag}"],
            )
        if not UID_RE.match(values[keyword]) or len(values[keyword]) > 64:
            raise TransformError(
                f"{where}: {keyword} {tag} is not a valid UID",
                code="dicom-invalid-uid",
                locations=[f"{keyword} {tag}"],
            )
    issuer, issuer_uid, issuer_kind = _issuer(ds)
    laterality = _text(ds, "Laterality") or _text(ds, "ImageLaterality") or _text(ds, "FrameLaterality")
    return Instance(
        patient_id=_text(ds, "PatientID"),
        issuer=issuer,
        issuer_uid=issuer_uid,
        issuer_uid_type=issuer_kind,
        patient_names=_names(ds),
        birth_date=_text(ds, "PatientBirthDate"),
        sex=_text(ds, "PatientSex"),
        study_uid=values["StudyInstanceUID"],
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        tz_offset=_text(ds, "TimezoneOffsetFromUTC"),
        accession=_text(ds, "AccessionNumber"),
        accession_issuer=_accession_issuer(ds),
        study_description=_text(ds, "StudyDescription"),
        study_id=_text(ds, "StudyID"),
        referrer=_text(ds, "ReferringPhysicianName"),
        procedure_codes=_codes(ds, "ProcedureCodeSequence") or _codes(ds, "RequestedProcedureCodeSequence"),
        series_uid=values["SeriesInstanceUID"],
        series_number=_int(ds, "SeriesNumber"),
        modality=_text(ds, "Modality"),
        series_description=_text(ds, "SeriesDescription"),
        series_date=_text(ds, "SeriesDate"),
        series_time=_text(ds, "SeriesTime"),
        body_part=_text(ds, "BodyPartExamined"),
        anatomic_codes=_codes(ds, "AnatomicRegionSequence"),
        laterality=laterality[:1] if laterality in ("R", "L", "B", "U") else laterality,
        sop_uid=sop_uid,
        sop_class_uid=values["SOPClassUID"],
        instance_number=_int(ds, "InstanceNumber"),
    )


# ------------------------------------------------------------------------------------------ reading
def _no_bulk(_tag: str, _vr: str, _value: str) -> Any:
    # DICOM JSON may point at bulk data by URI: never fetch it, metadata is all we need.
    return None


#: The attributes :func:`summarize` reads: Part 10 parsing stops converting anything else.
SUMMARY_TAGS: tuple[str, ...] = (
    "SpecificCharacterSet",
    "PatientID",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "TimezoneOffsetFromUTC",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "StudyDescription",
    "StudyID",
    "ReferringPhysicianName",
    "ProcedureCodeSequence",
    "RequestedProcedureCodeSequence",
    "SeriesInstanceUID",
    "SeriesNumber",
    "Modality",
    "SeriesDescription",
    "SeriesDate",
    "SeriesTime",
    "BodyPartExamined",
    "AnatomicRegionSequence",
    "Laterality",
    "ImageLaterality",
    "FrameLaterality",
    "SOPInstanceUID",
    "SOPClassUID",
    "InstanceNumber",
)


def _dcmread(data: bytes, force: bool, tags: tuple[str, ...] | None) -> Dataset:
    return pydicom.dcmread(
        io.BytesIO(data), stop_before_pixels=True, force=force, specific_tags=list(tags) if tags else None
    )


def read_part10(data: bytes, where: str = "input", tags: tuple[str, ...] | None = None) -> Dataset:
    """A Part 10 file (or a raw dataset without preamble) without its pixel data.

    ``tags`` limits parsing to those attributes (and the file meta). Library errors are replaced
    by one value-free :class:`ParseError`, raised outside the handler so nothing is chained.
    """
    ds: Dataset | None = None
    problem = "DICOM file is truncated or corrupt"
    try:
        ds = _dcmread(data, False, tags)
    except InvalidDicomError:
        problem = "not a DICOM file"
    except Exception:  # noqa: S110 - any library failure becomes the one error below
        pass
    if ds is None and problem == "not a DICOM file":
        # No preamble / meta: a raw dataset is still acceptable when it parses into DICOM groups.
        try:
            forced = _dcmread(data, True, None)
            if any(tag.group in (0x0008, 0x0010, 0x0020) for tag in forced.keys()):  # noqa: SIM118
                ds = _dcmread(data, True, tags) if tags else forced
        except Exception:  # noqa: S110 - see above
            pass
    if ds is None:
        raise ParseError(f"{where}: {problem}", code="dicom-unreadable", locations=[where])
    return ds


def _json_doc(data: bytes | str) -> tuple[Any, int | None]:
    try:
        return orjson.loads(data), None
    except orjson.JSONDecodeError as exc:
        return None, exc.pos


def _from_json(item: Mapping[str, Any]) -> Dataset | None:
    try:
        return Dataset.from_json(dict(item), bulk_data_uri_handler=_no_bulk)
    except Exception:
        return None


def read_json(data: bytes | str | Any, where: str = "input") -> list[Dataset]:
    """DICOM JSON (PS3.18 F.2): one dataset object or an array of them."""
    if isinstance(data, bytes | str):
        doc, pos = _json_doc(data)
        if pos is not None:
            raise ParseError(
                f"{where}: not valid JSON (at character {pos})", code="dicom-json-invalid", locations=[where]
            )
    else:
        doc = data
    items = doc if isinstance(doc, list) else [doc]
    out = []
    for i, item in enumerate(items):
        loc = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise ParseError(
                f"{loc}: a DICOM JSON dataset must be an object", code="dicom-json-invalid", locations=[loc]
            )
        ds = _from_json(item)
        if ds is None:
            raise ParseError(
                f"{loc}: not a valid DICOM JSON dataset", code="dicom-json-invalid", locations=[loc]
            )
        out.append(ds)
    return out


def is_part10(data: bytes) -> bool:
    """True when ``data`` starts like a DICOM Part 10 file (128-byte preamble, then ``DICM``)."""
    return data[128:132] == b"DICM"


InputItem = bytes | str | Path | Dataset | Mapping[str, Any]


def read_any(item: InputItem, where: str) -> list[Dataset]:
    """One input item: Part 10 bytes, a path to a Part 10 or .json file, a Dataset or a JSON dataset."""
    if isinstance(item, Dataset):
        return [item]
    if isinstance(item, Mapping):
        return read_json(item, where)
    if isinstance(item, str | Path):
        path = Path(item)
        try:
            raw = path.read_bytes()
        except OSError:
            raise ParseError(
                f"{where}: file cannot be read", code="dicom-unreadable", locations=[where]
            ) from None
        item = raw
    data = bytes(item)
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        return read_json(data, where)
    return [read_part10(data, where, SUMMARY_TAGS)]


def read_instances(inputs: InputItem | Iterable[InputItem]) -> list[Instance]:
    """Summaries of every instance in ``inputs`` (one item or several)."""
    # pydicom warns about every non-conformant value it meets (and its warning texts quote the
    # values): those are the validator's business, not the converter's, and never reach the logs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_instances(inputs)


def _read_instances(inputs: InputItem | Iterable[InputItem]) -> list[Instance]:
    items: list[InputItem]
    if isinstance(inputs, bytes | bytearray | str | Path | Dataset | Mapping):
        items = [inputs]
    else:
        items = list(inputs)
    out = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        for j, ds in enumerate(read_any(item, where)):
            out.append(summarize(ds, where if j == 0 else f"{where}[{j}]"))
    return out


# ------------------------------------------------------------------------------------------ patient ids
def patient_system(
    instance: Instance, system_base: str = DEFAULT_SYSTEM_BASE, default_issuer: str = ""
) -> str:
    """The identifier system of the patient id, by the HL7v2 -> FHIR transformer's HD rules.

    IssuerOfPatientID is the HD namespace id (CX.4.1) and the qualifiers' universal entity id and
    type are HD.2 and HD.3: an ISO OID gives ``urn:oid:<oid>``, a UUID ``urn:uuid:<uuid>``, a URI
    itself; otherwise the namespace under ``system_base``. Without any issuer, ``default_issuer``
    (a namespace, like the sending facility of HL7 feeds) is used, else no system.
    """
    uid, kind = instance.issuer_uid, instance.issuer_uid_type.upper()
    ns = instance.issuer or default_issuer
    if uid:
        if kind == "ISO" or _OID.match(uid):
            return "urn:oid:" + uid
        if kind == "UUID":
            return "urn:uuid:" + uid.lower()
        if kind in ("URI", "URL") or uid.startswith(("http://", "https://", "urn:")):
            return _URI_UNSAFE.sub("_", uid)
        if not ns:
            return system_base + _URI_UNSAFE.sub("_", uid)
    if ns:
        if ns.startswith(("http://", "https://", "urn:")):
            return _URI_UNSAFE.sub("_", ns)
        return system_base + _URI_UNSAFE.sub("_", ns)
    return ""


__all__ = [
    "DEFAULT_SYSTEM_BASE",
    "UID_RE",
    "Code",
    "Instance",
    "is_part10",
    "patient_system",
    "read_any",
    "read_instances",
    "read_json",
    "read_part10",
    "summarize",
]
