"""DICOM -> FHIR R4: the transaction Bundle built from pydicom's test files and from datasets."""

from __future__ import annotations

import json
from collections import Counter
from types import ModuleType

import pytest

from pyheart.broker.errors import ParseError, TransformError
from pyheart.transformers.dicom_fhir import dicom_to_fhir
from pyheart.transformers.fhir_ids import identifier_id

#: pydicom / pydicom-data files of assorted modalities, transfer syntaxes and IODs.
FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "ExplVR_BigEnd.dcm",
    "rtstruct.dcm",
    "rtplan.dcm",
    "rtdose.dcm",
    "reportsi.dcm",
    "waveform_ecg.dcm",
    "liver.dcm",
    "emri_small.dcm",
    "SC_rgb.dcm",
    "JPEG2000.dcm",
    "US1_UNCI.dcm",
    "RG1_UNCI.dcm",
    "693_UNCI.dcm",
]
CHARSETS = [
    "chrH31.dcm",
    "chrX1.dcm",
    "chrRuss.dcm",
    "chrArab.dcm",
    "chrKoreanMulti.dcm",
    "chrGreek.dcm",
    "chrFren.dcm",
]


@pytest.mark.parametrize("name", FILES)
def test_test_files_give_valid_bundles(dx: ModuleType, name: str) -> None:
    """Each file converts to a Bundle that passes fhir.resources R4B validation."""
    bundle = dicom_to_fhir(dx.testfile(name))
    dx.validate_bundle(bundle)
    assert bundle["type"] == "transaction"


@pytest.mark.parametrize("name", FILES)
def test_study_carries_the_files_uids(dx: ModuleType, name: str) -> None:
    """ImagingStudy identifier, series uid, instance uid and SOP class are the file's."""
    ds = dx.read(dx.testfile(name))
    (study,) = dx.resources(dicom_to_fhir(dx.testfile(name)), "ImagingStudy")
    (series,) = study["series"]
    (instance,) = series["instance"]
    assert (
        study["identifier"][0]["value"],
        series["uid"],
        instance["uid"],
        instance["sopClass"]["code"],
    ) == (
        f"urn:oid:{ds.StudyInstanceUID}",
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        f"urn:oid:{ds.SOPClassUID}",
    )


def test_study_id_is_deterministic_from_the_study_uid(dx: ModuleType) -> None:
    """ImagingStudy.id is identifier_id over urn:dicom:uid and the study's urn:oid."""
    ds = dx.read(dx.testfile("CT_small.dcm"))
    (study,) = dx.resources(dicom_to_fhir(dx.testfile("CT_small.dcm")), "ImagingStudy")
    assert study["id"] == identifier_id("ImagingStudy", "urn:dicom:uid", f"urn:oid:{ds.StudyInstanceUID}")


def test_study_is_a_conditional_put_on_its_identifier(dx: ModuleType) -> None:
    """The ImagingStudy entry is PUT ImagingStudy?identifier=urn:dicom:uid|urn:oid:<uid>."""
    ds = dx.read(dx.testfile("CT_small.dcm"))
    (entry,) = dx.entries(dicom_to_fhir(dx.testfile("CT_small.dcm")), "ImagingStudy")
    assert entry["request"] == {
        "method": "PUT",
        "url": f"ImagingStudy?identifier=urn:dicom:uid|urn:oid:{ds.StudyInstanceUID}",
    }


