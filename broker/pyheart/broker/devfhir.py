"""A real FHIR R4 server for development, tests and CI, without Docker: HAPI FHIR's JPA server.

The server is a small Maven project in the source tree (``testinfra/fhir-server``: HAPI FHIR 8.8.0 JPA R4,
in-memory H2, embedded Jetty at ``/fhir``). It is built once with Maven from Maven Central into
``${PYHEART_CACHE_DIR:-~/.cache/pyheart}/hapi-fhir-8.8.0-<fingerprint>/`` (the fingerprint covers the
project's POM and Java sources, so an edit rebuilds) and started on loopback on a free port.

- :class:`LocalFhirServer` - ``with LocalFhirServer() as fhir: fhir.base_url`` (``http://127.0.0.1:PORT/fhir``).
- :func:`ensure_build` - build (or reuse) the server's jars.
- ``python -m pyheart.broker.devfhir fetch|start|status|stop`` (also ``pyheart fhir-server ...``).

Readiness is ``GET /fhir/metadata`` answering 200. Stopping sends SIGTERM, then SIGKILL after a timeout.
Errors include the tail of the server's log. Importing this module starts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pyheart.broker import devjvm
from pyheart.broker.devjvm import cache_root
from pyheart.broker.errors import PyHeartError
from pyheart.broker.logs import get_logger

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is Python 3.12+; mypy ships typing_extensions

#: HAPI FHIR release the server runs (every HAPI module at the same version, see the project's POM).
HAPI_VERSION = "8.8.0"
#: HAPI FHIR 8 needs Java 17 or newer.
MIN_JAVA = 17
#: The line the server prints once Jetty serves ``/fhir``.
READY_MARKER = "PYHEART-FHIR-SERVER READY"
#: The port ``start`` takes when it is free (``examples/pipeline.yaml`` defaults to ``127.0.0.1:8080/fhir``).
DEMO_PORT = 8080
#: The server's main class (``testinfra/fhir-server``).
MAIN_CLASS = "org.pyheart.fhirserver.FhirTestServer"
#: JVM flags: C1 only and the serial collector start faster on 2 cores; H2 in memory needs some heap.
JVM_FLAGS = (
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Xms256m",
    "-Xmx1g",
    "-Djava.awt.headless=true",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
)

_PROJECT_ENV = "PYHEART_FHIR_SERVER_PROJECT"
_PROJECT_REL = Path("testinfra") / "fhir-server"
_JAR = "pyheart-fhir-server.jar"
_CDS_ARCHIVE = "server.jsa"
_FETCH_TIMEOUT_S = 1200.0


class DevFhirError(PyHeartError):
    """The development FHIR server could not be built, started, reached or stopped."""

    code = "devfhir-failed"


#: HAPI FHIR as the shared launcher's messages name it.
HAPI_FHIR = devjvm.Product("HAPI FHIR", HAPI_VERSION, DevFhirError, MIN_JAVA)
_BUILD = devjvm.MavenJob(HAPI_FHIR, "build", f"the HAPI FHIR {HAPI_VERSION} server", _FETCH_TIMEOUT_S)


# ----------------------------------------------------------------------------------------- build
def project_dir(env: Mapping[str, str] | None = None) -> Path:
    """The Maven project of the server: ``$PYHEART_FHIR_SERVER_PROJECT``, else ``testinfra/fhir-server``
    of the source tree this module lives in."""
    env = os.environ if env is None else env
    configured = env.get(_PROJECT_ENV, "")
    if configured:
        path = Path(configured).expanduser()
        if not (path / "pom.xml").is_file():
            raise DevFhirError(f"{_PROJECT_ENV}={path} holds no pom.xml")
        return path
    for parent in Path(__file__).resolve().parents:
        candidate = parent / _PROJECT_REL
        if (candidate / "pom.xml").is_file():
            return candidate
    raise DevFhirError(
        f"the FHIR server project ({_PROJECT_REL}) was not found above {Path(__file__).parent}; "
        f"run from a PyHeart source checkout or set {_PROJECT_ENV}"
    )


def fingerprint(project: Path) -> str:
    """A short hash of the project's POM and sources: a different build gets a different cache folder."""
    digest = hashlib.sha256()
    files = [project / "pom.xml", *sorted((project / "src").rglob("*"))]
    for path in files:
        if path.is_file():
            digest.update(path.relative_to(project).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:12]


