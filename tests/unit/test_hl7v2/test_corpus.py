"""The parser against the third-party conformance corpus (../shared/corpus, read-only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corpus_paths import CORPUS

from pyheart.broker.errors import ParseError
from pyheart.broker.hl7v2.parser import Hl7Message, parse_batch, parse_message

#: Files whose segments are broken by hard line wraps (a line break inside a field).
WRAPPED = {"node-hl7-complete/valid/catalyze-io/orm-example.hl7"}
#: Damaged beyond repair: a line break inside MSH-10 and segments run together on one line.
DAMAGED = {"node-hl7-complete/valid/remote-operations/mdm-example.hl7"}


def _rel(path: Path) -> str:
    return path.relative_to(CORPUS).as_posix()


def _hl7_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*.hl7") if "/invalid/" not in p.as_posix())


def hapi_messages_text(text: str) -> str:
    """HAPI's messages.txt without its ``/* */`` and ``//`` comment lines."""
    out: list[str] = []
    in_block = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("/*"):
            in_block = True
        if in_block:
            in_block = not stripped.endswith("*/")
            continue
        if not stripped.startswith("//"):
            out.append(line)
    return "\n".join(out)


def izgateway_messages_text(text: str) -> str:
    r"""IZ Gateway's messages.txt: ``\`` at the end of a line continues it; ``@``, ``//`` and ``#``
    lines are assertions and comments."""
    out: list[str] = []
    pending = ""
    for line in text.splitlines():
        right = line.rstrip()
        if right.endswith("\\"):
            pending += right[:-1].lstrip() if pending else right[:-1]
            continue
        full = pending + line.lstrip() if pending else line
        pending = ""
        stripped = full.strip()
        if stripped and not stripped.startswith(("@", "//", "#")):
            out.append(full)
    return "\n".join(out)


def _read_all(message: Hl7Message) -> None:
    for seg in message.segments:
        for n in range(len(seg)):
            for rep in range(len(seg.reps(n)) or 1):
                seg.get(n, 1, 1, rep)
                seg.value(n, rep).parts()


@pytest.mark.parametrize("path", _hl7_files(), ids=_rel)
def test_corpus_file_parses(path: Path) -> None:
    """Every corpus .hl7 file parses (wrapped ones with join_wrapped) or fails with a located error."""
    rel = _rel(path)
    if rel in DAMAGED:
        with pytest.raises(ParseError) as caught:
            parse_batch(path.read_bytes())
        assert caught.value.locations == ["message 1, segment 2"]
        return
    messages = parse_batch(path.read_bytes(), join_wrapped=rel in WRAPPED)
    assert messages
    for message in messages:
        assert message.message_type
        _read_all(message)


def test_wrapped_file_fails_without_join() -> None:
    """A segment broken by a hard line wrap is a located error unless join_wrapped is set."""
    data = (CORPUS / "node-hl7-complete/valid/catalyze-io/orm-example.hl7").read_bytes()
    with pytest.raises(ParseError) as caught:
        parse_batch(data)
    assert str(caught.value) == "message 1, segment 7 has an invalid segment name"


def test_hapi_messages_txt_parses() -> None:
    """HAPI's 18 edge-case messages parse, including the odd encoding characters ^~\\} and ^~}."""
    text = hapi_messages_text((CORPUS / "hapi-hl7v2/messages.txt").read_text(encoding="latin-1"))
    messages = parse_batch(text)
    assert len(messages) == 18
    declared = {m.msh.raw(2) for m in messages}
    assert declared == {"^~\\&", "^~\\}", "^~}"}
    for message in messages:
        _read_all(message)


def test_hapi_subcomponent_brace() -> None:
    """With MSH-2 ``^~\\}`` the brace splits sub-components and ``&`` is plain text."""
    text = hapi_messages_text((CORPUS / "hapi-hl7v2/messages.txt").read_text(encoding="latin-1"))
    message = parse_batch(text)[1]
    assert message.delimiters.subcomponent == "}"
    assert message.segment("PID") is not None


def test_izgateway_messages_txt_parses() -> None:
    """IZ Gateway's 64 continuation-line messages parse and keep their header facts."""
    text = izgateway_messages_text((CORPUS / "izgateway-v2tofhir/messages.txt").read_text(encoding="utf-8"))
    messages = parse_batch(text)
    assert len(messages) == 64
    assert messages[0].structure == "RSP_K11"
    assert messages[0].msh.get(3) == "TEST"
    for message in messages:
        _read_all(message)


def test_reportstream_five_encoding_characters() -> None:
    """ReportStream files with ``^~\\&#`` parse and declare a truncation character."""
    five = [p for p in (CORPUS / "reportstream").rglob("*.hl7") if p.read_bytes().startswith(b"MSH|^~\\&#|")]
    assert len(five) > 200
    for path in five:
        message = parse_message(path.read_bytes())
        assert message.delimiters.truncation == "#"