def test_study_level_attributes(dx: ModuleType) -> None:
    """Modality, started (with the file's UTC offset), counts and description."""
    (study,) = dx.resources(dicom_to_fhir(dx.testfile("CT_small.dcm")), "ImagingStudy")
    ds = dx.read(dx.testfile("CT_small.dcm"))
    d, t, tz = ds.StudyDate, ds.StudyTime, ds.TimezoneOffsetFromUTC
    started = f"{d[:4]}-{d[4:6]}-{d[6:8]}T{t[:2]}:{t[2:4]}:{t[4:6]}{tz[:3]}:{tz[3:]}"
    assert (
        study["modality"],
        study["started"],
        study["numberOfSeries"],
        study["numberOfInstances"],
        study["description"],
    ) == (
        [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
        started,
        1,
        1,
        ds.StudyDescription,
    )


def test_patient_is_matched_by_identifier(dx: ModuleType) -> None:
    """Patient id from identifier_id over the PatientID; a conditional create on that identifier."""
    ds = dx.dataset(PatientID="PAT-9", IssuerOfPatientID="HOSP")
    (entry,) = dx.entries(dicom_to_fhir(ds), "Patient")
    assert (entry["resource"]["id"], entry["resource"]["identifier"][0]["system"], entry["request"]) == (
        identifier_id("Patient", "urn:id:HOSP", "PAT-9"),
        "urn:id:HOSP",
        {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:id:HOSP|PAT-9"},
    )


def test_patient_upsert_mode_puts(dx: ModuleType) -> None:
    """``patient_mode: upsert`` PUTs the Patient conditionally on its identifier."""
    ds = dx.dataset(PatientID="PAT-9", IssuerOfPatientID="HOSP")
    (entry,) = dx.entries(dicom_to_fhir(ds, {"patient_mode": "upsert"}), "Patient")
    assert entry["request"] == {"method": "PUT", "url": "Patient?identifier=urn:id:HOSP|PAT-9"}


def test_issuer_with_iso_qualifier_gives_an_oid_system(dx: ModuleType) -> None:
    """IssuerOfPatientIDQualifiers with an ISO universal id gives system urn:oid:<oid>."""
    from pydicom.dataset import Dataset

    qualifier = Dataset()
    qualifier.UniversalEntityID = "2.16.840.1.113883.19.5"
    qualifier.UniversalEntityIDType = "ISO"
    ds = dx.dataset(IssuerOfPatientID="HOSP", IssuerOfPatientIDQualifiersSequence=[qualifier])
    (patient,) = dx.resources(dicom_to_fhir(ds), "Patient")
    assert patient["identifier"][0]["system"] == "urn:oid:2.16.840.1.113883.19.5"


def test_patient_from_dicom_and_from_adt_share_one_id(dx: ModuleType) -> None:
    """PID-3 MRN^^^HOSP&OID&ISO (HL7v2 -> FHIR) and PatientID MRN + issuer HOSP/OID give one id."""
    from pydicom.dataset import Dataset

    from pyheart.transformers.hl7v2_fhir import convert

    adt = (
        "MSH|^~\\&|EHR|FAC|||20240101120000||ADT^A04^ADT_A01|1|P|2.5.1\r"
        "EVN|A04|20240101120000\r"
        "PID|1||MRN-42^^^HOSP&2.16.840.1.113883.19.5&ISO^MR||Testperson^Alex\r"
        "PV1|1|O\r"
    )
    (from_adt,) = [e for e in convert(adt)["entry"] if e["resource"]["resourceType"] == "Patient"]
    qualifier = Dataset()
    qualifier.UniversalEntityID = "2.16.840.1.113883.19.5"
    qualifier.UniversalEntityIDType = "ISO"
    ds = dx.dataset(
        PatientID="MRN-42", IssuerOfPatientID="HOSP", IssuerOfPatientIDQualifiersSequence=[qualifier]
    )
    (from_dicom,) = dx.entries(dicom_to_fhir(ds), "Patient")
    assert from_dicom["fullUrl"] == from_adt["fullUrl"]


def test_patient_with_namespace_only_issuer_matches_adt(dx: ModuleType) -> None:
    """PID-3 MRN^^^HOSP and PatientID MRN with IssuerOfPatientID HOSP give one id."""
    from pyheart.transformers.hl7v2_fhir import convert

    adt = (
        "MSH|^~\\&|EHR|FAC|||20240101120000||ADT^A04^ADT_A01|1|P|2.5.1\r"
        "EVN|A04|20240101120000\r"
        "PID|1||MRN-42^^^HOSP^MR||Testperson^Alex\r"
        "PV1|1|O\r"
    )
    (from_adt,) = [e for e in convert(adt)["entry"] if e["resource"]["resourceType"] == "Patient"]
    (from_dicom,) = dx.entries(
        dicom_to_fhir(dx.dataset(PatientID="MRN-42", IssuerOfPatientID="HOSP")), "Patient"
    )
    assert from_dicom["fullUrl"] == from_adt["fullUrl"]


def test_patient_demographics(dx: ModuleType) -> None:
    """Name parts, birth date and sex become HumanName, birthDate and gender."""
    ds = dx.dataset(PatientName="Testperson^Alex^Quinn^Dr", PatientBirthDate="19800203", PatientSex="F")
    (patient,) = dx.resources(dicom_to_fhir(ds), "Patient")
    assert (patient["name"], patient["birthDate"], patient["gender"]) == (
        [{"family": "Testperson", "given": ["Alex", "Quinn"], "prefix": ["Dr"]}],
        "1980-02-03",
        "female",
    )


def test_patient_without_patient_id_is_a_per_study_placeholder(dx: ModuleType) -> None:
    """No PatientID: a Patient PUT by an id derived from the study, so re-sends converge."""
    bundle = dicom_to_fhir(dx.dataset(PatientID=None))
    (entry,) = dx.entries(bundle, "Patient")
    dx.validate_bundle(bundle)
    assert (entry["request"]["method"], "identifier" in entry["resource"]) == ("PUT", False)


def test_subject_references_the_patient_entry(dx: ModuleType) -> None:
    """ImagingStudy.subject is the Patient entry's full URL."""
    bundle = dicom_to_fhir(dx.dataset())
    (patient,) = dx.entries(bundle, "Patient")
    (study,) = dx.resources(bundle, "ImagingStudy")
    assert study["subject"] == {"reference": patient["fullUrl"]}


def test_accession_referrer_procedure_body_site_and_laterality(dx: ModuleType) -> None:
    """Accession identifier and basedOn, referrer, procedure code, body site and laterality."""
    from pydicom.dataset import Dataset

    code = Dataset()
    code.CodeValue = "24627-2"
    code.CodingSchemeDesignator = "LN"
    code.CodeMeaning = "Chest CT"
    ds = dx.dataset(
        AccessionNumber="ACC-7",
        ReferringPhysicianName="Carer^Casey^^Dr",
        ProcedureCodeSequence=[code],
        BodyPartExamined="CHEST",
        Laterality="L",
    )
    (study,) = dx.resources(dicom_to_fhir(ds), "ImagingStudy")
    series = study["series"][0]
    assert (
        study["identifier"][1]["value"],
        study["basedOn"][0]["identifier"]["value"],
        study["referrer"],
        study["procedureCode"][0]["coding"][0],
        series["bodySite"]["code"],
        series["laterality"]["code"],
    ) == (
        "ACC-7",
        "ACC-7",
        {"display": "Dr Casey Carer"},
        {"system": "http://loinc.org", "code": "24627-2", "display": "Chest CT"},
        "51185008",
        "7771000",
    )


def test_dicomweb_endpoint_when_configured(dx: ModuleType) -> None:
    """``dicomweb_base`` adds a WADO-RS Endpoint referenced by the study and its series."""
    bundle = dicom_to_fhir(dx.dataset(), {"dicomweb_base": "https://pacs.example.org/dicom-web"})
    (endpoint,) = dx.entries(bundle, "Endpoint")
    (study,) = dx.resources(bundle, "ImagingStudy")
    dx.validate_bundle(bundle)
    ref = {"reference": endpoint["fullUrl"]}
    assert (endpoint["resource"]["address"], study["endpoint"], study["series"][0]["endpoint"]) == (
        "https://pacs.example.org/dicom-web",
        [ref],
        [ref],
    )


def test_time_without_offset_uses_the_configured_offset(dx: ModuleType) -> None:
    """DICOM times without TimezoneOffsetFromUTC take ``default_utc_offset``."""
    (study,) = dx.resources(dicom_to_fhir(dx.dataset(), {"default_utc_offset": "+01:00"}), "ImagingStudy")
    assert study["started"] == "2024-01-02T10:11:12+01:00"


def test_no_offset_configured_gives_the_date_only(dx: ModuleType) -> None:
    """With ``default_utc_offset: ''`` a time of unknown zone is dropped (FHIR requires a zone)."""
    (study,) = dx.resources(dicom_to_fhir(dx.dataset(), {"default_utc_offset": ""}), "ImagingStudy")
    assert study["started"] == "2024-01-02"


# ------------------------------------------------------------------------------------------ many inputs
def test_dicomdir_set_aggregates_series_and_instances_per_study(dx: ModuleType) -> None:
    """pydicom's multi-patient, multi-series set: one ImagingStudy per study with every series and
    instance, and counts that match what pydicom reads."""
    paths = dx.dicomdir_instances()
    expected: dict[str, Counter[str]] = {}
    for path in paths:
        ds = dx.read(path)
        expected.setdefault(ds.StudyInstanceUID, Counter())[ds.SeriesInstanceUID] += 1
    bundle = dicom_to_fhir(paths)
    dx.validate_bundle(bundle)
    got = {
        s["identifier"][0]["value"].removeprefix("urn:oid:"): Counter(
            {x["uid"]: x["numberOfInstances"] for x in s["series"]}
        )
        for s in dx.resources(bundle, "ImagingStudy")
    }
    assert got == expected


def test_dicomdir_set_counts_are_consistent(dx: ModuleType) -> None:
    """numberOfSeries and numberOfInstances equal the series and instances listed."""
    bundle = dicom_to_fhir(dx.dicomdir_instances())
    studies = dx.resources(bundle, "ImagingStudy")
    assert all(
        s["numberOfSeries"] == len(s["series"])
        and s["numberOfInstances"] == sum(len(x["instance"]) for x in s["series"])
        for s in studies
    )


def test_one_patient_entry_per_patient(dx: ModuleType) -> None:
    """Studies of one patient share one Patient entry."""
    bundle = dicom_to_fhir([dx.dataset(), dx.dataset(study="1.2.3.5", series="1.2.3.5.1", sop="1.2.3.5.1.1")])
    assert (len(dx.resources(bundle, "Patient")), len(dx.resources(bundle, "ImagingStudy"))) == (1, 2)


def test_repeated_instance_is_counted_once(dx: ModuleType) -> None:
    """The same SOP instance twice is one instance."""
    (study,) = dx.resources(dicom_to_fhir([dx.dataset(), dx.dataset()]), "ImagingStudy")
    assert study["numberOfInstances"] == 1


def test_instances_are_ordered_by_instance_number(dx: ModuleType) -> None:
    """Series list instances by InstanceNumber."""
    items = [dx.dataset(sop=f"1.2.3.4.1.{n}", InstanceNumber=n) for n in (3, 1, 2)]
    (study,) = dx.resources(dicom_to_fhir(items), "ImagingStudy")
    assert [i["number"] for i in study["series"][0]["instance"]] == [1, 2, 3]


# ------------------------------------------------------------------------------------------ DICOM JSON
def test_dicom_json_gives_the_same_study_as_part10(dx: ModuleType) -> None:
    """PS3.18 DICOM JSON of a file converts like the file itself."""
    ds = dx.read(dx.testfile("CT_small.dcm"))
    as_json = json.dumps([ds.to_json_dict()]).encode()
    from_json = dx.resources(dicom_to_fhir(as_json), "ImagingStudy")
    from_file = dx.resources(dicom_to_fhir(dx.testfile("CT_small.dcm")), "ImagingStudy")
    assert from_json == from_file


def test_dicom_json_array_aggregates_instances(dx: ModuleType) -> None:
    """A DICOM JSON array of two instances of one series is one study with two instances."""
    items = [dx.dataset(sop=f"1.2.3.4.1.{n}").to_json_dict() for n in (1, 2)]
    (study,) = dx.resources(dicom_to_fhir(json.dumps(items).encode()), "ImagingStudy")
    assert study["numberOfInstances"] == 2


def test_dicom_json_bulk_data_uri_is_not_fetched(dx: ModuleType) -> None:
    """A BulkDataURI in DICOM JSON is ignored, never fetched."""
    item = dx.dataset().to_json_dict()
    item["7FE00010"] = {"vr": "OW", "BulkDataURI": "http://127.0.0.1:9/never"}
    (study,) = dx.resources(dicom_to_fhir(json.dumps(item).encode()), "ImagingStudy")
    assert study["numberOfInstances"] == 1


# ------------------------------------------------------------------------------------------ charsets
@pytest.mark.parametrize("name", CHARSETS)
def test_character_sets_are_decoded(dx: ModuleType, name: str) -> None:
    """Names in ISO 2022 / ISO 8859 / UTF-8 character sets arrive decoded, as pydicom decodes them."""
    path = dx.charset_file(name)
    pn = dx.read(path).PatientName
    bundle = dicom_to_fhir(path)
    dx.validate_bundle(bundle)
    (patient,) = dx.resources(bundle, "Patient")
    families = [n.get("family", "") for n in patient["name"]]
    expected = [g.split("^")[0] for g in (pn.alphabetic, pn.ideographic, pn.phonetic) if g]
    assert families == expected


# ------------------------------------------------------------------------------------------ broken input
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "input[0]: not a DICOM file"),
        (b"\x00" * 200, "input[0]: not a DICOM file"),
        (b"MSH|^~\\&|not dicom", "input[0]: not a DICOM file"),
        (b"[1, 2", "input[0]: not valid JSON (at character 5)"),
        (b"[1]", "input[0][0]: a DICOM JSON dataset must be an object"),
    ],
)
def test_unreadable_bytes_give_a_clear_parse_error(data: bytes, message: str) -> None:
    """Bytes that are neither Part 10 nor DICOM JSON raise ParseError saying so."""
    with pytest.raises(ParseError) as info:
        dicom_to_fhir(data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "name", ["MR_truncated.dcm", "rtplan_truncated.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm"]
)
def test_files_truncated_in_pixel_data_still_convert(dx: ModuleType, name: str) -> None:
    """Pixel data is never read, so files cut short inside it still give a valid Bundle."""
    dx.validate_bundle(dicom_to_fhir(dx.testfile(name)))


