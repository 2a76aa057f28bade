"""TLS contexts from configuration, and the small helpers the MLLP adapters share."""

from __future__ import annotations

import re
import socket
import ssl
from pathlib import Path

import pytest
from mllp_support import make_pki

from pyheart.adapters.mllp.common import (
    backoff_delay,
    enable_keepalive,
    header_text,
    header_token,
    peer_name,
    traceparent,
)
from pyheart.adapters.mllp.tls import client_context, server_context
from pyheart.broker.config import Secret
from pyheart.broker.errors import ConfigError

PASSWORD = "QZXKEYPASSWORD1"


def encrypted_key(pki_dir: Path, source: Path) -> Path:
    """The PEM key at ``source`` re-written encrypted with PASSWORD."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(source.read_bytes(), password=None)
    target = pki_dir / "encrypted.key"
    target.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    return target


def test_disabled_tls_gives_no_context() -> None:
    """enabled false (the default) means plain TCP."""
    assert (server_context({"enabled": False}), client_context({})) == (None, None)


def test_server_context_requires_a_certificate() -> None:
    """TLS without cert_file is a configuration error naming the field."""
    with pytest.raises(ConfigError, match=r"tls.cert_file: is required when TLS is enabled"):
        server_context({"enabled": True})


def test_mutual_tls_requires_a_ca(tmp_path: Path) -> None:
    """require_client_cert without ca_file is a configuration error naming ca_file."""
    pki = make_pki(tmp_path)
    cfg = {"enabled": True, "cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    with pytest.raises(ConfigError, match=r"tls.ca_file: is required when require_client_cert is true"):
        server_context({**cfg, "require_client_cert": True})


def test_mutual_tls_context_requires_client_certificates(tmp_path: Path) -> None:
    """require_client_cert makes the server demand and verify a client certificate."""
    pki = make_pki(tmp_path)
    ctx = server_context(
        {
            "enabled": True,
            "cert_file": str(pki.server_cert),
            "key_file": str(pki.server_key),
            "ca_file": str(pki.ca),
            "require_client_cert": True,
        }
    )
    assert ctx is not None
    assert (ctx.verify_mode, ctx.minimum_version) == (ssl.CERT_REQUIRED, ssl.TLSVersion.TLSv1_2)


def test_encrypted_key_with_secret_password(tmp_path: Path) -> None:
    """An encrypted private key opens with key_password given as a Secret."""
    pki = make_pki(tmp_path)
    key = encrypted_key(tmp_path, pki.server_key)
    cfg = {
        "enabled": True,
        "cert_file": str(pki.server_cert),
        "key_file": str(key),
        "key_password": Secret(PASSWORD),
    }
    assert isinstance(server_context(cfg), ssl.SSLContext)


def test_wrong_key_password_is_reported_without_the_password(tmp_path: Path) -> None:
    """A wrong key_password is a configuration error that does not echo any password."""
    pki = make_pki(tmp_path)
    key = encrypted_key(tmp_path, pki.server_key)
    cfg = {
        "enabled": True,
        "cert_file": str(pki.server_cert),
        "key_file": str(key),
        "key_password": Secret("nope"),
    }
    with pytest.raises(ConfigError, match=r"wrong key_password") as info:
        server_context(cfg)
    assert PASSWORD not in str(info.value)
    assert "nope" not in str(info.value)


def test_missing_ca_file_is_named(tmp_path: Path) -> None:
    """A ca_file that does not exist is reported at tls.ca_file."""
    with pytest.raises(ConfigError, match=r"tls.ca_file: file not found"):
        client_context({"enabled": True, "ca_file": str(tmp_path / "missing.pem")})


def test_client_context_verifies_the_server(tmp_path: Path) -> None:
    """The client context checks the server certificate and host name."""
    pki = make_pki(tmp_path)
    ctx = client_context({"enabled": True, "ca_file": str(pki.ca)})
    assert ctx is not None
    assert (ctx.verify_mode, ctx.check_hostname) == (ssl.CERT_REQUIRED, True)


def test_tls13_minimum_version(tmp_path: Path) -> None:
    """min_version TLSv1.3 is applied."""
    pki = make_pki(tmp_path)
    ctx = client_context({"enabled": True, "ca_file": str(pki.ca), "min_version": "TLSv1.3"})
    assert ctx is not None
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3


def test_keepalive_is_enabled_on_the_socket() -> None:
    """enable_keepalive turns on SO_KEEPALIVE."""
    with socket.socket() as sock:
        enable_keepalive(sock)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


def test_header_text_keeps_printable_ascii_only() -> None:
    """Non-ASCII and control characters become '?', and the value is cut to the limit."""
    assert header_text("Klinik Münster\r\n", 12) == "Klinik M?nst"


def test_header_token_accepts_short_codes_only() -> None:
    """Message type and trigger must look like codes; anything else is left out."""
    assert [header_token(v) for v in ("ADT", "A01", "ADT A01", "x" * 17)] == ["ADT", "A01", "", ""]


def test_traceparent_format() -> None:
    """A W3C traceparent: 00-<32 hex>-<16 hex>-01, new ids each time."""
    first, second = traceparent(), traceparent()
    assert (re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", first) is not None, first != second) == (
        True,
        True,
    )


def test_peer_name_formats_ipv4_and_ipv6() -> None:
    """IPv4 peers are host:port, IPv6 peers [host]:port."""
    assert [peer_name(("10.0.0.1", 5000)), peer_name(("::1", 5000, 0, 0)), peer_name(None)] == [
        "10.0.0.1:5000",
        "[::1]:5000",
        "unknown",
    ]


def test_backoff_grows_and_is_capped() -> None:
    """Backoff doubles per attempt within [delay/2, delay] and never exceeds the cap."""
    delays = [backoff_delay(n, 1.0, 8.0) for n in range(1, 7)]
    assert [0.5 <= d <= 1.0 for d in delays[:1]] + [d <= 8.0 for d in delays] == [True] * 7
