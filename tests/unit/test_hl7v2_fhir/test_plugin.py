"""The ``hl7v2-to-fhir`` plugin: formats, no input mutation, config, registry, errors without PHI."""

from __future__ import annotations

import io
import logging
from importlib.metadata import entry_points
from types import ModuleType

import orjson
import pytest

from pyheart.broker.contracts import Format, Header, Message
from pyheart.broker.errors import ParseError, PluginConfigError, TransformError
from pyheart.broker.logs import configure_logging
from pyheart.broker.registry import PluginRegistry
from pyheart.transformers.hl7v2_fhir import Hl7v2ToFhir, convert
from pyheart.transformers.hl7v2_fhir import converter as cv

CANARY = "Qzxcanary5523"


def error_texts(exc: BaseException) -> str:
    """The text of an exception and of everything chained or attached to it."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts.append(repr(seen) + str(seen) + " ".join(str(a) for a in seen.args))
        parts.extend(getattr(seen, "locations", []))
        seen = seen.__cause__ or seen.__context__
    return " ".join(parts)


def _adt(h: ModuleType, family: str = "Doe") -> bytes:
    return str(h.er7("ADT^A01^ADT_A01", f"PID|1||MRN1^^^HOSP^MR||{family}^Jane||19800203|F")).encode()


def test_transform_returns_fhir_bundle(h: ModuleType) -> None:
    """transform() returns a FHIR JSON message holding a transaction Bundle."""
    out = Hl7v2ToFhir().transform(Message(_adt(h), Format.HL7V2))
    bundle = orjson.loads(out.payload)
    assert (out.format, out.headers[Header.CONTENT_TYPE], bundle["type"]) == (
        Format.FHIR_JSON,
        Format.FHIR_JSON,
        "transaction",
    )


def test_transform_does_not_mutate_input(h: ModuleType) -> None:
    """The input message is unchanged and keeps its headers; the output carries them on."""
    msg = Message(_adt(h), Format.HL7V2, headers={Header.MESSAGE_ID: "m-1"})
    out = Hl7v2ToFhir().transform(msg)
    assert (msg.payload, msg.format, dict(msg.headers)) == (_adt(h), Format.HL7V2, {Header.MESSAGE_ID: "m-1"})
    assert out.headers[Header.MESSAGE_ID] == "m-1"


def test_transform_rejects_other_formats() -> None:
    """A payload that is not HL7 v2 is refused, naming both media types."""
    with pytest.raises(
        TransformError, match="hl7v2-to-fhir consumes application/hl7-v2, got application/json"
    ):
        Hl7v2ToFhir().transform(Message(b"{}", Format.JSON))


def test_malformed_er7_is_parse_error() -> None:
    """Bytes that are not ER7 raise ParseError with a location."""
    with pytest.raises(ParseError, match="message must start with an MSH segment") as info:
        Hl7v2ToFhir().transform(Message(b"hello", Format.HL7V2))
    assert info.value.locations == ["segment 1"]


def test_metadata_and_formats() -> None:
    """The plugin is a transformer from HL7 v2 to FHIR JSON that publishes its config schema."""
    plugin = Hl7v2ToFhir()
    meta = plugin.get_metadata()
    assert (meta.name, meta.plugin_type.value, plugin.consumes, plugin.produces) == (
        "hl7v2-to-fhir",
        "transformer",
        (Format.HL7V2,),
        (Format.FHIR_JSON,),
    )
    assert set(meta.config_schema) == {
        "system_base",
        "code_system_base",
        "bundle_type",
        "default_timezone",
        "message_header",
        "provenance",
        "assigner_organizations",
        "patient_contacts",
    }


def test_unknown_config_key_rejected(h: ModuleType) -> None:
    """An undeclared config key is a PluginConfigError naming the key."""
    with pytest.raises(PluginConfigError, match="bundel_type: unknown key"):
        Hl7v2ToFhir({"bundel_type": "batch"}).transform(Message(_adt(h), Format.HL7V2))


def test_bad_bundle_type_rejected(h: ModuleType) -> None:
    """bundle_type must be transaction or batch."""
    with pytest.raises(PluginConfigError, match="bundle_type: must be one of: transaction, batch"):
        Hl7v2ToFhir({"bundle_type": "collection"}).transform(Message(_adt(h), Format.HL7V2))


def test_config_batch_applies(h: ModuleType) -> None:
    """A valid config reaches the conversion (bundle_type batch)."""
    out = Hl7v2ToFhir({"bundle_type": "batch"}).transform(Message(_adt(h), Format.HL7V2))
    assert orjson.loads(out.payload)["type"] == "batch"


def test_registry_accepts_plugin() -> None:
    """The registry validates the plugin's schema and config and registers it."""
    registry = PluginRegistry()
    assert registry.register_plugin("hl7v2-to-fhir", Hl7v2ToFhir({"bundle_type": "batch"})) is True


def test_registered_as_entry_point() -> None:
    """``hl7v2-to-fhir`` is a ``pyheart.plugins`` entry point loading the plugin class."""
    (ep,) = [e for e in entry_points(group="pyheart.plugins") if e.name == "hl7v2-to-fhir"]
    assert ep.load() is Hl7v2ToFhir


async def test_lifecycle_is_idempotent() -> None:
    """initialize and cleanup succeed twice."""
    plugin = Hl7v2ToFhir()
    assert [
        await plugin.initialize(),
        await plugin.initialize(),
        await plugin.cleanup(),
        await plugin.cleanup(),
    ] == [
        True,
        True,
        True,
        True,
    ]


def test_canary_reaches_the_bundle(h: ModuleType) -> None:
    """A unique value in the input appears in the Bundle (the canary is a real value)."""
    out = Hl7v2ToFhir().transform(Message(_adt(h, CANARY), Format.HL7V2))
    assert CANARY.encode() in out.payload
    assert all(CANARY not in v for v in out.headers.values())


def test_canary_not_in_parse_error(h: ModuleType) -> None:
    """A malformed message carrying the canary fails without the canary in the error chain."""
    bad = f"MSH|^~\\&|A|B|C|D|20240102||ADT^A01|1|P|2.5\rPID|1||{CANARY}\rp{CANARY}|x\r".encode()
    with pytest.raises(ParseError) as info:
        Hl7v2ToFhir().transform(Message(bad, Format.HL7V2))
    assert CANARY not in error_texts(info.value)


def test_canary_not_in_transform_error_or_logs(h: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mapping failure whose own text quotes the value surfaces as a TransformError naming the
    segment only: the canary is in no exception text, cause, context or log line."""

    def failing(ctx: object, seg: object, st: object) -> None:
        raise ValueError(f"bad value {CANARY}")

    monkeypatch.setitem(cv.HANDLERS, "ZCN", failing)
    stream = io.StringIO()
    configure_logging(logging.DEBUG, stream)
    msg = h.er7("ADT^A01^ADT_A01", f"PID|1||M1||{CANARY}", f"ZCN|{CANARY}").encode()
    with pytest.raises(TransformError, match=r"cannot map segment ZCN \(ValueError\)") as info:
        Hl7v2ToFhir().transform(Message(msg, Format.HL7V2))
    assert info.value.locations == ["ZCN (segment 3)"]
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert CANARY not in error_texts(info.value)
    assert CANARY not in stream.getvalue()


def test_convert_function_accepts_text(h: ModuleType) -> None:
    """convert() takes str as well as bytes and gives the same Bundle."""
    data = _adt(h)
    assert convert(data.decode()) == convert(data)