def test_headerless_file_pydicom_cannot_parse_is_a_parse_error(dx: ModuleType) -> None:
    """no_meta.dcm (no preamble, no meta, unparseable without them) is a clear ParseError."""
    with pytest.raises(ParseError, match=r"^input\[0\]: not a DICOM file$"):
        dicom_to_fhir(dx.testfile("no_meta.dcm"))


def test_invalid_uid_in_a_test_file_is_reported(dx: ModuleType) -> None:
    """bad_sequence.dcm's StudyInstanceUID breaks the UID syntax: a TransformError names it."""
    with pytest.raises(TransformError, match=r"StudyInstanceUID \(0020,000D\) is not a valid UID"):
        dicom_to_fhir(dx.testfile("bad_sequence.dcm"))


def test_instance_without_study_uid_names_the_attribute(dx: ModuleType) -> None:
    """A dataset without StudyInstanceUID raises TransformError naming keyword and tag."""
    with pytest.raises(TransformError) as info:
        dicom_to_fhir(dx.dataset(StudyInstanceUID=None))
    assert (str(info.value), info.value.locations) == (
        "input[0]: required attribute StudyInstanceUID (0020,000D) is missing or empty",
        ["StudyInstanceUID (0020,000D)"],
    )


def test_dicomdir_file_is_not_an_instance(dx: ModuleType) -> None:
    """A DICOMDIR (a media directory, not an image) is rejected by its missing UIDs."""
    with pytest.raises(TransformError, match="required attribute StudyInstanceUID"):
        dicom_to_fhir(dx.testfile("DICOMDIR"))


