"""IG datatype-map coverage: the maps implemented in code, and the small maps in DATATYPES."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from pyheart.broker.hl7v2 import Value
from pyheart.broker.hl7v2.parser import DEFAULT_DELIMITERS
from pyheart.transformers.hl7v2_fhir import datatypes as dt
from pyheart.transformers.hl7v2_fhir.context import Context
from pyheart.transformers.hl7v2_fhir.coverage import IMPLEMENTED_IN_CODE, ig_names, main, report

IG = Path("/work/shared/corpus/hl7-v2-to-fhir-ig/mappings")
PACKAGE = "pyheart.transformers.hl7v2_fhir"
V2 = "http://terminology.hl7.org/CodeSystem/v2-"


def v(raw: str) -> Value:
    """One field repetition."""
    return Value(raw, DEFAULT_DELIMITERS)


def resolve(dotted: str) -> object:
    """The object a dotted name (``module.function`` or ``module.Class.method``) names."""
    module_name, *attrs = dotted.split(".")
    obj: object = importlib.import_module(f"{PACKAGE}.{module_name}")
    for attr in attrs:
        obj = getattr(obj, attr)
    return obj


# ------------------------------------------------------------------- the in-code table


@pytest.mark.parametrize(("name", "where"), sorted(IMPLEMENTED_IN_CODE.items()))
def test_in_code_entry_names_a_function(name: str, where: str) -> None:
    """Every map recorded as implemented in code names a function that exists."""
    assert callable(resolve(where)), f"{name}: {where} is not a function"


@pytest.mark.parametrize("name", sorted(IMPLEMENTED_IN_CODE))
def test_in_code_entry_is_an_ig_map(name: str) -> None:
    """Every map recorded as implemented in code is a datatype map of the IG."""
    assert name in ig_names(IG, "datatypes")


def test_in_code_entries_are_not_in_datatypes() -> None:
    """A map is either a DATATYPES entry or recorded in code, never both."""
    assert sorted(set(IMPLEMENTED_IN_CODE) & set(dt.DATATYPES)) == []


def test_report_counts_in_code_maps() -> None:
    """The coverage report counts the in-code maps as implemented and says where they are."""
    maps = report(IG)["datatype_maps"]
    assert set(maps["in_code"]) <= set(maps["implemented"])
    assert maps["in_code"]["SAD[Address]"] == "datatypes.xad_address"
    assert "SAD[Address]" not in maps["missing"]


def test_report_prints_where_in_code_maps_are(capsys: pytest.CaptureFixture[str]) -> None:
    """``--missing`` prints each in-code map with the function implementing it."""
    assert main(["--ig", str(IG), "--missing"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["HD[uri]", "in", "datatypes.hd_system"] in lines


# ---------------------------------------------------------------------- small maps


def test_cx_string(ctx: Context) -> None:
    """CX[string] is the id number (CX.1)."""
    assert dt.DATATYPES["CX[string]"](v("MRN7^^^HOSP^MR"), ctx, None) == "MRN7"


def test_dr_datetime_is_the_start(ctx: Context) -> None:
    """DR[dateTime] is the start of the range (DR.1), as a FHIR dateTime."""
    assert dt.DATATYPES["DR[dateTime]"](v("20240102^20240105"), ctx, None) == "2024-01-02"


def test_cq_decimal(ctx: Context) -> None:
    """CQ[decimal] is the quantity (CQ.1) without units."""
    assert dt.DATATYPES["CQ[decimal]"](v("2.5^h&hour&UCUM"), ctx, None) == 2.5


def test_cq_code(ctx: Context) -> None:
    """CQ[code] is the code of the units (CQ.2)."""
    assert dt.DATATYPES["CQ[code]"](v("2.5^h&hour&UCUM"), ctx, None) == "h"


def test_nm_quantity(ctx: Context) -> None:
    """NM[Quantity] is a Quantity with the number as its value."""
    assert dt.DATATYPES["NM[Quantity]"](v("7.25"), ctx, None) == {"value": 7.25}


def test_nm_quantity_not_a_number(ctx: Context) -> None:
    """An NM that is not a number gives no Quantity."""
    assert dt.DATATYPES["NM[Quantity]"](v("high"), ctx, None) is None


def test_nr_range(ctx: Context) -> None:
    """NR[Range]: NR.1 the low value, NR.2 the high value."""
    assert dt.DATATYPES["NR[Range]"](v("3.5^10"), ctx, None) == {"low": {"value": 3.5}, "high": {"value": 10}}


def test_nr_range_open_ended(ctx: Context) -> None:
    """An NR with only a high value is a Range with only a high."""
    assert dt.DATATYPES["NR[Range]"](v("^10"), ctx, None) == {"high": {"value": 10}}


def test_cwe_quantity_coded_unit(ctx: Context) -> None:
    """CWE[Quantity]: a coded unit gives unit, system and code."""
    assert dt.DATATYPES["CWE[Quantity]"](v("mg/dL^milligram per deciliter^UCUM"), ctx, None) == {
        "unit": "milligram per deciliter",
        "system": "http://unitsofmeasure.org",
        "code": "mg/dL",
    }


def test_cwe_quantity_unit_without_system(ctx: Context) -> None:
    """CWE[Quantity]: without CWE.3 the code is only the unit's text."""
    assert dt.DATATYPES["CWE[Quantity]"](v("mmol/L"), ctx, None) == {"unit": "mmol/L"}


