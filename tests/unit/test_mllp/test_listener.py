"""The MLLP listener over real loopback sockets, with an in-memory Kafka fake (fast tier).

The same behaviours run against the real broker in tests/integration/test_mllp_listener.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mllp_support import FakeKafka, Pki, ack_fields, exchange, hl7, make_pki, msa, read_frames

from pyheart.adapters.mllp.framing import encode_frame
from pyheart.adapters.mllp.listener import MllpListener, record_key
from pyheart.broker import PluginManager
from pyheart.broker.contracts import Format, Header
from pyheart.broker.errors import ConfigError, PluginConfigError
from pyheart.broker.hl7v2 import parse_message

TOPIC = "hl7.in"
CANARY = "QZXCANARYWV9"

Start = Callable[..., Awaitable[MllpListener]]


async def closed_by_server(port: int) -> bool:
    """Connect and wait: True when the server closes the connection without a word."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = await asyncio.wait_for(reader.read(100), timeout=30)
    except ConnectionResetError:
        data = b""
    writer.close()
    return data == b""


@pytest.fixture
def kafka() -> FakeKafka:
    return FakeKafka()


@pytest.fixture
async def start(kafka: FakeKafka) -> AsyncIterator[Start]:
    """Start listeners on an ephemeral port with fast timeouts; clean them up afterwards."""
    started: list[MllpListener] = []

    async def run(**config: Any) -> MllpListener:
        base: dict[str, Any] = {
            "port": 0,
            "topic": TOPIC,
            "produce_timeout_s": 0.5,
            "hold_timeout_s": 2,
        }
        listener = MllpListener({**base, **config}, producer_factory=kafka.producer_factory)
        await listener.initialize()
        started.append(listener)
        return listener

    yield run
    for listener in started:
        await listener.cleanup()


async def test_stored_message_gets_aa(start: Start, kafka: FakeKafka) -> None:
    """A message is acknowledged AA once the broker has it."""
    listener = await start()
    [ack] = await exchange(listener.port, hl7("C1"))
    assert (msa(ack), len(kafka.on(TOPIC))) == (("AA", "C1"), 1)


async def test_record_value_is_the_original_bytes(start: Start, kafka: FakeKafka) -> None:
    """The record value is the frame payload exactly as received (LF terminators and all)."""
    listener = await start()
    payload = hl7("C1").replace(b"\r", b"\n")
    await exchange(listener.port, payload)
    assert kafka.on(TOPIC)[0].value == payload


async def test_record_headers(start: Start, kafka: FakeKafka) -> None:
    """The record carries the envelope headers derived from MSH and the connection."""
    listener = await start()
    await exchange(listener.port, hl7("C1"))
    record = kafka.on(TOPIC)[0]
    names = {k for k, _ in record.headers}
    assert {
        Header.MESSAGE_ID,
        Header.CONTENT_TYPE,
        Header.SOURCE,
        Header.MESSAGE_TYPE,
        Header.TRIGGER,
        Header.CONTROL_ID,
        Header.CORRELATION_ID,
        Header.TRACEPARENT,
        Header.RECEIVED_AT,
        Header.PEER,
        "pyheart-charset",
    } <= names
    assert [record.header(h) for h in (Header.CONTENT_TYPE, Header.SOURCE, Header.MESSAGE_TYPE)] == [
        Format.HL7V2,
        "SENDAPP^SENDFAC",
        "ADT",
    ]
    assert [record.header(h) for h in (Header.TRIGGER, Header.CONTROL_ID, "pyheart-charset")] == [
        "A01",
        "C1",
        "utf-8",
    ]


async def test_traceparent_is_w3c(start: Start, kafka: FakeKafka) -> None:
    """The traceparent header is a W3C trace context, version 00, sampled."""
    listener = await start()
    await exchange(listener.port, hl7("C1"))
    value = kafka.on(TOPIC)[0].header(Header.TRACEPARENT) or ""
    version, trace_id, span_id, flags = value.split("-")
    assert (version, len(trace_id), len(span_id), flags) == ("00", 32, 16, "01")


