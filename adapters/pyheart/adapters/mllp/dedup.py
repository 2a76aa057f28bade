"""Duplicate detection for the MLLP listener: same sender and MSH-10 within a time window.

A sender that did not see our ACK (a dropped connection, a timeout on its side) sends the message
again with the same MSH-10. Within the window such a message gets the very ACK bytes the first one
got and is not published twice. Only final outcomes are remembered (stored: AA/CA; rejected and
dead-lettered: AR/CR); a transient NAK (AE/CE) is forgotten, so the sender's retry is processed.

While the first copy is still being stored, a second copy waits for its outcome (:meth:`claim`
returns the pending future) instead of publishing in parallel.

The window is per listener process and held in memory: it bounds duplicates from retries, it is
not an exactly-once guarantee across restarts or replicas (the Kafka record's message id and the
sender's MSH-10 remain available downstream for that).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

#: (MSH-3, MSH-4, MSH-10) as written in the message.
DuplicateKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Final:
    """The final outcome of the first copy: the ACK bytes it got (None when no ACK was due)."""

    ack: bytes | None


@dataclass(frozen=True, slots=True)
class Claim:
    """The result of :meth:`DuplicateCache.claim`.

    ``owner`` is True when the caller must process the message and then call
    :meth:`DuplicateCache.complete` or :meth:`DuplicateCache.abandon`. Otherwise ``future`` resolves
    to the first copy's :class:`Final` outcome, or to None when the first copy was abandoned after a
    transient failure (answer with a transient NAK, the sender retries). ``same_content`` says
    whether the two copies are byte-identical.
    """

    owner: bool
    future: asyncio.Future[Final | None]
    same_content: bool = True


@dataclass(slots=True)
class _Done:
    expires: float
    final: Final
    digest: bytes


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Final | None]
    digest: bytes


@dataclass
class DuplicateCache:
    """Remembers final ACKs per (sender, control id) for ``window_s`` seconds, at most ``max_entries``."""

    window_s: float = 600.0
    max_entries: int = 100_000
    clock: Callable[[], float] = time.monotonic
    _pending: dict[DuplicateKey, _Pending] = field(default_factory=dict)
    _done: OrderedDict[DuplicateKey, _Done] = field(default_factory=OrderedDict)

    @property
    def enabled(self) -> bool:
        """False when the window is zero (every message is processed)."""
        return self.window_s > 0 and self.max_entries > 0

    def __len__(self) -> int:
        return len(self._done) + len(self._pending)

    def claim(self, key: DuplicateKey, digest: bytes = b"") -> Claim:
        """Register ``key`` as being processed, or return the earlier copy's (pending) outcome."""
        loop = asyncio.get_running_loop()
        self._expire()
        done = self._done.get(key)
        if done is not None:
            future: asyncio.Future[Final | None] = loop.create_future()
            future.set_result(done.final)
            return Claim(False, future, _same(digest, done.digest))
        pending = self._pending.get(key)
        if pending is not None:
            return Claim(False, pending.future, _same(digest, pending.digest))
        future = loop.create_future()
        self._pending[key] = _Pending(future, digest)
        return Claim(True, future)

    def complete(self, key: DuplicateKey, ack: bytes | None) -> None:
        """Record the final ACK of ``key`` (None: no ACK was due); it is remembered for the window."""
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        final = Final(ack)
        if not pending.future.done():
            pending.future.set_result(final)
        self._done[key] = _Done(self.clock() + self.window_s, final, pending.digest)
        self._done.move_to_end(key)
        while len(self._done) > self.max_entries:
            self._done.popitem(last=False)

    def abandon(self, key: DuplicateKey) -> None:
        """Forget ``key`` after a transient failure; waiting copies resolve to None (answer AE/CE)."""
        pending = self._pending.pop(key, None)
        if pending is not None and not pending.future.done():
            pending.future.set_result(None)

    def pending(self, key: DuplicateKey) -> bool:
        """True while ``key`` is claimed and neither completed nor abandoned."""
        return key in self._pending

    def _expire(self) -> None:
        now = self.clock()
        while self._done:
            key, entry = next(iter(self._done.items()))
            if entry.expires > now:
                break
            del self._done[key]


def _same(a: bytes, b: bytes) -> bool:
    return not a or not b or a == b


__all__ = ["Claim", "DuplicateCache", "DuplicateKey", "Final"]
