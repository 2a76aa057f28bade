"""Entity resources built by the shared datatype maps and the provider segments: CWE codings through
the concept maps (alternate and local codes, versions), CWE[Organization], units given as text, XTN
use, XPN called-by names, XCN/CNN/NDL people (type-only identifiers, degrees, check digits, name
periods), XON and XAD details, HD[Location], EI/PLN identifiers, PL locations, OBX-18 and PRT
devices, PRD providers, ROL role ids, SFT software (every value synthetic)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pyheart.broker.hl7v2 import Value
from pyheart.broker.hl7v2.parser import DEFAULT_DELIMITERS
from pyheart.transformers.hl7v2_fhir import datatypes as dt
from pyheart.transformers.hl7v2_fhir.context import Context

PID = "PID|1||MRN1^^^HOSP^MR||Doe^Jane||19800203|F"
PV1 = "PV1|1|I|ICU^12^B^GHH"
ADT = "ADT^A01^ADT_A01"
ORU = "ORU^R01^ORU_R01"
REF = "REF^I12^REF_I12"
V2_0301 = "http://terminology.hl7.org/CodeSystem/v2-0301"
PRD = (
    "PRD|RP^Referring Provider^HL70286|Kay^Ann^^^DR^MD|1 Main St^^Town^ST^11111|"
    "^^^CLINIC A|^WPN^PH^^^^^^^^^(555)555-0101||LIC77^SL^^20301231|20200101|20301231|"
    "Clinic Org|2 Side Rd^^Town^ST^11111||^WPN^PH^^^^^^^^^(555)555-0202"
)
PID_OID = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane||19800203|F"
V3_ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _rep(ctx: Context, raw: str) -> Value:
    return Value(raw, ctx.delimiters, 0, ctx.charset)


def _org(bundle: dict[str, Any], h: ModuleType, name: str) -> dict[str, Any]:
    return next(o for o in h.resources(bundle, "Organization") if o.get("name") == name)


def _rol_org(h: ModuleType, xon: str) -> dict[str, Any]:
    rol = h.seg("ROL", {2: "AD", 3: "AT^Attending^HL70443", 4: "77^Role^Ron", 14: xon})
    return _org(h.run(ADT, PID, PV1, rol), h, xon.split("^")[0])


def test_xon_type_without_number(h: ModuleType) -> None:
    """XON.7 alone gives the Organization an identifier that has a type and no value."""
    org = _rol_org(h, "Good Hosp^L^^^^CMS^XX")
    assert org["identifier"] == [
        {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "code": "XX",
                        "display": "Organization identifier",
                    }
                ]
            }
        }
    ]


def test_xon_check_digit_extension(h: ModuleType) -> None:
    """XON.4 becomes the identifier-checkDigit extension of the XON.10 identifier."""
    org = _rol_org(h, "Auth Prov^L^44^3^M10^^LR^^^A1")
    ident = org["identifier"][0]
    assert ident["value"] == "A1"
    assert ident["extension"] == [
        {"url": "http://hl7.org/fhir/StructureDefinition/identifier-checkDigit", "valueString": "3"}
    ]


def test_hd_location_is_a_site(ctx: Context) -> None:
    """HD[Location] gives a Location whose physicalType is site (si)."""
    dt.DATATYPES["HD[Location]"](_rep(ctx, "Ward 5^1.2.3^ISO"), ctx, None)
    loc = next(e.resource for e in ctx.entries.values() if e.rtype == "Location")
    assert loc["physicalType"]["coding"][0]["code"] == "si"


def test_ei_identifier_system_types_universal_id(ctx: Context) -> None:
    """EI[Identifier-System] keeps EI.4 as the identifier type (table 0301)."""
    ident = dt.ei_identifier_system(_rep(ctx, "EQ1^^1.2.840.99^ISO"), ctx)
    assert ident is not None
    assert ident["system"] == "urn:oid:1.2.840.99"
    assert ident["type"]["coding"][0] == {
        "system": V2_0301,
        "code": "ISO",
        "display": "ISO Object Identifier",
    }


def test_ei_identifier_system_without_type(ctx: Context) -> None:
    """EI[Identifier-System] adds no type when EI.4 is empty."""
    assert dt.ei_identifier_system(_rep(ctx, "EQ1^LAB"), ctx) == {"system": "urn:id:LAB", "value": "EQ1"}


def test_pln_identifier(ctx: Context) -> None:
    """PLN -> Identifier: number, type from table 0338, expiry as period.end."""
    ident = dt.pln_identifier(_rep(ctx, "LIC77^SL^MI^20301231"), ctx)
    assert ident == {
        "value": "LIC77",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0338",
                    "code": "SL",
                    "display": "State license number",
                }
            ]
        },
        "period": {"end": "2030-12-31"},
    }


def test_obx_device_identifier_type(h: ModuleType) -> None:
    """OBX-18 device identifiers carry their universal id type."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F", 18: "EQ1^^f81d4fae-7dec^GUID"})
    device = h.one(h.run(ORU, PID, "OBR|1|P1|F1", obx), "Device")
    assert device["identifier"][0]["type"]["coding"][0]["code"] == "GUID"


