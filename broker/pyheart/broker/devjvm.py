"""The machinery shared by the development JVM services (:mod:`~pyheart.broker.devkafka`, :mod:`~pyheart.broker.devfhir`).

Each launcher states only what differs (its artifacts, command line, readiness probe and texts); this
module owns the rest, so both behave alike:

- the cache (``${PYHEART_CACHE_DIR:-~/.cache/pyheart}``) and a Maven run that installs into it
  atomically (staging folder, ``.complete`` marker written last, a lock against concurrent fetches);
- finding Java 17+ (``$JAVA_HOME/bin/java``, else ``PATH``);
- :class:`LocalJvm`: one child JVM in its own temporary work directory, its output in a log file (never
  a pipe), readiness waits whose errors quote the log's tail, one retry when a port picked as free was
  taken, SIGTERM-then-SIGKILL stop, and the AppCDS archive (:class:`ClassDataSharing`);
- :class:`JvmState`: the state file of a JVM that ``start`` left running in the background;
- :func:`add_service_commands`: the ``fetch|start|status|stop`` commands.

Importing this module starts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypedDict

from pyheart.broker.cachedir import cache_root as cache_root
from pyheart.broker.errors import PyHeartError
from pyheart.broker.logs import SafeBoundLogger

_COMPLETE = ".complete"
_MAVEN_TAIL_LINES = 30
_LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1
#: The JVM's exit after dumping an AppCDS archive takes longer than a plain shutdown.
_CDS_DUMP_STOP_S = 120.0


@dataclass(frozen=True)
class Product:
    """What a launcher runs, as its messages name it (``Kafka 4.1.1``, ``HAPI FHIR 8.8.0``)."""

    name: str
    version: str
    #: The error every failure of this product is reported as.
    error: type[PyHeartError]
    min_java: int = 17


# ----------------------------------------------------------------------------------------- cache
def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished install (its ``.complete`` marker is written last)."""
    return (folder / _COMPLETE).is_file()


def ensure_cached(
    target: Path, present: Callable[[Path], bool], lock: Path, make: Callable[[], None]
) -> Path:
    """Return ``target``, running ``make`` first (under the file lock ``lock``) unless it is ``present``."""
    if present(target):
        return target
    with _lock(lock):
        if not present(target):  # another process may have made it while we waited
            make()
    return target


@dataclass(frozen=True)
class MavenJob:
    """A Maven run that installs into a cache folder, as its errors name it: ``fetch`` (``fetching``)
    ``the Kafka 4.1.1 jars``, giving up after ``timeout`` seconds."""

    product: Product
    verb: str
    what: str
    timeout: float


