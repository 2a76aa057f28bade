"""Coverage of the HL7 v2-to-FHIR IG mapping tables by this converter.

    python -m pyheart.transformers.hl7v2_fhir.coverage [--ig DIR] [--json] [--missing]

Reads the IG's segment maps (``mappings/segments/*.csv``: which fields map to which FHIR
elements), datatype maps, concept maps and message maps, and compares them with what the code
declares: the field-map rows of :mod:`.fieldmaps` (plus the fields handlers map in code,
``CODE_MAPPED``), the datatype maps of :data:`.datatypes.DATATYPES` (plus those implemented inside
other functions, :data:`IMPLEMENTED_IN_CODE`), the generated vocabularies and the segment handlers.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path
from typing import Any

import orjson

from pyheart.transformers.hl7v2_fhir._vocab import VOCAB
from pyheart.transformers.hl7v2_fhir.converter import HANDLERS
from pyheart.transformers.hl7v2_fhir.corpus import DEFAULT_ROOT
from pyheart.transformers.hl7v2_fhir.datatypes import DATATYPES
from pyheart.transformers.hl7v2_fhir.fieldmaps import CODE_MAPPED, FIELD_MAPS

DEFAULT_IG = DEFAULT_ROOT / "hl7-v2-to-fhir-ig" / "mappings"

#: IG datatype maps implemented inside other code rather than as a :data:`.datatypes.DATATYPES`
#: entry (their signature or result differs from a datatype map's), by IG name: the function
#: that implements them, dotted from this package (``module.function`` or ``module.Class.method``).
IMPLEMENTED_IN_CODE: dict[str, str] = {
    "CNN[Practitioner]": "context.Context.practitioner_from_cnn",
    "CQ[unsignedInt]": "converter._offset_minutes",
    "CWE[Device]": "converter._entering_device",
    "CX[RelatedPerson-Mother]": "converter.h_pid",
    "DLD[Location-Discharge]": "converter.h_pv1",
    "DTM[Annotation-Time]": "converter.h_nte",
    "ED[Attachment]": "converter._attachment",
    "EI[Condition]": "converter.h_dg1",
    "EI[Procedure]": "converter.h_pr1",
    "EIP[Identifier-FillerAssignedIdentifier]": "datatypes.eip_identifiers",
    "EIP[Identifier-PlacerAssignedIdentifier]": "datatypes.eip_identifiers",
    "FN[HumanName]": "datatypes.family_parts",
    "FT[Annotation-Comment]": "converter.h_nte",
    "HD[MessageHeader.destination-endpoint]": "converter._set_endpoint",
    "HD[MessageHeader.destination-name]": "converter._message_header",
    "HD[MessageHeader.source-endpoint]": "converter._set_endpoint",
    "HD[MessageHeader.source-name]": "converter._message_header",
    "HD[uri]": "datatypes.hd_system",
    "MSG[MessageHeader]": "fieldmaps._msg_coding",
    "NDL[PractitionerRole]": "fieldmaps._ndl_practitioner",
    "RI[Timing]": "converter._ri_timing",
    "RP[Attachment]": "converter._rp_attachment",
    "RPT[Timing]": "converter._tq1_timing",
    "SAD[Address]": "datatypes.xad_address",
    "SN[Quantity]": "converter._structured_numeric",
    "SN[Range]": "converter._structured_numeric",
    "SN[Ratio]": "converter._structured_numeric",
    "TQ[Appointment]": "converter.h_sch",
    "TQ[MedicationRequest]": "converter._medication_tq",
    "TQ[ServiceRequest]": "converter._order_tq",
    "XCN[Annotation-Author]": "context.Context.practitioner_from_xcn",
    "XCN[PractitionerRole]": "converter._practitioner_role",
    "XCN[RelatedPerson]": "converter._prt_related_person",
    "XON[Location]": "converter._ordering_facility",
}
_FIELD = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)")
_NAME = re.compile(r"R4_ (.+?) - ")


def _map_name(path: Path) -> str:
    m = _NAME.search(path.name)
    return m.group(1) if m else path.stem


def ig_segment_maps(ig: Path) -> dict[tuple[str, str], set[int]]:
    """(segment, target) -> the fields the IG maps to a FHIR element."""
    out: dict[tuple[str, str], set[int]] = {}
    for path in sorted((ig / "segments").glob("*.csv")):
        name = _map_name(path)
        seg, _, target = name.partition("[")
        target = target.rstrip("]")
        fields = out.setdefault((seg, target), set())
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for row in list(csv.reader(fh))[2:]:
                if len(row) < 10:
                    continue
                m = _FIELD.match(row[1].strip())
                if m and (row[9].strip() or (len(row) > 16 and row[16].strip())):
                    fields.add(int(m.group(2)))
    return out


def declared_fields() -> dict[tuple[str, str], set[int]]:
    """(segment, target) -> the fields this converter maps."""
    out: dict[tuple[str, str], set[int]] = {}
    for (seg, resource), rows in FIELD_MAPS.items():
        target = "Patient" if resource == "Patient.contact" else resource
        out.setdefault((seg, target), set()).update(r.field for r in rows)
    for key, fields in CODE_MAPPED.items():
        out.setdefault(key, set()).update(fields)
    # The converter's NTE rows apply to whichever resource the note follows.
    for target in ("Observation", "ServiceRequest", "DocumentReference", "Appointment-Comment"):
        out.setdefault(("NTE", target), set()).add(3)
    return out


def ig_messages(ig: Path) -> dict[str, list[str]]:
    """IG message structure -> the segments it maps."""
    out: dict[str, list[str]] = {}
    for path in sorted((ig / "messages").glob("*.csv")):
        structure = _map_name(path)
        segs: list[str] = []
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for row in list(csv.reader(fh))[2:]:
                if len(row) > 10 and row[10].strip():
                    seg = row[10].split("[")[0].strip()
                    if seg and seg not in segs:
                        segs.append(seg)
        out[structure] = segs
    return out


def ig_names(ig: Path, folder: str) -> list[str]:
    """Map names in one IG folder (datatypes or codesystems)."""
    out = []
    for path in sorted((ig / folder).glob("*.csv")):
        name = path.name.split("R4_ ")[-1].split("Concept Map_ ")[-1].rsplit(" - ", 1)[0].strip()
        out.append(name)
    return out


def report(ig: Path) -> dict[str, Any]:
    """The coverage figures."""
    ig_maps = ig_segment_maps(ig)
    ours = declared_fields()
    segments = []
    total_ig = total_done = 0
    for (seg, target), fields in sorted(ig_maps.items()):
        done = fields & ours.get((seg, target), set())
        total_ig += len(fields)
        total_done += len(done)
        segments.append(
            {
                "map": f"{seg}[{target}]",
                "ig_fields": len(fields),
                "implemented": len(done),
                "missing": [f"{seg}-{n}" for n in sorted(fields - done)],
                "handler": seg in HANDLERS or seg in ("MSH", "SFT"),
            }
        )
    messages = {
        structure: {
            "segments": segs,
            "handled": [s for s in segs if s in HANDLERS or s in ("MSH", "SFT")],
        }
        for structure, segs in ig_messages(ig).items()
    }
    datatypes = ig_names(ig, "datatypes")
    vocab = ig_names(ig, "codesystems")
    return {
        "fields": {"ig": total_ig, "implemented": total_done},
        "segment_maps": segments,
        "messages": messages,
        "datatype_maps": {
            "ig": len(datatypes),
            "implemented": sorted(d for d in datatypes if d in DATATYPES or d in IMPLEMENTED_IN_CODE),
            "in_code": {d: IMPLEMENTED_IN_CODE[d] for d in sorted(datatypes) if d in IMPLEMENTED_IN_CODE},
            "missing": sorted(d for d in datatypes if d not in DATATYPES and d not in IMPLEMENTED_IN_CODE),
        },
        "concept_maps": {
            "ig": len(vocab),
            "generated": sorted(v for v in vocab if v in VOCAB),
            "without_entries": sorted(v for v in vocab if v not in VOCAB),
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Print the coverage matrix (or JSON)."""
    parser = argparse.ArgumentParser(description="coverage of the HL7 v2-to-FHIR IG mapping tables")
    parser.add_argument("--ig", type=Path, default=DEFAULT_IG)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--missing", action="store_true", help="list the unmapped fields of each map")
    args = parser.parse_args(argv)
    if not (args.ig / "segments").is_dir():
        sys.stderr.write(
            f"coverage: no IG mapping tables under {args.ig} (set PYHEART_CORPUS or pass --ig)\n"
        )
        return 1
    rep = report(args.ig)
    out = sys.stdout
    if args.json:
        out.write(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    out.write("IG message maps (segments with a handler / segments the IG maps)\n")
    for structure, m in rep["messages"].items():
        missing = [s for s in m["segments"] if s not in m["handled"]]
        note = f"   not handled: {', '.join(missing)}" if missing else ""
        out.write(f"  {structure:<10}{len(m['handled']):>3}/{len(m['segments']):<3}{note}\n")
    out.write("\nIG segment maps (fields implemented / fields the IG maps)\n")
    for s in rep["segment_maps"]:
        if not s["ig_fields"]:
            continue
        pct = s["implemented"] / s["ig_fields"]
        line = f"  {s['map']:<52}{s['implemented']:>3}/{s['ig_fields']:<3}{pct:>6.0%}"
        if args.missing and s["missing"]:
            line += "   missing: " + " ".join(s["missing"])
        out.write(line + "\n")
    f = rep["fields"]
    out.write(f"\nfields: {f['implemented']}/{f['ig']} ({f['implemented'] / max(f['ig'], 1):.0%})\n")
    d = rep["datatype_maps"]
    out.write(
        f"datatype maps: {len(d['implemented'])}/{d['ig']}"
        f" ({len(d['in_code'])} of them in code, not in DATATYPES)\n"
    )
    if args.missing:
        for name, where in d["in_code"].items():
            out.write(f"  {name:<46} in {where}\n")
        if d["missing"]:
            out.write("  missing: " + " ".join(d["missing"]) + "\n")
    c = rep["concept_maps"]
    out.write(f"concept maps generated: {len(c['generated'])}/{c['ig']} (the rest list no v2 codes)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