async def test_peer_header_is_the_sender_address(start: Start, kafka: FakeKafka) -> None:
    """The peer header is the connecting socket's address."""
    listener = await start()
    await exchange(listener.port, hl7("C1"))
    assert (kafka.on(TOPIC)[0].header(Header.PEER) or "").startswith("127.0.0.1:")


async def test_record_key_is_the_patient_hash(start: Start, kafka: FakeKafka) -> None:
    """The record key is the hash of the patient identifier, not the identifier."""
    listener = await start()
    await exchange(listener.port, hl7("C1", "MRN777"))
    key = kafka.on(TOPIC)[0].key
    assert (key, b"MRN777" in (key or b"")) == (record_key(parse_message(hl7("C1", "MRN777"))), False)


async def test_same_patient_same_key(start: Start, kafka: FakeKafka) -> None:
    """Two messages about one patient share the key (and so the partition)."""
    listener = await start()
    await exchange(listener.port, hl7("C1", "MRN1", trigger="A01"), hl7("C2", "MRN1", trigger="A08"))
    first, second = kafka.on(TOPIC)
    assert first.key == second.key


def test_key_secret_changes_the_key() -> None:
    """With an HMAC secret the key differs from the unkeyed hash (identifiers cannot be guessed)."""
    message = parse_message(hl7("C1", "MRN1"))
    assert record_key(message, b"s3cret") != record_key(message)


def test_assigning_authority_is_part_of_the_key() -> None:
    """The same number from another assigning authority is another patient."""
    a = parse_message(hl7("C1", "MRN1"))
    b = parse_message(hl7("C1", "MRN1").replace(b"^^^HOSP^MR", b"^^^CLINIC^MR"))
    assert record_key(a) != record_key(b)


def test_key_falls_back_to_the_control_id() -> None:
    """Without PID-3 the key is derived from sender and MSH-10, so messages spread."""
    a = parse_message(b"MSH|^~\\&|S|F|R|RF|20240101||MFN^M02|C1|P|2.5\r")
    b = parse_message(b"MSH|^~\\&|S|F|R|RF|20240101||MFN^M02|C2|P|2.5\r")
    assert record_key(a) != record_key(b)


async def test_pipelined_messages_are_acked_in_order(start: Start, kafka: FakeKafka) -> None:
    """Twenty frames sent without waiting get twenty ACKs in the same order."""
    listener = await start()
    payloads = [hl7(f"C{n:03d}", f"P{n % 3}") for n in range(20)]
    acks = await exchange(listener.port, *payloads)
    assert [msa(a) for a in acks] == [("AA", f"C{n:03d}") for n in range(20)]


async def test_pipelined_messages_are_stored_in_order(start: Start, kafka: FakeKafka) -> None:
    """Records reach the producer in the order the frames arrived on the connection."""
    listener = await start()
    await exchange(listener.port, *[hl7(f"C{n:03d}") for n in range(20)])
    assert [r.header(Header.CONTROL_ID) for r in kafka.on(TOPIC)] == [f"C{n:03d}" for n in range(20)]


async def test_byte_by_byte_sender(start: Start, kafka: FakeKafka) -> None:
    """A sender writing one byte per packet gets its ACK."""
    listener = await start()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    for byte in encode_frame(hl7("C1")):
        writer.write(bytes((byte,)))
        await writer.drain()
    [ack] = await read_frames(reader, 1)
    writer.close()
    assert msa(ack) == ("AA", "C1")


async def test_junk_and_missing_cr_between_frames(start: Start, kafka: FakeKafka) -> None:
    """Junk, NULs and a frame without its trailing CR do not disturb the next messages."""
    listener = await start()
    raw = b"\x00\x00noise" + b"\x0b" + hl7("C1") + b"\x1c" + b"\r\n\x00" + encode_frame(hl7("C2"))
    acks = await exchange(listener.port, raw=raw, expect=2)
    assert [msa(a) for a in acks] == [("AA", "C1"), ("AA", "C2")]


async def test_unparseable_message_gets_ar_with_location(start: Start, kafka: FakeKafka) -> None:
    """A message with a broken segment gets AR and an ERR naming the segment, no values."""
    listener = await start()
    broken = hl7("C1") + f"{CANARY.lower()}|garbage\r".encode()
    [ack] = await exchange(listener.port, broken)
    err = ack_fields(ack)["ERR"]
    assert (msa(ack), err[3], err[7]) == (
        ("AR", "C1"),
        "100^Segment sequence error^HL70357",
        "segment 5: message does not parse",
    )


