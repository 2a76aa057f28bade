"""Duplicate window of the MLLP listener."""

from __future__ import annotations

from pyheart.adapters.mllp.dedup import DuplicateCache, Final

KEY = ("SENDAPP", "SENDFAC", "CTRL1")


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_first_copy_owns_the_key() -> None:
    """The first claim of a key is told to process the message."""
    assert DuplicateCache().claim(KEY).owner is True


async def test_copy_during_processing_waits_for_the_first() -> None:
    """A second copy while the first is pending gets the first copy's ACK when it completes."""
    cache = DuplicateCache()
    cache.claim(KEY)
    second = cache.claim(KEY)
    cache.complete(KEY, b"ACK-BYTES")
    assert (second.owner, await second.future) == (False, Final(b"ACK-BYTES"))


async def test_copy_after_completion_gets_the_same_ack() -> None:
    """Within the window a later copy resolves at once to the remembered ACK bytes."""
    cache = DuplicateCache()
    cache.claim(KEY)
    cache.complete(KEY, b"ACK-BYTES")
    later = cache.claim(KEY)
    assert (later.owner, later.future.result()) == (False, Final(b"ACK-BYTES"))


async def test_no_ack_due_is_remembered_too() -> None:
    """A message that needed no ACK (MSH-15 NE) is remembered as such."""
    cache = DuplicateCache()
    cache.claim(KEY)
    cache.complete(KEY, None)
    assert cache.claim(KEY).future.result() == Final(None)


async def test_abandoned_key_tells_waiters_to_nak() -> None:
    """After a transient failure waiting copies resolve to None (they answer AE)."""
    cache = DuplicateCache()
    cache.claim(KEY)
    waiting = cache.claim(KEY)
    cache.abandon(KEY)
    assert await waiting.future is None


async def test_abandoned_key_is_processed_again() -> None:
    """The sender's retry after a transient NAK is processed, not answered from memory."""
    cache = DuplicateCache()
    cache.claim(KEY)
    cache.abandon(KEY)
    assert cache.claim(KEY).owner is True


async def test_window_expires() -> None:
    """After window_s the same key is a new message."""
    clock = Clock()
    cache = DuplicateCache(window_s=60, clock=clock)
    cache.claim(KEY)
    cache.complete(KEY, b"A")
    clock.now += 61
    assert cache.claim(KEY).owner is True


async def test_inside_window_is_still_a_duplicate() -> None:
    """Just before the window ends the key is still remembered."""
    clock = Clock()
    cache = DuplicateCache(window_s=60, clock=clock)
    cache.claim(KEY)
    cache.complete(KEY, b"A")
    clock.now += 59
    assert cache.claim(KEY).owner is False


async def test_oldest_entries_are_evicted_beyond_the_limit() -> None:
    """max_entries bounds memory: the oldest completed key is forgotten first."""
    cache = DuplicateCache(max_entries=2)
    for n in range(3):
        key = ("S", "F", f"C{n}")
        cache.claim(key)
        cache.complete(key, b"A")
    assert [cache.claim(("S", "F", f"C{n}")).owner for n in range(3)] == [True, False, False]


async def test_sender_is_part_of_the_key() -> None:
    """The same MSH-10 from another sending facility is not a duplicate."""
    cache = DuplicateCache()
    cache.claim(KEY)
    cache.complete(KEY, b"A")
    assert cache.claim(("SENDAPP", "OTHERFAC", "CTRL1")).owner is True


async def test_different_content_is_flagged() -> None:
    """A copy whose bytes differ from the first is reported as such."""
    cache = DuplicateCache()
    cache.claim(KEY, b"digest-1")
    assert cache.claim(KEY, b"digest-2").same_content is False


async def test_same_content_is_flagged() -> None:
    """A byte-identical copy is reported as the same content."""
    cache = DuplicateCache()
    cache.claim(KEY, b"digest-1")
    assert cache.claim(KEY, b"digest-1").same_content is True


def test_zero_window_disables_the_cache() -> None:
    """window_s 0 turns duplicate detection off."""
    assert DuplicateCache(window_s=0).enabled is False
