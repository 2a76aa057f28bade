"""Datatype maps (IG datatype maps): DTM, XPN, XAD, CX, XTN, CWE, XCN, HD, EI, PL, CQ, code systems."""

from __future__ import annotations

from pyheart.broker.hl7v2 import Value, parse_message
from pyheart.broker.hl7v2.parser import DEFAULT_DELIMITERS
from pyheart.transformers.hl7v2_fhir import datatypes as dt
from pyheart.transformers.hl7v2_fhir.context import Context


def v(raw: str) -> Value:
    """One field repetition."""
    return Value(raw, DEFAULT_DELIMITERS)


def test_dtm_date_only() -> None:
    """A DTM date becomes a FHIR date."""
    assert dt.dtm("20240102") == "2024-01-02"


def test_dtm_keeps_month_precision() -> None:
    """A DTM with year and month only keeps that precision."""
    assert dt.dtm("202401") == "2024-01"


def test_dtm_minutes_and_zone() -> None:
    """Minutes without seconds gain ':00'; the zone is kept as given."""
    assert dt.dtm("202401021230-0500") == "2024-01-02T12:30:00-05:00"


def test_dtm_fraction_kept() -> None:
    """Fractional seconds are kept."""
    assert dt.dtm("20240102123045.123+0100") == "2024-01-02T12:30:45.123+01:00"


def test_dtm_without_zone_keeps_day_precision() -> None:
    """A time without a zone and no default zone keeps the date only (no invented zone)."""
    assert dt.dtm("202401021230") == "2024-01-02"


def test_dtm_without_zone_uses_default_zone() -> None:
    """A time without a zone takes the message's default zone when there is one."""
    assert dt.dtm("202401021230", "+02:00") == "2024-01-02T12:30:00+02:00"


def test_dtm_rejects_garbage() -> None:
    """A value that is not a DTM maps to nothing."""
    assert dt.dtm("2024-01-02") is None


def test_dtm_rejects_year_zero() -> None:
    """FHIR has no year 0000."""
    assert dt.dtm("00000101") is None


def test_dtm_rejects_days_the_month_lacks() -> None:
    """Feb 30 and Feb 29 of a common year are no dates; Feb 29 of a leap year is."""
    assert (dt.dtm("20240230"), dt.dtm("20230229"), dt.dtm("20240229")) == (None, None, "2024-02-29")


def test_dtm_zone_beyond_fhir_range_keeps_day_precision() -> None:
    """An offset past +14:00 (or with 60+ minutes) is no zone: the value keeps its day only."""
    assert dt.dtm("202401011200+2500") == "2024-01-01"
    assert dt.dtm("202401011200+0175") == "2024-01-01"
    assert dt.dtm("202401011200-1400") == "2024-01-01T12:00:00-14:00"


def test_dtm_leap_second_keeps_day_precision() -> None:
    """Second 60 (FHIR-legal, but no datetime library holds it) gives the day, not a failure."""
    assert dt.dtm("20240101120060+0000") == "2024-01-01"


def test_integer_is_32_bit() -> None:
    """FHIR integer/positiveInt/unsignedInt: 32-bit, with the type's minimum."""
    assert dt.integer("2147483647") == 2**31 - 1
    assert dt.integer("99999999999999") is None
    assert (dt.integer("0", 1), dt.integer("0", 0), dt.integer("-3")) == (None, 0, -3)
    assert dt.integer("1.5") is None


def test_coding_code_without_outer_or_double_spaces() -> None:
    """A code keeps single inner spaces only; a blank code is left out."""
    assert dt.coding(" A  B ", "urn:x") == {"system": "urn:x", "code": "A B"}
    assert dt.coding("  ", "urn:x") == {"system": "urn:x"}


def test_instant_needs_time() -> None:
    """An instant needs a time: a bare date is not one."""
    assert dt.instant("20240102", "+00:00") is None


def test_message_zone_is_default(ctx: Context) -> None:
    """MSH-7's zone is the default zone of the message (HL7 v2 rule)."""
    assert ctx.default_tz == "-05:00"


