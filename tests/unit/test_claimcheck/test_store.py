"""Unit tests of the claim-check store: atomic durable writes, integrity, value-free errors."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from pyheart.broker.claimcheck import (
    CLAIM_PAYLOAD,
    ClaimCheckError,
    ClaimCheckStore,
    offload,
    resolve,
)
from pyheart.broker.contracts import Header
from pyheart.broker.errors import Action, ConfigError, action_for

CANARY = "ZZCANARY-Quetzalcoatl-8841"


def _payload(size: int) -> bytes:
    body = (f"MSH|^~\\&|A|B|C|D|20240101||MDM^T02|1|P|2.5\rPID|||{CANARY}\r").encode()
    return body + b"OBX|1|ED|PDF||" + b"A" * max(0, size - len(body) - 14)


def _store(tmp_path: Path, threshold: int = 1_000) -> ClaimCheckStore:
    return ClaimCheckStore(tmp_path / "claims", threshold)


def test_small_payload_is_not_offloaded(tmp_path: Path) -> None:
    """A payload at or below the threshold passes through unchanged with no claim headers."""
    store = _store(tmp_path)
    payload = _payload(500)
    out, headers = store.offload(payload, {Header.CONTENT_TYPE: "application/hl7-v2"})
    assert (out, headers) == (payload, {Header.CONTENT_TYPE: "application/hl7-v2"})


def test_large_payload_round_trips(tmp_path: Path) -> None:
    """A payload above the threshold is replaced by a claim and resolves to the same bytes."""
    store = _store(tmp_path)
    payload = _payload(5_000)
    small, headers = store.offload(payload, {Header.CONTENT_TYPE: "application/hl7-v2"})
    assert small == CLAIM_PAYLOAD
    assert store.resolve(small, headers) == payload


def test_claim_headers_name_a_uuid_file_and_digest(tmp_path: Path) -> None:
    """The claim is a file:// URI with a uuid name plus the SHA-256 digest; content-type is kept."""
    store = _store(tmp_path)
    payload = _payload(5_000)
    _, headers = store.offload(payload, {Header.CONTENT_TYPE: "application/hl7-v2"})
    uri = headers[Header.CLAIM_CHECK]
    assert re.fullmatch(r"file:///.+/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\.bin", uri)
    assert headers[Header.CLAIM_CHECK_SHA256] == hashlib.sha256(payload).hexdigest()
    assert headers[Header.CONTENT_TYPE] == "application/hl7-v2"


def test_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    """After a write the store holds exactly the final file (temp file renamed, not left behind)."""
    store = _store(tmp_path)
    store.offload(_payload(5_000), {})
    assert [p.suffix for p in store.directory.iterdir()] == [".bin"]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    """A write that fails (the store path is a file) raises a value-free error and leaves no file."""
    blocker = tmp_path / "claims"
    blocker.write_bytes(b"")
    store = ClaimCheckStore(blocker, 10)
    with pytest.raises(ClaimCheckError) as info:
        store.put(_payload(100))
    assert info.value.code == "claim-check-write-failed"
    assert blocker.read_bytes() == b""


def test_corrupt_file_is_rejected(tmp_path: Path) -> None:
    """A claim file whose bytes no longer match the digest raises claim-check-corrupt."""
    store = _store(tmp_path)
    small, headers = store.offload(_payload(5_000), {})
    path = store.path_of(headers[Header.CLAIM_CHECK])
    path.write_bytes(path.read_bytes()[:-1] + b"B")
    with pytest.raises(ClaimCheckError, match="does not match its SHA-256 digest") as info:
        store.resolve(small, headers)
    assert info.value.code == "claim-check-corrupt"


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    """A claim whose file is gone raises claim-check-missing."""
    store = _store(tmp_path)
    small, headers = store.offload(_payload(5_000), {})
    os.unlink(store.path_of(headers[Header.CLAIM_CHECK]))
    with pytest.raises(ClaimCheckError, match=r"^claim check file not found$") as info:
        store.resolve(small, headers)
    assert info.value.code == "claim-check-missing"


def test_claim_outside_the_store_is_rejected(tmp_path: Path) -> None:
    """A URI naming a file outside the store directory is refused (no arbitrary file reads)."""
    store = _store(tmp_path)
    other = ClaimCheckStore(tmp_path / "elsewhere", 10)
    _, headers = other.offload(_payload(100), {})
    with pytest.raises(ClaimCheckError, match="outside the claim check store"):
        store.resolve(CLAIM_PAYLOAD, headers)


def test_malformed_digest_is_rejected(tmp_path: Path) -> None:
    """A claim without a well-formed SHA-256 header raises claim-check-invalid."""
    store = _store(tmp_path)
    _, headers = store.offload(_payload(5_000), {})
    headers[Header.CLAIM_CHECK_SHA256] = "nothex"
    with pytest.raises(ClaimCheckError) as info:
        store.resolve(CLAIM_PAYLOAD, headers)
    assert info.value.code == "claim-check-invalid"


