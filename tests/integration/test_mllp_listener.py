"""The MLLP listener against the real Kafka broker and third-party peers.

Senders: python-hl7's ``mllp_send`` CLI (PyPI ``hl7``) and OpenSSL's ``s_client`` (TLS / mTLS).
Reader: ``kcat`` (Debian ``kcat``) as an independent Kafka consumer, plus aiokafka.
Messages: the Microsoft FHIR-Converter sample corpus (/work/shared/corpus, 123 messages).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from corpus_paths import corpus_root
from mllp_support import Pki, hl7, make_pki, msa

from pyheart.adapters.mllp.framing import Frame, MllpDecoder, encode_frame
from pyheart.adapters.mllp.listener import MllpListener, record_key
from pyheart.broker.contracts import Format, Header
from pyheart.broker.hl7v2 import parse_message

pytestmark = pytest.mark.kafka

CORPUS = corpus_root() / "ms-fhir-converter" / "hl7v2"
MLLP_SEND = Path(sys.executable).with_name("mllp_send")
CANARY = "QZXLISTENCANARY5"
_TIMEOUT_S = 60.0

CreateTopics = Callable[..., Awaitable[None]]


def corpus_files() -> list[Path]:
    files = sorted(CORPUS.glob("*.hl7"))
    assert files, f"corpus not found at {CORPUS}"
    return files


def without_bom(data: bytes) -> bytes:
    """The corpus gotcha: mllp_send --loose turns a UTF-8 BOM into a bogus first message."""
    return data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data


async def mllp_send(port: int, file: Path) -> list[bytes]:
    """Run python-hl7's mllp_send --loose on ``file``; return the ACK frames it printed."""
    assert MLLP_SEND.exists(), f"mllp_send not installed at {MLLP_SEND} (pip install hl7)"
    proc = await asyncio.create_subprocess_exec(
        str(MLLP_SEND),
        "--loose",
        "-f",
        str(file),
        "-p",
        str(port),
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=_TIMEOUT_S)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return [e.payload for e in MllpDecoder().feed(out) if isinstance(e, Frame)]


async def consume(bootstrap: str, topic: str, count: int) -> list[Any]:
    """The first ``count`` records of ``topic`` (aiokafka, fresh group, from the beginning)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"check-{os.urandom(4).hex()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        return [await asyncio.wait_for(consumer.getone(), _TIMEOUT_S) for _ in range(count)]
    finally:
        await consumer.stop()


async def kcat(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` read by kcat (Debian package ``kcat``) as JSON envelopes."""
    binary = shutil.which("kcat")
    assert binary, "kcat is not installed (apt-get install -y kcat)"
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-b",
        bootstrap,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-J",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=_TIMEOUT_S)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def kcat_headers(envelope: dict[str, Any]) -> dict[str, str]:
    """kcat -J writes headers as a flat [name, value, name, value, ...] list."""
    flat = envelope.get("headers") or []
    return dict(zip(flat[::2], flat[1::2], strict=True))


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def listening(bootstrap: str, topic: str, **config: Any) -> AsyncIterator[MllpListener]:
    """A listener on an ephemeral port, producing to ``topic`` on the real broker."""
    listener = MllpListener({"port": 0, "bootstrap_servers": bootstrap, "topic": topic, **config})
    await listener.initialize()
    try:
        yield listener
    finally:
        await listener.cleanup()


def write_batch(path: Path, files: list[Path]) -> Path:
    """The files' messages, BOMs removed, one after another (what mllp_send --loose reads)."""
    path.write_bytes(b"\n".join(without_bom(f.read_bytes()).rstrip(b"\r\n") for f in files) + b"\n")
    return path


async def test_mllp_send_corpus_gets_aa_for_every_message(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics, tmp_path: Path
) -> None:
    """python-hl7's mllp_send sends all 123 corpus messages on one connection; each gets AA.

    ack_mode original: eight corpus messages say MSH-15 NE (no accept ACK), which mllp_send,
    like many simple senders, does not honour - it waits for an answer to every message.
    """
    topic = unique_name("mllp-corpus")
    await create_topics(topic, partitions=3)
    files = corpus_files()
    batch = write_batch(tmp_path / "corpus.hl7", files)
    async with listening(kafka_bootstrap, topic, duplicate_window_s=0, ack_mode="original") as listener:
        acks = await mllp_send(listener.port, batch)
    expected = [parse_message(without_bom(f.read_bytes())).control_id for f in files]
    assert [msa(a) for a in acks] == [("AA", c) for c in expected]


