"""Helpers shared by the MLLP listener and sender: config checks, header values, backoff, traces."""

from __future__ import annotations

import os
import random
import re
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pyheart.broker.config import validate_config
from pyheart.broker.errors import PluginConfigError

#: Envelope header with the Python codec the listener decoded the payload with (MSH-18 or the
#: fallback), so consumers decode the original bytes the same way. Value-free ("utf-8", "latin-1").
CHARSET_HEADER = "pyheart-charset"

_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_TOKEN = re.compile(r"^[A-Za-z0-9_]{1,16}$")


def checked_config(plugin_id: str, schema: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` validated against ``schema`` with defaults applied (idempotent for a validated config).

    The registry validates configs it loads; this repeats it so a plugin built in code and started
    on its own gets the same checks.
    """
    validated, issues = validate_config(schema, config)
    if issues:
        raise PluginConfigError(plugin_id, issues)
    return validated


def header_text(value: str, limit: int = 64) -> str:
    """A header value made of printable ASCII (other characters become ``?``), at most ``limit`` long."""
    if value.isascii() and value.isprintable():
        return value[:limit]
    return _PRINTABLE.sub("?", value)[:limit]


def header_token(value: str) -> str:
    """``value`` when it is a short code (letters, digits, underscore), else ``""``."""
    return value if _TOKEN.match(value) else ""


def traceparent() -> str:
    """A new W3C trace context (version 00, random trace and span ids, sampled)."""
    trace_id = os.urandom(16).hex()
    span_id = os.urandom(8).hex()
    return f"00-{trace_id}-{span_id}-01"


def utc_now_iso() -> str:
    """The current UTC time in ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def peer_name(peername: object) -> str:
    """``host:port`` (``[v6]:port``) of a socket's peer name; ``unknown`` when there is none."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "unknown"


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter over [delay/2, delay] for ``attempt`` (1-based)."""
    delay = min(max_s, base_s * 2.0 ** max(0, attempt - 1))
    return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography


def enable_keepalive(sock: socket.socket | None, idle_s: int = 60) -> None:
    """Turn on TCP keep-alive (and its idle time where the platform allows) for ``sock``."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, idle_s // 4))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
    except OSError:
        return


__all__ = [
    "CHARSET_HEADER",
    "backoff_delay",
    "checked_config",
    "enable_keepalive",
    "header_text",
    "header_token",
    "peer_name",
    "traceparent",
    "utc_now_iso",
]
