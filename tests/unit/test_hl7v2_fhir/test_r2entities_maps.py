"""Shared datatype maps and the entity builders, round 2: vocabulary on every coding of a CWE,
units given as text, XTN use, XPN called-by names, Organization/Location/Practitioner/Device
details (every value synthetic)."""

from __future__ import annotations

from types import ModuleType

from pyheart.broker.hl7v2 import Value
from pyheart.broker.hl7v2.parser import DEFAULT_DELIMITERS
from pyheart.transformers.hl7v2_fhir import datatypes as dt
from pyheart.transformers.hl7v2_fhir.context import Context

PID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
ADT = "ADT^A01^ADT_A01"
V3_ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


def v(raw: str) -> Value:
    """One field repetition."""
    return Value(raw, DEFAULT_DELIMITERS)


def _codes(cc: dict[str, object] | None) -> list[tuple[str | None, str | None]]:
    assert cc is not None
    codings = cc["coding"]
    assert isinstance(codings, list)
    return [(c.get("system"), c.get("code")) for c in codings]


def test_cwe_alternate_code_translated(ctx: Context) -> None:
    """The alternate code (CWE.4) is translated with the concept map, as CWE.1 is."""
    cc = dt.cwe_codeable_concept(v("^^^CHD^Child"), ctx, "Relationship")
    assert (V3_ROLE, "CHILD") in _codes(cc)


def test_cwe_local_system_code_translated(ctx: Context) -> None:
    """A table code sent under a local coding system name is translated too."""
    cc = dt.cwe_codeable_concept(v("SPO^Spouse^L"), ctx, "Relationship")
    assert _codes(cc)[0] == (V3_ROLE, "SPS")


def test_cwe_local_system_coding_kept(ctx: Context) -> None:
    """The sender's local coding follows the translated one."""
    cc = dt.cwe_codeable_concept(v("SPO^Spouse^L"), ctx, "Relationship")
    assert _codes(cc)[1] == ("urn:id:L", "SPO")


def test_cwe_external_system_not_translated(ctx: Context) -> None:
    """A code of a standard terminology (here SNOMED CT) is never read as a v2 table code."""
    cc = dt.cwe_codeable_concept(v("SPO^Something^SCT"), ctx, "Relationship")
    assert _codes(cc) == [("http://snomed.info/sct", "SPO")]


def test_cwe_version_on_translated_coding(ctx: Context) -> None:
    """CWE.7 (version) stays on coding[1] when the translation replaces the v2 coding."""
    cc = dt.cwe_codeable_concept(v("2^^^^^^V1.2"), ctx, "EncounterPriority")
    assert cc is not None
    assert (cc["coding"][0]["code"], cc["coding"][0]["version"]) == ("UR", "V1.2")


def test_cwe_same_translation_once(ctx: Context) -> None:
    """Two codings that translate to the same FHIR code give it once."""
    cc = dt.cwe_codeable_concept(v("SPO^^^SPO"), ctx, "Relationship")
    assert _codes(cc) == [(V3_ROLE, "SPS")]


def test_cq_unit_text_only(ctx: Context) -> None:
    """CQ units given as text only (CWE.1 empty: '54^&lbs') are still the Quantity's unit."""
    assert dt.cq_quantity(v("54^&lbs"), ctx) == {"value": 54, "unit": "lbs"}


def test_cwe_quantity_unit_text_only(ctx: Context) -> None:
    """A CWE unit field with text but no code gives the unit text."""
    assert dt.cwe_quantity_unit(v("^cap"), ctx) == {"unit": "cap"}


def test_xtn_cell_phone_keeps_use_code(ctx: Context) -> None:
    """A cell phone (XTN.3 CP) with XTN.2 PRN is a home phone: XTN.2 is the IG's use."""
    cp = dt.xtn_contact_point(v("5551234^PRN^CP"), ctx)
    assert cp == {"system": "phone", "value": "5551234", "use": "home"}


def test_xtn_cell_phone_without_use_code_is_mobile(ctx: Context) -> None:
    """A cell phone without XTN.2 has use mobile (the IG's CP translation)."""
    cp = dt.xtn_contact_point(v("5551234^^CP"), ctx)
    assert cp == {"use": "mobile", "system": "phone", "value": "5551234"}


def test_nk1_alternate_relationship_translated(h: ModuleType) -> None:
    """NK1-3's alternate code becomes a translated relationship coding of the RelatedPerson."""
    bundle = h.run(ADT, PID, "NK1|1|Roe^Ann|EMC^Emergency^L^CHD")
    rel = h.one(bundle, "RelatedPerson")["relationship"][0]
    assert (V3_ROLE, "CHILD") in _codes(rel)


def test_xpn_called_by_is_nickname(h: ModuleType) -> None:
    """XPN.15 (called by) is a second Patient name with use nickname (IG XPN[HumanName])."""
    pid = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane^^^^^L^^^^^^^^Janie"
    names = h.one(h.run(ADT, pid), "Patient")["name"]
    assert names[1] == {"given": ["Janie"], "use": "nickname"}


def test_xpn_without_called_by_one_name(h: ModuleType) -> None:
    """Without XPN.15 the Patient has the one name."""
    assert len(h.one(h.run(ADT, PID), "Patient")["name"]) == 1