async def test_auto_ack_mode_answers_enhanced_messages_with_ca(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics, tmp_path: Path
) -> None:
    """ack_mode auto: corpus messages with MSH-15/16 get CA, the others AA (MSH-15 NE ones left out)."""
    topic = unique_name("mllp-auto")
    await create_topics(topic)
    messages = [(f, parse_message(without_bom(f.read_bytes()))) for f in corpus_files()]
    chosen = [(f, m) for f, m in messages if m.msh.get(15) != "NE"]
    batch = write_batch(tmp_path / "auto.hl7", [f for f, _ in chosen])
    async with listening(kafka_bootstrap, topic, duplicate_window_s=0) as listener:
        acks = await mllp_send(listener.port, batch)
    expected = ["CA" if m.msh.get(15) or m.msh.get(16) else "AA" for _, m in chosen]
    assert [msa(a)[0] for a in acks] == expected


async def test_corpus_records_have_headers_keys_and_payloads(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics, tmp_path: Path
) -> None:
    """Every stored record has the envelope headers, the patient-hash key and the message bytes."""
    topic = unique_name("mllp-records")
    await create_topics(topic, partitions=3)
    files = corpus_files()[:20]
    batch = write_batch(tmp_path / "corpus.hl7", files)
    async with listening(kafka_bootstrap, topic, duplicate_window_s=0, ack_mode="original") as listener:
        await mllp_send(listener.port, batch)
    records = await consume(kafka_bootstrap, topic, len(files))
    by_control: dict[str, list[Any]] = {}
    for record in records:
        by_control.setdefault(dict(record.headers)[Header.CONTROL_ID].decode(), []).append(record)
    for file in files:
        message = parse_message(without_bom(file.read_bytes()))
        record = by_control[message.control_id].pop(0)
        headers = {k: v.decode() for k, v in record.headers}
        # mllp_send --loose sends CR-terminated segments: compare with that form.
        sent = without_bom(file.read_bytes()).replace(b"\r\n", b"\r").replace(b"\n", b"\r").rstrip(b"\r")
        assert (record.value, record.key) == (sent, record_key(message))
        assert (headers[Header.CONTENT_TYPE], headers[Header.MESSAGE_TYPE], headers[Header.TRIGGER]) == (
            Format.HL7V2,
            message.message_type,
            message.trigger_event,
        )


async def test_kcat_reads_what_the_listener_stored(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics, tmp_path: Path
) -> None:
    """kcat, a third-party consumer, sees the records with their keys and ASCII headers."""
    topic = unique_name("mllp-kcat")
    await create_topics(topic)
    file = tmp_path / "two.hl7"
    file.write_bytes(hl7("K1", "MRN1") + b"\n" + hl7("K2", "MRN1", trigger="A08") + b"\n")
    async with listening(kafka_bootstrap, topic) as listener:
        await mllp_send(listener.port, file)
    envelopes = await kcat(kafka_bootstrap, topic)
    headers = [kcat_headers(e) for e in envelopes]
    assert [h[Header.CONTROL_ID] for h in headers] == ["K1", "K2"]
    assert [h[Header.CONTENT_TYPE] for h in headers] == [Format.HL7V2] * 2
    assert envelopes[0]["key"] == envelopes[1]["key"] == record_key(parse_message(hl7("K1", "MRN1"))).decode()


async def test_bom_file_gives_ar_for_the_bogus_message_and_aa_for_the_real_one(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics
) -> None:
    """mllp_send --loose on a BOM file sends 'MSH|^~\\&|<BOM>' first: that gets AR, the message AA."""
    topic = unique_name("mllp-bom")
    await create_topics(topic, f"{topic}.rejected")
    bom_file = next(f for f in corpus_files() if f.read_bytes().startswith(codecs.BOM_UTF8))
    async with listening(kafka_bootstrap, topic) as listener:
        acks = await mllp_send(listener.port, bom_file)
    assert [msa(a)[0] for a in acks] == ["AR", "AA"]


async def test_rejected_message_is_kept_on_the_reject_topic(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics, tmp_path: Path
) -> None:
    """The AR'd message is stored on <topic>.rejected with the intake error headers."""
    topic = unique_name("mllp-reject")
    await create_topics(topic, f"{topic}.rejected")
    file = tmp_path / "bad.hl7"
    file.write_bytes(hl7("R1") + b"this is no segment\n")
    async with listening(kafka_bootstrap, topic) as listener:
        [ack] = await mllp_send(listener.port, file)
    [record] = await consume(kafka_bootstrap, f"{topic}.rejected", 1)
    headers = {k: v.decode() for k, v in record.headers}
    assert (msa(ack), headers[Header.ERROR_STAGE], headers[Header.ERROR_CODE]) == (
        ("AR", "R1"),
        "intake",
        "parse-error",
    )