def test_prt_device_udi_carrier(h: ModuleType) -> None:
    """PRT-16 -> Device.udiCarrier.deviceIdentifier (IG EI[Device-udiCarrier])."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F"})
    prt = h.seg("PRT", {2: "AD", 4: "EQUIP", 10: "DEV9^LAB", 16: "00643169001763^^2.51.1.1^ISO"})
    device = h.one(h.run(ORU, PID, "OBR|1|P1|F1", obx, prt), "Device")
    assert device["udiCarrier"] == [{"deviceIdentifier": "00643169001763"}]


def test_prt_licence_number_on_role(h: ModuleType) -> None:
    """PRT-24 (PLN) -> a PractitionerRole identifier."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F"})
    prt = h.seg("PRT", {2: "AD", 4: "RO^Observer^HL70912", 5: "5^Pat^Paul", 24: "LIC5^SL"})
    role = h.one(h.run(ORU, PID, "OBR|1|P1|F1", obx, prt), "PractitionerRole")
    assert role["identifier"][0]["value"] == "LIC5"


def test_xcn_degree_display(h: ModuleType) -> None:
    """XCN.7 -> qualification coded through the DegreeLicenseCertificate map (with display)."""
    rol = h.seg("ROL", {2: "AD", 3: "AT^Attending^HL70443", 4: "77^Role^Ron^^^^MD"})
    coding = h.one(h.run(ADT, PID, PV1, rol), "Practitioner")["qualification"][0]["code"]["coding"][0]
    assert coding["display"] == "Doctor of Medicine"


def test_xcn_check_digit(h: ModuleType) -> None:
    """XCN.11 -> the identifier-checkDigit extension of the practitioner identifier."""
    rol = h.seg("ROL", {2: "AD", 3: "AT^Attending^HL70443", 4: "77^Role^Ron^^^^^^HOSP^^7"})
    ident = h.one(h.run(ADT, PID, PV1, rol), "Practitioner")["identifier"][0]
    assert ident["extension"][0]["valueString"] == "7"


def test_xcn_name_validity_range(h: ModuleType) -> None:
    """XCN.17 (DR) -> name.period when XCN.19/XCN.20 are absent."""
    xcn = "77^Role^Ron" + "^" * 14 + "20200101&20211231"
    rol = h.seg("ROL", {2: "AD", 3: "AT^Attending^HL70443", 4: xcn})
    name = h.one(h.run(ADT, PID, PV1, rol), "Practitioner")["name"][0]
    assert name["period"] == {"start": "2020-01-01", "end": "2021-12-31"}


