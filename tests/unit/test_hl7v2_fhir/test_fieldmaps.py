"""The field-map engine: how declared rows become FHIR elements (generated per-table plans)."""

from __future__ import annotations

from pyheart.broker.hl7v2 import parse_message
from pyheart.transformers.hl7v2_fhir.context import Context, Options
from pyheart.transformers.hl7v2_fhir.fieldmaps import FieldMap, apply

MSG = 'MSH|^~\\&|APP|FAC|||20240102||ADT^A01|C1|P|2.5.1\rZZZ|A~B|X|Y|Z|""\r'
#: Tables are module-level: the engine keys its generated plans by the table's identity.
LIST = (FieldMap("ZZZ", 1, "Patient", "a.b[]", "ST[string]"),)
FIRST_WINS = (
    FieldMap("ZZZ", 2, "Patient", "c", "ST[string]"),
    FieldMap("ZZZ", 3, "Patient", "c", "ST[string]"),
)
KEYED = (FieldMap("ZZZ", 4, "Patient", "ext[]", "ST[string]", key="valueString", fixed={"url": "u"}),)
CONDITIONAL = (FieldMap("ZZZ", 2, "Patient", "d", "ST[string]", when=lambda s: s.raw(3) == "nope"),)
NULL = (FieldMap("ZZZ", 5, "Patient", "e", "ST[string]"),)


def _apply(rows: tuple[FieldMap, ...]) -> dict[str, object]:
    msg = parse_message(MSG)
    seg = msg.segment("ZZZ")
    assert seg is not None
    return apply(rows, seg, {}, Context(msg, Options()))


def test_list_path_takes_every_repetition() -> None:
    """A ``[]`` path gains one item per repetition, under its parent elements."""
    assert _apply(LIST) == {"a": {"b": ["A", "B"]}}


def test_scalar_keeps_first_value() -> None:
    """A scalar element keeps the value of the first row that sets it."""
    assert _apply(FIRST_WINS) == {"c": "X"}


def test_key_wraps_value_with_fixed_part() -> None:
    """A row with ``key`` puts the value into ``{**fixed, key: value}``."""
    assert _apply(KEYED) == {"ext": [{"url": "u", "valueString": "Z"}]}


def test_condition_skips_row() -> None:
    """A row whose ``when`` is false for the segment maps nothing."""
    assert _apply(CONDITIONAL) == {}


def test_null_value_maps_nothing() -> None:
    """An HL7 null (``""``) maps nothing."""
    assert _apply(NULL) == {}


def test_rxo32_read_as_its_version_defines_it() -> None:
    """RXO-32 was an XON (name first) and is a CWE (code, text, system) from v2.8: the dispensing
    pharmacy's name and identifier come from the components that version gives them."""
    from pyheart.transformers.hl7v2_fhir import convert

    def pharmacy(version: str, rxo32: str) -> dict[str, object]:
        rxo = "RXO|1234^Drug^RXNORM" + "|" * 31 + rxo32
        text = "\r".join(
            [
                f"MSH|^~\\&|APP|FAC|||20240102||RDE^O11^RDE_O11|C1|P|{version}",
                "PID|1||MRN1^^^HOSP^MR||Doe^Jane",
                "ORC|NW|P1",
                rxo,
            ]
        )
        entries = convert(text)["entry"]
        request = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "MedicationRequest")
        ref = request["dispenseRequest"]["performer"]["reference"]
        return next(e["resource"] for e in entries if e["fullUrl"] == ref)

    old = pharmacy("2.5.1", "Corner Pharmacy^^PH77")
    new = pharmacy("2.8", "PH77^Corner Pharmacy^NCPDP")
    assert (old["name"], new["name"]) == ("Corner Pharmacy", "Corner Pharmacy")
    assert new["identifier"][0]["value"] == "PH77"


def test_rxo_requested_strength_on_the_medication() -> None:
    """IG RXO-18/19 per RXO-25/26 -> the Medication's ingredient strength (the drug itself as
    the item); without RXO-25 the strength is per 1."""
    from pyheart.transformers.hl7v2_fhir import convert

    def medication(rxo_tail: str) -> dict[str, object]:
        text = "\r".join(
            [
                "MSH|^~\\&|APP|FAC|||20240102||RDE^O11^RDE_O11|C1|P|2.5.1",
                "PID|1||MRN1^^^HOSP^MR||Doe^Jane",
                "ORC|NW|P1",
                "RXO|1234^Drug^RXNORM" + "|" * 17 + rxo_tail,
            ]
        )
        entries = convert(text)["entry"]
        return next(e["resource"] for e in entries if e["resource"]["resourceType"] == "Medication")

    ingredient = medication("250|mg^milligram^UCUM||||||5|mL^milliliter^UCUM")["ingredient"][0]
    assert ingredient["itemCodeableConcept"]["coding"][0]["code"] == "1234"
    strength = ingredient["strength"]
    assert (strength["numerator"]["value"], strength["numerator"]["code"]) == (250, "mg")
    assert (strength["denominator"]["value"], strength["denominator"]["code"]) == (5, "mL")
    assert medication("250|mg")["ingredient"][0]["strength"]["denominator"] == {"value": 1}


def test_orc4_group_numbers_on_the_report() -> None:
    """IG ORC[DiagnosticReport] ORC-4: the placer group number as an identifier typed PGN (an EI
    before v2.8.2); as an EIP, its placer (PGN) and filler (FGN) parts."""
    from pyheart.transformers.hl7v2_fhir import convert

    def identifiers(orc4: str) -> list[tuple[str, str]]:
        text = "\r".join(
            [
                "MSH|^~\\&|APP|FAC|||20240102||ORU^R01^ORU_R01|C1|P|2.5.1",
                "PID|1||MRN1^^^HOSP^MR||Doe^Jane",
                f"ORC|RE|P1|F1|{orc4}",
                "OBR|1|P1|F1|X^Y^LN",
            ]
        )
        entries = convert(text)["entry"]
        report = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "DiagnosticReport")
        return [(i["type"]["coding"][0]["code"], i["value"]) for i in report["identifier"] if "value" in i]

    assert ("PGN", "G1") in identifiers("G1^LAB")
    found = identifiers("G1&LAB^G2&LIS")
    assert ("PGN", "G1") in found
    assert ("FGN", "G2") in found