async def test_kafka_down_never_gives_aa(unique_name: Callable[[str], str], tmp_path: Path) -> None:
    """With the producer pointed at a closed port, mllp_send gets AE for every message."""
    file = tmp_path / "two.hl7"
    file.write_bytes(hl7("D1") + b"\n" + hl7("D2") + b"\n")
    bootstrap = f"127.0.0.1:{free_port()}"
    async with listening(bootstrap, unique_name("down"), produce_timeout_s=1) as listener:
        acks = await mllp_send(listener.port, file)
    assert [msa(a) for a in acks] == [("AE", "D1"), ("AE", "D2")]


async def test_hold_mode_acks_once_kafka_becomes_reachable(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics
) -> None:
    """hold: a message sent while Kafka is unreachable gets AA once the broker can be reached."""
    topic = unique_name("mllp-hold")
    await create_topics(topic)
    proxy_port = free_port()
    async with listening(
        f"127.0.0.1:{proxy_port}", topic, on_kafka_unavailable="hold", hold_timeout_s=60, produce_timeout_s=1
    ) as listener:
        assert listener.kafka_ready is False
        sending = asyncio.create_task(exchange_one(listener.port, hl7("H1")))
        await asyncio.sleep(0.5)  # the message now waits on a listener without Kafka
        host, port = kafka_bootstrap.split(",")[0].rsplit(":", 1)
        proxy = await start_proxy(proxy_port, host, int(port))
        try:
            ack = await asyncio.wait_for(sending, timeout=_TIMEOUT_S)
        finally:
            proxy.close()
            await proxy.wait_closed()
    [record] = await consume(kafka_bootstrap, topic, 1)
    assert (msa(ack), dict(record.headers)[Header.CONTROL_ID]) == (("AA", "H1"), b"H1")


async def exchange_one(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode_frame(payload))
    await writer.drain()
    decoder = MllpDecoder()
    try:
        while True:
            data = await reader.read(65_536)
            assert data, "connection closed before the ACK"
            for event in decoder.feed(data):
                if isinstance(event, Frame):
                    return event.payload
    finally:
        writer.close()


async def start_proxy(listen_port: int, host: str, port: int) -> asyncio.Server:
    """A TCP relay to the broker: the bootstrap address becomes reachable when this starts."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65_536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(relay, "127.0.0.1", listen_port)


async def test_duplicates_get_the_same_ack_and_are_stored_once(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics, tmp_path: Path
) -> None:
    """A message resent by mllp_send gets byte-identical ACKs and one record in Kafka."""
    topic = unique_name("mllp-dup")
    await create_topics(topic)
    file = tmp_path / "dup.hl7"
    file.write_bytes(hl7("DUP1") + b"\n" + hl7("DUP1") + b"\n" + hl7("OTHER") + b"\n")
    async with listening(kafka_bootstrap, topic) as listener:
        first = await mllp_send(listener.port, file)
        again = await mllp_send(listener.port, file)
    envelopes = await kcat(kafka_bootstrap, topic)
    assert (first[0] == first[1] == again[0] == again[1], first[2] == again[2]) == (True, True)
    assert sorted(kcat_headers(e)[Header.CONTROL_ID] for e in envelopes) == ["DUP1", "OTHER"]


async def test_oversized_message_gets_ar_and_the_next_one_aa(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics, tmp_path: Path
) -> None:
    """Over max_message_bytes: AR with ERR; the connection continues and only the next one is stored."""
    topic = unique_name("mllp-big")
    await create_topics(topic)
    file = tmp_path / "big.hl7"
    big = hl7("BIG", extra_segments="OBX|1|ED|PDF||" + "QUJD" * 20_000 + "\r")
    file.write_bytes(big + b"\n" + hl7("SMALL") + b"\n")
    async with listening(kafka_bootstrap, topic, max_message_bytes=16_384) as listener:
        acks = await mllp_send(listener.port, file)
    envelopes = await kcat(kafka_bootstrap, topic)
    assert [msa(a) for a in acks] == [("AR", "BIG"), ("AA", "SMALL")]
    assert [kcat_headers(e)[Header.CONTROL_ID] for e in envelopes] == ["SMALL"]


async def s_client(port: int, payload: bytes, pki: Pki, *, with_cert: bool) -> bytes:
    """OpenSSL's s_client as a third-party TLS peer: sends one frame, returns what came back."""
    binary = shutil.which("openssl")
    assert binary, "openssl CLI is not installed"
    args = [binary, "s_client", "-quiet", "-connect", f"127.0.0.1:{port}", "-CAfile", str(pki.ca)]
    args += ["-verify_return_error", "-servername", "localhost"]
    if with_cert:
        args += ["-cert", str(pki.client_cert), "-key", str(pki.client_key)]
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(encode_frame(payload)), timeout=_TIMEOUT_S)
    return out


