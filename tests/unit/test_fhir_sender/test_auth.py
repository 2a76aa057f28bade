"""Authenticator plugins: static credentials, OAuth2 client credentials against a real token endpoint
(oauthlib), mutual TLS configuration errors."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fhir_support import TokenServer, canary
from mllp_support import make_pki

from pyheart.adapters.fhir.auth import (
    BasicAuthenticator,
    BearerAuthenticator,
    MutualTlsAuthenticator,
    OAuth2ClientCredentialsAuthenticator,
)
from pyheart.broker.errors import ConfigError, PluginConfigError, TransportError
from pyheart.broker.plugin import PluginType
from pyheart.broker.registry import PluginRegistry


def _recorder(status_for: dict[str, int] | None = None) -> tuple[list[str], httpx.MockTransport]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        seen.append(auth)
        return httpx.Response((status_for or {}).get(auth, 200))

    return seen, httpx.MockTransport(handler)


async def _get(auth: httpx.Auth, transport: httpx.MockTransport) -> httpx.Response:
    async with httpx.AsyncClient(auth=auth, transport=transport) as client:
        return await client.get("http://fhir.test/fhir/metadata")


@pytest.mark.parametrize(
    "cls",
    [BearerAuthenticator, BasicAuthenticator, OAuth2ClientCredentialsAuthenticator, MutualTlsAuthenticator],
)
def test_authenticators_are_authenticator_plugins(cls: type) -> None:
    """Every authenticator declares the authenticator plugin type and a schema."""
    meta = cls().get_metadata()
    assert (meta.plugin_type, bool(meta.config_schema)) == (PluginType.AUTHENTICATOR, True)


def test_literal_secret_is_rejected_at_registration() -> None:
    """A client secret written into the config file instead of ${VAR} is refused."""
    plugin = OAuth2ClientCredentialsAuthenticator(
        {"token_url": "http://127.0.0.1/token", "client_id": "c", "client_secret": "s3cr3t"}
    )
    with pytest.raises(PluginConfigError) as info:
        PluginRegistry().register_plugin("oauth", plugin, env_paths=set())
    assert "s3cr3t" not in str(info.value)
    assert "client_secret: must be an environment reference" in str(info.value)


async def test_bearer_adds_the_token() -> None:
    """The bearer authenticator sends ``Authorization: Bearer <token>``."""
    plugin = BearerAuthenticator({"token": "t-123"})
    await plugin.initialize()
    seen, transport = _recorder()
    await _get(plugin.httpx_auth(), transport)
    assert seen == ["Bearer t-123"]


async def test_basic_adds_user_and_password() -> None:
    """The basic authenticator sends RFC 7617 credentials."""
    plugin = BasicAuthenticator({"username": "engine", "password": "pw"})
    await plugin.initialize()
    seen, transport = _recorder()
    await _get(plugin.httpx_auth(), transport)
    assert seen == ["Basic " + base64.b64encode(b"engine:pw").decode()]


def test_uninitialised_authenticator_refuses_to_work() -> None:
    """Using an authenticator before initialize() is a configuration error, not a silent no-op."""
    with pytest.raises(ConfigError, match=r"^authenticator 'auth-bearer' is not initialised$"):
        BearerAuthenticator({"token": "t"}).httpx_auth()


@pytest.fixture
def token_server() -> Iterator[tuple[TokenServer, str]]:
    """A real OAuth2 token endpoint for client 'engine' / 'engine-secret'."""
    server = TokenServer("engine", "engine-secret")
    with server.running() as url:
        yield server, url


@pytest.fixture
async def oauth(token_server: tuple[TokenServer, str]) -> AsyncIterator[OAuth2ClientCredentialsAuthenticator]:
    """An initialised OAuth2 authenticator against the token server."""
    _server, url = token_server
    plugin = OAuth2ClientCredentialsAuthenticator(
        {"token_url": url, "client_id": "engine", "client_secret": "engine-secret", "scope": "system/*.write"}
    )
    await plugin.initialize()
    yield plugin
    await plugin.cleanup()


async def test_oauth2_token_is_fetched_once_and_cached(
    oauth: OAuth2ClientCredentialsAuthenticator, token_server: tuple[TokenServer, str]
) -> None:
    """Three requests share one token from the token endpoint."""
    server, _url = token_server
    seen, transport = _recorder()
    for _ in range(3):
        await _get(oauth.httpx_auth(), transport)
    assert (oauth.fetches, seen) == (1, [f"Bearer {server.issued[0]}"] * 3)


async def test_concurrent_requests_share_one_token_fetch(oauth: OAuth2ClientCredentialsAuthenticator) -> None:
    """Ten requests started together cause a single token request."""
    _seen, transport = _recorder()
    await asyncio.gather(*(_get(oauth.httpx_auth(), transport) for _ in range(10)))
    assert oauth.fetches == 1


async def test_oauth2_token_refreshed_before_expiry() -> None:
    """A token within refresh_margin_s of its expiry is replaced before it is used."""
    short = TokenServer("engine", "engine-secret", expires_in=1)
    with short.running() as short_url:
        plugin = OAuth2ClientCredentialsAuthenticator(
            {
                "token_url": short_url,
                "client_id": "engine",
                "client_secret": "engine-secret",
                "refresh_margin_s": 30,
            }
        )
        await plugin.initialize()
        first = await plugin.access_token()
        await asyncio.sleep(0.6)  # past the refresh point (half the 1 s life), still before expiry
        second = await plugin.access_token()
        await plugin.cleanup()
    assert (first != second, short.issued) == (True, [first, second])


async def test_oauth2_401_fetches_a_new_token_and_retries_once(
    oauth: OAuth2ClientCredentialsAuthenticator, token_server: tuple[TokenServer, str]
) -> None:
    """When the resource server rejects the cached token, a new one is fetched and the request repeated."""
    server, _url = token_server
    await oauth.access_token()
    rejected = f"Bearer {server.issued[0]}"
    seen, transport = _recorder({rejected: 401})
    response = await _get(oauth.httpx_auth(), transport)
    assert (response.status_code, seen, oauth.fetches) == (200, [rejected, f"Bearer {server.issued[1]}"], 2)


async def test_oauth2_client_credentials_in_the_body(token_server: tuple[TokenServer, str]) -> None:
    """client_auth: body sends client_id and client_secret as form fields."""
    server, url = token_server
    plugin = OAuth2ClientCredentialsAuthenticator(
        {"token_url": url, "client_id": "engine", "client_secret": "engine-secret", "client_auth": "body"}
    )
    await plugin.initialize()
    token = await plugin.access_token()
    await plugin.cleanup()
    assert server.issued == [token]


async def test_oauth2_rejected_client_is_not_retriable(
    token_server: tuple[TokenServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong client secret fails with the status and OAuth2 error code only; the secret is never shown."""
    caplog.set_level(logging.DEBUG)
    _server, url = token_server
    secret = canary("SECRET")
    plugin = OAuth2ClientCredentialsAuthenticator(
        {"token_url": url, "client_id": "engine", "client_secret": secret}
    )
    await plugin.initialize()
    with pytest.raises(TransportError) as info:
        await plugin.access_token()
    await plugin.cleanup()
    assert (str(info.value), info.value.retriable, info.value.code) == (
        "OAuth2 token endpoint answered 401 (invalid_client)",
        False,
        "oauth2-token-rejected",
    )
    assert [r for r in caplog.records if secret in r.getMessage()] == []


