"""The optional mypyc build of the hot path: where it is looked up, when it is used, and that it
converts every corpus message exactly as the Python modules do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from corpus_paths import CORPUS

from pyheart.broker import native

# Converts every corpus message and prints one digest per message (or the error class).
_DIGESTS = """
import hashlib, json, sys
from pathlib import Path
import orjson
from pyheart.broker import native
from pyheart.transformers.hl7v2_fhir import convert
from pyheart.transformers.hl7v2_fhir.corpus import iter_messages
out = {}
for name, text in iter_messages(Path(sys.argv[1])):
    try:
        digest = hashlib.sha256(orjson.dumps(convert(text))).hexdigest()
    except Exception as exc:
        digest = type(exc).__name__
    out[name] = digest
print(json.dumps({"loaded": native.loaded(), "digests": out}))
"""


def _digests(mode: str) -> dict[str, object]:
    env = {**os.environ, "PYHEART_NATIVE": mode}
    done = subprocess.run(
        [sys.executable, "-c", _DIGESTS, str(CORPUS)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_native_build_converts_the_corpus_exactly_like_python() -> None:
    """Every corpus message gives byte-identical JSON from the native build and from Python."""
    native.build()  # reused when `pyheart native build` already made it for these sources
    compiled = _digests("require")
    python = _digests("off")
    assert set(compiled["loaded"].values()) == {True}  # type: ignore[attr-defined]
    assert set(python["loaded"].values()) == {False}  # type: ignore[attr-defined]
    assert len(python["digests"]) > 500  # type: ignore[arg-type]
    assert compiled["digests"] == python["digests"]


def test_mode_reads_the_environment() -> None:
    """PYHEART_NATIVE: auto by default, off for 0/false/no, and an error naming the choices."""
    assert [
        native.mode({}),
        native.mode({"PYHEART_NATIVE": "0"}),
        native.mode({"PYHEART_NATIVE": "Require"}),
    ] == [
        "auto",
        "off",
        "require",
    ]
    with pytest.raises(native.NativeBuildError, match="PYHEART_NATIVE must be one of auto, off, require"):
        native.mode({"PYHEART_NATIVE": "fast"})


def test_key_changes_with_any_compiled_source(tmp_path: Path) -> None:
    """An edited module gives another key, so a stale build is never loaded."""
    roots = [tmp_path]
    for module in native.MODULES:
        path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {module}\n")
    before = native.build_key(native.source_files(roots))
    last = tmp_path.joinpath(*native.MODULES[-1].split(".")).with_suffix(".py")
    last.write_text("# edited\n")
    assert native.build_key(native.source_files(roots)) != before


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    """Sources that cannot be found are named in the error."""
    with pytest.raises(
        native.NativeBuildError, match=r"native: source of pyheart\.broker\.hl7v2\.parser not found"
    ):
        native.source_files([tmp_path])


def test_require_without_a_build_fails_at_import(tmp_path: Path) -> None:
    """PYHEART_NATIVE=require with an empty cache stops the import and says what to run."""
    env = {**os.environ, "PYHEART_NATIVE": "require", "PYHEART_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", "import pyheart.transformers.hl7v2_fhir"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "no build for these sources; run `pyheart native build`" in done.stderr


def test_off_and_empty_cache_run_the_python_modules(tmp_path: Path) -> None:
    """Without a build (or with PYHEART_NATIVE=off) the converter runs from its .py files."""
    script = (
        "import json; from pyheart.broker import native; import pyheart.transformers.hl7v2_fhir.converter;"
        "print(json.dumps(native.loaded()))"
    )
    for env in ({"PYHEART_CACHE_DIR": str(tmp_path), "PYHEART_NATIVE": "auto"}, {"PYHEART_NATIVE": "off"}):
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        states = json.loads(done.stdout)
        assert states
        assert not any(states.values())
