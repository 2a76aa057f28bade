"""Where the third-party corpus is: ``$PYHEART_CORPUS``, else ``../shared/corpus`` beside the checkout,
else ``/work/shared/corpus``. Tests that need it fail (never skip) when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def corpus_root() -> Path:
    """The corpus folder (the first candidate that exists, else the first candidate)."""
    env = os.environ.get("PYHEART_CORPUS")
    candidates = [Path(env)] if env else [_REPO.parent / "shared" / "corpus", Path("/work/shared/corpus")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


CORPUS = corpus_root()
