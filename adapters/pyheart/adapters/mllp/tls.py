"""TLS and mutual TLS for the MLLP adapters: ``ssl.SSLContext`` objects built from configuration.

The ``tls`` block is the same for the listener (server side) and the sender (client side)::

    tls:
      enabled: true
      cert_file: /etc/pyheart/mllp.crt      # server: required; client: for mutual TLS
      key_file: /etc/pyheart/mllp.key
      key_password: ${MLLP_KEY_PASSWORD}    # secret: only as an environment reference
      ca_file: /etc/pyheart/ca.crt          # server: CA of client certificates; client: CA of the server
      require_client_cert: true             # server: mutual TLS
      server_hostname: mllp.example.org     # client: name checked in the server certificate
      check_hostname: true                  # client
      min_version: TLSv1.2

Errors name the field and the problem (file missing, key does not match), never key material.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from pyheart.broker.config import Secret
from pyheart.broker.errors import ConfigError

#: The ``tls`` block of both adapters' config schemas (the spec's schema dialect).
TLS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "default": {"enabled": False},
    "description": "TLS / mutual TLS",
    "properties": {
        "enabled": {"type": "boolean", "default": False},
        "cert_file": {"type": "string", "description": "PEM certificate (chain)"},
        "key_file": {"type": "string", "description": "PEM private key"},
        "key_password": {"type": "string", "secret": True, "description": "key password, ${VAR} only"},
        "ca_file": {"type": "string", "description": "PEM CA bundle that verifies the peer"},
        "require_client_cert": {"type": "boolean", "default": False, "description": "server: mTLS"},
        "check_hostname": {"type": "boolean", "default": True, "description": "client"},
        "server_hostname": {"type": "string", "description": "client: expected server name"},
        "min_version": {"type": "string", "enum": ["TLSv1.2", "TLSv1.3"], "default": "TLSv1.2"},
    },
}

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def _password(cfg: Mapping[str, Any]) -> str | None:
    value = cfg.get("key_password")
    if value is None:
        return None
    return value.get() if isinstance(value, Secret) else str(value)


def _load_chain(ctx: ssl.SSLContext, cfg: Mapping[str, Any], where: str) -> None:
    cert, key = str(cfg.get("cert_file")), cfg.get("key_file")
    try:
        ctx.load_cert_chain(cert, str(key) if key else None, password=_password(cfg))
    except FileNotFoundError:
        raise ConfigError(f"{where}.cert_file / key_file: file not found") from None
    except ssl.SSLError:
        raise ConfigError(
            f"{where}.cert_file / key_file: not a PEM certificate and matching key (or wrong key_password)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{where}.cert_file / key_file: cannot read ({exc.strerror})") from None


def _load_ca(ctx: ssl.SSLContext, cfg: Mapping[str, Any], where: str) -> None:
    try:
        ctx.load_verify_locations(cafile=cfg["ca_file"])
    except FileNotFoundError:
        raise ConfigError(f"{where}.ca_file: file not found") from None
    except (ssl.SSLError, OSError):
        raise ConfigError(f"{where}.ca_file: not a readable PEM CA bundle") from None


def server_context(cfg: Mapping[str, Any], where: str = "tls") -> ssl.SSLContext | None:
    """The listener's context, or None when TLS is disabled. Mutual TLS when ``require_client_cert``."""
    if not cfg.get("enabled"):
        return None
    if not cfg.get("cert_file"):
        raise ConfigError(f"{where}.cert_file: is required when TLS is enabled [required]")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[cfg.get("min_version") or "TLSv1.2"]
    _load_chain(ctx, cfg, where)
    if cfg.get("require_client_cert"):
        if not cfg.get("ca_file"):
            raise ConfigError(f"{where}.ca_file: is required when require_client_cert is true [required]")
        _load_ca(ctx, cfg, where)
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif cfg.get("ca_file"):
        _load_ca(ctx, cfg, where)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_context(cfg: Mapping[str, Any], where: str = "tls") -> ssl.SSLContext | None:
    """The sender's context, or None when TLS is disabled. Presents a client certificate when configured."""
    if not cfg.get("enabled"):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = _VERSIONS[cfg.get("min_version") or "TLSv1.2"]
    ctx.check_hostname = bool(cfg.get("check_hostname", True))
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cfg.get("ca_file"):
        _load_ca(ctx, cfg, where)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cfg.get("cert_file"):
        _load_chain(ctx, cfg, where)
    return ctx


__all__ = ["TLS_SCHEMA", "client_context", "server_context"]
