"""HL7 v2 (ER7) parsing, escaping and acknowledgments."""

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
