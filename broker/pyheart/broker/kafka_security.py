"""Kafka client security: ``security_protocol`` with ``tls`` and ``sasl`` blocks as aiokafka keyword arguments.

One mechanism for the engine (``kafka:`` in the engine file, pydantic) and every adapter (the same
blocks as spec-dialect schema fields, :data:`SECURITY_SCHEMA`)::

    security_protocol: SASL_SSL            # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    tls:                                   # SSL and SASL_SSL
      ca_file: /etc/pyheart/kafka-ca.pem   # or system_ca: true (the operating system's trust store)
      cert_file: /etc/pyheart/client.pem   # mutual TLS: cert_file and key_file together
      key_file: /etc/pyheart/client.key
      key_password: ${KAFKA_KEY_PASSWORD}  # secret: only as an environment reference
      check_hostname: true
    sasl:                                  # SASL_PLAINTEXT and SASL_SSL
      mechanism: SCRAM-SHA-512             # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
      username: pyheart
      password: ${KAFKA_PASSWORD}          # secret: only as an environment reference

Secrets are :class:`~pyheart.broker.config.Secret` values until :func:`client_kwargs` hands them to
aiokafka; rule errors name the field path and the rule, never a value, and a TLS file that cannot be
loaded is reported by field and error class (``raise ... from None``, so the password in a chained
cause never reaches a log).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

from pyheart.broker.config import Secret
from pyheart.broker.errors import ConfigError, ConfigIssue, TransportError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)
_TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
_SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


@dataclass(frozen=True)
class TlsSettings:
    """How a client verifies the brokers (``ca_file`` or ``system_ca``) and proves itself (mutual TLS)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: Secret | None = None
    check_hostname: bool = True
    system_ca: bool = False


@dataclass(frozen=True)
class SaslSettings:
    """SASL credentials; ``password`` is a :class:`Secret`."""

    username: str
    password: Secret
    mechanism: SaslMechanism = "PLAIN"


@dataclass(frozen=True)
class KafkaSecurity:
    """A client's security settings; :meth:`issues` checks the combination, :func:`client_kwargs` applies it."""

    protocol: SecurityProtocol = "PLAINTEXT"
    tls: TlsSettings | None = None
    sasl: SaslSettings | None = None

    def issues(
        self, *, protocol_key: str = "security_protocol", tls_key: str = "tls", sasl_key: str = "sasl"
    ) -> list[ConfigIssue]:
        """The broken rules, each naming its field (keys relative to the settings block)."""
        out: list[ConfigIssue] = []
        p = self.protocol
        if p in _TLS_PROTOCOLS:
            if self.tls is None or (not self.tls.ca_file and not self.tls.system_ca):
                out.append(
                    ConfigIssue(
                        f"{tls_key}.ca_file",
                        "tls-ca",
                        f"is required when {protocol_key} is {p} (or set {tls_key}.system_ca: true)",
                    )
                )
        elif self.tls is not None:
            out.append(
                ConfigIssue(
                    tls_key, "tls-protocol", f"is set but {protocol_key} is {p} (use SSL or SASL_SSL)"
                )
            )
        if self.tls is not None:
            t = self.tls
            if bool(t.cert_file) != bool(t.key_file):
                missing = "key_file" if t.cert_file else "cert_file"
                out.append(
                    ConfigIssue(f"{tls_key}.{missing}", "tls-pair", "cert_file and key_file go together")
                )
            if t.key_password is not None and not t.key_file:
                out.append(ConfigIssue(f"{tls_key}.key_password", "tls-pair", "needs key_file"))
        if p in _SASL_PROTOCOLS:
            if self.sasl is None:
                out.append(ConfigIssue(sasl_key, "sasl-required", f"is required when {protocol_key} is {p}"))
            else:
                if not self.sasl.username:
                    out.append(ConfigIssue(f"{sasl_key}.username", "sasl-required", "must not be empty"))
                if not self.sasl.password.get():
                    out.append(ConfigIssue(f"{sasl_key}.password", "sasl-required", "must not be empty"))
        elif self.sasl is not None:
            out.append(
                ConfigIssue(
                    sasl_key,
                    "sasl-protocol",
                    f"is set but {protocol_key} is {p} (use SASL_PLAINTEXT or SASL_SSL)",
                )
            )
        return out


def ssl_context(tls: TlsSettings, where: str = "tls") -> ssl.SSLContext:
    """The client TLS context (aiokafka's ``create_ssl_context``); :class:`ConfigError` names the field."""
    from aiokafka.helpers import create_ssl_context  # no work at import time

    field = "ca_file" if tls.ca_file else "system_ca"
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=tls.ca_file or None)
        if tls.cert_file:
            field = "cert_file"
            password = tls.key_password.get() if tls.key_password is not None else None
            # An empty password callback stops OpenSSL from prompting on a terminal for an encrypted key.
            context.load_cert_chain(tls.cert_file, tls.key_file or None, password or (lambda: b""))
    except FileNotFoundError:
        raise ConfigError(f"{where}.{field}: file not found [tls-file]") from None
    except PermissionError:
        raise ConfigError(f"{where}.{field}: file cannot be read (permission denied) [tls-file]") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        hint = " (or key_password is wrong)" if field == "cert_file" else ""
        raise ConfigError(
            f"{where}.{field}: cannot be loaded as PEM{hint}: {type(exc).__name__} [tls-file]"
        ) from None
    context.check_hostname = tls.check_hostname
    return context


