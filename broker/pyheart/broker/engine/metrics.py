"""Prometheus metrics and the HTTP endpoint serving them with ``/healthz`` and ``/readyz``.

Metrics (labels in brackets), one :class:`prometheus_client.CollectorRegistry` per engine:

- ``pyheart_messages_received_total`` [pipeline]
- ``pyheart_messages_passed_total`` / ``pyheart_messages_rejected_total`` [pipeline, stage]
  (stage: a validator or transformer id)
- ``pyheart_messages_dead_lettered_total`` [pipeline, stage, code]
- ``pyheart_messages_produced_total`` [pipeline, topic]
- ``pyheart_retries_total`` [pipeline, stage]
- ``pyheart_processing_seconds`` [pipeline]: histogram of a message's time from fetch to
  acknowledged output (measured per batch, attributed to each of its messages)
- ``pyheart_consumer_lag`` [pipeline, topic, partition]: high-water mark minus next offset

``/healthz`` answers 200 while the event loop runs and no pipeline has crashed; ``/readyz`` answers
200 when every pipeline has started (plugins initialised, consumer joined).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pyheart.broker.logs import get_logger

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class EngineMetrics:
    """The engine's metric families, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "pyheart_messages_received", "Input records fetched", ["pipeline"], registry=r
        )
        self.passed = Counter(
            "pyheart_messages_passed", "Messages a stage passed", ["pipeline", "stage"], registry=r
        )
        self.rejected = Counter(
            "pyheart_messages_rejected", "Messages a stage rejected", ["pipeline", "stage"], registry=r
        )
        self.dead_lettered = Counter(
            "pyheart_messages_dead_lettered",
            "Input records sent to the dead-letter topic",
            ["pipeline", "stage", "code"],
            registry=r,
        )
        self.produced = Counter(
            "pyheart_messages_produced", "Output records acknowledged", ["pipeline", "topic"], registry=r
        )
        self.retries = Counter(
            "pyheart_retries", "Retries of retriable transport errors", ["pipeline", "stage"], registry=r
        )
        self.latency = Histogram(
            "pyheart_processing_seconds",
            "Seconds from fetch to acknowledged output",
            ["pipeline"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "pyheart_consumer_lag",
            "Records behind the high-water mark",
            ["pipeline", "topic", "partition"],
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class HttpEndpoint:
    """A tiny asyncio HTTP/1.0 server for ``/metrics``, ``/healthz`` and ``/readyz``."""

    def __init__(
        self,
        metrics: EngineMetrics,
        *,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._metrics = metrics
        self._live = live
        self._ready = ready
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._log = get_logger("pyheart.engine")

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        self._log.info("metrics.listen", listen=f"{self._host}:{self.port}", operation="metrics")

    async def stop(self) -> None:
        """Stop listening; idempotent."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else "/"
            if path == "/metrics":
                status, ctype, body = 200, CONTENT_TYPE_LATEST, self._metrics.render()
            elif path == "/healthz":
                ok = self._live()
                status, ctype, body = (200 if ok else 503), "text/plain", b"ok\n" if ok else b"unhealthy\n"
            elif path == "/readyz":
                ok = self._ready()
                status, ctype, body = (200 if ok else 503), "text/plain", b"ready\n" if ok else b"not ready\n"
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            head = (
                f"HTTP/1.0 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


__all__ = ["EngineMetrics", "HttpEndpoint"]
