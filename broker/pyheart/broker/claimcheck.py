"""Claim check: payloads too large for a Kafka record live in a file store; the record carries a claim.

Kafka's default record limit is about 1 MB, and MDM/ORU messages with embedded PDFs exceed it. A
component that produces a payload above ``threshold_bytes`` writes it to a :class:`ClaimCheckStore`
(a directory) first and produces a small record instead, whose headers say where the payload is
(``pyheart-claim-check``: a ``file://`` URI with a random uuid name, never PHI) and what its
SHA-256 digest is (``pyheart-claim-check-sha256``); the original ``content-type`` stays. A consumer
calls :meth:`ClaimCheckStore.resolve` to get the real payload back, checked against the digest.

Writes are atomic and durable: a temporary file in the same directory, ``fsync``, ``rename``, then
``fsync`` of the directory, so a producer may acknowledge its input once :meth:`offload` returned.
A missing, unreadable or corrupt claim raises :class:`ClaimCheckError` (a message failure: the
engine dead-letters the record); its text names no value and no path.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pyheart.broker.contracts import Header
from pyheart.broker.errors import ConfigError, MessageError, Stage

_NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.bin$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
#: A write that never reached its rename (the writer died between open and rename).
_TMP = re.compile(r"^\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.bin\.tmp$")
_AGE = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Bytes of a claim-checked record's value: a fixed marker (the headers hold the claim).
CLAIM_PAYLOAD = b"pyheart-claim-check"
#: Headers a claim-checked record carries about its claim.
CLAIM_HEADERS: frozenset[str] = frozenset({Header.CLAIM_CHECK, Header.CLAIM_CHECK_SHA256})
DEFAULT_THRESHOLD_BYTES = 900_000


class ClaimCheckError(MessageError):
    """A claim could not be resolved or stored. The text names no payload value and no path."""

    code = "claim-check-failed"
    stage = Stage.INTAKE


@dataclass(frozen=True)
class PruneResult:
    """What :meth:`ClaimCheckStore.prune` removed (or, in a dry run, would remove)."""

    files: int
    bytes: int


class ClaimCheckStore:
    """A directory of claim-checked payloads; payloads above ``threshold_bytes`` are offloaded."""

    def __init__(
        self, directory: str | os.PathLike[str], threshold_bytes: int = DEFAULT_THRESHOLD_BYTES
    ) -> None:
        if threshold_bytes < 1:
            raise ConfigError("claim_check.threshold_bytes: must be at least 1")
        self.directory = Path(directory).resolve()
        self.threshold_bytes = threshold_bytes

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ClaimCheckStore:
        """A store from a ``{dir, threshold_bytes}`` mapping (the adapters' and engine's config)."""
        directory = config.get("dir")
        if not isinstance(directory, str) or not directory:
            raise ConfigError("claim_check.dir: is required (a directory path)")
        threshold = config.get("threshold_bytes", DEFAULT_THRESHOLD_BYTES)
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            raise ConfigError("claim_check.threshold_bytes: must be an integer")
        return cls(directory, threshold)

    # ----------------------------------------------------------------------------------- files
    def put(self, payload: bytes) -> tuple[str, str]:
        """Store ``payload`` durably; returns its ``file://`` URI and SHA-256 hex digest."""
        digest = hashlib.sha256(payload).hexdigest()
        name = f"{uuid.uuid4()}.bin"
        final = self.directory / name
        tmp = self.directory / f".{name}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            self._sync_directory()
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise ClaimCheckError(
                f"claim check could not be stored ({type(exc).__name__})", code="claim-check-write-failed"
            ) from None
        return final.as_uri(), digest

    def _sync_directory(self) -> None:
        # The rename is durable only once the directory entry is on disk.
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def path_of(self, uri: str) -> Path:
        """The file a claim URI names; only uuid-named files directly in this store are accepted."""
        try:
            parts = urlsplit(uri)
            path = Path(unquote(parts.path))
            named = parts.scheme == "file" and parts.netloc in ("", "localhost") and _NAME.match(path.name)
            inside = bool(named) and path.parent.resolve() == self.directory
        except (ValueError, OSError):  # a header any producer wrote: NUL bytes, a bad netloc
            named = inside = False
        if not named:
            raise ClaimCheckError(
                "claim check reference is not a file URI of this store", code="claim-check-invalid"
            )
        if not inside:
            raise ClaimCheckError(
                "claim check reference is outside the claim check store", code="claim-check-invalid"
            )
        return self.directory / path.name

    def get(self, uri: str, sha256: str) -> bytes:
        """The payload a claim names, checked against its SHA-256 digest."""
        if not _SHA.match(sha256 or ""):
            raise ClaimCheckError(
                "claim check digest header is missing or malformed", code="claim-check-invalid"
            )
        path = self.path_of(uri)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ClaimCheckError("claim check file not found", code="claim-check-missing") from None
        except OSError as exc:
            raise ClaimCheckError(
                f"claim check file could not be read ({type(exc).__name__})", code="claim-check-unreadable"
            ) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ClaimCheckError(
                "claim check file does not match its SHA-256 digest", code="claim-check-corrupt"
            )
        return data

    def prune(self, older_than: float, *, dry_run: bool = False, now: float | None = None) -> PruneResult:
        """Delete the claims (and writes that never finished) last modified more than
        ``older_than`` seconds ago. Only files this store names (uuid ``.bin`` and their
        temporary twins) are touched. A claim still referenced by a record, a dead letter or a
        replay window must outlive them: choose ``older_than`` above the topics' retention."""
        if older_than <= 0:
            raise ConfigError("claim check prune: the age must be positive")
        cutoff = (time.time() if now is None else now) - older_than
        files = size = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return PruneResult(0, 0)
        for entry in entries:
            if not (_NAME.match(entry.name) or _TMP.match(entry.name)):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if not entry.is_file(follow_symlinks=False) or info.st_mtime >= cutoff:
                    continue
                if not dry_run:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue  # pruned concurrently
            files += 1
            size += info.st_size
        if files and not dry_run:
            self._sync_directory()
        return PruneResult(files, size)

    # ----------------------------------------------------------------------------------- records
    def offload(self, payload: bytes, headers: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
        """``(payload, headers)`` for a record: above the threshold, a claim in place of the payload.

        The returned headers are a copy; stale claim headers of ``headers`` are dropped either way.
        """
        out = {k: v for k, v in headers.items() if k not in CLAIM_HEADERS}
        if len(payload) <= self.threshold_bytes:
            return payload, out
        uri, digest = self.put(payload)
        out[Header.CLAIM_CHECK] = uri
        out[Header.CLAIM_CHECK_SHA256] = digest
        return CLAIM_PAYLOAD, out

    def resolve(self, payload: bytes, headers: Mapping[str, str]) -> bytes:
        """The real payload of a record: loaded from the store when ``headers`` carry a claim."""
        uri = headers.get(Header.CLAIM_CHECK)
        if uri is None:
            return payload
        return self.get(uri, headers.get(Header.CLAIM_CHECK_SHA256, ""))


def is_claim_checked(headers: Mapping[str, str]) -> bool:
    """True when a record's headers carry a claim check."""
    return Header.CLAIM_CHECK in headers


def resolve(store: ClaimCheckStore | None, payload: bytes, headers: Mapping[str, str]) -> bytes:
    """:meth:`ClaimCheckStore.resolve`; a claim with no store configured is a :class:`ClaimCheckError`."""
    if Header.CLAIM_CHECK not in headers:
        return payload
    if store is None:
        raise ClaimCheckError(
            "record carries a claim check but no claim_check store is configured",
            code="claim-check-not-configured",
        )
    return store.resolve(payload, headers)


def offload(
    store: ClaimCheckStore | None, payload: bytes, headers: Mapping[str, str]
) -> tuple[bytes, dict[str, str]]:
    """:meth:`ClaimCheckStore.offload`, or the record unchanged (minus claim headers) without a store."""
    if store is None:
        return payload, {k: v for k, v in headers.items() if k not in CLAIM_HEADERS}
    return store.offload(payload, headers)


def parse_age(text: str) -> int:
    """``30d``, ``12h``, ``90m`` or ``3600s`` -> seconds."""
    m = _AGE.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError("an age like 30d, 12h, 90m or 3600s is expected")
    return int(m.group(1)) * _SECONDS[m.group(2)]


__all__ = [
    "CLAIM_HEADERS",
    "CLAIM_PAYLOAD",
    "ClaimCheckError",
    "ClaimCheckStore",
    "PruneResult",
    "is_claim_checked",
    "offload",
    "parse_age",
    "resolve",
]
