"""Test support for the MLLP adapters: an in-memory Kafka fake, an MLLP client, a PKI, messages.

The fakes stand in for Kafka only in the fast tier; the integration tests use the real broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyheart.adapters.mllp.framing import Frame, MllpDecoder, encode_frame


def hl7(
    control_id: str = "CTRL0001",
    patient: str = "PAT001",
    *,
    family: str = "DOE",
    trigger: str = "A01",
    sender: str = "SENDAPP|SENDFAC",
    version: str = "2.5.1",
    msh15: str = "",
    msh16: str = "",
    extra_segments: str = "",
) -> bytes:
    """A small ADT message with the given control id, patient identifier and family name."""
    msh = (
        f"MSH|^~\\&|{sender}|RECVAPP|RECVFAC|20240101120000||ADT^{trigger}^ADT_A01|{control_id}|P|{version}"
        f"|||{msh15}|{msh16}"
    ).rstrip("|")
    pid = f"PID|1||{patient}^^^HOSP^MR||{family}^JANE||19800101|F"
    body = f"{msh}\rEVN|{trigger}|20240101120000\r{pid}\rPV1|1|I|WARD^101^1\r{extra_segments}"
    return body.encode()


# --------------------------------------------------------------------------------------- Kafka fake
@dataclass
class Meta:
    """Where the fake stored a record."""

    topic: str
    partition: int
    offset: int


@dataclass
class Stored:
    """A record the fake broker acknowledged."""

    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str | None:
        """A header value as text."""
        for k, v in self.headers:
            if k == name:
                return v.decode()
        return None


@dataclass
class FakeKafka:
    """An in-memory broker for the fast tier.

    ``unreachable``: producers cannot start. ``stall``: sends are never acknowledged.
    ``fail_sends``: that many next deliveries fail with a broker error.
    """

    unreachable: bool = False
    stall: bool = False
    fail_sends: int = 0
    records: list[Stored] = field(default_factory=list)
    stalled: list[tuple[asyncio.Future[Any], Stored]] = field(default_factory=list)
    starts: int = 0
    stalled_event: asyncio.Event = field(default_factory=asyncio.Event)

    def producer_factory(self, _settings: dict[str, Any]) -> FakeProducer:
        """What the listener calls instead of building an aiokafka producer."""
        return FakeProducer(self)

    def on(self, topic: str) -> list[Stored]:
        """Records stored on ``topic``, in order."""
        return [r for r in self.records if r.topic == topic]

    def release_stalled(self) -> None:
        """Acknowledge every stalled send now (a slow broker catching up)."""
        for future, record in self.stalled:
            if not future.done():
                self.records.append(record)
                future.set_result(Meta(record.topic, 0, len(self.records) - 1))
        self.stalled.clear()


class BrokerDown(Exception):
    """Raised by the fake like aiokafka raises KafkaConnectionError."""


class FakeProducer:
    """A producer bound to a :class:`FakeKafka`."""

    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka

    async def start(self) -> None:
        self.kafka.starts += 1
        if self.kafka.unreachable:
            raise BrokerDown("unreachable")

    async def stop(self) -> None:
        return None

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        record = Stored(topic, value, key, list(headers or []))
        if self.kafka.fail_sends > 0:
            self.kafka.fail_sends -= 1
            future.set_exception(BrokerDown("not enough replicas"))
        elif self.kafka.stall:
            self.kafka.stalled.append((future, record))
            self.kafka.stalled_event.set()
        else:
            self.kafka.records.append(record)
            future.set_result(Meta(topic, 0, len(self.kafka.records) - 1))
        return future

    async def send_and_wait(self, topic: str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`send`, then wait for the acknowledgment (what the senders' dead-letter producer calls)."""
        return await (await self.send(topic, *args, **kwargs))


