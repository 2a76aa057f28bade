"""DICOM test inputs: the files pydicom and pydicom-data install (see shared/corpus/dicom/), and
datasets built in code. Tests get this module as the session fixture ``dx``."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pydicom
import pytest
from fhir.resources.R4B.bundle import Bundle
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian


def testfile(name: str) -> Path:
    """A test file pydicom (or pydicom-data) installs."""
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(str(path))


def charset_file(name: str) -> Path:
    """A pydicom character-set test file."""
    (path,) = get_charset_files(name)
    return Path(path)


def dicomdir_instances() -> list[Path]:
    """The image files of pydicom's ``dicomdirtests`` set (several patients, studies and series)."""
    root = testfile("CT_small.dcm").parent / "dicomdirtests"
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(("DICOMDIR", "README")))


def read(path: Path) -> Dataset:
    """pydicom's own reading of a file, for expected values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def dataset(
    study: str = "1.2.3.4", series: str = "1.2.3.4.1", sop: str = "1.2.3.4.1.1", **attrs: Any
) -> Dataset:
    """A small CT instance with the given UIDs and attributes (invalid values allowed, unwarned)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _dataset(study, series, sop, attrs)


def _dataset(study: str, series: str, sop: str, attrs: dict[str, Any]) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.Modality = "CT"
    ds.PatientID = "PAT-1"
    ds.PatientName = "Testperson^Alex"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101112"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    for key, value in attrs.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


def part10(ds: Dataset) -> bytes:
    """``ds`` as Part 10 bytes."""
    import io

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def validate_bundle(bundle: dict[str, Any]) -> None:
    """The Bundle passes the fhir.resources R4B models."""
    Bundle.model_validate(bundle)


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    """The resources of ``rtype`` in a Bundle."""
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def entries(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    """The entries of ``rtype`` in a Bundle."""
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


@pytest.fixture(scope="session")
def dx() -> ModuleType:
    """This module: the input helpers."""
    return sys.modules[__name__]