def test_ms_fhir_converter_bom_files() -> None:
    """Microsoft FHIR-Converter files that start with a UTF-8 BOM parse to the same MSH-9."""
    files = [
        p for p in (CORPUS / "ms-fhir-converter/hl7v2").glob("*.hl7") if p.read_bytes()[:3] == b"\xef\xbb\xbf"
    ]
    assert files
    rows = {}
    for line in (CORPUS / "ms-fhir-converter/inventory.tsv").read_text().splitlines()[1:]:
        cols = line.split("\t")
        rows[cols[0]] = cols[1]
    for path in files:
        message = parse_message(path.read_bytes())
        assert message.msh.raw(9) == rows[path.name]


def test_ms_fhir_converter_segment_counts() -> None:
    """Segment counts of the Microsoft files match the corpus inventory."""
    mismatched = []
    for line in (CORPUS / "ms-fhir-converter/inventory.tsv").read_text().splitlines()[1:]:
        name, _msh9, _version, segments, *_ = line.split("\t")
        path = CORPUS / "ms-fhir-converter/hl7v2" / name
        if len(parse_batch(path.read_bytes())[0].segments) != int(segments):
            mismatched.append(name)
    assert mismatched == []


def test_linuxforhealth_doubled_escape_character() -> None:
    """MSH-2 ``^~\\\\&`` (an escape doubled by a string-escaping slip) reads as ``^~\\&``."""
    message = parse_message((CORPUS / "linuxforhealth-hl7v2-fhir-converter/sample_unix.hl7").read_bytes())
    assert message.delimiters.encoding_characters == "^~\\&"
    assert message.message_type == "ADT"


def test_node_invalid_message_parses() -> None:
    """The node-hl7-complete invalid/ message is well-formed ER7: its faults are for validators."""
    message = parse_message((CORPUS / "node-hl7-complete/invalid/misc/bad-phone-example.hl7").read_bytes())
    assert message.message_type == "SIU"
    assert message.segment("SCH") is None


# --------------------------------------------------------------------------------------- parse trees
def _tree_segments(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, fields) of every segment of a HAPI-style parse tree, in document order."""
    if isinstance(node, dict):
        for key, value in node.items():
            if len(key) == 3 and key.isalnum() and key.isupper() and isinstance(value, list):
                for item in value:
                    yield key, item
            else:
                yield from _tree_segments(value)
    elif isinstance(node, list):
        for item in node:
            yield from _tree_segments(item)


def _leaves(rep: Any) -> Iterator[tuple[int, int, str]]:
    """(component, sub-component, text) of one repetition of a tree field."""
    if isinstance(rep, str):
        yield 1, 1, rep
        return
    for key, values in rep.items():
        comp = int(key.rsplit(".", 1)[1])
        for value in values:
            if isinstance(value, str):
                yield comp, 1, value
            else:
                for sub_key, sub_values in value.items():
                    yield comp, int(sub_key.rsplit(".", 1)[1]), sub_values[0]


def _comparable_trees() -> list[Path]:
    out = []
    for tree in sorted((CORPUS / "node-hl7-complete").rglob("*.parsed.json")):
        hl7 = tree.with_name(tree.name.replace(".parsed.json", ".hl7"))
        data = hl7.read_bytes()
        # The trees of LF-terminated files are one giant MSH (the tool split on CR only).
        if hl7.exists() and b"\n" not in data.replace(b"\r\n", b""):
            out.append(tree)
    return out


@pytest.mark.parametrize("tree_path", _comparable_trees(), ids=_rel)
def test_matches_node_hl7_complete_tree(tree_path: Path) -> None:
    """Every leaf of the expected HAPI-style parse tree equals our parser's value at that position."""
    tree = json.loads(tree_path.read_text(encoding="utf-8"))
    hl7 = tree_path.with_name(tree_path.name.replace(".parsed.json", ".hl7"))
    message = parse_batch(hl7.read_bytes())[0]
    seen: dict[str, int] = {}
    mismatches = []
    for name, fields in _tree_segments(tree):
        index = seen.get(name, 0)
        seen[name] = index + 1
        segment = message.segments_named(name)[index]
        for field_key, reps in fields.items():
            n = int(field_key.rsplit(".", 1)[1])
            for r, rep in enumerate(reps):
                for comp, sub, text in _leaves(rep):
                    ours = segment.raw(n) if n in (1, 2) and name == "MSH" else segment.get(n, comp, sub, r)
                    if ours.strip() != text.strip():  # HAPI trims leading blanks
                        mismatches.append(f"{name}[{index}]-{n}.{comp}.{sub} rep {r}")
    assert mismatches == []
