"""The ``fhir-to-hl7v2`` plugin: untrusted input, errors without values, config and registry."""

from __future__ import annotations

import io
import json
import logging
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pytest

from pyheart.broker.contracts import Format, Header, Message
from pyheart.broker.errors import PluginConfigError, TransformError
from pyheart.broker.hl7v2 import parse_message
from pyheart.broker.logs import configure_logging
from pyheart.transformers.fhir_hl7v2 import FhirInputError, FhirToHl7v2, fhir_to_hl7v2

CANARY = "Zqxcanary7731"


def error_texts(exc: BaseException) -> str:
    """The text of an exception and of everything chained to it."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts.append(repr(seen) + str(seen))
        seen = seen.__cause__ or seen.__context__
    return " ".join(parts)


def test_invalid_json_is_a_transform_error_with_a_position() -> None:
    """Bytes that are not JSON raise FhirInputError naming the character position."""
    with pytest.raises(FhirInputError, match=r"input is not valid JSON \(at character 1\)"):
        fhir_to_hl7v2(b"{not json")


def test_invalid_element_is_reported_by_path(fx: ModuleType) -> None:
    """A malformed birthDate is reported at Bundle.entry[0].resource.birthDate."""
    p = fx.patient()
    p["birthDate"] = "3rd of May"
    with pytest.raises(FhirInputError) as info:
        fhir_to_hl7v2(json.dumps(fx.bundle(p)))
    assert info.value.locations == ["Bundle.entry[0].resource.birthDate"]


def test_unvalidated_input_of_the_wrong_shape_is_a_transform_error(fx: ModuleType) -> None:
    """With validate_input off, an element of a shape FHIR does not allow (a string where a
    HumanName belongs) is a TransformError naming the failure's class, not a crash or a value."""
    p = fx.patient()
    doctor = fx.practitioner()
    doctor["name"] = [CANARY]
    inputs = fx.bundle(p, doctor, fx.encounter(p))
    with pytest.raises(TransformError, match=r"cannot map the FHIR input \(AttributeError\)") as info:
        fhir_to_hl7v2(json.dumps(inputs), {"validate_input": False})
    assert info.value.locations == ["input"]
    assert CANARY not in error_texts(info.value)


def test_unvalidated_bundle_entry_not_a_list_is_rejected() -> None:
    """With validate_input off, a Bundle whose entry is not a list is a clear input error."""
    with pytest.raises(FhirInputError, match=r"Bundle\.entry is not a list"):
        fhir_to_hl7v2(
            {"resourceType": "Bundle", "type": "collection", "entry": 1.5}, {"validate_input": False}
        )


def test_validation_error_maps_to_an_operation_outcome(fx: ModuleType) -> None:
    """The error's report is an OperationOutcome with one error issue per bad element."""
    p = fx.patient()
    p["birthDate"] = "3rd of May"
    with pytest.raises(FhirInputError) as info:
        fhir_to_hl7v2(json.dumps(p))
    outcome = info.value.operation_outcome()
    assert [(i["severity"], i["expression"]) for i in outcome["issue"]] == [("error", ["Patient.birthDate"])]


def test_unknown_resource_type_is_rejected() -> None:
    """A resourceType FHIR R4 does not define is a clear error."""
    with pytest.raises(FhirInputError, match="input resourceType is not a FHIR R4 resource"):
        fhir_to_hl7v2(json.dumps({"resourceType": "Spaceship"}))


def test_unknown_resource_type_inside_a_bundle_is_rejected() -> None:
    """A Bundle entry with an unknown resourceType fails validation, not the process."""
    data = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Nope"}}]}
    with pytest.raises(FhirInputError, match="Bundle failed FHIR R4 validation"):
        fhir_to_hl7v2(json.dumps(data))


def test_json_that_is_not_an_object_is_rejected() -> None:
    """A JSON array is not a resource."""
    with pytest.raises(FhirInputError, match="a JSON object is expected"):
        fhir_to_hl7v2(b"[1, 2]")


def test_resources_with_no_v2_message_are_reported() -> None:
    """An input with nothing to map names its resource types."""
    org = {"resourceType": "Organization", "name": "x"}
    with pytest.raises(TransformError, match="no resource in the input maps to an HL7 v2 message") as info:
        fhir_to_hl7v2(json.dumps(org))
    assert info.value.locations == ["Organization"]