def test_xpn_called_by_not_on_single_name(h: ModuleType) -> None:
    """A single HumanName element (Patient.contact.name) keeps the name without the nickname."""
    nk1 = "NK1|1|Roe^Ann^^^^^L^^^^^^^^Annie|SPO^Spouse^HL70063"
    contact = h.one(h.run(ADT, PID, nk1), "Patient")["contact"][0]
    assert contact["name"]["given"] == ["Ann"]


ORU = "ORU^R01^ORU_R01"
OBR_NDL = "OBR|1|PL1|FL1|1234-5^Panel^LN|||20240101||||||||||||||||||F|||||||{ndl}"


def _report(h: ModuleType, ndl: str) -> tuple[dict[str, object], dict[str, object]]:
    bundle = h.run(ORU, PID, OBR_NDL.format(ndl=ndl))
    return bundle, h.one(bundle, "DiagnosticReport")


def test_ndl_is_practitioner_role(h: ModuleType) -> None:
    """OBR-32 (NDL) is a PractitionerRole whose practitioner is NDL.1 (IG NDL[PractitionerRole])."""
    bundle, _ = _report(h, "77&Kim&Lee")
    role = h.one(bundle, "PractitionerRole")
    person = h.one(bundle, "Practitioner")
    assert (person["identifier"][0]["value"], person["name"][0]) == (
        "77",
        {"family": "Kim", "given": ["Lee"]},
    )
    assert role["practitioner"]["reference"] == next(
        e["fullUrl"] for e in bundle["entry"] if e["resource"] is person
    )


def test_ndl_period(h: ModuleType) -> None:
    """NDL.2/NDL.3 are the PractitionerRole's period."""
    bundle, _ = _report(h, "77&Kim^20240101^20240102")
    assert h.one(bundle, "PractitionerRole")["period"] == {"start": "2024-01-01", "end": "2024-01-02"}


def test_ndl_locations(h: ModuleType) -> None:
    """NDL.4-NDL.7 (point of care, room, bed, facility) are the PractitionerRole's Locations."""
    bundle, _ = _report(h, "77&Kim^^^Unit1^Room1^^Site1")
    names = sorted(loc["name"] for loc in h.resources(bundle, "Location"))
    assert names == ["Room1", "Site1", "Unit1"]


def test_ndl_cnn_degree_is_suffix(h: ModuleType) -> None:
    """CNN.7 (degree) is a name suffix (IG CNN[Practitioner])."""
    bundle, _ = _report(h, "77&Kim&Lee&&&Dr&MD")
    name = h.one(bundle, "Practitioner")["name"][0]
    assert (name["suffix"], name["prefix"]) == (["MD"], ["Dr"])


def test_ndl_report_refers_to_role(h: ModuleType) -> None:
    """The report's resultsInterpreter is the NDL's PractitionerRole."""
    bundle, report = _report(h, "77&Kim")
    role_url = h.entries(bundle, "PractitionerRole")[0]["fullUrl"]
    assert report["resultsInterpreter"] == [{"reference": role_url}]


def _obx18(h: ModuleType, equipment: str) -> dict[str, object]:
    obx = str(h.seg("OBX", {1: "1", 2: "NM", 3: "8867-4^Heart rate^LN", 5: "60", 11: "F", 18: equipment}))
    return dict(h.run(ORU, PID, OBR_NDL.format(ndl=""), obx))


def test_obx18_repetitions_one_device(h: ModuleType) -> None:
    """OBX-18's repetitions are the identifiers of one Device (IG device(Device.identifier))."""
    bundle = _obx18(h, "DEV1^^1.2.3^ISO~DEV2^^1.2.4^ISO")
    values = [i["value"] for i in h.one(bundle, "Device")["identifier"]]
    assert values == ["DEV1", "DEV2"]


def test_obx18_authority_only_is_system(h: ModuleType) -> None:
    """An OBX-18 repetition with an assigning authority but no EI.1 keeps it as a system."""
    bundle = _obx18(h, "^^1.2.3^ISO")
    ident = h.one(bundle, "Device")["identifier"][0]
    assert (ident["system"], ident["type"]["coding"][0]["code"]) == ("urn:oid:1.2.3", "ISO")


def test_obx18_device_referenced(h: ModuleType) -> None:
    """The Observation's device is that Device."""
    bundle = _obx18(h, "^^1.2.3^ISO~DEV2")
    url = h.entries(bundle, "Device")[0]["fullUrl"]
    assert h.one(bundle, "Observation")["device"] == {"reference": url}


def test_xad_county_text_only_is_district(ctx: Context) -> None:
    """XAD.9 given as text without a code ('&W') is the address's district (IG CWE[string])."""
    address = dt.xad_address(v("1 Main St^^Town^ST^12345^USA^H^^&West"), ctx)
    assert address is not None
    assert address["district"] == "West"


def test_xad_census_tract_text_only(ctx: Context) -> None:
    """XAD.10 given as text without a code is the census-tract extension."""
    address = dt.xad_address(v("1 Main St^^Town^^^^^^^&T42"), ctx)
    assert address is not None
    assert address["extension"][0]["valueString"] == "T42"
