"""Authenticator plugins for HTTP adapters (the FHIR REST sender): bearer, basic, OAuth2 client
credentials and mutual TLS.

Each is a plugin of type ``authenticator`` with its own config schema; every credential field is
``secret: true``, so a pipeline file can only give it as an environment reference (``${VAR}``).
An adapter asks an initialised authenticator for two things:

- :meth:`HttpAuthenticator.httpx_auth` - an ``httpx.Auth`` that adds credentials to each request
  (``None`` for mutual TLS);
- :meth:`HttpAuthenticator.ssl_context` - a client ``ssl.SSLContext`` presenting a certificate
  (mutual TLS only; ``None`` otherwise).

The OAuth2 authenticator fetches a token from the token endpoint (RFC 6749 section 4.4), caches it,
fetches a new one ``refresh_margin_s`` before it expires, and once more when the resource server
answers 401. Concurrent requests share one token fetch. Token endpoint failures raise
:class:`TransportError` (``retriable`` for 5xx and transport errors, not for a rejected client);
their texts name the status and the OAuth2 error code, never the token or the secret.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from typing import Any, ClassVar

import httpx

from pyheart.adapters._delivery import checked_config
from pyheart.broker.config import Secret, validate_config
from pyheart.broker.errors import ConfigError, TransportError
from pyheart.broker.logs import get_logger
from pyheart.broker.plugin import Plugin, PluginMetadata, PluginType

_TOKEN_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_URL = r"^https?://[^\s]+$"

BEARER_SCHEMA: dict[str, Any] = {
    "token": {"type": "string", "required": True, "secret": True, "description": "${VAR} only"},
}
BASIC_SCHEMA: dict[str, Any] = {
    "username": {"type": "string", "required": True, "min_length": 1},
    "password": {"type": "string", "required": True, "secret": True, "description": "${VAR} only"},
}
OAUTH2_SCHEMA: dict[str, Any] = {
    "token_url": {"type": "string", "required": True, "pattern": _URL},
    "client_id": {"type": "string", "required": True, "min_length": 1},
    "client_secret": {"type": "string", "required": True, "secret": True, "description": "${VAR} only"},
    "scope": {"type": "string", "default": ""},
    "audience": {"type": "string", "default": "", "description": "sent as 'audience' when set"},
    "client_auth": {
        "type": "string",
        "enum": ["basic", "body"],
        "default": "basic",
        "description": "client credentials in an HTTP Basic header (RFC 6749 2.3.1) or the form body",
    },
    "refresh_margin_s": {"type": "number", "default": 30, "minimum": 0},
    "timeout_s": {"type": "number", "default": 10, "minimum": 0.1},
    "ca_file": {"type": "string", "description": "PEM CA bundle that verifies the token endpoint"},
}
MTLS_SCHEMA: dict[str, Any] = {
    "cert_file": {"type": "string", "required": True, "description": "PEM client certificate (chain)"},
    "key_file": {"type": "string", "required": True, "description": "PEM private key"},
    "key_password": {"type": "string", "secret": True, "description": "key password, ${VAR} only"},
    "ca_file": {"type": "string", "description": "PEM CA bundle that verifies the server"},
    "check_hostname": {"type": "boolean", "default": True},
}


def secret_text(value: object) -> str:
    """The text of a :class:`Secret` (or of a plain string given in code)."""
    return value.get() if isinstance(value, Secret) else str(value)


class HttpAuthenticator(Plugin):
    """Base of the HTTP authenticator plugins: validated config, idempotent lifecycle."""

    NAME: ClassVar[str] = ""
    DESCRIPTION: ClassVar[str] = ""
    SCHEMA: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._settings: dict[str, Any] = {}

    def get_metadata(self) -> PluginMetadata:
        """Name, type (authenticator) and config schema."""
        return PluginMetadata(
            name=self.NAME,
            version="0.1.0",
            plugin_type=PluginType.AUTHENTICATOR,
            description=self.DESCRIPTION,
            author="PyHeart",
            config_schema=self.SCHEMA,
        )

    async def initialize(self) -> bool:
        """Validate the config (again, for plugins built in code) and prepare credentials."""
        if self.initialized:
            return True
        self._settings = checked_config(self.NAME, self.SCHEMA, self.config)
        await self._setup()
        self.initialized = True
        return True

    async def cleanup(self) -> bool:
        """Release resources (idempotent)."""
        await self._teardown()
        self.initialized = False
        return True

    async def _setup(self) -> None:
        return None

    async def _teardown(self) -> None:
        return None

    def _require_initialized(self) -> None:
        if not self.initialized:
            raise ConfigError(f"authenticator '{self.NAME}' is not initialised")

    def httpx_auth(self) -> httpx.Auth | None:
        """The ``httpx.Auth`` adding credentials to requests, or ``None``."""
        return None

    def ssl_context(self, default_ca_file: str | None = None) -> ssl.SSLContext | None:
        """A client TLS context presenting a certificate, or ``None``."""
        return None


class _HeaderAuth(httpx.Auth):
    """Sets one ``Authorization`` value on every request."""

    def __init__(self, value: str) -> None:
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value
        yield request


class BearerAuthenticator(HttpAuthenticator):
    """A static bearer token (``Authorization: Bearer <token>``)."""

    NAME = "auth-bearer"
    DESCRIPTION = "static bearer token (from the environment)"
    SCHEMA = BEARER_SCHEMA

    def httpx_auth(self) -> httpx.Auth:
        """``Authorization: Bearer <token>`` on every request."""
        self._require_initialized()
        return _HeaderAuth(f"Bearer {secret_text(self._settings['token'])}")


class BasicAuthenticator(HttpAuthenticator):
    """HTTP Basic authentication (RFC 7617)."""

    NAME = "auth-basic"
    DESCRIPTION = "HTTP Basic user and password (password from the environment)"
    SCHEMA = BASIC_SCHEMA

    def httpx_auth(self) -> httpx.Auth:
        """httpx's own Basic auth."""
        self._require_initialized()
        return httpx.BasicAuth(self._settings["username"], secret_text(self._settings["password"]))


