"""The ``dicom-to-fhir`` transformer and the ``dicom-metadata`` validator as plugins."""

from __future__ import annotations

import io
import json
import logging
from importlib.metadata import entry_points
from types import ModuleType

import orjson
import pytest

from pyheart.broker.contracts import Format, Header, Message, Severity
from pyheart.broker.errors import ParseError, PluginConfigError, TransformError
from pyheart.broker.logs import configure_logging
from pyheart.transformers.dicom_fhir import DicomStudyAggregator, DicomToFhir
from pyheart.validators.dicom import DicomMetadataValidator

CANARY = "Zqxcanary5521"


def error_texts(exc: BaseException) -> str:
    """The text of an exception and of everything chained to it."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts.append(repr(seen) + str(seen))
        seen = seen.__cause__ or seen.__context__
    return " ".join(parts)


# ------------------------------------------------------------------------------------------ transformer
def test_transform_gives_a_fhir_bundle_message(dx: ModuleType) -> None:
    """A Part 10 message becomes FHIR JSON with content type, message type and the study as key."""
    msg = Message(dx.testfile("CT_small.dcm").read_bytes(), Format.DICOM, {Header.MESSAGE_ID: "m1"})
    out = DicomToFhir().transform(msg)
    bundle = orjson.loads(out.payload)
    dx.validate_bundle(bundle)
    (study,) = dx.resources(bundle, "ImagingStudy")
    assert (out.format, out.header(Header.CONTENT_TYPE), out.header(Header.MESSAGE_ID), out.key) == (
        Format.FHIR_JSON,
        Format.FHIR_JSON,
        "m1",
        study["id"].encode(),
    )


def test_transform_accepts_dicom_json(dx: ModuleType) -> None:
    """An application/dicom+json message converts too."""
    payload = json.dumps([dx.dataset().to_json_dict()]).encode()
    out = DicomToFhir().transform(Message(payload, Format.DICOM_JSON))
    assert len(dx.resources(orjson.loads(out.payload), "ImagingStudy")) == 1


def test_transform_rejects_other_formats() -> None:
    """A message of another content type is a TransformError naming the header."""
    with pytest.raises(TransformError) as info:
        DicomToFhir().transform(Message(b"{}", Format.FHIR_JSON))
    assert info.value.locations == ["content-type"]


def test_transform_does_not_mutate_the_input(dx: ModuleType) -> None:
    """The input message keeps payload, format and headers."""
    msg = Message(dx.part10(dx.dataset()), Format.DICOM, {Header.MESSAGE_ID: "m1"})
    before = (msg.payload, msg.format, dict(msg.headers))
    DicomToFhir().transform(msg)
    assert (msg.payload, msg.format, dict(msg.headers)) == before


def test_plugin_config_reaches_the_bundle(dx: ModuleType) -> None:
    """The plugin's config (DICOMweb base) is applied."""
    plugin = DicomToFhir({"dicomweb_base": "https://pacs.example.org/wado"})
    bundle = orjson.loads(plugin.transform(Message(dx.part10(dx.dataset()), Format.DICOM)).payload)
    assert len(dx.resources(bundle, "Endpoint")) == 1


@pytest.mark.parametrize("plugin_class", [DicomToFhir, DicomStudyAggregator])
def test_unknown_config_key_is_rejected(dx: ModuleType, plugin_class: type[DicomToFhir]) -> None:
    """A config key the schema does not declare is a PluginConfigError naming it."""
    plugin = plugin_class({"dicomweb": "x"})
    with pytest.raises(PluginConfigError, match="dicomweb: unknown key"):
        plugin.transform(Message(dx.part10(dx.dataset()), Format.DICOM))


def test_bad_dicomweb_base_is_rejected(dx: ModuleType) -> None:
    """``dicomweb_base`` must be an http(s) URL."""
    with pytest.raises(PluginConfigError, match="dicomweb_base: must match the pattern"):
        DicomToFhir({"dicomweb_base": "ftp://x"}).transform(Message(dx.part10(dx.dataset()), Format.DICOM))


def test_canary_never_reaches_errors_logs_or_headers(dx: ModuleType) -> None:
    """A PatientID canary in a broken instance appears in no error text, log line or header."""
    stream = io.StringIO()
    configure_logging(logging.DEBUG, stream)
    bad = Message(dx.part10(dx.dataset(PatientID=CANARY, StudyInstanceUID="1.02.3")), Format.DICOM)
    with pytest.raises(TransformError) as info:
        DicomToFhir().transform(bad)
    good = DicomToFhir().transform(Message(dx.part10(dx.dataset(PatientID=CANARY)), Format.DICOM))
    assert CANARY not in error_texts(info.value) + stream.getvalue() + json.dumps(dict(good.headers))


def test_canary_in_unreadable_bytes_never_reaches_the_error() -> None:
    """Garbage bytes around a canary give an error text without it."""
    with pytest.raises(ParseError) as info:
        DicomToFhir().transform(Message(b"DICM" + CANARY.encode() * 10, Format.DICOM))
    assert CANARY not in error_texts(info.value)


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("dicom-to-fhir", DicomToFhir),
        ("dicom-study-aggregator", DicomStudyAggregator),
        ("dicom-metadata", DicomMetadataValidator),
    ],
)
def test_registered_as_entry_points(name: str, target: type) -> None:
    """Each plugin is a ``pyheart.plugins`` entry point loading its class."""
    (ep,) = [e for e in entry_points(group="pyheart.plugins") if e.name == name]
    assert ep.load() is target


