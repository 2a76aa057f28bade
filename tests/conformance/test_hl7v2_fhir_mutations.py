"""Property tier: corpus messages broken the ways real feeds break still give valid Bundles.

Each example takes a corpus message and applies a few edits drawn by hypothesis: a field, a
component or a repetition replaced by an awkward token (delimiters, escapes, impossible dates
such as Feb 30 or a +25:00 zone, 14-digit integers, blanks), fields inserted so every later
field shifts one place (a sender on the wrong version), segments dropped, duplicated or swapped,
another MSH-12 version. Whatever comes in, the converter either raises the documented
``ParseError``/``TransformError`` or returns a Bundle that fhir.resources' R4B models accept:
the structure guarantee of the hot path holds beyond the corpus. A canary token rides in every
example and must never appear in an error text.

CI runs a fixed (derandomised) set of examples; ``PYHEART_FUZZ_EXAMPLES=20000`` runs more and
``PYHEART_FUZZ_RANDOM=1`` draws new ones each run.
"""

from __future__ import annotations

import os

from corpus_paths import CORPUS
from fhir.resources.R4B.bundle import Bundle
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pyheart.broker.errors import ParseError, TransformError
from pyheart.broker.hl7v2 import parse_message
from pyheart.transformers.hl7v2_fhir.api import convert_message
from pyheart.transformers.hl7v2_fhir.corpus import iter_messages

#: One message per corpus file is enough variety; single-message texts only (no batches).
MESSAGES = sorted(
    text for name, text in iter_messages(CORPUS) if name.endswith("#1") and text.count("MSH|") == 1
)
CANARY = "ZQXCANARY77"
TOKENS = (
    "",
    " ",
    "  ",
    "^",
    "~",
    "&",
    "^^^^",
    "~~",
    "\\F\\",
    "\\X41\\",
    '""',
    "0",
    "-1",
    "99999999999999",
    "1.5e3",
    "20240230",
    "20230229120000",
    "202401011200+2500",
    "2024010112005960",
    "99:99",
    "999999",
    "A^B^C",
    "X&Y&Z",
    "12^^L",
    "Q6H",
    "BID",
    "ISO",
    "NaN",
    CANARY,
    f"{CANARY}^{CANARY}",
)
VERSIONS = ("2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.9", "", "x")

edit = st.tuples(st.integers(0, 8), st.integers(0, 10**6), st.integers(0, 10**6), st.sampled_from(TOKENS))
PROFILE = settings(
    max_examples=int(os.environ.get("PYHEART_FUZZ_EXAMPLES", "1000")),
    derandomize=os.environ.get("PYHEART_FUZZ_RANDOM") != "1",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def mutate(text: str, edits: list[tuple[int, int, int, str]]) -> str:
    """``text`` with ``edits`` applied: (kind, segment pick, field pick, token)."""
    segs = [s for s in text.split("\r") if s]
    for kind, a, b, token in edits:
        i = 1 + a % (len(segs) - 1) if len(segs) > 1 else 0
        fields = segs[i].split("|")
        j = 1 + b % (len(fields) - 1) if len(fields) > 1 else 0
        if kind == 0 and j:
            fields[j] = token
        elif kind == 1 and j:
            comps = fields[j].split("^")
            comps[b % len(comps)] = token
            fields[j] = "^".join(comps)
        elif kind == 2 and j:
            fields[j] = f"{fields[j]}~{token}"
        elif kind == 3 and j:
            fields.insert(j, token)  # every later field shifts one place
        elif kind == 4:
            fields = fields[: max(1, b % (len(fields) + 1))]
        elif kind == 5 and i:
            del segs[i]
            continue
        elif kind == 6:
            segs.insert(i, segs[i])
            continue
        elif kind == 7:
            k = 1 + b % (len(segs) - 1) if len(segs) > 1 else 0
            segs[i], segs[k] = segs[k], segs[i]
            continue
        elif kind == 8:
            msh = segs[0].split("|")
            if len(msh) > 11:
                msh[11] = VERSIONS[b % len(VERSIONS)]
                segs[0] = "|".join(msh)
            continue
        segs[i] = "|".join(fields)
    return "\r".join(segs)


def test_mutation_sources_present() -> None:
    """The mutations start from the corpus's single-message files (a few hundred)."""
    assert len(MESSAGES) >= 300, f"HL7 v2 corpus not found under {CORPUS} (set PYHEART_CORPUS)"


@PROFILE
@given(base=st.sampled_from(MESSAGES), edits=st.lists(edit, min_size=1, max_size=5))
def test_mutated_message_gives_valid_bundle_or_clear_error(
    base: str, edits: list[tuple[int, int, int, str]]
) -> None:
    """A broken message converts to an R4B-valid Bundle, or raises ParseError/TransformError
    that names places and never quotes the message (the canary)."""
    text = mutate(base, [*edits, (0, 0, 0, CANARY)])
    error: ParseError | TransformError | None = None
    try:
        bundle = convert_message(parse_message(text))
    except (ParseError, TransformError) as exc:
        error = exc
    event(type(error).__name__ if error is not None else "bundle")
    if error is not None:
        assert CANARY not in f"{error} {error.locations}"
        return
    Bundle.model_validate(bundle)
    assert bundle["entry"]


def test_mutate_shifts_fields() -> None:
    """The field-shift edit moves every later field one place (the example the tier relies on)."""
    text = "MSH|^~\\&|A|B\rPID|1||MRN||Doe"
    assert mutate(text, [(3, 0, 0, "X")]).split("\r")[1] == "PID|X|1||MRN||Doe"