def test_cwe_uri(ctx: Context) -> None:
    """CWE[uri] is CWE.1."""
    assert dt.DATATYPES["CWE[uri]"](v("urn:oid:1.2.3^State lab"), ctx, None) == "urn:oid:1.2.3"


def test_cwe_uri_falls_back_to_alternate(ctx: Context) -> None:
    """CWE[uri] is CWE.4 when CWE.1 is empty."""
    assert dt.DATATYPES["CWE[uri]"](v("^^^http://example.org/lab"), ctx, None) == "http://example.org/lab"


def test_cwe_uri_rejects_whitespace(ctx: Context) -> None:
    """A text with whitespace is no uri."""
    assert dt.DATATYPES["CWE[uri]"](v("State Lab"), ctx, None) is None


def test_cwe_annotation_keeps_delimiters(ctx: Context) -> None:
    """CWE[Annotation]: the whole value, delimiters included, is the text."""
    assert dt.DATATYPES["CWE[Annotation]"](v("A1^Fasting^L"), ctx, None) == {"text": "A1^Fasting^L"}


def test_ei_coding(ctx: Context) -> None:
    """EI[Coding]: EI.1 the code, the universal id (EI.3/EI.4) the system."""
    assert dt.DATATYPES["EI[Coding]"](v("K123^LAB^1.2.3.4^ISO"), ctx, None) == {
        "system": "urn:oid:1.2.3.4",
        "code": "K123",
    }


def test_ei_coding_without_code(ctx: Context) -> None:
    """An EI without EI.1 gives no Coding."""
    assert dt.DATATYPES["EI[Coding]"](v("^LAB"), ctx, None) is None


def test_ei_identifier_default_assigner(ctx: Context) -> None:
    """EI[Identifier-DefaultAssigner] keeps the value only."""
    assert dt.DATATYPES["EI[Identifier-DefaultAssigner]"](v("DOC9^LAB^1.2.3^ISO"), ctx, None) == {
        "value": "DOC9"
    }


def test_ei_identifier_organization_assigner(ctx: Context) -> None:
    """EI[Identifier-Organization]: EI.2-EI.4 make the assigner Organization, with both ids."""
    ident = dt.DATATYPES["EI[Identifier-Organization]"](v("DOC9^LAB^1.2.3^ISO"), ctx, None)
    org = ctx.entries[ident["assigner"]["reference"].rpartition(":")[2].rpartition("/")[2]].resource
    assert (ident["value"], [i["value"] for i in org["identifier"]]) == ("DOC9", ["LAB", "urn:oid:1.2.3"])


def test_ei_identifier_organization_without_authority(ctx: Context) -> None:
    """An EI without an assigning authority has no assigner."""
    assert dt.DATATYPES["EI[Identifier-Organization]"](v("DOC9"), ctx, None) == {"value": "DOC9"}


def test_id_universal_id(ctx: Context) -> None:
    """ID[CodeableConcept-UniversalID]: a table 0301 code in v2-0301."""
    cc = dt.DATATYPES["ID[CodeableConcept-UniversalID]"](v("ISO"), ctx, None)
    assert (cc["coding"][0]["system"], cc["coding"][0]["code"]) == (V2 + "0301", "ISO")


def test_msg_code(ctx: Context) -> None:
    """MSG[code] is the trigger event (MSG.2)."""
    assert dt.DATATYPES["MSG[code]"](v("ADT^A08^ADT_A01"), ctx, None) == "A08"


