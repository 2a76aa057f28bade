"""Offline conversion and validation (``pyheart convert`` / ``pyheart validate``), no Kafka involved.

The input format is detected from the bytes; transformers and validators are found through the
registry's plugin catalogue (the ``pyheart.plugins`` entry points) by the media types they declare,
so a third-party plugin installed beside PyHeart takes part without any change here.
"""

from __future__ import annotations

import codecs
import inspect
from collections.abc import Sequence

import orjson

from pyheart.broker.contracts import Format, Message, TransformerPlugin, ValidationReport, ValidatorPlugin
from pyheart.broker.errors import MessageError, PluginError, PyHeartError
from pyheart.broker.registry import PluginRegistry

#: ``--to`` names and the media types they mean.
TARGETS: dict[str, str] = {"fhir": Format.FHIR_JSON, "hl7v2": Format.HL7V2}


class OfflineError(PyHeartError):
    """Input that cannot be converted or validated offline (format unknown, no plugin for it)."""

    code = "offline-input"


def detect_format(data: bytes) -> str:
    """The media type of ``data``: HL7 v2 ER7, FHIR JSON, DICOM JSON or DICOM Part 10."""
    if len(data) > 132 and data[128:132] == b"DICM":
        return Format.DICOM
    text = data[3:] if data.startswith(codecs.BOM_UTF8) else data
    head = text.lstrip(b" \t\r\n\x0b\x00")[:3]
    if head in (b"MSH", b"FHS", b"BHS"):
        return Format.HL7V2
    if head[:1] in (b"{", b"["):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise OfflineError("input looks like JSON but does not parse") from None
        first = doc[0] if isinstance(doc, list) and doc else doc
        if isinstance(first, dict) and "resourceType" in first:
            return Format.FHIR_JSON
        if isinstance(first, dict) and first and all(len(k) == 8 for k in first):
            return Format.DICOM_JSON
        raise OfflineError("JSON input is neither a FHIR resource nor a DICOM JSON dataset")
    raise OfflineError("unrecognised input: expected HL7 v2 (MSH...), FHIR JSON, DICOM JSON or a DICOM file")


def _catalogue() -> tuple[PluginRegistry, list[str]]:
    registry = PluginRegistry()
    registry.discover_entry_points()
    return registry, registry.available_plugins()


def find_transformer(
    source: str, target: str, name: str | None = None
) -> tuple[str, type[TransformerPlugin]]:
    """The installed transformer converting ``source`` to ``target`` (or the one called ``name``)."""
    registry, names = _catalogue()
    for candidate in [name] if name else names:
        cls = registry.resolve_class(candidate)
        if not (inspect.isclass(cls) and issubclass(cls, TransformerPlugin)) or cls.buffering:
            continue
        if source in cls.consumes and target in cls.produces:
            return candidate, cls
    raise OfflineError(f"no installed transformer converts {source} to {target}")


def convert(data: bytes, to: str, plugin: str | None = None) -> list[Message]:
    """Convert one input (any supported format) to ``to`` (``fhir`` or ``hl7v2``)."""
    if to not in TARGETS:
        raise OfflineError(f"unknown target '{to}' (choose from: {', '.join(TARGETS)})")
    source = detect_format(data)
    target = TARGETS[to]
    if source == target:
        raise OfflineError(f"input is already {target}")
    plugin_id, cls = find_transformer(source, target, plugin)
    transformer = cls()
    registry = PluginRegistry()
    registry.register_plugin(plugin_id, transformer)
    result = transformer.transform(Message(payload=data, format=source))
    if result is None:
        return []
    return [result] if isinstance(result, Message) else list(result)


def validate(data: bytes, validators: Sequence[str] = ()) -> ValidationReport:
    """Run the default validators for the input's format (or the named ones); one merged report."""
    fmt = detect_format(data)
    registry, names = _catalogue()
    chosen = list(validators) or names
    report = ValidationReport(validator="pyheart validate")
    ran = 0
    for name in chosen:
        cls = registry.resolve_class(name)
        if not (inspect.isclass(cls) and issubclass(cls, ValidatorPlugin)):
            if validators:
                raise OfflineError(f"'{name}' is not a validator plugin")
            continue
        if fmt not in cls.accepts or (not validators and not cls.default_gate):
            continue
        validator = cls()
        try:
            registry.register_plugin(name, validator)
        except PluginError as exc:
            raise OfflineError(f"validator '{name}' needs configuration: {exc}") from None
        report = report.merged(validator.validate(Message(payload=data, format=fmt)))
        ran += 1
    if ran == 0:
        raise OfflineError(f"no installed validator accepts {fmt}")
    return report


__all__ = [
    "TARGETS",
    "MessageError",
    "OfflineError",
    "convert",
    "detect_format",
    "find_transformer",
    "validate",
]
