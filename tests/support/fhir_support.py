"""Helpers for the FHIR sender tests: transaction Bundles, a fault-injecting HTTP proxy, a real OAuth2
token endpoint (oauthlib), and PHI canaries.

Everything here runs on 127.0.0.1 in background threads (stdlib ``ThreadingHTTPServer``), so the
test's event loop is never blocked by it.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

#: Headers that describe one hop and are not forwarded by the proxy.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host"}
)


# --------------------------------------------------------------------------------------- payloads
def transaction_bundle(
    mrn: str,
    *,
    family: str = "Doe",
    given: str = "Jane",
    visit: str | None = None,
    observation: str | None = None,
    system: str = "urn:oid:2.16.840.1.113883.19.5",
    birth_date: str = "1970-01-01",
    gender: str = "female",
) -> dict[str, Any]:
    """A transaction Bundle: Patient + Encounter + Observation, each a conditional PUT on its identifier."""
    visit = visit or f"V-{mrn}"
    observation = observation or f"O-{mrn}"
    patient_ref = f"urn:uuid:{uuid.uuid4()}"
    encounter_ref = f"urn:uuid:{uuid.uuid4()}"
    observation_ref = f"urn:uuid:{uuid.uuid4()}"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_ref,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": system, "value": mrn}],
                    "name": [{"family": family, "given": [given]}],
                    "gender": gender,
                    "birthDate": birth_date,
                },
                "request": {"method": "PUT", "url": f"Patient?identifier={system}|{mrn}"},
            },
            {
                "fullUrl": encounter_ref,
                "resource": {
                    "resourceType": "Encounter",
                    "identifier": [{"system": f"{system}.1", "value": visit}],
                    "status": "in-progress",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "IMP",
                    },
                    "subject": {"reference": patient_ref},
                },
                "request": {"method": "PUT", "url": f"Encounter?identifier={system}.1|{visit}"},
            },
            {
                "fullUrl": observation_ref,
                "resource": {
                    "resourceType": "Observation",
                    "identifier": [{"system": f"{system}.2", "value": observation}],
                    "status": "final",
                    "code": {
                        "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]
                    },
                    "subject": {"reference": patient_ref},
                    "encounter": {"reference": encounter_ref},
                    "valueQuantity": {
                        "value": 72,
                        "unit": "beats/minute",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                },
                "request": {"method": "PUT", "url": f"Observation?identifier={system}.2|{observation}"},
            },
        ],
    }


def dumps(resource: dict[str, Any]) -> bytes:
    """FHIR JSON bytes."""
    return json.dumps(resource).encode()


def canary(label: str = "CANARY") -> str:
    """A unique value that must never appear in logs, exception texts or headers."""
    return f"{label}{uuid.uuid4().hex[:10].upper()}"


# --------------------------------------------------------------------------------------- HTTP servers
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """Run ``server`` in a thread; yields ``scheme://127.0.0.1:port``; shuts it down afterwards."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    scheme = "https" if isinstance(server.socket, ssl.SSLSocket) else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class ProxyLog:
    """What the proxy saw: request lines (method and path without query) and auth headers."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    injected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FaultProxy:
    """A real HTTP reverse proxy in front of a FHIR server that injects failures.

    - the first ``fail_first`` requests are answered ``fail_status`` (with ``Retry-After: retry_after``
      when given) without reaching the server;
    - ``check_auth`` (when given) sees each ``Authorization`` header; ``False`` answers 401;
    - ``ssl_context`` (server side) makes it an HTTPS endpoint (mutual TLS when it requires certs).
    Everything else is forwarded to ``upstream`` (``http://host:port/fhir``) and the answer returned.
    """

    def __init__(
        self,
        upstream: str,
        *,
        fail_first: int = 0,
        fail_status: int = 503,
        retry_after: str | None = None,
        check_auth: Callable[[str], bool] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_path = parts.path.rstrip("/")
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.check_auth = check_auth
        self.log = ProxyLog()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                auth = self.headers.get("Authorization", "")
                with proxy.log.lock:
                    proxy.log.requests.append((self.command, self.path.split("?", 1)[0]))
                    proxy.log.authorizations.append(auth)
                    inject = proxy.log.injected < proxy.fail_first
                    if inject:
                        proxy.log.injected += 1
                if inject:
                    extra = {"Retry-After": proxy.retry_after} if proxy.retry_after is not None else {}
                    self._answer(
                        proxy.fail_status,
                        b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}',
                        extra,
                    )
                    return
                if proxy.check_auth is not None and not proxy.check_auth(auth):
                    self._answer(
                        401,
                        b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}',
                        {"WWW-Authenticate": "Bearer"},
                    )
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                path = (
                    proxy.upstream_path + self.path[len("/fhir") :]
                    if self.path.startswith("/fhir")
                    else self.path
                )
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
                try:
                    conn.request(self.command, path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    passed = {
                        k: v
                        for k, v in response.getheaders()
                        if k.lower() not in _HOP_HEADERS and k.lower() != "content-length"
                    }
                    self._answer(response.status, data, passed)
                finally:
                    conn.close()

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if not any(k.lower() == "content-type" for k in headers):
                    self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _relay

        self.server = _Server(("127.0.0.1", 0), Handler)
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve; yields the proxy's FHIR base URL (``.../fhir``)."""
        with serving(self.server) as origin:
            yield f"{origin}/fhir"


class TokenServer:
    """A real OAuth2 token endpoint (oauthlib's ``BackendApplicationServer``, RFC 6749 4.4) at ``/token``.

    Accepts one client (``client_id`` / ``client_secret``, HTTP Basic or form body), issues bearer
    tokens that expire after ``expires_in`` seconds, and tells a resource server whether a token is
    valid (:meth:`valid`).
    """

    def __init__(self, client_id: str, client_secret: str, *, expires_in: int = 3600) -> None:
        from oauthlib.oauth2 import BackendApplicationServer, RequestValidator

        self.client_id = client_id
        self.client_secret = client_secret
        self.issued: list[str] = []
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()
        owner = self

        class Validator(RequestValidator):  # type: ignore[misc]
            def client_authentication_required(self, request: Any, *args: Any, **kwargs: Any) -> bool:
                return True

            def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
                client_id, secret = request.client_id, request.client_secret
                header = request.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
                if client_id != owner.client_id or secret != owner.client_secret:
                    return False
                request.client_id = client_id
                request.client = type("Client", (), {"client_id": client_id})()
                return True

            def validate_grant_type(self, *args: Any, **kwargs: Any) -> bool:
                return True

            def validate_scopes(self, *args: Any, **kwargs: Any) -> bool:
                return True

            def get_default_scopes(self, *args: Any, **kwargs: Any) -> list[str]:
                return ["system/*.write"]

            def save_bearer_token(
                self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any
            ) -> None:
                with owner._lock:
                    owner.issued.append(token["access_token"])
                    owner._expiry[token["access_token"]] = time.monotonic() + float(token["expires_in"])

        endpoint = BackendApplicationServer(Validator(), token_expires_in=expires_in)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                headers, text, status = endpoint.create_token_response(
                    f"http://127.0.0.1{self.path}", http_method="POST", body=body, headers=dict(self.headers)
                )
                data = (text or "").encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = _Server(("127.0.0.1", 0), Handler)

    def valid(self, authorization: str) -> bool:
        """Whether ``authorization`` is ``Bearer <a token this server issued and that has not expired>``."""
        if not authorization.startswith("Bearer "):
            return False
        with self._lock:
            expiry = self._expiry.get(authorization[7:])
        return expiry is not None and time.monotonic() < expiry

    def revoke_all(self) -> None:
        """Invalidate every token issued so far (a resource server then answers 401)."""
        with self._lock:
            self._expiry.clear()

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve; yields the token URL."""
        with serving(self.server) as origin:
            yield f"{origin}/token"


def server_tls_context(cert: str, key: str, *, client_ca: str | None = None) -> ssl.SSLContext:
    """A server-side TLS context; with ``client_ca`` it requires a client certificate (mutual TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
