"""Read the HL7 v2 messages of the shared third-party corpus (for conformance tests and reports).

The corpus mixes formats: one message per file (``.hl7``), several messages per file separated by
CR/LF, and annotated text files (``messages.txt`` of IZ Gateway with ``\\`` line continuations and
``@`` assertion lines; HAPI's with ``/* */`` and ``//`` comments). :func:`iter_messages` yields
each message as text, named ``<file>#<n>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

#: ``$PYHEART_CORPUS``, else the shared folder of the development machines and CI.
DEFAULT_ROOT = Path(os.environ.get("PYHEART_CORPUS") or "/work/shared/corpus")
#: Folders holding HL7 v2 messages, and the file patterns to read there.
SOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ms-fhir-converter/hl7v2", ("*.hl7",)),
    ("reportstream", ("**/*.hl7",)),
    ("izgateway-v2tofhir", ("messages.txt",)),
    ("hapi-hl7v2", ("*.hl7", "*.txt")),
    ("node-hl7-complete", ("**/*.hl7",)),
    ("linuxforhealth-hl7v2-fhir-converter", ("*.hl7",)),
    ("hl7-v2-to-fhir-ig/samples", ("**/*.hl7", "**/*.txt")),
)
_COMMENT_PREFIXES = ("#", "//", "/*", "*", "@")


def split_messages(text: str) -> list[str]:
    """The messages in ``text``, each with CR segment terminators."""
    text = text.lstrip("\ufeff")
    lines: list[str] = []
    pending = ""
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not pending and raw[:1] in ("\t", " "):
            # Indented lines are assertions (and their continuations), never segments.
            lines.append("")
            continue
        line = raw.strip() if pending else raw.rstrip()
        if pending:
            line = pending + line
            pending = ""
        if line.endswith("\\") and not line.endswith("\\\\") and line.count("|") and _is_continuation(line):
            pending = line[:-1]
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith(_COMMENT_PREFIXES):
            lines.append("")
            continue
        lines.append(line)
    messages: list[list[str]] = []
    for line in lines:
        tag = line[:3]
        if tag == "MSH":
            messages.append([line])
        elif not line or tag in ("FHS", "BHS", "BTS", "FTS"):
            continue
        elif messages:
            messages[-1].append(line)
    return ["\r".join(m) + "\r" for m in messages]


def _is_continuation(line: str) -> bool:
    # A trailing backslash continues the line unless it closes an escape sequence (\F\ etc.).
    body = line[:-1]
    last = body.rfind("\\")
    return last < 0 or not body[last + 1 :].isalnum() or len(body[last + 1 :]) > 4


def iter_messages(root: Path = DEFAULT_ROOT) -> Iterator[tuple[str, str]]:
    """Yield ``(name, message text)`` for every HL7 v2 message of the corpus under ``root``."""
    for folder, patterns in SOURCES:
        base = root / folder
        if not base.is_dir():
            continue
        seen: set[Path] = set()
        for pattern in patterns:
            for path in sorted(base.glob(pattern)):
                if path in seen or not path.is_file():
                    continue
                seen.add(path)
                data = path.read_bytes()
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    text = data.decode("latin-1")
                for i, msg in enumerate(split_messages(text), start=1):
                    yield f"{path.relative_to(root)}#{i}", msg


__all__ = ["DEFAULT_ROOT", "SOURCES", "iter_messages", "split_messages"]
