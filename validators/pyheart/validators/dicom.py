"""``dicom-metadata``: required attributes per IOD level and UID syntax of DICOM instances.

Checks each instance of a Part 10 payload or a DICOM JSON (PS3.18 F.2) payload against the
attributes every composite IOD needs at the patient, study, series and instance levels (PS3.3
C.7.1.1, C.7.2.1, C.7.3.1, C.12.1): Type 1 attributes must be present and valued (error), Type 2
attributes must be present (severity configurable, ``warning`` by default since many archives
drop empty ones). UIDs must follow PS3.5 9.1 (digits and dots, no leading zeros, at most 64
characters); dates, times, sex and modality are checked for their value representation.

Issue locations are ``Keyword (gggg,eeee)`` (prefixed ``[i]`` for the i-th dataset of a JSON
array); texts never quote values.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, ClassVar

from pydicom.dataset import Dataset

from pyheart.broker.contracts import Format, Issue, Message, Severity, ValidationReport
from pyheart.broker.errors import ParseError
from pyheart.validators._base import BaseValidator

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_DA = re.compile(r"^\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")
_TM = re.compile(r"^([01]\d|2[0-3])([0-5]\d)?([0-5]\d|60)?(\.\d{1,6})?$")
_CS = re.compile(r"^[A-Z0-9_ ]{0,16}$")

#: (level, keyword, tag, type) of the attributes checked, in IOD order.
ATTRIBUTES: tuple[tuple[str, str, str, int], ...] = (
    ("patient", "PatientName", "(0010,0010)", 2),
    ("patient", "PatientID", "(0010,0020)", 2),
    ("patient", "PatientBirthDate", "(0010,0030)", 2),
    ("patient", "PatientSex", "(0010,0040)", 2),
    ("study", "StudyInstanceUID", "(0020,000D)", 1),
    ("study", "StudyDate", "(0008,0020)", 2),
    ("study", "StudyTime", "(0008,0030)", 2),
    ("study", "ReferringPhysicianName", "(0008,0090)", 2),
    ("study", "StudyID", "(0020,0010)", 2),
    ("study", "AccessionNumber", "(0008,0050)", 2),
    ("series", "Modality", "(0008,0060)", 1),
    ("series", "SeriesInstanceUID", "(0020,000E)", 1),
    ("series", "SeriesNumber", "(0020,0011)", 2),
    ("instance", "SOPClassUID", "(0008,0016)", 1),
    ("instance", "SOPInstanceUID", "(0008,0018)", 1),
    ("instance", "InstanceNumber", "(0020,0013)", 2),
)
UID_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("StudyInstanceUID", "(0020,000D)"),
    ("SeriesInstanceUID", "(0020,000E)"),
    ("SOPClassUID", "(0008,0016)"),
    ("SOPInstanceUID", "(0008,0018)"),
    ("FrameOfReferenceUID", "(0020,0052)"),
)
DATES: tuple[tuple[str, str], ...] = (
    ("PatientBirthDate", "(0010,0030)"),
    ("StudyDate", "(0008,0020)"),
    ("SeriesDate", "(0008,0021)"),
)
TIMES: tuple[tuple[str, str], ...] = (("StudyTime", "(0008,0030)"), ("SeriesTime", "(0008,0031)"))
SEXES = frozenset({"M", "F", "O"})


def _raw(ds: Dataset, keyword: str) -> tuple[bool, str | None]:
    """(present, text); text is None when the value cannot be converted."""
    if keyword not in ds:
        return False, ""
    try:
        value: Any = ds[keyword].value
    except Exception:
        return True, None
    if value is None:
        return True, ""
    if isinstance(value, bytes):
        return True, None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return True, "\\".join(str(v) for v in value)
    return True, str(value).strip().strip("\x00").strip()


def check_dataset(ds: Dataset, prefix: str = "", type2: Severity = Severity.WARNING) -> list[Issue]:
    """The issues of one dataset."""
    issues: list[Issue] = []

    def add(severity: Severity, code: str, keyword: str, tag: str, text: str, fhir_code: str) -> None:
        """Record one issue at ``keyword (tag)``."""
        issues.append(Issue(severity, code, f"{prefix}{keyword} {tag}", text, fhir_code))

    for level, keyword, tag, kind in ATTRIBUTES:
        present, text = _raw(ds, keyword)
        if not present:
            if kind == 1:
                add(
                    Severity.ERROR,
                    "dicom-missing-type1",
                    keyword,
                    tag,
                    f"required {level}-level attribute is missing",
                    "required",
                )
            else:
                add(
                    type2,
                    "dicom-missing-type2",
                    keyword,
                    tag,
                    f"{level}-level Type 2 attribute is missing",
                    "required",
                )
        elif text is None:
            add(
                Severity.ERROR,
                "dicom-invalid-value",
                keyword,
                tag,
                "value cannot be read for its VR",
                "value",
            )
        elif kind == 1 and not text:
            add(
                Severity.ERROR,
                "dicom-empty-type1",
                keyword,
                tag,
                f"required {level}-level attribute is empty",
                "required",
            )
    for keyword, tag in UID_ATTRIBUTES:
        present, text = _raw(ds, keyword)
        if not present or not text:
            continue
        if len(text) > 64:
            add(
                Severity.ERROR,
                "dicom-uid-too-long",
                keyword,
                tag,
                "UID is longer than 64 characters",
                "value",
            )
        elif not UID_RE.match(text):
            add(
                Severity.ERROR,
                "dicom-invalid-uid",
                keyword,
                tag,
                "UID is not dot-separated numbers without leading zeros",
                "value",
            )
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta and "SOPInstanceUID" in ds:
        _, media = _raw(meta, "MediaStorageSOPInstanceUID")
        _, sop = _raw(ds, "SOPInstanceUID")
        if media and sop and media != sop:
            add(
                Severity.ERROR,
                "dicom-meta-mismatch",
                "MediaStorageSOPInstanceUID",
                "(0002,0003)",
                "file meta and dataset SOP Instance UIDs differ",
                "value",
            )
    for keyword, tag in DATES:
        present, text = _raw(ds, keyword)
        if present and text and not _DA.match(text):
            add(Severity.WARNING, "dicom-invalid-date", keyword, tag, "not a DA value (YYYYMMDD)", "value")
    for keyword, tag in TIMES:
        present, text = _raw(ds, keyword)
        if present and text and not _TM.match(text):
            add(
                Severity.WARNING,
                "dicom-invalid-time",
                keyword,
                tag,
                "not a TM value (HHMMSS.FFFFFF)",
                "value",
            )
    present, text = _raw(ds, "PatientSex")
    if present and text and text not in SEXES:
        add(
            Severity.WARNING,
            "dicom-invalid-code",
            "PatientSex",
            "(0010,0040)",
            "not one of M, F, O",
            "code-invalid",
        )
    present, text = _raw(ds, "Modality")
    if present and text and not _CS.match(text):
        add(
            Severity.WARNING,
            "dicom-invalid-code",
            "Modality",
            "(0008,0060)",
            "not a CS value",
            "code-invalid",
        )
    return issues


class DicomMetadataValidator(BaseValidator):
    """Required attributes per IOD level, UID syntax and value representations of DICOM instances."""

    NAME: ClassVar[str] = "dicom-metadata"
    DESCRIPTION: ClassVar[str] = "DICOM metadata: required attributes per IOD level (Type 1/2) and UID syntax"
    accepts: ClassVar[tuple[str, ...]] = (Format.DICOM, Format.DICOM_JSON)
    CONFIG_SCHEMA: ClassVar[dict[str, Any]] = {
        "type2_severity": {
            "type": "string",
            "default": "warning",
            "enum": ["error", "warning", "information"],
            "description": "severity of a missing Type 2 attribute",
        },
    }

    def validate(self, message: Message) -> ValidationReport:
        """Check every instance of ``message``; unreadable payloads are one fatal issue."""
        from pyheart.transformers.dicom_fhir.model import read_json, read_part10

        settings = self.settings()
        type2 = Severity(settings["type2_severity"])
        if message.format not in self.accepts:
            return ValidationReport((), validator=self.NAME)
        with warnings.catch_warnings():
            # pydicom's warnings quote values; the issues below say the same without them.
            warnings.simplefilter("ignore")
            try:
                if message.format == Format.DICOM_JSON:
                    datasets = read_json(message.payload, "payload")
                else:
                    datasets = [read_part10(message.payload, "payload")]
            except ParseError as exc:
                issue = Issue(Severity.FATAL, exc.code, "payload", str(exc), "structure")
                return ValidationReport((issue,), validator=self.NAME, reject=True)
            issues: list[Issue] = []
            for i, ds in enumerate(datasets):
                prefix = f"[{i}] " if len(datasets) > 1 else ""
                issues.extend(check_dataset(ds, prefix, type2))
        return ValidationReport(tuple(issues), validator=self.NAME)


__all__ = ["ATTRIBUTES", "DicomMetadataValidator", "check_dataset"]