def test_pt_meta_both_tags(ctx: Context) -> None:
    """PT[Meta]: processing id and processing mode become tags in v2-0103 and v2-0207."""
    meta = dt.DATATYPES["PT[Meta]"](v("P^T"), ctx, None)
    assert [(t["system"], t["code"]) for t in meta["tag"]] == [(V2 + "0103", "P"), (V2 + "0207", "T")]


def test_pt_meta_unknown_code_kept(ctx: Context) -> None:
    """A processing id outside the concept map is still a tag of table 0103."""
    assert dt.DATATYPES["PT[Meta]"](v("Q"), ctx, None) == {"tag": [{"system": V2 + "0103", "code": "Q"}]}


def test_sps_specimen_parts(ctx: Context) -> None:
    """SPS[Specimen-Source]: type, additive, note, body site and condition of the Specimen."""
    out = dt.DATATYPES["SPS[Specimen-Source]"](
        v("BLD&Blood&HL70487^HEP&Heparin^drawn cold^LA&Left arm^^COOL&Cool"), ctx, None
    )
    assert (
        out["type"]["coding"][0]["code"],
        out["container"][0]["additiveCodeableConcept"]["coding"][0]["code"],
        out["note"],
        out["collection"]["bodySite"]["coding"][0]["code"],
        out["condition"][0]["coding"][0]["code"],
    ) == ("BLD", "HEP", [{"text": "drawn cold"}], "LA", "COOL")


def test_sps_specimen_empty(ctx: Context) -> None:
    """An empty SPS gives nothing."""
    assert dt.DATATYPES["SPS[Specimen-Source]"](v(""), ctx, None) is None


def test_hd_device_identifiers(ctx: Context) -> None:
    """HD[Device]: HD.1 and the ISO universal id (a URI, typed by HD.3) identify the Device."""
    ref = dt.DATATYPES["HD[Device]"](v("RECVAPP^1.2.840.1^ISO"), ctx, None)
    device = ctx.entries[ref["reference"].rpartition(":")[2].rpartition("/")[2]].resource
    ns, uid = device["identifier"]
    assert (ns, uid["system"], uid["value"], uid["type"]["coding"][0]["code"]) == (
        {"value": "RECVAPP"},
        "urn:ietf:rfc:3986",
        "urn:oid:1.2.840.1",
        "ISO",
    )


def test_hd_device_empty(ctx: Context) -> None:
    """An HD without namespace or universal id makes no Device."""
    assert dt.DATATYPES["HD[Device]"](v("^^ISO"), ctx, None) is None


# ------------------------------------------------------------- gaps fixed in old maps


def test_xad_vacation_home_use(ctx: Context) -> None:
    """IG XAD.7 'HV' (vacation home) is the ISO 21090 address-use extension."""
    addr = dt.xad_address(v("1 Beach Rd^^Nags Head^NC^27959^^HV"), ctx)
    assert addr is not None
    assert addr["extension"] == [
        {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-AD-use", "valueCode": "HV"}
    ]


def test_cwe_code_falls_back_to_alternate(ctx: Context) -> None:
    """IG CWE[code]: the alternate code (CWE.4) when CWE.1 is empty."""
    assert dt.cwe_code(v("^^^F^Female^HL70001"), ctx) == "F"


def test_cwe_string_is_original_text(ctx: Context) -> None:
    """IG CWE[string]: the original text (CWE.9) first."""
    assert dt.DATATYPES["CWE[string]"](v("C1^Shake well^L^^^^^^Shake the bottle well"), ctx, None) == (
        "Shake the bottle well"
    )


def test_cwe_string_is_text_without_original_text(ctx: Context) -> None:
    """IG CWE[string]: the text (CWE.2) when CWE.9 is empty, not the code."""
    assert dt.DATATYPES["CWE[string]"](v("C1^Shake well^L"), ctx, None) == "Shake well"


def test_xpn_string_family_first(ctx: Context) -> None:
    """IG XPN[string]: name assembly order F puts the family name first (table 0444)."""
    assert dt.xpn_string(v("Smith^John^Q^Jr^Dr^^L^^^^F"), ctx) == "Dr Smith Q John Jr"


def test_xpn_string_given_first_by_default(ctx: Context) -> None:
    """IG XPN[string]: without XPN.11 the given names come first."""
    assert dt.xpn_string(v("Smith^John^Q^Jr^Dr"), ctx) == "Dr John Q Smith Jr"
