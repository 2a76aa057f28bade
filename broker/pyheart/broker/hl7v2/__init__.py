"""HL7 v2 (ER7) parsing, escaping and acknowledgments."""

from pyheart.broker import native as _native

# The parser may run from the optional native build (see pyheart.broker.native).
__path__ = _native.package_path(__name__, __path__)

from pyheart.broker.hl7v2.parser import (
    DEFAULT_DELIMITERS,
    Delimiters,
    Hl7Batch,
    Hl7Message,
    Segment,
    Value,
    escape,
    parse_batch,
    parse_batch_file,
    parse_message,
    unescape,
)

__all__ = [
    "DEFAULT_DELIMITERS",
    "Delimiters",
    "Hl7Batch",
    "Hl7Message",
    "Segment",
    "Value",
    "escape",
    "parse_batch",
    "parse_batch_file",
    "parse_message",
    "unescape",
]