async def test_unparseable_message_goes_to_the_reject_topic(start: Start, kafka: FakeKafka) -> None:
    """A rejected message is still kept, on the reject topic, with error headers."""
    listener = await start()
    broken = hl7("C1") + b"bad|segment\r"
    await exchange(listener.port, broken)
    [record] = kafka.on(f"{TOPIC}.rejected")
    assert (record.value, record.header(Header.ERROR_CODE), record.header(Header.ERROR_LOCATIONS)) == (
        broken,
        "parse-error",
        "segment 5",
    )


async def test_missing_control_id_is_rejected_naming_msh10(start: Start, kafka: FakeKafka) -> None:
    """MSH-10 is needed to acknowledge: without it the message is AR with ERR-2 MSH^1^10."""
    listener = await start()
    [ack] = await exchange(listener.port, hl7(""))
    assert (msa(ack)[0], ack_fields(ack)["ERR"][2]) == ("AR", "MSH^1^10")


async def test_rejects_can_be_dropped(start: Start, kafka: FakeKafka) -> None:
    """publish_rejects false answers AR and stores nothing."""
    listener = await start(publish_rejects=False)
    [ack] = await exchange(listener.port, hl7("C1") + b"bad|segment\r")
    assert (msa(ack)[0], kafka.records) == ("AR", [])


async def test_reject_topic_unavailable_gives_ae(start: Start, kafka: FakeKafka) -> None:
    """A reject that cannot be kept is AE (retry later), so nothing is lost silently."""
    kafka.unreachable = True
    listener = await start()
    [ack] = await exchange(listener.port, hl7("C1") + b"bad|segment\r")
    assert msa(ack)[0] == "AE"


async def test_oversized_message_gets_ar_and_stream_recovers(start: Start, kafka: FakeKafka) -> None:
    """A message above the limit gets AR with ERR; the next message on the connection gets AA."""
    listener = await start(max_message_bytes=2048)
    big = hl7("BIG1", extra_segments="OBX|1|TX|||" + "A" * 10_000 + "\r")
    acks = await exchange(listener.port, big, hl7("C2"))
    assert [msa(a) for a in acks] == [("AR", "BIG1"), ("AA", "C2")]
    assert ack_fields(acks[0])["ERR"][5] == "message-too-large^^99PYH"


async def test_oversized_message_is_not_stored(start: Start, kafka: FakeKafka) -> None:
    """Only the message within the limit reaches Kafka."""
    listener = await start(max_message_bytes=2048)
    big = hl7("BIG1", extra_segments="OBX|1|TX|||" + "A" * 10_000 + "\r")
    await exchange(listener.port, big, hl7("C2"))
    assert [r.header(Header.CONTROL_ID) for r in kafka.records] == ["C2"]


async def test_kafka_unreachable_gives_ae_never_aa(start: Start, kafka: FakeKafka) -> None:
    """With the broker unreachable the sender gets AE with an ERR, never AA."""
    kafka.unreachable = True
    listener = await start()
    [ack] = await exchange(listener.port, hl7("C1"))
    assert (msa(ack), ack_fields(ack)["ERR"][5]) == (("AE", "C1"), "store-unavailable^^99PYH")


async def test_unacknowledged_produce_gives_ae(start: Start, kafka: FakeKafka) -> None:
    """A record the broker does not acknowledge within produce_timeout_s is answered AE."""
    kafka.stall = True
    listener = await start()
    [ack] = await exchange(listener.port, hl7("C1"))
    assert msa(ack)[0] == "AE"


async def test_enhanced_mode_error_is_ce(start: Start, kafka: FakeKafka) -> None:
    """In enhanced mode the same situation is CE."""
    kafka.unreachable = True
    listener = await start()
    [ack] = await exchange(listener.port, hl7("C1", msh15="AL", msh16="NE"))
    assert msa(ack)[0] == "CE"


