"""The FHIR sender's retry policy: which answers are retried, and how long to wait before the next try.

Retried: transport errors (connect, read, write, pool timeouts), 408, 409 (a concurrent write on the
server), 429 and 5xx answers; 401/403 too, since an expired or revoked credential is not the
message's fault (the OAuth2 authenticator already fetched a fresh token once before that). The wait
is ``Retry-After`` when the server sends one (seconds or an HTTP date, capped at
``retry_after_max_s``), otherwise exponential backoff with jitter, capped at ``backoff_max_s``.
After ``max_retries`` retries the message is dead-lettered.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC, datetime

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


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter, honouring ``Retry-After``."""

    max_retries: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0

    def exhausted(self, attempt: int) -> bool:
        """Whether ``attempt`` (1-based: the first try is attempt 1) was the last one allowed."""
        return attempt > self.max_retries

    def backoff(self, attempt: int) -> float:
        """The backoff after failed ``attempt`` (1-based): ``backoff_s * 2**(attempt-1)``, capped,
        with jitter over its upper half so that senders that failed together do not retry together."""
        delay = min(self.backoff_max_s, self.backoff_s * 2.0 ** max(0, attempt - 1))
        return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed ``attempt``: ``Retry-After`` (capped) when given, else the backoff."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.retry_after_max_s)
        return self.backoff(attempt)


__all__ = ["RETRIABLE_STATUSES", "RetryPolicy", "parse_retry_after", "retriable_status"]
