"""The local HAPI FHIR server launcher: build cache keys, project lookup, state files, start-up errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pyheart.broker import devfhir
from pyheart.broker.devfhir import DevFhirError, LocalFhirServer, ServerState


def _project(root: Path, source: str = "class A {}") -> Path:
    (root / "src/main/java").mkdir(parents=True)
    (root / "pom.xml").write_text("<project/>", encoding="utf-8")
    (root / "src/main/java/A.java").write_text(source, encoding="utf-8")
    return root


def test_fingerprint_changes_when_a_source_changes(tmp_path: Path) -> None:
    """Editing the Java source gives the build a new cache folder."""
    project = _project(tmp_path / "p")
    before = devfhir.fingerprint(project)
    (project / "src/main/java/A.java").write_text("class A { int x; }", encoding="utf-8")
    assert devfhir.fingerprint(project) != before


def test_fingerprint_is_stable(tmp_path: Path) -> None:
    """The same sources give the same cache folder."""
    assert devfhir.fingerprint(_project(tmp_path / "a")) == devfhir.fingerprint(_project(tmp_path / "b"))


def test_server_home_lives_in_the_cache_dir(tmp_path: Path) -> None:
    """The build folder is under $PYHEART_CACHE_DIR and names the HAPI version."""
    project = _project(tmp_path / "p")
    env = {"PYHEART_CACHE_DIR": str(tmp_path / "cache")}
    home = devfhir.server_home(project, env)
    assert (home.parent, home.name.startswith(f"hapi-fhir-{devfhir.HAPI_VERSION}-")) == (
        tmp_path / "cache",
        True,
    )


def test_source_checkout_project_is_found() -> None:
    """From a source checkout the project is testinfra/fhir-server."""
    assert devfhir.project_dir({}).parts[-2:] == ("testinfra", "fhir-server")


def test_project_override_without_pom_is_an_error(tmp_path: Path) -> None:
    """$PYHEART_FHIR_SERVER_PROJECT must point at a Maven project."""
    with pytest.raises(DevFhirError, match=r"PYHEART_FHIR_SERVER_PROJECT=.* holds no pom\.xml$"):
        devfhir.project_dir({"PYHEART_FHIR_SERVER_PROJECT": str(tmp_path)})


def test_incomplete_build_is_not_used(tmp_path: Path) -> None:
    """A build folder without its completion marker (an interrupted build) is rebuilt."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "pyheart-fhir-server.jar").write_bytes(b"")
    assert devfhir.build_present(tmp_path) is False


def test_missing_maven_is_reported(tmp_path: Path) -> None:
    """Without Maven on PATH the build error says so."""
    with pytest.raises(DevFhirError, match=r"'no-such-mvn' \(Apache Maven\) is not on PATH$"):
        devfhir.build(_project(tmp_path / "p"), tmp_path / "home", mvn="no-such-mvn")


def test_state_round_trips(tmp_path: Path) -> None:
    """The background server's state file reads back what was written."""
    state = ServerState(123, "http://127.0.0.1:1/fhir", str(tmp_path), 1.5, "", "")
    state.write(tmp_path / "state.json")
    assert ServerState.read(tmp_path / "state.json") == state


def test_state_of_a_dead_process_is_not_alive(tmp_path: Path) -> None:
    """A recorded pid that is not our server JVM counts as not running."""
    assert ServerState(2**22 + 7, "http://x/fhir", str(tmp_path), 0.0).alive() is False


def test_metadata_check_of_a_closed_port_is_false() -> None:
    """Readiness is False while nothing listens."""
    assert devfhir.metadata_ok("http://127.0.0.1:9/fhir", timeout=1) is False


def test_server_that_exits_during_start_reports_its_log_tail(tmp_path: Path) -> None:
    """A JVM that dies during start-up raises with its exit code and the tail of its log."""
    if shutil.which("java") is None:
        pytest.fail("java is required (the FHIR server runs on it)")
    home = tmp_path / "home"
    (home / "lib").mkdir(parents=True)
    server = LocalFhirServer(home=home, ready_timeout=60, class_data_sharing=False)
    with pytest.raises(DevFhirError) as info:
        server.start()
    text = str(info.value)
    assert text.startswith("the FHIR server exited with code 1 during start-up; server.log tail:\n")
    assert "org.pyheart.fhirserver.FhirTestServer" in text