# --------------------------------------------------------------------------------------- MLLP client
async def read_frames(reader: asyncio.StreamReader, count: int, limit_s: float = 30.0) -> list[bytes]:
    """Read ``count`` MLLP frames (their payloads) however they are split."""
    decoder = MllpDecoder()
    out: list[bytes] = []
    async with asyncio.timeout(limit_s):
        while len(out) < count:
            data = await reader.read(65_536)
            if not data:
                break
            out += [e.payload for e in decoder.feed(data) if isinstance(e, Frame)]
    return out


async def exchange(
    port: int,
    *payloads: bytes,
    host: str = "127.0.0.1",
    ssl_context: ssl.SSLContext | None = None,
    raw: bytes | None = None,
    expect: int | None = None,
) -> list[bytes]:
    """Send ``payloads`` framed (or ``raw`` bytes as they are) on one connection; return the answers."""
    reader, writer = await asyncio.open_connection(
        host, port, ssl=ssl_context, server_hostname="localhost" if ssl_context else None
    )
    try:
        writer.write(raw if raw is not None else b"".join(encode_frame(p) for p in payloads))
        await writer.drain()
        return await read_frames(reader, expect if expect is not None else len(payloads))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


def ack_fields(ack: bytes) -> dict[str, list[str]]:
    """Segments of an ACK by name (first occurrence), split on ``|``."""
    out: dict[str, list[str]] = {}
    for seg in ack.decode("latin-1").split("\r"):
        if seg:
            out.setdefault(seg[:3], seg.split("|"))
    return out


def msa(ack: bytes) -> tuple[str, str]:
    """(MSA-1, MSA-2) of an ACK."""
    fields = ack_fields(ack)["MSA"]
    return fields[1], fields[2]


# --------------------------------------------------------------------------------------- PKI
@dataclass(frozen=True)
class Pki:
    """PEM files of a throw-away CA, a server certificate and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_client_cert: Path
    other_client_key: Path

    def client_context(self, *, with_cert: bool = True, other: bool = False) -> ssl.SSLContext:
        """A client context trusting the CA, presenting the client (or an untrusted) certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        if with_cert:
            cert, key = (
                (self.other_client_cert, self.other_client_key)
                if other
                else (self.client_cert, self.client_key)
            )
            ctx.load_cert_chain(str(cert), str(key))
        return ctx


def make_pki(directory: Path) -> Pki:
    """Generate a CA, a server certificate (localhost, 127.0.0.1), a client certificate, and a
    client certificate from another, untrusted CA (for mTLS negative tests)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return path

    def write_cert(cert: x509.Certificate, path: Path) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def leaf(
        cn: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], server: bool
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer[1].subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return key, builder.sign(issuer[0], hashes.SHA256())

    root = ca("PyHeart Test CA")
    rogue = ca("Untrusted CA")
    server = leaf("localhost", root, server=True)
    client = leaf("mllp-client", root, server=False)
    other = leaf("rogue-client", rogue, server=False)
    return Pki(
        ca=write_cert(root[1], directory / "ca.pem"),
        server_cert=write_cert(server[1], directory / "server.pem"),
        server_key=write_key(server[0], directory / "server.key"),
        client_cert=write_cert(client[1], directory / "client.pem"),
        client_key=write_key(client[0], directory / "client.key"),
        other_client_cert=write_cert(other[1], directory / "rogue.pem"),
        other_client_key=write_key(other[0], directory / "rogue.key"),
    )


# --------------------------------------------------------------------------------------- Kafka consumer fake
@dataclass(frozen=True)
class TP:
    """A hashable topic-partition, like aiokafka's TopicPartition."""

    topic: str
    partition: int