def test_xpn_human_name(ctx: Context) -> None:
    """XPN -> HumanName: family, given names, suffix, prefix and use from table 0200."""
    name = dt.xpn_human_name(v("Everyman^Adam^Alan^Jr^Dr^^L"), ctx)
    assert name == {
        "family": "Everyman",
        "given": ["Adam", "Alan"],
        "prefix": ["Dr"],
        "suffix": ["Jr"],
        "use": "official",
    }


def test_fn_parts_are_family_extensions(ctx: Context) -> None:
    """IG FN[HumanName]: FN.2..5 (own prefix, own surname, partner's prefix and surname) are
    humanname extensions of family, in the XPN and in the XCN's name alike."""
    base = "http://hl7.org/fhir/StructureDefinition/humanname-"
    name = dt.xpn_human_name(v("de Vries-van Dijk&de&Vries&van&Dijk^Anna"), ctx)
    assert name is not None
    assert name["family"] == "de Vries-van Dijk"
    assert name["_family"] == {
        "extension": [
            {"url": base + "own-prefix", "valueString": "de"},
            {"url": base + "own-name", "valueString": "Vries"},
            {"url": base + "partner-prefix", "valueString": "van"},
            {"url": base + "partner-name", "valueString": "Dijk"},
        ]
    }
    assert "_family" not in (dt.xpn_human_name(v("Everyman^Adam"), ctx) or {})
    ref = ctx.practitioner_from_xcn(v("123^Beethoven&van^Ludwig"))
    assert ref is not None
    practitioner = next(e.resource for e in ctx.entries.values() if e.rtype == "Practitioner")
    assert practitioner["name"][0]["_family"] == {
        "extension": [{"url": base + "own-prefix", "valueString": "van"}]
    }


def test_xpn_without_names_is_nothing(ctx: Context) -> None:
    """An XPN with neither family nor given name maps to nothing."""
    assert dt.xpn_human_name(v("^^^Jr"), ctx) is None


def test_xad_address(ctx: Context) -> None:
    """XAD -> Address: lines, city, state, postal code, country and use from table 0190."""
    addr = dt.xad_address(v("12 Main St^Apt 4^Springfield^IL^62701^USA^H"), ctx)
    assert addr == {
        "line": ["12 Main St", "Apt 4"],
        "city": "Springfield",
        "state": "IL",
        "postalCode": "62701",
        "country": "USA",
        "use": "home",
    }


def test_xad_mailing_is_type(ctx: Context) -> None:
    """XAD.7 'M' (mailing) is an Address.type, not a use."""
    assert dt.xad_address(v("1 Box^^Town^^^^M"), ctx) == {"line": ["1 Box"], "city": "Town", "type": "postal"}


def test_cx_identifier(ctx: Context) -> None:
    """CX -> Identifier: value, system from an ISO assigning authority, type from table 0203."""
    ident = dt.cx_identifier(v("12345^^^HOSP&1.2.3.4&ISO^MR"), ctx)
    assert ident is not None
    assert (ident["system"], ident["value"], ident["type"]["coding"][0]["code"]) == (
        "urn:oid:1.2.3.4",
        "12345",
        "MR",
    )


def test_cx_namespace_system(ctx: Context) -> None:
    """A namespace-only assigning authority becomes a system under the configured base."""
    ident = dt.cx_identifier(v("12345^^^HOSP^MR"), ctx)
    assert ident is not None
    assert ident["system"] == "urn:id:HOSP"


def test_cx_assigner_is_organization(ctx: Context) -> None:
    """CX.4 also becomes the assigner Organization (IG HD[Organization])."""
    ident = dt.cx_identifier(v("12345^^^HOSP^MR"), ctx)
    assert ident is not None
    assert ident["assigner"]["reference"].startswith("urn:uuid:")


def test_cx_without_value_is_nothing(ctx: Context) -> None:
    """A CX without CX.1 maps to nothing."""
    assert dt.cx_identifier(v("^^^HOSP^MR"), ctx) is None


def test_xtn_phone(ctx: Context) -> None:
    """XTN -> ContactPoint: a phone with its use from table 0201."""
    assert dt.xtn_contact_point(v("(555)555-1234^PRN^PH"), ctx) == {
        "system": "phone",
        "value": "(555)555-1234",
        "use": "home",
    }


