"""Property test: DICOM JSON of pydicom's test files, broken the ways metadata breaks (attributes
dropped, values blanked, impossible dates, times and zones, out-of-range numbers, wrong VRs), gives
an R4B-valid Bundle or a clear PyHeart error, never a crash."""

from __future__ import annotations

import copy
import json
import warnings
from typing import Any

import pydicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from pyheart.broker.errors import PyHeartError
from pyheart.transformers.dicom_fhir import dicom_to_fhir

FILES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "US1_J2KR.dcm", "waveform_ecg.dcm")
TOKENS: tuple[Any, ...] = (
    [],
    [""],
    ["  "],
    [None],
    ["20240230"],
    ["2024"],
    ["25:99:99"],
    ["+2500"],
    ["^^^^"],
    ["a\\b"],
    [{"Alphabetic": "Doe^J"}],
    [1e20],
    [-1],
    ["x" * 300],
)
VRS = ("DA", "TM", "PN", "LO", "UI", "CS", "IS", "DS", "SQ", "XX")
#: Attributes the conversion reads (dates, times, zone, numbers, identity), with their VRs.
READ = (
    ("00080020", "DA"),
    ("00080030", "TM"),
    ("00080021", "DA"),
    ("00080031", "TM"),
    ("00080201", "SH"),
    ("00200011", "IS"),
    ("00200013", "IS"),
    ("00100010", "PN"),
    ("00100020", "LO"),
    ("00100030", "DA"),
    ("00080060", "CS"),
    ("0020000D", "UI"),
)


def _json(name: str) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file(name), stop_before_pixels=True)
        return ds.to_json_dict(bulk_data_threshold=64, bulk_data_element_handler=lambda _e: "bulk")


SOURCES = [_json(name) for name in FILES]
edit = st.tuples(st.integers(0, 3), st.integers(0, 10**6), st.sampled_from(TOKENS), st.sampled_from(VRS))


def mutate(doc: dict[str, Any], edits: list[tuple[int, int, Any, str]]) -> dict[str, Any]:
    """``doc`` with ``edits``: (kind, attribute pick, value, VR) drop / revalue / replace any
    attribute, or (kind 3) give one the conversion reads an awkward value of its own VR."""
    doc = copy.deepcopy(doc)
    for kind, pick, value, vr in edits:
        if kind == 3:
            tag, own_vr = READ[pick % len(READ)]
            doc[tag] = {"vr": own_vr, "Value": copy.deepcopy(value)}
            continue
        keys = sorted(doc)
        if not keys:
            break
        key = keys[pick % len(keys)]
        if kind == 0:
            del doc[key]
        elif kind == 1 and isinstance(doc[key], dict):
            doc[key]["Value"] = copy.deepcopy(value)
        else:
            doc[key] = {"vr": vr, "Value": copy.deepcopy(value)}
    return doc


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(SOURCES), edits=st.lists(edit, min_size=1, max_size=4))
def test_mutated_metadata_gives_valid_bundle_or_clear_error(
    base: dict[str, Any], edits: list[tuple[int, int, Any, str]]
) -> None:
    """Broken DICOM JSON converts to an R4B-valid Bundle or raises a PyHeart error."""
    from fhir.resources.R4B.bundle import Bundle

    payload = json.dumps(mutate(base, edits)).encode()
    bundle: dict[str, Any] | None = None
    try:
        bundle = dicom_to_fhir(payload)
    except PyHeartError:
        return
    Bundle.model_validate(bundle)


def test_sources_read() -> None:
    """Every source file gives a Bundle unmutated (the property starts from good inputs)."""
    assert all(dicom_to_fhir(json.dumps(doc).encode())["entry"] for doc in SOURCES)