@dataclass
class FakeRecord:
    """A consumed record, like aiokafka's ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class FakeConsumer:
    """Hands out ``records`` once, in batches per partition, and remembers commits in order."""

    def __init__(self, records: list[FakeRecord]) -> None:
        self.pending = list(records)
        self.commits: list[tuple[TP, int]] = []
        self._committed = asyncio.Event()

    async def wait_for_commits(self, count: int) -> None:
        """Return once ``count`` commits were made."""
        while len(self.commits) < count:
            self._committed.clear()
            await self._committed.wait()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        if not self.pending:
            await asyncio.sleep(min(timeout_ms, 50) / 1000)
            return {}
        batch: dict[TP, list[FakeRecord]] = {}
        for record in self.pending[: max_records or len(self.pending)]:
            batch.setdefault(TP(record.topic, record.partition), []).append(record)
        self.pending = self.pending[max_records or len(self.pending) :]
        return batch

    async def commit(self, offsets: Any = None) -> None:
        for tp, offset in dict(offsets or {}).items():
            self.commits.append((tp, offset))
        self._committed.set()


# --------------------------------------------------------------------------------------- receivers
def hl7apy_receiver(codes: list[str], received: list[str]) -> Any:
    """hl7apy's MLLPServer (a third-party MLLP receiver, one message per connection) on 127.0.0.1.

    Each message gets the next code of ``codes`` (the last one repeats); its ER7 text is appended
    to ``received``. Returns the server; run ``serve_forever`` in a thread and ``shutdown`` it.
    """
    import threading
    import uuid as _uuid

    from hl7apy.mllp import AbstractHandler, MLLPServer
    from hl7apy.parser import parse_message as hl7apy_parse

    lock = threading.Lock()

    class ScriptedHandler(AbstractHandler):  # type: ignore[misc]
        def reply(self) -> str:
            parsed = hl7apy_parse(self.incoming_message, find_groups=False)
            control = parsed.msh.msh_10.value
            with lock:
                received.append(self.incoming_message)
                code = codes[min(len(received), len(codes)) - 1]
            ack = (
                f"MSH|^~\\&|RECVAPP|RECVFAC|SENDAPP|SENDFAC|20240101120000||ACK^A01^ACK|{_uuid.uuid4().hex[:20]}"
                f"|P|2.5.1\rMSA|{code}|{control}\r"
            )
            return "\x0b" + ack + "\x1c\r"

    class AnyType(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            return (ScriptedHandler,)

    return MLLPServer("127.0.0.1", 0, AnyType(), timeout=10)


class ScriptedReceiver:
    """An asyncio MLLP receiver that answers according to a script, for awkward peers.

    Actions per message, in order (the last repeats): ``"AA"``/``"AE"``/``"AR"`` (an ACK written
    one byte at a time), ``"silent"`` (no answer), ``"mismatch"`` (an AA for another control id),
    ``"close"`` (close without answering), ``"garbage"`` (a frame that is not an ACK),
    ``"commit"`` (an MLLPv2 ACK byte).
    """

    def __init__(self, actions: list[str], *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.actions = actions
        self.received: list[bytes] = []
        self.connections = 0
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        decoder = MllpDecoder()
        try:
            while True:
                data = await reader.read(65_536)
                if not data:
                    return
                for event in decoder.feed(data):
                    if not isinstance(event, Frame):
                        continue
                    self.received.append(event.payload)
                    action = self.actions[min(len(self.received), len(self.actions)) - 1]
                    control = event.payload.split(b"\r")[0].split(b"|")[9].decode()
                    if action == "silent":
                        continue
                    if action == "close":
                        writer.close()
                        return
                    if action == "commit":
                        writer.write(b"\x0b\x06\x1c\r")
                        continue
                    if action == "garbage":
                        writer.write(b"\x0bhello\x1c\r")
                        continue
                    code, echoed = ("AA", "SOMETHING-ELSE") if action == "mismatch" else (action, control)
                    ack = encode_frame(
                        f"MSH|^~\\&|R|RF|S|SF|20240101||ACK|A{len(self.received)}|P|2.5.1\r"
                        f"MSA|{code}|{echoed}\rERR||PID^1^5|102^Data type error^HL70357|E\r".encode()
                    )
                    for i in range(len(ack)):
                        writer.write(ack[i : i + 1])
                        await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()