def server_home(project: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The cache folder of this build: ``<cache>/hapi-fhir-8.8.0-<fingerprint>``."""
    project = project_dir(env) if project is None else project
    return cache_root(env) / f"hapi-fhir-{HAPI_VERSION}-{fingerprint(project)}"


def build_present(home: Path) -> bool:
    """Whether ``home`` holds a completed build (the server jar and its libraries)."""
    return devjvm.is_complete(home) and (home / _JAR).is_file() and (home / "lib").is_dir()


def ensure_build(project: Path | None = None, *, mvn: str = "mvn") -> Path:
    """Return the build folder, building the server with Maven first if it is not cached."""
    project = project_dir() if project is None else project
    home = server_home(project)
    return devjvm.ensure_cached(
        home, build_present, cache_root() / "hapi-fhir.lock", lambda: build(project, home, mvn=mvn)
    )


def build(project: Path, home: Path, *, mvn: str = "mvn") -> None:
    """Compile the server and copy its runtime classpath from Maven Central into ``home`` (replacing it)."""

    def keep_jar(staging: Path) -> None:
        jars = sorted((staging / "target").glob("*.jar"))
        if not jars or not (staging / "lib").is_dir():
            raise DevFhirError("the Maven build produced no server jar or no lib folder")
        shutil.move(str(jars[0]), staging / _JAR)
        shutil.rmtree(staging / "target", ignore_errors=True)

    devjvm.install_with_maven(
        _BUILD,
        home,
        lambda staging: [
            "-f",
            str(project / "pom.xml"),
            f"-Dfhirserver.build.dir={staging / 'target'}",
            "-DskipTests",
            "package",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging / 'lib'}",
        ],
        keep_jar,
        mvn=mvn,
    )


def find_java(env: Mapping[str, str] | None = None) -> Path:
    """The ``java`` executable (``$JAVA_HOME/bin/java``, else ``PATH``), checked to be Java 17 or newer."""
    return devjvm.find_java(HAPI_FHIR, env)


# ----------------------------------------------------------------------------------------- server
def metadata_ok(base_url: str, timeout: float = 5.0) -> bool:
    """Whether ``GET <base_url>/metadata`` answers 200."""
    try:
        with urllib.request.urlopen(f"{base_url}/metadata", timeout=timeout) as response:  # noqa: S310 - http(s) loopback URL we built
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


#: How the server JVM differs from the other development JVMs.
SERVER = devjvm.JvmSpec(
    product=HAPI_FHIR,
    noun="the FHIR server",
    not_started="the local FHIR server is not started",
    log_name="server.log",
    work_prefix="pyheart-fhir-",
    events="devfhir",
    log=get_logger("pyheart.devfhir"),
    address_key="target",
    ready_marker=READY_MARKER,
    readiness="answer GET /fhir/metadata",
    bind_errors=("Address already in use", "Failed to bind"),
    bind_failure="the FHIR server could not bind its port",
    ready_timeout=240.0,
    stop_timeout=20.0,
    poll_interval=0.2,
    cds_env="PYHEART_FHIR_CDS",
    cds_slow_exit=True,
)


class LocalFhirServer(devjvm.LocalJvm):
    """A HAPI FHIR JPA R4 server in a child JVM: ``with LocalFhirServer() as fhir: fhir.base_url``.

    ``home`` is a built server (default: :func:`ensure_build`). The other options are
    :class:`~pyheart.broker.devjvm.LocalJvm`'s: ``port`` fixes the port (default: a free one); ``detach``
    starts the JVM in its own session so it outlives this process (``pyheart fhir-server start``);
    readiness waits up to 240 s, and stop() sends SIGKILL 20 s after SIGTERM.
    """

    spec = SERVER

    def __init__(
        self,
        *,
        home: Path | None = None,
        **options: Unpack[devjvm.JvmOptions],
    ) -> None:
        super().__init__(**options)
        self._home = home

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/fhir``; raises if the server is not running."""
        return self.address

    def _runtime(self) -> Path:
        return ensure_build() if self._home is None else self._home

    def _archive(self, runtime: Path) -> Path:
        return runtime / _CDS_ARCHIVE

    def _launch(self, java: Path, runtime: Path, attempt: int, deadline: float) -> None:
        assert self._work_dir is not None
        assert self._cds is not None
        port = self._pick_port()
        self._spawn(
            [
                str(java),
                *JVM_FLAGS,
                *(self._cds.use_flags() or self._cds.dump_flags(self._work_dir)),
                "-cp",
                f"{runtime / _JAR}:{runtime / 'lib'}/*",  # the JVM expands the wildcard; no shell involved
                MAIN_CLASS,
                "--host",
                self._host,
                "--port",
                str(port),
            ]
        )
        base_url = self._address = f"http://{self._host}:{port}/fhir"
        self._wait_ready(deadline, lambda: metadata_ok(base_url))


# ----------------------------------------------------------------------------------------- CLI state
@dataclass(frozen=True)
class ServerState(devjvm.JvmState):
    """What ``start`` records about the server it left running in the background."""

    spec: ClassVar[devjvm.JvmSpec] = SERVER
    address_field: ClassVar[str] = "base_url"

    pid: int
    base_url: str
    work_dir: str
    started_at: float
    cds_pending: str = ""
    cds_archive: str = ""

    def _identity(self) -> bytes:
        return MAIN_CLASS.encode()

    def _pending_archive(self) -> tuple[Path, Path] | None:
        if not (self.cds_pending and self.cds_archive):
            return None
        return Path(self.cds_pending), Path(self.cds_archive)


def state_path() -> Path:
    """Where ``start`` records the background server."""
    return cache_root() / "fhir-server.json"


def _fetch() -> Path:
    home = server_home()
    if not build_present(home):
        print(f"building the HAPI FHIR {HAPI_VERSION} server with Maven into {home} ...", file=sys.stderr)
    return ensure_build()


#: ``pyheart fhir-server fetch|start|status|stop``.
COMMANDS = devjvm.ServiceCommands(
    command="pyheart fhir-server",
    dest="fhir_command",
    demo_port=DEMO_PORT,
    state_path=state_path,
    state_type=ServerState,
    fetch=_fetch,
    launch=lambda port, timeout: LocalFhirServer(
        port=port, home=ensure_build(), detach=True, ready_timeout=timeout
    ),
    started_note="HAPI FHIR server pid {pid}, ready in {seconds:.1f} s, log {log}",
    fetch_help="build the server with Maven (CI warm-up)",
    start_help="start a server in the background; prints its base URL last",
    port_help=f"port on 127.0.0.1 (default: {DEMO_PORT} if free, else any free port)",
    status_help="is the background server running (exit 1 if not)",
    stop_help="stop the background server",
    nothing_recorded="no FHIR server recorded",
)


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add ``fetch``, ``start``, ``status`` and ``stop`` to ``parser`` (``pyheart fhir-server`` and ``-m``)."""
    devjvm.add_service_commands(parser, COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pyheart.broker.devfhir fetch|start|status|stop``."""
    parser = argparse.ArgumentParser(
        prog="pyheart fhir-server", description=f"a local HAPI FHIR {HAPI_VERSION} JPA R4 server (no Docker)"
    )
    add_subcommands(parser)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args))
    except PyHeartError as exc:
        print(f"pyheart fhir-server: error: {exc}", file=sys.stderr)
        return 1


__all__ = [
    "HAPI_VERSION",
    "READY_MARKER",
    "DevFhirError",
    "LocalFhirServer",
    "ServerState",
    "add_subcommands",
    "build",
    "build_present",
    "ensure_build",
    "find_java",
    "fingerprint",
    "main",
    "metadata_ok",
    "project_dir",
    "server_home",
]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