async def test_hold_mode_waits_for_the_broker(start: Start, kafka: FakeKafka) -> None:
    """on_kafka_unavailable hold keeps the sender waiting and answers AA once the broker has it."""
    kafka.stall = True
    listener = await start(on_kafka_unavailable="hold", hold_timeout_s=30)
    task = asyncio.create_task(exchange(listener.port, hl7("C1")))
    await asyncio.wait_for(kafka.stalled_event.wait(), timeout=30)
    kafka.release_stalled()
    [ack] = await task
    assert msa(ack) == ("AA", "C1")


async def test_hold_mode_retries_a_failed_send(start: Start, kafka: FakeKafka) -> None:
    """A delivery that fails is sent again within the hold bound and stored once."""
    kafka.fail_sends = 2
    listener = await start(on_kafka_unavailable="hold", hold_timeout_s=30)
    [ack] = await exchange(listener.port, hl7("C1"))
    assert (msa(ack), len(kafka.on(TOPIC))) == (("AA", "C1"), 1)


async def test_hold_mode_gives_up_after_its_bound(start: Start, kafka: FakeKafka) -> None:
    """Past hold_timeout_s the held message is answered AE."""
    kafka.unreachable = True
    listener = await start(on_kafka_unavailable="hold", hold_timeout_s=0.5)
    [ack] = await exchange(listener.port, hl7("C1"))
    assert msa(ack)[0] == "AE"


async def test_nak_mode_fails_fast_on_a_broker_error(start: Start, kafka: FakeKafka) -> None:
    """In nak mode a failed delivery is not retried by the listener: AE, nothing stored."""
    kafka.fail_sends = 1
    listener = await start()
    [ack] = await exchange(listener.port, hl7("C1"))
    assert (msa(ack)[0], kafka.records) == ("AE", [])


async def test_duplicate_gets_the_same_ack_bytes(start: Start, kafka: FakeKafka) -> None:
    """A resent message (same sender and MSH-10) gets byte-identical ACKs."""
    listener = await start()
    [first] = await exchange(listener.port, hl7("C1"))
    [second] = await exchange(listener.port, hl7("C1"))
    assert first == second


async def test_duplicate_is_published_once(start: Start, kafka: FakeKafka) -> None:
    """The resent message is not stored a second time."""
    listener = await start()
    await exchange(listener.port, hl7("C1"), hl7("C1"))
    assert len(kafka.on(TOPIC)) == 1


async def test_same_control_id_from_another_sender_is_not_a_duplicate(start: Start, kafka: FakeKafka) -> None:
    """MSH-10 is unique per sender only: another facility's C1 is a new message."""
    listener = await start()
    await exchange(listener.port, hl7("C1"), hl7("C1", sender="OTHERAPP|OTHERFAC"))
    assert len(kafka.on(TOPIC)) == 2


async def test_duplicate_window_zero_publishes_every_copy(start: Start, kafka: FakeKafka) -> None:
    """With duplicate detection off, each copy is stored."""
    listener = await start(duplicate_window_s=0)
    await exchange(listener.port, hl7("C1"), hl7("C1"))
    assert len(kafka.on(TOPIC)) == 2


async def test_retry_after_ae_is_processed(start: Start, kafka: FakeKafka) -> None:
    """A transient AE is not remembered: the sender's retry is stored and gets AA."""
    kafka.fail_sends = 1
    listener = await start()
    [first] = await exchange(listener.port, hl7("C1"))
    [second] = await exchange(listener.port, hl7("C1"))
    assert (msa(first)[0], msa(second)[0], len(kafka.on(TOPIC))) == ("AE", "AA", 1)


async def test_late_broker_ack_makes_the_retry_a_duplicate(start: Start, kafka: FakeKafka) -> None:
    """A record NAKed for slowness but stored later answers the retry AA without a second copy."""
    kafka.stall = True
    listener = await start()
    [first] = await exchange(listener.port, hl7("C1"))
    kafka.stall = False
    kafka.release_stalled()
    [second] = await exchange(listener.port, hl7("C1"))
    assert (msa(first)[0], msa(second)[0], len(kafka.on(TOPIC))) == ("AE", "AA", 1)