def test_xtn_email(ctx: Context) -> None:
    """XTN with equipment 'Internet' takes the address from XTN.4."""
    assert dt.xtn_contact_point(v("^NET^Internet^a@example.org"), ctx) == {
        "system": "email",
        "value": "a@example.org",
    }


def test_xtn_structured_number(ctx: Context) -> None:
    """Without XTN.1, the number is assembled from country, area, local number and extension;
    each part is also kept as its contactpoint extension (IG XTN.5..8)."""
    tel = dt.xtn_contact_point(v("^WPN^PH^^1^555^5551234^99"), ctx)
    base = "http://hl7.org/fhir/StructureDefinition/contactpoint-"
    assert tel == {
        "system": "phone",
        "value": "+1 555 5551234 X99",
        "use": "work",
        "extension": [
            {"url": base + "country", "valueString": "1"},
            {"url": base + "area", "valueString": "555"},
            {"url": base + "local", "valueString": "5551234"},
            {"url": base + "extension", "valueString": "99"},
        ],
    }


def test_xtn_cell_phone_is_mobile(ctx: Context) -> None:
    """Equipment 'CP' is a phone used as mobile."""
    tel = dt.xtn_contact_point(v("5551234^^CP"), ctx)
    assert tel is not None
    assert (tel["system"], tel["use"]) == ("phone", "mobile")


def test_cwe_codeable_concept(ctx: Context) -> None:
    """CWE -> CodeableConcept: a known coding system name becomes its URI; CWE.9 is the text."""
    cc = dt.cwe_codeable_concept(v("2345-7^Glucose^LN^^^^^^Glucose level"), ctx)
    assert cc == {
        "coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}],
        "text": "Glucose level",
    }


def test_cwe_alternate_coding(ctx: Context) -> None:
    """CWE.4-6 are a second coding."""
    cc = dt.cwe_codeable_concept(v("A^Alpha^L^123^One^SCT"), ctx)
    assert cc is not None
    assert [c["system"] for c in cc["coding"]] == ["urn:id:L", "http://snomed.info/sct"]


def test_cwe_vocabulary_map(ctx: Context) -> None:
    """A code from an HL7 table is translated with the IG concept map (0002 -> v3 MaritalStatus)."""
    cc = dt.cwe_codeable_concept(v("M^Married^HL70002"), ctx, "MaritalStatus")
    assert cc is not None
    assert cc["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
        "code": "M",
        "display": "Married",
    }


def test_cwe_text_only(ctx: Context) -> None:
    """A CWE with only a display becomes a text-only CodeableConcept."""
    assert dt.cwe_codeable_concept(v("^Chest pain"), ctx) == {"text": "Chest pain"}


def test_cwe_code_with_vocabulary(ctx: Context) -> None:
    """CWE[code] maps through the concept map (table 0001 -> administrative-gender)."""
    assert dt.cwe_code(v("F"), ctx, "AdministrativeSex") == "female"


def test_cwe_code_unmapped_is_nothing(ctx: Context) -> None:
    """A code the required binding's map does not know gives nothing, not an invalid code."""
    assert dt.cwe_code(v("ZZ"), ctx, "AdministrativeSex") is None


def test_code_system_v2_table(ctx: Context) -> None:
    """An HL7nnnn coding system name is the v2 table's code system."""
    assert dt.code_system("HL70203", ctx) == "http://terminology.hl7.org/CodeSystem/v2-0203"


def test_code_system_oid(ctx: Context) -> None:
    """An OID as coding system name becomes a urn:oid."""
    assert dt.code_system("2.16.840.1.113883.6.1", ctx) == "urn:oid:2.16.840.1.113883.6.1"


def test_coding_normalises_whitespace() -> None:
    """FHIR codes carry no leading, trailing or double spaces."""
    assert dt.coding(" A  B ", "urn:x") == {"system": "urn:x", "code": "A B"}


