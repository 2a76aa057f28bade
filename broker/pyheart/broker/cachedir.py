"""Where PyHeart keeps what it fetches or builds once: ``$PYHEART_CACHE_DIR`` or ``~/.cache/pyheart``.

Kafka's jars, the HAPI FHIR server and the native build of the hot path all live below it. Kept
free of heavy imports: the parser's package reads it at import time (see :mod:`.native`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """``$PYHEART_CACHE_DIR``, or ``~/.cache/pyheart``."""
    env = os.environ if env is None else env
    configured = env.get("PYHEART_CACHE_DIR", "")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "pyheart"


__all__ = ["cache_root"]
