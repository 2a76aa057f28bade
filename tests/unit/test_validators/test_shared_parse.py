"""Gates that check one payload share its parse."""

from __future__ import annotations

import pytest

from pyheart.broker.errors import ParseError
from pyheart.validators._base import parse_hl7

ER7 = b"MSH|^~\\&|A||||20240101||ADT^A01|1|P|2.5\rPID|1"


def test_same_payload_object_parsed_once() -> None:
    """The same payload object yields the same parsed message."""
    payload = bytes(ER7)
    assert parse_hl7(payload, "latin-1") is parse_hl7(payload, "latin-1")


def test_equal_but_distinct_payloads_parsed_apart() -> None:
    """An equal payload in another object is parsed on its own."""
    assert parse_hl7(bytes(ER7), "latin-1") is not parse_hl7(bytes(bytearray(ER7)), "latin-1")


def test_parse_error_repeats_with_same_text() -> None:
    """A cached parse failure raises a fresh ParseError with the same text and locations."""
    payload = b"PID|1"
    texts = []
    for _ in range(2):
        with pytest.raises(ParseError) as caught:
            parse_hl7(payload, "latin-1")
        texts.append((str(caught.value), caught.value.locations))
    assert texts == [("message must start with an MSH segment", ["segment 1"])] * 2
