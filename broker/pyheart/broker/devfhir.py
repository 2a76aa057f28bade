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
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from pyheart.broker.devkafka.settings import free_port, parse_java_major, port_is_free
from pyheart.broker.errors import PyHeartError
from pyheart.broker.logs import get_logger

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
_COMPLETE = ".complete"
_JAR = "pyheart-fhir-server.jar"
_CDS_ARCHIVE = "server.jsa"
_FETCH_TIMEOUT_S = 1200.0
_LOG_TAIL_LINES = 40
_BIND_ERRORS = ("Address already in use", "Failed to bind")
_PR_SET_PDEATHSIG = 1

_log = get_logger("pyheart.devfhir")


class DevFhirError(PyHeartError):
    """The development FHIR server could not be built, started, reached or stopped."""

    code = "devfhir-failed"


# ----------------------------------------------------------------------------------------- build
def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """``$PYHEART_CACHE_DIR``, or ``~/.cache/pyheart``."""
    env = os.environ if env is None else env
    configured = env.get("PYHEART_CACHE_DIR", "")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "pyheart"


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
    return (home / _COMPLETE).is_file() and (home / _JAR).is_file() and (home / "lib").is_dir()


def ensure_build(project: Path | None = None, *, mvn: str = "mvn") -> Path:
    """Return the build folder, building the server with Maven first if it is not cached."""
    project = project_dir() if project is None else project
    home = server_home(project)
    if build_present(home):
        return home
    with _lock(cache_root() / "hapi-fhir.lock"):
        if not build_present(home):  # another process may have built it while we waited
            build(project, home, mvn=mvn)
    return home


