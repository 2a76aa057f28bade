"""DICOM C-STORE SCP against dcmtk's storescu and the real Kafka broker."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pydicom import dcmread
from pydicom.data import get_testdata_file

from pyheart.adapters.dicom import DicomStoreScp
from pyheart.broker import PluginRegistry
from pyheart.broker.contracts import Format, Header

pytestmark = pytest.mark.kafka

STORESCU = shutil.which("storescu")


def _testfile(name: str) -> str:
    path = get_testdata_file(name)
    assert path is not None, name
    return str(path)


@pytest.fixture
async def scp(
    kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[DicomStoreScp]:
    """A running SCP on an ephemeral port with a fresh topic; extra config via indirect parametrisation."""
    extra: dict[str, Any] = getattr(request, "param", {})
    config = {
        "bootstrap_servers": kafka_bootstrap,
        "topic": f"dicom-{uuid.uuid4().hex[:10]}",
        "port": 0,
        **extra,
    }
    if extra.get("pixel_data_dir") == "TMP":
        config["pixel_data_dir"] = str(tmp_path / "claims")
    plugin = DicomStoreScp(config=config)
    registry = PluginRegistry()
    registry.register_plugin("scp", plugin)
    assert await registry.initialize_all() == {"scp": True}
    yield plugin
    await registry.cleanup_all()


def storescu(port: int, *files: str, calling: str = "STORESCU") -> subprocess.CompletedProcess[str]:
    """Send files with dcmtk's storescu (a real third-party SCU)."""
    assert STORESCU is not None, "dcmtk's storescu is not installed (scripts/_setup.sh installs it)"
    return subprocess.run(
        [STORESCU, "-aet", calling, "-aec", "PYHEART", "127.0.0.1", str(port), *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def read_topic(bootstrap: str, topic: str, expected: int, wait_s: float = 20.0) -> list[Any]:
    """Every record of ``topic`` (waiting until ``expected`` arrived or the timeout passed)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + wait_s
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def test_storescu_instances_land_on_topic_keyed_by_study(
    kafka_bootstrap: str, scp: DicomStoreScp
) -> None:
    """Instances sent by storescu are published as DICOM JSON keyed by StudyInstanceUID, without pixel data."""
    files = [_testfile("CT_small.dcm"), _testfile("MR_small.dcm")]
    assert scp.port is not None
    result = await asyncio.to_thread(storescu, scp.port, *files)
    assert result.returncode == 0, result.stderr[-2000:]
    records = await read_topic(kafka_bootstrap, scp.config["topic"], 2)
    assert len(records) == 2
    by_instance = {json.loads(r.value)["00080018"]["Value"][0]: r for r in records}
    for path in files:
        ds = dcmread(path, stop_before_pixels=True)
        record = by_instance[str(ds.SOPInstanceUID)]
        body = json.loads(record.value)
        assert record.key == str(ds.StudyInstanceUID).encode()
        assert "7FE00010" not in body
        assert body["00100020"]["Value"] == [str(ds.PatientID)]
        headers = {k: v.decode() for k, v in record.headers}
        assert headers[Header.CONTENT_TYPE] == Format.DICOM_JSON
        assert headers[Header.SOURCE] == "dicom:STORESCU"
        assert headers[Header.MESSAGE_TYPE] == "DICOM"
        assert headers[Header.TRIGGER] in ("CTImageStorage", "MRImageStorage")


@pytest.mark.parametrize("scp", [{"pixel_data_dir": "TMP"}], indirect=True)
async def test_pixel_data_goes_to_claim_check_not_kafka(kafka_bootstrap: str, scp: DicomStoreScp) -> None:
    """With a claim-check directory the instance is stored on disk and referenced by BulkDataURI."""
    path = _testfile("CT_small.dcm")
    assert scp.port is not None
    result = await asyncio.to_thread(storescu, scp.port, path)
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = await read_topic(kafka_bootstrap, scp.config["topic"], 1)
    body = json.loads(record.value)
    uri = body["7FE00010"]["BulkDataURI"]
    assert uri.startswith("file://")
    stored = dcmread(uri.removeprefix("file://"))
    assert stored.SOPInstanceUID == dcmread(path, stop_before_pixels=True).SOPInstanceUID
    assert len(stored.PixelData) > 1000
    assert len(record.value) < 20_000


@pytest.mark.parametrize("scp", [{"allowed_calling_aets": ["MODALITY1"]}], indirect=True)
async def test_calling_ae_not_allowed_is_rejected(kafka_bootstrap: str, scp: DicomStoreScp) -> None:
    """An association from a calling AE outside the allow-list is rejected and nothing is published."""
    assert scp.port is not None
    result = await asyncio.to_thread(storescu, scp.port, _testfile("CT_small.dcm"), calling="INTRUDER")
    assert result.returncode != 0
    assert "Association Rejected" in result.stderr + result.stdout
    assert await read_topic(kafka_bootstrap, scp.config["topic"], 1, wait_s=3) == []


async def test_kafka_unreachable_scp_does_not_listen() -> None:
    """With Kafka unreachable the SCP fails to initialise, so no instance is ever accepted."""
    plugin = DicomStoreScp(
        config={"bootstrap_servers": "127.0.0.1:9", "topic": "never", "port": 0, "kafka_timeout_s": 2}
    )
    registry = PluginRegistry()
    registry.register_plugin("scp", plugin)
    # aiokafka cannot bootstrap against a closed port, so initialize fails: the SCP never listens.
    assert await registry.initialize_all() == {"scp": False}
    await registry.cleanup_all()


async def test_no_phi_in_logs_or_headers(
    kafka_bootstrap: str, scp: DicomStoreScp, caplog: pytest.LogCaptureFixture
) -> None:
    """The patient's name and id never appear in log lines or Kafka headers."""
    caplog.set_level(logging.DEBUG)
    path = _testfile("CT_small.dcm")
    ds = dcmread(path, stop_before_pixels=True)
    assert scp.port is not None
    result = await asyncio.to_thread(storescu, scp.port, path)
    assert result.returncode == 0
    (record,) = await read_topic(kafka_bootstrap, scp.config["topic"], 1)
    header_text = " ".join(v.decode() for _, v in record.headers)
    for canary in (str(ds.PatientName), str(ds.PatientID)):
        assert canary not in caplog.text
        assert canary not in header_text


@pytest.mark.parametrize("scp", [{"sop_classes": ["1.2.840.10008.5.1.4.1.1.2"]}], indirect=True)
async def test_only_configured_sop_classes_are_accepted(kafka_bootstrap: str, scp: DicomStoreScp) -> None:
    """With only CT Image Storage configured, a CT instance is stored and an MR instance is refused."""
    assert scp.port is not None
    ct = await asyncio.to_thread(storescu, scp.port, _testfile("CT_small.dcm"))
    assert ct.returncode == 0, ct.stderr[-2000:]
    mr = await asyncio.to_thread(storescu, scp.port, _testfile("MR_small.dcm"))
    assert mr.returncode != 0
    records = await read_topic(kafka_bootstrap, scp.config["topic"], 2, wait_s=5)
    assert [json.loads(r.value)["00080016"]["Value"][0] for r in records] == ["1.2.840.10008.5.1.4.1.1.2"]