def test_hd_identifier_iso(ctx: Context) -> None:
    """HD with an ISO universal id -> an Identifier holding the OID as a URI, typed by HD.3."""
    assert dt.hd_identifier(v("LAB^1.2.3^ISO"), ctx) == {
        "system": "urn:ietf:rfc:3986",
        "value": "urn:oid:1.2.3",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0301",
                    "code": "ISO",
                    "display": "ISO Object Identifier",
                }
            ]
        },
    }


def test_hd_organization(ctx: Context) -> None:
    """HD[Organization]: namespace id and universal id become the Organization's identifiers."""
    ref = ctx.organization_from_hd(v("LAB^1.2.3^ISO"))
    assert ref is not None
    org = next(e.resource for e in ctx.entries.values() if e.resource["resourceType"] == "Organization")
    assert [i["value"] for i in org["identifier"]] == ["LAB", "urn:oid:1.2.3"]


def test_ei_identifier(ctx: Context) -> None:
    """EI -> Identifier: entity id with the system from the universal id."""
    assert dt.ei_identifier(v("ORD1^LAB^1.2.3^ISO"), ctx) == {"system": "urn:oid:1.2.3", "value": "ORD1"}


def test_xcn_practitioner(ctx: Context) -> None:
    """XCN -> a Practitioner with identifier and name; the reference points at it."""
    ref = ctx.practitioner_from_xcn(v("1234^Careful^Carl^^^Dr^^^NPI&2.16.840.1.113883.4.6&ISO"))
    assert ref is not None
    prac = next(e.resource for e in ctx.entries.values() if e.resource["resourceType"] == "Practitioner")
    assert (prac["identifier"][0]["system"], prac["name"][0]["family"]) == (
        "urn:oid:2.16.840.1.113883.4.6",
        "Careful",
    )


def test_xcn_same_id_same_practitioner(ctx: Context) -> None:
    """The same practitioner id gives the same resource (one entry, one reference)."""
    a = ctx.practitioner_from_xcn(v("1234^Careful^Carl^^^^^^NPI"))
    b = ctx.practitioner_from_xcn(v("1234^Careful^C^^^^^^NPI"))
    assert a == b


def test_pl_location_hierarchy(ctx: Context) -> None:
    """PL -> one Location per level, bed partOf room partOf point of care partOf facility."""
    ref = ctx.location_from_pl(v("ICU^12^B^GHH"))
    assert ref is not None
    locs = {
        e.resource["name"]: e.resource
        for e in ctx.entries.values()
        if e.resource["resourceType"] == "Location"
    }
    assert locs["B"]["physicalType"]["coding"][0]["code"] == "bd"
    assert locs["B"]["partOf"] == ctx.ref(
        "Location", locs["12"]["id"] if "id" in locs["12"] else _rid(ctx, locs["12"])
    )


def _rid(ctx: Context, res: dict[str, object]) -> str:
    return next(rid for rid, e in ctx.entries.items() if e.resource is res)


def test_cq_quantity(ctx: Context) -> None:
    """CQ -> Quantity with its UCUM unit."""
    assert dt.cq_quantity(v("5^mL&milliliter&UCUM"), ctx) == {
        "value": 5,
        "unit": "milliliter",
        "system": "http://unitsofmeasure.org",
        "code": "mL",
    }


def test_escapes_are_decoded(ctx: Context) -> None:
    """Escape sequences are decoded in mapped values."""
    msg = parse_message("MSH|^~\\&|A|B|C|D|20240102||ADT^A01|1|P|2.5\rPID|1||1||Smith\\T\\Jones^Ann\r")
    local = Context(msg, ctx.options)
    name = dt.xpn_human_name(msg.segment("PID").value(5), local)  # type: ignore[union-attr]
    assert name is not None
    assert name["family"] == "Smith&Jones"


def test_dln_identifier(ctx: Context) -> None:
    """DLN -> Identifier: number, issuing state as system, expiry as period.end, type DL."""
    ident = dt.dln_identifier(v("D123^NC^20300101"), ctx)
    assert ident == {
        "system": "urn:id:NC",
        "value": "D123",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                    "code": "DL",
                    "display": "Driver's license number",
                }
            ]
        },
        "period": {"end": "2030-01-01"},
    }