def test_invalid_uid_is_rejected(dx: ModuleType) -> None:
    """A StudyInstanceUID with a leading-zero component is not a UID."""
    with pytest.raises(TransformError, match=r"StudyInstanceUID \(0020,000D\) is not a valid UID"):
        dicom_to_fhir(dx.dataset(study="1.2.03"))


def test_missing_file_is_a_parse_error(tmp_path: object) -> None:
    """A path that cannot be read is a ParseError for that input."""
    with pytest.raises(ParseError, match=r"input\[0\]: file cannot be read"):
        dicom_to_fhir(f"{tmp_path}/nope.dcm")


def test_part10_bytes_of_a_built_dataset(dx: ModuleType) -> None:
    """Part 10 bytes written by pydicom convert like the dataset."""
    ds = dx.dataset()
    assert dx.resources(dicom_to_fhir(dx.part10(ds)), "ImagingStudy") == dx.resources(
        dicom_to_fhir(dx.dataset()), "ImagingStudy"
    )


def test_offset_no_clock_has_is_treated_as_absent(dx: ModuleType) -> None:
    """TimezoneOffsetFromUTC +2500 is no zone: the configured offset (or the date alone) is used."""
    ds = dx.dataset(TimezoneOffsetFromUTC="+2500")
    (study,) = dx.resources(dicom_to_fhir(ds, {"default_utc_offset": "+01:00"}), "ImagingStudy")
    assert study["started"] == "2024-01-02T10:11:12+01:00"


@pytest.mark.parametrize("number", ["-1", "99999999999999"])
def test_numbers_outside_unsigned_int_are_left_out(dx: ModuleType, number: str) -> None:
    """Series and instance numbers FHIR's unsignedInt cannot hold are left out; the Bundle stays valid."""
    bundle = dicom_to_fhir(dx.dataset(SeriesNumber=number, InstanceNumber=number))
    dx.validate_bundle(bundle)
    (study,) = dx.resources(bundle, "ImagingStudy")
    assert "number" not in study["series"][0]
    assert "number" not in study["series"][0]["instance"][0]
