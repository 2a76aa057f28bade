"""The plain conversion function used by the plugin, the CLI, the benchmarks and the tests."""

from __future__ import annotations

from typing import Any

from pyheart.broker.errors import DATA_SHAPE_ERRORS, ParseError, TransformError
from pyheart.broker.hl7v2 import Hl7Message, parse_message
from pyheart.transformers.hl7v2_fhir.context import Options
from pyheart.transformers.hl7v2_fhir.converter import convert_message as _convert_message


def convert_message(msg: Hl7Message, options: Options | None = None) -> dict[str, Any]:
    """Convert a parsed message to a FHIR R4 Bundle dict.

    Raises :class:`TransformError` (locations, no values) when a segment cannot be mapped.
    """
    return _convert_message(msg, options)


def convert(data: bytes | str, options: Options | None = None) -> dict[str, Any]:
    """Parse one ER7 message and convert it to a FHIR R4 transaction Bundle dict.

    Raises :class:`ParseError` for malformed ER7 and :class:`TransformError` when the message
    cannot be mapped; neither quotes message content.
    """
    failure = None
    try:
        msg = parse_message(data)
    except ParseError:
        raise
    except (ValueError, IndexError, UnicodeError) as exc:
        failure = type(exc).__name__
    if failure is not None:
        # Raised outside the except block so no exception context (which may quote values) rides along.
        raise ParseError(f"malformed HL7 v2 message ({failure})", locations=["message"]) from None
    try:
        return _convert_message(msg, options)
    except TransformError:
        raise
    except DATA_SHAPE_ERRORS as exc:
        failure = type(exc).__name__
    raise TransformError(f"cannot map message ({failure})", locations=["message"]) from None


__all__ = ["convert", "convert_message"]