def tls_config(pki: Pki, *, mutual: bool) -> dict[str, Any]:
    config: dict[str, Any] = {
        "enabled": True,
        "cert_file": str(pki.server_cert),
        "key_file": str(pki.server_key),
    }
    if mutual:
        config.update(ca_file=str(pki.ca), require_client_cert=True)
    return config


async def test_tls_with_openssl_client(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics, tmp_path: Path
) -> None:
    """Over TLS, OpenSSL's s_client gets AA and the message is in Kafka."""
    topic = unique_name("mllp-tls")
    await create_topics(topic)
    pki = make_pki(tmp_path)
    async with listening(
        kafka_bootstrap, topic, tls=tls_config(pki, mutual=False), idle_timeout_s=2
    ) as listener:
        out = await s_client(listener.port, hl7("T1"), pki, with_cert=False)
    [ack] = [e.payload for e in MllpDecoder().feed(out) if isinstance(e, Frame)]
    [record] = await consume(kafka_bootstrap, topic, 1)
    assert (msa(ack), dict(record.headers)[Header.CONTROL_ID]) == (("AA", "T1"), b"T1")


async def test_mtls_accepts_a_client_certificate_from_the_ca(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics, tmp_path: Path
) -> None:
    """With mutual TLS, s_client presenting a certificate from the configured CA gets AA."""
    topic = unique_name("mllp-mtls")
    await create_topics(topic)
    pki = make_pki(tmp_path)
    async with listening(
        kafka_bootstrap, topic, tls=tls_config(pki, mutual=True), idle_timeout_s=2
    ) as listener:
        out = await s_client(listener.port, hl7("M1"), pki, with_cert=True)
    [ack] = [e.payload for e in MllpDecoder().feed(out) if isinstance(e, Frame)]
    assert msa(ack) == ("AA", "M1")


async def test_mtls_refuses_a_client_without_certificate(
    kafka_bootstrap: str, unique_name: Callable[[str], str], create_topics: CreateTopics, tmp_path: Path
) -> None:
    """With mutual TLS, s_client without a certificate gets no ACK and nothing is stored."""
    topic = unique_name("mllp-mtls-no")
    await create_topics(topic)
    pki = make_pki(tmp_path)
    async with listening(
        kafka_bootstrap, topic, tls=tls_config(pki, mutual=True), idle_timeout_s=2
    ) as listener:
        out = await s_client(listener.port, hl7("M2"), pki, with_cert=False)
    assert (b"\x0b" in out, await kcat(kafka_bootstrap, topic)) == (False, [])


async def test_phi_canary_stays_out_of_logs_headers_and_acks(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    create_topics: CreateTopics,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A canary name and identifier reach Kafka only inside the payload: not logs, headers, keys, ACKs."""
    caplog.set_level(logging.DEBUG)
    topic = unique_name("mllp-canary")
    await create_topics(topic, f"{topic}.rejected")
    file = tmp_path / "canary.hl7"
    good = hl7("CAN1", CANARY, family=CANARY)
    broken = hl7("CAN2", CANARY, family=CANARY) + f"{CANARY}|bad\r".encode()
    file.write_bytes(good + b"\n" + broken + b"\n")
    async with listening(kafka_bootstrap, topic) as listener:
        acks = await mllp_send(listener.port, file)
    envelopes = await kcat(kafka_bootstrap, topic) + await kcat(kafka_bootstrap, f"{topic}.rejected")
    exposed = [r.getMessage() for r in caplog.records] + [a.decode("latin-1") for a in acks]
    exposed += [json.dumps(kcat_headers(e)) + str(e.get("key")) for e in envelopes]
    assert ([msa(a)[0] for a in acks], len(envelopes)) == (["AA", "AR"], 2)
    assert [t for t in exposed if CANARY in t] == []
    assert all(CANARY in e["payload"] for e in envelopes)