def test_immunization_without_a_date_names_the_element() -> None:
    """RXA-3 needs a date: its absence is reported at Immunization.occurrenceDateTime."""
    imm = {
        "resourceType": "Immunization",
        "status": "completed",
        "vaccineCode": {"text": "v"},
        "patient": {"reference": "Patient/1"},
        "occurrenceString": "last spring",
    }
    with pytest.raises(TransformError) as info:
        fhir_to_hl7v2(json.dumps(imm))
    assert info.value.locations == ["Immunization.occurrenceDateTime"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.__setitem__("birthDate", CANARY),
        lambda p: p.__setitem__("deceasedBoolean", CANARY),
        lambda p: p["name"][0].__setitem__("family", 12345),
        lambda p: p.__setitem__("multipleBirthInteger", CANARY),
    ],
)
def test_canary_value_never_reaches_errors_or_logs(fx: ModuleType, mutate: Any) -> None:
    """A unique value in bad input appears in no exception text (with causes), OperationOutcome or log."""
    stream = io.StringIO()
    configure_logging(logging.DEBUG, stream)
    p = fx.patient()
    p["identifier"][0]["value"] = CANARY
    mutate(p)
    plugin = FhirToHl7v2()
    with pytest.raises(FhirInputError) as info:
        plugin.transform(Message(json.dumps(p).encode(), Format.FHIR_JSON))
    outcome = json.dumps(info.value.operation_outcome())
    assert CANARY not in error_texts(info.value) + outcome + stream.getvalue()


def test_canary_value_never_reaches_headers(fx: ModuleType) -> None:
    """Output headers carry the message type and control id, never a value of the input."""
    p = fx.patient()
    p["identifier"][0]["value"] = CANARY
    (out,) = FhirToHl7v2().transform(Message(json.dumps(p).encode(), Format.FHIR_JSON))
    assert CANARY not in json.dumps(dict(out.headers))


def test_transform_returns_one_message_per_output_with_headers(fx: ModuleType) -> None:
    """Each output is HL7 v2 bytes with content type, message type, trigger and control id headers."""
    p = fx.patient()
    data = json.dumps(fx.bundle(p, fx.immunization(p), fx.service_request(p))).encode()
    outputs = FhirToHl7v2().transform(Message(data, Format.FHIR_JSON, {Header.MESSAGE_ID: "m1"}))
    got = [
        (o.format, o.header(Header.MESSAGE_TYPE), o.header(Header.TRIGGER), o.header(Header.MESSAGE_ID))
        for o in outputs
    ]
    assert got == [(Format.HL7V2, "VXU", "V04", "m1"), (Format.HL7V2, "ORM", "O01", "m1")]


def test_control_id_header_matches_msh10(fx: ModuleType) -> None:
    """The control-id header is the message's MSH-10."""
    (out,) = FhirToHl7v2().transform(Message(json.dumps(fx.patient()).encode(), Format.FHIR_JSON))
    assert out.header(Header.CONTROL_ID) == parse_message(out.payload).control_id


def test_transform_does_not_mutate_the_input_message(fx: ModuleType) -> None:
    """The input message keeps its payload, format and headers."""
    msg = Message(json.dumps(fx.patient()).encode(), Format.FHIR_JSON, {Header.MESSAGE_ID: "m1"})
    before = (msg.payload, msg.format, dict(msg.headers))
    FhirToHl7v2().transform(msg)
    assert (msg.payload, msg.format, dict(msg.headers)) == before


def test_plugin_config_is_applied(fx: ModuleType) -> None:
    """The plugin's config reaches the messages (version and sending application)."""
    plugin = FhirToHl7v2({"version": "2.6", "sending_application": "EHR"})
    (out,) = plugin.transform(Message(json.dumps(fx.patient()).encode(), Format.FHIR_JSON))
    msh = parse_message(out.payload).msh
    assert (msh.get(3), msh.get(12)) == ("EHR", "2.6")


def test_unknown_config_key_is_rejected(fx: ModuleType) -> None:
    """A config key the schema does not declare is a PluginConfigError naming it."""
    plugin = FhirToHl7v2({"verison": "2.5"})
    with pytest.raises(PluginConfigError, match="verison: unknown key"):
        plugin.transform(Message(json.dumps(fx.patient()).encode(), Format.FHIR_JSON))


def test_unsupported_version_is_rejected() -> None:
    """Only versions whose messages are checked in tests can be configured."""
    with pytest.raises(PluginConfigError, match=r"version: must be one of: 2\.5, 2\.5\.1, 2\.6"):
        fhir_to_hl7v2(b"{}", {"version": "2.3"})


def test_metadata_declares_formats_and_schema() -> None:
    """The plugin consumes FHIR JSON, produces HL7 v2 and publishes its config schema."""
    plugin = FhirToHl7v2()
    meta = plugin.get_metadata()
    assert (meta.name, plugin.consumes[0], plugin.produces, "version" in meta.config_schema) == (
        "fhir-to-hl7v2",
        Format.FHIR_JSON,
        (Format.HL7V2,),
        True,
    )


def test_registered_as_entry_point() -> None:
    """``fhir-to-hl7v2`` is a ``pyheart.plugins`` entry point loading the plugin class."""
    (ep,) = [e for e in entry_points(group="pyheart.plugins") if e.name == "fhir-to-hl7v2"]
    assert ep.load() is FhirToHl7v2


async def test_lifecycle_is_idempotent() -> None:
    """initialize and cleanup succeed twice."""
    plugin = FhirToHl7v2()
    assert [
        await plugin.initialize(),
        await plugin.initialize(),
        await plugin.cleanup(),
        await plugin.cleanup(),
    ] == [True] * 4
