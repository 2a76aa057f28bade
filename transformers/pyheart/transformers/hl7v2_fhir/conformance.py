"""Agreement with Microsoft FHIR-Converter's expected bundles.

    python -m pyheart.transformers.hl7v2_fhir.conformance [--corpus DIR] [--json] [--detail TYPE]
        [--missed] [--gaps] [--ms-bases]

For every (template, input, expected) row of ``pairs.tsv``, the expected Bundle's primitive (leaf)
values are collected as ``(resource type, element path without indexes, value)``; ids, references,
full URLs, request lines and narrative are left out because they are random or generated there.
Agreement is the share of those values that our Bundle for the same input also carries, per
message type (template) and overall (micro-averaged over all values). Date-times with a time and a
zone are compared as instants (normalised to UTC): FHIR-Converter re-expresses every time in the
converting machine's zone, while we keep the sender's offset; both denote the same instant.

Review of the metric (2026-11, no scoring change): paths drop list indexes, so the order of
repetitions does not count; values are compared exactly per resource type and path, which
credits neither a value in the wrong element nor a differently-cased text (both are real
differences a receiver sees). FHIR-Converter names local identifier and code systems under
``http://example.com/v2-to-fhir-converter/``; we keep the configured ``system_base`` instead
and ``--ms-bases`` shows what that naming alone is worth (about 1.9 points). Its displays come
from the v2 tables where ours come from the IG concept maps, and it maps some fields the IG
maps elsewhere (CWE.2 as ``text``, OBX-16 role codes from v2-0443, '--' joined descriptions): those
values stay in the denominator and count as missed, so the figure understates IG conformance
rather than overstating it.

``--gaps`` sorts every missed value by rules that look only at the two Bundles (never at file
names or corpus values): FHIR-Converter's placeholder ``http://example.com/`` systems and URLs,
its generated narrative status, its ``--``-joined texts most of whose parts we carry, a display where we
carry the same code with the IG map's or code system's display, a value we carry at another element of
the same resource type, and the rest. The first four are FHIR-Converter artefacts; the figure
without them is the ceiling a converter that copies none of them can reach.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pyheart.transformers.hl7v2_fhir.api import convert
from pyheart.transformers.hl7v2_fhir.context import Options
from pyheart.transformers.hl7v2_fhir.corpus import DEFAULT_ROOT

DEFAULT_CORPUS = DEFAULT_ROOT / "ms-fhir-converter"
_SKIP_KEYS = frozenset({"id", "reference", "fullUrl", "div", "request", "response"})

Leaf = tuple[str, str, str]


def leaves(bundle: dict[str, Any]) -> set[Leaf]:
    """The comparable leaf values of a Bundle: (resource type, path, value as text)."""
    out: set[Leaf] = set()
    for entry in bundle.get("entry", []):
        res = entry.get("resource") or {}
        rtype = res.get("resourceType", "")
        for path, value in _walk(res, ""):
            out.add((rtype, path, value))
    return out


def _walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _SKIP_KEYS or key == "resourceType":
                continue
            yield from _walk(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, path)
    elif isinstance(node, bool):
        yield path, "true" if node else "false"
    elif isinstance(node, float) and node.is_integer():
        yield path, str(int(node))
    elif isinstance(node, str) and _DATETIME.match(node):
        yield path, _utc(node)
    else:
        yield path, str(node)


_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _utc(text: str) -> str:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: FHIR-Converter's own prefixes for local identifier systems and code systems (its configuration,
#: not a mapping rule): ``--ms-bases`` converts with them to separate naming from mapping.
MS_BASES = Options(
    system_base="http://example.com/v2-to-fhir-converter/Identifier/",
    code_system_base="http://example.com/v2-to-fhir-converter/CodeSystem/",
)


#: ``--gaps`` categories, in the order they are tried; the first four are FHIR-Converter artefacts.
GAP_CATEGORIES: dict[str, str] = {
    "converter-naming": "FHIR-Converter's placeholder http://example.com/ systems and URLs",
    "narrative": "FHIR-Converter's generated narrative (text.status)",
    "joined-text": "FHIR-Converter's '--'-joined texts, most of whose parts we carry",
    "display-text": "same code, FHIR-Converter's display (ours: the IG map's or code system's)",
    "elsewhere": "value we carry at another element of the same resource type",
    "other": "not carried",
}
ARTEFACTS = ("converter-naming", "narrative", "joined-text", "display-text")


def gaps(expected: dict[str, Any], ours: dict[str, Any]) -> Counter[str]:
    """The expected Bundle's values that ``ours`` does not carry, counted by ``GAP_CATEGORIES``."""
    want, got = leaves(expected), leaves(ours)
    values_by_type: dict[str, set[str]] = {}
    for rtype, _, value in got:
        values_by_type.setdefault(rtype, set()).add(value)
    all_values = {value for _, _, value in got}
    our_codes = {(rtype, path, code) for rtype, path, code, _ in _codings(ours)}
    their_codes: dict[Leaf, set[str]] = {}
    for rtype, path, code, display in _codings(expected):
        their_codes.setdefault((rtype, path, display), set()).add(code)
    out: Counter[str] = Counter()
    for rtype, path, value in want - got:
        carried = values_by_type.get(rtype, set())
        if "http://example.com/" in value:
            kind = "converter-naming"
        elif path == "text.status" or path.endswith(".text.status"):
            kind = "narrative"
        elif "--" in value and _mostly_carried(value.split("--"), all_values):
            kind = "joined-text"
        elif path.endswith(".display") and any(
            (rtype, path[: -len(".display")], code) in our_codes
            for code in their_codes.get((rtype, path[: -len(".display")], value), ())
        ):
            kind = "display-text"
        elif value in carried:
            kind = "elsewhere"
        else:
            kind = "other"
        out[kind] += 1
    return out