def test_xcn_name_assembly_order(h: ModuleType) -> None:
    """XCN.18 -> the humanname-assembly-order extension of the name."""
    xcn = "77^Role^Ron" + "^" * 15 + "G"
    rol = h.seg("ROL", {2: "AD", 3: "AT^Attending^HL70443", 4: xcn})
    name = h.one(h.run(ADT, PID, PV1, rol), "Practitioner")["name"][0]
    assert name["extension"][0]["url"] == "http://hl7.org/fhir/StructureDefinition/humanname-assembly-order"


def test_prd_practitioner_details(h: ModuleType) -> None:
    """PRD -> a Practitioner with name, address, telecom and PLN licence number."""
    doc = h.one(h.run(REF, PRD, PID), "Practitioner")
    assert doc["name"][0]["family"] == "Kay"
    assert doc["address"][0]["city"] == "Town"
    assert doc["telecom"][0]["value"] == "(555)555-0101"
    assert doc["identifier"][0]["value"] == "LIC77"


def test_prd_practitioner_role(h: ModuleType) -> None:
    """PRD -> a PractitionerRole with the PRD-1 role and the PRD-8/9 period."""
    role = h.one(h.run(REF, PRD, PID), "PractitionerRole")
    assert role["code"][0]["coding"][0]["code"] == "RP"
    assert role["period"] == {"start": "2020-01-01", "end": "2030-12-31"}


def test_prd_role_links_practitioner(h: ModuleType) -> None:
    """The PRD PractitionerRole references the PRD Practitioner."""
    bundle = h.run(REF, PRD, PID)
    role = h.one(bundle, "PractitionerRole")
    assert role["practitioner"]["reference"] == h.entries(bundle, "Practitioner")[0]["fullUrl"]


def test_prd_organization_address_and_telecom(h: ModuleType) -> None:
    """PRD-10 -> the role's Organization, with PRD-11 address and PRD-13 telecom."""
    org = _org(h.run(REF, PRD, PID), h, "Clinic Org")
    assert org["address"][0]["line"] == ["2 Side Rd"]
    assert org["telecom"][0]["value"] == "(555)555-0202"


def test_prd_without_person_adds_nothing(h: ModuleType) -> None:
    """A PRD with neither name nor identifier adds no Practitioner or PractitionerRole."""
    bundle = h.run(REF, "PRD|RP^Referring Provider^HL70286", PID)
    assert h.resources(bundle, "Practitioner") == []
    assert h.resources(bundle, "PractitionerRole") == []


def test_rol_same_instance_id_two_people(h: ModuleType) -> None:
    """Two ROLs with the same ROL-1 for different people stay two PractitionerRoles."""
    rol_a = h.seg("ROL", {1: "1", 2: "AD", 3: "AT^Attending^HL70443", 4: "77^Role^Ron"})
    rol_b = h.seg("ROL", {1: "1", 2: "AD", 3: "AT^Attending^HL70443", 4: "88^Other^Olga"})
    assert len(h.resources(h.run(ADT, PID, PV1, rol_a, rol_b), "PractitionerRole")) == 2


def test_rol_same_instance_id_same_person_merges(h: ModuleType) -> None:
    """Two ROLs with the same ROL-1 for the same person stay one PractitionerRole."""
    rol = h.seg("ROL", {1: "1", 2: "AD", 3: "AT^Attending^HL70443", 4: "77^Role^Ron"})
    assert len(h.resources(h.run(ADT, PID, PV1, rol, rol), "PractitionerRole")) == 1


def test_xad_district_cwe_text(ctx: Context) -> None:
    """XAD.9 as a CWE gives the district its text (IG CWE[string]), not its code."""
    address = dt.xad_address(_rep(ctx, "1 Main St^^Town^ST^11111^US^H^^C17&Fair County&FIPS"), ctx)
    assert address is not None
    assert address["district"] == "Fair County"


