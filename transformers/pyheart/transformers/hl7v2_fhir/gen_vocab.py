"""Generate :mod:`._vocab` from the HL7 v2-to-FHIR IG code-system (concept map) CSVs.

Run at development time, after the IG tables change, and commit the result::

    python -m pyheart.transformers.hl7v2_fhir.gen_vocab \
        [--ig /work/shared/corpus/hl7-v2-to-fhir-ig/mappings] [--out <path of _vocab.py>]
    ruff format transformers/pyheart/transformers/hl7v2_fhir/_vocab.py

The output is a plain Python module (dict literals), so the converter loads it in microseconds and
never reads CSV at run time.
"""

from __future__ import annotations

import argparse
import csv
import pprint
import sys
from pathlib import Path

from pyheart.transformers.hl7v2_fhir.corpus import DEFAULT_ROOT

DEFAULT_IG = DEFAULT_ROOT / "hl7-v2-to-fhir-ig" / "mappings"
OUT = Path(__file__).with_name("_vocab.py")

HEADER = '''"""Vocabulary maps generated from the HL7 v2-to-FHIR IG concept-map CSVs. DO NOT EDIT.

Regenerate with ``python -m pyheart.transformers.hl7v2_fhir.gen_vocab``.
``VOCAB[map name][v2 code] = (FHIR code, display, FHIR system)``;
``V2_TABLES[table id][v2 code] = v2 text`` (e.g. ``V2_TABLES["0203"]["MR"]``).
"""

# ruff: noqa: E501, RUF001
'''


def map_name(path: Path) -> str:
    """``HL7 Concept Map_ AdministrativeSex - Sheet1.csv`` -> ``AdministrativeSex``."""
    stem = path.name.split("Concept Map_ ", 1)[-1]
    return stem.rsplit(" - ", 1)[0].strip()


def read_map(path: Path) -> tuple[dict[str, tuple[str, str, str]], dict[str, dict[str, str]]]:
    """One concept map: v2 code -> (code, display, system), plus the v2 table texts it lists."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 3:
        return {}, {}
    header = [h.strip() for h in rows[1]]
    # Layouts differ between sheets: find the FHIR-side columns by their headers.
    try:
        code_i = header.index("Code", 1)
    except ValueError:
        return {}, {}
    rest = header[code_i + 1 :]
    disp_i = code_i + 1 + rest.index("Display") if "Display" in rest else code_i + 1
    sys_i = code_i + 1 + rest.index("Code System") if "Code System" in rest else code_i + 3
    alt_disp_i = code_i + 1
    out: dict[str, tuple[str, str, str]] = {}
    tables: dict[str, dict[str, str]] = {}
    for row in rows[2:]:
        if len(row) <= sys_i:
            continue
        v2 = row[0].strip() or (row[code_i].strip() if path.name.find("PrimaryLanguage") >= 0 else "")
        if not v2:
            continue
        table = row[2].strip().upper().removeprefix("HL7")
        if table.isdigit() and row[1].strip():
            tables.setdefault(table, {}).setdefault(v2, row[1].strip())
        code = row[code_i].strip()
        system = row[sys_i].strip()
        if not code or not system.startswith(("http", "urn")):
            continue
        display = row[disp_i].strip() or row[alt_disp_i].strip()
        out.setdefault(v2, (code, display, system))
    return out, tables


def build(ig: Path) -> tuple[dict[str, dict[str, tuple[str, str, str]]], dict[str, dict[str, str]]]:
    """The vocabulary maps and v2 table texts of the IG's concept-map CSVs."""
    vocab: dict[str, dict[str, tuple[str, str, str]]] = {}
    tables: dict[str, dict[str, str]] = {}
    for path in sorted((ig / "codesystems").glob("*.csv")):
        entries, texts = read_map(path)
        if entries:
            vocab[map_name(path)] = entries
        for table, codes in texts.items():
            for code, text in codes.items():
                tables.setdefault(table, {}).setdefault(code, text)
    return vocab, tables


def generate(ig: Path) -> str:
    """The text of the generated module."""
    vocab, tables = build(ig)
    body = [
        HEADER,
        "VOCAB: dict[str, dict[str, tuple[str, str, str]]] = " + pprint.pformat(vocab, width=110),
        "",
        "V2_TABLES: dict[str, dict[str, str]] = " + pprint.pformat(tables, width=110),
        "",
    ]
    return "\n".join(body)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ig", type=Path, default=DEFAULT_IG, help="the IG mappings/ folder")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the module")
    args = parser.parse_args(argv)
    args.out.write_text(generate(args.ig), encoding="utf-8")
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