def _mostly_carried(parts: list[str], carried: set[str]) -> bool:
    """At least half of the non-empty ``parts`` are values we carry."""
    parts = [p for p in parts if p]
    return bool(parts) and 2 * sum(p in carried for p in parts) >= len(parts)


def _codings(bundle: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(resource type, path of the element, code, display) of every element with both."""
    for entry in bundle.get("entry", []):
        res = entry.get("resource") or {}
        yield from _coded(res, "", res.get("resourceType", ""))


def _coded(node: Any, path: str, rtype: str) -> Iterator[tuple[str, str, str, str]]:
    if isinstance(node, dict):
        code, display = node.get("code"), node.get("display")
        if isinstance(code, str) and isinstance(display, str):
            yield rtype, path, code, display
        for key, value in node.items():
            if key not in _SKIP_KEYS and key != "resourceType":
                yield from _coded(value, f"{path}.{key}" if path else key, rtype)
    elif isinstance(node, list):
        for item in node:
            yield from _coded(item, path, rtype)


def run(corpus: Path, options: Options | None = None) -> dict[str, Any]:
    """Compute agreement per template and overall; also collect the most-missed paths."""
    per: dict[str, list[int]] = {}
    missed: Counter[tuple[str, str]] = Counter()
    missed_by: dict[str, Counter[tuple[str, str]]] = {}
    gap_counts: Counter[str] = Counter()
    errors: list[str] = []
    with (corpus / "pairs.tsv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    for row in rows:
        template = row["root_template"]
        expected = orjson.loads((corpus / row["expected"]).read_bytes())
        want = leaves(expected)
        try:
            ours = convert((corpus / row["input"]).read_bytes(), options)
        except Exception as exc:
            errors.append(f"{row['input']}: {type(exc).__name__}")
            ours = {}
        got = leaves(ours)
        gap_counts.update(gaps(expected, ours))
        hit = want & got
        stats = per.setdefault(template, [0, 0, 0])
        stats[0] += len(hit)
        stats[1] += len(want)
        stats[2] += 1
        for rtype, path, _ in want - got:
            missed[(rtype, path)] += 1
            missed_by.setdefault(template, Counter())[(rtype, path)] += 1
    total_hit = sum(s[0] for s in per.values())
    total = sum(s[1] for s in per.values())
    return {
        "overall": total_hit / total if total else 0.0,
        "matched": total_hit,
        "expected": total,
        "messages": sum(s[2] for s in per.values()),
        "by_type": {
            t: {
                "agreement": s[0] / s[1] if s[1] else 0.0,
                "matched": s[0],
                "expected": s[1],
                "messages": s[2],
            }
            for t, s in sorted(per.items())
        },
        "most_missed": [{"resource": r, "path": p, "count": c} for (r, p), c in missed.most_common(40)],
        "missed_by_type": {t: c.most_common(15) for t, c in missed_by.items()},
        "gaps": {k: gap_counts[k] for k in GAP_CATEGORIES},
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    """Print the agreement table (or JSON)."""
    parser = argparse.ArgumentParser(description="agreement with Microsoft FHIR-Converter expected bundles")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--detail", metavar="TYPE", help="also list the most-missed paths of TYPE")
    parser.add_argument("--missed", action="store_true", help="also list the most-missed paths overall")
    parser.add_argument("--gaps", action="store_true", help="also sort the missed values by cause")
    parser.add_argument(
        "--ms-bases",
        action="store_true",
        help="name local identifier/code systems with FHIR-Converter's URI prefixes (config, not mapping)",
    )
    args = parser.parse_args(argv)
    result = run(args.corpus, MS_BASES if args.ms_bases else None)
    out = sys.stdout
    if args.json:
        slim = {k: v for k, v in result.items() if k != "missed_by_type"}
        out.write(orjson.dumps(slim, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    out.write(f"{'message type':<14}{'msgs':>6}{'matched':>10}{'expected':>10}{'agreement':>11}\n")
    for t, s in result["by_type"].items():
        out.write(f"{t:<14}{s['messages']:>6}{s['matched']:>10}{s['expected']:>10}{s['agreement']:>10.1%}\n")
    out.write(
        f"{'OVERALL':<14}{result['messages']:>6}{result['matched']:>10}{result['expected']:>10}"
        f"{result['overall']:>10.1%}\n"
    )
    if result["errors"]:
        out.write(f"\n{len(result['errors'])} conversion errors:\n")
        for e in result["errors"]:
            out.write(f"  {e}\n")
    if args.missed:
        out.write("\nmost-missed (resource, path): count\n")
        for m in result["most_missed"]:
            out.write(f"  {m['resource']}.{m['path']}: {m['count']}\n")
    if args.gaps:
        _write_gaps(out, result)
    if args.detail:
        out.write(f"\nmost-missed in {args.detail}:\n")
        for (r, p), c in result["missed_by_type"].get(args.detail, []):
            out.write(f"  {r}.{p}: {c}\n")
    return 0


def _write_gaps(out: Any, result: dict[str, Any]) -> None:
    total = result["expected"] or 1
    out.write("\nmissed values by cause (rules in the module docstring):\n")
    for kind, count in result["gaps"].items():
        out.write(f"  {kind:<17}{count:>7}{count / total:>8.1%}  {GAP_CATEGORIES[kind]}\n")
    artefacts = sum(result["gaps"][k] for k in ARTEFACTS)
    ceiling = (total - artefacts) / total
    out.write(f"  ceiling without FHIR-Converter's artefacts (the first four): {ceiling:.1%}\n")


if __name__ == "__main__":
    raise SystemExit(main())