async def test_msh15_ne_sends_no_ack_but_stores(start: Start, kafka: FakeKafka) -> None:
    """MSH-15 NE: stored, no accept ACK; the next message's ACK is the first answer."""
    listener = await start()
    acks = await exchange(listener.port, hl7("C1", msh15="NE", msh16="AL"), hl7("C2"), expect=1)
    assert ([msa(a) for a in acks], len(kafka.on(TOPIC))) == ([("AA", "C2")], 2)


async def test_ack_mode_original_overrides_msh15(start: Start, kafka: FakeKafka) -> None:
    """ack_mode original answers AA although MSH-15 asks for enhanced mode."""
    listener = await start(ack_mode="original")
    [ack] = await exchange(listener.port, hl7("C1", msh15="NE", msh16="AL"))
    assert msa(ack) == ("AA", "C1")


async def test_mllpv2_commit_ack_byte(start: Start, kafka: FakeKafka) -> None:
    """ack_style mllpv2 answers a stored message with the one-byte commit ACK."""
    listener = await start(ack_style="mllpv2")
    assert await exchange(listener.port, hl7("C1")) == [b"\x06"]


async def test_mllpv2_nak_byte_when_not_stored(start: Start, kafka: FakeKafka) -> None:
    """ack_style mllpv2 answers NAK when the broker is unreachable."""
    kafka.unreachable = True
    listener = await start(ack_style="mllpv2")
    assert await exchange(listener.port, hl7("C1")) == [b"\x15"]


