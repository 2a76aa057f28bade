"""The envelope's fast MSH/PID reader agrees with the full parser on every corpus message.

The corpus lives outside the repository: ``$PYHEART_CORPUS`` (default ``/work/shared/corpus``);
without it this test fails, it never skips.
"""

from __future__ import annotations

from corpus_paths import CORPUS

from pyheart.broker.engine.envelope import hl7_facts, parsed_hl7_facts


def test_fast_facts_match_parser_over_corpus() -> None:
    """Message type, trigger, control id, source and patient key equal the parser's, message by message."""
    files = sorted(CORPUS.rglob("*.hl7"))
    assert len(files) >= 300, f"HL7 v2 corpus not found under {CORPUS} (set PYHEART_CORPUS)"
    differ = []
    for path in files:
        # Kafka payloads from MLLP end segments with CR; the files on disk often use LF.
        data = path.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
        if hl7_facts(data, want_key=True) != parsed_hl7_facts(data, want_key=True):
            differ.append(str(path.relative_to(CORPUS)))
    assert differ == []