def test_xad_district_plain_code(ctx: Context) -> None:
    """XAD.9 without sub-components (the older IS county code) is the district as sent."""
    address = dt.xad_address(_rep(ctx, "1 Main St^^Town^ST^11111^US^H^^C17"), ctx)
    assert address is not None
    assert address["district"] == "C17"


def test_xon_string_falls_back_to_identifier(ctx: Context) -> None:
    """XON[string] is the organisation identifier (XON.10) when XON.1 is empty."""
    assert dt.xon_string(_rep(ctx, "^L^^^^^^^^ORG9"), ctx) == "ORG9"


def _pv1_locations(h: ModuleType, pl: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    bundle = h.run(ADT, PID, f"PV1|1|I|{pl}")
    return bundle, h.resources(bundle, "Location")


def test_pl_comprehensive_identifier(h: ModuleType) -> None:
    """PL.10 -> a second identifier of the most specific level (the bed)."""
    _, locations = _pv1_locations(h, "ICU^12^B^GHH^^^^^^LOC-77&HOSP")
    bed = next(loc for loc in locations if loc["name"] == "B")
    assert bed["identifier"][-1] == {"system": "urn:id:HOSP", "value": "LOC-77"}


def test_pl_assigning_authority(h: ModuleType) -> None:
    """PL.11 -> the assigner Organization of each level's identifier."""
    bundle, locations = _pv1_locations(h, "ICU^12^B^GHH^^^^^^^AUTH1")
    org_url = next(
        e["fullUrl"] for e in h.entries(bundle, "Organization") if e["resource"].get("name") == "AUTH1"
    )
    assert {loc["identifier"][0]["assigner"]["reference"] for loc in locations} == {org_url}


def test_sft_install_date(h: ModuleType) -> None:
    """SFT-6 -> the install date extension on the software Device's version."""
    sft = "SFT|Acme|4.2|Engine|b17||20240101120000"
    device = h.one(h.run(ADT, sft, PID), "Device")
    ext = device["version"][0]["extension"][0]
    assert ext == {
        "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Device.version.installDate",
        "valueDateTime": "2024-01-01T12:00:00-05:00",
    }


def test_prt_organization_unit_type(h: ModuleType) -> None:
    """PRT-7 -> the type of the PRT-8 Organization."""
    obx = h.seg("OBX", {1: "1", 2: "NM", 3: "X^Y^LN", 5: "5", 11: "F"})
    prt = h.seg(
        "PRT", {2: "AD", 4: "RO^Observer^HL70912", 5: "5^Pat^Paul", 7: "1^Hospital^HL70406", 8: "Lab Org"}
    )
    org = _org(h.run(ORU, PID, "OBR|1|P1|F1", obx, prt), h, "Lab Org")
    assert org["type"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0406",
        "code": "1",
        "display": "Hospital",
    }


def test_xcn_degree_is_also_a_name_suffix(h: ModuleType) -> None:
    """XCN.7 is a name suffix after XCN.5 (IG XCN[PractitionerRole] and friends) while the
    qualification stays (IG XCN[Practitioner]); a degree repeated as XCN.21 is kept once."""
    rol = h.seg("ROL", {2: "AD", 3: "AT^Attending^HL70443", 4: "77^Role^Ron^^JR^^MD" + "^" * 14 + "MD"})
    practitioner = h.one(h.run(ADT, PID, PV1, rol), "Practitioner")
    assert practitioner["name"][0]["suffix"] == ["JR", "MD"]
    assert practitioner["qualification"][0]["code"]["coding"][0]["code"] == "MD"


# ----------------------------- CWE concept maps, units, XTN use, XPN called-by, NDL, OBX-18 devices, XAD text


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
    bundle = h.run(ADT, PID_OID, "NK1|1|Roe^Ann|EMC^Emergency^L^CHD")
    rel = h.one(bundle, "RelatedPerson")["relationship"][0]
    assert (V3_ROLE, "CHILD") in _codes(rel)


def test_xpn_called_by_is_nickname(h: ModuleType) -> None:
    """XPN.15 (called by) is a second Patient name with use nickname (IG XPN[HumanName])."""
    pid = "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR||Doe^Jane^^^^^L^^^^^^^^Janie"
    names = h.one(h.run(ADT, pid), "Patient")["name"]
    assert names[1] == {"given": ["Janie"], "use": "nickname"}


def test_xpn_without_called_by_one_name(h: ModuleType) -> None:
    """Without XPN.15 the Patient has the one name."""
    assert len(h.one(h.run(ADT, PID_OID), "Patient")["name"]) == 1


def test_xpn_called_by_not_on_single_name(h: ModuleType) -> None:
    """A single HumanName element (Patient.contact.name) keeps the name without the nickname."""
    nk1 = "NK1|1|Roe^Ann^^^^^L^^^^^^^^Annie|SPO^Spouse^HL70063"
    contact = h.one(h.run(ADT, PID_OID, nk1), "Patient")["contact"][0]
    assert contact["name"]["given"] == ["Ann"]


OBR_NDL = "OBR|1|PL1|FL1|1234-5^Panel^LN|||20240101||||||||||||||||||F|||||||{ndl}"


def _report(h: ModuleType, ndl: str) -> tuple[dict[str, object], dict[str, object]]:
    bundle = h.run(ORU, PID_OID, OBR_NDL.format(ndl=ndl))
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
    return dict(h.run(ORU, PID_OID, OBR_NDL.format(ndl=""), obx))


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


# --------------------------------------------------------------------------- Type-only XCN, CWE[Organization]


def _added(ctx: Context, ref: dict[str, Any]) -> dict[str, Any]:
    """The resource ``ref`` points at in the context's bundle."""
    rid = ref["reference"].removeprefix("urn:uuid:")
    found = [e["resource"] for e in ctx.bundle("b")["entry"] if e["fullUrl"] == f"urn:uuid:{rid}"]
    assert len(found) == 1
    return found[0]


def test_xcn_identifier_type_only_makes_practitioner(h: ModuleType) -> None:
    """An XCN with only XCN.13 valued is a Practitioner whose identifier has that type."""
    bundle = h.run(ADT, PID_OID, "PD1||||^^^^^^^^^^^^MR")
    ident = h.one(bundle, "Practitioner")["identifier"]
    assert ident == [
        {"type": {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}]}}
    ]