async def test_connection_limit(start: Start, kafka: FakeKafka) -> None:
    """Beyond max_connections a new connection is closed at once; the open one keeps working."""
    listener = await start(max_connections=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(encode_frame(hl7("C1")))
    await writer.drain()
    await read_frames(reader, 1)
    refused = await closed_by_server(listener.port)
    writer.write(encode_frame(hl7("C3")))
    await writer.drain()
    [ack] = await read_frames(reader, 1)
    writer.close()
    assert (refused, msa(ack)) == (True, ("AA", "C3"))


async def test_idle_connection_is_closed(start: Start, kafka: FakeKafka) -> None:
    """A connection silent for idle_timeout_s is closed by the listener."""
    listener = await start(idle_timeout_s=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    data = await asyncio.wait_for(reader.read(100), timeout=30)
    writer.close()
    assert data == b""


async def test_cleanup_is_idempotent(start: Start, kafka: FakeKafka) -> None:
    """cleanup() twice is harmless and leaves the port closed."""
    listener = await start()
    port = listener.port
    await listener.cleanup()
    await listener.cleanup()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_cleanup_answers_messages_in_flight(start: Start, kafka: FakeKafka) -> None:
    """Stopping while a message waits for Kafka still sends its (negative) ACK before closing."""
    kafka.stall = True
    listener = await start(produce_timeout_s=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(encode_frame(hl7("C1")))
    await writer.drain()
    await asyncio.wait_for(kafka.stalled_event.wait(), timeout=30)
    await listener.cleanup()
    acks = await read_frames(reader, 1)
    writer.close()
    assert [msa(a)[0] for a in acks] == ["AE"]


def test_config_rejects_unknown_keys() -> None:
    """An unknown key is reported with its path."""
    with pytest.raises(ConfigError, match=r"mllp_in.*prot: unknown key"):
        PluginManager().load_plugins_from_config(
            {"plugins": [{"id": "mllp_in", "class": "mllp-listener", "config": {"topic": "t", "prot": 1}}]}
        )


def test_config_secret_must_come_from_environment() -> None:
    """key_secret written literally in a file is refused, without echoing it."""
    with pytest.raises(ConfigError, match="key_secret: must be an environment reference") as info:
        PluginManager().load_plugins_from_config(
            {
                "plugins": [
                    {"id": "in", "class": "mllp-listener", "config": {"topic": "t", "key_secret": CANARY}}
                ]
            }
        )
    assert CANARY not in str(info.value)


def test_config_secret_from_environment_is_accepted() -> None:
    """key_secret as ${VAR} loads, and the plugin is registered."""
    manager = PluginManager()
    count = manager.load_plugins_from_config(
        {"plugins": [{"id": "in", "class": "mllp-listener", "config": {"topic": "t", "key_secret": "${K}"}}]},
        environ={"K": CANARY},
    )
    assert count == 1


async def test_standalone_config_is_validated() -> None:
    """A listener built in code with a bad config fails at initialize, naming the field."""
    listener = MllpListener({"port": 0})
    with pytest.raises(PluginConfigError, match="topic: is required"):
        await listener.initialize()


async def test_tls_listener_accepts_tls_clients(start: Start, kafka: FakeKafka, tmp_path: Path) -> None:
    """With TLS enabled a client that trusts the CA gets its ACK."""
    pki = make_pki(tmp_path)
    tls = {"enabled": True, "cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    listener = await start(tls=tls)
    [ack] = await exchange(listener.port, hl7("C1"), ssl_context=pki.client_context(with_cert=False))
    assert msa(ack) == ("AA", "C1")


async def test_mtls_listener_refuses_clients_without_certificate(
    start: Start, kafka: FakeKafka, tmp_path: Path
) -> None:
    """With require_client_cert a client without a certificate gets no ACK and nothing is stored."""
    pki = make_pki(tmp_path)
    tls = {
        "enabled": True,
        "cert_file": str(pki.server_cert),
        "key_file": str(pki.server_key),
        "ca_file": str(pki.ca),
        "require_client_cert": True,
    }
    listener = await start(tls=tls)
    answers = await tls_exchange(listener.port, pki.client_context(with_cert=False))
    assert (answers, kafka.records) == ([], [])


async def test_mtls_listener_refuses_certificates_from_another_ca(
    start: Start, kafka: FakeKafka, tmp_path: Path
) -> None:
    """With require_client_cert a certificate not issued by the configured CA is refused."""
    pki = make_pki(tmp_path)
    listener = await start(tls=mtls_config(pki))
    answers = await tls_exchange(listener.port, pki.client_context(other=True))
    assert (answers, kafka.records) == ([], [])


async def test_mtls_listener_accepts_a_trusted_client(start: Start, kafka: FakeKafka, tmp_path: Path) -> None:
    """With require_client_cert a client certificate from the CA gets its ACK."""
    pki = make_pki(tmp_path)
    listener = await start(tls=mtls_config(pki))
    [ack] = await tls_exchange(listener.port, pki.client_context())
    assert msa(ack) == ("AA", "C1")


def mtls_config(pki: Pki) -> dict[str, Any]:
    return {
        "enabled": True,
        "cert_file": str(pki.server_cert),
        "key_file": str(pki.server_key),
        "ca_file": str(pki.ca),
        "require_client_cert": True,
    }


async def tls_exchange(port: int, context: ssl.SSLContext) -> list[bytes]:
    """Send one message over TLS; a handshake refused (at once or, with TLS 1.3, after it) gives []."""
    try:
        return await exchange(port, hl7("C1"), ssl_context=context)
    except (ssl.SSLError, ConnectionError):
        return []


async def test_tls_config_errors_name_the_field(start: Start, tmp_path: Path) -> None:
    """A missing certificate file is a config error naming tls.cert_file, not a crash."""
    with pytest.raises(ConfigError, match=r"tls.cert_file / key_file: file not found"):
        await start(tls={"enabled": True, "cert_file": str(tmp_path / "none.pem")})


async def test_phi_canary_stays_out_of_logs_headers_and_naks(
    start: Start, kafka: FakeKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """A canary patient value appears in no log line, header, key or ACK, on success and failure paths."""
    caplog.set_level(logging.DEBUG)
    kafka.fail_sends = 1
    listener = await start(max_message_bytes=4096)
    good = hl7("C1", CANARY, family=CANARY)
    broken = hl7("C2", CANARY, family=CANARY) + f"{CANARY}|x\r".encode()
    oversized = hl7("C3", CANARY, family=CANARY, extra_segments=f"NTE|1||{CANARY * 500}\r")
    acks = await exchange(listener.port, good)
    acks += await exchange(listener.port, good, broken, oversized)
    exposed = [json.dumps(r.getMessage()) for r in caplog.records]
    exposed += [v.decode() for r in kafka.records for _, v in r.headers]
    exposed += [(r.key or b"").decode() for r in kafka.records]
    exposed += [a.decode("latin-1") for a in acks]
    assert [msa(a)[0] for a in acks] == ["AE", "AA", "AR", "AR"]
    assert [text for text in exposed if CANARY in text or CANARY.lower() in text] == []


async def test_payload_hash_is_not_logged(
    start: Start, kafka: FakeKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """Log lines carry identifiers only: no digest of the payload either."""
    caplog.set_level(logging.DEBUG)
    listener = await start()
    payload = hl7("C1")
    await exchange(listener.port, payload)
    digest = hashlib.sha256(payload).hexdigest()
    assert [r for r in caplog.records if digest in r.getMessage()] == []


async def test_charset_from_msh18_is_recorded(start: Start, kafka: FakeKafka) -> None:
    """MSH-18 8859/1 decides the codec, recorded in the charset header; the bytes stay Latin-1."""
    listener = await start()
    payload = "MSH|^~\\&|S|F|R|RF|20240101||ADT^A01|L1|P|2.5|||||DE|8859/1\rPID|1||1^^^H^MR||MÜLLER\r".encode(
        "latin-1"
    )
    [ack] = await exchange(listener.port, payload)
    record = kafka.on(TOPIC)[0]
    assert (msa(ack), record.header("pyheart-charset"), record.value) == (("AA", "L1"), "latin-1", payload)


async def test_fallback_charset_is_configurable(start: Start, kafka: FakeKafka) -> None:
    """Without MSH-18, bytes that are not UTF-8 are read with fallback_charset (here cp1252)."""
    listener = await start(fallback_charset="cp1252")
    payload = "MSH|^~\\&|S|F|R|RF|20240101||ADT^A01|W1|P|2.5\rPID|1||1^^^H^MR||D\u2019ARCY\r".encode("cp1252")
    await exchange(listener.port, payload)
    assert kafka.on(TOPIC)[0].header("pyheart-charset") == "cp1252"


async def test_utf8_without_msh18_is_detected(start: Start, kafka: FakeKafka) -> None:
    """Without MSH-18, valid UTF-8 is read as UTF-8."""
    listener = await start()
    await exchange(listener.port, "MSH|^~\\&|S|F|R|RF|20240101||ADT^A01|U1|P|2.5\rPID|1||1||ŁÓDŹ\r".encode())
    assert kafka.on(TOPIC)[0].header("pyheart-charset") == "utf-8"


def test_unknown_fallback_charset_is_refused() -> None:
    """A fallback_charset Python does not know is a configuration error."""
    with pytest.raises(ConfigError, match="rejected by the plugin's validate_config"):
        PluginManager().load_plugins_from_config(
            {
                "plugins": [
                    {"id": "in", "class": "mllp-listener", "config": {"topic": "t", "fallback_charset": "x"}}
                ]
            }
        )


def test_key_matches_the_engine_patient_key() -> None:
    """Without a secret the listener's key is the engine's HL7 patient key (same partition downstream)."""
    from pyheart.broker.engine.envelope import hl7_patient_key

    payload = hl7("C1", "MRN42")
    assert record_key(parse_message(payload)) == hl7_patient_key(payload)


async def test_parser_crash_is_rejected_and_kept(
    start: Start, kafka: FakeKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error in the intake gate answers AR and keeps the bytes on the reject topic."""
    import pyheart.adapters.mllp.listener as listener_module

    def broken_gate(payload: bytes, fallback_charset: str) -> Any:
        raise IndexError(CANARY)

    monkeypatch.setattr(listener_module, "check_structure", broken_gate)
    listener = await start()
    [ack] = await exchange(listener.port, hl7("C1"))
    [record] = kafka.on(f"{TOPIC}.rejected")
    assert (msa(ack), record.header(Header.ERROR_CODE), record.value) == (
        ("AR", "C1"),
        "intake-error",
        hl7("C1"),
    )


async def test_settle_crash_answers_ae_and_frees_the_control_id(
    start: Start, kafka: FakeKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error while settling answers AE; the resend is processed normally."""
    listener = await start()
    original = listener._settle
    calls = {"n": 0}

    async def flaky(item: Any, peer: str) -> bytes | None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("bug")
        return await original(item, peer)

    monkeypatch.setattr(listener, "_settle", flaky)
    [first] = await exchange(listener.port, hl7("C1"))
    [second] = await exchange(listener.port, hl7("C1"))
    assert (msa(first)[0], msa(second)[0]) == ("AE", "AA")