async def test_oauth2_unreachable_token_endpoint_is_retriable() -> None:
    """A token endpoint that refuses connections is a retriable transport error."""
    plugin = OAuth2ClientCredentialsAuthenticator(
        {"token_url": "http://127.0.0.1:9/token", "client_id": "engine", "client_secret": "s"}
    )
    await plugin.initialize()
    with pytest.raises(TransportError, match=r"^OAuth2 token endpoint unreachable \(ConnectError\)$") as info:
        await plugin.access_token()
    await plugin.cleanup()
    assert info.value.retriable


async def test_mtls_missing_certificate_fails_at_start(tmp_path: Path) -> None:
    """A client certificate path that does not exist fails initialize() naming the fields."""
    plugin = MutualTlsAuthenticator(
        {"cert_file": str(tmp_path / "no.pem"), "key_file": str(tmp_path / "no.key")}
    )
    with pytest.raises(ConfigError, match=r"^cert_file / key_file: file not found$"):
        await plugin.initialize()


async def test_mtls_builds_a_client_context(tmp_path: Path) -> None:
    """With a certificate, key and CA, the authenticator yields a verifying client TLS context."""
    pki = make_pki(tmp_path)
    plugin = MutualTlsAuthenticator(
        {"cert_file": str(pki.client_cert), "key_file": str(pki.client_key), "ca_file": str(pki.ca)}
    )
    await plugin.initialize()
    ctx = plugin.ssl_context()
    assert (ctx.check_hostname, plugin.httpx_auth()) == (True, None)
