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

import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pyheart.broker import devjvm
from pyheart.broker.devkafka.client import run_sync, wait_reachable
from pyheart.broker.devkafka.runtime import KAFKA, DevKafkaError, ensure_jars
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

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is Python 3.12+; mypy ships typing_extensions

_LOG_TAIL_LINES = 40
_CDS_ARCHIVE = "broker.jsa"

#: How the broker JVM differs from the other development JVMs.
BROKER = devjvm.JvmSpec(
    product=KAFKA,
    noun="the Kafka broker",
    not_started="the local Kafka broker is not started",
    log_name="broker.log",
    work_prefix="pyheart-kafka-",
    events="devkafka",
    log=get_logger("pyheart.devkafka"),
    address_key="bootstrap_servers",
    ready_marker=STARTED_MESSAGE,
    readiness=f"log '{STARTED_MESSAGE}'",
    bind_errors=("Address already in use",),
    bind_failure="Kafka could not bind its ports (Address already in use)",
    ready_timeout=90.0,
    stop_timeout=30.0,
    poll_interval=0.05,
    cds_env="PYHEART_KAFKA_CDS",
)


class LocalKafka(devjvm.LocalJvm):
    """A Kafka broker in a child JVM: ``with LocalKafka() as kafka: kafka.bootstrap_servers``.

    ``libs`` is the jar folder (default: :func:`ensure_jars`); ``extra_properties`` add or override
    ``server.properties`` settings. The other options are :class:`~pyheart.broker.devjvm.LocalJvm`'s:
    ``port`` fixes the client port (default: a free one); ``detach`` starts the JVM in its own session
    so it outlives this process (``pyheart kafka start``); readiness waits up to 90 s, and stop() sends
    SIGKILL 30 s after SIGTERM.
    """

    spec = BROKER

    def __init__(
        self,
        *,
        libs: Path | None = None,
        extra_properties: Mapping[str, str] | None = None,
        **options: Unpack[devjvm.JvmOptions],
    ) -> None:
        super().__init__(**options)
        self._libs = libs
        self._extra = dict(extra_properties or {})

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for clients; raises if the broker is not running."""
        return self.address

    # ------------------------------------------------------------------------------- internals
    def _runtime(self) -> Path:
        return ensure_jars(self._libs)

    def _archive(self, runtime: Path) -> Path:
        return runtime.parent / _CDS_ARCHIVE

    def _launch(self, java: Path, runtime: Path, attempt: int, deadline: float) -> None:
        assert self._work_dir is not None
        assert self._cds is not None
        work = self._work_dir
        broker_port = self._pick_port()
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
            f"{runtime}/*",  # the JVM expands the wildcard; no shell involved
        ]
        cds = self._cds.use_flags()
        try:
            self._format(java, [*cds, *common], config, work, deadline)
        except DevKafkaError:
            if not cds:
                raise
            # A damaged archive crashes the JVM (SIGBUS) instead of being ignored: drop it, retry.
            BROKER.log.warning("devkafka.cds_archive_rejected", outcome="deleted")
            self._cds.discard()
            cds = []
            shutil.rmtree(data, ignore_errors=True)
            self._format(java, common, config, work, deadline)
        dump = self._cds.dump_flags(work)
        self._spawn([str(java), *BROKER_HEAP, *dump, *cds, *common, "kafka.Kafka", str(config)])
        self._address = f"{self._host}:{broker_port}"
        self._wait_ready(deadline)
        try:
            run_sync(wait_reachable(self._address, max(1.0, deadline - time.monotonic())))
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


# ----------------------------------------------------------------------------------- CLI state
@dataclass(frozen=True)
class BrokerState(devjvm.JvmState):
    """What ``pyheart kafka start`` records about the broker it left running."""

    spec: ClassVar[devjvm.JvmSpec] = BROKER
    address_field: ClassVar[str] = "bootstrap_servers"

    pid: int
    bootstrap_servers: str
    work_dir: str
    started_at: float
    #: The jar cache's AppCDS archive; a clean stop moves ``<work_dir>/broker.jsa`` there.
    cds_archive: str = ""

    def _identity(self) -> bytes:
        return self.work_dir.encode()

    def _pending_archive(self) -> tuple[Path, Path] | None:
        if not self.cds_archive:
            return None
        return Path(self.work_dir) / _CDS_ARCHIVE, Path(self.cds_archive)
