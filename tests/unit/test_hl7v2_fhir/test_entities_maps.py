"""Entity resources built by the shared datatype maps and the provider segments: XON and XCN
details, HD[Location], EI/PLN identifiers, PRT devices, PRD providers, ROL role ids."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pyheart.broker.hl7v2 import Value
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
