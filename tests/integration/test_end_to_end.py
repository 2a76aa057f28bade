"""The main job end to end: MLLP in -> HL7v2->FHIR pipeline -> FHIR server, on the real broker.

`pyheart run -c examples/pipeline.yaml` runs as a separate process (the shipped example, addresses
from the environment); python-hl7's `mllp_send` is the sender and HAPI FHIR the server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pyheart.broker.devkafka.settings import free_port

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pipeline.yaml"
MESSAGES = ROOT / "examples" / "messages"
BIN = Path(sys.executable).parent


@pytest.fixture
def engine(kafka_bootstrap: str, fhir_server: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The example configuration running in its own process, sending Bundles to the FHIR server."""
    ports = {"mllp": free_port(), "downstream": free_port(), "metrics": free_port()}
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        MLLP_PORT=str(ports["mllp"]),
        DOWNSTREAM_MLLP_PORT=str(ports["downstream"]),
        PYHEART_METRICS_PORT=str(ports["metrics"]),
        FHIR_SENDER_ENABLED="true",
        FHIR_BASE_URL=fhir_server,
    )
    log = (tmp_path / "engine.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "pyheart"), "run", "-c", str(EXAMPLE)], env=env, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, (tmp_path / "engine.log").read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{ports['metrics']}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, (
            "engine not ready: " + (tmp_path / "engine.log").read_text()[-3000:]
        )
        time.sleep(0.3)
    yield {"ports": ports, "proc": proc, "log": tmp_path / "engine.log", "tmp": tmp_path}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    log.close()


def send(port: int, path: Path) -> str:
    """Send one file with python-hl7's mllp_send; return the MSA segment of the ACK."""
    mllp_send = shutil.which("mllp_send", path=str(BIN)) or "mllp_send"
    out = subprocess.run(
        [mllp_send, "--loose", "--file", str(path), "--port", str(port), "127.0.0.1"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    return next(seg for seg in out.replace("\r", "\n").splitlines() if seg.startswith("MSA"))


def personalised(name: str, mrn: str, tmp: Path, control: str) -> Path:
    """An example message about patient ``mrn`` with control id ``control``."""
    text = (MESSAGES / name).read_text().replace("900001", mrn)
    for old in ("DEMO-ADT-0001", "DEMO-ORU-0001"):
        text = text.replace(old, control)
    path = tmp / f"{control}.hl7"
    path.write_text(text)
    return path


def search(base: str, query: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/{query}", headers={"Accept": "application/fhir+json"}, timeout=30)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def wait_for(base: str, query: str, count: int, wait_s: float = 90.0) -> dict[str, Any]:
    """Poll a search until it has ``count`` matches (or time out)."""
    deadline = time.monotonic() + wait_s
    while True:
        bundle = search(base, query + "&_total=accurate")
        if bundle.get("total", 0) >= count or time.monotonic() > deadline:
            return bundle
        time.sleep(1)


def test_mllp_to_fhir_server_without_duplicate_patients(engine: dict[str, Any], fhir_server: str) -> None:
    """An ADT and an ORU about one patient end up as one Patient, its Encounter and its Observations."""
    mrn = f"E2E{uuid.uuid4().hex[:10].upper()}"
    port = engine["ports"]["mllp"]
    assert send(port, personalised("adt_a01.hl7", mrn, engine["tmp"], f"C-{mrn}-1")) == f"MSA|AA|C-{mrn}-1"
    assert send(port, personalised("oru_r01.hl7", mrn, engine["tmp"], f"C-{mrn}-2")) == f"MSA|AA|C-{mrn}-2"

    patients = wait_for(fhir_server, f"Patient?identifier={mrn}", 1)
    assert patients.get("total") == 1, engine["log"].read_text()[-3000:]
    patient_id = patients["entry"][0]["resource"]["id"]
    assert patients["entry"][0]["resource"]["name"][0]["family"] == "TESTPATIENT"
    observations = wait_for(fhir_server, f"Observation?subject=Patient/{patient_id}", 3)
    assert observations["total"] == 3
    codes = {o["resource"]["code"]["coding"][0]["code"] for o in observations["entry"]}
    assert codes == {"2093-3", "2571-8", "2085-9"}
    encounters = search(fhir_server, f"Encounter?subject=Patient/{patient_id}&_total=accurate")
    assert encounters["total"] >= 1

    # The same patient again (a new message): still exactly one Patient.
    assert send(port, personalised("adt_a01.hl7", mrn, engine["tmp"], f"C-{mrn}-3")) == f"MSA|AA|C-{mrn}-3"
    time.sleep(3)
    assert wait_for(fhir_server, f"Patient?identifier={mrn}", 2, wait_s=5)["total"] == 1


def test_engine_stops_cleanly_on_sigterm(engine: dict[str, Any]) -> None:
    """SIGTERM stops the listener, drains the pipelines and exits 0."""
    proc: subprocess.Popen[bytes] = engine["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, engine["log"].read_text()[-3000:]