def build(project: Path, home: Path, *, mvn: str = "mvn") -> None:
    """Compile the server and copy its runtime classpath from Maven Central into ``home`` (replacing it)."""
    mvn_path = shutil.which(mvn)
    if mvn_path is None:
        raise DevFhirError(
            f"cannot build the HAPI FHIR {HAPI_VERSION} server: '{mvn}' (Apache Maven) is not on PATH"
        )
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="hapi-build-", dir=home.parent))
    try:
        argv = [
            mvn_path,
            "-B",
            "-q",
            "-f",
            str(project / "pom.xml"),
            f"-Dfhirserver.build.dir={staging / 'target'}",
            "-DskipTests",
            "package",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging / 'lib'}",
        ]
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_FETCH_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DevFhirError(
                f"building the HAPI FHIR {HAPI_VERSION} server took longer than {_FETCH_TIMEOUT_S:.0f} s"
            ) from None
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise DevFhirError(
                f"building the HAPI FHIR {HAPI_VERSION} server failed (mvn exit {result.returncode}):\n{tail}"
            )
        jars = sorted((staging / "target").glob("*.jar"))
        if not jars or not (staging / "lib").is_dir():
            raise DevFhirError("the Maven build produced no server jar or no lib folder")
        shutil.move(str(jars[0]), staging / _JAR)
        shutil.rmtree(staging / "target", ignore_errors=True)
        (staging / _COMPLETE).write_text(f"{HAPI_VERSION}\n", encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared by CI users
        if home.exists():
            shutil.rmtree(home)
        staging.rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_java(env: Mapping[str, str] | None = None) -> Path:
    """The ``java`` executable (``$JAVA_HOME/bin/java``, else ``PATH``), checked to be Java 17 or newer."""
    env = os.environ if env is None else env
    java_home = env.get("JAVA_HOME", "")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is None or not candidate.is_file():
        found = shutil.which("java")
        if found is None:
            raise DevFhirError(
                f"no Java found (JAVA_HOME unset or invalid, no 'java' on PATH); HAPI FHIR needs {MIN_JAVA}+"
            )
        candidate = Path(found)
    try:
        result = subprocess.run(
            [str(candidate), "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevFhirError(f"'{candidate} -version' failed: {type(exc).__name__}") from None
    major = parse_java_major(result.stderr + result.stdout)
    if major is None:
        raise DevFhirError(f"cannot read the Java version from '{candidate} -version'")
    if major < MIN_JAVA:
        raise DevFhirError(f"{candidate} is Java {major}; HAPI FHIR {HAPI_VERSION} needs Java {MIN_JAVA}+")
    return candidate


# ----------------------------------------------------------------------------------------- server
class _BindRace(Exception):
    """The JVM exited because the port picked as free was taken before Jetty bound it."""


def metadata_ok(base_url: str, timeout: float = 5.0) -> bool:
    """Whether ``GET <base_url>/metadata`` answers 200."""
    try:
        with urllib.request.urlopen(f"{base_url}/metadata", timeout=timeout) as response:  # noqa: S310 - http(s) loopback URL we built
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class LocalFhirServer:
    """A HAPI FHIR JPA R4 server in a child JVM: ``with LocalFhirServer() as fhir: fhir.base_url``.

    ``port`` fixes the port (default: a free one); ``detach`` starts the JVM in its own session so it
    outlives this process (``pyheart fhir-server start``).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        home: Path | None = None,
        java: Path | None = None,
        ready_timeout: float = 240.0,
        stop_timeout: float = 20.0,
        detach: bool = False,
        work_root: Path | None = None,
        class_data_sharing: bool = True,
    ) -> None:
        self._port = port
        self._host = host
        self._home = home
        self._java = java
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._detach = detach
        self._work_root = work_root
        self._cds = class_data_sharing and os.environ.get("PYHEART_FHIR_CDS", "1") != "0"
        self._proc: subprocess.Popen[bytes] | None = None
        self._work_dir: Path | None = None
        self._base_url: str | None = None
        self._cds_pending: Path | None = None
        self._cds_target: Path | None = None
        #: Seconds from start() to ready, build excluded (set by start()).
        self.startup_seconds: float | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/fhir``; raises if the server is not running."""
        if self._base_url is None:
            raise DevFhirError("the local FHIR server is not started")
        return self._base_url

    @property
    def pid(self) -> int | None:
        """Process id of the server JVM, if started."""
        return None if self._proc is None else self._proc.pid

    @property
    def work_dir(self) -> Path | None:
        """The temporary folder holding ``server.log``."""
        return self._work_dir

    @property
    def log_path(self) -> Path | None:
        """The server's log file (stdout and stderr of the JVM)."""
        return None if self._work_dir is None else self._work_dir / "server.log"

    @property
    def cds_archive(self) -> Path | None:
        """Where the AppCDS archive lives (or will, once a server that dumps one stops)."""
        return self._cds_target if self._cds else None

    @property
    def cds_pending(self) -> Path | None:
        """The archive this server dumps when it exits cleanly (``None`` when it maps an existing one)."""
        return self._cds_pending

    def start(self) -> str:
        """Start the server and wait until ``/fhir/metadata`` answers 200; return the base URL."""
        if self._proc is not None:
            return self.base_url
        home = ensure_build() if self._home is None else self._home
        java = self._java or find_java()
        began = time.monotonic()
        deadline = began + self._ready_timeout
        self._work_dir = Path(tempfile.mkdtemp(prefix="pyheart-fhir-", dir=self._work_root))
        try:
            for attempt in (1, 2):
                try:
                    self._start_once(java, home, deadline)
                    break
                except _BindRace:
                    self._kill()
                    if attempt == 2 or self._port is not None:
                        raise DevFhirError(
                            f"the FHIR server could not bind its port:\n{self._log_tail()}"
                        ) from None
                    _log.warning("devfhir.port_race", attempt=attempt, reason="address-in-use")
        except BaseException:
            self._kill()
            self._remove_work_dir()
            self._base_url = None
            raise
        self.startup_seconds = time.monotonic() - began
        _log.info(
            "devfhir.started",
            target=self._base_url,
            pid=self.pid,
            duration_ms=round(self.startup_seconds * 1000),
        )
        return self.base_url

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after ``stop_timeout``) and remove its work directory."""
        proc = self._proc
        if proc is not None:
            # A JVM dumping its AppCDS archive at exit needs longer than a plain shutdown.
            timeout = self._stop_timeout if self._cds_pending is None else max(self._stop_timeout, 120.0)
            outcome = terminate_child(proc, timeout)
            _log.info("devfhir.stopped", pid=proc.pid, outcome=outcome)
            if outcome == "terminated" and self._cds_pending is not None and self._cds_target is not None:
                promote_cds_archive(self._cds_pending, self._cds_target)
        self._proc = None
        self._base_url = None
        self._cds_pending = None
        self._remove_work_dir()

    def __enter__(self) -> LocalFhirServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------ internals
    def _start_once(self, java: Path, home: Path, deadline: float) -> None:
        assert self._work_dir is not None
        port = self._port if self._port is not None else free_port(self._host)
        log_path = self._work_dir / "server.log"
        argv = [
            str(java),
            *JVM_FLAGS,
            *self._cds_flags(home),
            "-cp",
            f"{home / _JAR}:{home / 'lib'}/*",  # the JVM expands the wildcard; no shell involved
            MAIN_CLASS,
            "--host",
            self._host,
            "--port",
            str(port),
        ]
        with log_path.open("wb") as log_file:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,  # a file, never an unread pipe: a full pipe blocks the JVM
                stderr=subprocess.STDOUT,
                cwd=self._work_dir,
                start_new_session=self._detach,
                preexec_fn=None if self._detach else _die_with_parent,
            )
        self._base_url = f"http://{self._host}:{port}/fhir"
        self._wait_ready(log_path, deadline)

    def _wait_ready(self, log_path: Path, deadline: float) -> None:
        assert self._proc is not None
        assert self._base_url is not None
        marker = READY_MARKER.encode()
        while True:
            code = self._proc.poll()
            if code is not None:
                text = log_path.read_bytes()
                if any(err.encode() in text for err in _BIND_ERRORS):
                    raise _BindRace
                raise DevFhirError(
                    f"the FHIR server exited with code {code} during start-up; server.log tail:\n{self._log_tail()}"
                )
            if marker in log_path.read_bytes() and metadata_ok(self._base_url):
                return
            if time.monotonic() >= deadline:
                raise DevFhirError(
                    f"the FHIR server did not answer GET /fhir/metadata within {self._ready_timeout:.0f} s; "
                    f"server.log tail:\n{self._log_tail()}"
                )
            time.sleep(0.2)

    def _log_tail(self) -> str:
        path = self.log_path
        if path is None or not path.is_file():
            return "(no server.log)"
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(server.log is empty)"

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def _remove_work_dir(self) -> None:
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    # AppCDS: the first server without an archive dumps the classes it loaded when it exits cleanly;
    # stop() moves the archive into the build folder and later starts map it instead of parsing
    # those classes again. The JVM ignores an archive that does not match (it starts without it).
    def _cds_flags(self, home: Path) -> list[str]:
        if not self._cds:
            return []
        self._cds_target = home / _CDS_ARCHIVE
        if self._cds_target.is_file():
            return [f"-XX:SharedArchiveFile={self._cds_target}", "-Xshare:auto"]
        assert self._work_dir is not None
        self._cds_pending = self._work_dir / _CDS_ARCHIVE
        return [f"-XX:ArchiveClassesAtExit={self._cds_pending}"]


def promote_cds_archive(pending: Path, target: Path) -> None:
    """Move a freshly dumped AppCDS archive into the build folder, unless one is already there."""
    if not pending.is_file() or target.exists():
        return
    with contextlib.suppress(OSError):
        staged = target.with_name(f"{target.name}.{os.getpid()}")
        shutil.copyfile(pending, staged)
        os.replace(staged, target)


def _die_with_parent() -> None:
    """In the forked child, before exec: SIGTERM the server when its parent dies (Linux only).

    A test session that is killed (CI timeout, ``kill -9``) then leaves no JVM behind.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def terminate_child(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """SIGTERM ``proc``, SIGKILL after ``timeout``; return what ended it."""
    if proc.poll() is not None:
        return "exited"
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "killed"
    return "terminated"


# ----------------------------------------------------------------------------------------- CLI state
@dataclass(frozen=True)
class ServerState:
    """What ``start`` records about the server it left running in the background."""

    pid: int
    base_url: str
    work_dir: str
    started_at: float
    cds_pending: str = ""
    cds_archive: str = ""

    def write(self, path: Path) -> None:
        """Write the state as JSON (atomically)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f"{path.name}.{os.getpid()}")
        staged.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(staged, path)

    @classmethod
    def read(cls, path: Path) -> ServerState | None:
        """The recorded state, or ``None`` if there is none (or it is unreadable)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                pid=int(raw["pid"]),
                base_url=str(raw["base_url"]),
                work_dir=str(raw["work_dir"]),
                started_at=float(raw["started_at"]),
                cds_pending=str(raw.get("cds_pending", "")),
                cds_archive=str(raw.get("cds_archive", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool:
        """Whether the recorded JVM still runs (and is our server, not a process that reused the pid)."""
        proc = Path("/proc") / str(self.pid)
        try:
            status = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            return False
        return status not in {"Z", "X"} and MAIN_CLASS.encode() in cmdline

    def stop(self, timeout: float = 20.0) -> str:
        """End the recorded server: SIGTERM, SIGKILL after ``timeout``; remove its work directory."""
        outcome = "not-running"
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            outcome = "terminated"
            if not self._wait_gone(timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                outcome = "killed"
                self._wait_gone(10.0)
        if outcome == "terminated" and self.cds_pending and self.cds_archive:
            promote_cds_archive(Path(self.cds_pending), Path(self.cds_archive))
        shutil.rmtree(self.work_dir, ignore_errors=True)
        _log.info("devfhir.stopped", pid=self.pid, outcome=outcome)
        return outcome

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True


def state_path() -> Path:
    """Where ``start`` records the background server."""
    return cache_root() / "fhir-server.json"


def _cmd_fetch(_args: argparse.Namespace) -> int:
    home = server_home()
    if not build_present(home):
        print(f"building the HAPI FHIR {HAPI_VERSION} server with Maven into {home} ...", file=sys.stderr)
    print(ensure_build())
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    path = state_path()
    state = ServerState.read(path)
    if state is not None and state.alive():
        print(f"already running (pid {state.pid}); stop it with: pyheart fhir-server stop", file=sys.stderr)
        print(state.base_url)
        return 0
    if state is not None:  # the recorded server is gone (crash, reboot): clear what it left
        state.stop()
        path.unlink(missing_ok=True)
    port: int | None = args.port
    if port is not None and not port_is_free(port):
        raise DevFhirError(f"port {port} on 127.0.0.1 is in use")
    if port is None and port_is_free(DEMO_PORT):
        port = DEMO_PORT
    home = ensure_build()
    server = LocalFhirServer(port=port, home=home, detach=True, ready_timeout=args.timeout)
    base_url = server.start()
    assert server.pid is not None
    assert server.work_dir is not None
    pending = server.cds_pending  # promoted into the build folder by `stop`
    cds = server.cds_archive
    ServerState(
        server.pid,
        base_url,
        str(server.work_dir),
        time.time(),
        "" if pending is None else str(pending),
        "" if cds is None else str(cds),
    ).write(path)
    print(
        f"HAPI FHIR server pid {server.pid}, ready in {server.startup_seconds or 0:.1f} s, log {server.log_path}",
        file=sys.stderr,
    )
    print(base_url)
    return 0


def _cmd_status(_args: argparse.Namespace) -> int:
    state = ServerState.read(state_path())
    if state is None or not state.alive():
        print("not running")
        return 1
    print(f"running: pid {state.pid}, work dir {state.work_dir}")
    print(state.base_url)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    path = state_path()
    state = ServerState.read(path)
    if state is None:
        print("no FHIR server recorded")
        return 0
    outcome = state.stop(timeout=args.timeout)
    path.unlink(missing_ok=True)
    print(f"{outcome}: pid {state.pid}")
    return 0


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add ``fetch``, ``start``, ``status`` and ``stop`` to ``parser`` (``pyheart fhir-server`` and ``-m``)."""
    sub = parser.add_subparsers(dest="fhir_command", metavar="SUBCOMMAND")
    fetch = sub.add_parser("fetch", help="build the server with Maven (CI warm-up)")
    fetch.set_defaults(func=_cmd_fetch)
    start = sub.add_parser("start", help="start a server in the background; prints its base URL last")
    start.add_argument(
        "--port", type=int, help=f"port on 127.0.0.1 (default: {DEMO_PORT} if free, else any free port)"
    )
    start.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for readiness")
    start.set_defaults(func=_cmd_start)
    status = sub.add_parser("status", help="is the background server running (exit 1 if not)")
    status.set_defaults(func=_cmd_status)
    stop = sub.add_parser("stop", help="stop the background server")
    stop.add_argument("--timeout", type=float, default=20.0, help="seconds before SIGTERM becomes SIGKILL")
    stop.set_defaults(func=_cmd_stop)


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
