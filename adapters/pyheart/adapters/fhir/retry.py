"""The FHIR sender's retry policy: which answers are retried, and how long to wait before the next try.

Retried: transport errors (connect, read, write, pool timeouts), 408, 409 (a concurrent write on the
server), 429 and 5xx answers; 401/403 too, since an expired or revoked credential is not the
message's fault (the OAuth2 authenticator already fetched a fresh token once before that). The wait
is ``Retry-After`` when the server sends one (seconds or an HTTP date, capped at
``retry_after_max_s``), otherwise exponential backoff with jitter, capped at ``backoff_max_s``.
After ``max_retries`` retries the message is dead-lettered.

:class:`RetryPolicy` itself lives in :mod:`pyheart.adapters._delivery` (the MLLP sender uses it
too) and is re-exported here.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

from pyheart.adapters._delivery import RetryPolicy

#: HTTP statuses worth another try: timeouts, conflicts from concurrent writers, throttling, auth
#: outages and server errors.
RETRIABLE_STATUSES: frozenset[int] = frozenset({401, 403, 408, 409, 425, 429, 500, 502, 503, 504})


def retriable_status(status: int) -> bool:
    """Whether an HTTP status is retried (see :data:`RETRIABLE_STATUSES`; any other 5xx too)."""
    return status in RETRIABLE_STATUSES or status >= 500


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); ``None`` if absent or invalid."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


__all__ = ["RETRIABLE_STATUSES", "RetryPolicy", "parse_retry_after", "retriable_status"]