def client_kwargs(
    security: KafkaSecurity,
    where: str = "",
    keys: tuple[str, str, str] = ("security_protocol", "tls", "sasl"),
) -> dict[str, Any]:
    """aiokafka client keyword arguments (any client: consumer, producer, admin) for ``security``.

    Raises :class:`ConfigError` listing every broken rule; ``where`` prefixes the field paths and
    ``keys`` are the names of the protocol, TLS and SASL fields where the settings came from.
    """
    prefix = f"{where}." if where else ""
    protocol_key, tls_key, sasl_key = keys
    issues = security.issues(protocol_key=protocol_key, tls_key=tls_key, sasl_key=sasl_key)
    if issues:
        lines = "; ".join(f"{prefix}{issue}" for issue in issues)
        raise ConfigError(f"invalid Kafka security settings: {lines}")
    kwargs: dict[str, Any] = {"security_protocol": security.protocol}
    if security.protocol in _TLS_PROTOCOLS and security.tls is not None:
        kwargs["ssl_context"] = ssl_context(security.tls, f"{prefix}{tls_key}")
    if security.protocol in _SASL_PROTOCOLS and security.sasl is not None:
        kwargs["sasl_mechanism"] = security.sasl.mechanism
        kwargs["sasl_plain_username"] = security.sasl.username
        kwargs["sasl_plain_password"] = security.sasl.password.get()
    return kwargs


# ------------------------------------------------------------------------------ failures
async def diagnose(
    bootstrap_servers: str, kwargs: Mapping[str, Any], where: str = "", timeout_ms: int = 5_000
) -> TransportError | None:
    """Why a client with ``kwargs`` cannot connect, when the security settings are the reason.

    aiokafka reports a refused login or a failed TLS handshake only as "Unable to bootstrap" (the
    cause goes to its log), which reads like a broker that is down. This opens one connection to the
    first bootstrap server with the same settings and names the failing block; ``None`` when the
    cause is not a security one. The broker's reason text is dropped: it may echo the user name.
    """
    from aiokafka.conn import create_conn  # no work at import time
    from aiokafka.errors import (
        AuthenticationFailedError,
        IllegalSaslStateError,
        KafkaError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )

    prefix = f"{where}." if where else ""
    first = bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        return None
    names = (
        "security_protocol",
        "ssl_context",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
    )
    options = {k: kwargs[k] for k in names if k in kwargs}
    try:
        conn = await create_conn(
            host.strip("[]"),
            int(port),
            client_id="pyheart-diagnose",
            request_timeout_ms=timeout_ms,
            **options,
        )
    except (SaslAuthenticationFailed, AuthenticationFailedError, IllegalSaslStateError) as exc:
        return TransportError(
            f"kafka: authentication failed at {first} ({type(exc).__name__}): check {prefix}sasl "
            "(mechanism, username, password)",
            retriable=False,
            code="kafka-auth",
        )
    except UnsupportedSaslMechanismError:
        return TransportError(
            f"kafka: the broker at {first} does not enable {prefix}sasl.mechanism "
            f"{kwargs.get('sasl_mechanism')}",
            retriable=False,
            code="kafka-auth",
        )
    except ssl.SSLCertVerificationError as exc:
        return TransportError(
            f"kafka: TLS certificate verification failed at {first} ({exc.verify_message}): check "
            f"{prefix}tls.ca_file / system_ca / check_hostname",
            retriable=False,
            code="kafka-tls",
        )
    except ssl.SSLError as exc:
        return TransportError(
            f"kafka: TLS handshake failed at {first} ({type(exc).__name__}): check {prefix}security_protocol "
            f"and {prefix}tls",
            retriable=False,
            code="kafka-tls",
        )
    except (KafkaError, OSError, TimeoutError):
        return None
    conn.close()
    return None


_C = TypeVar("_C")


def explain_failures(client: _C, bootstrap_servers: str, kwargs: Mapping[str, Any], where: str = "") -> _C:
    """``client`` (an aiokafka client) whose ``start()`` raises :func:`diagnose`'s error on a security failure.

    The bound method is replaced on the instance: aiokafka's classes are untyped, so a subclass
    would hide the client's API from the type checker.
    """
    if kwargs.get("security_protocol", "PLAINTEXT") == "PLAINTEXT":
        return client
    start: Callable[[], Awaitable[None]] = client.start  # type: ignore[attr-defined]

    async def start_explained() -> None:
        try:
            await start()
        except Exception as exc:
            from aiokafka.errors import KafkaConnectionError

            if not isinstance(exc, KafkaConnectionError):
                raise
            explained = await diagnose(bootstrap_servers, kwargs, where)
            if explained is None:
                raise
            explained.error_class = type(exc).__name__  # type: ignore[attr-defined]
            raise explained from None

    client.start = start_explained  # type: ignore[attr-defined]
    return client