def test_claim_without_store_is_an_error() -> None:
    """A claim-checked record with no store configured fails with claim-check-not-configured."""
    with pytest.raises(ClaimCheckError) as info:
        resolve(None, CLAIM_PAYLOAD, {Header.CLAIM_CHECK: "file:///x/y.bin"})
    assert info.value.code == "claim-check-not-configured"


def test_offload_without_store_drops_stale_claim_headers() -> None:
    """Without a store, offload returns the payload and strips claim headers copied from an input."""
    out, headers = offload(None, b"x", {Header.CLAIM_CHECK: "file:///a", Header.CONTENT_TYPE: "t"})
    assert (out, headers) == (b"x", {Header.CONTENT_TYPE: "t"})


def test_claim_errors_dead_letter() -> None:
    """The engine's policy table maps a claim-check error to dead_letter (a message failure)."""
    assert action_for(ClaimCheckError("claim check file not found")) is Action.DEAD_LETTER


def test_errors_carry_no_phi(tmp_path: Path) -> None:
    """Canary: no payload value appears in the text of any claim-check error."""
    store = _store(tmp_path)
    small, headers = store.offload(_payload(5_000), {})
    path = store.path_of(headers[Header.CLAIM_CHECK])
    texts = []
    path.write_bytes(_payload(4_000))
    with pytest.raises(ClaimCheckError) as corrupt:
        store.resolve(small, headers)
    texts.append(str(corrupt.value))
    path.unlink()
    with pytest.raises(ClaimCheckError) as missing:
        store.resolve(small, headers)
    texts.append(str(missing.value))
    assert len(texts) == 2
    assert all(CANARY not in t and str(tmp_path) not in t for t in texts)


def test_from_config_requires_dir() -> None:
    """A claim_check config without dir is a configuration error naming the field."""
    with pytest.raises(ConfigError, match=r"claim_check\.dir: is required"):
        ClaimCheckStore.from_config({"threshold_bytes": 10})


def _age(store: ClaimCheckStore, uri: str, days: float) -> Path:
    path = store.path_of(uri)
    when = path.stat().st_mtime - days * 86400
    os.utime(path, (when, when))
    return path


def test_prune_deletes_only_old_claims_of_the_store(tmp_path: Path) -> None:
    """prune removes claim files (and unfinished writes) older than the age; fresh claims and
    files the store did not name stay, whatever their age."""
    store = _store(tmp_path)
    old = [_age(store, store.put(_payload(2_000))[0], 40) for _ in range(2)]
    fresh = store.path_of(store.put(_payload(2_000))[0])
    foreign = tmp_path / "claims" / "notes.txt"
    foreign.write_text("keep")
    os.utime(foreign, (0, 0))
    stale_tmp = tmp_path / "claims" / ("." + "1" * 8 + "-2222-3333-4444-" + "5" * 12 + ".bin.tmp")
    stale_tmp.write_bytes(b"partial")
    os.utime(stale_tmp, (0, 0))
    expected = sum(p.stat().st_size for p in old) + len(b"partial")
    result = store.prune(30 * 86400)
    assert (result.files, result.bytes) == (3, expected)
    assert not any(p.exists() for p in (*old, stale_tmp))
    assert fresh.exists()
    assert foreign.exists()


def test_prune_dry_run_deletes_nothing(tmp_path: Path) -> None:
    """A dry run reports what it would delete and deletes nothing."""
    store = _store(tmp_path)
    path = _age(store, store.put(_payload(2_000))[0], 40)
    result = store.prune(30 * 86400, dry_run=True)
    assert (result.files, result.bytes) == (1, path.stat().st_size)
    assert path.exists()


def test_prune_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`pyheart claim-check prune DIR --older-than 30d` prunes and says how much; an age without a
    unit is refused."""
    from pyheart.broker.cli import main

    store = _store(tmp_path)
    path = _age(store, store.put(_payload(2_000))[0], 40)
    size = path.stat().st_size
    assert main(["claim-check", "prune", str(store.directory), "--older-than", "30d"]) == 0
    assert capsys.readouterr().out.strip() == f"pruned 1 claim check files ({size} bytes)"
    assert not path.exists()
    with pytest.raises(SystemExit):
        main(["claim-check", "prune", str(store.directory), "--older-than", "30"])


@pytest.mark.parametrize(
    "uri", ["file:///tmp/%00x/0a0a0a0a-0a0a-0a0a-0a0a-0a0a0a0a0a0a.bin", "file://[::1/x.bin"]
)
def test_reference_no_path_can_hold_is_invalid_not_a_crash(tmp_path: Path, uri: str) -> None:
    """A claim header any producer could write (a NUL byte, a broken host) is claim-check-invalid,
    so the record is dead-lettered rather than the consumer loop failing."""
    with pytest.raises(ClaimCheckError) as info:
        _store(tmp_path).path_of(uri)
    assert info.value.code == "claim-check-invalid"