def test_xcn_identifier_type_only_referenced(h: ModuleType) -> None:
    """The type-only Practitioner is the Patient's general practitioner (PD1-4)."""
    bundle = h.run(ADT, PID_OID, "PD1||||^^^^^^^^^^^^MR")
    entry = h.entries(bundle, "Practitioner")[0]
    gp = h.one(bundle, "Patient")["generalPractitioner"]
    assert gp == [{"reference": entry["fullUrl"]}]


def test_xcn_empty_makes_no_practitioner(h: ModuleType) -> None:
    """An XCN with neither identifier, name nor identifier type makes no Practitioner."""
    bundle = h.run(ADT, PID_OID, "PD1||||^^^^^^^^^^^^")
    assert h.resources(bundle, "Practitioner") == []


def test_cwe_organization_system_from_coding_system(ctx: Context) -> None:
    """CWE.3 names the system of the Organization's identifier (IG CWE[Organization])."""
    ref = dt.cwe_organization(v("PMC^Vaccine Maker^MVX"), ctx)
    assert ref is not None
    org = _added(ctx, ref)
    assert org["identifier"] == [{"system": "http://hl7.org/fhir/sid/mvx", "value": "PMC"}]


def test_cwe_organization_name_from_original_text(ctx: Context) -> None:
    """Without CWE.2 the original text (CWE.9) is the Organization's name."""
    ref = dt.cwe_organization(v("ORG9^^^^^^^^Maker as sent"), ctx)
    assert ref is not None
    assert _added(ctx, ref)["name"] == "Maker as sent"
