"""Helpers for the HL7 v2 -> FHIR tests: build messages, convert them, find resources.

Tests get this module as the session fixture ``h`` (``h.run("ADT^A01^ADT_A01", "PID|...")``,
``h.one(bundle, "Patient")``); every value is synthetic.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import pytest

from pyheart.broker.hl7v2 import parse_message
from pyheart.transformers.hl7v2_fhir import Options, convert
from pyheart.transformers.hl7v2_fhir.context import Context

MSH = "MSH|^~\\&|SENDAPP|SENDFAC|RECVAPP|RECVFAC|20240102123000-0500||{type}|{ctl}|P|2.5.1"


def er7(msg_type: str, *segments: str, ctl: str = "CTL1") -> str:
    """An ER7 message of type ``msg_type`` (e.g. ``ADT^A01^ADT_A01``) with ``segments``."""
    return "\r".join([MSH.format(type=msg_type, ctl=ctl), *segments]) + "\r"


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment with ``fields`` at their HL7 positions: ``seg("OBR", {1: "1", 25: "F"})``."""
    top = max(fields, default=0)
    return "|".join([name, *(fields.get(i, "") for i in range(1, top + 1))])


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    """The resources of type ``rtype`` in ``bundle``."""
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def entries(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    """The entries whose resource is of type ``rtype``."""
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def one(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    """The single resource of type ``rtype``."""
    found = resources(bundle, rtype)
    assert len(found) == 1, f"expected one {rtype}, found {len(found)}"
    return found[0]


def run(msg_type: str, *segments: str, ctl: str = "CTL1", **options: Any) -> dict[str, Any]:
    """Convert a message built from ``segments``."""
    return convert(er7(msg_type, *segments, ctl=ctl), Options(**options) if options else None)


@pytest.fixture
def ctx() -> Context:
    """A conversion context for datatype tests (sender SENDFAC, zone -05:00 from MSH-7)."""
    return Context(parse_message(er7("ADT^A01^ADT_A01", "PID|1||1")), Options())


@pytest.fixture(scope="session")
def h() -> ModuleType:
    """This module's helpers."""
    return sys.modules[__name__]