class _OAuth2Flow(httpx.Auth):
    """Adds the cached access token; on a 401 answer fetches a new token and tries once more."""

    def __init__(self, owner: OAuth2ClientCredentialsAuthenticator) -> None:
        self._owner = owner

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("the OAuth2 authenticator works with httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._owner.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = await self._owner.access_token(stale=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


class OAuth2ClientCredentialsAuthenticator(HttpAuthenticator):
    """OAuth2 client credentials grant (RFC 6749 4.4) with a cached, refreshed access token."""

    NAME = "auth-oauth2-client-credentials"
    DESCRIPTION = "OAuth2 client credentials: token cached and refreshed before expiry"
    SCHEMA = OAUTH2_SCHEMA

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._client: httpx.AsyncClient | None = None
        self._lock: asyncio.Lock | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._log = get_logger("pyheart.adapters.fhir.auth")
        #: Number of tokens fetched from the token endpoint since initialisation.
        self.fetches = 0

    async def _setup(self) -> None:
        s = self._settings
        verify: ssl.SSLContext | bool = True
        if s.get("ca_file"):
            verify = _verify_context(s["ca_file"], "ca_file")
        self._client = httpx.AsyncClient(timeout=s["timeout_s"], verify=verify, follow_redirects=False)
        self._lock = asyncio.Lock()
        self._token = None
        self._expires_at = 0.0
        self.fetches = 0

    async def _teardown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        self._token = None

    def httpx_auth(self) -> httpx.Auth:
        """An auth flow that adds the current access token (fetching or refreshing it as needed)."""
        self._require_initialized()
        return _OAuth2Flow(self)

    async def access_token(self, *, stale: str | None = None) -> str:
        """The cached token, or a new one when there is none, it is about to expire, or it equals ``stale``
        (the token a resource server just rejected)."""
        self._require_initialized()
        assert self._lock is not None
        async with self._lock:
            fresh = self._token is not None and time.monotonic() < self._expires_at
            if fresh and self._token != stale:
                assert self._token is not None
                return self._token
            return await self._fetch()

    async def _fetch(self) -> str:
        assert self._client is not None
        s = self._settings
        form = {"grant_type": "client_credentials"}
        if s["scope"]:
            form["scope"] = s["scope"]
        if s["audience"]:
            form["audience"] = s["audience"]
        secret = secret_text(s["client_secret"])
        auth: httpx.Auth | httpx._client.UseClientDefault = httpx.USE_CLIENT_DEFAULT
        if s["client_auth"] == "basic":
            auth = httpx.BasicAuth(s["client_id"], secret)
        else:
            form["client_id"] = s["client_id"]
            form["client_secret"] = secret
        began = time.monotonic()
        try:
            response = await self._client.post(
                s["token_url"], data=form, auth=auth, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise TransportError(
                f"OAuth2 token endpoint unreachable ({type(exc).__name__})", code="oauth2-token-unavailable"
            ) from None
        if response.status_code != 200:
            error = _oauth_error(response)
            retriable = response.status_code >= 500 or response.status_code == 429
            self._log.warning(
                "fhir.auth.token",
                outcome="failure",
                status_code=response.status_code,
                error_code=error or None,
            )
            raise TransportError(
                f"OAuth2 token endpoint answered {response.status_code}" + (f" ({error})" if error else ""),
                retriable=retriable,
                code="oauth2-token-rejected" if not retriable else "oauth2-token-unavailable",
            )
        try:
            body = response.json()
            token = body["access_token"]
            token_type = str(body.get("token_type", "bearer"))
            expires_in = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise TransportError(
                "OAuth2 token endpoint answered without a usable access_token", code="oauth2-token-invalid"
            ) from None
        if not isinstance(token, str) or not token or token_type.lower() != "bearer":
            raise TransportError(
                "OAuth2 token endpoint answered without a bearer access_token", code="oauth2-token-invalid"
            )
        # Refresh early: a token that expires in flight is rejected; never wait less than half its life.
        margin = min(float(s["refresh_margin_s"]), expires_in / 2)
        self._token = token
        self._expires_at = began + expires_in - margin
        self.fetches += 1
        self._log.info(
            "fhir.auth.token",
            outcome="success",
            count=self.fetches,
            duration_ms=round((time.monotonic() - began) * 1000, 3),
        )
        return token


def _oauth_error(response: httpx.Response) -> str:
    """The OAuth2 ``error`` code of a token endpoint answer (a short code only; never the description)."""
    try:
        error = response.json().get("error", "")
    except (ValueError, AttributeError):
        return ""
    return error if isinstance(error, str) and _TOKEN_CODE.match(error) else ""


def _verify_context(ca_file: str, where: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except (ssl.SSLError, OSError):
        raise ConfigError(f"{where}: not a readable PEM CA bundle") from None
    return ctx


class MutualTlsAuthenticator(HttpAuthenticator):
    """Mutual TLS: the client presents a certificate; the server is verified with ``ca_file``."""

    NAME = "auth-mtls"
    DESCRIPTION = "mutual TLS client certificate (key password from the environment)"
    SCHEMA = MTLS_SCHEMA

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._ctx: ssl.SSLContext | None = None

    async def _setup(self) -> None:
        self._ctx = None
        self.ssl_context()  # load the files now: a wrong path or key fails at start, not at first send

    def ssl_context(self, default_ca_file: str | None = None) -> ssl.SSLContext:
        """A client context with the certificate and key loaded, verifying the server."""
        if self._ctx is not None:
            return self._ctx
        s = self._settings or checked_config(self.NAME, self.SCHEMA, self.config)
        ca_file = s.get("ca_file") or default_ca_file
        ctx = (
            _verify_context(ca_file, "ca_file")
            if ca_file
            else ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        )
        ctx.check_hostname = bool(s["check_hostname"])
        password = s.get("key_password")
        try:
            ctx.load_cert_chain(
                s["cert_file"], s["key_file"], password=None if password is None else secret_text(password)
            )
        except FileNotFoundError:
            raise ConfigError("cert_file / key_file: file not found") from None
        except ssl.SSLError:
            raise ConfigError(
                "cert_file / key_file: not a PEM certificate and matching key (or wrong key_password)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cert_file / key_file: cannot read ({exc.strerror})") from None
        self._ctx = ctx
        return ctx

    async def _teardown(self) -> None:
        self._ctx = None


#: Authenticators by the ``type`` an adapter's ``auth`` block names.
AUTHENTICATORS: dict[str, type[HttpAuthenticator]] = {
    "bearer": BearerAuthenticator,
    "basic": BasicAuthenticator,
    "oauth2-client-credentials": OAuth2ClientCredentialsAuthenticator,
    "mtls": MutualTlsAuthenticator,
}


def auth_block_schema() -> dict[str, Any]:
    """The ``auth`` block of an HTTP adapter: ``type`` plus the fields of every authenticator.

    Secret fields stay ``secret: true`` here, so the registry checks they come from the environment.
    """
    properties: dict[str, Any] = {
        "type": {"type": "string", "enum": ["none", *AUTHENTICATORS], "default": "none"},
    }
    for cls in AUTHENTICATORS.values():
        for name, rule in cls.SCHEMA.items():
            relaxed = {k: v for k, v in rule.items() if k not in ("required", "default")}
            properties.setdefault(name, relaxed)
    return {"type": "object", "default": {"type": "none"}, "properties": properties}


def authenticator_from_block(block: Mapping[str, Any], where: str = "auth") -> HttpAuthenticator | None:
    """The authenticator an adapter's validated ``auth`` block describes (not yet initialised)."""
    kind = block.get("type", "none")
    if kind == "none":
        extra = sorted(k for k, v in block.items() if k != "type" and v is not None)
        if extra:
            raise ConfigError(f"{where}: {', '.join(extra)} given but auth type is none [unused]")
        return None
    cls = AUTHENTICATORS[kind]
    unused = sorted(k for k, v in block.items() if k != "type" and k not in cls.SCHEMA and v is not None)
    if unused:
        raise ConfigError(f"{where}: {', '.join(unused)} not used by auth type {kind} [unused]")
    config = {k: v for k, v in block.items() if k in cls.SCHEMA and v is not None}
    validated, issues = validate_config(cls.SCHEMA, config)
    if issues:
        details = "; ".join(f"{where}.{i.path}: {i.message} [{i.rule}]" for i in issues)
        raise ConfigError(details)
    return cls(validated)


__all__ = [
    "AUTHENTICATORS",
    "BASIC_SCHEMA",
    "BEARER_SCHEMA",
    "MTLS_SCHEMA",
    "OAUTH2_SCHEMA",
    "BasicAuthenticator",
    "BearerAuthenticator",
    "HttpAuthenticator",
    "MutualTlsAuthenticator",
    "OAuth2ClientCredentialsAuthenticator",
    "auth_block_schema",
    "authenticator_from_block",
    "checked_config",
    "secret_text",
]
