"""A real single-node Apache Kafka broker (KRaft, broker + controller in one JVM) on loopback.

:class:`LocalKafka` formats a fresh data directory, starts ``kafka.Kafka`` from the cached Maven jars,
and returns once the broker logged ``Kafka Server started`` and answered an admin round trip. Every
start gets its own temporary work directory (``server.properties``, ``broker.log``, data) and free
ports chosen at run time; stop() ends the JVM and removes the directory.

Start-up speed: the first broker that stops cleanly leaves an AppCDS archive (classes the broker
loaded) in the jar cache; later starts of the format tool and the broker map it instead of parsing
those classes again. A stale or foreign archive is ignored by the JVM (it starts without it).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from pyheart.broker.devkafka.client import run_sync, wait_reachable
from pyheart.broker.devkafka.runtime import DevKafkaError, ensure_jars, find_java
from pyheart.broker.devkafka.settings import (
    BROKER_HEAP,
    FORMAT_HEAP,
    JVM_FAST_START,
    LOG4J2_PROPERTIES,
    STARTED_MESSAGE,
    free_port,
    new_cluster_id,
    render_server_properties,
)
from pyheart.broker.logs import get_logger

_log = get_logger("pyheart.devkafka")
_BIND_RACE = "Address already in use"
_LOG_TAIL_LINES = 40
_CDS_ARCHIVE = "broker.jsa"
_PR_SET_PDEATHSIG = 1


class _BindRace(Exception):
    """The JVM exited because a port picked as free was taken before Kafka bound it."""


class LocalKafka:
    """A Kafka broker in a child JVM: ``with LocalKafka() as kafka: kafka.bootstrap_servers``.

    ``port`` fixes the client port (default: a free one); ``detach`` starts the JVM in its own session
    so it outlives this process (``pyheart kafka start``). ``extra_properties`` add or override
    ``server.properties`` settings.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        libs: Path | None = None,
        java: Path | None = None,
        ready_timeout: float = 90.0,
        stop_timeout: float = 30.0,
        detach: bool = False,
        extra_properties: Mapping[str, str] | None = None,
        work_root: Path | None = None,
        class_data_sharing: bool = True,
    ) -> None:
        self._port = port
        self._host = host
        self._libs = libs
        self._java = java
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._detach = detach
        self._extra = dict(extra_properties or {})
        self._work_root = work_root
        self._cds = class_data_sharing and os.environ.get("PYHEART_KAFKA_CDS", "1") != "0"
        self._proc: subprocess.Popen[bytes] | None = None
        self._work_dir: Path | None = None
        self._bootstrap: str | None = None
        self._cds_pending: Path | None = None
        self._cds_target: Path | None = None
        #: Seconds from start() to ready, jar fetch excluded (set by start()).
        self.startup_seconds: float | None = None

    # ------------------------------------------------------------------------------- properties
    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for clients; raises if the broker is not running."""
        if self._bootstrap is None:
            raise DevKafkaError("the local Kafka broker is not started")
        return self._bootstrap

    @property
    def pid(self) -> int | None:
        """Process id of the broker JVM, if started."""
        return None if self._proc is None else self._proc.pid

    @property
    def work_dir(self) -> Path | None:
        """The temporary folder holding config, data and ``broker.log``."""
        return self._work_dir

    @property
    def log_path(self) -> Path | None:
        """The broker's log file (stdout and stderr of the JVM)."""
        return None if self._work_dir is None else self._work_dir / "broker.log"

    # ------------------------------------------------------------------------------- lifecycle
    def start(self) -> str:
        """Start the broker and wait until it serves requests; return the bootstrap address."""
        if self._proc is not None:
            return self.bootstrap_servers
        libs = ensure_jars(self._libs)
        java = self._java or find_java()
        began = time.monotonic()
        deadline = began + self._ready_timeout
        self._work_dir = Path(tempfile.mkdtemp(prefix="pyheart-kafka-", dir=self._work_root))
        try:
            for attempt in (1, 2):
                try:
                    self._start_once(java, libs, attempt, deadline)
                    break
                except _BindRace:
                    self._kill()
                    if attempt == 2 or self._port is not None:
                        raise DevKafkaError(
                            f"Kafka could not bind its ports ({_BIND_RACE}):\n{self._log_tail()}"
                        ) from None
                    _log.warning("devkafka.port_race", attempt=attempt, reason="address-in-use")
        except BaseException:
            self._kill()
            self._remove_work_dir()
            self._bootstrap = None
            raise
        self.startup_seconds = time.monotonic() - began
        _log.info(
            "devkafka.started",
            bootstrap_servers=self._bootstrap,
            pid=self.pid,
            duration_ms=round(self.startup_seconds * 1000),
        )
        return self.bootstrap_servers

    def stop(self) -> None:
        """Stop the broker (SIGTERM, SIGKILL after ``stop_timeout``) and remove its work directory."""
        proc = self._proc
        if proc is not None:
            outcome = terminate_child(proc, self._stop_timeout)
            _log.info("devkafka.stopped", pid=proc.pid, outcome=outcome)
            if outcome == "terminated":
                self._promote_cds_archive()
        self._proc = None
        self._bootstrap = None
        self._remove_work_dir()

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------------------- internals
    def _start_once(self, java: Path, libs: Path, attempt: int, deadline: float) -> None:
        assert self._work_dir is not None
        work = self._work_dir
        broker_port = self._port if self._port is not None else free_port(self._host)
        controller_port = free_port(self._host)
        while controller_port == broker_port:
            controller_port = free_port(self._host)
        data = work / f"data-{attempt}"
        config = work / "server.properties"
        config.write_text(
            render_server_properties(
                broker_port=broker_port,
                controller_port=controller_port,
                data_dir=data,
                host=self._host,
                extra=self._extra,
            ),
            encoding="utf-8",
        )
        log4j = work / "log4j2.properties"
        log4j.write_text(LOG4J2_PROPERTIES, encoding="utf-8")
        common = [
            *JVM_FAST_START,
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={work}",
            "-cp",
            f"{libs}/*",  # the JVM expands the wildcard; no shell involved
        ]
        cds = self._cds_flags(libs)
        try:
            self._format(java, [*cds, *common], config, work, deadline)
        except DevKafkaError:
            if not cds:
                raise
            # A damaged archive crashes the JVM (SIGBUS) instead of being ignored: drop it, retry.
            self._discard_cds_archive()
            cds = []
            shutil.rmtree(data, ignore_errors=True)
            self._format(java, common, config, work, deadline)
        common = [*cds, *common]
        log_path = work / "broker.log"
        with log_path.open("wb") as log_file:
            self._proc = subprocess.Popen(
                [str(java), *BROKER_HEAP, *self._cds_dump_flags(), *common, "kafka.Kafka", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,  # a file, never an unread pipe: a full pipe blocks the JVM
                stderr=subprocess.STDOUT,
                cwd=work,
                start_new_session=self._detach,
                preexec_fn=None if self._detach else _die_with_parent,
            )
        self._bootstrap = f"{self._host}:{broker_port}"
        self._wait_for_log_line(log_path, deadline)
        try:
            run_sync(wait_reachable(self._bootstrap, max(1.0, deadline - time.monotonic())))
        except DevKafkaError as exc:
            raise DevKafkaError(f"{exc}; broker.log tail:\n{self._log_tail()}") from None

    def _format(self, java: Path, common: list[str], config: Path, work: Path, deadline: float) -> None:
        argv = [
            str(java),
            *FORMAT_HEAP,
            *common,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            new_cluster_id(),
            "-c",
            str(config),
        ]
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                cwd=work,
                timeout=max(1.0, deadline - time.monotonic()),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DevKafkaError(f"formatting the Kafka data directory timed out in {work}") from None
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-_LOG_TAIL_LINES:])
            raise DevKafkaError(
                f"formatting the Kafka data directory failed (exit {result.returncode}):\n{tail}"
            )

    def _wait_for_log_line(self, log_path: Path, deadline: float) -> None:
        assert self._proc is not None
        marker = STARTED_MESSAGE.encode()
        offset = 0
        carry = b""
        while True:
            with log_path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            window = carry + chunk
            if marker in window:
                return
            carry = window[-len(marker) :]
            code = self._proc.poll()
            if code is not None:
                if _BIND_RACE.encode() in log_path.read_bytes():
                    raise _BindRace
                raise DevKafkaError(
                    f"the Kafka broker exited with code {code} during start-up; broker.log tail:\n"
                    f"{self._log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise DevKafkaError(
                    f"the Kafka broker did not log '{STARTED_MESSAGE}' within {self._ready_timeout:.0f} s; "
                    f"broker.log tail:\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def _log_tail(self) -> str:
        path = self.log_path
        if path is None or not path.is_file():
            return "(no broker.log)"
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(broker.log is empty)"

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def _remove_work_dir(self) -> None:
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    # AppCDS: the first broker without an archive dumps one into its work dir when it exits;
    # stop() (or BrokerState.stop() for a detached broker) moves it into the jar cache.
    def _cds_flags(self, libs: Path) -> list[str]:
        self._cds_target = libs.parent / _CDS_ARCHIVE
        if self._cds and self._cds_target.is_file():
            return [f"-XX:SharedArchiveFile={self._cds_target}", "-Xshare:auto"]
        return []

    def _discard_cds_archive(self) -> None:
        _log.warning("devkafka.cds_archive_rejected", outcome="deleted")
        if self._cds_target is not None:
            self._cds_target.unlink(missing_ok=True)

    def _cds_dump_flags(self) -> list[str]:
        if not self._cds or self._cds_target is None or self._cds_target.is_file():
            return []
        assert self._work_dir is not None
        self._cds_pending = self._work_dir / _CDS_ARCHIVE
        return [f"-XX:ArchiveClassesAtExit={self._cds_pending}"]

    @property
    def cds_archive(self) -> Path | None:
        """Where the AppCDS archive lives (or will, once a broker that dumps one stops)."""
        return self._cds_target if self._cds else None

    def _promote_cds_archive(self) -> None:
        if self._cds_pending is not None and self._cds_target is not None:
            promote_cds_archive(self._cds_pending, self._cds_target)
        self._cds_pending = None


def promote_cds_archive(pending: Path, target: Path) -> None:
    """Move a freshly dumped AppCDS archive into the cache, unless one is already there."""
    if not pending.is_file() or target.exists():
        return
    with contextlib.suppress(OSError):
        staged = target.with_name(f"{target.name}.{os.getpid()}")
        shutil.copyfile(pending, staged)
        os.replace(staged, target)


def _die_with_parent() -> None:
    """In the forked child, before exec: ask Linux to SIGTERM the broker when its parent dies.

    A test session that is killed (CI timeout, ``kill -9``) then leaves no JVM behind. Linux ties
    this to the thread that forked, so start an attached broker from a long-lived thread.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def terminate_child(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """SIGTERM ``proc`` (Kafka's controlled shutdown), SIGKILL after ``timeout``; return what ended it."""
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


# ----------------------------------------------------------------------------------- CLI state
@dataclass(frozen=True)
class BrokerState:
    """What ``pyheart kafka start`` records about the broker it left running."""

    pid: int
    bootstrap_servers: str
    work_dir: str
    started_at: float
    #: The jar cache's AppCDS archive; a clean stop moves ``<work_dir>/broker.jsa`` there.
    cds_archive: str = ""

    def write(self, path: Path) -> None:
        """Write the state as JSON (atomically)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f"{path.name}.{os.getpid()}")
        staged.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(staged, path)

    @classmethod
    def read(cls, path: Path) -> BrokerState | None:
        """The recorded state, or ``None`` if there is none (or it is unreadable)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                pid=int(raw["pid"]),
                bootstrap_servers=str(raw["bootstrap_servers"]),
                work_dir=str(raw["work_dir"]),
                started_at=float(raw["started_at"]),
                cds_archive=str(raw.get("cds_archive", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool:
        """Whether the recorded JVM still runs (and is the broker, not a process that reused the pid)."""
        proc = Path("/proc") / str(self.pid)
        if Path("/proc/self").exists():
            try:
                status = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                cmdline = (proc / "cmdline").read_bytes()
            except (OSError, IndexError):
                return False
            return status not in {"Z", "X"} and self.work_dir.encode() in cmdline
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, timeout: float = 30.0) -> str:
        """End the recorded broker: SIGTERM, SIGKILL after ``timeout``; remove its work directory."""
        outcome = "not-running"
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            outcome = "terminated"
            if not self._wait_gone(timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                outcome = "killed"
                self._wait_gone(10.0)
        if outcome == "terminated" and self.cds_archive:
            promote_cds_archive(Path(self.work_dir) / _CDS_ARCHIVE, Path(self.cds_archive))
        shutil.rmtree(self.work_dir, ignore_errors=True)
        _log.info("devkafka.stopped", pid=self.pid, outcome=outcome)
        return outcome

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True
