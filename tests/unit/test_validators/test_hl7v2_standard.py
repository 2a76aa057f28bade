"""Structure knowledge derived from hl7apy: required segments, structure resolution, matching."""

from __future__ import annotations

from pyheart.validators import hl7v2_standard as std


def test_required_segments_adt_a01() -> None:
    """ADT_A01 requires MSH, EVN, PID and PV1."""
    assert std.required_segments("2.5", "ADT_A01") == ("MSH", "EVN", "PID", "PV1")


def test_required_segments_through_groups() -> None:
    """Required segments of required groups count: ORU_R01 requires OBR (in ORDER_OBSERVATION)."""
    assert std.required_segments("2.5.1", "ORU_R01") == ("MSH", "OBR")


def test_required_segments_unknown_structure() -> None:
    """An unknown structure requires nothing."""
    assert std.required_segments("2.5", "NOPE_X01") == ()


def test_version_mapping() -> None:
    """2.7.1 reads the 2.7 tables; unknown versions map to None."""
    assert [std.hl7apy_version(v) for v in ("2.5.1", "2.7.1", "2.9", "")] == ["2.5.1", "2.7", None, None]


def test_resolve_structure_order() -> None:
    """MSH-9.3 first, then TYPE_EVENT, then table 0354, then ACK."""
    assert std.resolve_structure("2.5", "ADT", "A04", "ADT_A01") == "ADT_A01"
    assert std.resolve_structure("2.5", "ADT", "A04") == "ADT_A01"
    assert std.resolve_structure("2.5", "ADT", "A02") == "ADT_A02"
    assert std.resolve_structure("2.5", "ACK", "") == "ACK"
    assert std.resolve_structure("2.5", "ZZZ", "Z01") is None


def test_match_clean_message() -> None:
    """A conforming ORU_R01 segment sequence has no problems."""
    names = ["MSH", "PID", "PV1", "ORC", "OBR", "OBX", "NTE", "OBX", "OBR", "OBX"]
    assert std.match_structure("2.5.1", "ORU_R01", names) == []


def test_match_missing_in_entered_group() -> None:
    """A group entered by its optional first segment still needs its required ones."""
    problems = std.match_structure("2.5.1", "ORU_R01", ["MSH", "PID", "ORC", "OBX"])
    assert [(p.kind, p.segment, p.index, p.group) for p in problems] == [
        ("missing", "OBR", 3, "ORU_R01_ORDER_OBSERVATION")
    ]


def test_match_out_of_order() -> None:
    """A segment out of order leaves its slot missing and is unexpected where it stands."""
    problems = std.match_structure("2.5", "ADT_A01", ["MSH", "PID", "EVN", "PV1"])
    assert [(p.kind, p.segment, p.index) for p in problems] == [
        ("missing", "EVN", 1),
        ("missing", "PV1", 2),
        ("unexpected", "EVN", 2),
    ]


def test_match_allows_z_segments_anywhere() -> None:
    """Z-segments are skipped by the matcher."""
    assert std.match_structure("2.5", "ADT_A01", ["MSH", "ZA1", "EVN", "PID", "ZB2", "PV1"]) == []


def test_segment_fields() -> None:
    """Field cardinalities come from the segment definition (PID-3 required and repeating)."""
    fields = {n: (least, most) for n, least, most in std.segment_fields("2.5", "PID")}
    assert fields[3] == (1, -1)
    assert fields[1] == (0, 1)