# ------------------------------------------------------------------------------------------ validator
def report_for(payload: bytes, fmt: str = Format.DICOM, **config: str) -> list[tuple[str, str, str]]:
    """(severity, code, location) of each issue the validator reports."""
    report = DicomMetadataValidator(dict(config)).validate(Message(payload, fmt))
    return [(i.severity.value, i.code, i.location) for i in report.issues]


def test_complete_instance_has_no_errors(dx: ModuleType) -> None:
    """CT_small.dcm has every Type 1 attribute and valid UIDs."""
    report = DicomMetadataValidator().validate(
        Message(dx.testfile("CT_small.dcm").read_bytes(), Format.DICOM)
    )
    assert report.ok


def test_missing_type1_attribute_is_an_error(dx: ModuleType) -> None:
    """A missing SeriesInstanceUID is an error at its keyword and tag."""
    issues = report_for(dx.part10(dx.dataset(SeriesInstanceUID=None)))
    assert ("error", "dicom-missing-type1", "SeriesInstanceUID (0020,000E)") in issues


def test_missing_type2_attribute_is_a_warning_by_default(dx: ModuleType) -> None:
    """A missing AccessionNumber is a warning; the report stays ok."""
    issues = report_for(dx.part10(dx.dataset()))
    assert ("warning", "dicom-missing-type2", "AccessionNumber (0008,0050)") in issues


def test_type2_severity_is_configurable(dx: ModuleType) -> None:
    """``type2_severity: error`` makes a missing Type 2 attribute an error."""
    issues = report_for(dx.part10(dx.dataset()), type2_severity="error")
    assert ("error", "dicom-missing-type2", "AccessionNumber (0008,0050)") in issues


@pytest.mark.parametrize(
    ("uid", "code"),
    [
        ("1.02.3", "dicom-invalid-uid"),
        ("1.2.abc", "dicom-invalid-uid"),
        ("1." + "2" * 70, "dicom-uid-too-long"),
    ],
)
def test_uid_syntax_is_checked(dx: ModuleType, uid: str, code: str) -> None:
    """Leading zeros, non-digits and UIDs over 64 characters are errors."""
    issues = report_for(dx.part10(dx.dataset(study=uid)))
    assert ("error", code, "StudyInstanceUID (0020,000D)") in issues


def test_bad_date_and_sex_are_warnings(dx: ModuleType) -> None:
    """A malformed StudyDate and an unknown PatientSex are warnings."""
    issues = report_for(dx.part10(dx.dataset(StudyDate="2024-01-02", PatientSex="X")))
    assert [i for i in issues if i[1] in ("dicom-invalid-date", "dicom-invalid-code")] == [
        ("warning", "dicom-invalid-date", "StudyDate (0008,0020)"),
        ("warning", "dicom-invalid-code", "PatientSex (0010,0040)"),
    ]


def test_file_meta_uid_mismatch_is_an_error(dx: ModuleType) -> None:
    """MediaStorageSOPInstanceUID must equal SOPInstanceUID (badVR.dcm differs)."""
    issues = report_for(dx.testfile("badVR.dcm").read_bytes())
    assert ("error", "dicom-meta-mismatch", "MediaStorageSOPInstanceUID (0002,0003)") in issues


def test_unreadable_payload_is_one_fatal_rejecting_issue() -> None:
    """Bytes that are not DICOM give a fatal issue and an AR acknowledgment."""
    report = DicomMetadataValidator().validate(Message(b"\x00" * 64, Format.DICOM))
    assert ([(i.severity, i.code) for i in report.issues], report.ack_code()) == (
        [(Severity.FATAL, "dicom-unreadable")],
        "AR",
    )


def test_dicom_json_array_locations_are_indexed(dx: ModuleType) -> None:
    """Each dataset of a DICOM JSON array is checked; locations name its index."""
    items = [dx.dataset().to_json_dict(), dx.dataset(SOPInstanceUID=None).to_json_dict()]
    issues = report_for(json.dumps(items).encode(), Format.DICOM_JSON)
    assert ("error", "dicom-missing-type1", "[1] SOPInstanceUID (0008,0018)") in issues


def test_report_maps_to_an_operation_outcome(dx: ModuleType) -> None:
    """The report is an OperationOutcome with the location of each issue."""
    report = DicomMetadataValidator().validate(Message(dx.part10(dx.dataset(Modality=None)), Format.DICOM))
    outcome = report.to_operation_outcome()
    assert {"severity": "error", "location": ["Modality (0008,0060)"]}.items() <= next(
        i for i in outcome["issue"] if i["severity"] == "error"
    ).items()


def test_other_formats_pass_untouched() -> None:
    """A message the validator does not accept gets an empty report."""
    assert DicomMetadataValidator().validate(Message(b"MSH|", Format.HL7V2)).issues == ()


def test_validator_reports_never_quote_values(dx: ModuleType) -> None:
    """Issue texts and locations hold no attribute value."""
    ds = dx.dataset(PatientID=CANARY, study="1.02." + "9" * 5, StudyDate=CANARY, PatientSex=CANARY[:16])
    report = DicomMetadataValidator().validate(Message(dx.part10(ds), Format.DICOM))
    assert CANARY[:16] not in json.dumps(report.to_operation_outcome())


def test_is_part10_tells_dicom_files_from_other_input(dx: ModuleType) -> None:
    """is_part10 (for the CLI's format sniffing) recognises Part 10 bytes only."""
    from pyheart.transformers.dicom_fhir import is_part10

    assert [
        is_part10(dx.testfile("CT_small.dcm").read_bytes()),
        is_part10(b"MSH|^~\\&|"),
        is_part10(b"{}"),
    ] == [
        True,
        False,
        False,
    ]