# ------------------------------------------------------------------------------ adapters (spec dialect)
#: Adapter config keys of the security settings (``tls`` is taken by the MLLP listener's own server TLS).
PROTOCOL_KEY = "security_protocol"
TLS_KEY = "kafka_tls"
SASL_KEY = "kafka_sasl"
SECURITY_KEYS: tuple[str, str, str] = (PROTOCOL_KEY, TLS_KEY, SASL_KEY)

#: Schema fields (the spec's dialect) every Kafka-using adapter merges into its ``config_schema``.
SECURITY_SCHEMA: Mapping[str, Mapping[str, Any]] = {
    PROTOCOL_KEY: {"type": "string", "enum": list(PROTOCOLS), "default": "PLAINTEXT"},
    TLS_KEY: {
        "type": "object",
        "description": "TLS to the Kafka brokers (SSL, SASL_SSL)",
        "properties": {
            "ca_file": {"type": "string", "description": "PEM CA bundle the brokers' certificates chain to"},
            "system_ca": {
                "type": "boolean",
                "default": False,
                "description": "trust the system store instead",
            },
            "cert_file": {"type": "string", "description": "client certificate (PEM), mutual TLS"},
            "key_file": {"type": "string", "description": "client private key (PEM)"},
            "key_password": {"type": "string", "secret": True},
            "check_hostname": {"type": "boolean", "default": True},
        },
    },
    SASL_KEY: {
        "type": "object",
        "description": "SASL credentials (SASL_PLAINTEXT, SASL_SSL)",
        "properties": {
            "mechanism": {"type": "string", "enum": list(MECHANISMS), "default": "PLAIN"},
            "username": {"type": "string", "required": True, "min_length": 1},
            "password": {"type": "string", "secret": True, "required": True},
        },
    },
}


def security_fields() -> dict[str, Any]:
    """A fresh copy of :data:`SECURITY_SCHEMA` to merge into an adapter's schema."""
    return {
        name: {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in rule.items()}
        for name, rule in SECURITY_SCHEMA.items()
    }


def _secret(value: Any) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(str(value))


def security_from_config(config: Mapping[str, Any]) -> KafkaSecurity:
    """The :class:`KafkaSecurity` of a (schema-checked) adapter config."""
    tls = config.get(TLS_KEY)
    sasl = config.get(SASL_KEY)
    return KafkaSecurity(
        protocol=config.get(PROTOCOL_KEY) or "PLAINTEXT",
        tls=None
        if not isinstance(tls, Mapping)
        else TlsSettings(
            ca_file=tls.get("ca_file"),
            cert_file=tls.get("cert_file"),
            key_file=tls.get("key_file"),
            key_password=_secret(tls.get("key_password")),
            check_hostname=bool(tls.get("check_hostname", True)),
            system_ca=bool(tls.get("system_ca", False)),
        ),
        sasl=None
        if not isinstance(sasl, Mapping)
        else SaslSettings(
            username=str(sasl.get("username") or ""),
            password=_secret(sasl.get("password")) or Secret(""),
            mechanism=sasl.get("mechanism") or "PLAIN",
        ),
    )


def config_issues(config: Mapping[str, Any]) -> list[ConfigIssue]:
    """The broken security rules of an adapter config, with the adapter's key names."""
    return security_from_config(config).issues(protocol_key=PROTOCOL_KEY, tls_key=TLS_KEY, sasl_key=SASL_KEY)


def config_kwargs(config: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """aiokafka keyword arguments for an adapter config (see :func:`client_kwargs`)."""
    return client_kwargs(security_from_config(config), where, SECURITY_KEYS)


def adapter_config(security: KafkaSecurity) -> dict[str, Any]:
    """``security`` as adapter config keys (what the engine injects into adapters that leave them out)."""
    out: dict[str, Any] = {PROTOCOL_KEY: security.protocol}
    if security.tls is not None:
        t = security.tls
        tls: dict[str, Any] = {"system_ca": t.system_ca, "check_hostname": t.check_hostname}
        for name in ("ca_file", "cert_file", "key_file", "key_password"):
            if getattr(t, name) is not None:
                tls[name] = getattr(t, name)
        out[TLS_KEY] = tls
    if security.sasl is not None:
        s = security.sasl
        out[SASL_KEY] = {"mechanism": s.mechanism, "username": s.username, "password": s.password}
    return out


__all__ = [
    "MECHANISMS",
    "PROTOCOLS",
    "SECURITY_KEYS",
    "SECURITY_SCHEMA",
    "KafkaSecurity",
    "SaslMechanism",
    "SaslSettings",
    "SecurityProtocol",
    "TlsSettings",
    "adapter_config",
    "client_kwargs",
    "config_issues",
    "config_kwargs",
    "diagnose",
    "explain_failures",
    "security_fields",
    "security_from_config",
    "ssl_context",
]
