"""Helpers shared by the MLLP listener and sender: config checks, header values, backoff, traces.

Config checks, header values and backoff are the ones of :mod:`pyheart.adapters._delivery`
(shared with the FHIR sender), re-exported here.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime

from pyheart.adapters._delivery import backoff_delay, checked_config, header_text

#: Envelope header with the Python codec the listener decoded the payload with (MSH-18 or the
#: fallback), so consumers decode the original bytes the same way. Value-free ("utf-8", "latin-1").
CHARSET_HEADER = "pyheart-charset"

_TOKEN = re.compile(r"^[A-Za-z0-9_]{1,16}$")


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