def install_with_maven(
    job: MavenJob,
    target: Path,
    goals: Callable[[Path], Sequence[str]],
    finish: Callable[[Path], None],
    *,
    mvn: str = "mvn",
) -> None:
    """Run ``mvn -B -q <goals(staging)>``, ``finish(staging)``, then make ``staging`` the new ``target``.

    ``target`` is replaced only by a complete install; a failure leaves no staging folder behind.
    """
    fail = job.product.error
    mvn_path = shutil.which(mvn)
    if mvn_path is None:
        raise fail(f"cannot {job.verb} {job.what}: '{mvn}' (Apache Maven) is not on PATH")
    doing = f"{job.verb}ing {job.what}"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=target.parent))
    try:
        try:
            result = subprocess.run(
                [mvn_path, "-B", "-q", *goals(staging)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=job.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise fail(f"{doing} took longer than {job.timeout:.0f} s") from None
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-_MAVEN_TAIL_LINES:])
            raise fail(f"{doing} failed (mvn exit {result.returncode}):\n{tail}")
        finish(staging)
        (staging / _COMPLETE).write_text(f"{job.product.version}\n", encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared by CI users
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
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


# ----------------------------------------------------------------------------------------- java, ports
def find_java(product: Product, env: Mapping[str, str] | None = None) -> Path:
    """The ``java`` executable (``$JAVA_HOME/bin/java``, else ``PATH``), checked to be new enough."""
    env = os.environ if env is None else env
    fail = product.error
    java_home = env.get("JAVA_HOME", "")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is None or not candidate.is_file():
        found = shutil.which("java")
        if found is None:
            raise fail(
                "no Java found (JAVA_HOME unset or invalid, no 'java' on PATH); "
                f"{product.name} needs {product.min_java}+"
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
        raise fail(f"'{candidate} -version' failed: {type(exc).__name__}") from None
    major = parse_java_major(result.stderr + result.stdout)
    if major is None:
        raise fail(f"cannot read the Java version from '{candidate} -version'")
    if major < product.min_java:
        raise fail(
            f"{candidate} is Java {major}; {product.name} {product.version} needs Java {product.min_java}+"
        )
    return candidate


def parse_java_major(version_output: str) -> int | None:
    """The major version from ``java -version`` output (``"17.0.15"`` -> 17, ``"1.8.0_392"`` -> 8)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now (it may be taken again before it is used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` of ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # like Kafka's acceptor: connections of a stopped server in TIME_WAIT do not block the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


# ----------------------------------------------------------------------------------------- the JVM
@dataclass(frozen=True)
class JvmSpec:
    """What one launcher's JVM is called and how it says it is ready."""

    product: Product
    #: ``the Kafka broker``: the subject of start-up errors.
    noun: str
    #: ``the local Kafka broker is not started``.
    not_started: str
    #: File name of the JVM's stdout and stderr in the work directory.
    log_name: str
    #: Prefix of the temporary work directory.
    work_prefix: str
    #: Prefix of log events (``devkafka`` -> ``devkafka.started``) and the logger they go to.
    events: str
    log: SafeBoundLogger
    #: The log key the address is logged under.
    address_key: str
    #: The line the JVM prints once it is (nearly) ready.
    ready_marker: str
    #: What readiness means, for the timeout error: ``did not <readiness> within 90 s``.
    readiness: str
    #: Log texts that mean a port picked as free was taken before the JVM bound it.
    bind_errors: tuple[str, ...]
    #: The error text when that happened twice (or on a fixed port).
    bind_failure: str
    #: Seconds between readiness checks.
    poll_interval: float
    #: Default seconds to wait for readiness, and from SIGTERM to SIGKILL.
    ready_timeout: float
    stop_timeout: float
    #: The environment variable that turns the AppCDS archive off (``=0``).
    cds_env: str
    #: Whether the JVM that dumps the archive gets longer to stop (the dump happens at exit).
    cds_slow_exit: bool = False

    def fail(self, text: str) -> PyHeartError:
        """The product's error with ``text``."""
        return self.product.error(text)

    def event(self, name: str) -> str:
        """The log event ``name`` of this JVM (``devkafka.started``)."""
        return f"{self.events}.{name}"


class _BindRace(Exception):
    """The JVM exited because a port picked as free was taken before it bound it."""


class ClassDataSharing:
    """A JVM's AppCDS archive: map ``target`` when it exists, else dump one at exit and keep it.

    The first JVM without an archive dumps the classes it loaded into its work directory when it exits;
    a clean stop moves that archive to ``target`` and later starts map it instead of parsing those
    classes again. The JVM ignores an archive that does not match (it starts without it).
    """

    def __init__(self, target: Path, *, enabled: bool) -> None:
        self.target = target
        self.enabled = enabled
        #: The archive the running JVM dumps when it exits cleanly (``None`` if it maps one).
        self.pending: Path | None = None

    def use_flags(self) -> list[str]:
        """Flags that map the existing archive (none when there is none)."""
        if self.enabled and self.target.is_file():
            return [f"-XX:SharedArchiveFile={self.target}", "-Xshare:auto"]
        return []

    def dump_flags(self, work_dir: Path) -> list[str]:
        """Flags that dump a new archive into ``work_dir`` at exit (none when one exists)."""
        if not self.enabled or self.target.is_file():
            return []
        self.pending = work_dir / self.target.name
        return [f"-XX:ArchiveClassesAtExit={self.pending}"]

    def discard(self) -> None:
        """Delete an archive the JVM could not use."""
        self.target.unlink(missing_ok=True)

    def promote(self) -> None:
        """After a clean exit: keep the dumped archive (see :func:`promote_cds_archive`)."""
        if self.pending is not None:
            promote_cds_archive(self.pending, self.target)
        self.pending = None


def promote_cds_archive(pending: Path, target: Path) -> None:
    """Move a freshly dumped AppCDS archive into the cache, unless one is already there."""
    if not pending.is_file() or target.exists():
        return
    with contextlib.suppress(OSError):
        staged = target.with_name(f"{target.name}.{os.getpid()}")
        shutil.copyfile(pending, staged)
        os.replace(staged, target)


class JvmOptions(TypedDict, total=False):
    """The options every :class:`LocalJvm` takes (a launcher's ``**options``)."""

    port: int | None
    host: str
    java: Path | None
    ready_timeout: float
    stop_timeout: float
    detach: bool
    work_root: Path | None
    class_data_sharing: bool


class LocalJvm:
    """One development service in a child JVM, started on loopback and stopped with it.

    Subclasses set :attr:`spec` and implement :meth:`_runtime` (the cached artifacts), :meth:`_archive`
    (where the AppCDS archive lives) and :meth:`_launch` (write config, :meth:`_spawn`, set the address,
    :meth:`_wait_ready`). ``port`` fixes the port (default: a free one); ``java`` the Java (default:
    :func:`find_java`); the timeouts default to the spec's; ``detach`` starts the JVM in its own session
    so it outlives this process (the ``start`` command); ``work_root`` is where the temporary work
    directory goes; ``class_data_sharing=False`` (or the spec's variable set to ``0``) runs without the
    AppCDS archive.
    """

    spec: ClassVar[JvmSpec]

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        java: Path | None = None,
        ready_timeout: float | None = None,
        stop_timeout: float | None = None,
        detach: bool = False,
        work_root: Path | None = None,
        class_data_sharing: bool = True,
    ) -> None:
        self._port = port
        self._host = host
        self._java = java
        self._ready_timeout = self.spec.ready_timeout if ready_timeout is None else ready_timeout
        self._stop_timeout = self.spec.stop_timeout if stop_timeout is None else stop_timeout
        self._detach = detach
        self._work_root = work_root
        self._cds_enabled = class_data_sharing and os.environ.get(self.spec.cds_env, "1") != "0"
        self._cds: ClassDataSharing | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._work_dir: Path | None = None
        self._address: str | None = None
        #: Seconds from start() to ready, fetch and build excluded (set by start()).
        self.startup_seconds: float | None = None

    # ------------------------------------------------------------------------------------ to implement
    def _runtime(self) -> Path:
        """The cached artifacts (fetched or built on first use)."""
        raise NotImplementedError

    def _archive(self, runtime: Path) -> Path:
        """Where the AppCDS archive of ``runtime`` lives."""
        raise NotImplementedError

    def _launch(self, java: Path, runtime: Path, attempt: int, deadline: float) -> None:
        """Start the JVM once and wait until it is ready; raise :class:`_BindRace` via :meth:`_wait_ready`."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ properties
    @property
    def address(self) -> str:
        """Where clients reach the service; raises if it is not running."""
        if self._address is None:
            raise self.spec.fail(self.spec.not_started)
        return self._address

    @property
    def pid(self) -> int | None:
        """Process id of the JVM, if started."""
        return None if self._proc is None else self._proc.pid

    @property
    def work_dir(self) -> Path | None:
        """The temporary folder holding the log (and any config and data)."""
        return self._work_dir

    @property
    def log_path(self) -> Path | None:
        """The JVM's log file (its stdout and stderr)."""
        return None if self._work_dir is None else self._work_dir / self.spec.log_name

    @property
    def cds_archive(self) -> Path | None:
        """Where the AppCDS archive lives (or will, once a JVM that dumps one stops)."""
        return self._cds.target if self._cds is not None and self._cds.enabled else None

    @property
    def cds_pending(self) -> Path | None:
        """The archive this JVM dumps when it exits cleanly (``None`` when it maps an existing one)."""
        return None if self._cds is None else self._cds.pending

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Start the JVM and wait until it is ready; return its address."""
        if self._proc is not None:
            return self.address
        spec = self.spec
        runtime = self._runtime()
        java = self._java or find_java(spec.product)
        began = time.monotonic()
        deadline = began + self._ready_timeout
        self._work_dir = Path(tempfile.mkdtemp(prefix=spec.work_prefix, dir=self._work_root))
        self._cds = ClassDataSharing(self._archive(runtime), enabled=self._cds_enabled)
        try:
            for attempt in (1, 2):
                try:
                    self._launch(java, runtime, attempt, deadline)
                    break
                except _BindRace:
                    self._kill()
                    if attempt == 2 or self._port is not None:
                        raise spec.fail(f"{spec.bind_failure}:\n{self._log_tail()}") from None
                    spec.log.warning(spec.event("port_race"), attempt=attempt, reason="address-in-use")
        except BaseException:
            self._kill()
            self._remove_work_dir()
            self._address = None
            raise
        self.startup_seconds = time.monotonic() - began
        spec.log.info(
            spec.event("started"),
            **{spec.address_key: self._address},
            pid=self.pid,
            duration_ms=round(self.startup_seconds * 1000),
        )
        return self.address

    def stop(self) -> None:
        """Stop the JVM (SIGTERM, SIGKILL after ``stop_timeout``) and remove its work directory."""
        proc = self._proc
        if proc is not None:
            timeout = self._stop_timeout
            if self.spec.cds_slow_exit and self.cds_pending is not None:
                timeout = max(timeout, _CDS_DUMP_STOP_S)
            outcome = terminate_child(proc, timeout)
            self.spec.log.info(self.spec.event("stopped"), pid=proc.pid, outcome=outcome)
            if outcome == "terminated" and self._cds is not None:
                self._cds.promote()
        self._proc = None
        self._address = None
        if self._cds is not None:
            self._cds.pending = None
        self._remove_work_dir()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------ for _launch
    def _pick_port(self) -> int:
        return self._port if self._port is not None else free_port(self._host)

    def _spawn(self, argv: Sequence[str]) -> None:
        assert self._work_dir is not None
        with (self._work_dir / self.spec.log_name).open("wb") as log_file:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,  # a file, never an unread pipe: a full pipe blocks the JVM
                stderr=subprocess.STDOUT,
                cwd=self._work_dir,
                start_new_session=self._detach,
                preexec_fn=None if self._detach else _die_with_parent,
            )

    def _wait_ready(self, deadline: float, probe: Callable[[], bool] | None = None) -> None:
        """Wait until the log shows the ready marker (and ``probe`` agrees); fail if the JVM exits."""
        assert self._proc is not None
        assert self._work_dir is not None
        spec = self.spec
        log_path = self._work_dir / spec.log_name
        marker = spec.ready_marker.encode()
        offset = 0
        carry = b""
        seen = False
        while True:
            if not seen:
                with log_path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                offset += len(chunk)
                window = carry + chunk
                seen = marker in window
                carry = window[-len(marker) :]
            if seen and (probe is None or probe()):
                return
            code = self._proc.poll()
            if code is not None:
                text = log_path.read_bytes()
                if any(err.encode() in text for err in spec.bind_errors):
                    raise _BindRace
                raise spec.fail(
                    f"{spec.noun} exited with code {code} during start-up; "
                    f"{spec.log_name} tail:\n{self._log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise spec.fail(
                    f"{spec.noun} did not {spec.readiness} within {self._ready_timeout:.0f} s; "
                    f"{spec.log_name} tail:\n{self._log_tail()}"
                )
            time.sleep(spec.poll_interval)

    def _log_tail(self) -> str:
        name = self.spec.log_name
        path = self.log_path
        if path is None or not path.is_file():
            return f"(no {name})"
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-_LOG_TAIL_LINES:]) or f"({name} is empty)"

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def _remove_work_dir(self) -> None:
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None


def _die_with_parent() -> None:
    """In the forked child, before exec: ask Linux to SIGTERM the JVM when its parent dies.

    A test session that is killed (CI timeout, ``kill -9``) then leaves no JVM behind. Linux ties
    this to the thread that forked, so start an attached JVM from a long-lived thread.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def terminate_child(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """SIGTERM ``proc`` (a graceful shutdown), SIGKILL after ``timeout``; return what ended it."""
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


# ----------------------------------------------------------------------------------------- state file
_FROM_JSON: Mapping[str, Callable[[Any], object]] = {"int": int, "str": str, "float": float}


class JvmState:
    """What ``start`` records about a JVM it left running in the background: mix into a frozen dataclass.

    The dataclass declares the fields in the order of the state file: ``pid``, ``work_dir`` and
    ``started_at``, the address (named by :attr:`address_field`) and, optionally, ``cds_pending`` and
    ``cds_archive`` (types int, str or float). It says how its JVM is recognised (:meth:`_identity`)
    and which AppCDS archive a clean stop keeps (:meth:`_pending_archive`).
    """

    __dataclass_fields__: ClassVar[dict[str, Any]]
    #: The JVM's spec: its ``stopped`` event and default stop timeout.
    spec: ClassVar[JvmSpec]
    #: The field holding the address (``bootstrap_servers``, ``base_url``).
    address_field: ClassVar[str]
    pid: int
    work_dir: str

    @classmethod
    def of(cls, jvm: LocalJvm) -> Self:
        """The state of ``jvm``, which ``start()`` has just started."""
        assert jvm.pid is not None
        assert jvm.work_dir is not None
        known: dict[str, object] = {
            "pid": jvm.pid,
            cls.address_field: jvm.address,
            "work_dir": str(jvm.work_dir),
            "started_at": time.time(),
            "cds_pending": "" if jvm.cds_pending is None else str(jvm.cds_pending),
            "cds_archive": "" if jvm.cds_archive is None else str(jvm.cds_archive),
        }
        return cls(**{field.name: known[field.name] for field in fields(cls)})

    @property
    def address(self) -> str:
        """Where clients reach the recorded service."""
        return str(getattr(self, self.address_field))

    def _identity(self) -> bytes:
        """Bytes in the JVM's command line that only this service's JVM has (pid reuse check)."""
        raise NotImplementedError

    def _pending_archive(self) -> tuple[Path, Path] | None:
        """The AppCDS archive the JVM dumps at exit and where a clean stop keeps it, if any."""
        raise NotImplementedError

    def write(self, path: Path) -> None:
        """Write the state as JSON (atomically)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f"{path.name}.{os.getpid()}")
        staged.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(staged, path)

    @classmethod
    def read(cls, path: Path) -> Self | None:
        """The recorded state, or ``None`` if there is none (or it is unreadable)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            values: dict[str, object] = {}
            for field in fields(cls):
                if field.name in raw:
                    kind = field.type if isinstance(field.type, str) else field.type.__name__
                    values[field.name] = _FROM_JSON[kind](raw[field.name])
                elif field.default is MISSING:
                    raise KeyError(field.name)
            return cls(**values)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool:
        """Whether the recorded JVM still runs (and is ours, not a process that reused the pid)."""
        proc = Path("/proc") / str(self.pid)
        if Path("/proc/self").exists():
            try:
                status = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                cmdline = (proc / "cmdline").read_bytes()
            except (OSError, IndexError):
                return False
            return status not in {"Z", "X"} and self._identity() in cmdline
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, timeout: float | None = None) -> str:
        """End the recorded JVM: SIGTERM, SIGKILL after ``timeout``; remove its work directory."""
        outcome = "not-running"
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            outcome = "terminated"
            if not self._wait_gone(self.spec.stop_timeout if timeout is None else timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                outcome = "killed"
                self._wait_gone(10.0)
        archive = self._pending_archive()
        if outcome == "terminated" and archive is not None:
            promote_cds_archive(*archive)
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.spec.log.info(self.spec.event("stopped"), pid=self.pid, outcome=outcome)
        return outcome

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True


# ----------------------------------------------------------------------------------------- CLI
@dataclass(frozen=True)
class ServiceCommands:
    """What one service's ``fetch|start|status|stop`` commands say and do (``pyheart kafka ...``)."""

    #: ``pyheart kafka``: named in the "already running" hint.
    command: str
    #: argparse ``dest`` of the sub-command.
    dest: str
    #: The port ``start`` takes when it is free (the demo's), and the state file's place.
    demo_port: int
    state_path: Callable[[], Path]
    #: The state file's type; its spec gives the product and the default timeouts.
    state_type: type[JvmState]
    #: ``fetch``: fetch or build the artifacts (saying so on stderr when it does); return their folder.
    fetch: Callable[[], Path]
    #: ``start``: a detached JVM (not started yet) on ``port`` (``None``: any) that waits ``timeout`` s.
    launch: Callable[[int | None, float], LocalJvm]
    #: The line ``start`` prints to stderr; ``{pid}``, ``{seconds}`` (to ready), ``{log}``, ``{state}``.
    started_note: str
    fetch_help: str
    start_help: str
    port_help: str
    status_help: str
    stop_help: str
    #: What ``stop`` prints when no JVM is recorded.
    nothing_recorded: str


def add_service_commands(parser: argparse.ArgumentParser, commands: ServiceCommands) -> None:
    """Add ``fetch``, ``start``, ``status`` and ``stop`` for ``commands`` to ``parser``."""
    spec = commands.state_type.spec
    sub = parser.add_subparsers(dest=commands.dest, metavar="SUBCOMMAND")
    fetch = sub.add_parser("fetch", help=commands.fetch_help)
    fetch.set_defaults(func=lambda _args: _cmd_fetch(commands))
    start = sub.add_parser("start", help=commands.start_help)
    start.add_argument("--port", type=int, help=commands.port_help)
    start.add_argument(
        "--timeout", type=float, default=spec.ready_timeout, help="seconds to wait for readiness"
    )
    start.set_defaults(func=lambda args: _cmd_start(commands, args))
    status = sub.add_parser("status", help=commands.status_help)
    status.set_defaults(func=lambda _args: _cmd_status(commands))
    stop = sub.add_parser("stop", help=commands.stop_help)
    stop.add_argument(
        "--timeout", type=float, default=spec.stop_timeout, help="seconds before SIGTERM becomes SIGKILL"
    )
    stop.set_defaults(func=lambda args: _cmd_stop(commands, args))


def _say(text: object, *, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout)


def _cmd_fetch(commands: ServiceCommands) -> int:
    _say(commands.fetch())
    return 0


def _cmd_start(commands: ServiceCommands, args: argparse.Namespace) -> int:
    path = commands.state_path()
    state = commands.state_type.read(path)
    if state is not None and state.alive():
        _say(f"already running (pid {state.pid}); stop it with: {commands.command} stop", err=True)
        _say(state.address)
        return 0
    if state is not None:  # the recorded JVM is gone (crash, reboot): clear what it left
        state.stop()
        path.unlink(missing_ok=True)
    port: int | None = args.port
    if port is not None and not port_is_free(port):
        raise commands.state_type.spec.fail(f"port {port} on 127.0.0.1 is in use")
    if port is None and port_is_free(commands.demo_port):
        port = commands.demo_port
    jvm = commands.launch(port, args.timeout)
    jvm.start()
    state = commands.state_type.of(jvm)
    state.write(path)
    note = commands.started_note.format(
        pid=jvm.pid, seconds=jvm.startup_seconds or 0.0, log=jvm.log_path, state=path
    )
    _say(note, err=True)
    _say(state.address)
    return 0


def _cmd_status(commands: ServiceCommands) -> int:
    state = commands.state_type.read(commands.state_path())
    if state is None or not state.alive():
        _say("not running")
        return 1
    _say(f"running: pid {state.pid}, work dir {state.work_dir}")
    _say(state.address)
    return 0


def _cmd_stop(commands: ServiceCommands, args: argparse.Namespace) -> int:
    path = commands.state_path()
    state = commands.state_type.read(path)
    if state is None:
        _say(commands.nothing_recorded)
        return 0
    outcome = state.stop(timeout=args.timeout)
    path.unlink(missing_ok=True)
    _say(f"{outcome}: pid {state.pid}")
    return 0
