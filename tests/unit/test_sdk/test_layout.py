"""Packaging: one `pyheart` namespace; nothing installs or shadows a top-level `transformers`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def test_no_top_level_transformers_from_this_project() -> None:
    """`import transformers` does not resolve to anything in this repository."""
    spec = importlib.util.find_spec("transformers")
    if spec is not None:
        locations = [str(p) for p in (spec.submodule_search_locations or [])] + [str(spec.origin)]
        assert not any(loc.startswith(str(ROOT)) for loc in locations), locations


def test_no_init_in_namespace_roots() -> None:
    """The root folders and their pyheart/ folders are namespace portions without __init__.py."""
    for root in ("broker", "adapters", "transformers", "validators"):
        assert not (ROOT / root / "__init__.py").exists()
        assert not (ROOT / root / "pyheart" / "__init__.py").exists()


def test_subpackages_import_under_pyheart() -> None:
    """pyheart.broker and pyheart.transformers import from the namespace package."""
    import pyheart.broker
    import pyheart.transformers.fhir_ids

    assert pyheart.broker.__name__ == "pyheart.broker"
    assert pyheart.transformers.fhir_ids.__name__ == "pyheart.transformers.fhir_ids"


@pytest.mark.slow
def test_wheel_contains_only_the_pyheart_namespace(tmp_path: Path) -> None:
    """The built wheel has every file under pyheart/ (and dist-info) and no top-level transformers."""
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("pyheart-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"pyheart", next(t for t in tops if t.endswith(".dist-info"))}
    assert "pyheart/broker/registry.py" in names
    assert "pyheart/transformers/fhir_ids.py" in names
    assert not any(n.startswith("pyheart/__init__") for n in names)
